//! One call of the sans-IO HTTP handler on arbitrary bytes (which may hold a partial request or
//! several pipelined ones): `frame` and `handle` agree on what is incomplete, nothing is consumed past
//! the input or written past the output, and what is written is one well-formed HTTP/1.1 response whose
//! status is the one reported.
#![no_main]

#[path = "http_common.rs"]
mod common;

use libfuzzer_sys::fuzz_target;
use oauth2_devices::http::{self, Context, Frame, Outcome};

fuzz_target!(|data: &[u8]| {
    let cfg = common::config();
    let mut w = common::world();
    let mut app = common::FuzzApp;
    let mut input = data.to_vec();
    let framed = http::frame(&cfg, &input);
    let mut output = vec![0u8; http::MIN_OUTPUT_LEN];
    let mut cx = Context { provider: &mut w.provider, app: &mut app, rng: &mut w.rng, now: 1001, peer: None };
    match http::handle(&cfg, &mut cx, &mut input, &mut output) {
        Outcome::NeedMore => assert_eq!(framed, Frame::Incomplete, "NeedMore only for an incomplete request"),
        Outcome::Respond(s) => {
            assert_ne!(framed, Frame::Incomplete);
            // Never past the input, whatever `keep_alive` says; and a connection that stays open must
            // have consumed something, or the driver would answer the same bytes for ever.
            assert!(s.consumed <= data.len(), "consumed {} of {} bytes", s.consumed, data.len());
            assert!(s.consumed > 0 || !s.keep_alive, "nothing consumed on a connection kept open");
            assert!(s.range().end <= output.len());
            // A HEAD request's response has no body (RFC 9110 §9.3.2).
            let mut h = [httparse::EMPTY_HEADER; 32];
            let mut req = httparse::Request::new(&mut h);
            let head =
                req.parse(data).is_ok() && req.method == Some("HEAD") && !matches!(framed, Frame::Reject(_));
            let statuses = common::check_responses_to(&output[s.range()], head);
            assert_eq!(statuses, vec![s.status]);
            if let Frame::Reject(_) = framed {
                assert!(!s.keep_alive, "a framing error closes the connection");
            }
        }
    }
});
