//! Request framing and parsing: where a request ends, and the borrowed view of it.
//!
//! A request is parsed **once**. [`read_request`] finds the end of the head with a byte scan (no
//! parse), refuses a head that outgrows [`HttpConfig::max_head`], then parses the head with `httparse`
//! and checks the framing headers (`Content-Length`, `Transfer-Encoding`, `Host`). Its result, a
//! [`Framed::Request`], carries the parsed [`Request`] and the body, split from the input so the body
//! can be decoded in place; the driver hands it to the handler and nothing parses the head again. When
//! the head is whole but the body is not, the driver remembers the request's length and does not look
//! at the head again until every byte is there.

use core::net::SocketAddr;

use super::HttpConfig;

/// Most header lines in a request (431 above). The parser keeps them in an array of this size
/// (16 bytes each on a 32-bit target), owned by the caller of [`read_request`].
pub const MAX_HEADERS: usize = 32;

/// The header array [`read_request`] parses into.
pub type Headers<'h> = [httparse::Header<'h>; MAX_HEADERS];

/// An empty [`Headers`] array.
pub const fn headers<'h>() -> Headers<'h> {
    [httparse::EMPTY_HEADER; MAX_HEADERS]
}

/// Why a request was refused before routing. Every rejection closes the connection; the status of
/// each is decided in `status.rs` ([`Reject::status`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[non_exhaustive]
pub enum Reject {
    /// Not HTTP/1.x, or a malformed request line, header, `Content-Length` or `Host`.
    BadRequest,
    /// The body is longer than [`HttpConfig::max_body`].
    ContentTooLarge,
    /// The request line alone does not fit in [`HttpConfig::max_head`].
    UriTooLong,
    /// The headers do not fit in [`HttpConfig::max_head`] or are more than [`MAX_HEADERS`].
    HeadersTooLarge,
    /// A `Transfer-Encoding` (chunked bodies are not supported).
    NotImplemented,
    /// An `Expect` other than `100-continue` (RFC 9110 §10.1.1).
    ExpectationFailed,
}

impl Reject {
    pub(crate) const fn message(self) -> &'static str {
        match self {
            Self::BadRequest => "Bad request\n",
            Self::ContentTooLarge => "Request body too large\n",
            Self::UriTooLong => "Request line too long\n",
            Self::HeadersTooLarge => "Request headers too large\n",
            Self::NotImplemented => "Transfer-Encoding not supported; send Content-Length\n",
            Self::ExpectationFailed => "Only Expect: 100-continue is supported\n",
        }
    }
}

/// Where the first request in a buffer stands (lengths only; see [`read_request`] for the parse).
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

/// The first request of a buffer, parsed once.
#[derive(Debug)]
pub enum Framed<'a> {
    /// More bytes are needed. `head`, once the head is whole, says how long the request is (head and
    /// body), so the caller can wait for that many bytes without parsing again; `expects_continue` is
    /// set when the client sent `Expect: 100-continue` and waits for an interim answer.
    Incomplete {
        /// `Some((head, body))` once the head was parsed.
        head: Option<(usize, usize)>,
        /// The client asked for `100 Continue` before it sends the body.
        expects_continue: bool,
    },
    /// A whole request, its body split off for in-place decoding.
    Request {
        /// The parsed request (its `body()` is empty: the body is the next field).
        request: Request<'a>,
        /// The body, `Content-Length` bytes.
        body: &'a mut [u8],
        /// Bytes of input the request takes (head and body).
        consumed: usize,
    },
    /// Refused: answer with the rejection and close. `consumed` is the whole input: nothing after a
    /// framing error can be trusted.
    Reject {
        /// Why.
        reject: Reject,
        /// The input's length.
        consumed: usize,
    },
}

/// The end of the head (after the blank line), found by a scan for an empty line: `\n\n` or `\n\r\n`.
fn head_end(input: &[u8]) -> Option<usize> {
    let mut at = 0;
    while let Some(i) = input.get(at..).and_then(|rest| rest.iter().position(|&b| b == b'\n')) {
        let nl = at + i;
        match (input.get(nl + 1), input.get(nl + 2)) {
            (Some(b'\n'), _) => return Some(nl + 2),
            (Some(b'\r'), Some(b'\n')) => return Some(nl + 3),
            _ => at = nl + 1,
        }
    }
    None
}

/// Where the head of the first request ends: `Ok(Some(len))`, `Ok(None)` while it is not whole, or why
/// it is refused. An unfinished head is checked by a parse of what arrived (so garbage is refused at
/// once, not when the buffer is full); a whole one is left for the caller's single parse.
fn locate(cfg: &HttpConfig, input: &[u8]) -> Result<Option<usize>, Reject> {
    if let Some(end) = head_end(input.get(..cfg.max_head.min(input.len())).unwrap_or_default()) {
        return Ok(Some(end));
    }
    let mut scratch = headers();
    match httparse::Request::new(&mut scratch).parse(input) {
        Err(httparse::Error::TooManyHeaders) => return Err(Reject::HeadersTooLarge),
        Err(_) => return Err(Reject::BadRequest),
        Ok(_) => {}
    }
    if input.len() < cfg.max_head {
        return Ok(None);
    }
    let line_ended = input.iter().take(cfg.max_head).any(|&b| b == b'\n');
    Err(if line_ended { Reject::HeadersTooLarge } else { Reject::UriTooLong })
}

