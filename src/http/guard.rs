//! The bearer guard, the seed's `require_oauth`: a protected route's bearer check (RFC 6750), then the
//! application's handler, or a refusal with a `WWW-Authenticate: Bearer` challenge.

use core::fmt;

use rand_core::CryptoRng;

use super::app::{Application, Authorized};
use super::context::Context;
use super::emit::Response;
use super::parse::Request;
use super::HttpConfig;
use crate::client::ClientRegistry;
use crate::grant::GrantStore;
use crate::provider::BearerError;
use crate::scope::{ScopeRegistry, ScopeSet};

/// A `WWW-Authenticate: Bearer` value.
struct Challenge<'p> {
    scopes: &'p ScopeRegistry,
    realm: &'p str,
    err: BearerError,
    required: ScopeSet,
}

impl fmt::Display for Challenge<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.err.write_challenge(self.realm, self.required, self.scopes, f)
    }
}

/// Checks the request's bearer token for `required` and hands it to [`Application::resource`].
pub(crate) fn bearer<C, G, const F: usize, const S: usize, A, R>(
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
            let challenge = Challenge { scopes: provider.scopes(), realm: cfg.realm, err, required };
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
