//! A whole connection, twice over the same bytes: the blocking driver (`http::serve`) over an
//! in-memory stream, and the timed driver (`http::serve_timed`) over a simulated transport on a
//! simulated clock, where the bytes arrive in fragments spaced in time, so the connection goes
//! through every state of the connection policy (idle, reading, writing, draining) and runs into
//! each of its deadlines (idle, head, write, drain). Both drivers must end, never fail except on
//! their stream, and write exactly a sequence of well-formed responses (`100 Continue` only before
//! the final response of a request that expects it; `HEAD` responses without their body); after a
//! response that closes nothing more is answered. The timed driver must also keep every deadline:
//! no read waits past one, the drain stops at its deadline or byte cap, and why it closed matches
//! what it wrote.
#![no_main]

#[path = "http_common.rs"]
mod common;

use std::cell::Cell;

use libfuzzer_sys::fuzz_target;
use oauth2_devices::http::conn::{Clock, Closed, Limits, State, Transport};
use oauth2_devices::http::{self, Context, Framed, Timing};

/// `[fragmentation, clock step, stream...]`: the first byte picks the read sizes (0: everything at
/// once; else reads of 1..=byte bytes, varying), the second the seconds that pass before each request
/// and, for the timed driver, the pace of the fragments (the first at once, then `step × 8` ms apart,
/// every third gap `step × 16`), the cost of each write (`step` ms) and whether the peer closes after its last byte (even) or goes silent (odd); the rest
/// is what the peer sends. Plain text after two bytes keeps seeds and dictionaries readable.
struct Input {
    fragments: Vec<u8>,
    clock_step: u8,
    bytes: Vec<u8>,
}

impl Input {
    fn new(data: &[u8]) -> Self {
        let (frag, step, bytes) = match data {
            [f, s, rest @ ..] => (*f, *s, rest.to_vec()),
            _ => (0, 0, data.to_vec()),
        };
        let fragments = if frag == 0 { Vec::new() } else { (1..=frag).rev().chain(1..=frag).collect() };
        Self { fragments, clock_step: step, bytes }
    }

    /// The fragment sizes of `bytes`, in order.
    fn split(&self) -> Vec<usize> {
        let mut sizes = Vec::new();
        let mut left = self.bytes.len();
        while left > 0 {
            let want = match self.fragments.as_slice() {
                [] => left,
                f => usize::from(f[sizes.len() % f.len()]).max(1),
            };
            let n = want.min(left);
            sizes.push(n);
            left -= n;
        }
        sizes
    }
}

struct Stream<'a> {
    data: &'a [u8],
    fragments: &'a [u8],
    reads: usize,
    written: Vec<u8>,
}

impl embedded_io::ErrorType for Stream<'_> {
    type Error = core::convert::Infallible;
}

impl embedded_io::Read for Stream<'_> {
    fn read(&mut self, buf: &mut [u8]) -> Result<usize, Self::Error> {
        let want = match self.fragments {
            [] => self.data.len(),
            f => usize::from(f[self.reads % f.len()]).max(1),
        };
        self.reads += 1;
        let n = want.min(buf.len()).min(self.data.len());
        buf[..n].copy_from_slice(&self.data[..n]);
        self.data = &self.data[n..];
        Ok(n)
    }
}

impl embedded_io::Write for Stream<'_> {
    fn write(&mut self, buf: &[u8]) -> Result<usize, Self::Error> {
        self.written.extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> Result<(), Self::Error> {
        Ok(())
    }
}

/// Small deadlines, so that a fuzz input's pace runs into each of them.
const LIMITS: Limits =
    Limits { head_deadline: 1_000, idle_deadline: 300, drain_deadline: 200, drain_max_bytes: 256, write_deadline: 500 };

struct SimClock(Cell<u64>);

impl Clock for SimClock {
    fn now_ms(&self) -> u64 {
        self.0.get()
    }
}

