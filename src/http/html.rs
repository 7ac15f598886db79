//! What the two pages of the binding share: the look, the sign-in (budgeted per address), the
//! anti-CSRF field, HTML escaping and the page frame.

use core::fmt::{self, Write as _};

use rand_core::CryptoRng;

use super::context::Context;
use super::{status, Application, HttpConfig, Request, Response, User};
use crate::b64::{decode_b64, encode_b64};
use crate::client::ClientRegistry;
use crate::grant::GrantStore;
use crate::key::TAG_LEN;
use crate::provider::Provider;
use crate::scope::{ScopeRegistry, ScopeSet};

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
ul{padding-left:1.25rem}#devices{padding:0}\
.device{list-style:none;margin:.75rem 0;padding:.75rem;border:1px solid #dfe3ec;border-radius:10px}\
.device form{margin:0}nav{margin-top:1rem}a{color:#2454d6}\
.notice{max-width:26rem;margin:1rem auto;padding:.5rem 1rem;color:#8a1c1c;font-size:.9rem;text-align:center}";

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

/// The outcome line (`id="message"`), and an optional link under it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Message {
    pub(crate) ok: bool,
    pub(crate) text: &'static str,
    pub(crate) detail: &'static str,
    /// `(href, id, label)`.
    pub(crate) link: Option<(&'static str, &'static str, &'static str)>,
}

impl Message {
    pub(crate) const fn err(text: &'static str, detail: &'static str) -> Self {
        Self { ok: false, text, detail, link: None }
    }

    pub(crate) const fn ok(text: &'static str, detail: &'static str) -> Self {
        Self { ok: true, text, detail, link: None }
    }
}

/// The headers every page carries: HTML, never cached, never framed, no referrer, a strict CSP.
pub(crate) fn page_headers(cfg: &HttpConfig, res: &mut Response<'_>) {
    if let Some(age) = cfg.hsts_max_age {
        let mut value = heapless::String::<32>::new();
        let _ = write!(value, "max-age={age}");
        res.header("Strict-Transport-Security", &value);
    }
    res.header("Content-Type", "text/html; charset=utf-8")
        .header("Cache-Control", "no-store")
        .header("X-Frame-Options", "DENY")
        .header(
            "Content-Security-Policy",
            "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; frame-ancestors 'none'",
        )
        .header("X-Content-Type-Options", "nosniff")
        .header("Referrer-Policy", "no-referrer");
}

/// The source bytes of the request's peer (empty when the transport gave none).
pub(crate) fn peer_source(req: &Request<'_>) -> ([u8; 8], usize) {
    req.peer.map_or(([0; 8], 0), |p| crate::source::of_ip(p.ip()))
}

/// The signed-in user, or the answer already written: 401 with a Basic challenge when nobody is
/// signed in, 429 when this address failed to sign in too often (the application's check is not even
/// asked). A request that carried credentials and was refused is charged to its address.
pub(crate) fn sign_in<C, G, const F: usize, const S: usize, A, R>(
    cfg: &HttpConfig,
    cx: &mut Context<'_, C, G, F, S, A, R>,
    req: &Request<'_>,
    body: &[u8],
    res: &mut Response<'_>,
    why: &'static str,
) -> Option<User>
where
    C: ClientRegistry,
    G: GrantStore,
    A: Application + ?Sized,
    R: CryptoRng + ?Sized,
{
    let (source, n) = peer_source(req);
    let source = source.get(..n).unwrap_or_default();
    if let Err(limited) = cx.provider.admit_sign_in(cx.now, source) {
        res.set_status(status::SIGN_IN_THROTTLED).header_fmt("Retry-After", format_args!("{}", limited.retry_after));
        let msg = Message::err("Too many sign-in attempts", "Wait a little, then try again.");
        render(cfg, cfg.page_title, res, None, Some(msg), |_| Ok(()));
        return None;
    }
    if let Some(user) = cx.app.user(&Request { body, ..*req }) {
        return Some(user);
    }
    if req.header("authorization").is_some() {
        cx.provider.record_sign_in_failure(cx.now, source);
    }
    res.set_status(status::SIGN_IN_REQUIRED)
        .header_fmt("WWW-Authenticate", format_args!("Basic realm=\"{}\"", cfg.realm));
    render(cfg, cfg.page_title, res, None, Some(Message::err("Sign in required", why)), |_| Ok(()));
    None
}

/// The session bytes a CSRF tag and the guess budget are bound to: `user:<id>`.
pub(crate) fn session(user: &User) -> heapless::String<16> {
    let mut s = heapless::String::new();
    let _ = write!(s, "user:{}", user.id);
    s
}

/// The page's anti-CSRF field for this session: `base64url(Provider::csrf_tag(session))`.
pub(crate) fn csrf_field<C: ClientRegistry, G: GrantStore, const F: usize, const S: usize>(
    provider: &Provider<C, G, F, S>,
    session: &str,
) -> heapless::String<24> {
    encode_b64(&provider.csrf_tag(session.as_bytes()))
}

/// Whether a form's `csrf` field is this session's.
pub(crate) fn csrf_ok<C: ClientRegistry, G: GrantStore, const F: usize, const S: usize>(
    provider: &Provider<C, G, F, S>,
    session: &str,
    field: Option<&str>,
) -> bool {
    let mut tag = [0u8; TAG_LEN];
    let well_formed = field.and_then(|t| decode_b64(t, &mut tag).map(|t| t.len() == TAG_LEN)).unwrap_or(false);
    well_formed && provider.verify_csrf_tag(session.as_bytes(), &tag)
}

/// Writes a whole page; `body` writes what comes below the message.
pub(crate) fn render(
    cfg: &HttpConfig,
    title: &str,
    res: &mut Response<'_>,
    user: Option<&User>,
    msg: Option<Message>,
    body: impl FnOnce(&mut Response<'_>) -> fmt::Result,
) {
    // A write error marks the response as failed; the server then sends a 500.
    let _ = write_page(cfg.notice, title, res, user, msg, body);
}

fn write_page(
    notice: Option<&str>,
    title: &str,
    w: &mut Response<'_>,
    user: Option<&User>,
    msg: Option<Message>,
    body: impl FnOnce(&mut Response<'_>) -> fmt::Result,
) -> fmt::Result {
    let title = Escaped(title);
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
        if let Some((href, id, label)) = m.link {
            write!(w, "<p><a id=\"{id}\" href=\"{}\">{label}</a></p>", Escaped(href))?;
        }
    }
    body(w)?;
    w.write_str("</main>")?;
    if let Some(notice) = notice {
        write!(w, "<footer id=\"notice\" class=\"notice\" role=\"note\">{}</footer>", Escaped(notice))?;
    }
    w.write_str("</body></html>")
}

/// The names of `set`, one `<li>` each.
pub(crate) fn write_scopes(w: &mut Response<'_>, registry: &ScopeRegistry, set: ScopeSet) -> fmt::Result {
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

/// "just now", "5 minutes ago", "3 hours ago", "2 days ago": `then` as seen from `now`.
pub(crate) struct Ago(pub u32, pub u32);

impl fmt::Display for Ago {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let d = self.0.saturating_sub(self.1);
        let (n, unit) = match d {
            0..60 => return f.write_str("just now"),
            60..3600 => (d / 60, "minute"),
            3600..86400 => (d / 3600, "hour"),
            _ => (d / 86400, "day"),
        };
        write!(f, "{n} {unit}{} ago", if n == 1 { "" } else { "s" })
    }
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

    #[test]
    fn ages() {
        let mut s = heapless::String::<64>::new();
        for (now, then) in [(100, 90), (200, 80), (7300, 100), (3 * 86400, 0)] {
            write!(s, "{}|", Ago(now, then)).unwrap();
        }
        assert_eq!(s, "just now|2 minutes ago|2 hours ago|3 days ago|");
    }
}
