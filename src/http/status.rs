//! Every HTTP status the binding sends, decided here (OAuth errors keep theirs in [`crate::error`]).
//!
//! | status | when | where it comes from |
//! |---|---|---|
//! | 200 | success; a revocation (RFC 7009 §2.2, whatever the token was) | endpoints, page, application |
//! | 400 | [`Reject::BadRequest`]; a wrong, expired or used code on the page; a bad page form | [`Reject::status`], [`approve_error`], [`BAD_FORM`] |
//! | 400, 401, 403, 500, 503 | an OAuth error | [`crate::OAuthError::http_status`] |
//! | 401 | no bearer token (RFC 6750 §3.1); no signed-in user on the page (with a Basic challenge) | [`crate::provider::BearerError::http_status`], [`SIGN_IN_REQUIRED`] |
//! | 403 | the page's anti-CSRF field is wrong | [`FORM_EXPIRED`] |
//! | 404 | a path nobody answers (the application's default) | [`NOT_FOUND`] |
//! | 405 | a method the route does not take, with `Allow` | [`METHOD_NOT_ALLOWED`] |
//! | 100 | an interim answer to `Expect: 100-continue` once the head is accepted (the drivers) | [`CONTINUE`] |
//! | 408 | a request not whole by the head deadline (the timed drivers; then close) | [`REQUEST_TIMEOUT`] |
//! | 413, 414, 417, 431, 501 | framing refusals (417: an `Expect` other than `100-continue`) | [`Reject::status`] |
//! | 503 | no connection slot for this peer (a [`super::pool::Pool`] refusal, with `Retry-After`) | [`busy`] |
//! | 415 | an OAuth endpoint or the page's POST without a form body | [`UNSUPPORTED_MEDIA_TYPE`] |
//! | 409 | the signed-in user has as many connected devices as allowed | [`approve_error`] |
//! | 429 | too many wrong codes or failed sign-ins (with `Retry-After`) | [`approve_error`], [`SIGN_IN_THROTTLED`] |
//! | 503 | no room for another connected device (the page links to the devices page) | [`approve_error`] |
//! | 500 | a response that does not fit the output buffer (a bare answer that closes) | [`OVERFLOW`] |

use core::fmt::Write as _;

use super::emit::Response;
use super::parse::Reject;
use crate::provider::ApproveError;

/// Too many failed sign-ins from this address: wait (`Retry-After`).
pub const SIGN_IN_THROTTLED: u16 = 429;
/// The page's form is malformed or names no action.
pub const BAD_FORM: u16 = 400;
/// The page's POST was made for another user or with another key: reload.
pub const FORM_EXPIRED: u16 = 403;
/// Nobody is signed in on the verification page.
pub const SIGN_IN_REQUIRED: u16 = 401;
/// The application's default answer for an unknown path.
pub const NOT_FOUND: u16 = 404;
/// A method the route does not take.
pub const METHOD_NOT_ALLOWED: u16 = 405;
/// A body that is not `application/x-www-form-urlencoded` where a form is required.
pub const UNSUPPORTED_MEDIA_TYPE: u16 = 415;
/// The response did not fit the output buffer.
pub const OVERFLOW: u16 = 500;
/// A request that was not whole by the head deadline.
pub const REQUEST_TIMEOUT: u16 = 408;
/// No connection slot is free for this peer.
pub const BUSY: u16 = 503;

/// The interim response to `Expect: 100-continue` (RFC 9110 §15.2.1).
pub const CONTINUE: &[u8] = b"HTTP/1.1 100 Continue\r\n\r\n";

/// The bare [`REQUEST_TIMEOUT`] response, which closes.
pub(crate) const REQUEST_TIMEOUT_RESPONSE: &[u8] =
    b"HTTP/1.1 408 Request Timeout\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";

/// The [`BUSY`] response a server sends to a connection it refuses, with `Retry-After` in seconds,
/// written into `buf`; empty if `buf` is too short (128 bytes always suffice).
pub fn busy(retry_after: u32, buf: &mut [u8]) -> &[u8] {
    let mut res = Response::new(buf);
    res.set_status(BUSY).header_fmt("Retry-After", format_args!("{retry_after}"));
    match res.finish(super::emit::Connection::Close) {
        Some((start, end)) => buf.get(start..end).unwrap_or_default(),
        None => &[],
    }
}

impl Reject {
    /// The status code sent for a framing refusal.
    pub const fn status(self) -> u16 {
        match self {
            Self::BadRequest => 400,
            Self::ContentTooLarge => 413,
            Self::UriTooLong => 414,
            Self::HeadersTooLarge => 431,
            Self::ExpectationFailed => 417,
            Self::NotImplemented => 501,
        }
    }
}

/// The page's status for a failed look-up or decision.
pub const fn approve_error(e: ApproveError) -> u16 {
    match e {
        ApproveError::RateLimited => 429,
        ApproveError::DevicesFull => 503,
        ApproveError::AccountFull => 409,
        ApproveError::InvalidCode
        | ApproveError::Expired
        | ApproveError::AlreadyDecided
        | ApproveError::ScopeNotRequested => 400,
    }
}

/// The reason phrase of a status code (RFC 9110 §15).
pub(crate) const fn reason(status: u16) -> &'static str {
    match status {
        100 => "Continue",
        200 => "OK",
        201 => "Created",
        202 => "Accepted",
        204 => "No Content",
        301 => "Moved Permanently",
        302 => "Found",
        303 => "See Other",
        304 => "Not Modified",
        307 => "Temporary Redirect",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        409 => "Conflict",
        411 => "Length Required",
        413 => "Content Too Large",
        414 => "URI Too Long",
        415 => "Unsupported Media Type",
        417 => "Expectation Failed",
        429 => "Too Many Requests",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        501 => "Not Implemented",
        503 => "Service Unavailable",
        _ => "",
    }
}

/// A 405 with `Allow`: every method the route answers, `HEAD` wherever `GET` is (the binding answers
/// `HEAD` as `GET` on every route).
pub(crate) fn method_not_allowed(res: &mut Response<'_>, allow: &str) {
    res.set_status(METHOD_NOT_ALLOWED)
        .header("Allow", allow)
        .header("Content-Type", "text/plain; charset=utf-8")
        .body(b"Method not allowed\n");
}

/// A plain-text 404.
pub(crate) fn not_found(res: &mut Response<'_>) {
    res.set_status(NOT_FOUND).header("Content-Type", "text/plain; charset=utf-8");
    let _ = res.write_str("Not found\n");
}