/// Parses a whole head (`head` ends with its blank line) into `headers`: the request and its body
/// length.
fn parse_head<'a>(
    cfg: &HttpConfig,
    head: &'a [u8],
    headers: &'a mut Headers<'a>,
) -> Result<(Request<'a>, usize), Reject> {
    let mut req = httparse::Request::new(headers);
    match req.parse(head) {
        Ok(httparse::Status::Complete(n)) if n == head.len() => {}
        Err(httparse::Error::TooManyHeaders) => return Err(Reject::HeadersTooLarge),
        _ => return Err(Reject::BadRequest),
    }
    let httparse::Request { method, path, version, headers } = req;
    let headers: &'a [httparse::Header<'a>] = headers;
    let (Some(method), Some(target), Some(minor)) = (method, path, version) else {
        return Err(Reject::BadRequest);
    };
    let body_len = body_length(headers, minor)?;
    if body_len > cfg.max_body {
        return Err(Reject::ContentTooLarge);
    }
    // An HTTP/1.0 server ignores Expect (RFC 9110 §10.1.1); 1.1 knows only `100-continue`.
    if minor >= 1
        && headers
            .iter()
            .any(|h| h.name.eq_ignore_ascii_case("expect") && !trim(h.value).eq_ignore_ascii_case(b"100-continue"))
    {
        return Err(Reject::ExpectationFailed);
    }
    let (path, query) = Request::split_target(target);
    Ok((Request { method, path, query, minor, headers, body: &[], peer: None }, body_len))
}

/// Frames and parses the first request in `input` into `headers` (see the module docs).
pub fn read_request<'a>(cfg: &HttpConfig, input: &'a mut [u8], headers: &'a mut Headers<'a>) -> Framed<'a> {
    let total = input.len();
    let head_len = match locate(cfg, input) {
        Ok(Some(n)) => n,
        Ok(None) => return Framed::Incomplete { head: None, expects_continue: false },
        Err(reject) => return Framed::Reject { reject, consumed: total },
    };
    let (head, rest) = input.split_at_mut(head_len);
    let (request, body_len) = match parse_head(cfg, head, headers) {
        Ok(parsed) => parsed,
        Err(reject) => return Framed::Reject { reject, consumed: total },
    };
    if total - head_len < body_len {
        let expects_continue = body_len > 0 && request.expects_continue();
        return Framed::Incomplete { head: Some((head_len, body_len)), expects_continue };
    }
    let body = rest.get_mut(..body_len).unwrap_or_default();
    Framed::Request { request, body, consumed: head_len + body_len }
}

/// Where the first request in `input` ends, or why it is refused: the lengths-only form of
/// [`read_request`], for callers that only need to know whether a request is whole.
pub fn frame(cfg: &HttpConfig, input: &[u8]) -> Frame {
    let head_len = match locate(cfg, input) {
        Ok(Some(n)) => n,
        Ok(None) => return Frame::Incomplete,
        Err(r) => return Frame::Reject(r),
    };
    let mut h = headers();
    match parse_head(cfg, input.get(..head_len).unwrap_or_default(), &mut h) {
        Ok((_, body)) if input.len() - head_len < body => Frame::Incomplete,
        Ok((_, body)) => Frame::Request { head: head_len, body },
        Err(r) => Frame::Reject(r),
    }
}

/// The body length of a parsed head, and the `Host` rule (RFC 9112 §3.2, §6).
fn body_length(headers: &[httparse::Header<'_>], minor: u8) -> Result<usize, Reject> {
    let mut length: Option<usize> = None;
    let mut hosts = 0usize;
    for h in headers {
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
    if hosts > 1 || (minor == 1 && hosts == 0) {
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

    /// True when an HTTP/1.1 client sent `Expect: 100-continue` (RFC 9110 §10.1.1).
    pub(crate) fn expects_continue(&self) -> bool {
        self.minor >= 1
            && self
                .headers
                .iter()
                .any(|h| h.name.eq_ignore_ascii_case("expect") && trim(h.value).eq_ignore_ascii_case(b"100-continue"))
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

    fn cfg() -> HttpConfig<'static> {
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
        // Bare LF line endings end a head too.
        assert_eq!(frame(&c, b"GET / HTTP/1.1\nHost: x\n\n"), Frame::Request { head: 24, body: 0 });
    }

    #[test]
    fn read_request_parses_once_and_splits_the_body() {
        let c = cfg();
        let mut input = *b"POST /a?b HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nxyzGET";
        let mut h = headers();
        let Framed::Request { request, body, consumed } = read_request(&c, &mut input, &mut h) else {
            panic!("whole request")
        };
        assert_eq!((request.method(), request.path(), request.query()), ("POST", "/a", Some("b")));
        assert_eq!(request.header("host"), Some("x"));
        assert_eq!((&*body, consumed), (&b"xyz"[..], 53));
        let mut partial = *b"POST / HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 3\r\n\r\nx";
        let c = HttpConfig { max_head: 128, ..cfg() };
        let mut h = headers();
        let Framed::Incomplete { head, expects_continue } = read_request(&c, &mut partial, &mut h) else {
            panic!("body missing")
        };
        assert_eq!((head, expects_continue), (Some((69, 3)), true));
    }

    #[test]
    fn head_end_scan() {
        assert_eq!(head_end(b"a\r\n\r\nb"), Some(5));
        assert_eq!(head_end(b"a\n\nb"), Some(3));
        assert_eq!(head_end(b"a\r\nb\r\n"), None);
        assert_eq!(head_end(b"\n"), None);
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
