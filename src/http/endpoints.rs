//! The OAuth endpoints (device authorization, token, introspection, revocation) and the RFC 8414
//! metadata document.

use core::fmt;

use rand_core::CryptoRng;
use serde::{Serialize, Serializer};

use super::app::Application;
use super::context::Context;
use super::emit::Response;
use super::parse::Request;
use super::{status, HttpConfig};
use crate::client::ClientRegistry;
use crate::error::{ErrorCode, OAuthError};
use crate::form::Form;
use crate::grant::GrantStore;
use crate::provider::Provider;
use crate::request::{
    parse_basic, BasicCredentials, ClientCredentials, DeviceAuthorizationRequest, TokenQuery, TokenRequest,
    DEVICE_CODE_GRANT, REFRESH_TOKEN_GRANT,
};

/// Most parameters in an OAuth request body (more is `invalid_request`).
const MAX_FORM_PARAMS: usize = 16;
/// Room for a decoded `Authorization: Basic` value.
const BASIC_SCRATCH: usize = 192;

/// The OAuth endpoints (all `POST` with a form body).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Endpoint {
    DeviceAuthorization,
    Token,
    Introspection,
    Revocation,
}

impl Endpoint {
    /// The endpoint at `path`, if any.
    pub(crate) fn of(cfg: &HttpConfig, path: &str) -> Option<Self> {
        if path == cfg.device_authorization_path {
            Some(Self::DeviceAuthorization)
        } else if path == cfg.token_path {
            Some(Self::Token)
        } else if path == cfg.introspection_path {
            Some(Self::Introspection)
        } else if path == cfg.revocation_path {
            Some(Self::Revocation)
        } else {
            None
        }
    }
}

/// Writes an OAuth error as JSON with its status (and the Basic challenge on 401).
pub(crate) fn oauth_error(cfg: &HttpConfig, res: &mut Response<'_>, e: &OAuthError) {
    oauth_error_with_status(cfg, res, e, e.http_status());
}

fn oauth_error_with_status(cfg: &HttpConfig, res: &mut Response<'_>, e: &OAuthError, status: u16) {
    res.set_status(status);
    if let Some(seconds) = e.retry_after {
        res.header_fmt("Retry-After", format_args!("{seconds}"));
    }
    if status == 401 {
        res.header_fmt("WWW-Authenticate", format_args!("Basic realm=\"{}\"", cfg.realm));
    }
    res.header("Content-Type", "application/json").body_with(|out| e.write_json(out));
}

pub(crate) fn oauth<C, G, const F: usize, const S: usize, A, R>(
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
        return status::method_not_allowed(res, "POST");
    }
    res.header("Cache-Control", "no-store").header("Pragma", "no-cache");
    if !req.is_form() {
        let e = OAuthError::new(ErrorCode::InvalidRequest, "Content-Type must be application/x-www-form-urlencoded");
        return oauth_error_with_status(cfg, res, &e, status::UNSUPPORTED_MEDIA_TYPE);
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
    // Budgets and shares are charged to the peer address (see `crate::source`).
    let (source, n) = req.peer.map_or(([0; 8], 0), |p| crate::source::of_ip(p.ip()));
    let source = source.get(..n).unwrap_or_default();
    let result = match endpoint {
        Endpoint::DeviceAuthorization => DeviceAuthorizationRequest::from_form(&form, basic)
            .map(|r| DeviceAuthorizationRequest { client: ClientCredentials { source, ..r.client }, ..r })
            .and_then(|r| provider.device_authorization(cx.now, &r, cx.rng))
            .map(|auth| {
                res.header("Content-Type", "application/json").body_with(|out| auth.write_json(provider.config(), out));
            }),
        Endpoint::Token => {
            let request = TokenRequest::from_form(&form, basic)
                .map(|r| TokenRequest { client: ClientCredentials { source, ..r.client }, ..r });
            request.and_then(|r| provider.token(cx.now, &r)).map(|tokens| {
                res.header("Content-Type", "application/json")
                    .body_with(|out| tokens.write_json(provider.scopes(), out));
            })
        }
        Endpoint::Introspection => {
            let query = TokenQuery::from_form(&form, basic)
                .map(|q| TokenQuery { client: ClientCredentials { source, ..q.client }, ..q });
            query.and_then(|q| provider.introspect(cx.now, &q)).map(|result| {
                res.header("Content-Type", "application/json")
                    .body_with(|out| result.write_json(provider.scopes(), provider.clients(), out));
            })
        }
        Endpoint::Revocation => TokenQuery::from_form(&form, basic)
            .map(|q| TokenQuery { client: ClientCredentials { source, ..q.client }, ..q })
            .and_then(|q| provider.revoke(cx.now, &q)),
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

pub(crate) fn metadata<C: ClientRegistry, G: GrantStore, const F: usize, const S: usize>(
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
