//! OAuth error codes and their HTTP status: the one place where protocol errors map to the wire.
//!
//! Every endpoint answers an error with an [`OAuthError`]: an [`ErrorCode`] from RFC 6749 §5.2,
//! RFC 8628 §3.5 or RFC 6750 §3.1, plus a short, fixed `error_description`
//! (never user input, so it never needs escaping and never leaks secrets).
//!
//! | code | status | where |
//! |---|---|---|
//! | `invalid_request` | 400 | malformed or duplicated parameters, bad bearer header |
//! | `invalid_client` | 401 (+ `WWW-Authenticate: Basic`) | unknown client, failed authentication |
//! | `invalid_grant` | 400 | unknown, foreign, reused or stale device code / refresh token |
//! | `unauthorized_client` | 400 | client not allowed this grant type |
//! | `unsupported_grant_type` | 400 | any grant but device_code and refresh_token |
//! | `invalid_scope` | 400 | unknown scope, bad syntax, or widening on refresh |
//! | `authorization_pending` | 400 | the user has not decided yet |
//! | `slow_down` | 400 | polled faster than the interval (which grows by 5 s) |
//! | `access_denied` | 400 | the user denied the request |
//! | `expired_token` | 400 | the device code expired |
//! | `invalid_token` | 401 (+ `WWW-Authenticate: Bearer`) | bad, expired or revoked access token |
//! | `insufficient_scope` | 403 (+ `WWW-Authenticate: Bearer`) | token lacks a required scope |
//! | `temporarily_unavailable` | 503 (+ `Retry-After`) | a fixed-capacity table is full ([`ErrorCode::TemporarilyUnavailable`]) |
//! | `temporarily_unavailable` | 429 (+ `Retry-After`) | this source holds its share of the grant table, or failed authentication too often ([`ErrorCode::Throttled`]) |
//! | `server_error` | 500 | an output buffer was too small (a configuration error), or the provider is not initialised |
//!
//! A request refused because *its* source is over a budget gets 429 Too Many Requests (RFC 6585 §4)
//! with `Retry-After`, so a client (and the person behind it) can tell "slow down, you" from the 503
//! of a full server. Neither RFC 6749 §5.2 nor RFC 8628 has an error code for it: `slow_down` means
//! "polling too fast" and is defined for the token endpoint only, so both answers carry the registered
//! `temporarily_unavailable` (RFC 6749 §4.1.2.1), whose meaning, "try again later", is what a client
//! should do; the status and `Retry-After` say who should wait and how long.

use core::fmt;

/// An OAuth 2.0 error code (the value of the `error` member of an error response).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[non_exhaustive]
pub enum ErrorCode {
    /// RFC 6749 §5.2.
    InvalidRequest,
    /// RFC 6749 §5.2.
    InvalidClient,
    /// RFC 6749 §5.2.
    InvalidGrant,
    /// RFC 6749 §5.2.
    UnauthorizedClient,
    /// RFC 6749 §5.2.
    UnsupportedGrantType,
    /// RFC 6749 §5.2.
    InvalidScope,
    /// RFC 8628 §3.5.
    AuthorizationPending,
    /// RFC 8628 §3.5.
    SlowDown,
    /// RFC 8628 §3.5.
    AccessDenied,
    /// RFC 8628 §3.5.
    ExpiredToken,
    /// RFC 6750 §3.1.
    InvalidToken,
    /// RFC 6750 §3.1.
    InsufficientScope,
    /// RFC 6749 §4.1.2.1; used when a fixed-capacity table is full (503).
    TemporarilyUnavailable,
    /// Sent as `temporarily_unavailable` with 429: this request's source is over its share or budget.
    Throttled,
    /// RFC 6749 §4.1.2.1; used when a response does not fit its buffer.
    ServerError,
}

