//! The verification page (RFC 8628 §3.3): enter a code, review the request, approve or deny.

use core::fmt::Write as _;

use rand_core::CryptoRng;

use super::context::Context;
use super::html::{self, Escaped, Message};
use super::{status, Application, HttpConfig, Request, Response, User};
use crate::client::ClientRegistry;
use crate::form::Form;
use crate::grant::{GrantState, GrantStore};
use crate::provider::{ApproveError, GrantInfo, Provider};

/// Longest query string the page decodes (`user_code=` and a code, with room for other parameters).
const MAX_QUERY: usize = 128;

/// What the page shows below the message.
enum Body<'a> {
    /// Nothing more.
    Nothing,
    /// The code entry form.
    Entry,
    /// The request, with Approve and Deny.
    Confirm { info: GrantInfo, client: &'a str, csrf: &'a str },
    /// The client a decision was about.
    Decided { client: &'a str },
}

/// The message of a failed look-up or decision (its status is `status::approve_error`).
fn failure(cfg: &HttpConfig, e: ApproveError) -> Message {
    let full = |text, detail| Message {
        link: Some((cfg.devices_path, "devices-link", "Review your connected devices")),
        ..Message::err(text, detail)
    };
    match e {
        ApproveError::InvalidCode => Message::err("Invalid code", "Check the code shown on your device and try again."),
        ApproveError::Expired => Message::err("Code expired", "Start again on your device to get a new code."),
        ApproveError::AlreadyDecided => Message::err("Code already used", "This request was already approved or denied."),
        ApproveError::RateLimited => Message::err("Too many attempts", "Wait a few seconds, then try again."),
        ApproveError::ScopeNotRequested => Message::err("Invalid request", "Reload the page and try again."),
        ApproveError::DevicesFull => full(
            "No room for another device",
            "This gateway has as many connected devices as it can hold. Revoke one you no longer use, then start again on your device.",
        ),
        ApproveError::AccountFull => full(
            "Too many connected devices",
            "Your account has as many connected devices as it may have. Revoke one you no longer use, then start again on your device.",
        ),
    }
}

pub(crate) fn activate<C, G, const F: usize, const S: usize, A, R>(
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
        return render(cfg, res, None, Some(msg), Body::Nothing);
    }
    let Some(user) = html::sign_in(cfg, cx, req, body, res, "Sign in to connect a device to your account.") else {
        return;
    };
    let session = html::session(&user);
    let provider = &mut *cx.provider;
    let csrf_buf = html::csrf_field(provider, &session);
    let csrf = csrf_buf.as_str();

    if !post {
        let mut query = [0u8; MAX_QUERY];
        let code = match req.query.map(|q| query_param(q, &mut query)) {
            None | Some(Ok(None)) => return render(cfg, res, Some(&user), None, Body::Entry),
            Some(Ok(Some(code))) => code,
            Some(Err(())) => return fail(cfg, res, provider, cx.now, &user, ApproveError::InvalidCode),
        };
        return match provider.user_code_info(cx.now, code, session.as_bytes()) {
            Ok(info) if info.state.is_undecided() => {
                let client = provider.client(info.client).map(|c| c.name()).unwrap_or_default();
                render_confirm(cfg, res, provider, &user, Body::Confirm { info, client, csrf })
            }
            Ok(_) => fail(cfg, res, provider, cx.now, &user, ApproveError::AlreadyDecided),
            Err(e) => fail(cfg, res, provider, cx.now, &user, e),
        };
    }

    let Ok(form) = Form::<8>::parse(body) else {
        res.set_status(status::BAD_FORM);
        let msg = Message::err("Invalid request", "Reload the page and try again.");
        return render(cfg, res, Some(&user), Some(msg), Body::Entry);
    };
    if !html::csrf_ok(provider, &session, form.get("csrf")) {
        res.set_status(status::FORM_EXPIRED);
        let msg = Message::err("Form expired", "Reload the page and try again.");
        return render(cfg, res, Some(&user), Some(msg), Body::Entry);
    }
    let Some(code) = form.get("user_code") else {
        return fail(cfg, res, provider, cx.now, &user, ApproveError::InvalidCode);
    };
    let decided = match form.get("action") {
        Some("approve") => approve(provider, cx.now, code, session.as_bytes(), &user),
        Some("deny") => provider.deny(cx.now, code, session.as_bytes()),
        _ => {
            res.set_status(status::BAD_FORM);
            let msg = Message::err("Invalid request", "Choose Approve or Deny.");
            return render(cfg, res, Some(&user), Some(msg), Body::Nothing);
        }
    };
    match decided {
        Ok(info) => {
            let msg = if info.state == GrantState::Approved {
                Message::ok("Device approved", "You can close this page and go back to your device.")
            } else {
                Message::ok("Request denied", "The device was not given access.")
            };
            let client = provider.client(info.client).map(|c| c.name()).unwrap_or_default();
            render(cfg, res, Some(&user), Some(msg), Body::Decided { client })
        }
        Err(e) => fail(cfg, res, provider, cx.now, &user, e),
    }
}

