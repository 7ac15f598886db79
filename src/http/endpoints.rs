//! The sans-IO request handler: framing, routing, the OAuth endpoints, metadata and the bearer guard.

use core::fmt;
use core::net::SocketAddr;

use rand_core::CryptoRng;
use serde::{Serialize, Serializer};

use super::app::{Application, Authorized, LogEntry};
use super::request::{frame, Frame, Request, MAX_HEADERS};
use super::response::{Connection, Response};
use super::{page, HttpConfig};
use crate::client::ClientRegistry;
use crate::error::{ErrorCode, OAuthError};
use crate::form::Form;
use crate::grant::GrantStore;
use crate::provider::{BearerError, Provider};
use crate::request::{
    parse_basic, BasicCredentials, DeviceAuthorizationRequest, TokenQuery, TokenRequest, DEVICE_CODE_GRANT,
    REFRESH_TOKEN_GRANT,
};
use crate::scope::ScopeSet;

/// Most parameters in an OAuth request body (more is `invalid_request`).
const MAX_FORM_PARAMS: usize = 16;
/// Room for a decoded `Authorization: Basic` value.
const BASIC_SCRATCH: usize = 192;

/// Everything a request needs besides its bytes. Build one per call of [`handle`] (typically under
/// the lock that guards the provider); it borrows, it owns nothing.
pub struct Context<'a, C, G, const F: usize, const S: usize, A: ?Sized, R: ?Sized> {
    /// The authorization server state.
    pub provider: &'a mut Provider<C, G, F, S>,
    /// The application: users, protected routes, other routes, logging.
    pub app: &'a mut A,
    /// The RNG for codes.
    pub rng: &'a mut R,
    /// The current time, in the provider's seconds.
    pub now: u64,
    /// The peer, if known (shown to the application and in logs).
    pub peer: Option<SocketAddr>,
}

/// What [`handle`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// The input does not hold a whole request yet: read more and call again with all the bytes.
    /// Nothing was consumed or written.
    NeedMore,
    /// The first request was answered.
    Respond(Served),
}

/// An answered request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Served {
    /// Input bytes used by the request; the rest (pipelined requests) is for the next call.
    pub consumed: usize,
    /// Bytes of response at the start of the output buffer (0 only if the buffer cannot even hold a
    /// bare 500).
    pub written: usize,
    /// False when the connection must close once the response is sent.
    pub keep_alive: bool,
    /// The status sent.
    pub status: u16,
}

/// Answers the first request in `input` (see the [module docs](super) for the rules and an example).
///
/// `input` holds the bytes received so far: a partial request, one request, or several pipelined ones.
/// The request's body is decoded in place, so `input` is modified; after [`Outcome::Respond`] drop the
/// first `consumed` bytes and keep the rest. `output` should have at least [`super::MIN_OUTPUT_LEN`]
/// bytes; a response that does not fit is replaced by a bare 500 and the connection closes.
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
    let (head_len, body_len) = match frame(cfg, input) {
        Frame::Incomplete => return Outcome::NeedMore,
        Frame::Request { head, body } => (head, body),
        Frame::Reject(r) => {
            let mut res = Response::new(output);
            res.set_status(r.status()).header("Content-Type", "text/plain; charset=utf-8").body(r.message().as_bytes());
            let (written, _) = finish(&mut res, Connection::Close);
            let status = res.status();
            cx.app.on_response(&LogEntry { method: "", path: "", status, peer: cx.peer });
            return Outcome::Respond(Served { consumed: input.len(), written, keep_alive: false, status });
        }
    };
    let consumed = head_len.saturating_add(body_len);
    let (head, rest) = input.split_at_mut_checked(head_len).unwrap_or_default();
    let body = rest.get_mut(..body_len).unwrap_or_default();
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut parsed = httparse::Request::new(&mut headers);
    let complete = matches!(parsed.parse(head), Ok(httparse::Status::Complete(_)));
    let httparse::Request { method, path: target, version, headers } = parsed;
    let (path, query) = Request::split_target(target.unwrap_or_default());
    let req = Request {
        method: method.unwrap_or_default(),
        path,
        query,
        minor: version.unwrap_or(0),
        headers: &*headers,
        body: &[],
        peer: cx.peer,
    };

    let mut res = Response::new(output);
    let connection = if !complete {
        // `frame` accepted these bytes, so this cannot happen; answer it like any malformed request.
        res.set_status(400).header("Content-Type", "text/plain; charset=utf-8").body(b"Bad request\n");
        Connection::Close
    } else {
        route(cfg, cx, &req, body, &mut res);
        match (req.keep_alive(), req.minor) {
            (false, _) => Connection::Close,
            (true, 0) => Connection::KeepAlive,
            (true, _) => Connection::Default,
        }
    };
    let (written, keep_alive) = finish(&mut res, connection);
    let status = res.status();
    cx.app.on_response(&LogEntry { method: req.method, path: req.path, status, peer: cx.peer });
    Outcome::Respond(Served { consumed, written, keep_alive, status })
}

