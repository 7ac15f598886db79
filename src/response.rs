//! Typed responses and their wire forms: the JSON bodies (written with `serde-json-core` into caller
//! buffers) and the `WWW-Authenticate: Bearer` challenge.
//!
//! The provider returns these types; writing them is this module's job, so the state owner owns no
//! serialisation. Every writer returns the number of bytes written, or [`BufferTooSmall`]. Scope sets
//! are written through `collect_str` straight from the bit set, so no intermediate string is needed.

use core::fmt;

use serde::{Serialize, Serializer};

use crate::client::{ClientIndex, ClientRegistry};
use crate::code::{DeviceCode, UserCode};
use crate::error::{BufferTooSmall, OAuthError};
use crate::grant::GrantState;
use crate::provider::{BearerError, Config, UserId, MAX_URI_LEN};
use crate::scope::{ScopeRegistry, ScopeSet};
use crate::token::{AccessToken, RefreshToken};

/// The answer to a device authorization request (RFC 8628 §3.2).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceAuthorization {
    /// The device code.
    pub device_code: DeviceCode,
    /// The user code.
    pub user_code: UserCode,
    /// Seconds until both codes expire.
    pub expires_in: u32,
    /// Minimum seconds between polls.
    pub interval: u32,
}

impl DeviceAuthorization {
    /// Writes the JSON body (RFC 8628 §3.2), with the verification URIs of `config`.
    pub fn write_json(&self, config: &Config, out: &mut [u8]) -> Result<usize, BufferTooSmall> {
        let shown = self.user_code.display();
        let complete = config.verification_uri_complete(&self.user_code);
        let body = DeviceAuthorizationBody {
            device_code: &self.device_code,
            user_code: &shown,
            verification_uri: &config.verification_uri,
            verification_uri_complete: complete.as_deref(),
            expires_in: self.expires_in,
            interval: self.interval,
        };
        to_slice(&body, out)
    }
}

/// Tokens issued by the token endpoint (RFC 6749 §5.1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenResponse {
    /// The access token (a Bearer token).
    pub access_token: AccessToken,
    /// Seconds until the access token expires.
    pub expires_in: u32,
    /// A refresh token, if the client receives them.
    pub refresh_token: Option<RefreshToken>,
    /// The granted scopes.
    pub scopes: ScopeSet,
}

impl TokenResponse {
    /// Writes the JSON body of a successful token response (RFC 6749 §5.1).
    pub fn write_json(&self, scopes: &ScopeRegistry, out: &mut [u8]) -> Result<usize, BufferTooSmall> {
        let body = TokenBody {
            access_token: &self.access_token,
            token_type: "Bearer",
            expires_in: self.expires_in,
            refresh_token: self.refresh_token.as_deref(),
            scope: ScopeStr(scopes, self.scopes),
        };
        to_slice(&body, out)
    }
}

/// What the verification page shows about a pending request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GrantInfo {
    /// The requesting client.
    pub client: ClientIndex,
    /// Requested scopes (granted ones once approved).
    pub scopes: ScopeSet,
    /// The grant's state.
    pub state: GrantState,
    /// When the code expires.
    pub expires_at: u32,
    /// The normalised user code.
    pub user_code: UserCode,
}

/// What a valid access token grants.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TokenInfo {
    /// The client it was issued to.
    pub client: ClientIndex,
    /// The approving user.
    pub user: UserId,
    /// Granted scopes.
    pub scopes: ScopeSet,
    /// Expiry (caller's clock).
    pub expires_at: u32,
    /// The grant serial (identifies the token family).
    pub serial: u32,
}

/// One connected device of a user: a token family, or an approval waiting for its device.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DeviceInfo {
    /// Its slot in the family table (with `serial`, what [`crate::provider::Provider::revoke_family`] takes).
    pub slot: u16,
    /// The serial of the grant it came from.
    pub serial: u32,
    /// The client.
    pub client: ClientIndex,
    /// The granted scopes.
    pub scopes: ScopeSet,
    /// When the user approved (provider clock).
    pub approved_at: u32,
    /// The last refresh (or the token exchange), at a granularity of
    /// [`crate::provider::LAST_USED_GRANULARITY`]; `None` while the device has not connected.
    pub last_used: Option<u32>,
    /// When it expires unless used (its refresh token's lifetime, renewed at each refresh).
    pub expires_at: u32,
    /// True once the device exchanged its code (false: approved, waiting for the device).
    pub connected: bool,
}

/// The result of an introspection (RFC 7662 §2.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Introspection {
    /// Not a valid, unexpired, unrevoked token of ours.
    Inactive,
    /// An active access token.
    Access(TokenInfo),
    /// An active refresh token.
    Refresh(TokenInfo),
}

