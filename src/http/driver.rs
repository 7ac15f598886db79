//! Connection drivers over `embedded-io` (blocking) and `embedded-io-async`.
//!
//! A driver reads into the caller's input buffer until [`read_request`] has a whole request (or one to
//! refuse), hands that parsed request to the caller's handler (normally a closure that takes the
//! provider's lock and calls [`super::answer`]), writes the response, keeps the bytes of any pipelined
//! request, and loops until the peer closes, the response says close, or I/O fails. The lock is never
//! held across I/O, and the head is parsed once: once it is whole, the driver only counts bytes until
//! the body is there too.
//!
//! [`serve`] and [`serve_async`] leave timeouts to the stream. [`serve_timed`] and
//! [`serve_timed_async`] run the connection policy of [`super::conn`] themselves over a
//! [`Transport`] that reads and writes with a timeout: idle, head and write deadlines, and after a
//! response that closes, the half-close and the bounded drain (closing with unread input makes TCP
//! send a reset, which can destroy the response the peer has not read yet). With the untimed drivers
//! the caller does that itself.
//!
//! Both kinds answer `Expect: 100-continue` with `100 Continue` once the head is accepted and before
//! the body is read; a head that will not be read (a body over [`HttpConfig::max_body`], another
//! expectation) gets its final status at once instead.

use core::fmt;

use core::ops::Range;

use super::conn::{AsyncTransport, Clock, Closed, Limits, Session, State, Transport};
use super::parse::{self, read_request, Framed};
use super::{status, HttpConfig, Served};

/// Why a driver stopped early. A peer that closes the connection is not an error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
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
    /// Send `100 Continue`: the client waits for it before it sends the body it announced.
    Continue,
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
    /// `100 Continue` was sent for the request being awaited.
    continued: bool,
}

