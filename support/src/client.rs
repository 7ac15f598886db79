//! A small HTTP/1.1 client for tests: requests written as bytes, responses parsed from bytes or read
//! from a stream. Strict where the crate promises something: every response carries
//! `Content-Length`, and one without it is not a response here.

use std::io::{self, Read, Write as _};
use std::string::String;
use std::vec::Vec;

/// `application/x-www-form-urlencoded`.
pub const FORM: &str = "application/x-www-form-urlencoded";

/// An HTTP/1.1 request to `host`: the headers given, then `Content-Length` on anything but GET
/// unless given (no `Content-Type` is added: a test of a missing one must be able to leave it out).
pub fn request(method: &str, target: &str, host: &str, headers: &[(&str, &str)], body: &str) -> Vec<u8> {
    let has = |name: &str| headers.iter().any(|(n, _)| n.eq_ignore_ascii_case(name));
    let mut r = Vec::with_capacity(128 + body.len());
    let _ = write!(r, "{method} {target} HTTP/1.1\r\nHost: {host}\r\n");
    for (n, v) in headers {
        let _ = write!(r, "{n}: {v}\r\n");
    }
    if method != "GET" && !has("content-length") && !has("transfer-encoding") {
        let _ = write!(r, "Content-Length: {}\r\n", body.len());
    }
    r.extend_from_slice(b"\r\n");
    r.extend_from_slice(body.as_bytes());
    r
}

/// A parsed response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resp {
    /// The status code.
    pub status: u16,
    /// The header lines, names as sent.
    pub headers: Vec<(String, String)>,
    /// The body.
    pub body: Vec<u8>,
    /// False when the response said `Connection: close`.
    pub keep_alive: bool,
}

impl Resp {
    /// The first header of that name (any case).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }

    /// The body as text; panics when it is not UTF-8 (every body of the crate is).
    pub fn text(&self) -> &str {
        std::str::from_utf8(&self.body).unwrap_or_else(|e| panic!("body not UTF-8 ({e}): {:?}", self.body))
    }

    /// The body as JSON, which its `Content-Type` must announce; panics otherwise.
    pub fn json(&self) -> serde_json::Value {
        assert_eq!(self.header("content-type"), Some("application/json"), "{self:?}");
        serde_json::from_slice(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.text()))
    }
}

/// The length of the whole response at the start of `buf` (head and `Content-Length` body), once
/// it is all there; `None` before, and for a head without `Content-Length`.
pub fn complete(buf: &[u8]) -> Option<usize> {
    let head = buf.windows(4).position(|w| w == b"\r\n\r\n")? + 4;
    let text = std::str::from_utf8(buf.get(..head)?).ok()?;
    let body = text
        .lines()
        .find_map(|l| l.split_once(':').filter(|(n, _)| n.eq_ignore_ascii_case("content-length")))
        .and_then(|(_, v)| v.trim().parse::<usize>().ok())?;
    let end = head.checked_add(body)?;
    (buf.len() >= end).then_some(end)
}

/// The response at the start of `buf` and its length, once it is all there.
pub fn parse(buf: &[u8]) -> Option<(Resp, usize)> {
    let end = complete(buf)?;
    let head = buf.windows(4).position(|w| w == b"\r\n\r\n")?;
    let text = std::str::from_utf8(buf.get(..head)?).ok()?;
    let mut lines = text.split("\r\n");
    let status = lines.next()?.split(' ').nth(1)?.parse().ok()?;
    let headers: Vec<(String, String)> =
        lines.filter_map(|l| l.split_once(':')).map(|(n, v)| (n.trim().into(), v.trim().into())).collect();
    let keep_alive =
        !headers.iter().any(|(n, v)| n.eq_ignore_ascii_case("connection") && v.eq_ignore_ascii_case("close"));
    let body = buf.get(head + 4..end)?.to_vec();
    Some((Resp { status, headers, body, keep_alive }, end))
}

/// Every whole response in `buf`, in order; panics on bytes that are not one (a partial response, a
/// head without `Content-Length`).
pub fn parse_all(mut buf: &[u8]) -> Vec<Resp> {
    let mut all = Vec::new();
    while !buf.is_empty() {
        let (r, n) = parse(buf).unwrap_or_else(|| panic!("not a whole response: {:?}", String::from_utf8_lossy(buf)));
        all.push(r);
        buf = buf.get(n..).unwrap_or_default();
    }
    all
}

/// Reads one response from `stream` (bytes after it are an error: one request, one response). A
/// response without `Content-Length` is read to the end of the stream and then refused.
pub fn read_response(stream: &mut impl Read) -> io::Result<Resp> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        if let Some((r, n)) = parse(&buf) {
            if n != buf.len() {
                return Err(io::Error::other("bytes after the response"));
            }
            return Ok(r);
        }
        let n = stream.read(&mut chunk)?;
        if n == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        buf.extend_from_slice(chunk.get(..n).unwrap_or_default());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_carry_host_and_length_but_no_invented_content_type() {
        let r = request("POST", "/oauth/token", "gw.test", &[("X-A", "1")], "a=b");
        assert_eq!(r, b"POST /oauth/token HTTP/1.1\r\nHost: gw.test\r\nX-A: 1\r\nContent-Length: 3\r\n\r\na=b");
        assert_eq!(request("GET", "/", "h", &[], ""), b"GET / HTTP/1.1\r\nHost: h\r\n\r\n");
    }

    #[test]
    fn responses_are_framed_by_content_length_only() {
        let two = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nokHTTP/1.1 400 Bad Request\r\nconnection: Close\r\ncontent-length: 0\r\n\r\n";
        let all = parse_all(two);
        assert_eq!(all.iter().map(|r| (r.status, r.keep_alive)).collect::<Vec<_>>(), [(200, true), (400, false)]);
        assert_eq!(all[0].text(), "ok");
        assert_eq!(complete(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nok"), None, "body not whole yet");
        assert_eq!(complete(b"HTTP/1.1 200 OK\r\n\r\n"), None, "no Content-Length: not a response here");
        let mut stream: &[u8] = b"HTTP/1.1 204 No Content\r\nContent-Length: 0\r\n\r\nextra";
        assert!(read_response(&mut stream).is_err(), "bytes after the response");
    }
}
