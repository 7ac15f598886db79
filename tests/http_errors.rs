//! HTTP-level error handling: framing limits, methods, media types, form errors, connection reuse,
//! fragmentation and pipelining, in memory and over loopback TCP.

mod http_common;

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use http_common::*;
use oauth2_devices::http::{self, Context, Outcome};

const DEVICE: &str = "client_id=tv-demo&scope=profile";

fn device_request() -> Vec<u8> {
    post_form("/oauth/device", DEVICE)
}

/// Sends `bytes` to a fresh server and expects one response that closes the connection.
fn closing(bytes: &[u8]) -> Resp {
    let mut s = Server::new();
    let (r, _, closed) = s.exchange(bytes);
    assert!(closed, "connection should close");
    assert_eq!(r.len(), 1);
    let r = r.into_iter().next().unwrap();
    assert_eq!(r.header("connection"), Some("close"), "{r:?}");
    r
}

#[test]
fn framing_errors_close_the_connection() {
    // Oversized body: refused as soon as the head is in, without reading the body.
    let r = closing(b"POST /oauth/device HTTP/1.1\r\nHost: gw.test\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: 5000\r\n\r\n");
    assert_eq!(r.status, 413);
    // Huge header.
    let big = "x".repeat(3000);
    let r = closing(&get("/", &[("X-Big", &big)]));
    assert_eq!(r.status, 431);
    // Too many header lines.
    let many: Vec<(String, String)> = (0..40).map(|i| (format!("X-{i}"), "1".to_owned())).collect();
    let many: Vec<(&str, &str)> = many.iter().map(|(a, b)| (a.as_str(), b.as_str())).collect();
    assert_eq!(closing(&get("/", &many)).status, 431);
    // A request line that never ends.
    let r = closing(format!("GET /{} HTTP/1.1", "a".repeat(3000)).as_bytes());
    assert_eq!(r.status, 414);
    // POST without Content-Length: an empty body (RFC 9112 §6.3), so the token endpoint says what is missing.
    let r = closing(
        b"POST /oauth/token HTTP/1.1\r\nHost: gw.test\r\nContent-Type: application/x-www-form-urlencoded\r\nConnection: close\r\n\r\n",
    );
    assert_eq!(r.status, 400);
    assert!(String::from_utf8_lossy(&r.body).contains("invalid_request"));
    // Chunked bodies are not implemented.
    let r = closing(
        b"POST /oauth/token HTTP/1.1\r\nHost: gw.test\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
    );
    assert_eq!(r.status, 501);
    // Malformed request line, garbage, a bad Content-Length, HTTP/1.1 without Host, two Hosts.
    for bad in [
        &b"GET\r\n\r\n"[..],
        b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03",
        b"POST /oauth/token HTTP/1.1\r\nHost: gw.test\r\nContent-Length: 1x\r\n\r\n",
        b"POST /oauth/token HTTP/1.1\r\nHost: gw.test\r\nContent-Length: 1\r\nContent-Length: 1\r\n\r\na",
        b"GET / HTTP/1.1\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",
        b"GET / HTTP/3\r\nHost: a\r\n\r\n",
    ] {
        assert_eq!(closing(bad).status, 400, "{}", String::from_utf8_lossy(bad));
    }
}

