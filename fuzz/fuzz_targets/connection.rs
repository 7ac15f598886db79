//! A whole connection: the blocking driver (`http::serve`) over an in-memory stream that delivers
//! arbitrary bytes in arbitrary fragments, with the provider behind it. The driver must end (the input
//! is finite), never fail except on its stream, and write exactly a sequence of well-formed responses;
//! after a framing error nothing more is answered.
#![no_main]

#[path = "http_common.rs"]
mod common;

use libfuzzer_sys::fuzz_target;
use oauth2_devices::http::{self, Context};

/// `[fragmentation, clock step, stream...]`: the first byte picks the read sizes (0: everything at
/// once; else reads of 1..=byte bytes, varying), the second the seconds that pass before each request;
/// the rest is what the peer sends. Plain text after two bytes keeps seeds and dictionaries readable.
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

fuzz_target!(|data: &[u8]| {
    let input = Input::new(data);
    let cfg = common::config();
    let mut w = common::world();
    let mut app = common::FuzzApp;
    let mut stream = Stream { data: &input.bytes, fragments: &input.fragments, reads: 0, written: Vec::new() };
    let mut inbuf = vec![0u8; cfg.input_buffer_len()];
    let mut outbuf = vec![0u8; http::MIN_OUTPUT_LEN];
    let mut now = 1001u64;
    let mut requests = 0usize;
    let mut last_status = 0;
    // Set once a response closes the connection (a framing error, `Connection: close`, HTTP/1.0):
    // the handler must never run again, whatever bytes are still buffered or still arrive.
    let mut closed_by: Option<(u16, bool)> = None;
    let result = http::serve(&cfg, &mut stream, &mut inbuf, &mut outbuf, |req, res| {
        assert_eq!(closed_by, None, "a request was handled after a response that closed the connection");
        now += u64::from(input.clock_step);
        let framing_error = matches!(req, http::Framed::Reject { .. });
        let mut cx = Context { provider: &mut w.provider, app: &mut app, rng: &mut w.rng, now, peer: None };
        let served = http::answer(&cfg, &mut cx, req, res);
        requests += 1;
        last_status = served.status;
        if framing_error {
            assert!(!served.keep_alive, "a framing error keeps the connection");
        }
        if !served.keep_alive || served.consumed == 0 {
            closed_by = Some((served.status, framing_error));
        }
        served
    });
    assert!(result.is_ok(), "the driver failed: {result:?}");
    let statuses = common::check_responses(&stream.written);
    assert_eq!(statuses.len(), requests, "one response per answered request, nothing written after the last");
    if let Some(&last) = statuses.last() {
        assert_eq!(last, last_status);
    }
    if let Some((status, _)) = closed_by {
        assert_eq!(statuses.last(), Some(&status), "the closing response is the last one written");
    }
    assert!(oauth2_devices::fuzzing::grant_table(&w.provider).count() <= 4);
});
