//! Request framing and the borrowed request view.

use core::net::SocketAddr;

use super::HttpConfig;

/// Most header lines in a request (431 above). The parser keeps them in a stack array of this size
/// (16 bytes each on a 32-bit target).
pub const MAX_HEADERS: usize = 32;

/// Why a request was refused before routing. Every rejection closes the connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum Reject {
    /// Not HTTP/1.x, or a malformed request line, header, `Content-Length` or `Host`: 400.
    BadRequest,
    /// The body is longer than [`HttpConfig::max_body`]: 413.
    ContentTooLarge,
    /// The request line alone does not fit in [`HttpConfig::max_head`]: 414.
    UriTooLong,
    /// The headers do not fit in [`HttpConfig::max_head`] or are more than [`MAX_HEADERS`]: 431.
    HeadersTooLarge,
    /// A `Transfer-Encoding` (chunked bodies are not supported): 501.
    NotImplemented,
}

impl Reject {
    /// The status code sent.
    pub const fn status(self) -> u16 {
        match self {
            Self::BadRequest => 400,
            Self::ContentTooLarge => 413,
            Self::UriTooLong => 414,
            Self::HeadersTooLarge => 431,
            Self::NotImplemented => 501,
        }
    }

    pub(crate) const fn message(self) -> &'static str {
        match self {
            Self::BadRequest => "Bad request\n",
            Self::ContentTooLarge => "Request body too large\n",
            Self::UriTooLong => "Request line too long\n",
            Self::HeadersTooLarge => "Request headers too large\n",
            Self::NotImplemented => "Transfer-Encoding not supported; send Content-Length\n",
        }
    }
}

/// Where the first request in a buffer stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Frame {
    /// More bytes are needed.
    Incomplete,
    /// A whole request: `head` bytes of request line and headers, then `body` bytes.
    Request {
        /// Bytes of request line and headers, blank line included.
        head: usize,
        /// Bytes of body.
        body: usize,
    },
    /// The request is refused; the connection must close after the error response.
    Reject(Reject),
}

/// Finds the first request in `input`: cheap (it parses the head only) and needs no provider, so a
/// driver can call it after every read and call [`super::handle`] (and take its lock) only once a
/// request is whole.
pub fn frame(cfg: &HttpConfig, input: &[u8]) -> Frame {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut req = httparse::Request::new(&mut headers);
    let head = match req.parse(input) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) => {
            if input.len() < cfg.max_head {
                return Frame::Incomplete;
            }
            let line_ended = input.iter().take(cfg.max_head).any(|&b| b == b'\n');
            return Frame::Reject(if line_ended { Reject::HeadersTooLarge } else { Reject::UriTooLong });
        }
        Err(httparse::Error::TooManyHeaders) => return Frame::Reject(Reject::HeadersTooLarge),
        Err(_) => return Frame::Reject(Reject::BadRequest),
    };
    if head > cfg.max_head {
        return Frame::Reject(Reject::HeadersTooLarge);
    }
    let body = match body_length(&req) {
        Ok(n) => n,
        Err(r) => return Frame::Reject(r),
    };
    if body > cfg.max_body {
        return Frame::Reject(Reject::ContentTooLarge);
    }
    if input.len().saturating_sub(head) < body {
        return Frame::Incomplete;
    }
    Frame::Request { head, body }
}

