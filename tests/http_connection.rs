//! Connections: HEAD on every route, `Expect: 100-continue`, and the timed drivers' deadlines (idle,
//! head, write, drain) on a simulated clock.

mod http_common;

use std::cell::Cell;
use std::collections::VecDeque;

use http_common::*;
use oauth2_devices::http::conn::{AsyncTransport, Clock, Closed, Limits, State, Transport};
use oauth2_devices::http::{self, Timing};

/// Milliseconds of a simulated clock, advanced by the transport as it "waits".
struct SimClock(Cell<u64>);

impl Clock for SimClock {
    fn now_ms(&self) -> u64 {
        self.0.get()
    }
}

/// What the simulated peer does: bytes that arrive at a time, or its FIN at a time.
enum Ev {
    Bytes(u64, Vec<u8>),
    Fin(u64),
}

/// A transport that delivers a script of arrivals on the simulated clock and records what the server
/// wrote and when. With the script exhausted the peer goes silent (never closes).
struct Sim<'c> {
    clock: &'c SimClock,
    script: VecDeque<Ev>,
    written: Vec<(u64, Vec<u8>)>,
    shut_at: Option<u64>,
    /// Bytes a write takes per call at most, and ms it costs (to exercise the write deadline).
    write_chunk: usize,
    write_cost: u64,
}

impl<'c> Sim<'c> {
    fn new(clock: &'c SimClock, script: Vec<Ev>) -> Self {
        Self { clock, script: script.into(), written: Vec::new(), shut_at: None, write_chunk: 1 << 20, write_cost: 0 }
    }

    fn output(&self) -> Vec<u8> {
        self.written.iter().flat_map(|(_, b)| b.clone()).collect()
    }

    fn now(&self) -> u64 {
        self.clock.0.get()
    }

    fn advance_to(&self, t: u64) {
        if t > self.now() {
            self.clock.0.set(t);
        }
    }
}

impl embedded_io::ErrorType for Sim<'_> {
    type Error = core::convert::Infallible;
}

impl Transport for Sim<'_> {
    fn read_within(&mut self, buf: &mut [u8], timeout_ms: u64) -> Result<Option<usize>, Self::Error> {
        assert!(timeout_ms > 0, "a driver never reads with no time left");
        let limit = self.now() + timeout_ms;
        match self.script.front_mut() {
            Some(Ev::Bytes(t, bytes)) if *t <= limit => {
                let t = *t;
                let n = buf.len().min(bytes.len());
                buf[..n].copy_from_slice(&bytes[..n]);
                bytes.drain(..n);
                if bytes.is_empty() {
                    self.script.pop_front();
                }
                self.advance_to(t);
                Ok(Some(n))
            }
            Some(Ev::Fin(t)) if *t <= limit => {
                let t = *t;
                self.advance_to(t);
                Ok(Some(0))
            }
            _ => {
                self.advance_to(limit);
                Ok(None)
            }
        }
    }

    fn write_within(&mut self, buf: &[u8], timeout_ms: u64) -> Result<Option<usize>, Self::Error> {
        assert!(self.shut_at.is_none(), "write after shutdown");
        if self.write_cost > timeout_ms {
            self.advance_to(self.now() + timeout_ms);
            return Ok(None);
        }
        self.advance_to(self.now() + self.write_cost);
        let n = buf.len().min(self.write_chunk);
        self.written.push((self.now(), buf[..n].to_vec()));
        Ok(Some(n))
    }

    fn shutdown_write(&mut self) -> Result<(), Self::Error> {
        self.shut_at = Some(self.now());
        Ok(())
    }
}

impl AsyncTransport for Sim<'_> {
    async fn read_within(&mut self, buf: &mut [u8], timeout_ms: u64) -> Result<Option<usize>, Self::Error> {
        Transport::read_within(self, buf, timeout_ms)
    }
    async fn write_within(&mut self, buf: &[u8], timeout_ms: u64) -> Result<Option<usize>, Self::Error> {
        Transport::write_within(self, buf, timeout_ms)
    }
    async fn shutdown_write(&mut self) -> Result<(), Self::Error> {
        Transport::shutdown_write(self)
    }
}

const LIMITS: Limits =
    Limits { head_deadline: 1000, idle_deadline: 400, drain_deadline: 200, drain_max_bytes: 64, write_deadline: 300 };

/// Runs the blocking timed driver over a script; returns why it closed, the states it went through
/// and the transport.
fn run<'c>(server: &mut Server, clock: &'c SimClock, script: Vec<Ev>) -> (Closed, Vec<State>, Sim<'c>) {
    run_with(server, clock, Sim::new(clock, script))
}

