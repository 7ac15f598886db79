//! The connection policy: how long a connection may take for what, in one place.
//!
//! A connection is always in one of four [`State`]s, and each state has its own deadline
//! ([`Limits`]):
//!
//! | state | from | until | deadline | on expiry |
//! |---|---|---|---|---|
//! | [`State::Idle`] | accept, or the end of a response with no pipelined bytes | the first byte of a request | [`Limits::idle_deadline`] | close (nothing was asked) |
//! | [`State::Reading`] | the first byte of a head | the last byte of its body | [`Limits::head_deadline`] | `408` and close |
//! | [`State::Writing`] | the first byte of a response | its last byte | [`Limits::write_deadline`] | close |
//! | [`State::Draining`] | the end of a response that closes (FIN sent) | the peer's FIN | [`Limits::drain_deadline`] and [`Limits::drain_max_bytes`] | close |
//!
//! Why these four: a peer that sends nothing costs a connection for the idle deadline only, which is
//! shorter than the head deadline, so idle keep-alive connections are cheap to reclaim; a peer that
//! dribbles a request a byte at a time is cut off by the head deadline *in total*, not per read; and a
//! peer that keeps sending after the server said `Connection: close` is drained (so TCP does not
//! answer its unread bytes with a reset that would destroy the response) for a bounded time and
//! byte count, never longer. The deadlines run on a monotonic [`Clock`] in milliseconds, so the policy
//! is tested on a simulated clock and runs the same on a host and on a board.
//!
//! [`Session`] is the sans-IO state machine of one connection; the timed drivers
//! ([`super::serve_timed`], [`super::serve_timed_async`]) drive it over a [`Transport`] that can read
//! and write with a timeout (on std: `http::tcp::Tcp`, feature `std`). Above the connections,
//! [`super::pool::Pool`] decides who gets a connection at all.
//!
//! # Sizing
//! [`Limits::HOST`] suits a host serving browsers and device clients over a LAN or the Internet;
//! [`Limits::EMBEDDED`] a board with a handful of sockets, where every second a socket is held
//! matters more. A head deadline must cover the slowest honest client's whole request (a few
//! hundred bytes: well under a second on any link that can run the device flow); the idle deadline
//! only needs to cover a client's think time between keep-alive requests (a device polling every
//! five seconds opens a new connection or keeps one; both work).

/// A monotonic clock in milliseconds. Only differences matter; it must never step back.
pub trait Clock {
    /// Milliseconds since an arbitrary origin.
    fn now_ms(&self) -> u64;
}

impl<C: Clock + ?Sized> Clock for &C {
    fn now_ms(&self) -> u64 {
        (**self).now_ms()
    }
}

/// The deadlines of a connection, in milliseconds (see the [module docs](self)).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// From the first byte of a request's head to the last byte of its body.
    pub head_deadline: u64,
    /// Between keep-alive requests (and from accept to the first byte). Shorter than the head
    /// deadline: an idle connection is the cheapest one to reclaim.
    pub idle_deadline: u64,
    /// How long input is drained after a response that closes the connection.
    pub drain_deadline: u64,
    /// How many bytes are drained at most after a response that closes the connection.
    pub drain_max_bytes: usize,
    /// From the first byte of a response to its last.
    pub write_deadline: u64,
}

impl Limits {
    /// A host's limits: 10 s for a request, 5 s idle, a 1 s / 16 KiB drain, 10 s to write.
    pub const HOST: Self = Self {
        head_deadline: 10_000,
        idle_deadline: 5_000,
        drain_deadline: 1_000,
        drain_max_bytes: 16 * 1024,
        write_deadline: 10_000,
    };

    /// A board's limits: 5 s for a request, 2 s idle, a 0.5 s / 2 KiB drain, 5 s to write.
    pub const EMBEDDED: Self = Self {
        head_deadline: 5_000,
        idle_deadline: 2_000,
        drain_deadline: 500,
        drain_max_bytes: 2 * 1024,
        write_deadline: 5_000,
    };
}

impl Default for Limits {
    fn default() -> Self {
        Self::HOST
    }
}

/// A point in time on a [`Clock`] after which something has taken too long.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Deadline {
    at: u64,
}

