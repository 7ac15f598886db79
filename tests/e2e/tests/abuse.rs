//! Connections under abuse, against the host gateway over loopback: an attacker bound to 127.0.0.2
//! holds as many connections as it can (dribbling heads, idle keep-alive connections, peers that keep
//! sending after `Connection: close`), while a legitimate client bound to 127.0.0.3 makes sequential
//! requests. Every one of them must be served, each within a bound derived from the deadlines passed
//! on the gateway's command line. Then `HEAD` and `Expect: 100-continue` with curl.
//!
//! Every loop is bounded in count and time, every socket has timeouts, and the attackers stop when
//! the test's legitimate requests are done (or at a hard end time).

use std::io::{ErrorKind, Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use oauth2_devices_e2e::Gateway;

const ATTACKER: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 2);
const CLIENT: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 3);
/// The deadlines given to the gateway (seconds).
const READ_TIMEOUT: f64 = 2.0;
const DRAIN_TIMEOUT: f64 = 0.5;
/// Legitimate requests per case.
const REQUESTS: usize = 10;
/// No attacker runs longer than this, whatever happens.
const ATTACK_HARD_END: Duration = Duration::from_secs(120);

/// A legitimate request's bound: three head deadlines (one to wait out a connection ahead of it, one
/// for itself, one spare) and 5 s for a loaded machine.
fn bound() -> Duration {
    Duration::from_secs_f64(3.0 * READ_TIMEOUT + 5.0)
}

fn addr(gw: &Gateway) -> SocketAddr {
    gw.addr.parse().expect("gateway address")
}

/// A TCP connection from `source` (any port) with read and write timeouts.
fn connect_from(source: Ipv4Addr, to: SocketAddr, timeout: Duration) -> std::io::Result<TcpStream> {
    oauth2_devices_e2e::try_connect_from(source.into(), to, timeout)
}

/// Reads one response from `s` (the shared test client): its status and body.
fn read_response(s: &mut TcpStream) -> std::io::Result<(u16, Vec<u8>)> {
    oauth2_devices_support::client::read_response(s).map(|r| (r.status, r.body))
}

/// The legitimate client: `REQUESTS` sequential device-authorization requests a quarter of a head
/// deadline apart, each on a new connection from 127.0.0.3; each must be answered 200 within
/// [`bound`]. Returns the slowest.
fn legitimate_client(to: SocketAddr) -> Duration {
    let mut slowest = Duration::ZERO;
    let body = "client_id=tv-demo&scope=profile";
    for i in 0..REQUESTS {
        let start = Instant::now();
        let mut s = connect_from(CLIENT, to, bound()).unwrap_or_else(|e| panic!("request {i}: connect: {e}"));
        let req = format!(
            "POST /oauth/device HTTP/1.1\r\nHost: {to}\r\nContent-Type: application/x-www-form-urlencoded\r\n\
             Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        );
        s.write_all(req.as_bytes()).unwrap_or_else(|e| panic!("request {i}: write: {e}"));
        let (status, body) = read_response(&mut s).unwrap_or_else(|e| panic!("request {i}: read: {e}"));
        let took = start.elapsed();
        assert_eq!(status, 200, "request {i}: {}", String::from_utf8_lossy(&body));
        assert!(took < bound(), "request {i} took {took:?}, over {:?}", bound());
        slowest = slowest.max(took);
        // Spread over more than two head deadlines, so the attackers' connections run into them.
        std::thread::sleep(Duration::from_secs_f64(READ_TIMEOUT / 4.0));
    }
    slowest
}

/// `n` attacker threads running `attack` until `stop`; each counts its connections in `opened`.
struct Attack {
    stop: Arc<AtomicBool>,
    opened: Arc<AtomicUsize>,
    threads: Vec<JoinHandle<()>>,
}

impl Attack {
    fn start(n: usize, to: SocketAddr, attack: fn(SocketAddr, &AtomicBool, &AtomicUsize, Instant)) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let opened = Arc::new(AtomicUsize::new(0));
        let end = Instant::now() + ATTACK_HARD_END;
        let threads = (0..n)
            .map(|_| {
                let (stop, opened) = (stop.clone(), opened.clone());
                std::thread::spawn(move || attack(to, &stop, &opened, end))
            })
            .collect();
        Attack { stop, opened, threads }
    }

    /// Waits until the attackers opened at least `n` connections (at most 20 s).
    fn ramp_up(&self, n: usize) {
        let until = Instant::now() + Duration::from_secs(20);
        while self.opened.load(Ordering::SeqCst) < n && Instant::now() < until {
            std::thread::sleep(Duration::from_millis(50));
        }
        assert!(self.opened.load(Ordering::SeqCst) >= n, "the attack did not start");
    }

    fn stop(self) {
        self.stop.store(true, Ordering::SeqCst);
        for t in self.threads {
            let _ = t.join();
        }
    }
}