/// Finishes a response, or replaces it with a bare 500 that closes the connection.
fn finish(res: &mut Response<'_>, connection: Connection) -> (usize, bool) {
    if let Some(n) = res.finish(connection) {
        return (n, connection != Connection::Close && !res.closing());
    }
    res.reset(500);
    res.close_connection();
    (res.finish(Connection::Close).unwrap_or(0), false)
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
    let endpoint = if path == cfg.device_authorization_path {
        Some(Endpoint::DeviceAuthorization)
    } else if path == cfg.token_path {
        Some(Endpoint::Token)
    } else if path == cfg.introspection_path {
        Some(Endpoint::Introspection)
    } else if path == cfg.revocation_path {
        Some(Endpoint::Revocation)
    } else {
        None
    };
    if let Some(endpoint) = endpoint {
        oauth_endpoint(cfg, cx, req, body, res, endpoint);
    } else if path == cfg.metadata_path {
        if req.method == "GET" {
            metadata(cfg, cx.provider, res);
        } else {
            method_not_allowed(res, "GET");
        }
    } else if path == cfg.activate_path {
        page::activate(cfg, cx, req, body, res);
    } else if let Some(required) = cx.app.protected(req.method, path, cx.provider.scopes()) {
        bearer_guard(cfg, cx, &Request { body: &*body, ..*req }, required, res);
    } else {
        cx.app.route(&Request { body: &*body, ..*req }, res);
    }
}

/// 405 with `Allow`.
pub(crate) fn method_not_allowed(res: &mut Response<'_>, allow: &str) {
    res.set_status(405)
        .header("Allow", allow)
        .header("Content-Type", "text/plain; charset=utf-8")
        .body(b"Method not allowed\n");
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Endpoint {
    DeviceAuthorization,
    Token,
    Introspection,
    Revocation,
}

/// Writes an OAuth error as JSON with its status (and the Basic challenge on 401).
fn oauth_error(cfg: &HttpConfig, res: &mut Response<'_>, e: &OAuthError) {
    oauth_error_with_status(cfg, res, e, e.http_status());
}

fn oauth_error_with_status(cfg: &HttpConfig, res: &mut Response<'_>, e: &OAuthError, status: u16) {
    res.set_status(status);
    if status == 401 {
        res.header_fmt("WWW-Authenticate", format_args!("Basic realm=\"{}\"", cfg.realm));
    }
    res.header("Content-Type", "application/json").body_with(|out| e.write_json(out));
}

fn oauth_endpoint<C, G, const F: usize, const S: usize, A, R>(
    cfg: &HttpConfig,
    cx: &mut Context<'_, C, G, F, S, A, R>,
    req: &Request<'_>,
    body: &mut [u8],
    res: &mut Response<'_>,
    endpoint: Endpoint,
) where
    C: ClientRegistry,
    G: GrantStore,
    A: Application + ?Sized,
    R: CryptoRng + ?Sized,
{
    if req.method != "POST" {
        return method_not_allowed(res, "POST");
    }
    res.header("Cache-Control", "no-store").header("Pragma", "no-cache");
    if !req.is_form() {
        let e = OAuthError::new(ErrorCode::InvalidRequest, "Content-Type must be application/x-www-form-urlencoded");
        return oauth_error_with_status(cfg, res, &e, 415);
    }
    let Ok(authorization) = req.unique_header("authorization") else {
        let e = OAuthError::new(ErrorCode::InvalidRequest, "Authorization header repeated or malformed");
        return oauth_error(cfg, res, &e);
    };
    let mut scratch = [0u8; BASIC_SCRATCH];
    let basic: Option<BasicCredentials<'_>> = match authorization.map(|h| parse_basic(h, &mut scratch)) {
        None => None,
        Some(Ok(b)) => b,
        Some(Err(e)) => return oauth_error(cfg, res, &e),
    };
    let form = match Form::<MAX_FORM_PARAMS>::parse(body) {
        Ok(f) => f,
        Err(e) => return oauth_error(cfg, res, &e.into()),
    };
    let provider = &mut *cx.provider;
    let result = match endpoint {
        Endpoint::DeviceAuthorization => DeviceAuthorizationRequest::from_form(&form, basic)
            .and_then(|r| provider.device_authorization(cx.now, &r, cx.rng))
            .map(|auth| {
                res.header("Content-Type", "application/json").body_with(|out| auth.write_json(provider.config(), out));
            }),
        Endpoint::Token => {
            TokenRequest::from_form(&form, basic).and_then(|r| provider.token(cx.now, &r)).map(|tokens| {
                res.header("Content-Type", "application/json")
                    .body_with(|out| tokens.write_json(provider.scopes(), out));
            })
        }
        Endpoint::Introspection => {
            TokenQuery::from_form(&form, basic).and_then(|q| provider.introspect(cx.now, &q)).map(|result| {
                res.header("Content-Type", "application/json")
                    .body_with(|out| result.write_json(provider.scopes(), provider.clients(), out));
            })
        }
        Endpoint::Revocation => TokenQuery::from_form(&form, basic).and_then(|q| provider.revoke(&q)),
    };
    if let Err(e) = result {
        oauth_error(cfg, res, &e);
    }
}