impl Deadline {
    /// `after` milliseconds from `now`.
    pub const fn after(now: u64, after: u64) -> Self {
        Self { at: now.saturating_add(after) }
    }

    /// The clock value it expires at.
    pub const fn at(&self) -> u64 {
        self.at
    }

    /// Milliseconds left at `now`; `None` once it expired.
    pub const fn left(&self, now: u64) -> Option<u64> {
        match self.at.checked_sub(now) {
            Some(0) | None => None,
            left => left,
        }
    }
}

/// Where a connection is (see the [module docs](self)).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum State {
    /// Waiting for the first byte of a request.
    Idle,
    /// A request has begun and is not whole yet.
    Reading,
    /// A response is being sent.
    Writing,
    /// The last response said close; the peer's remaining input is being discarded.
    Draining,
}

/// The deadlines of one connection, as a sans-IO state machine: tell it what happened, ask it how long
/// the next read may wait.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Session {
    limits: Limits,
    state: State,
    deadline: Deadline,
    /// The deadline of the request being read, kept while its interim `100 Continue` or its response
    /// is written.
    request: Deadline,
    drained: usize,
}

impl Session {
    /// A connection accepted at `now`: idle.
    pub const fn new(limits: Limits, now: u64) -> Self {
        let deadline = Deadline::after(now, limits.idle_deadline);
        Self { limits, state: State::Idle, deadline, request: deadline, drained: 0 }
    }

    /// The limits it runs with.
    pub const fn limits(&self) -> &Limits {
        &self.limits
    }

    /// The current state.
    pub const fn state(&self) -> State {
        self.state
    }

    /// The current state's deadline.
    pub const fn deadline(&self) -> Deadline {
        self.deadline
    }

    /// How long the next read or write may wait at `now`; `None` when the state's deadline passed.
    pub const fn left(&self, now: u64) -> Option<u64> {
        self.deadline.left(now)
    }

    /// Bytes of a request arrived at `now`: an idle connection starts reading (its head deadline runs
    /// from now).
    pub fn received(&mut self, now: u64) {
        if self.state == State::Idle {
            self.state = State::Reading;
            self.request = Deadline::after(now, self.limits.head_deadline);
            self.deadline = self.request;
        }
    }

    /// A response (or an interim `100 Continue`) starts at `now`.
    pub fn writing(&mut self, now: u64) {
        self.state = State::Writing;
        self.deadline = Deadline::after(now, self.limits.write_deadline);
    }

    /// An interim `100 Continue` was sent: the same request goes on reading, under its own deadline.
    pub fn continued(&mut self) {
        self.state = State::Reading;
        self.deadline = self.request;
    }

    /// A response was sent at `now` and the connection stays open; `pending` when bytes of a next
    /// (pipelined) request are already there, whose head deadline then runs from now.
    pub fn responded(&mut self, now: u64, pending: bool) {
        if pending {
            self.state = State::Reading;
            self.request = Deadline::after(now, self.limits.head_deadline);
            self.deadline = self.request;
        } else {
            self.state = State::Idle;
            self.deadline = Deadline::after(now, self.limits.idle_deadline);
        }
    }

    /// The response that closes the connection was sent at `now`: drain.
    pub fn draining(&mut self, now: u64) {
        self.state = State::Draining;
        self.drained = 0;
        self.deadline = Deadline::after(now, self.limits.drain_deadline);
    }

    /// `n` more bytes were drained; false once [`Limits::drain_max_bytes`] is reached (stop).
    pub fn drained(&mut self, n: usize) -> bool {
        self.drained = self.drained.saturating_add(n);
        self.drained < self.limits.drain_max_bytes
    }

    /// Bytes drained so far.
    pub const fn drained_bytes(&self) -> usize {
        self.drained
    }
}

/// Why a timed driver stopped serving a connection (none of them is an error).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[non_exhaustive]
pub enum Closed {
    /// The peer closed its side between requests.
    Peer,
    /// The idle deadline passed with no request begun.
    Idle,
    /// A request was not whole by the head deadline (answered `408`).
    HeadDeadline,
    /// A response took longer than the write deadline to send.
    WriteDeadline,
    /// A response said `Connection: close` (or a framing error did); the drain ended.
    Response,
}