fn run_with<'c>(server: &mut Server, clock: &'c SimClock, mut sim: Sim<'c>) -> (Closed, Vec<State>, Sim<'c>) {
    let mut states = Vec::new();
    let mut on_state = |s: State| states.push(s);
    let timing = Timing { limits: LIMITS, clock, on_state: &mut on_state };
    let cfg = server.cfg;
    let mut input = vec![0u8; cfg.input_buffer_len()];
    let mut output = vec![0u8; 8192];
    let closed =
        http::serve_timed(&cfg, timing, &mut sim, &mut input, &mut output, |i, o| server.answer(i, o)).unwrap();
    (closed, states, sim)
}

fn hello() -> Vec<u8> {
    get("/hello", &[])
}

/// A head: status, headers, and the bytes after the blank line.
fn split_head(bytes: &[u8]) -> (u16, Vec<(String, String)>, &[u8]) {
    let mut headers = [httparse::EMPTY_HEADER; 32];
    let mut r = httparse::Response::new(&mut headers);
    let httparse::Status::Complete(n) = r.parse(bytes).unwrap() else { panic!("partial head") };
    let hs = r.headers.iter().map(|h| (h.name.to_owned(), String::from_utf8(h.value.to_vec()).unwrap())).collect();
    (r.code.unwrap(), hs, &bytes[n..])
}

/// Every route, GET and HEAD: same status and headers (Content-Length of the GET body included), no
/// body bytes after HEAD, so the pipelined request after it gets an intact response.
#[test]
fn head_is_get_without_the_body_on_every_route() {
    let alice = basic("alice", "wonderland");
    let routes: Vec<(&str, Vec<(&str, &str)>)> = vec![
        ("/.well-known/oauth-authorization-server", vec![]),
        ("/activate", vec![]),
        ("/activate", vec![("Authorization", alice.as_str())]),
        ("/devices", vec![("Authorization", alice.as_str())]),
        ("/oauth/device", vec![]),
        ("/oauth/token", vec![]),
        ("/oauth/introspect", vec![]),
        ("/api/me", vec![]),
        ("/hello", vec![]),
        ("/nope", vec![]),
        ("/", vec![]),
    ];
    for (path, headers) in routes {
        let mut s = Server::new();
        let got = s.request(&get(path, &headers));
        let mut s = Server::new();
        let mut bytes = request("HEAD", path, &headers, "");
        bytes.extend_from_slice(&hello());
        let clock = SimClock(Cell::new(0));
        let (closed, _, sim) = run(&mut s, &clock, vec![Ev::Bytes(0, bytes), Ev::Fin(10)]);
        assert_eq!(closed, Closed::Peer, "{path}");
        let out = sim.output();
        let (status, head_headers, rest) = split_head(&out);
        assert_eq!(status, got.status, "HEAD {path}");
        assert_eq!(head_headers, got.headers, "HEAD {path}: the headers of GET");
        let length: usize = got.header("content-length").unwrap().parse().unwrap();
        assert_eq!(length, got.body.len(), "{path}");
        // What follows is the pipelined request's whole response, nothing of the GET body.
        let next = parse_responses(rest);
        assert_eq!(next.len(), 1, "HEAD {path} then GET /hello: {:?}", String::from_utf8_lossy(rest));
        assert_eq!((next[0].status, next[0].text()), (200, "hello 0"), "after HEAD {path}");
        // The access log names the method that was sent.
        assert_eq!(s.app.log[0].0, "HEAD");
    }
}

/// HEAD through the sans-IO core: the response's range ends before the body.
#[test]
fn head_through_handle_has_no_body() {
    let mut s = Server::new();
    let mut input = request("HEAD", "/nope", &[], "");
    let mut output = vec![0u8; 4096];
    let http::Outcome::Respond(served) = s.handle(&mut input, &mut output) else { panic!("whole") };
    let text = std::str::from_utf8(&output[served.range()]).unwrap();
    assert!(text.starts_with("HTTP/1.1 404 Not Found\r\nContent-Length: 4\r\n"), "{text}");
    assert!(text.ends_with("\r\n\r\n"), "{text}");
}

fn post_expecting(expect: &str, length: usize) -> Vec<u8> {
    format!(
        "POST /hello HTTP/1.1\r\nHost: gw.test\r\nExpect: {expect}\r\nContent-Length: {length}\r\nContent-Type: text/plain\r\n\r\n"
    )
    .into_bytes()
}

