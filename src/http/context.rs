//! What a request is answered with besides its bytes, and what answering it produced.

use core::net::SocketAddr;
use core::ops::Range;

use crate::provider::Provider;

/// Everything a request needs besides its bytes. Build one per request (typically under the lock
/// that guards the provider); it borrows, it owns nothing.
pub struct Context<'a, C, G, const F: usize, const S: usize, A: ?Sized, R: ?Sized> {
    /// The authorization server state.
    pub provider: &'a mut Provider<C, G, F, S>,
    /// The application: users, protected routes, other routes, logging.
    pub app: &'a mut A,
    /// The RNG for codes.
    pub rng: &'a mut R,
    /// The current time, in the provider's seconds.
    pub now: u64,
    /// The peer, if known (shown to the application and in logs).
    pub peer: Option<SocketAddr>,
}

/// What [`super::handle`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// The input does not hold a whole request yet: read more and call again with all the bytes.
    /// Nothing was consumed or written.
    NeedMore,
    /// The first request was answered.
    Respond(Served),
}

/// An answered request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Served {
    /// Input bytes used by the request; the rest (pipelined requests) is for the next call.
    pub consumed: usize,
    /// Where the response starts in the output buffer (the status line is written in front of the
    /// headers, so the response does not start at 0).
    pub start: usize,
    /// Bytes of response from `start` (0 only if the buffer cannot even hold a bare 500).
    pub written: usize,
    /// False when the connection must close once the response is sent.
    pub keep_alive: bool,
    /// The status sent.
    pub status: u16,
}

impl Served {
    /// The response's bytes in the output buffer: `output[served.range()]`.
    pub fn range(&self) -> Range<usize> {
        self.start..self.start.saturating_add(self.written)
    }
}
