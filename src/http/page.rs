//! The verification page (RFC 8628 §3.3): enter a code, review the request, approve or deny.

use core::fmt::{self, Write as _};

use rand_core::CryptoRng;

use super::context::Context;
use super::{status, Application, HttpConfig, Request, Response, User};
use crate::b64::{decode_b64, encode_b64};
use crate::client::ClientRegistry;
use crate::form::Form;
use crate::grant::GrantStore;
use crate::key::TAG_LEN;
use crate::provider::{ApproveError, GrantInfo, Provider};
use crate::scope::{ScopeRegistry, ScopeSet};

/// Longest query string the page decodes (`user_code=` and a code, with room for other parameters).
const MAX_QUERY: usize = 128;

const CSS: &str = "body{margin:0;padding:0 .75rem;background:#f3f4f7;color:#1c2230;font:16px/1.5 system-ui,-apple-system,\"Segoe UI\",sans-serif}\
main{box-sizing:border-box;max-width:26rem;margin:1.5rem auto;padding:1.5rem;background:#fff;border-radius:14px;box-shadow:0 1px 4px #0002}\
h1{font-size:1.35rem;margin:0 0 .75rem}\
label{display:block;margin:.5rem 0}\
input{box-sizing:border-box;width:100%;padding:.6rem;border:1px solid #a8afbf;border-radius:8px;font:1.5rem ui-monospace,monospace;letter-spacing:.12em;text-align:center;text-transform:uppercase}\
button{display:block;width:100%;margin-top:.75rem;padding:.75rem;border:0;border-radius:8px;background:#2454d6;color:#fff;font:inherit;font-weight:600;cursor:pointer}\
button.secondary{background:#e3e6ee;color:#1c2230}\
.msg{padding:.7rem .9rem;border-radius:8px;font-weight:600}\
.ok{background:#e2f5e7;color:#145a2b}.err{background:#fdeaea;color:#8c1d1d}\
.code{font-family:ui-monospace,monospace;font-size:1.25rem;letter-spacing:.1em}\
.muted{color:#5a6274;font-size:.9rem}\
ul{padding-left:1.25rem}";

/// HTML-escapes text for element content and quoted attribute values.
pub(crate) struct Escaped<'a>(pub &'a str);

impl fmt::Display for Escaped<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut rest = self.0;
        while let Some(i) = rest.find(['&', '<', '>', '"', '\'']) {
            let (safe, tail) = rest.split_at(i);
            f.write_str(safe)?;
            let mut chars = tail.chars();
            f.write_str(match chars.next() {
                Some('&') => "&amp;",
                Some('<') => "&lt;",
                Some('>') => "&gt;",
                Some('"') => "&quot;",
                _ => "&#39;",
            })?;
            rest = chars.as_str();
        }
        f.write_str(rest)
    }
}

/// The outcome line (`id="message"`).
#[derive(Debug, Clone, Copy)]
struct Message {
    ok: bool,
    text: &'static str,
    detail: &'static str,
}

impl Message {
    const fn err(text: &'static str, detail: &'static str) -> Self {
        Self { ok: false, text, detail }
    }
}

