//! The HTTP/1.1 binding (feature `http`): the endpoints of a device authorization server, the
//! verification page, and a bearer guard for the application's own routes, over any byte stream.
//!
//! # Layers
//! 1. **Sans-IO core**: [`handle`] takes one buffer of received bytes (a partial request, one request,
//!    or several pipelined ones) and an output buffer, and answers the first request: it returns how
//!    many input bytes it consumed, where in the output it wrote the response and whether the
//!    connection stays open, or that it needs more bytes ([`Outcome`]). It reads no clock and owns
//!    nothing: the caller passes `now`, the RNG, `&mut Provider` and the [`Application`] in a
//!    [`Context`], so a real server keeps one provider for all its connections behind whatever lock it
//!    has, and holds the lock only for the microseconds a request takes, never across I/O.
//! 2. **Drivers**: [`serve`] over blocking [`embedded_io`] streams and [`serve_async`] over
//!    [`embedded_io_async`] ones. They own no buffers either: the caller hands them an input buffer of
//!    at least [`HttpConfig::input_buffer_len`] bytes, an output buffer (see [`MIN_OUTPUT_LEN`]) and a
//!    closure that calls [`answer`] under its lock with the request the driver framed and parsed.
//!    [`serve_timed`] and [`serve_timed_async`] also keep the connection policy of [`conn`] (idle,
//!    head, write and drain deadlines on a monotonic [`conn::Clock`]) over a [`conn::Transport`] that
//!    reads and writes with a timeout (`http::tcp::Tcp` on std, feature `std`).
//! 3. **Connections**: [`pool::Pool`] decides which connections are served at all: a fixed number of
//!    slots, a cap per peer, and idle keep-alive connections closed to admit new ones before any is
//!    refused. The policy, its defaults and how to size it are documented in [`conn`] and [`pool`].
//!
//! One request, bytes in to bytes out: `parse` finds the end of the head and parses it once
//! ([`read_request`]); `server` routes it to `endpoints` (OAuth), `page` (verification), `guard` (bearer
//! check, then the application) or the [`Application`]; `emit` writes the response after a reserved
//! prefix and puts the status line in front at the end, so nothing is moved; every status the binding
//! decides itself is in [`status`].
//!
//! Why this shape: a gateway may run one connection at a time on a single task, or many on an executor,
//! or on threads (the `gateway` example); only the caller knows its locking, its clock and its buffers.
//! The core never allocates, never panics on input, and keeps its own stack use to a header array
//! (32 entries) and a few small scratch buffers.
//!
//! # Endpoints (paths configurable in [`HttpConfig`])
//! | method | default path | what |
//! |---|---|---|
//! | POST | `/oauth/device` | device authorization (RFC 8628 §3.1) |
//! | POST | `/oauth/token` | `device_code` and `refresh_token` grants (RFC 8628 §3.4, RFC 6749 §6) |
//! | GET, POST | `/activate` | the verification page (below) |
//! | GET | `/.well-known/oauth-authorization-server` | metadata (RFC 8414) |
//! | POST | `/oauth/introspect` | introspection (RFC 7662) |
//! | POST | `/oauth/revoke` | revocation (RFC 7009): 200 with an empty body |
//! | any | other | [`Application::protected`] routes behind a bearer check (RFC 6750), then [`Application::route`] |
//!
//! Client authentication is HTTP Basic (`client_secret_basic`, via [`crate::request::parse_basic`]) or
//! the body; OAuth errors are JSON with the status of [`crate::OAuthError::http_status`], and a 401
//! carries `WWW-Authenticate: Basic realm="…"`. Responses that carry codes or tokens have
//! `Cache-Control: no-store` and `Pragma: no-cache`.
//!
//! # HTTP rules
//! - The request line and headers together must fit in [`HttpConfig::max_head`] bytes (else 431, or 414
//!   when even the request line does not end), with at most 32 header lines (else 431).
//! - A body is read by its `Content-Length` only (a POST without one has an empty body, RFC 9112 §6.3), at most [`HttpConfig::max_body`] bytes (413);
//!   `Transfer-Encoding` is not implemented (501). HTTP/1.1 requests need exactly one `Host` (400).
//! - OAuth endpoints and the page's POST need `Content-Type: application/x-www-form-urlencoded`; the media
//!   type is compared case-insensitively and parameters such as `; charset=UTF-8` are ignored (415
//!   otherwise). Malformed or repeated form parameters are 400 `invalid_request`.
//! - Wrong method: 405 with `Allow`. Unknown path: whatever the application answers (404 by default).
//! - Connections are persistent for HTTP/1.1 unless `Connection: close`, and close for HTTP/1.0 unless
//!   `Connection: keep-alive`. Any framing error (400, 413, 414, 417, 431, 501) closes the connection
//!   after the response, since the rest of the stream can no longer be trusted.
//! - `HEAD` is answered on every route, the application's included, as `GET` without the body: the
//!   same status and headers, `Content-Length` of the `GET` body (RFC 9110 §9.3.2), so a request
//!   pipelined after it is read intact. The [`Application`] sees `GET`; the log entry says `HEAD`.
//! - `Expect: 100-continue` (RFC 9110 §10.1.1): the drivers send `100 Continue` once the head is
//!   accepted and before the body is read; a request that will not be read gets its final status at
//!   once instead (413 for a body over `max_body`), and any other expectation is 417. HTTP/1.0
//!   requests' `Expect` is ignored. The sans-IO [`handle`] sends no interim response: its caller
//!   answers `100 Continue` itself when [`Framed::Incomplete`] says `expects_continue`.
//!
//! # The verification page
//! `GET /activate` asks the signed-in user for the code; `GET /activate?user_code=XXXX-XXXX` (the
//! `verification_uri_complete`) shows which client asks for which scopes and asks only for confirmation;
//! `POST /activate` approves or denies. Who is signed in is the application's business
//! ([`Application::user`]); without a user the page answers 401 with a Basic challenge. The form carries an
//! anti-CSRF field, `base64url(Provider::csrf_tag("user:<id>"))`, checked on POST (403 on mismatch); wrong
//! user codes are charged to the same `user:<id>` source in the provider's guess budgets. The page echoes
//! nothing from the request except a normalised user code; everything else it shows (client name, scope
//! names, user name) is HTML-escaped. Stable element ids for tests and scripts: the `user_code` input,
//! `continue`, `approve` and `deny` buttons, `client` (the client's name), `scopes` (the list) and
//! `message` (the outcome: "Device approved", "Request denied", "Invalid code", "Code expired",
//! "Code already used", "Too many attempts").
//!
//! # Example: one request through the sans-IO core
//! ```
//! use oauth2_devices::http::{self, Application, Context, HttpConfig, Outcome, Request, User};
//! use oauth2_devices::prelude::*;
//! use rand_core::SeedableRng;
//!
//! struct NoUsers;
//! impl Application for NoUsers {
//!     fn user(&mut self, _req: &Request<'_>) -> Option<User> {
//!         None
//!     }
//! }
//!
//! static SCOPES: &[&str] = &["profile"];
//! let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(1);
//! let mut clients = FixedClients::<2>::new();
//! clients.add(Client::public("tv", "Living-room TV").unwrap()).unwrap();
//! let mut provider: Provider<FixedClients<2>, FixedGrants<8>, 8, 8> = Provider::build(
//!     Config::new("http://gw.local/activate"),
//!     ServerKey::new(1, &[7; 32]),
//!     ScopeRegistry::new(SCOPES).unwrap(),
//!     clients,
//!     FixedGrants::new(),
//!     &mut rng,
//! )
//! .unwrap();
//! let config = HttpConfig::new("http://gw.local");
//!
//! // Bytes as they came off the wire: one complete request and the start of a second.
//! let mut input = *b"POST /oauth/device HTTP/1.1\r\nHost: gw.local\r\n\
//!     Content-Type: application/x-www-form-urlencoded\r\nContent-Length: 26\r\n\r\n\
//!     client_id=tv&scope=profilePOST /oau";
//! let mut output = [0u8; 2048];
//! let mut cx = Context { provider: &mut provider, app: &mut NoUsers, rng: &mut rng, now: 100, peer: None };
//! let Outcome::Respond(served) = http::handle(&config, &mut cx, &mut input, &mut output) else {
//!     panic!("a whole request was there")
//! };
//! assert_eq!(served.status, 200);
//! assert!(served.keep_alive);
//! let response = core::str::from_utf8(&output[served.range()]).unwrap();
//! assert!(response.starts_with("HTTP/1.1 200 OK\r\n"));
//! assert!(response.contains("Cache-Control: no-store\r\n"));
//! assert!(response.contains("\"user_code\":\""));
//!
//! // The caller drops the consumed bytes; what is left is not a whole request yet.
//! let rest = &mut input[served.consumed..];
//! assert_eq!(rest, b"POST /oau");
//! assert!(matches!(http::handle(&config, &mut cx, rest, &mut output), Outcome::NeedMore));
//! ```

