//! Typed requests: what the endpoints accept, parsed from a decoded [`Form`] and an `Authorization`
//! header. Once a request is one of these types it is well-formed; the provider only checks meaning.
//!
//! Client credentials (RFC 6749 §2.3) come from exactly one place: HTTP Basic (`client_secret_basic`,
//! id and secret form-urlencoded inside the base64), the body (`client_secret_post`), or `client_id`
//! alone (a public client, RFC 8628 §3.1). Using two methods at once is `invalid_request`.

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;

use crate::error::{ErrorCode, OAuthError};
use crate::form::{decode_in_place, Form};

/// The `grant_type` of the device flow (RFC 8628 §3.4).
pub const DEVICE_CODE_GRANT: &str = "urn:ietf:params:oauth:grant-type:device_code";
/// The `grant_type` of a refresh (RFC 6749 §6).
pub const REFRESH_TOKEN_GRANT: &str = "refresh_token";

/// Client credentials as presented (not yet checked).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientCredentials<'a> {
    /// The `client_id`.
    pub client_id: &'a str,
    /// The secret, if one was sent (HTTP Basic or `client_secret` in the body).
    pub secret: Option<&'a str>,
    /// Where the request comes from (the peer address, grouped: see [`crate::source`]), for the
    /// per-source budgets and shares; empty when the transport does not know.
    pub source: &'a [u8],
}

impl<'a> ClientCredentials<'a> {
    /// Credentials with no source.
    pub const fn new(client_id: &'a str, secret: Option<&'a str>) -> Self {
        Self { client_id, secret, source: &[] }
    }
}

/// Credentials decoded from an HTTP Basic `Authorization` header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BasicCredentials<'a> {
    /// The user-id part: the `client_id`.
    pub client_id: &'a str,
    /// The password part: the client secret (`None` when empty).
    pub secret: Option<&'a str>,
}

/// Decodes `Basic <base64(urlencode(id) ":" urlencode(secret))>` using `scratch` for the decoded bytes.
///
/// `Ok(None)` when the header uses another scheme (it is then not client authentication).
pub fn parse_basic<'a>(header: &str, scratch: &'a mut [u8]) -> Result<Option<BasicCredentials<'a>>, OAuthError> {
    let header = header.trim_matches(' ');
    let (scheme, rest) = header.split_once(' ').unwrap_or((header, ""));
    if !scheme.eq_ignore_ascii_case("basic") {
        return Ok(None);
    }
    let bad = OAuthError::invalid_client("malformed Basic credentials");
    let n = STANDARD.decode_slice(rest.trim_matches(' '), &mut *scratch).map_err(|_| bad)?;
    let decoded = scratch.get_mut(..n).ok_or(bad)?;
    let colon = decoded.iter().position(|&b| b == b':').ok_or(bad)?;
    let (id, secret) = decoded.split_at_mut(colon);
    let secret = secret.get_mut(1..).unwrap_or_default();
    let id = decode_in_place(id).map_err(|_| bad)?;
    let secret = decode_in_place(secret).map_err(|_| bad)?;
    if id.is_empty() {
        return Err(bad);
    }
    Ok(Some(BasicCredentials { client_id: id, secret: (!secret.is_empty()).then_some(secret) }))
}

impl<'a> ClientCredentials<'a> {
    /// The client credentials of a request from its Basic header (if any) and its body.
    pub fn from_request<const N: usize>(
        basic: Option<BasicCredentials<'a>>,
        form: &Form<'a, N>,
    ) -> Result<Self, OAuthError> {
        let body_id = form.get("client_id");
        let body_secret = form.get("client_secret");
        match basic {
            Some(b) => {
                if body_secret.is_some() {
                    return Err(OAuthError::invalid_request("more than one client authentication method"));
                }
                if body_id.is_some_and(|id| id != b.client_id) {
                    return Err(OAuthError::invalid_request("client_id differs from the Authorization header"));
                }
                Ok(Self::new(b.client_id, b.secret))
            }
            None => {
                let client_id = body_id.ok_or(OAuthError::invalid_client("client authentication missing"))?;
                Ok(Self::new(client_id, body_secret))
            }
        }
    }
}

/// A device authorization request (RFC 8628 §3.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DeviceAuthorizationRequest<'a> {
    /// Who asks.
    pub client: ClientCredentials<'a>,
    /// The requested scope string; `None` means the client's default scopes.
    pub scope: Option<&'a str>,
}

impl<'a> DeviceAuthorizationRequest<'a> {
    /// Parses the request body and optional Basic credentials.
    pub fn from_form<const N: usize>(
        form: &Form<'a, N>,
        basic: Option<BasicCredentials<'a>>,
    ) -> Result<Self, OAuthError> {
        Ok(Self { client: ClientCredentials::from_request(basic, form)?, scope: form.get("scope") })
    }
}

/// The grant a token request asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Grant<'a> {
    /// `urn:ietf:params:oauth:grant-type:device_code` (RFC 8628 §3.4).
    DeviceCode {
        /// The device code being polled.
        device_code: &'a str,
    },
    /// `refresh_token` (RFC 6749 §6).
    RefreshToken {
        /// The refresh token.
        refresh_token: &'a str,
        /// A narrower scope, if asked.
        scope: Option<&'a str>,
    },
}

/// A token request (RFC 6749 §4.5/§6, RFC 8628 §3.4).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TokenRequest<'a> {
    /// Who asks.
    pub client: ClientCredentials<'a>,
    /// What for.
    pub grant: Grant<'a>,
}