impl Introspection {
    /// Writes the JSON body of an introspection response (RFC 7662 §2.2), naming scopes and the client.
    pub fn write_json<C: ClientRegistry + ?Sized>(
        &self,
        scopes: &ScopeRegistry,
        clients: &C,
        out: &mut [u8],
    ) -> Result<usize, BufferTooSmall> {
        let (info, token_type) = match self {
            Self::Inactive => {
                let inactive = IntrospectionBody {
                    active: false,
                    scope: None,
                    client_id: None,
                    sub: None,
                    token_type: None,
                    exp: None,
                };
                return to_slice(&inactive, out);
            }
            Self::Access(i) => (i, Some("Bearer")),
            Self::Refresh(i) => (i, None),
        };
        let mut sub = heapless::String::<10>::new();
        fmt::write(&mut sub, format_args!("{}", info.user)).map_err(|_| BufferTooSmall)?;
        let body = IntrospectionBody {
            active: true,
            scope: Some(ScopeStr(scopes, info.scopes)),
            client_id: clients.get(info.client).map(|c| c.id()),
            sub: Some(&sub),
            token_type,
            exp: Some(info.expires_at),
        };
        to_slice(&body, out)
    }
}

impl BearerError {
    /// Writes a `WWW-Authenticate` value for a refused request (RFC 6750 §3): the realm, the error and
    /// its description, and for `insufficient_scope` the scope the resource needs.
    pub fn write_challenge<W: fmt::Write>(
        self,
        realm: &str,
        required: ScopeSet,
        scopes: &ScopeRegistry,
        out: &mut W,
    ) -> fmt::Result {
        write!(out, "Bearer realm=\"{realm}\"")?;
        if let Some(e) = self.oauth_error() {
            write!(out, ", error=\"{}\", error_description=\"{}\"", e.code, e.description)?;
        }
        if self == BearerError::InsufficientScope {
            write!(out, ", scope=\"{}\"", ScopeStr(scopes, required))?;
        }
        Ok(())
    }
}

impl Config {
    /// `verification_uri_complete` for a code (the URI with `?user_code=XXXX-XXXX`), if enabled.
    pub fn verification_uri_complete(&self, code: &UserCode) -> Option<heapless::String<MAX_URI_LEN>> {
        if !self.verification_uri_complete {
            return None;
        }
        let uri = self.verification_uri.as_str();
        let mut s = heapless::String::new();
        s.push_str(uri).ok()?;
        s.push_str(if uri.contains('?') { "&user_code=" } else { "?user_code=" }).ok()?;
        s.push_str(&code.display()).ok()?;
        Some(s)
    }
}

/// A scope set rendered as a space-delimited string.
pub(crate) struct ScopeStr<'a>(pub &'a ScopeRegistry, pub ScopeSet);

impl fmt::Display for ScopeStr<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.write(self.1, f)
    }
}

impl Serialize for ScopeStr<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

pub(crate) fn to_slice<T: Serialize>(value: &T, out: &mut [u8]) -> Result<usize, BufferTooSmall> {
    serde_json_core::to_slice(value, out).map_err(|_| BufferTooSmall)
}

#[derive(Serialize)]
struct ErrorBody<'a> {
    error: &'a str,
    error_description: &'a str,
}

impl OAuthError {
    /// Writes `{"error":…,"error_description":…}` (RFC 6749 §5.2).
    pub fn write_json(&self, out: &mut [u8]) -> Result<usize, BufferTooSmall> {
        to_slice(&ErrorBody { error: self.code.as_str(), error_description: self.description }, out)
    }
}

#[derive(Serialize)]
struct DeviceAuthorizationBody<'a> {
    device_code: &'a str,
    user_code: &'a str,
    verification_uri: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    verification_uri_complete: Option<&'a str>,
    expires_in: u32,
    interval: u32,
}

#[derive(Serialize)]
struct TokenBody<'a> {
    access_token: &'a str,
    token_type: &'static str,
    expires_in: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    refresh_token: Option<&'a str>,
    scope: ScopeStr<'a>,
}

#[derive(Serialize)]
struct IntrospectionBody<'a> {
    active: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    scope: Option<ScopeStr<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    client_id: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    sub: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    token_type: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    exp: Option<u32>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ErrorCode;

    #[test]
    fn error_body_and_small_buffers() {
        let e = OAuthError::new(ErrorCode::SlowDown, "poll less often");
        let mut buf = [0u8; 128];
        let n = e.write_json(&mut buf).unwrap();
        assert_eq!(&buf[..n], br#"{"error":"slow_down","error_description":"poll less often"}"#);
        assert_eq!(e.write_json(&mut buf[..10]), Err(BufferTooSmall));
    }

    #[test]
    fn descriptions_are_escaped() {
        let e = OAuthError::new(ErrorCode::InvalidRequest, "a \"quoted\" \\ name");
        let mut buf = [0u8; 128];
        let n = e.write_json(&mut buf).unwrap();
        assert_eq!(&buf[..n], br#"{"error":"invalid_request","error_description":"a \"quoted\" \\ name"}"#);
    }

    #[test]
    fn scope_is_collected_without_a_string() {
        let reg = ScopeRegistry::new(&["a", "b"]).unwrap();
        let mut buf = [0u8; 128];
        let n = to_slice(&ScopeStr(&reg, ScopeSet::from_bits(3)), &mut buf).unwrap();
        assert_eq!(&buf[..n], br#""a b""#);
    }
}