mod app;
pub mod conn;
mod context;
#[cfg(feature = "page")]
mod devices;
mod driver;
mod emit;
mod endpoints;
mod guard;
#[cfg(feature = "page")]
mod html;
#[cfg(feature = "page")]
mod page;
mod parse;
pub mod pool;
mod server;
mod signin;
pub mod status;
#[cfg(feature = "std")]
pub mod tcp;

pub use app::{Application, Authorized, LogEntry, User, MAX_USER_NAME_LEN};
pub use context::{Context, Outcome, Served};
pub use driver::{serve, serve_async, serve_timed, serve_timed_async, ServeError, Timing};
pub use emit::{Response, PREFIX_ROOM};
pub use parse::{frame, headers, read_request, Frame, Framed, Headers, Reject, Request, MAX_HEADERS};
pub use server::{answer, handle};
pub use signin::{StaticUser, StaticUsers};

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;

/// The smallest output buffer [`handle`] is designed for: the verification page, the metadata document
/// and every JSON response fit in it (the page is the largest, under 3 KiB with long names).
pub const MIN_OUTPUT_LEN: usize = 4096;

/// Paths, limits and names of the HTTP binding.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HttpConfig<'a> {
    /// The issuer identifier (RFC 8414 §2): the base URL of this server, such as
    /// `http://192.168.1.10:8080`, without a trailing slash. Endpoint URLs in the metadata are this plus
    /// their path; the provider's `verification_uri` should be this plus [`HttpConfig::activate_path`].
    /// Borrowed, so a board that learns its address at run time (DHCP) keeps it in a buffer of its
    /// own and builds the configuration then.
    pub issuer: &'a str,
    /// The realm of `WWW-Authenticate` challenges.
    pub realm: &'static str,
    /// Device authorization endpoint (RFC 8628 §3.1).
    pub device_authorization_path: &'static str,
    /// Token endpoint.
    pub token_path: &'static str,
    /// The verification page.
    pub activate_path: &'static str,
    /// The connected-devices page (see the `devices` module docs).
    pub devices_path: &'static str,
    /// The authorization server metadata document (RFC 8414 §3).
    pub metadata_path: &'static str,
    /// Introspection endpoint (RFC 7662).
    pub introspection_path: &'static str,
    /// Revocation endpoint (RFC 7009).
    pub revocation_path: &'static str,
    /// Most bytes of request line and headers, blank line included (431 above).
    pub max_head: usize,
    /// Most bytes of a request body (413 above).
    pub max_body: usize,
    /// The heading and title of the verification page.
    pub page_title: &'static str,
    /// A line at the foot of every page, for what the user must know about this server, such as
    /// "This connection is not encrypted" on a gateway serving plain HTTP off loopback.
    pub notice: Option<&'static str>,
    /// `Strict-Transport-Security: max-age=…` (RFC 6797) on the pages, for a server reached over HTTPS
    /// under a certificate of its own name. Leave it `None` on `localhost` and with development
    /// certificates: a browser applies it to every port of the host name.
    pub hsts_max_age: Option<u32>,
}