/// What the page shows below the message.
enum Body<'a> {
    /// Nothing more.
    Nothing,
    /// The code entry form.
    Entry,
    /// The request, with Approve and Deny.
    Confirm { info: GrantInfo, client: &'a str, scopes: &'a ScopeRegistry, csrf: &'a str },
    /// The client a decision was about.
    Decided { client: &'a str },
}

/// Status and message of a failed look-up or decision.
fn failure(e: ApproveError) -> (u16, Message) {
    let msg = match e {
        ApproveError::InvalidCode => Message::err("Invalid code", "Check the code shown on your device and try again."),
        ApproveError::Expired => Message::err("Code expired", "Start again on your device to get a new code."),
        ApproveError::AlreadyDecided => {
            Message::err("Code already used", "This request was already approved or denied.")
        }
        ApproveError::RateLimited => Message::err("Too many attempts", "Wait a minute, then try again."),
        ApproveError::ScopeNotRequested => Message::err("Invalid request", "Reload the page and try again."),
    };
    (status::approve_error(e), msg)
}

/// The session bytes a CSRF tag and the guess budget are bound to: `user:<id>`.
fn session(user: &User) -> heapless::String<16> {
    let mut s = heapless::String::new();
    let _ = write!(s, "user:{}", user.id);
    s
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
        _ => return status::method_not_allowed(res, "GET, POST"),
    };
    res.header("Content-Type", "text/html; charset=utf-8")
        .header("Cache-Control", "no-store")
        .header("X-Frame-Options", "DENY")
        .header(
            "Content-Security-Policy",
            "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; frame-ancestors 'none'",
        )
        .header("X-Content-Type-Options", "nosniff")
        .header("Referrer-Policy", "no-referrer");
    if post && !req.is_form() {
        res.set_status(status::UNSUPPORTED_MEDIA_TYPE);
        let msg = Message::err("Invalid request", "The form must be sent as application/x-www-form-urlencoded.");
        return render(cfg, res, None, Some(msg), Body::Nothing);
    }
    let Some(user) = cx.app.user(&Request { body: &*body, ..*req }) else {
        res.set_status(status::SIGN_IN_REQUIRED)
            .header_fmt("WWW-Authenticate", format_args!("Basic realm=\"{}\"", cfg.realm));
        let msg = Message::err("Sign in required", "Sign in to connect a device to your account.");
        return render(cfg, res, None, Some(msg), Body::Nothing);
    };
    let session = session(&user);
    let provider = &mut *cx.provider;
    let csrf_buf: heapless::String<24> = encode_b64(&provider.csrf_tag(session.as_bytes()));
    let csrf = csrf_buf.as_str();

    if !post {
        let mut query = [0u8; MAX_QUERY];
        let code = match req.query.map(|q| query_param(q, &mut query)) {
            None | Some(Ok(None)) => return render(cfg, res, Some(&user), None, Body::Entry),
            Some(Ok(Some(code))) => code,
            Some(Err(())) => {
                let (status, msg) = failure(ApproveError::InvalidCode);
                res.set_status(status);
                return render(cfg, res, Some(&user), Some(msg), Body::Entry);
            }
        };
        return match provider.user_code_info(cx.now, code, session.as_bytes()) {
            Ok(info) if info.state.is_undecided() => {
                let client = provider.client(info.client).map(|c| c.name()).unwrap_or_default();
                let body = Body::Confirm { info, client, scopes: provider.scopes(), csrf };
                render(cfg, res, Some(&user), None, body)
            }
            Ok(_) => fail(cfg, res, &user, provider.config().limits.window, ApproveError::AlreadyDecided),
            Err(e) => fail(cfg, res, &user, provider.config().limits.window, e),
        };
    }

    let Ok(form) = Form::<8>::parse(body) else {
        res.set_status(status::BAD_FORM);
        return render(
            cfg,
            res,
            Some(&user),
            Some(Message::err("Invalid request", "Reload the page and try again.")),
            Body::Entry,
        );
    };
    let mut tag = [0u8; TAG_LEN];
    let tag_ok = form.get("csrf").and_then(|t| decode_b64(t, &mut tag).map(|t| t.len() == TAG_LEN)).unwrap_or(false);
    if !tag_ok || !provider.verify_csrf_tag(session.as_bytes(), &tag) {
        res.set_status(status::FORM_EXPIRED);
        let msg = Message::err("Form expired", "Reload the page and try again.");
        return render(cfg, res, Some(&user), Some(msg), Body::Entry);
    }
    let Some(code) = form.get("user_code") else {
        return fail(cfg, res, &user, provider.config().limits.window, ApproveError::InvalidCode);
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
            let approved = info.state == crate::grant::GrantState::Approved;
            let msg = if approved {
                Message {
                    ok: true,
                    text: "Device approved",
                    detail: "You can close this page and go back to your device.",
                }
            } else {
                Message { ok: true, text: "Request denied", detail: "The device was not given access." }
            };
            let client = provider.client(info.client).map(|c| c.name()).unwrap_or_default();
            render(cfg, res, Some(&user), Some(msg), Body::Decided { client })
        }
        Err(e) => fail(cfg, res, &user, provider.config().limits.window, e),
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

fn fail(cfg: &HttpConfig, res: &mut Response<'_>, user: &User, window: u32, e: ApproveError) {
    let (status, msg) = failure(e);
    res.set_status(status);
    if e == ApproveError::RateLimited {
        res.header_fmt("Retry-After", format_args!("{window}"));
        return render(cfg, res, Some(user), Some(msg), Body::Nothing);
    }
    render(cfg, res, Some(user), Some(msg), Body::Entry);
}

/// The `user_code` of a query string, decoded in `scratch`. `Err` if the query is too long or malformed.
fn query_param<'s>(query: &str, scratch: &'s mut [u8; MAX_QUERY]) -> Result<Option<&'s str>, ()> {
    let dst = scratch.get_mut(..query.len()).ok_or(())?;
    dst.copy_from_slice(query.as_bytes());
    let form = Form::<4>::parse(dst).map_err(|_| ())?;
    Ok(form.get("user_code"))
}