/// `Expect: 100-continue` is answered with `100 Continue` as soon as the head is accepted, before the
/// client sends its body; then the final response.
#[test]
fn expect_100_continue_is_answered_before_the_body() {
    let mut s = Server::new();
    let clock = SimClock(Cell::new(0));
    let script = vec![Ev::Bytes(0, post_expecting("100-continue", 5)), Ev::Bytes(50, b"abcde".to_vec()), Ev::Fin(60)];
    let (closed, states, sim) = run(&mut s, &clock, script);
    assert_eq!(closed, Closed::Peer);
    assert_eq!(sim.written[0], (0, b"HTTP/1.1 100 Continue\r\n\r\n".to_vec()));
    let out = sim.output();
    let finals = parse_responses(&out[25..]);
    assert_eq!((finals.len(), finals[0].status, finals[0].text()), (1, 200, "hello 5"));
    assert!(sim.written[1].0 >= 50, "the final response waits for the body");
    use State::*;
    assert_eq!(states, [Idle, Reading, Writing, Reading, Writing, Idle]);

    // The untimed driver answers it too (the body arrives in later reads).
    let mut s = Server::new();
    let mut bytes = post_expecting("100-Continue", 5);
    let head_len = bytes.len();
    bytes.extend_from_slice(b"abcde");
    let mut stream = MemStream::new(&bytes, head_len);
    let cfg = s.cfg;
    let (mut input, mut output) = (vec![0u8; cfg.input_buffer_len()], vec![0u8; 8192]);
    http::serve(&cfg, &mut stream, &mut input, &mut output, |i, o| s.answer(i, o)).unwrap();
    assert!(stream.output.starts_with(b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\n"));
}

/// A request that will not be read gets its final status at once, without `100 Continue`, and the
/// connection closes: 413 for a body over `max_body`, 417 for another expectation.
#[test]
fn expect_refused_gets_the_final_status_at_once() {
    for (expect, length, status) in [("100-continue", 5000, 413), ("something-else", 5, 417)] {
        let mut s = Server::new();
        let clock = SimClock(Cell::new(0));
        let (closed, states, sim) = run(&mut s, &clock, vec![Ev::Bytes(0, post_expecting(expect, length))]);
        assert_eq!(closed, Closed::Response, "{expect}");
        let r = parse_responses(&sim.output());
        assert_eq!((r.len(), r[0].status, r[0].keep_alive), (1, status, false), "{expect}");
        assert_eq!(sim.written[0].0, 0, "answered at once");
        assert_eq!(states.last(), Some(&State::Draining));
    }
    // HTTP/1.0 ignores Expect.
    let mut s = Server::new();
    let r = s.request(b"GET /hello HTTP/1.0\r\nExpect: weird\r\n\r\n");
    assert_eq!(r.status, 200);
}

/// A connection that never sends closes at the idle deadline, silently.
#[test]
fn idle_connection_closes_at_the_idle_deadline() {
    let mut s = Server::new();
    let clock = SimClock(Cell::new(5));
    let (closed, states, sim) = run(&mut s, &clock, vec![]);
    assert_eq!((closed, states, sim.output().len()), (Closed::Idle, vec![State::Idle], 0));
    assert_eq!(clock.now_ms(), 5 + LIMITS.idle_deadline);
}

/// Keep-alive requests within the idle deadline are all served; a gap longer than it closes.
#[test]
fn keep_alive_requests_each_get_a_fresh_idle_deadline() {
    let mut s = Server::new();
    let clock = SimClock(Cell::new(0));
    let script =
        vec![Ev::Bytes(0, hello()), Ev::Bytes(350, hello()), Ev::Bytes(700, hello()), Ev::Bytes(1200, hello())];
    let (closed, _, sim) = run(&mut s, &clock, script);
    assert_eq!(closed, Closed::Idle);
    assert_eq!(parse_responses(&sim.output()).len(), 3, "the fourth came after 500 ms idle");
    assert_eq!(clock.now_ms(), 700 + LIMITS.idle_deadline);
}

/// A request dribbled a byte at a time is cut off at the head deadline counted from its first byte,
/// answered 408, and its connection drained and closed.
#[test]
fn dribbled_request_gets_408_at_the_head_deadline() {
    let mut s = Server::new();
    let clock = SimClock(Cell::new(0));
    let req = hello();
    // First byte at 100 ms, then one every 50 ms: the whole head would need far more than 1 s.
    let script: Vec<Ev> = req.iter().enumerate().map(|(i, b)| Ev::Bytes(100 + 50 * i as u64, vec![*b])).collect();
    let (closed, states, sim) = run(&mut s, &clock, script);
    assert_eq!(closed, Closed::HeadDeadline);
    let r = parse_responses(&sim.output());
    assert_eq!((r.len(), r[0].status, r[0].keep_alive), (1, 408, false));
    assert_eq!(sim.written[0].0, 100 + LIMITS.head_deadline, "408 exactly at the deadline");
    use State::*;
    assert_eq!(states, [Idle, Reading, Writing, Draining]);
    // The drain after it is bounded by the drain deadline.
    let shut = sim.shut_at.unwrap();
    assert!(clock.now_ms() <= shut + LIMITS.drain_deadline);
}

/// After a response that closes, the peer's input is drained until its FIN, but never past the drain
/// deadline nor past the drain byte cap.
#[test]
fn drain_after_close_is_bounded_in_time_and_bytes() {
    let close = get("/hello", &[("Connection", "close")]);
    // A peer that dribbles after the response: cut at the drain deadline.
    let mut s = Server::new();
    let clock = SimClock(Cell::new(0));
    let mut script = vec![Ev::Bytes(0, close.clone())];
    script.extend((1..100).map(|i| Ev::Bytes(i * 40, b"x".to_vec())));
    let (closed, states, sim) = run(&mut s, &clock, script);
    assert_eq!(closed, Closed::Response);
    assert_eq!(states.last(), Some(&State::Draining));
    assert_eq!(sim.shut_at, Some(0), "FIN right after the response");
    assert_eq!(clock.now_ms(), LIMITS.drain_deadline, "not one read past the drain deadline");
    // A peer that floods: cut at the byte cap, well before the deadline.
    let mut s = Server::new();
    let clock = SimClock(Cell::new(0));
    let mut script = vec![Ev::Bytes(0, close.clone())];
    script.extend((1..100).map(|i| Ev::Bytes(i, vec![b'x'; 16])));
    let (closed, _, sim) = run(&mut s, &clock, script);
    assert_eq!(closed, Closed::Response);
    assert!(sim.script.len() >= 90, "stopped after about {} bytes", LIMITS.drain_max_bytes);
    assert!(clock.now_ms() < 10);
    // A peer that closes too: the drain ends at its FIN.
    let mut s = Server::new();
    let clock = SimClock(Cell::new(0));
    let (_, _, _) = run(&mut s, &clock, vec![Ev::Bytes(0, close), Ev::Fin(30)]);
    assert_eq!(clock.now_ms(), 30);
    // A framing error drains the same way.
    let mut s = Server::new();
    let clock = SimClock(Cell::new(0));
    let (closed, _, sim) = run(&mut s, &clock, vec![Ev::Bytes(0, b"GET / HTTP/1.1\r\n\r\n".to_vec())]);
    assert_eq!(closed, Closed::Response);
    assert_eq!(parse_responses(&sim.output())[0].status, 400);
    assert_eq!(clock.now_ms(), LIMITS.drain_deadline);
}

/// A response the peer does not read in time ends the connection at the write deadline.
#[test]
fn slow_reader_is_cut_at_the_write_deadline() {
    let mut s = Server::new();
    let clock = SimClock(Cell::new(0));
    let mut sim = Sim::new(&clock, vec![Ev::Bytes(0, get("/.well-known/oauth-authorization-server", &[]))]);
    sim.write_chunk = 10;
    sim.write_cost = 20;
    let (closed, _, sim) = run_with(&mut s, &clock, sim);
    assert_eq!(closed, Closed::WriteDeadline);
    assert!(sim.written.len() <= (LIMITS.write_deadline / 20) as usize);
    assert!(clock.now_ms() <= LIMITS.write_deadline);
}

/// A pipelined request already received when a response is sent is read under a fresh head
/// deadline, not the idle one.
#[test]
fn pipelined_requests_are_served_back_to_back() {
    let mut s = Server::new();
    let clock = SimClock(Cell::new(0));
    let mut bytes = hello();
    bytes.extend_from_slice(&request("HEAD", "/hello", &[], ""));
    bytes.extend_from_slice(&hello()[..10]);
    // The rest of the third request comes 700 ms later: past the idle deadline, within the head one.
    let rest = hello()[10..].to_vec();
    let (closed, states, _) = run(&mut s, &clock, vec![Ev::Bytes(0, bytes), Ev::Bytes(700, rest)]);
    assert_eq!(closed, Closed::Idle);
    assert_eq!(clock.now_ms(), 700 + LIMITS.idle_deadline);
    assert_eq!(s.app.log.iter().map(|l| l.0.as_str()).collect::<Vec<_>>(), ["GET", "HEAD", "GET"]);
    assert!(!states.contains(&State::Draining));
}

/// The async driver runs the same policy.
#[test]
fn async_driver_runs_the_same_policy() {
    let mut s = Server::new();
    let clock = SimClock(Cell::new(0));
    let mut sim =
        Sim::new(&clock, vec![Ev::Bytes(0, post_expecting("100-continue", 2)), Ev::Bytes(30, b"ab".to_vec())]);
    let mut states = Vec::new();
    let mut on_state = |st: State| states.push(st);
    let cfg = s.cfg;
    let (mut input, mut output) = (vec![0u8; cfg.input_buffer_len()], vec![0u8; 8192]);
    let timing = Timing { limits: LIMITS, clock: &clock, on_state: &mut on_state };
    let closed =
        embassy_futures::block_on(http::serve_timed_async(&cfg, timing, &mut sim, &mut input, &mut output, |i, o| {
            s.answer(i, o)
        }))
        .unwrap();
    assert_eq!(closed, Closed::Idle);
    let out = sim.output();
    assert!(out.starts_with(b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\n"));
    assert_eq!(clock.now_ms(), 30 + LIMITS.idle_deadline);
    use State::*;
    assert_eq!(states, [Idle, Reading, Writing, Reading, Writing, Idle]);
}

/// The std transport over loopback: a silent connection closes at the idle deadline (never before),
/// a dribbled request gets 408 at the head deadline, and a closing response is followed by a FIN.
#[test]
fn tcp_transport_keeps_the_deadlines_over_loopback() {
    use oauth2_devices::http::tcp::{StdClock, Tcp};
    use std::io::{Read, Write};
    use std::net::{TcpListener, TcpStream};
    use std::time::{Duration, Instant};

    const REAL: Limits = Limits {
        head_deadline: 600,
        idle_deadline: 200,
        drain_deadline: 200,
        drain_max_bytes: 1024,
        write_deadline: 1000,
    };
    // A wide margin for a loaded machine; the lower bounds are exact.
    let margin = Duration::from_secs(5);
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let server = std::thread::spawn(move || {
        let mut results = Vec::new();
        for _ in 0..3 {
            let (stream, _) = listener.accept().unwrap();
            let mut s = Server::new();
            let clock = StdClock::new();
            let mut on_state = |_: State| {};
            let timing = Timing { limits: REAL, clock: &clock, on_state: &mut on_state };
            let cfg = s.cfg;
            let (mut input, mut output) = (vec![0u8; cfg.input_buffer_len()], vec![0u8; 8192]);
            let start = Instant::now();
            let closed =
                http::serve_timed(&cfg, timing, &mut Tcp::new(&stream), &mut input, &mut output, |i, o| s.answer(i, o))
                    .unwrap();
            results.push((closed, start.elapsed()));
        }
        results
    });
    let connect = || {
        let c = TcpStream::connect(addr).unwrap();
        c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        c.set_write_timeout(Some(Duration::from_secs(10))).unwrap();
        c
    };
    // 1: silent.
    let mut c = connect();
    let mut rest = Vec::new();
    c.read_to_end(&mut rest).unwrap();
    assert!(rest.is_empty());
    // 2: a byte every 100 ms: 408 once 600 ms have passed since the first.
    let mut c = connect();
    let first = Instant::now();
    let mut sent = 0;
    for b in hello() {
        if c.write_all(&[b]).is_err() {
            break;
        }
        sent += 1;
        std::thread::sleep(Duration::from_millis(100));
        if first.elapsed() > Duration::from_millis(REAL.head_deadline) + margin {
            break;
        }
    }
    let mut got = Vec::new();
    let _ = c.read_to_end(&mut got);
    assert!(
        got.starts_with(b"HTTP/1.1 408 Request Timeout\r\n"),
        "{:?} after {sent} bytes",
        String::from_utf8_lossy(&got)
    );
    // 3: a request that closes: its response, then the server's FIN (read_to_end returns).
    let mut c = connect();
    c.write_all(&get("/hello", &[("Connection", "close")])).unwrap();
    let mut got = Vec::new();
    c.read_to_end(&mut got).unwrap();
    assert_eq!(parse_responses(&got)[0].status, 200);
    let results = server.join().unwrap();
    assert_eq!(results[0].0, Closed::Idle);
    let idle = Duration::from_millis(REAL.idle_deadline);
    assert!(results[0].1 >= idle && results[0].1 < idle + margin, "{:?}", results[0]);
    assert_eq!(results[1].0, Closed::HeadDeadline);
    let head = Duration::from_millis(REAL.head_deadline);
    assert!(results[1].1 >= head && results[1].1 < head + idle + margin, "{:?}", results[1]);
    assert_eq!(results[2].0, Closed::Response);
}