/// The body length of a parsed head, and the `Host` rule (RFC 9112 §3.2, §6).
fn body_length(req: &httparse::Request<'_, '_>) -> Result<usize, Reject> {
    let mut length: Option<usize> = None;
    let mut hosts = 0usize;
    for h in req.headers.iter() {
        if h.name.eq_ignore_ascii_case("transfer-encoding") {
            return Err(Reject::NotImplemented);
        }
        if h.name.eq_ignore_ascii_case("host") {
            hosts += 1;
        }
        if h.name.eq_ignore_ascii_case("content-length") {
            let value = trim(h.value);
            if length.is_some() || value.is_empty() || value.len() > 9 || !value.iter().all(u8::is_ascii_digit) {
                return Err(Reject::BadRequest);
            }
            length = Some(value.iter().fold(0usize, |n, &d| n * 10 + usize::from(d - b'0')));
        }
    }
    if hosts > 1 || (req.version == Some(1) && hosts == 0) {
        return Err(Reject::BadRequest);
    }
    // RFC 9112 §6.3: a request with neither Content-Length nor Transfer-Encoding has an empty body.
    // Some clients (reqwest, hence the `oauth2` crate) send body-less POSTs that way, so a POST without
    // Content-Length is an empty POST, not a 411; a body is only ever read by its Content-Length.
    Ok(length.unwrap_or(0))
}

/// Trims optional whitespace (SP / HTAB) around a field value.
pub(crate) fn trim(value: &[u8]) -> &[u8] {
    let start = value.iter().position(|b| !matches!(b, b' ' | b'\t')).unwrap_or(value.len());
    let end = value.iter().rposition(|b| !matches!(b, b' ' | b'\t')).map_or(start, |i| i + 1);
    value.get(start..end).unwrap_or_default()
}

/// A parsed request, borrowed from the input buffer.
#[derive(Debug, Clone, Copy)]
pub struct Request<'a> {
    pub(crate) method: &'a str,
    pub(crate) path: &'a str,
    pub(crate) query: Option<&'a str>,
    pub(crate) minor: u8,
    pub(crate) headers: &'a [httparse::Header<'a>],
    pub(crate) body: &'a [u8],
    pub(crate) peer: Option<SocketAddr>,
}

impl<'a> Request<'a> {
    /// Splits a request target into path and query. Origin form (`/path?query`) is the usual one;
    /// absolute form (`http://host/path`) is reduced to its path (RFC 9112 §3.2.2).
    pub(crate) fn split_target(target: &'a str) -> (&'a str, Option<&'a str>) {
        let target = match target.split_once("://") {
            Some((_, rest)) if !target.starts_with('/') => rest.find('/').and_then(|i| rest.get(i..)).unwrap_or("/"),
            _ => target,
        };
        match target.split_once('?') {
            Some((path, query)) => (path, Some(query)),
            None => (target, None),
        }
    }

