//! JSON response bodies written into caller buffers.
//!
//! Every writer returns the number of bytes written, or [`BufferTooSmall`]. Two writers:
//! - `serde-json-core` for any body with a value that could need escaping (the device authorization
//!   response carries the configured `verification_uri`; introspection carries a client id);
//! - [`Raw`], a small writer that copies bytes as they are, for the fixed-shape bodies whose every value
//!   is known not to need escaping (see [`Raw`] for the invariant): the token response and error bodies,
//!   the hot paths of polling.
//!
//! Scope sets are written straight from the bit set, so no intermediate string is needed.

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

/// True when `s` can stand between JSON quotes as it is: no `"`, no `\`, no control character
/// (RFC 8259 §7). Everything else, UTF-8 included, is allowed unescaped.
pub(crate) fn json_safe(s: &str) -> bool {
    s.bytes().all(|b| b >= 0x20 && b != b'"' && b != b'\\')
}

/// An escape-free JSON writer: copies what it is given into `out`, byte for byte.
///
/// **Invariant:** every string given to [`Raw::str`] or [`Raw::scopes`] must need no JSON escaping
/// ([`json_safe`]). Callers only give it:
/// - this crate's own tokens (base64url: `A-Z a-z 0-9 - _`), after checking them with [`json_safe`]
///   (a caller can build a `TokenResponse` by hand), and fixed ASCII literals (`"Bearer"`);
/// - numbers, written by [`Raw::u32`];
/// - registered scope names, which [`ScopeRegistry::new`] only accepts as `NQCHAR`
///   (`%x21 / %x23-5B / %x5D-7E`: no `"`, no `\`, no control characters) joined by spaces;
/// - error codes and descriptions, after checking them with [`json_safe`] (serde-json-core writes
///   the body otherwise).
///
/// Any value that could need escaping goes through serde-json-core instead.
pub(crate) struct Raw<'o> {
    out: &'o mut [u8],
    len: usize,
    failed: bool,
}

impl<'o> Raw<'o> {
    pub(crate) fn new(out: &'o mut [u8]) -> Self {
        Self { out, len: 0, failed: false }
    }

    /// Appends `bytes` as they are (JSON punctuation and member names).
    pub(crate) fn raw(&mut self, bytes: &[u8]) -> &mut Self {
        let end = self.len.saturating_add(bytes.len());
        match self.out.get_mut(self.len..end) {
            Some(dst) => {
                dst.copy_from_slice(bytes);
                self.len = end;
            }
            None => self.failed = true,
        }
        self
    }

    /// Appends `"s"`; `s` must need no escaping (see the invariant above).
    pub(crate) fn str(&mut self, s: &str) -> &mut Self {
        self.raw(b"\"").raw(s.as_bytes()).raw(b"\"")
    }

    /// Appends a number.
    pub(crate) fn u32(&mut self, n: u32) -> &mut Self {
        let mut digits = [0u8; 10];
        let mut at = digits.len();
        let mut n = n;
        loop {
            at -= 1;
            if let Some(d) = digits.get_mut(at) {
                *d = b'0' + (n % 10) as u8;
            }
            n /= 10;
            if n == 0 || at == 0 {
                break;
            }
        }
        let digits = digits.get(at..).unwrap_or_default();
        self.raw(digits)
    }

    /// Appends `"…"` with the names of `set`, space-delimited (registered names: NQCHAR, see above).
    pub(crate) fn scopes(&mut self, registry: &ScopeRegistry, set: ScopeSet) -> &mut Self {
        self.raw(b"\"");
        if registry.write(set, self).is_err() {
            self.failed = true;
        }
        self.raw(b"\"")
    }

    /// The bytes written, or [`BufferTooSmall`] if they did not fit.
    pub(crate) fn finish(&self) -> Result<usize, BufferTooSmall> {
        if self.failed {
            Err(BufferTooSmall)
        } else {
            Ok(self.len)
        }
    }
}

impl fmt::Write for Raw<'_> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        self.raw(s.as_bytes());
        if self.failed {
            Err(fmt::Error)
        } else {
            Ok(())
        }
    }
}

#[derive(Serialize)]
struct ErrorBody<'a> {
    error: &'a str,
    error_description: &'a str,
}

impl OAuthError {
    /// Writes `{"error":…,"error_description":…}` (RFC 6749 §5.2).
    pub fn write_json(&self, out: &mut [u8]) -> Result<usize, BufferTooSmall> {
        // Codes are fixed ASCII and descriptions fixed text of this crate, so the check always passes in
        // practice; it keeps the body correct JSON should a description ever need escaping.
        if !json_safe(self.description) {
            return to_slice(&ErrorBody { error: self.code.as_str(), error_description: self.description }, out);
        }
        let mut w = Raw::new(out);
        w.raw(b"{\"error\":").str(self.code.as_str()).raw(b",\"error_description\":").str(self.description).raw(b"}");
        w.finish()
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
    fn raw_writer_numbers_scopes_and_fallback() {
        let reg = ScopeRegistry::new(&["a", "b:c"]).unwrap();
        let mut buf = [0u8; 128];
        for n in [0u32, 7, 10, 599, 4_294_967_295] {
            let mut w = Raw::new(&mut buf);
            w.u32(n);
            let len = w.finish().unwrap();
            assert_eq!(core::str::from_utf8(&buf[..len]).unwrap(), n.to_string());
        }
        let mut w = Raw::new(&mut buf);
        w.scopes(&reg, ScopeSet::from_bits(3));
        let len = w.finish().unwrap();
        assert_eq!(&buf[..len], br#""a b:c""#);
        let mut small = [0u8; 3];
        let mut w = Raw::new(&mut small);
        w.u32(1234);
        assert_eq!(w.finish(), Err(BufferTooSmall));
        // A description that needs escaping still makes valid JSON (through serde-json-core).
        let e = OAuthError::new(ErrorCode::InvalidRequest, "a \"quoted\" \\ name");
        let n = e.write_json(&mut buf).unwrap();
        assert_eq!(&buf[..n], br#"{"error":"invalid_request","error_description":"a \"quoted\" \\ name"}"#);
        assert!(json_safe("poll less often"));
        assert!(!json_safe("a\nb"));
    }

    #[test]
    fn scope_is_collected_without_a_string() {
        let reg = ScopeRegistry::new(&["a", "b"]).unwrap();
        let mut buf = [0u8; 128];
        let n = to_slice(&ScopeStr(&reg, ScopeSet::from_bits(3)), &mut buf).unwrap();
        assert_eq!(&buf[..n], br#""a b""#);
    }
}
