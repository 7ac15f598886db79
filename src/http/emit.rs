//! The response writer: status, headers and body straight into the caller's output buffer.
//!
//! The status may change until the response is finished, so the status line is written last: the
//! writer leaves [`PREFIX_ROOM`] bytes free at the start of the buffer, writes headers and body after
//! them, and at the end puts the status line, `Content-Length` and `Connection` right in front of the
//! headers. Nothing is moved; the response is `output[start..end]` ([`super::Served::range`]).

use core::fmt::{self, Write as _};

use super::status::reason;
use crate::error::BufferTooSmall;

/// Bytes kept free at the start of the output buffer for the status line, `Content-Length` and
/// `Connection`: the longest is `HTTP/1.1 431 Request Header Fields Too Large` with a ten-digit
/// length and `Connection: keep-alive` (98 bytes).
pub const PREFIX_ROOM: usize = 98;

/// A response being written into the output buffer.
///
/// Headers come first, then the body (through [`Response::body`], [`Response::body_with`] or
/// [`core::fmt::Write`]). The status may be changed until the end. The server adds the status line,
/// `Content-Length` and, when needed, `Connection` itself when the response is finished, so those are
/// ignored if set here. A response that does not fit, or a header added after the body or with a CR or
/// LF in it, turns into a bare 500.
#[derive(Debug)]
pub struct Response<'b> {
    buf: &'b mut [u8],
    len: usize,
    body_start: Option<usize>,
    status: u16,
    failed: bool,
    close: bool,
}

/// The `Connection` header a finished response gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Connection {
    /// None: the HTTP/1.1 default (persistent).
    Default,
    /// `Connection: keep-alive` (to an HTTP/1.0 client that asked for it).
    KeepAlive,
    /// `Connection: close`.
    Close,
}