#[test]
fn request_errors_keep_the_connection() {
    let mut s = Server::new();
    let cases: Vec<(Vec<u8>, u16, Option<&str>)> = vec![
        (
            post_form("/oauth/token", "grant_type=refresh_token&refresh_token=%zz&client_id=tv-demo"),
            400,
            Some("invalid_request"),
        ),
        (post_form("/oauth/device", "client_id=tv-demo&client_id=tv-demo"), 400, Some("invalid_request")),
        (post_form("/oauth/device", "client_id=tv-demo&scope=%ff"), 400, Some("invalid_request")),
        (request("POST", "/oauth/device", &[("Content-Type", "application/json")], "{}"), 415, Some("invalid_request")),
        (request("POST", "/oauth/device", &[], DEVICE), 415, Some("invalid_request")),
        (
            request(
                "POST",
                "/oauth/device",
                &[("Content-Type", "text/plain; x=application/x-www-form-urlencoded")],
                DEVICE,
            ),
            415,
            None,
        ),
        (get("/oauth/token", &[]), 405, None),
        (get("/nowhere", &[]), 404, None),
        (
            post_form_with(
                "/oauth/device",
                &[("Authorization", "Basic eDp5"), ("Authorization", "Basic eDp5")],
                DEVICE,
            ),
            400,
            Some("invalid_request"),
        ),
    ];
    let mut all = Vec::new();
    for (bytes, _, _) in &cases {
        all.extend_from_slice(bytes);
    }
    all.extend_from_slice(&device_request());
    // Every request is answered on one connection, pipelined, and the last one succeeds.
    let (responses, left, closed) = s.exchange(&all);
    assert!(!closed);
    assert_eq!(left, 0);
    assert_eq!(responses.len(), cases.len() + 1);
    for ((bytes, status, error), r) in cases.iter().zip(&responses) {
        let what = String::from_utf8_lossy(bytes);
        assert_eq!(r.status, *status, "{what}");
        assert!(r.keep_alive, "{what}");
        assert_eq!(r.header("connection"), None, "{what}");
        if let Some(error) = error {
            assert_eq!(r.error(), *error, "{what}");
        }
    }
    let bad = responses[0].json();
    assert_eq!(bad["error_description"], "bad percent-encoding");
    assert_eq!(responses[1].json()["error_description"], "parameter repeated");
    assert_eq!(responses.last().unwrap().status, 200);
}

#[test]
fn wrong_methods_get_405_with_allow() {
    let mut s = Server::new();
    for (method, path, allow) in [
        ("GET", "/oauth/device", "POST"),
        ("PUT", "/oauth/token", "POST"),
        ("GET", "/oauth/introspect", "POST"),
        ("DELETE", "/oauth/revoke", "POST"),
        // HEAD is answered wherever GET is (RFC 9110 §9.3.2), so `Allow` lists it too.
        ("POST", "/.well-known/oauth-authorization-server", "GET, HEAD"),
        ("PUT", "/activate", "GET, HEAD, POST"),
    ] {
        let r = s.request(&request(method, path, &[], ""));
        assert_eq!(r.status, 405, "{method} {path}");
        assert_eq!(r.header("allow"), Some(allow), "{method} {path}");
    }
}

#[test]
fn content_type_parameters_and_case_are_accepted() {
    let mut s = Server::new();
    for ct in [
        "application/x-www-form-urlencoded; charset=UTF-8",
        "Application/X-WWW-Form-URLEncoded",
        "application/x-www-form-urlencoded ; charset=utf-8",
        "application/x-www-form-urlencoded;charset=\"UTF-8\"",
    ] {
        let r = s.request(&request("POST", "/oauth/device", &[("Content-Type", ct)], DEVICE));
        assert_eq!(r.status, 200, "{ct}: {}", r.text());
    }
}

#[test]
fn connection_semantics() {
    // HTTP/1.1: persistent unless `Connection: close`.
    let mut s = Server::new();
    let (r, _, closed) = s.exchange(&request("GET", "/nowhere", &[("Connection", "close")], ""));
    assert!(closed);
    assert_eq!(r[0].header("connection"), Some("close"));
    // A second request after `Connection: close` is not answered.
    let mut two = request("GET", "/nowhere", &[("Connection", "keep-alive, Close")], "");
    two.extend_from_slice(&device_request());
    let (r, left, closed) = s.exchange(&two);
    assert!(closed && r.len() == 1 && left > 0);
    // HTTP/1.0: closes unless keep-alive.
    let (r, _, closed) = s.exchange(b"GET /nowhere HTTP/1.0\r\n\r\n");
    assert!(closed);
    assert_eq!(r[0].header("connection"), Some("close"));
    let (r, _, closed) = s.exchange(b"GET /nowhere HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n");
    assert!(!closed);
    assert_eq!(r[0].header("connection"), Some("keep-alive"));
}