impl Conn {
    const fn new() -> Self {
        Self { filled: 0, awaiting: None, continued: false }
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
            Framed::Incomplete { head, expects_continue } => {
                self.awaiting = head.map(|(h, b)| h + b);
                if filled == input.len() {
                    // Unreachable with a buffer of `input_buffer_len` bytes: a request is refused
                    // before it outgrows the buffer. Close rather than spin.
                    return Step::Write { range: 0..0, close: true };
                }
                // The head was accepted (a body too long or an unknown expectation is refused by
                // `read_request` with its final status): the body will be read, so ask for it.
                if expects_continue && !self.continued {
                    self.continued = true;
                    return Step::Continue;
                }
                return Step::Read;
            }
            framed => handler(framed, output),
        };
        self.awaiting = None;
        self.continued = false;
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
            Step::Continue => {
                let mut rest = status::CONTINUE;
                while !rest.is_empty() {
                    match io.write(rest).map_err(ServeError::Io)? {
                        0 => return Err(ServeError::WriteZero),
                        n => rest = rest.get(n..).unwrap_or_default(),
                    }
                }
                io.flush().map_err(ServeError::Io)?;
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
            Step::Continue => {
                let mut rest = status::CONTINUE;
                while !rest.is_empty() {
                    match io.write(rest).await.map_err(ServeError::Io)? {
                        0 => return Err(ServeError::WriteZero),
                        n => rest = rest.get(n..).unwrap_or_default(),
                    }
                }
                io.flush().await.map_err(ServeError::Io)?;
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

/// The connection policy a timed driver runs with: the [`Limits`], the [`Clock`] they are measured on,
/// and a callback told each [`State`] the connection enters (a [`super::pool::Pool`] keeps track of its
/// slots with it).
pub struct Timing<'a, K: ?Sized> {
    /// The deadlines.
    pub limits: Limits,
    /// Monotonic milliseconds.
    pub clock: &'a K,
    /// Called with each state the connection enters (idle first).
    pub on_state: &'a mut dyn FnMut(State),
}

impl<K: Clock + ?Sized> Timing<'_, K> {
    fn enter(&mut self, session: &Session) {
        (self.on_state)(session.state());
    }
}

/// Serves one connection like [`serve`], under the connection policy of [`super::conn`]: the idle
/// deadline between requests, the head deadline from the first byte of a request to the end of its
/// body (`408` and close past it), the write deadline for each response, and after a response that
/// closes, a half-close and a drain bounded in time and bytes. Returns why the connection ended.
pub fn serve_timed<T, K, H>(
    cfg: &HttpConfig,
    mut timing: Timing<'_, K>,
    io: &mut T,
    input: &mut [u8],
    output: &mut [u8],
    mut handler: H,
) -> Result<Closed, ServeError<T::Error>>
where
    T: Transport + ?Sized,
    K: Clock + ?Sized,
    H: FnMut(Framed<'_>, &mut [u8]) -> Served,
{
    if input.len() < cfg.input_buffer_len() {
        return Err(ServeError::BufferTooSmall);
    }
    let clock = timing.clock;
    let mut s = Session::new(timing.limits, clock.now_ms());
    timing.enter(&s);
    let mut conn = Conn::new();
    loop {
        let (bytes, close, interim, timed_out) = match conn.step(cfg, input, output, &mut handler) {
            Step::Read => match s.left(clock.now_ms()) {
                None if s.state() == State::Idle => return Ok(Closed::Idle),
                None => (status::REQUEST_TIMEOUT_RESPONSE, true, false, true),
                Some(left) => {
                    let free = input.get_mut(conn.filled..).unwrap_or_default();
                    match io.read_within(free, left).map_err(ServeError::Io)? {
                        None => {}
                        Some(0) => return Ok(Closed::Peer),
                        Some(n) => {
                            let was = s.state();
                            s.received(clock.now_ms());
                            if s.state() != was {
                                timing.enter(&s);
                            }
                            conn.filled = conn.filled.saturating_add(n).min(input.len());
                        }
                    }
                    continue;
                }
            },
            Step::Continue => (status::CONTINUE, false, true, false),
            Step::Write { range, close } => (output.get(range).unwrap_or_default(), close, false, false),
        };
        s.writing(clock.now_ms());
        timing.enter(&s);
        let mut rest = bytes;
        while !rest.is_empty() {
            let Some(left) = s.left(clock.now_ms()) else { return Ok(Closed::WriteDeadline) };
            match io.write_within(rest, left).map_err(ServeError::Io)? {
                None => {}
                Some(0) => return Err(ServeError::WriteZero),
                Some(n) => rest = rest.get(n..).unwrap_or_default(),
            }
        }
        if interim {
            s.continued();
            timing.enter(&s);
        } else if close {
            s.draining(clock.now_ms());
            timing.enter(&s);
            if io.shutdown_write().is_ok() {
                while let Some(left) = s.left(clock.now_ms()) {
                    match io.read_within(input, left) {
                        Ok(None) => {}
                        Ok(Some(n)) if n > 0 && s.drained(n) => {}
                        _ => break,
                    }
                }
            }
            return Ok(if timed_out { Closed::HeadDeadline } else { Closed::Response });
        } else {
            s.responded(clock.now_ms(), conn.filled > 0);
            timing.enter(&s);
        }
    }
}

/// [`serve_timed`] over an [`AsyncTransport`] (embassy-net sockets with `with_timeout`).
pub async fn serve_timed_async<T, K, H>(
    cfg: &HttpConfig<'_>,
    mut timing: Timing<'_, K>,
    io: &mut T,
    input: &mut [u8],
    output: &mut [u8],
    mut handler: H,
) -> Result<Closed, ServeError<T::Error>>
where
    T: AsyncTransport + ?Sized,
    K: Clock + ?Sized,
    H: FnMut(Framed<'_>, &mut [u8]) -> Served,
{
    if input.len() < cfg.input_buffer_len() {
        return Err(ServeError::BufferTooSmall);
    }
    let clock = timing.clock;
    let mut s = Session::new(timing.limits, clock.now_ms());
    timing.enter(&s);
    let mut conn = Conn::new();
    loop {
        let (bytes, close, interim, timed_out) = match conn.step(cfg, input, output, &mut handler) {
            Step::Read => match s.left(clock.now_ms()) {
                None if s.state() == State::Idle => return Ok(Closed::Idle),
                None => (status::REQUEST_TIMEOUT_RESPONSE, true, false, true),
                Some(left) => {
                    let free = input.get_mut(conn.filled..).unwrap_or_default();
                    match io.read_within(free, left).await.map_err(ServeError::Io)? {
                        None => {}
                        Some(0) => return Ok(Closed::Peer),
                        Some(n) => {
                            let was = s.state();
                            s.received(clock.now_ms());
                            if s.state() != was {
                                timing.enter(&s);
                            }
                            conn.filled = conn.filled.saturating_add(n).min(input.len());
                        }
                    }
                    continue;
                }
            },
            Step::Continue => (status::CONTINUE, false, true, false),
            Step::Write { range, close } => (output.get(range).unwrap_or_default(), close, false, false),
        };
        s.writing(clock.now_ms());
        timing.enter(&s);
        let mut rest = bytes;
        while !rest.is_empty() {
            let Some(left) = s.left(clock.now_ms()) else { return Ok(Closed::WriteDeadline) };
            match io.write_within(rest, left).await.map_err(ServeError::Io)? {
                None => {}
                Some(0) => return Err(ServeError::WriteZero),
                Some(n) => rest = rest.get(n..).unwrap_or_default(),
            }
        }
        if interim {
            s.continued();
            timing.enter(&s);
        } else if close {
            s.draining(clock.now_ms());
            timing.enter(&s);
            if io.shutdown_write().await.is_ok() {
                while let Some(left) = s.left(clock.now_ms()) {
                    match io.read_within(input, left).await {
                        Ok(None) => {}
                        Ok(Some(n)) if n > 0 && s.drained(n) => {}
                        _ => break,
                    }
                }
            }
            return Ok(if timed_out { Closed::HeadDeadline } else { Closed::Response });
        } else {
            s.responded(clock.now_ms(), conn.filled > 0);
            timing.enter(&s);
        }
    }
}
