//! The sans-IO request handler: one framed request in, one response out, routed to the endpoints, the
//! page, the bearer guard or the application.

use rand_core::CryptoRng;

use super::app::{Application, LogEntry};
use super::context::{Context, Outcome, Served};
use super::emit::{Connection, Response};
use super::parse::{self, Framed, Request};
#[cfg(feature = "page")]
use super::{devices, page};
use super::{endpoints, guard, status, HttpConfig};
use crate::client::ClientRegistry;
use crate::grant::GrantStore;

/// Answers the first request in `input` (see the [module docs](super) for the rules and an example).
///
/// `input` holds the bytes received so far: a partial request, one request, or several pipelined ones.
/// The request's body is decoded in place, so `input` is modified; after [`Outcome::Respond`] drop the
/// first `consumed` bytes and keep the rest. `output` should have at least [`super::MIN_OUTPUT_LEN`]
/// bytes; a response that does not fit is replaced by a bare 500 and the connection closes. The
/// response is `output[served.range()]`.
pub fn handle<C, G, const F: usize, const S: usize, A, R>(
    cfg: &HttpConfig,
    cx: &mut Context<'_, C, G, F, S, A, R>,
    input: &mut [u8],
    output: &mut [u8],
) -> Outcome
where
    C: ClientRegistry,
    G: GrantStore,
    A: Application + ?Sized,
    R: CryptoRng + ?Sized,
{
    let mut headers = parse::headers();
    match parse::read_request(cfg, input, &mut headers) {
        Framed::Incomplete { .. } => Outcome::NeedMore,
        framed => Outcome::Respond(answer(cfg, cx, framed, output)),
    }
}

/// Answers a request framed and parsed by [`parse::read_request`] (what the drivers hand their
/// handler): the request is not parsed again. An incomplete frame is answered with nothing.
pub fn answer<C, G, const F: usize, const S: usize, A, R>(
    cfg: &HttpConfig,
    cx: &mut Context<'_, C, G, F, S, A, R>,
    framed: Framed<'_>,
    output: &mut [u8],
) -> Served
where
    C: ClientRegistry,
    G: GrantStore,
    A: Application + ?Sized,
    R: CryptoRng + ?Sized,
{
    let (request, body, consumed) = match framed {
        Framed::Request { request, body, consumed } => (request, body, consumed),
        Framed::Reject { reject, consumed } => {
            let mut res = Response::new(output);
            res.set_status(reject.status())
                .header("Content-Type", "text/plain; charset=utf-8")
                .body(reject.message().as_bytes());
            let (start, written, _) = finish(&mut res, Connection::Close);
            let status = res.status();
            cx.app.on_response(&LogEntry { method: "", path: "", status, peer: cx.peer });
            return Served { consumed, start, written, keep_alive: false, status };
        }
        Framed::Incomplete { .. } => {
            return Served { consumed: 0, start: 0, written: 0, keep_alive: true, status: 0 };
        }
    };
    // HEAD is answered as GET on every route, the application's included, and the body is then left
    // out: same status and headers, `Content-Length` of the GET body (RFC 9110 §9.3.2), so whatever
    // is pipelined after it is read intact.
    let head = req_is_head(&request);
    let method = if head { "GET" } else { request.method };
    let req = Request { peer: cx.peer, method, ..request };
    let mut res = Response::new(output);
    route(cfg, cx, &req, body, &mut res);
    let connection = match (req.keep_alive(), req.minor) {
        (false, _) => Connection::Close,
        (true, 0) => Connection::KeepAlive,
        (true, _) => Connection::Default,
    };
    let (start, mut written, keep_alive) = finish(&mut res, connection);
    if head {
        written = written.saturating_sub(res.body_len());
    }
    let status = res.status();
    cx.app.on_response(&LogEntry { method: request.method, path: req.path, status, peer: cx.peer });
    Served { consumed, start, written, keep_alive, status }
}

fn req_is_head(req: &Request<'_>) -> bool {
    req.method == "HEAD"
}