#[test]
fn partial_input_needs_more() {
    let mut s = Server::new();
    let full = device_request();
    let mut out = vec![0u8; 8192];
    for cut in [0, 1, 10, full.len() / 2, full.len() - 1] {
        let mut part = full[..cut].to_vec();
        assert_eq!(s.handle(&mut part, &mut out), Outcome::NeedMore, "cut at {cut}");
    }
    let mut whole = full.clone();
    assert!(
        matches!(s.handle(&mut whole, &mut out), Outcome::Respond(r) if r.status == 200 && r.consumed == full.len())
    );
}

#[test]
fn one_byte_reads_and_pipelining_through_the_driver() {
    let mut s = Server::new();
    let mut bytes = device_request();
    bytes.extend_from_slice(&get("/.well-known/oauth-authorization-server", &[]));
    bytes.extend_from_slice(&post_form("/oauth/device", "client_id=tv-demo&client_id=x"));
    bytes.extend_from_slice(&request("GET", "/nowhere", &[("Connection", "close")], ""));
    bytes.extend_from_slice(&device_request()); // after close: never answered
    for chunk in [1, 2, 3, 7, 64, 100_000] {
        let r = s.drive(&bytes, chunk);
        let statuses: Vec<u16> = r.iter().map(|r| r.status).collect();
        assert_eq!(statuses, [200, 200, 400, 404], "chunk {chunk}");
        assert_eq!(r[3].header("connection"), Some("close"));
    }
}

#[test]
fn driver_stops_after_a_framing_error() {
    let mut s = Server::new();
    let mut bytes = get("/", &[("X-Big", &"y".repeat(4000))]);
    bytes.extend_from_slice(&device_request());
    let r = s.drive(&bytes, 1);
    assert_eq!(r.len(), 1);
    assert_eq!(r[0].status, 431);
    // The driver refuses an input buffer that cannot hold a whole request.
    let mut stream = MemStream::new(&device_request(), 1);
    let cfg = s.cfg;
    let res = http::serve(&cfg, &mut stream, &mut [0u8; 100], &mut [0u8; 4096], |i, o| s.answer(i, o));
    assert_eq!(res, Err(http::ServeError::BufferTooSmall));
}

#[test]
fn tiny_output_buffer_gives_a_bare_500() {
    let mut s = Server::new();
    let mut input = get("/.well-known/oauth-authorization-server", &[]);
    let mut out = [0u8; 200];
    let Outcome::Respond(r) = s.handle(&mut input, &mut out) else { panic!() };
    assert_eq!((r.status, r.keep_alive), (500, false));
    let text = std::str::from_utf8(&out[r.range()]).unwrap();
    assert_eq!(text, "HTTP/1.1 500 Internal Server Error\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
    let mut input = get("/.well-known/oauth-authorization-server", &[]);
    let Outcome::Respond(r) = s.handle(&mut input, &mut [0u8; 10]) else { panic!() };
    assert_eq!((r.written, r.keep_alive), (0, false));
}

/// How long a connection of the loopback server waits for its peer, in any one read and in the drain
/// at close. The peers below send everything, then close their side, at once.
const CONNECTION_TIMEOUT: Duration = Duration::from_secs(10);

/// Closes politely: FIN first, then reads until the peer's own FIN, so that the peer reads our last
/// response rather than a reset caused by input we never read. Bounded by `CONNECTION_TIMEOUT` as a
/// whole (not per read, so a peer that trickles cannot keep it open) and by a byte budget.
fn linger(stream: &TcpStream) {
    let _ = stream.shutdown(Shutdown::Write);
    let deadline = Instant::now() + CONNECTION_TIMEOUT;
    let mut budget = 1usize << 20;
    let mut buf = [0u8; 4096];
    while budget > 0 {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() || stream.set_read_timeout(Some(left)).is_err() {
            return;
        }
        match (&*stream).read(&mut buf) {
            Ok(0) | Err(_) => return,
            Ok(n) => budget = budget.saturating_sub(n),
        }
    }
}

/// A loopback server: one thread per connection, one shared provider behind a mutex.
fn spawn_server() -> std::net::SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let shared = Arc::new(Mutex::new(Server::new()));
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(stream) = stream else { continue };
            let shared = shared.clone();
            std::thread::spawn(move || {
                stream.set_read_timeout(Some(CONNECTION_TIMEOUT)).unwrap();
                stream.set_write_timeout(Some(CONNECTION_TIMEOUT)).unwrap();
                let mut io = StdIo(&stream);
                let cfg = http_common::config();
                let mut input = vec![0u8; cfg.input_buffer_len()];
                let mut output = vec![0u8; 8192];
                let _ = http::serve(&cfg, &mut io, &mut input, &mut output, |i, o| {
                    let mut guard = shared.lock().unwrap();
                    let s = &mut *guard;
                    let mut cx =
                        Context { provider: &mut s.provider, app: &mut s.app, rng: &mut s.rng, now: s.now, peer: None };
                    http::answer(&s.cfg, &mut cx, i, o)
                });
                linger(&stream);
            });
        }
    });
    addr
}