fn running(stop: &AtomicBool, end: Instant) -> bool {
    !stop.load(Ordering::SeqCst) && Instant::now() < end
}

/// Sleeps `d` in steps, returning early on `stop`.
fn nap(d: Duration, stop: &AtomicBool) {
    let until = Instant::now() + d;
    while Instant::now() < until && !stop.load(Ordering::SeqCst) {
        std::thread::sleep(Duration::from_millis(20).min(until.saturating_duration_since(Instant::now())));
    }
}

/// Dribbles a head, one byte per second; reconnects when the connection closes.
fn dribble(to: SocketAddr, stop: &AtomicBool, opened: &AtomicUsize, end: Instant) {
    let head =
        b"GET / HTTP/1.1\r\nHost: x\r\nX-Slow: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n";
    while running(stop, end) {
        let Ok(mut s) = connect_from(ATTACKER, to, Duration::from_secs(2)) else {
            nap(Duration::from_millis(200), stop);
            continue;
        };
        opened.fetch_add(1, Ordering::SeqCst);
        for b in head.iter().cycle().take(10_000) {
            if !running(stop, end) || s.write_all(&[*b]).is_err() {
                break;
            }
            nap(Duration::from_secs(1), stop);
        }
        nap(Duration::from_millis(200), stop);
    }
}

/// Opens a keep-alive connection, makes one request, then holds the connection idle; reconnects
/// when the server closes it.
fn idle_keep_alive(to: SocketAddr, stop: &AtomicBool, opened: &AtomicUsize, end: Instant) {
    while running(stop, end) {
        let Ok(mut s) = connect_from(ATTACKER, to, Duration::from_secs(1)) else {
            nap(Duration::from_millis(200), stop);
            continue;
        };
        opened.fetch_add(1, Ordering::SeqCst);
        if s.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").is_ok() && read_response(&mut s).is_ok() {
            // Idle: wait for the server to close (a read of 0 or an error), checking `stop` every second.
            let mut buf = [0u8; 512];
            while running(stop, end) {
                match s.read(&mut buf) {
                    Ok(0) => break,
                    Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
                    _ => break,
                }
            }
        }
        nap(Duration::from_millis(200), stop);
    }
}

/// Sends a request with `Connection: close`, then keeps sending a byte every 0.2 s without reading,
/// so the server's drain always has input; reconnects when the connection closes.
fn dribble_after_close(to: SocketAddr, stop: &AtomicBool, opened: &AtomicUsize, end: Instant) {
    while running(stop, end) {
        let Ok(mut s) = connect_from(ATTACKER, to, Duration::from_secs(1)) else {
            nap(Duration::from_millis(200), stop);
            continue;
        };
        opened.fetch_add(1, Ordering::SeqCst);
        if s.write_all(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").is_ok() {
            for _ in 0..1000 {
                if !running(stop, end) || s.write_all(b"x").is_err() {
                    break;
                }
                nap(Duration::from_millis(200), stop);
            }
        }
        nap(Duration::from_millis(100), stop);
    }
}

fn gateway(extra: &[&str]) -> Gateway {
    let read = READ_TIMEOUT.to_string();
    let drain = DRAIN_TIMEOUT.to_string();
    let mut args = vec!["--read-timeout", read.as_str(), "--drain-timeout", drain.as_str()];
    args.extend_from_slice(extra);
    Gateway::start(&args)
}

fn count(log: &[String], needle: &str) -> usize {
    log.iter().filter(|l| l.contains(needle)).count()
}

/// 80 connections dribbling a head a byte per second (reconnecting when closed): the attacker gets
/// its per-peer share of the 64 connections, is refused the rest, and the client is served.
#[test]
fn dribbling_connections_do_not_starve_a_client() {
    let gw = gateway(&["--idle-timeout", "1"]);
    let to = addr(&gw);
    let attack = Attack::start(80, to, dribble);
    attack.ramp_up(80);
    let slowest = legitimate_client(to);
    attack.stop();
    let log = gw.log();
    assert!(count(&log, "503 127.0.0.2") > 0, "the attacker was never refused");
    assert!(count(&log, "408 127.0.0.2") > 0, "no dribbled request ran into the read timeout");
    assert_eq!(count(&log, "127.0.0.3") - count(&log, "/oauth/device 200 127.0.0.3"), 0, "{log:?}");
    eprintln!(
        "dribbling: slowest legitimate request {slowest:?}; {} refusals, {} 408s",
        count(&log, "503 127.0.0.2"),
        count(&log, "408 127.0.0.2")
    );
}

