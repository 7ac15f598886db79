//! The connected-devices page (`GET`/`POST` [`HttpConfig::devices_path`]): the signed-in user sees
//! their devices (client, scopes, when approved, when last used) and revokes any of them. Same sign-in,
//! anti-CSRF field and look as the verification page.
//!
//! Stable element ids for tests and scripts: `devices` (the list), one `device-<slot>-<serial>` per
//! device with a `revoke-<slot>-<serial>` button, `no-devices` when there are none, `more` (the link
//! to the next [`DEVICES_PER_PAGE`]) and `message` for the outcome ("Device revoked", "Device not
//! found"). The revoke form sends `device=<slot>-<serial>` and the `csrf` field.

use core::fmt::Write as _;

use rand_core::CryptoRng;

use super::context::Context;
use super::html::{self, Ago, Escaped, Message};
use super::{status, Application, HttpConfig, Request, Response, User};
use crate::client::ClientRegistry;
use crate::form::Form;
use crate::grant::GrantStore;
use crate::provider::Provider;

/// The page's title.
const TITLE: &str = "Connected devices";

pub(crate) fn devices<C, G, const F: usize, const S: usize, A, R>(
    cfg: &HttpConfig,
    cx: &mut Context<'_, C, G, F, S, A, R>,
    req: &Request<'_>,
    body: &mut [u8],
    res: &mut Response<'_>,
) where
    C: ClientRegistry,
    G: GrantStore,
    A: Application + ?Sized,
    R: CryptoRng + ?Sized,
{
    let post = match req.method {
        "GET" => false,
        "POST" => true,
        _ => return status::method_not_allowed(res, "GET, HEAD, POST"),
    };
    html::page_headers(cfg, res);
    if post && !req.is_form() {
        res.set_status(status::UNSUPPORTED_MEDIA_TYPE);
        let msg = Message::err("Invalid request", "The form must be sent as application/x-www-form-urlencoded.");
        return html::render(cfg, TITLE, res, None, Some(msg), |_| Ok(()));
    }
    let Some(user) = html::sign_in(cfg, cx, req, body, res, "Sign in to see the devices connected to your account.")
    else {
        return;
    };
    let session = html::session(&user);
    let provider = &mut *cx.provider;
    let mut msg = None;
    if post {
        let Ok(form) = Form::<8>::parse(body) else {
            res.set_status(status::BAD_FORM);
            let msg = Message::err("Invalid request", "Reload the page and try again.");
            return list(cfg, res, provider, cx.now, &user, 0, Some(msg));
        };
        if !html::csrf_ok(provider, &session, form.get("csrf")) {
            res.set_status(status::FORM_EXPIRED);
            let msg = Message::err("Form expired", "Reload the page and try again.");
            return list(cfg, res, provider, cx.now, &user, 0, Some(msg));
        }
        let device = form.get("device").and_then(|d| d.split_once('-'));
        let revoked = match device.map(|(slot, serial)| (slot.parse::<u16>(), serial.parse::<u32>())) {
            Some((Ok(slot), Ok(serial))) => provider.revoke_family(cx.now, user.id, slot, serial),
            _ => false,
        };
        msg = Some(if revoked {
            Message::ok("Device revoked", "It can no longer use your account.")
        } else {
            res.set_status(status::NOT_FOUND);
            Message::err("Device not found", "It was already revoked or has expired.")
        });
    }
    let from = if post { 0 } else { from_param(req.query) };
    list(cfg, res, provider, cx.now, &user, from, msg);
}

/// The `from` slot of a `?from=N` query (0 if absent or not a number).
fn from_param(query: Option<&str>) -> u16 {
    query
        .into_iter()
        .flat_map(|q| q.split('&'))
        .find_map(|kv| kv.strip_prefix("from=").and_then(|v| v.parse().ok()))
        .unwrap_or(0)
}

/// Devices listed per page: with the page's frame this keeps the largest page under
/// [`super::MIN_OUTPUT_LEN`]; more are reached through `?from=<slot>` links.
pub const DEVICES_PER_PAGE: usize = 6;

/// The page: the message, then the user's devices from slot `from` on, each with a Revoke button
/// (one form, one anti-CSRF field; the button pressed names the device).
fn list<C: ClientRegistry, G: GrantStore, const F: usize, const S: usize>(
    cfg: &HttpConfig,
    res: &mut Response<'_>,
    provider: &Provider<C, G, F, S>,
    now: u64,
    user: &User,
    from: u16,
    msg: Option<Message>,
) {
    let csrf = html::csrf_field(provider, &html::session(user));
    let action = Escaped(cfg.devices_path);
    let clock = provider.clock();
    html::render(cfg, TITLE, res, Some(user), msg, |w| {
        let mut shown = 0;
        let mut more = None;
        for d in provider.families(now, user.id).filter(|d| d.slot >= from) {
            if shown == DEVICES_PER_PAGE {
                more = Some(d.slot);
                break;
            }
            if shown == 0 {
                write!(
                    w,
                    "<form method=\"post\" action=\"{action}\"><input type=\"hidden\" name=\"csrf\" value=\"{csrf}\">\
                     <ul id=\"devices\">"
                )?;
            }
            shown += 1;
            let (slot, serial) = (d.slot, d.serial);
            let client = provider.client(d.client).map(|c| c.name()).unwrap_or_default();
            write!(
                w,
                "<li class=\"device\" id=\"device-{slot}-{serial}\"><b class=\"client\">{}</b> <span class=\"muted\">",
                Escaped(client)
            )?;
            let mut first = true;
            for name in d.scopes.indices().filter_map(|i| provider.scopes().name(i)) {
                write!(w, "{}{}", if first { "" } else { " " }, Escaped(name))?;
                first = false;
            }
            write!(w, " · approved {}", Ago(clock, d.approved_at))?;
            match d.last_used {
                Some(t) if t.saturating_add(crate::provider::LAST_USED_GRANULARITY) > clock => {
                    w.write_str(" · used this hour")?
                }
                Some(t) => write!(w, " · last used {}", Ago(clock, t))?,
                None => w.write_str(" · waiting for the device to connect")?,
            }
            write!(
                w,
                "</span><button id=\"revoke-{slot}-{serial}\" class=\"secondary\" type=\"submit\" name=\"device\" \
                 value=\"{slot}-{serial}\">Revoke</button></li>"
            )?;
        }
        if shown > 0 {
            w.write_str("</ul></form>")?;
        } else {
            w.write_str("<p id=\"no-devices\">No connected devices.</p>")?;
        }
        if let Some(next) = more {
            write!(w, "<nav><a id=\"more\" href=\"{action}?from={next}\">More devices</a></nav>")?;
        }
        write!(w, "<nav><a id=\"activate-link\" href=\"{}\">Connect a device</a></nav>", Escaped(cfg.activate_path))
    });
}