/// Writes `bytes` (optionally one byte at a time) and reads until the server closes.
fn talk(addr: std::net::SocketAddr, bytes: &[u8], bytewise: bool) -> Vec<Resp> {
    let mut c = TcpStream::connect(addr).unwrap();
    // Twice the server's: it answers, or gives up and closes, well before this peer stops waiting.
    c.set_read_timeout(Some(2 * CONNECTION_TIMEOUT)).unwrap();
    c.set_write_timeout(Some(2 * CONNECTION_TIMEOUT)).unwrap();
    c.set_nodelay(true).unwrap();
    if bytewise {
        for b in bytes {
            c.write_all(std::slice::from_ref(b)).unwrap();
        }
    } else {
        c.write_all(bytes).unwrap();
    }
    c.shutdown(Shutdown::Write).unwrap();
    let mut out = Vec::new();
    c.read_to_end(&mut out).unwrap();
    parse_responses(&out)
}

#[test]
fn loopback_server_keeps_serving_after_errors() {
    let addr = spawn_server();
    // Oversized body: the 413 arrives although the client is still sending.
    let mut big = b"POST /oauth/device HTTP/1.1\r\nHost: gw.test\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: 100000\r\n\r\n".to_vec();
    big.extend(std::iter::repeat_n(b'a', 100_000));
    let r = talk(addr, &big, false);
    assert_eq!(r.len(), 1);
    assert_eq!(r[0].status, 413);
    // Malformed, then a new connection works.
    assert_eq!(talk(addr, b"BLAH\r\n\r\n", false)[0].status, 400);
    assert_eq!(talk(addr, &get("/", &[("X", &"z".repeat(5000))]), false)[0].status, 431);
    // Pipelined requests written one byte at a time.
    let mut bytes = device_request();
    bytes.extend_from_slice(&post_form("/oauth/device", "client_id=tv-demo&scope=%"));
    bytes.extend_from_slice(&get("/.well-known/oauth-authorization-server", &[]));
    let r = talk(addr, &bytes, true);
    let statuses: Vec<u16> = r.iter().map(|r| r.status).collect();
    assert_eq!(statuses, [200, 400, 200]);
    assert_eq!(r[1].json()["error"], "invalid_request");
    // Several connections at once share the provider.
    let handles: Vec<_> = (0..4).map(|_| std::thread::spawn(move || talk(addr, &device_request(), false))).collect();
    for h in handles {
        assert_eq!(h.join().unwrap()[0].status, 200);
    }
}