/// An endpoint URL: the issuer followed by a path.
struct Url<'a>(&'a str, &'a str);

impl fmt::Display for Url<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.0.trim_end_matches('/'))?;
        f.write_str(self.1)
    }
}

impl Serialize for Url<'_> {
    fn serialize<Ser: Serializer>(&self, s: Ser) -> Result<Ser::Ok, Ser::Error> {
        s.collect_str(self)
    }
}

/// Authorization server metadata (RFC 8414 §2, RFC 8628 §4).
#[derive(Serialize)]
struct Metadata<'a> {
    issuer: &'a str,
    device_authorization_endpoint: Url<'a>,
    token_endpoint: Url<'a>,
    introspection_endpoint: Url<'a>,
    revocation_endpoint: Url<'a>,
    grant_types_supported: &'a [&'a str],
    response_types_supported: &'a [&'a str],
    token_endpoint_auth_methods_supported: &'a [&'a str],
    revocation_endpoint_auth_methods_supported: &'a [&'a str],
    introspection_endpoint_auth_methods_supported: &'a [&'a str],
    scopes_supported: &'a [&'a str],
}

const ALL_AUTH_METHODS: &[&str] = &["none", "client_secret_basic", "client_secret_post"];

fn metadata<C: ClientRegistry, G: GrantStore, const F: usize, const S: usize>(
    cfg: &HttpConfig,
    provider: &Provider<C, G, F, S>,
    res: &mut Response<'_>,
) {
    let doc = Metadata {
        issuer: cfg.issuer,
        device_authorization_endpoint: Url(cfg.issuer, cfg.device_authorization_path),
        token_endpoint: Url(cfg.issuer, cfg.token_path),
        introspection_endpoint: Url(cfg.issuer, cfg.introspection_path),
        revocation_endpoint: Url(cfg.issuer, cfg.revocation_path),
        grant_types_supported: &[DEVICE_CODE_GRANT, REFRESH_TOKEN_GRANT],
        response_types_supported: &[],
        token_endpoint_auth_methods_supported: ALL_AUTH_METHODS,
        revocation_endpoint_auth_methods_supported: ALL_AUTH_METHODS,
        // Introspection is for confidential clients only (public clients get `invalid_client`).
        introspection_endpoint_auth_methods_supported: &["client_secret_basic", "client_secret_post"],
        scopes_supported: provider.scopes().names(),
    };
    res.header("Content-Type", "application/json")
        .body_with(|out| serde_json_core::to_slice(&doc, out).map_err(|_| crate::BufferTooSmall));
}

/// A `WWW-Authenticate: Bearer` value.
struct Challenge<'p, C, G, const F: usize, const S: usize> {
    provider: &'p Provider<C, G, F, S>,
    realm: &'p str,
    err: BearerError,
    required: ScopeSet,
}

impl<C: ClientRegistry, G: GrantStore, const F: usize, const S: usize> fmt::Display for Challenge<'_, C, G, F, S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.err.write_challenge(self.realm, self.required, self.provider.scopes(), f)
    }
}

/// The seed's `require_oauth`: a bearer check (RFC 6750), then the application's handler.
fn bearer_guard<C, G, const F: usize, const S: usize, A, R>(
    cfg: &HttpConfig,
    cx: &mut Context<'_, C, G, F, S, A, R>,
    req: &Request<'_>,
    required: ScopeSet,
    res: &mut Response<'_>,
) where
    C: ClientRegistry,
    G: GrantStore,
    A: Application + ?Sized,
    R: CryptoRng + ?Sized,
{
    let provider = &*cx.provider;
    let checked = match req.unique_header("authorization") {
        Ok(authorization) => provider.check_bearer(cx.now, authorization, required),
        Err(()) => Err(BearerError::Malformed),
    };
    match checked {
        Ok(token) => {
            let auth = Authorized { token, client: provider.client(token.client), scopes: provider.scopes() };
            cx.app.resource(req, &auth, res);
        }
        Err(err) => {
            let challenge = Challenge { provider, realm: cfg.realm, err, required };
            res.set_status(err.http_status()).header_fmt("WWW-Authenticate", format_args!("{challenge}"));
            match err.oauth_error() {
                Some(e) => {
                    res.header("Content-Type", "application/json").body_with(|out| e.write_json(out));
                }
                None => {
                    res.header("Content-Type", "text/plain; charset=utf-8").body(b"Bearer token required\n");
                }
            }
        }
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

    /// The one-parse path (head ending in CRLF CRLF) and the framing path (bare LF) answer alike, and
    /// pipelined or partial input is consumed the same way.
    #[test]
    fn heads_parsed_once_or_framed_answer_alike() {
        static SCOPES: &[&str] = &["profile"];
        let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(1);
        let mut clients = FixedClients::<2>::new();
        clients.add(Client::public("tv", "TV").unwrap()).unwrap();
        let mut provider: Provider<FixedClients<2>, FixedGrants<8>, 8, 8> = Provider::new(
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