fn is_token(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

impl<'b> Response<'b> {
    /// An empty `200` response over `buf`.
    pub(crate) fn new(buf: &'b mut [u8]) -> Self {
        let failed = buf.len() < PREFIX_ROOM;
        Self { buf, len: PREFIX_ROOM, body_start: None, status: 200, failed, close: false }
    }

    /// Sets the status code (100-999; 200 until set).
    pub fn set_status(&mut self, status: u16) -> &mut Self {
        if (100..1000).contains(&status) {
            self.status = status;
        } else {
            self.failed = true;
        }
        self
    }

    /// The status code so far.
    pub fn status(&self) -> u16 {
        self.status
    }

    /// Closes the connection after this response.
    pub fn close_connection(&mut self) -> &mut Self {
        self.close = true;
        self
    }

    fn push(&mut self, bytes: &[u8]) {
        let end = self.len.saturating_add(bytes.len());
        match self.buf.get_mut(self.len..end) {
            Some(dst) if !self.failed => {
                dst.copy_from_slice(bytes);
                self.len = end;
            }
            _ => self.failed = true,
        }
    }

    fn start_body(&mut self) {
        if self.body_start.is_none() {
            self.push(b"\r\n");
            self.body_start = Some(self.len);
        }
    }

    /// Adds a header. `Content-Length`, `Transfer-Encoding` and `Connection` are the server's and are
    /// ignored.
    pub fn header(&mut self, name: &str, value: &str) -> &mut Self {
        self.header_with(name, |r| r.push(value.as_bytes()))
    }

    /// Adds a header whose value is formatted.
    pub fn header_fmt(&mut self, name: &str, value: fmt::Arguments<'_>) -> &mut Self {
        self.header_with(name, |r| {
            if HeaderValue(r).write_fmt(value).is_err() {
                r.failed = true;
            }
        })
    }

    fn header_with(&mut self, name: &str, value: impl FnOnce(&mut Self)) -> &mut Self {
        if ["content-length", "transfer-encoding", "connection"].iter().any(|n| name.eq_ignore_ascii_case(n)) {
            return self;
        }
        if self.body_start.is_some() || !is_token(name) {
            self.failed = true;
            return self;
        }
        self.push(name.as_bytes());
        self.push(b": ");
        let start = self.len;
        value(self);
        let written = self.buf.get(start..self.len).unwrap_or_default();
        if written.iter().any(|&b| b == b'\r' || b == b'\n' || b == 0) {
            self.failed = true;
        }
        self.push(b"\r\n");
        self
    }

    /// Appends bytes to the body.
    pub fn body(&mut self, bytes: &[u8]) -> &mut Self {
        self.start_body();
        self.push(bytes);
        self
    }

    /// Appends to the body with a writer that fills a slice and returns the bytes written (such as the
    /// JSON writers of [`crate::provider::Provider`]).
    pub fn body_with(&mut self, write: impl FnOnce(&mut [u8]) -> Result<usize, BufferTooSmall>) -> &mut Self {
        self.start_body();
        if self.failed {
            return self;
        }
        let free = self.buf.get_mut(self.len..).unwrap_or_default();
        let room = free.len();
        match write(free) {
            Ok(n) if n <= room => self.len += n,
            _ => self.failed = true,
        }
        self
    }

    /// Forgets everything written and starts again with `status`.
    pub(crate) fn reset(&mut self, status: u16) {
        let buf = core::mem::take(&mut self.buf);
        let close = self.close;
        *self = Self { close, status, ..Self::new(buf) };
    }

    /// Bytes of body written so far (what `Content-Length` says once finished).
    pub(crate) fn body_len(&self) -> usize {
        self.body_start.map_or(0, |b| self.len.saturating_sub(b))
    }

    /// True when the connection will close after this response.
    pub(crate) fn closing(&self) -> bool {
        self.close
    }

    /// Puts the status line, `Content-Length` and `Connection` in front of what was written and returns
    /// where the response is in the buffer (`start..end`); `None` if it did not fit or was malformed.
    pub(crate) fn finish(&mut self, connection: Connection) -> Option<(usize, usize)> {
        self.start_body();
        if self.failed {
            return None;
        }
        let body_len = self.len - self.body_start.unwrap_or(self.len).min(self.len);
        let connection = match (connection, self.close) {
            (_, true) | (Connection::Close, _) => "Connection: close\r\n",
            (Connection::KeepAlive, _) => "Connection: keep-alive\r\n",
            (Connection::Default, _) => "",
        };
        // `HTTP/1.1 <status> <reason>\r\nContent-Length: <n>\r\n<connection>`, without `core::fmt`,
        // written backwards so that it ends where the headers start.
        let (mut status, mut number) = ([0u8; 20], [0u8; 20]);
        let parts: [&[u8]; 8] = [
            b"HTTP/1.1 ",
            decimal(self.status.into(), &mut status),
            b" ",
            reason(self.status).as_bytes(),
            b"\r\nContent-Length: ",
            decimal(body_len, &mut number),
            b"\r\n",
            connection.as_bytes(),
        ];
        let mut start = PREFIX_ROOM;
        for part in parts.iter().rev() {
            start = start.checked_sub(part.len())?;
            self.buf.get_mut(start..start + part.len())?.copy_from_slice(part);
        }
        Some((start, self.len))
    }
}

/// `n` in decimal, written at the end of `digits`.
fn decimal(mut n: usize, digits: &mut [u8; 20]) -> &[u8] {
    let mut at = digits.len();
    while let Some(d) = at.checked_sub(1).and_then(|i| digits.get_mut(i)) {
        *d = b'0' + (n % 10) as u8;
        at -= 1;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    digits.get(at..).unwrap_or_default()
}

/// Writes formatted header values.
struct HeaderValue<'r, 'b>(&'r mut Response<'b>);

impl fmt::Write for HeaderValue<'_, '_> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        self.0.push(s.as_bytes());
        if self.0.failed {
            Err(fmt::Error)
        } else {
            Ok(())
        }
    }
}

impl fmt::Write for Response<'_> {
    /// Appends to the body.
    fn write_str(&mut self, s: &str) -> fmt::Result {
        self.body(s.as_bytes());
        if self.failed {
            Err(fmt::Error)
        } else {
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefix_is_inserted() {
        let mut buf = [0u8; 256];
        let mut r = Response::new(&mut buf);
        r.header("Content-Type", "text/plain").header("Content-Length", "99");
        write!(r, "hi {}", 5).unwrap();
        r.set_status(404);
        let (start, end) = r.finish(Connection::Close).unwrap();
        assert_eq!(
            core::str::from_utf8(&buf[start..end]).unwrap(),
            "HTTP/1.1 404 Not Found\r\nContent-Length: 4\r\nConnection: close\r\nContent-Type: text/plain\r\n\r\nhi 5"
        );
    }

    #[test]
    fn failures() {
        let mut buf = [0u8; 256];
        let mut r = Response::new(&mut buf);
        r.header("X", "a\r\nInjected: 1");
        assert_eq!(r.finish(Connection::Default), None);
        r.reset(500);
        assert!(r.finish(Connection::Default).is_some());
        let mut small = [0u8; PREFIX_ROOM + 30];
        let mut r = Response::new(&mut small);
        r.body(b"0123456789012345678901234567890123");
        assert_eq!(r.finish(Connection::Default), None);
        let mut buf = [0u8; 256];
        let mut r = Response::new(&mut buf);
        r.body(b"x").header("Late", "1");
        assert_eq!(r.finish(Connection::Default), None);
    }
}