/// The peer on the simulated clock: fragment `i` of the bytes arrives at `arrivals[i]` ms; after the
/// last one, a FIN at `fin` (if any) or silence. Writes take at most 256 bytes and cost `write_cost`
/// ms each (a slow reader at a large clock step), so a response can run into the write deadline.
struct Sim<'a> {
    clock: &'a SimClock,
    data: &'a [u8],
    sizes: Vec<usize>,
    arrivals: Vec<u64>,
    next: usize,
    /// Bytes of fragment `next` already delivered.
    taken: usize,
    fin: Option<u64>,
    write_cost: u64,
    written: Vec<u8>,
    shut_at: Option<u64>,
    /// Bytes read after the FIN was sent, and when reading stopped.
    drained: usize,
    last_read_at: u64,
}

impl embedded_io::ErrorType for Sim<'_> {
    type Error = core::convert::Infallible;
}

impl Transport for Sim<'_> {
    fn read_within(&mut self, buf: &mut [u8], timeout_ms: u64) -> Result<Option<usize>, Self::Error> {
        assert!(timeout_ms > 0, "a read with no time left");
        let now = self.clock.0.get();
        let limit = now + timeout_ms;
        self.last_read_at = now;
        if let Some(&size) = self.sizes.get(self.next) {
            let at = self.arrivals[self.next];
            if at > limit {
                self.clock.0.set(limit);
                return Ok(None);
            }
            self.clock.0.set(now.max(at));
            let start: usize = self.sizes[..self.next].iter().sum::<usize>() + self.taken;
            let n = (size - self.taken).min(buf.len());
            buf[..n].copy_from_slice(&self.data[start..start + n]);
            self.taken += n;
            if self.taken == size {
                self.next += 1;
                self.taken = 0;
            }
            if self.shut_at.is_some() {
                self.drained += n;
            }
            return Ok(Some(n));
        }
        match self.fin {
            Some(at) if at <= limit => {
                self.clock.0.set(now.max(at));
                Ok(Some(0))
            }
            _ => {
                self.clock.0.set(limit);
                Ok(None)
            }
        }
    }

    fn write_within(&mut self, buf: &[u8], timeout_ms: u64) -> Result<Option<usize>, Self::Error> {
        assert!(timeout_ms > 0, "a write with no time left");
        assert!(self.shut_at.is_none(), "a write after the FIN");
        if self.write_cost > timeout_ms {
            self.clock.0.set(self.clock.0.get() + timeout_ms);
            return Ok(None);
        }
        self.clock.0.set(self.clock.0.get() + self.write_cost);
        let n = buf.len().min(256);
        self.written.extend_from_slice(&buf[..n]);
        Ok(Some(n))
    }

    fn shutdown_write(&mut self) -> Result<(), Self::Error> {
        self.shut_at = Some(self.clock.0.get());
        Ok(())
    }
}

/// Splits what a driver wrote into responses: each well-formed HTTP/1.1 with exactly one
/// `Content-Length` (none on `100 Continue`), no header injection, the body there unless it answers
/// a HEAD. `heads[i]` says whether the `i`-th final response answers a HEAD. Returns the statuses, 100s
/// included, and whether the output ended in the middle of a response (allowed only when a write
/// deadline cut it).
fn responses(mut out: &[u8], heads: &[bool]) -> (Vec<u16>, bool) {
    let mut statuses = Vec::new();
    let mut finals = 0;
    while !out.is_empty() {
        let mut headers = [httparse::EMPTY_HEADER; 32];
        let mut resp = httparse::Response::new(&mut headers);
        let head = match resp.parse(out) {
            Ok(httparse::Status::Complete(n)) => n,
            Ok(httparse::Status::Partial) => return (statuses, true),
            Err(e) => panic!("malformed response head ({e:?}): {:?}", String::from_utf8_lossy(out)),
        };
        assert_eq!(resp.version, Some(1), "HTTP/1.1 responses only");
        let status = resp.code.expect("status");
        for h in resp.headers.iter() {
            assert!(!h.value.iter().any(|&b| b == b'\r' || b == b'\n'), "header injection");
        }
        let lengths: Vec<usize> = resp
            .headers
            .iter()
            .filter(|h| h.name.eq_ignore_ascii_case("content-length"))
            .map(|h| std::str::from_utf8(h.value).expect("ascii").trim().parse().expect("a number"))
            .collect();
        statuses.push(status);
        if status == 100 {
            assert!(resp.headers.is_empty(), "a bare 100 Continue");
            out = &out[head..];
            continue;
        }
        assert!((200..600).contains(&status));
        assert_eq!(lengths.len(), 1, "exactly one Content-Length");
        // The driver's own 408 answers no request of the handler.
        let is_head = status != 408 && heads.get(finals).copied().unwrap_or(false);
        if status != 408 {
            finals += 1;
        }
        let end = if is_head { head } else { head + lengths[0] };
        if end > out.len() {
            return (statuses, true);
        }
        out = &out[end..];
    }
    (statuses, false)
}

