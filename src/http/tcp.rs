//! A std [`Transport`] over `TcpStream` (feature `std`), for the timed drivers on a host.
//!
//! Reads and writes wait with the socket's own timeouts (`SO_RCVTIMEO`, `SO_SNDTIMEO`). A timeout is
//! set again (a system call) only when the one set could let a call wait past what the driver allows
//! by more than a hundredth, or is under half of it: on a keep-alive connection whose requests come
//! whole, that is a few times per connection, not once per read.

use std::io::{self, Read as _, Write as _};
use std::net::{Shutdown, TcpStream};
use std::time::{Duration, Instant};

use super::conn::{Clock, Transport};

/// A `TcpStream` (or a reference to one) as a [`Transport`].
#[derive(Debug)]
pub struct Tcp<S> {
    stream: S,
    read_armed: Option<u64>,
    write_armed: Option<u64>,
}

impl<S> Tcp<S> {
    /// Wraps a stream (`TcpStream` or `&TcpStream`).
    pub const fn new(stream: S) -> Self {
        Self { stream, read_armed: None, write_armed: None }
    }

    /// The stream.
    pub fn get_ref(&self) -> &S {
        &self.stream
    }
}

/// Whether a timeout of `armed` ms is wrong for a call that may wait `left` ms.
fn rearm(armed: Option<u64>, left: u64) -> bool {
    armed.is_none_or(|a| a > left.saturating_add(left / 100) || a < left / 2)
}

fn millis(ms: u64) -> Duration {
    Duration::from_millis(ms.max(1))
}

fn timed_out(e: &io::Error) -> bool {
    matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut)
}

impl<S> embedded_io::ErrorType for Tcp<S> {
    type Error = io::Error;
}

impl<S: core::borrow::Borrow<TcpStream>> Transport for Tcp<S> {
    fn read_within(&mut self, buf: &mut [u8], timeout_ms: u64) -> io::Result<Option<usize>> {
        let stream = self.stream.borrow();
        if rearm(self.read_armed, timeout_ms) {
            stream.set_read_timeout(Some(millis(timeout_ms)))?;
            self.read_armed = Some(timeout_ms);
        }
        match (&mut &*stream).read(buf) {
            Ok(n) => Ok(Some(n)),
            Err(e) if timed_out(&e) => Ok(None),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => Ok(None),
            Err(e) => Err(e),
        }
    }

    fn write_within(&mut self, buf: &[u8], timeout_ms: u64) -> io::Result<Option<usize>> {
        let stream = self.stream.borrow();
        if rearm(self.write_armed, timeout_ms) {
            stream.set_write_timeout(Some(millis(timeout_ms)))?;
            self.write_armed = Some(timeout_ms);
        }
        match (&mut &*stream).write(buf) {
            Ok(n) => Ok(Some(n)),
            Err(e) if timed_out(&e) || e.kind() == io::ErrorKind::Interrupted => Ok(None),
            Err(e) => Err(e),
        }
    }

    fn shutdown_write(&mut self) -> io::Result<()> {
        self.stream.borrow().shutdown(Shutdown::Write)
    }
}

/// The host's monotonic clock: milliseconds since it was made.
#[derive(Debug, Clone, Copy)]
pub struct StdClock(Instant);

impl StdClock {
    /// A clock starting at 0 now.
    pub fn new() -> Self {
        Self(Instant::now())
    }
}

impl Default for StdClock {
    fn default() -> Self {
        Self::new()
    }
}

impl Clock for StdClock {
    fn now_ms(&self) -> u64 {
        u64::try_from(self.0.elapsed().as_millis()).unwrap_or(u64::MAX)
    }
}