/// A byte stream that reads and writes with a timeout: what the timed drivers need. On std,
/// `http::tcp::Tcp` (feature `std`); on embassy-net, a `TcpSocket` with each call under `with_timeout`.
pub trait Transport: embedded_io::ErrorType {
    /// Reads into `buf`, waiting at most `timeout_ms`: `Ok(Some(0))` when the peer closed,
    /// `Ok(None)` when the time passed with nothing read.
    fn read_within(&mut self, buf: &mut [u8], timeout_ms: u64) -> Result<Option<usize>, Self::Error>;
    /// Writes some of `buf`, waiting at most `timeout_ms`: `Ok(None)` when nothing could be written
    /// in time.
    fn write_within(&mut self, buf: &[u8], timeout_ms: u64) -> Result<Option<usize>, Self::Error>;
    /// Sends what was written and closes the write side (TCP FIN), so the peer sees the end of the
    /// last response before its input is drained.
    fn shutdown_write(&mut self) -> Result<(), Self::Error>;
}

/// [`Transport`] for async streams (embassy-net: each call under `embassy_time::with_timeout`).
#[allow(async_fn_in_trait)]
pub trait AsyncTransport: embedded_io_async::ErrorType {
    /// As [`Transport::read_within`].
    async fn read_within(&mut self, buf: &mut [u8], timeout_ms: u64) -> Result<Option<usize>, Self::Error>;
    /// As [`Transport::write_within`].
    async fn write_within(&mut self, buf: &[u8], timeout_ms: u64) -> Result<Option<usize>, Self::Error>;
    /// As [`Transport::shutdown_write`].
    async fn shutdown_write(&mut self) -> Result<(), Self::Error>;
}

#[cfg(test)]
mod tests {
    use super::*;

    const L: Limits =
        Limits { head_deadline: 100, idle_deadline: 40, drain_deadline: 20, drain_max_bytes: 10, write_deadline: 50 };

    #[test]
    fn deadline_expires_at_its_time() {
        let d = Deadline::after(10, 5);
        assert_eq!((d.at(), d.left(10), d.left(14), d.left(15), d.left(99)), (15, Some(5), Some(1), None, None));
        assert_eq!(Deadline::after(u64::MAX - 1, 9).at(), u64::MAX);
    }

    #[test]
    fn every_state_has_its_deadline() {
        let mut s = Session::new(L, 1000);
        assert_eq!((s.state(), s.deadline().at()), (State::Idle, 1040));
        // Idle until the first byte; the head deadline then runs from that byte, not from accept.
        s.received(1030);
        assert_eq!((s.state(), s.deadline().at()), (State::Reading, 1130));
        // More bytes do not extend it (a dribbling peer is cut off in total).
        s.received(1100);
        assert_eq!(s.deadline().at(), 1130);
        assert_eq!(s.left(1129), Some(1));
        assert_eq!(s.left(1130), None);
        // An interim 100 Continue is written under the write deadline, then reading resumes under the
        // request's own deadline.
        s.writing(1110);
        assert_eq!((s.state(), s.deadline().at()), (State::Writing, 1160));
        s.continued();
        assert_eq!((s.state(), s.deadline().at()), (State::Reading, 1130));
        s.writing(1120);
        s.responded(1125, false);
        assert_eq!((s.state(), s.deadline().at()), (State::Idle, 1165));
        // A pipelined request already there: reading at once, with a fresh head deadline.
        s.received(1130);
        s.writing(1131);
        s.responded(1132, true);
        assert_eq!((s.state(), s.deadline().at()), (State::Reading, 1232));
        s.writing(1140);
        s.draining(1150);
        assert_eq!((s.state(), s.deadline().at()), (State::Draining, 1170));
        assert!(s.drained(9));
        assert!(!s.drained(1));
        assert_eq!(s.drained_bytes(), 10);
        // Receiving while draining changes nothing.
        s.received(1160);
        assert_eq!(s.state(), State::Draining);
    }

    #[test]
    fn defaults_keep_idle_shorter_than_head() {
        for l in [Limits::HOST, Limits::EMBEDDED, Limits::default()] {
            assert!(l.idle_deadline < l.head_deadline);
            assert!(l.drain_deadline < l.idle_deadline);
            assert!(l.drain_max_bytes > 0);
        }
    }
}