/// The states a connection may go from and to.
fn legal(from: State, to: State) -> bool {
    use State::*;
    matches!(
        (from, to),
        (Idle, Reading) | (Reading, Writing) | (Writing, Reading) | (Writing, Idle) | (Writing, Draining)
    )
}

fn is_head(req: &Framed<'_>) -> bool {
    matches!(req, Framed::Request { request, .. } if request.method() == "HEAD")
}

fuzz_target!(|data: &[u8]| {
    let input = Input::new(data);
    let cfg = common::config();

    // The blocking driver, untimed.
    let mut w = common::world();
    let mut app = common::FuzzApp;
    let mut stream = Stream { data: &input.bytes, fragments: &input.fragments, reads: 0, written: Vec::new() };
    let mut inbuf = vec![0u8; cfg.input_buffer_len()];
    let mut outbuf = vec![0u8; http::MIN_OUTPUT_LEN];
    let mut now = 1001u64;
    let mut heads = Vec::new();
    let mut last_status = 0;
    // Set once a response closes the connection (a framing error, `Connection: close`, HTTP/1.0):
    // the handler must never run again, whatever bytes are still buffered or still arrive.
    let mut closed_by: Option<u16> = None;
    let result = http::serve(&cfg, &mut stream, &mut inbuf, &mut outbuf, |req, res| {
        assert_eq!(closed_by, None, "a request was handled after a response that closed the connection");
        now += u64::from(input.clock_step);
        let framing_error = matches!(req, Framed::Reject { .. });
        heads.push(is_head(&req));
        let mut cx = Context { provider: &mut w.provider, app: &mut app, rng: &mut w.rng, now, peer: None };
        let served = http::answer(&cfg, &mut cx, req, res);
        last_status = served.status;
        if framing_error {
            assert!(!served.keep_alive, "a framing error keeps the connection");
        }
        if !served.keep_alive || served.consumed == 0 {
            closed_by = Some(served.status);
        }
        served
    });
    assert!(result.is_ok(), "the driver failed: {result:?}");
    let (statuses, cut) = responses(&stream.written, &heads);
    assert!(!cut, "an untimed response was cut short");
    let finals: Vec<u16> = statuses.iter().copied().filter(|&s| s != 100).collect();
    assert_eq!(finals.len(), heads.len(), "one response per answered request, nothing written after the last");
    if let Some(&last) = finals.last() {
        assert_eq!(last, last_status);
    }
    if let Some(status) = closed_by {
        assert_eq!(finals.last(), Some(&status), "the closing response is the last one written");
    }
    assert!(oauth2_devices::fuzzing::grant_table(&w.provider).count() <= 4);

    // The timed driver over the same bytes, spaced in time.
    let step = u64::from(input.clock_step);
    let sizes = input.split();
    let mut t = 0u64;
    let arrivals: Vec<u64> = (0..sizes.len())
        .map(|i| {
            let at = t;
            t += if i % 3 == 2 { step * 16 } else { step * 8 };
            at
        })
        .collect();
    let fin = (step % 2 == 0).then_some(t);
    let clock = SimClock(Cell::new(0));
    let mut sim = Sim {
        clock: &clock,
        data: &input.bytes,
        sizes,
        arrivals,
        next: 0,
        taken: 0,
        fin,
        write_cost: step,
        written: Vec::new(),
        shut_at: None,
        drained: 0,
        last_read_at: 0,
    };
    let mut w = common::world();
    let mut states: Vec<(State, u64)> = Vec::new();
    let mut on_state = |s: State| states.push((s, clock.now_ms()));
    let timing = Timing { limits: LIMITS, clock: &clock, on_state: &mut on_state };
    let mut heads = Vec::new();
    let mut closed_by: Option<u16> = None;
    let result = http::serve_timed(&cfg, timing, &mut sim, &mut inbuf, &mut outbuf, |req, res| {
        assert_eq!(closed_by, None, "a request was handled after a response that closed the connection");
        heads.push(is_head(&req));
        let now = 1001 + clock.now_ms() / 1000;
        let mut cx = Context { provider: &mut w.provider, app: &mut app, rng: &mut w.rng, now, peer: None };
        let served = http::answer(&cfg, &mut cx, req, res);
        if !served.keep_alive || served.consumed == 0 {
            closed_by = Some(served.status);
        }
        served
    });
    let closed = result.unwrap_or_else(|e| panic!("the timed driver failed: {e:?}"));
    if std::env::var_os("FUZZ_TRACE").is_some() {
        eprintln!("timed: {closed:?}, states {states:?}, wrote {} bytes", sim.written.len());
    }
    let (statuses, cut) = responses(&sim.written, &heads);
    assert_eq!(cut, closed == Closed::WriteDeadline, "only a write deadline cuts a response: {closed:?}");
    let finals: Vec<u16> = statuses.iter().copied().filter(|&s| s != 100).collect();
    let answered = finals.iter().filter(|&&s| s != 408).count();
    assert!(answered == heads.len() || (cut && answered + 1 == heads.len()), "one response per request");
    // 100 Continue comes at most once before each final response.
    assert!(!statuses.windows(2).any(|w| w == [100, 100]), "two 100 Continue in a row: {statuses:?}");
    // A final response follows every 100 Continue, unless the peer closed instead of sending the body.
    if statuses.last() == Some(&100) {
        assert_eq!(closed, Closed::Peer, "a 100 Continue with no final response after it");
    }
    // States: idle first, then only legal moves; the clock never runs past a state's deadline.
    assert_eq!(states.first().map(|s| s.0), Some(State::Idle));
    for pair in states.windows(2) {
        assert!(legal(pair[0].0, pair[1].0), "{:?} -> {:?}", pair[0], pair[1]);
    }
    let (last, since) = *states.last().expect("states");
    let end = clock.now_ms();
    match closed {
        Closed::Idle => {
            assert_eq!(last, State::Idle);
            assert_eq!(end, since + LIMITS.idle_deadline, "closed exactly at the idle deadline");
        }
        Closed::HeadDeadline => {
            assert_eq!(finals.last(), Some(&408));
            assert_eq!(last, State::Draining);
        }
        Closed::Response => {
            assert_eq!(last, State::Draining);
            assert!(closed_by.is_some(), "closed after a response that kept the connection");
        }
        Closed::WriteDeadline => assert_eq!(last, State::Writing),
        Closed::Peer => assert!(fin.is_some_and(|f| end >= f), "a FIN before the peer sent one"),
        _ => {}
    }
    if last == State::Draining {
        assert!(sim.shut_at.is_some(), "drained without a FIN");
        // The drain ends at its deadline, at the byte cap (plus one read), or at the peer's FIN.
        assert!(end <= since + LIMITS.drain_deadline, "drained past the drain deadline");
        assert!(sim.drained <= LIMITS.drain_max_bytes + cfg.input_buffer_len(), "drained past the cap");
        assert!(sim.last_read_at < since + LIMITS.drain_deadline);
    }
    // Reading never outlasts the head deadline (plus the 408's write).
    let mut reading_since = None;
    for &(s, at) in &states {
        match s {
            State::Reading => {
                reading_since.get_or_insert(at);
            }
            State::Writing => {
                if let Some(from) = reading_since.take() {
                    assert!(at <= from + LIMITS.head_deadline, "read from {from} to {at}");
                }
            }
            _ => reading_since = None,
        }
    }
    assert!(oauth2_devices::fuzzing::grant_table(&w.provider).count() <= 4);
});