fn render(cfg: &HttpConfig, res: &mut Response<'_>, user: Option<&User>, msg: Option<Message>, body: Body<'_>) {
    // A write error marks the response as failed; `handle` then sends a 500.
    let _ = write_page(cfg, res, user, msg, body);
}

fn write_page(
    cfg: &HttpConfig,
    w: &mut Response<'_>,
    user: Option<&User>,
    msg: Option<Message>,
    body: Body<'_>,
) -> fmt::Result {
    let title = Escaped(cfg.page_title);
    let action = Escaped(cfg.activate_path);
    write!(
        w,
        "<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width,initial-scale=1\"><meta name=\"robots\" content=\"noindex\">\
         <title>{title}</title><style>{CSS}</style></head><body><main><h1>{title}</h1>"
    )?;
    if let Some(user) = user {
        write!(w, "<p class=\"muted\">Signed in as <b id=\"user\">{}</b></p>", Escaped(&user.name))?;
    }
    if let Some(m) = msg {
        let class = if m.ok { "ok" } else { "err" };
        write!(w, "<p id=\"message\" class=\"msg {class}\" role=\"status\">{}</p><p>{}</p>", m.text, m.detail)?;
    }
    match body {
        Body::Nothing => {}
        Body::Entry => write!(
            w,
            "<form method=\"get\" action=\"{action}\"><label for=\"user_code\">Enter the code shown on your device</label>\
             <input id=\"user_code\" name=\"user_code\" required autofocus autocomplete=\"off\" autocapitalize=\"characters\" \
             spellcheck=\"false\" maxlength=\"32\" placeholder=\"XXXX-XXXX\">\
             <button id=\"continue\" type=\"submit\">Continue</button></form>"
        )?,
        Body::Confirm { info, client, scopes, csrf } => {
            let code = info.user_code.display();
            write!(
                w,
                "<p>Code <span id=\"code\" class=\"code\">{code}</span></p>\
                 <p><b id=\"client\">{}</b> asks for access to your account:</p><ul id=\"scopes\">",
                Escaped(client)
            )?;
            write_scopes(w, scopes, info.scopes)?;
            write!(
                w,
                "</ul><form method=\"post\" action=\"{action}\">\
                 <input type=\"hidden\" id=\"user_code\" name=\"user_code\" value=\"{code}\">\
                 <input type=\"hidden\" name=\"csrf\" value=\"{csrf}\">\
                 <button id=\"approve\" type=\"submit\" name=\"action\" value=\"approve\">Approve</button>\
                 <button id=\"deny\" class=\"secondary\" type=\"submit\" name=\"action\" value=\"deny\">Deny</button></form>\
                 <p class=\"muted\">Approve only if you started this on a device you own and it shows the same code.</p>"
            )?;
        }
        Body::Decided { client } => write!(w, "<p class=\"muted\">Device: <b id=\"client\">{}</b></p>", Escaped(client))?,
    }
    w.write_str("</main></body></html>")
}

fn write_scopes(w: &mut Response<'_>, registry: &ScopeRegistry, set: ScopeSet) -> fmt::Result {
    let mut any = false;
    for name in set.indices().filter_map(|i| registry.name(i)) {
        write!(w, "<li>{}</li>", Escaped(name))?;
        any = true;
    }
    if !any {
        w.write_str("<li>basic access (no scopes)</li>")?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escaping() {
        let mut s = heapless::String::<64>::new();
        write!(s, "{}", Escaped("a<b>&\"c'd\u{e9}")).unwrap();
        assert_eq!(s, "a&lt;b&gt;&amp;&quot;c&#39;d\u{e9}");
    }
}
