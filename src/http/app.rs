//! What the application contributes: who is signed in, which routes need which scopes, and its own
//! responses.

use core::net::SocketAddr;

use super::{Request, Response};
use crate::client::Client;
use crate::provider::{TokenInfo, UserId};
use crate::scope::{ScopeRegistry, ScopeSet};

/// Longest user display name shown on the verification page.
pub const MAX_USER_NAME_LEN: usize = 48;

/// A user signed in on the verification page.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    /// The id carried in tokens (`sub`).
    pub id: UserId,
    /// The name shown on the page ("Signed in as …"); HTML-escaped when shown.
    pub name: heapless::String<MAX_USER_NAME_LEN>,
}

impl User {
    /// A user; a name longer than [`MAX_USER_NAME_LEN`] bytes is cut at a character boundary.
    pub fn new(id: UserId, name: &str) -> Self {
        let mut short = heapless::String::new();
        for c in name.chars() {
            if short.push(c).is_err() {
                break;
            }
        }
        Self { id, name: short }
    }
}

/// A request that passed the bearer check of a protected route.
#[derive(Debug, Clone, Copy)]
pub struct Authorized<'a> {
    /// What the access token grants.
    pub token: TokenInfo,
    /// The client it was issued to.
    pub client: Option<&'a Client>,
    /// The scope registry, to name `token.scopes`.
    pub scopes: &'a ScopeRegistry,
}

/// One answered request, for access logs. Carries no query, header, code or token.
#[derive(Debug, Clone, Copy)]
pub struct LogEntry<'a> {
    /// The method (empty if the request line could not be parsed).
    pub method: &'a str,
    /// The path, without the query (empty if the request line could not be parsed).
    pub path: &'a str,
    /// The status sent.
    pub status: u16,
    /// The peer, if known.
    pub peer: Option<SocketAddr>,
}

/// The application around the authorization server.
///
/// Only [`Application::user`] is required: how a person signs in on the verification page is the
/// application's business (a session cookie, HTTP Basic against a user table, a button on the device's
/// own display…). The other methods have defaults: no protected routes, 404 for unknown paths, no log.
pub trait Application {
    /// The user signed in on this request of the verification page, or `None` (the page then answers
    /// 401 with a Basic challenge). It sees the whole request: `Authorization`, `Cookie`, the peer.
    fn user(&mut self, req: &Request<'_>) -> Option<User>;

    /// The scopes a route needs, or `None` if it is not protected. A protected route is answered by
    /// [`Application::resource`] once [`crate::provider::Provider::check_bearer`] passed, and with 401,
    /// 400 or 403 and a `WWW-Authenticate: Bearer` challenge otherwise (RFC 6750 §3).
    fn protected(&self, method: &str, path: &str, scopes: &ScopeRegistry) -> Option<ScopeSet> {
        let _ = (method, path, scopes);
        None
    }

    /// Answers a protected route for a valid token. The response starts as an empty 200.
    fn resource(&mut self, req: &Request<'_>, auth: &Authorized<'_>, res: &mut Response<'_>) {
        let _ = auth;
        self.route(req, res);
    }

    /// Answers any path the server does not own. The response starts as an empty 200; the default is a
    /// plain-text 404.
    fn route(&mut self, req: &Request<'_>, res: &mut Response<'_>) {
        let _ = req;
        super::status::not_found(res);
    }

    /// Called once per response, for an access log.
    fn on_response(&mut self, entry: &LogEntry<'_>) {
        let _ = entry;
    }
}

impl<A: Application + ?Sized> Application for &mut A {
    fn user(&mut self, req: &Request<'_>) -> Option<User> {
        (**self).user(req)
    }
    fn protected(&self, method: &str, path: &str, scopes: &ScopeRegistry) -> Option<ScopeSet> {
        (**self).protected(method, path, scopes)
    }
    fn resource(&mut self, req: &Request<'_>, auth: &Authorized<'_>, res: &mut Response<'_>) {
        (**self).resource(req, auth, res)
    }
    fn route(&mut self, req: &Request<'_>, res: &mut Response<'_>) {
        (**self).route(req, res)
    }
    fn on_response(&mut self, entry: &LogEntry<'_>) {
        (**self).on_response(entry)
    }
}