    /// The method, such as `GET`.
    pub fn method(&self) -> &'a str {
        self.method
    }

    /// The path, without the query.
    pub fn path(&self) -> &'a str {
        self.path
    }

    /// The query (after `?`), if any, still percent-encoded.
    pub fn query(&self) -> Option<&'a str> {
        self.query
    }

    /// The minor HTTP version: 1 for HTTP/1.1, 0 for HTTP/1.0.
    pub fn minor_version(&self) -> u8 {
        self.minor
    }

    /// The value of the first header called `name` (case-insensitive), trimmed; `None` if absent or not
    /// UTF-8.
    pub fn header(&self, name: &str) -> Option<&'a str> {
        let h = self.headers.iter().find(|h| h.name.eq_ignore_ascii_case(name))?;
        core::str::from_utf8(trim(h.value)).ok()
    }

    /// The value of the header called `name`: `Ok(None)` if absent, `Err(())` if sent more than once or
    /// not UTF-8. Use it for fields that must be unique, such as `Authorization`.
    #[allow(clippy::result_unit_err)]
    pub fn unique_header(&self, name: &str) -> Result<Option<&'a str>, ()> {
        let mut found = None;
        for h in self.headers.iter().filter(|h| h.name.eq_ignore_ascii_case(name)) {
            if found.is_some() {
                return Err(());
            }
            found = Some(core::str::from_utf8(trim(h.value)).map_err(|_| ())?);
        }
        Ok(found)
    }

    /// Every header as (name, raw value), in the order received.
    pub fn headers(&self) -> impl Iterator<Item = (&'a str, &'a [u8])> + '_ {
        self.headers.iter().map(|h| (h.name, h.value))
    }

    /// The body. Empty for the endpoints this crate answers itself (it decodes their bodies in place).
    pub fn body(&self) -> &'a [u8] {
        self.body
    }

    /// The peer address, if the caller gave one in the [`super::Context`].
    pub fn peer(&self) -> Option<SocketAddr> {
        self.peer
    }

    /// Whether the connection may stay open after this request (RFC 9112 §9.3): HTTP/1.1 unless
    /// `Connection: close`, HTTP/1.0 only with `Connection: keep-alive`.
    pub fn keep_alive(&self) -> bool {
        let (mut close, mut keep) = (false, false);
        for h in self.headers.iter().filter(|h| h.name.eq_ignore_ascii_case("connection")) {
            for option in h.value.split(|&b| b == b',') {
                let option = trim(option);
                close |= option.eq_ignore_ascii_case(b"close");
                keep |= option.eq_ignore_ascii_case(b"keep-alive");
            }
        }
        !close && (self.minor >= 1 || keep)
    }

    /// True when `Content-Type` is `application/x-www-form-urlencoded`, whatever its parameters.
    pub(crate) fn is_form(&self) -> bool {
        matches!(self.unique_header("content-type"), Ok(Some(v))
            if v.split(';').next().unwrap_or_default().trim_matches([' ', '\t'])
                .eq_ignore_ascii_case("application/x-www-form-urlencoded"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg() -> HttpConfig {
        HttpConfig { max_head: 64, max_body: 8, ..HttpConfig::new("http://x") }
    }

    #[test]
    fn framing() {
        let c = cfg();
        assert_eq!(frame(&c, b"GET / HTTP/1.1\r\nHost: x\r\n"), Frame::Incomplete);
        assert_eq!(frame(&c, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"), Frame::Request { head: 27, body: 0 });
        assert_eq!(frame(&c, b"GET / HTTP/1.1\r\n\r\n"), Frame::Reject(Reject::BadRequest));
        assert_eq!(frame(&c, b"GET / HTTP/1.0\r\n\r\n"), Frame::Request { head: 18, body: 0 });
        assert!(matches!(frame(&c, b"POST / HTTP/1.1\r\nHost: x\r\n\r\n"), Frame::Request { body: 0, .. }));
        assert_eq!(
            frame(&c, b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 9\r\n\r\n"),
            Frame::Reject(Reject::ContentTooLarge)
        );
        assert_eq!(frame(&c, b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\na"), Frame::Incomplete);
        assert_eq!(
            frame(&c, b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: +2\r\n\r\nab"),
            Frame::Reject(Reject::BadRequest)
        );
        assert_eq!(
            frame(&c, b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"),
            Frame::Reject(Reject::NotImplemented)
        );
        assert_eq!(frame(&c, b"GE\x01 / HTTP/1.1\r\n"), Frame::Reject(Reject::BadRequest));
        assert_eq!(frame(&c, b"GET / HTTP/2.0\r\n"), Frame::Reject(Reject::BadRequest));
        let mut long = [b'a'; 70];
        long[..5].copy_from_slice(b"GET /");
        assert_eq!(frame(&c, &long), Frame::Reject(Reject::UriTooLong));
        assert_eq!(
            frame(&c, b"GET / HTTP/1.1\r\nHost: x\r\nX: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"),
            Frame::Reject(Reject::HeadersTooLarge)
        );
    }

    #[test]
    fn targets() {
        assert_eq!(Request::split_target("/a?b=c"), ("/a", Some("b=c")));
        assert_eq!(Request::split_target("/a"), ("/a", None));
        assert_eq!(Request::split_target("http://h:1/x?y"), ("/x", Some("y")));
        assert_eq!(Request::split_target("http://h:1"), ("/", None));
        assert_eq!(Request::split_target("*"), ("*", None));
    }

    #[test]
    fn trimming() {
        assert_eq!(trim(b"  a b\t"), b"a b");
        assert_eq!(trim(b"   "), b"");
        assert_eq!(trim(b""), b"");
    }
}