impl ErrorCode {
    /// The registered string, as sent in the `error` member.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::InvalidRequest => "invalid_request",
            Self::InvalidClient => "invalid_client",
            Self::InvalidGrant => "invalid_grant",
            Self::UnauthorizedClient => "unauthorized_client",
            Self::UnsupportedGrantType => "unsupported_grant_type",
            Self::InvalidScope => "invalid_scope",
            Self::AuthorizationPending => "authorization_pending",
            Self::SlowDown => "slow_down",
            Self::AccessDenied => "access_denied",
            Self::ExpiredToken => "expired_token",
            Self::InvalidToken => "invalid_token",
            Self::InsufficientScope => "insufficient_scope",
            Self::TemporarilyUnavailable | Self::Throttled => "temporarily_unavailable",
            Self::ServerError => "server_error",
        }
    }

    /// The HTTP status code this error is sent with: the crate's one mapping of protocol errors (the
    /// HTTP binding's own statuses are decided in `http/status.rs`).
    pub const fn http_status(self) -> u16 {
        match self {
            Self::InvalidClient | Self::InvalidToken => 401,
            Self::InsufficientScope => 403,
            Self::TemporarilyUnavailable => 503,
            Self::Throttled => 429,
            Self::ServerError => 500,
            _ => 400,
        }
    }
}

impl crate::provider::BearerError {
    /// The HTTP status of a refused protected-resource request: its OAuth error's, or 401 with a bare
    /// challenge when no token was sent (RFC 6750 §3.1).
    pub fn http_status(self) -> u16 {
        self.oauth_error().map_or(401, |e| e.http_status())
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An OAuth error response: a code and a fixed human-readable description.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct OAuthError {
    /// The `error` member.
    pub code: ErrorCode,
    /// The `error_description` member: fixed text chosen by this crate, never user input.
    pub description: &'static str,
    /// Seconds after which a retry may succeed (sent as `Retry-After`), for 429 and 503.
    pub retry_after: Option<u32>,
}

impl OAuthError {
    /// An error with its description.
    pub const fn new(code: ErrorCode, description: &'static str) -> Self {
        Self { code, description, retry_after: None }
    }

    /// The same error, telling the client to retry after `seconds` (at least 1).
    pub const fn retry_after(self, seconds: u32) -> Self {
        Self { retry_after: Some(if seconds == 0 { 1 } else { seconds }), ..self }
    }

    /// The HTTP status to send (see [`ErrorCode::http_status`]).
    pub const fn http_status(&self) -> u16 {
        self.code.http_status()
    }

    pub(crate) const fn invalid_request(description: &'static str) -> Self {
        Self::new(ErrorCode::InvalidRequest, description)
    }
    pub(crate) const fn invalid_client(description: &'static str) -> Self {
        Self::new(ErrorCode::InvalidClient, description)
    }
    pub(crate) const fn invalid_grant(description: &'static str) -> Self {
        Self::new(ErrorCode::InvalidGrant, description)
    }
    pub(crate) const fn invalid_scope(description: &'static str) -> Self {
        Self::new(ErrorCode::InvalidScope, description)
    }
}

impl fmt::Display for OAuthError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.code, self.description)
    }
}

impl core::error::Error for OAuthError {}

/// A caller-provided output buffer was too small for a response.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct BufferTooSmall;

impl fmt::Display for BufferTooSmall {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("output buffer too small")
    }
}

impl core::error::Error for BufferTooSmall {}

impl From<BufferTooSmall> for OAuthError {
    fn from(_: BufferTooSmall) -> Self {
        OAuthError::new(ErrorCode::ServerError, "response does not fit the output buffer")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_follow_the_rfcs() {
        assert_eq!(ErrorCode::InvalidClient.http_status(), 401);
        assert_eq!(ErrorCode::InvalidToken.http_status(), 401);
        assert_eq!(ErrorCode::InsufficientScope.http_status(), 403);
        assert_eq!(ErrorCode::TemporarilyUnavailable.http_status(), 503);
        assert_eq!(ErrorCode::SlowDown.http_status(), 400);
        assert_eq!(ErrorCode::AuthorizationPending.http_status(), 400);
        assert_eq!(ErrorCode::SlowDown.as_str(), "slow_down");
    }
}
