//! Connection drivers over `embedded-io` (blocking) and `embedded-io-async`.
//!
//! A driver reads into the caller's input buffer until [`read_request`] has a whole request (or one to
//! refuse), hands that parsed request to the caller's handler (normally a closure that takes the
//! provider's lock and calls [`super::answer`]), writes the response, keeps the bytes of any pipelined
//! request, and loops until the peer closes, the response says close, or I/O fails. The lock is never
//! held across I/O, and the head is parsed once: once it is whole, the driver only counts bytes until
//! the body is there too.
//!
//! Timeouts are the transport's: give the stream a read timeout (std `TcpStream::set_read_timeout`,
//! embassy-net `TcpSocket::set_timeout`) so idle and dribbling peers are dropped. After a driver
//! returns, close the write side first and drain what the peer still sends for a moment before
//! dropping the socket: closing with unread input makes TCP send a reset, which can destroy the error
//! response the peer has not read yet.

use core::fmt;

use core::ops::Range;

use super::parse::{self, read_request, Framed};
use super::{HttpConfig, Served};

/// Why a driver stopped early. A peer that closes the connection is not an error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ServeError<E> {
    /// Reading, writing or flushing failed (a timeout, a reset…).
    Io(E),
    /// The stream accepted no bytes of a response.
    WriteZero,
    /// The input buffer is shorter than [`HttpConfig::input_buffer_len`].
    BufferTooSmall,
}

impl<E: fmt::Debug> fmt::Display for ServeError<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Io(e) => write!(f, "I/O error: {e:?}"),
            Self::WriteZero => f.write_str("the stream accepted no bytes"),
            Self::BufferTooSmall => f.write_str("input buffer shorter than max_head + max_body"),
        }
    }
}

impl<E: fmt::Debug> core::error::Error for ServeError<E> {}

/// What the connection loop does next.
enum Step {
    /// Read more bytes after the first `filled`.
    Read,
    /// Send `output[range]`, then stop if `close`.
    Write { range: Range<usize>, close: bool },
}

/// Buffered-input state of one connection.
struct Conn {
    /// Bytes of `input` holding received data.
    filled: usize,
    /// Once the head of the next request was parsed but its body is not all there: the request's
    /// length, so the driver waits for it without parsing the head again.
    awaiting: Option<usize>,
}

impl Conn {
    const fn new() -> Self {
        Self { filled: 0, awaiting: None }
    }

    fn step<H>(&mut self, cfg: &HttpConfig, input: &mut [u8], output: &mut [u8], handler: &mut H) -> Step
    where
        H: FnMut(Framed<'_>, &mut [u8]) -> Served,
    {
        let filled = self.filled.min(input.len());
        if filled == 0 || self.awaiting.is_some_and(|total| filled < total) {
            return Step::Read;
        }
        let mut headers = parse::headers();
        let received = input.get_mut(..filled).unwrap_or_default();
        let served = match read_request(cfg, received, &mut headers) {
            Framed::Incomplete { head, .. } => {
                self.awaiting = head.map(|(h, b)| h + b);
                if filled == input.len() {
                    // Unreachable with a buffer of `input_buffer_len` bytes: a request is refused
                    // before it outgrows the buffer. Close rather than spin.
                    return Step::Write { range: 0..0, close: true };
                }
                return Step::Read;
            }
            framed => handler(framed, output),
        };
        self.awaiting = None;
        let consumed = served.consumed.min(filled);
        input.copy_within(consumed..filled, 0);
        self.filled = filled - consumed;
        let range = served.range();
        let range = range.start.min(output.len())..range.end.min(output.len());
        Step::Write { range, close: !served.keep_alive || consumed == 0 }
    }
}

/// Serves one connection over a blocking stream until it closes.
///
/// `input` must hold at least [`HttpConfig::input_buffer_len`] bytes; `output` should hold
/// [`super::MIN_OUTPUT_LEN`]. `handler` answers one parsed request: call [`super::answer`] in it with a
/// [`super::Context`] built under your lock, with the current time.
///
/// ```no_run
/// # fn demo<T: embedded_io::Read + embedded_io::Write>(stream: &mut T) {
/// use oauth2_devices::http::{serve, HttpConfig, Served};
/// let cfg = HttpConfig::new("http://gw.local");
/// let mut input = [0u8; 3072];
/// let mut output = [0u8; 4096];
/// let result = serve(&cfg, stream, &mut input, &mut output, |request, response| {
///     // lock the provider, build a Context, and call oauth2_devices::http::answer(&cfg, …)
/// #   let _ = (request, response);
/// #   Served { consumed: 0, start: 0, written: 0, keep_alive: false, status: 500 }
/// });
/// # let _ = result;
/// # }
/// ```
pub fn serve<T, H>(
    cfg: &HttpConfig,
    io: &mut T,
    input: &mut [u8],
    output: &mut [u8],
    mut handler: H,
) -> Result<(), ServeError<T::Error>>
where
    T: embedded_io::Read + embedded_io::Write + ?Sized,
    H: FnMut(Framed<'_>, &mut [u8]) -> Served,
{
    if input.len() < cfg.input_buffer_len() {
        return Err(ServeError::BufferTooSmall);
    }
    let mut conn = Conn::new();
    loop {
        match conn.step(cfg, input, output, &mut handler) {
            Step::Read => {
                let free = input.get_mut(conn.filled..).unwrap_or_default();
                let n = io.read(free).map_err(ServeError::Io)?;
                if n == 0 {
                    return Ok(());
                }
                conn.filled = conn.filled.saturating_add(n).min(input.len());
            }
            Step::Write { range, close } => {
                let mut rest = output.get(range).unwrap_or_default();
                while !rest.is_empty() {
                    match io.write(rest).map_err(ServeError::Io)? {
                        0 => return Err(ServeError::WriteZero),
                        n => rest = rest.get(n..).unwrap_or_default(),
                    }
                }
                io.flush().map_err(ServeError::Io)?;
                if close {
                    return Ok(());
                }
            }
        }
    }
}

/// Serves one connection over an async stream until it closes: [`serve`] for `embedded-io-async`
/// (embassy-net sockets, for example). The handler stays synchronous: it only computes.
pub async fn serve_async<T, H>(
    cfg: &HttpConfig<'_>,
    io: &mut T,
    input: &mut [u8],
    output: &mut [u8],
    mut handler: H,
) -> Result<(), ServeError<T::Error>>
where
    T: embedded_io_async::Read + embedded_io_async::Write + ?Sized,
    H: FnMut(Framed<'_>, &mut [u8]) -> Served,
{
    if input.len() < cfg.input_buffer_len() {
        return Err(ServeError::BufferTooSmall);
    }
    let mut conn = Conn::new();
    loop {
        match conn.step(cfg, input, output, &mut handler) {
            Step::Read => {
                let free = input.get_mut(conn.filled..).unwrap_or_default();
                let n = io.read(free).await.map_err(ServeError::Io)?;
                if n == 0 {
                    return Ok(());
                }
                conn.filled = conn.filled.saturating_add(n).min(input.len());
            }
            Step::Write { range, close } => {
                let mut rest = output.get(range).unwrap_or_default();
                while !rest.is_empty() {
                    match io.write(rest).await.map_err(ServeError::Io)? {
                        0 => return Err(ServeError::WriteZero),
                        n => rest = rest.get(n..).unwrap_or_default(),
                    }
                }
                io.flush().await.map_err(ServeError::Io)?;
                if close {
                    return Ok(());
                }
            }
        }
    }
}