/// Finishes a response, or replaces it with a bare 500 that closes the connection. Returns where the
/// response is, its length and whether the connection stays open.
fn finish(res: &mut Response<'_>, connection: Connection) -> (usize, usize, bool) {
    if let Some((start, end)) = res.finish(connection) {
        return (start, end - start, connection != Connection::Close && !res.closing());
    }
    res.reset(status::OVERFLOW);
    res.close_connection();
    let (start, end) = res.finish(Connection::Close).unwrap_or((0, 0));
    (start, end - start, false)
}

fn route<C, G, const F: usize, const S: usize, A, R>(
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
    let path = req.path;
    if let Some(endpoint) = endpoints::Endpoint::of(cfg, path) {
        endpoints::oauth(cfg, cx, req, body, res, endpoint);
    } else if path == cfg.metadata_path {
        if req.method == "GET" {
            endpoints::metadata(cfg, cx.provider, res);
        } else {
            status::method_not_allowed(res, "GET, HEAD");
        }
    } else if cfg!(feature = "page") && (path == cfg.activate_path || path == cfg.devices_path) {
        #[cfg(feature = "page")]
        if path == cfg.activate_path {
            page::activate(cfg, cx, req, body, res);
        } else {
            devices::devices(cfg, cx, req, body, res);
        }
    } else if let Some(required) = cx.app.protected(req.method, path, cx.provider.scopes()) {
        guard::bearer(cfg, cx, &Request { body: &*body, ..*req }, required, res);
    } else {
        cx.app.route(&Request { body: &*body, ..*req }, res);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::prelude::*;
    use rand_core::SeedableRng;

    struct NoUsers;
    impl Application for NoUsers {
        fn user(&mut self, _req: &Request<'_>) -> Option<super::super::User> {
            None
        }
    }

    /// CRLF and bare-LF heads answer alike, and pipelined or partial input is consumed the same way.
    #[test]
    fn heads_with_crlf_or_lf_answer_alike() {
        static SCOPES: &[&str] = &["profile"];
        let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(1);
        let mut clients = FixedClients::<2>::new();
        clients.add(Client::public("tv", "TV").unwrap()).unwrap();
        let mut provider: Provider<FixedClients<2>, FixedGrants<8>, 8, 8> = Provider::build(
            Config::new("http://gw.local/activate"),
            ServerKey::new(1, &[7; 32]),
            ScopeRegistry::new(SCOPES).unwrap(),
            clients,
            FixedGrants::new(),
            &mut rng,
        )
        .unwrap();
        let cfg = HttpConfig::new("http://gw.local");
        let mut serve = |raw: &str| {
            let mut input = raw.as_bytes().to_vec();
            let mut output = [0u8; 2048];
            let mut cx = Context { provider: &mut provider, app: &mut NoUsers, rng: &mut rng, now: 100, peer: None };
            match handle(&cfg, &mut cx, &mut input, &mut output) {
                Outcome::NeedMore => None,
                Outcome::Respond(s) => Some((s.status, s.consumed, s.keep_alive)),
            }
        };
        let body = "client_id=tv&scope=profile";
        let crlf = format!(
            "POST /oauth/device HTTP/1.1\r\nHost: a\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        );
        let lf = crlf.replace("\r\n", "\n");
        assert_eq!(serve(&crlf), Some((200, crlf.len(), true)));
        assert_eq!(serve(&lf), Some((200, lf.len(), true)));
        assert_eq!(serve(&format!("{crlf}GET / HT")), Some((200, crlf.len(), true)));
        assert_eq!(serve(&crlf[..crlf.len() - 3]), None);
        assert_eq!(serve("GET / HTTP/1.1\r\n"), None);
        let no_host = "GET / HTTP/1.1\r\n\r\n";
        assert_eq!(serve(no_host), Some((400, no_host.len(), false)));
        let too_long = "POST /oauth/device HTTP/1.1\r\nHost: a\r\nContent-Length: 5000\r\n\r\n";
        assert_eq!(serve(too_long), Some((413, too_long.len(), false)));
        let bad = "GET / HTTP/1.1\r\nBad Header\r\n\r\n";
        assert_eq!(serve(bad), Some((400, bad.len(), false)));
    }
}