/// Approves with every requested scope.
fn approve<C: ClientRegistry, G: GrantStore, const F: usize, const S: usize>(
    provider: &mut Provider<C, G, F, S>,
    now: u64,
    code: &str,
    source: &[u8],
    user: &User,
) -> Result<GrantInfo, ApproveError> {
    let info = provider.user_code_info(now, code, source)?;
    if !info.state.is_undecided() {
        return Err(ApproveError::AlreadyDecided);
    }
    provider.approve(now, code, source, user.id, info.scopes)
}

fn fail<C: ClientRegistry, G: GrantStore, const F: usize, const S: usize>(
    cfg: &HttpConfig,
    res: &mut Response<'_>,
    provider: &mut Provider<C, G, F, S>,
    now: u64,
    user: &User,
    e: ApproveError,
) {
    res.set_status(status::approve_error(e));
    let msg = failure(cfg, e);
    match e {
        ApproveError::RateLimited => {
            let wait = provider.user_code_retry_after(now, html::session(user).as_bytes());
            res.header_fmt("Retry-After", format_args!("{wait}"));
            render(cfg, res, Some(user), Some(msg), Body::Nothing)
        }
        ApproveError::DevicesFull | ApproveError::AccountFull => render(cfg, res, Some(user), Some(msg), Body::Nothing),
        _ => render(cfg, res, Some(user), Some(msg), Body::Entry),
    }
}

/// The `user_code` of a query string, decoded in `scratch`. `Err` if the query is too long or malformed.
fn query_param<'s>(query: &str, scratch: &'s mut [u8; MAX_QUERY]) -> Result<Option<&'s str>, ()> {
    let dst = scratch.get_mut(..query.len()).ok_or(())?;
    dst.copy_from_slice(query.as_bytes());
    let form = Form::<4>::parse(dst).map_err(|_| ())?;
    Ok(form.get("user_code"))
}

fn render_confirm<C: ClientRegistry, G: GrantStore, const F: usize, const S: usize>(
    cfg: &HttpConfig,
    res: &mut Response<'_>,
    provider: &Provider<C, G, F, S>,
    user: &User,
    body: Body<'_>,
) {
    let Body::Confirm { info, client, csrf } = body else { return render(cfg, res, Some(user), None, body) };
    let action = Escaped(cfg.activate_path);
    let scopes = provider.scopes();
    html::render(cfg, cfg.page_title, res, Some(user), None, |w| {
        let code = info.user_code.display();
        write!(
            w,
            "<p>Code <span id=\"code\" class=\"code\">{code}</span></p>\
             <p><b id=\"client\">{}</b> asks for access to your account:</p><ul id=\"scopes\">",
            Escaped(client)
        )?;
        html::write_scopes(w, scopes, info.scopes)?;
        write!(
            w,
            "</ul><form method=\"post\" action=\"{action}\">\
             <input type=\"hidden\" id=\"user_code\" name=\"user_code\" value=\"{code}\">\
             <input type=\"hidden\" name=\"csrf\" value=\"{csrf}\">\
             <button id=\"approve\" type=\"submit\" name=\"action\" value=\"approve\">Approve</button>\
             <button id=\"deny\" class=\"secondary\" type=\"submit\" name=\"action\" value=\"deny\">Deny</button></form>\
             <p class=\"muted\">Approve only if you started this on a device you own and it shows the same code.</p>"
        )
    });
}

fn render(cfg: &HttpConfig, res: &mut Response<'_>, user: Option<&User>, msg: Option<Message>, body: Body<'_>) {
    let action = Escaped(cfg.activate_path);
    html::render(cfg, cfg.page_title, res, user, msg, |w| {
        match body {
        Body::Nothing | Body::Confirm { .. } => Ok(()),
        Body::Entry => write!(
            w,
            "<form method=\"get\" action=\"{action}\"><label for=\"user_code\">Enter the code shown on your device</label>\
             <input id=\"user_code\" name=\"user_code\" required autofocus autocomplete=\"off\" autocapitalize=\"characters\" \
             spellcheck=\"false\" maxlength=\"32\" placeholder=\"XXXX-XXXX\">\
             <button id=\"continue\" type=\"submit\">Continue</button></form>\
             <nav><a id=\"devices-link\" href=\"{}\">Your connected devices</a></nav>",
            Escaped(cfg.devices_path)
        ),
        Body::Decided { client } => write!(w, "<p class=\"muted\">Device: <b id=\"client\">{}</b></p>", Escaped(client)),
    }
    });
}