/// 80 idle keep-alive connections, allowed to take every one of the 64 connections (per-peer cap 80)
/// and never closed by the idle deadline (60 s): idle ones are evicted to admit the client.
#[test]
fn idle_keep_alive_connections_are_evicted_for_a_client() {
    let gw = gateway(&["--idle-timeout", "60", "--max-connections", "64", "--max-per-peer", "80"]);
    let to = addr(&gw);
    let attack = Attack::start(80, to, idle_keep_alive);
    attack.ramp_up(80);
    let slowest = legitimate_client(to);
    attack.stop();
    let log = gw.log();
    assert!(count(&log, "evicted 127.0.0.2") > 0, "no idle connection was evicted");
    assert_eq!(count(&log, "evicted 127.0.0.3"), 0, "the client's connection was evicted");
    eprintln!(
        "idle keep-alive: slowest legitimate request {slowest:?}; {} evictions",
        count(&log, "evicted 127.0.0.2")
    );
}

/// 32 peers that keep sending after their `Connection: close` request, allowed to take every one of
/// 32 connections: the drain deadline frees them, and the client is served.
#[test]
fn dribbling_after_close_is_cut_by_the_drain_deadline() {
    let gw = gateway(&["--idle-timeout", "1", "--max-connections", "32", "--max-per-peer", "32"]);
    let to = addr(&gw);
    let attack = Attack::start(32, to, dribble_after_close);
    // Every attacker connected at least twice: the drain ends and they come back.
    attack.ramp_up(64);
    let slowest = legitimate_client(to);
    attack.stop();
    eprintln!("dribble after close: slowest legitimate request {slowest:?}");
}

fn curl() -> &'static str {
    let found = Command::new("curl").arg("--version").output().map(|o| o.status.success()).unwrap_or(false);
    assert!(found, "curl is needed for this test (CI installs it)");
    "curl"
}

/// `HEAD` answered without a body on every kind of route, and the request after it on the same
/// connection intact (curl reports "Excess found" for body bytes after a HEAD response).
#[test]
fn curl_head_then_get_on_one_connection() {
    let gw = Gateway::start(&[]);
    let metadata = format!("{}/.well-known/oauth-authorization-server", gw.base);
    let out = Command::new(curl())
        .args(["-sS", "-v", "--max-time", "10", "-I", &format!("{}/nope", gw.base), "-I", &metadata, "-I"])
        .arg(format!("{}/oauth/device", gw.base))
        .args(["--next", "-sS", "--max-time", "10", &format!("{}/", gw.base)])
        .output()
        .expect("run curl");
    let stderr = String::from_utf8_lossy(&out.stderr);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stderr}");
    assert!(!stderr.contains("Excess found"), "{stderr}");
    assert_eq!(stderr.matches("Re-using existing connection").count(), 3, "{stderr}");
    for status in ["HTTP/1.1 404 Not Found", "HTTP/1.1 200 OK", "HTTP/1.1 405 Method Not Allowed"] {
        assert!(stdout.contains(status), "{status} in {stdout}");
    }
    assert!(
        stdout.ends_with("oauth2-devices demo gateway: see /.well-known/oauth-authorization-server and /activate\n")
    );
}

/// A POST over 1 KiB with `Expect: 100-continue` is answered at once: `100 Continue`, then the
/// response, well under the 1 s curl waits for a `100 Continue` that does not come; and a body that is
/// too long is refused (413) before it is sent.
#[test]
fn curl_expect_100_continue_gets_no_wait() {
    let gw = Gateway::start(&[]);
    let pad = "a".repeat(1500);
    let body = format!("client_id=tv-demo&scope=profile&pad={pad}");
    let run = |body: &str| {
        let out = Command::new(curl())
            .args(["-sS", "-v", "--max-time", "10", "-o", "/dev/null", "-w", "%{http_code} %{time_total}"])
            .args(["-H", "Expect: 100-continue", "-H", "Content-Type: application/x-www-form-urlencoded"])
            .args(["--data-binary", body, &format!("{}/oauth/device", gw.base)])
            .output()
            .expect("run curl");
        let stdout = String::from_utf8_lossy(&out.stdout).to_string();
        let stderr = String::from_utf8_lossy(&out.stderr).to_string();
        let (code, time) = stdout.split_once(' ').expect("curl -w output");
        (code.parse::<u16>().unwrap(), time.parse::<f64>().unwrap(), stderr)
    };
    let (code, time, stderr) = run(&body);
    assert_eq!(code, 200, "{stderr}");
    assert!(stderr.contains("HTTP/1.1 100 Continue"), "{stderr}");
    // curl's own wait for a 100 Continue is 1 s: under it, nobody waited for it to expire.
    assert!(time < 0.9, "took {time} s: {stderr}");
    let (code, time, stderr) = run(&"a".repeat(4000));
    assert_eq!(code, 413, "{stderr}");
    assert!(!stderr.contains("100 Continue"), "{stderr}");
    assert!(time < 0.9, "took {time} s: {stderr}");
}
