//! JSON response bodies, written with `serde-json-core` into caller buffers.
//!
//! Every writer returns the number of bytes written, or [`BufferTooSmall`]. Scope sets are written
//! through `collect_str` straight from the bit set, so no intermediate string is needed.

use core::fmt;

use serde::{Serialize, Serializer};

use crate::error::{BufferTooSmall, OAuthError};
use crate::scope::{ScopeRegistry, ScopeSet};

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
pub(crate) struct DeviceAuthorizationBody<'a> {
    pub device_code: &'a str,
    pub user_code: &'a str,
    pub verification_uri: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub verification_uri_complete: Option<&'a str>,
    pub expires_in: u32,
    pub interval: u32,
}

#[derive(Serialize)]
pub(crate) struct TokenBody<'a> {
    pub access_token: &'a str,
    pub token_type: &'static str,
    pub expires_in: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub refresh_token: Option<&'a str>,
    pub scope: ScopeStr<'a>,
}

#[derive(Serialize)]
pub(crate) struct IntrospectionBody<'a> {
    pub active: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scope: Option<ScopeStr<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_id: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sub: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub token_type: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub exp: Option<u32>,
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