impl<'a> TokenRequest<'a> {
    /// Parses the request body and optional Basic credentials.
    pub fn from_form<const N: usize>(
        form: &Form<'a, N>,
        basic: Option<BasicCredentials<'a>>,
    ) -> Result<Self, OAuthError> {
        let grant = match form.get("grant_type") {
            None => return Err(OAuthError::invalid_request("grant_type missing")),
            Some(DEVICE_CODE_GRANT) => Grant::DeviceCode {
                device_code: form.get("device_code").ok_or(OAuthError::invalid_request("device_code missing"))?,
            },
            Some(REFRESH_TOKEN_GRANT) => Grant::RefreshToken {
                refresh_token: form.get("refresh_token").ok_or(OAuthError::invalid_request("refresh_token missing"))?,
                scope: form.get("scope"),
            },
            Some(_) => {
                return Err(OAuthError::new(
                    ErrorCode::UnsupportedGrantType,
                    "only device_code and refresh_token grants",
                ))
            }
        };
        Ok(Self { client: ClientCredentials::from_request(basic, form)?, grant })
    }
}

/// A revocation (RFC 7009) or introspection (RFC 7662) request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TokenQuery<'a> {
    /// Who asks.
    pub client: ClientCredentials<'a>,
    /// The token. A `token_type_hint` is ignored, as both RFCs allow: access and refresh tokens are
    /// told apart by their format.
    pub token: &'a str,
}

impl<'a> TokenQuery<'a> {
    /// Parses the request body and optional Basic credentials.
    pub fn from_form<const N: usize>(
        form: &Form<'a, N>,
        basic: Option<BasicCredentials<'a>>,
    ) -> Result<Self, OAuthError> {
        let token = form.get("token").ok_or(OAuthError::invalid_request("token missing"))?;
        Ok(Self { client: ClientCredentials::from_request(basic, form)?, token })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with_form<R>(body: &str, f: impl FnOnce(&Form<'_, 8>) -> R) -> R {
        let mut buf = [0u8; 256];
        buf[..body.len()].copy_from_slice(body.as_bytes());
        let form = Form::<8>::parse(&mut buf[..body.len()]).unwrap();
        f(&form)
    }

    #[test]
    fn basic_credentials_are_url_decoded() {
        // "my%20client:s%3Acret" base64
        let mut scratch = [0u8; 64];
        let mut enc = [0u8; 64];
        let n = STANDARD.encode_slice(b"my%20client:s%3Acret", &mut enc).unwrap();
        let header_b64 = core::str::from_utf8(&enc[..n]).unwrap();
        let mut header = heapless::String::<80>::new();
        header.push_str("basic  ").unwrap();
        header.push_str(header_b64).unwrap();
        let c = parse_basic(&header, &mut scratch).unwrap().unwrap();
        assert_eq!(c.client_id, "my client");
        assert_eq!(c.secret, Some("s:cret"));
        assert_eq!(parse_basic("Bearer x", &mut scratch).unwrap(), None);
        assert!(parse_basic("Basic !!!", &mut scratch).is_err());
        let n = STANDARD.encode_slice(b"abc", &mut enc).unwrap();
        let no_colon = core::str::from_utf8(&enc[..n]).unwrap();
        let mut h = heapless::String::<80>::new();
        h.push_str("Basic ").unwrap();
        h.push_str(no_colon).unwrap();
        assert!(parse_basic(&h, &mut scratch).is_err());
    }

    #[test]
    fn one_authentication_method_only() {
        let basic = Some(BasicCredentials { client_id: "a", secret: Some("s") });
        with_form("client_secret=x", |f| {
            assert_eq!(ClientCredentials::from_request(basic, f).unwrap_err().code, ErrorCode::InvalidRequest);
        });
        with_form("client_id=b", |f| {
            assert_eq!(ClientCredentials::from_request(basic, f).unwrap_err().code, ErrorCode::InvalidRequest);
        });
        with_form("client_id=a", |f| {
            assert_eq!(ClientCredentials::from_request(basic, f).unwrap(), ClientCredentials::new("a", Some("s")));
        });
        with_form("", |f| {
            assert_eq!(ClientCredentials::from_request(None, f).unwrap_err().code, ErrorCode::InvalidClient);
        });
        with_form("client_id=a&client_secret=s", |f| {
            assert_eq!(ClientCredentials::from_request(None, f).unwrap(), ClientCredentials::new("a", Some("s")));
        });
    }

    #[test]
    fn token_request_grant_types() {
        with_form("grant_type=authorization_code&client_id=a", |f| {
            assert_eq!(TokenRequest::from_form(f, None).unwrap_err().code, ErrorCode::UnsupportedGrantType);
        });
        with_form("client_id=a", |f| {
            assert_eq!(TokenRequest::from_form(f, None).unwrap_err().code, ErrorCode::InvalidRequest);
        });
        with_form("grant_type=urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Adevice_code&client_id=a", |f| {
            assert_eq!(TokenRequest::from_form(f, None).unwrap_err().code, ErrorCode::InvalidRequest);
        });
        with_form("grant_type=refresh_token&refresh_token=x&client_id=a&scope=b", |f| {
            let r = TokenRequest::from_form(f, None).unwrap();
            assert_eq!(r.grant, Grant::RefreshToken { refresh_token: "x", scope: Some("b") });
        });
    }
}