impl<'a> HttpConfig<'a> {
    /// The default paths and limits (2 KiB of headers, 1 KiB of body) for an issuer URL.
    pub const fn new(issuer: &'a str) -> Self {
        Self {
            issuer,
            realm: "oauth2-devices",
            device_authorization_path: "/oauth/device",
            token_path: "/oauth/token",
            activate_path: "/activate",
            devices_path: "/devices",
            metadata_path: "/.well-known/oauth-authorization-server",
            introspection_path: "/oauth/introspect",
            revocation_path: "/oauth/revoke",
            max_head: 2048,
            max_body: 1024,
            page_title: "Connect a device",
            notice: None,
            hsts_max_age: None,
        }
    }

    /// The input buffer a driver needs: one whole request, `max_head + max_body` bytes.
    pub const fn input_buffer_len(&self) -> usize {
        self.max_head.saturating_add(self.max_body)
    }
}

/// Decodes an HTTP Basic `Authorization` value (RFC 7617) into user-id and password, using `scratch` for
/// the decoded bytes. For signing users in on the verification page; clients authenticate with
/// [`crate::request::parse_basic`], which also undoes the form-encoding RFC 6749 §2.3.1 adds.
///
/// ```
/// let mut scratch = [0u8; 64];
/// let creds = oauth2_devices::http::basic_auth("Basic YWxpY2U6d29uZGVybGFuZA==", &mut scratch);
/// assert_eq!(creds, Some(("alice", "wonderland")));
/// ```
pub fn basic_auth<'s>(value: &str, scratch: &'s mut [u8]) -> Option<(&'s str, &'s str)> {
    let value = value.trim_matches(' ');
    let (scheme, rest) = value.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let n = STANDARD.decode_slice(rest.trim_matches(' '), &mut *scratch).ok()?;
    core::str::from_utf8(scratch.get(..n)?).ok()?.split_once(':')
}
