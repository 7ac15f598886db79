//! Load test of the host gateway (`examples/gateway.rs`) against the transport floor: a trivial server
//! with the same transport (std TCP on loopback, one thread per connection, keep-alive, `TCP_NODELAY`)
//! that reads each request whole and answers it with a canned response of the same length, doing
//! nothing else. The ratio of the two request rates is the share of the transport's capacity the gateway
//! keeps.
//!
//! ```text
//! bash benches/load.sh                       # builds and starts the gateway, then runs this
//! load --gateway 127.0.0.1:PORT [--seconds 2] [--connections 4] [--rounds 3]
//! ```
//!
//! Closed loop: each connection sends a request, reads the whole response, and sends the next, for
//! `--seconds` per run (and at most 2 000 000 requests per connection). Runs alternate between the
//! gateway and the floor for `--rounds` rounds and the medians are compared, so that a burst of load from
//! elsewhere on the machine does not land on one side only. Loopback only: `--gateway` must
//! be a 127.0.0.0/8 or ::1 address.

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

const MAX_REQUESTS_PER_CONNECTION: u64 = 2_000_000;
const USAGE: &str = "usage: load --gateway 127.0.0.1:PORT [--seconds N] [--connections N] [--rounds N]";

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("load: {e}\n{USAGE}");
            ExitCode::FAILURE
        }
    }
}

struct Options {
    gateway: SocketAddr,
    seconds: u64,
    connections: usize,
    rounds: usize,
}

fn options() -> Result<Options, String> {
    let mut gateway = None;
    let mut seconds = 2;
    let mut connections = 4;
    let mut rounds = 3;
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        let value = args.next().ok_or(format!("{flag} needs a value"))?;
        match flag.as_str() {
            "--gateway" => gateway = Some(value.parse::<SocketAddr>().map_err(|e| format!("--gateway: {e}"))?),
            "--seconds" => seconds = value.parse().map_err(|e| format!("--seconds: {e}"))?,
            "--connections" => connections = value.parse().map_err(|e| format!("--connections: {e}"))?,
            "--rounds" => rounds = value.parse().map_err(|e| format!("--rounds: {e}"))?,
            _ => return Err(format!("unknown option {flag}")),
        }
    }
    let gateway = gateway.ok_or("--gateway is required")?;
    if !gateway.ip().is_loopback() {
        return Err("only loopback addresses are load-tested".into());
    }
    if !(1..=60).contains(&seconds) || !(1..=64).contains(&connections) || !(1..=9).contains(&rounds) {
        return Err("--seconds must be 1..=60, --connections 1..=64 and --rounds 1..=9".into());
    }
    Ok(Options { gateway, seconds, connections, rounds })
}

fn run() -> Result<(), String> {
    let o = options()?;
    let setup = Setup::new(o.gateway).map_err(|e| format!("setting up the flow on the gateway: {e}"))?;
    let scenarios: Vec<(&str, Vec<Vec<u8>>)> = vec![
        (
            "POST /oauth/token (device code poll: slow_down)",
            setup.device_codes.iter().map(|code| poll_request(o.gateway, code)).collect(),
        ),
        (
            "GET /api/me (bearer check, protected route)",
            vec![request(
                o.gateway,
                "GET",
                "/api/me",
                &format!("Authorization: Bearer {}\r\n", setup.access_token),
                "",
            )],
        ),
    ];
    println!(
        "load: {} connections, {} s per run, {} rounds (medians), closed loop, loopback; gateway {} vs transport floor",
        o.connections, o.seconds, o.rounds, o.gateway
    );
    println!("  {:<48} {:>12} {:>12} {:>7}   per-round gateway/floor", "request", "gateway/s", "floor/s", "ratio");
    for (name, requests) in scenarios {
        // The response the gateway gives to this request, so the floor answers with as many bytes.
        let sample = exchange(o.gateway, &requests[0]).map_err(|e| format!("{name}: {e}"))?;
        let floor = Floor::start(sample.len()).map_err(|e| format!("floor server: {e}"))?;
        let floor_requests: Vec<Vec<u8>> = requests.iter().map(|r| retarget(r, floor.addr)).collect();
        let (mut gateway_rates, mut floor_rates) = (Vec::new(), Vec::new());
        for _ in 0..o.rounds {
            gateway_rates.push(load(o.gateway, &requests, &o)?);
            floor_rates.push(load(floor.addr, &floor_requests, &o)?);
        }
        floor.stop();
        let rounds: Vec<String> =
            gateway_rates.iter().zip(&floor_rates).map(|(g, f)| format!("{:.0}k/{:.0}k", g / 1e3, f / 1e3)).collect();
        let (gateway_rate, floor_rate) = (median(gateway_rates), median(floor_rates));
        let ratio = gateway_rate / floor_rate;
        println!("  {name:<48} {gateway_rate:>12.0} {floor_rate:>12.0} {:>6.0}%   {}", ratio * 100.0, rounds.join(" "));
        println!(
            "target: host gateway >= 70 % of the transport floor ({name}): {}",
            if ratio >= 0.70 { "met" } else { "MISSED" }
        );
    }
    Ok(())
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// Requests per second over all connections.
fn load(addr: SocketAddr, requests: &[Vec<u8>], o: &Options) -> Result<f64, String> {
    let deadline = Instant::now() + Duration::from_secs(o.seconds);
    let start = Instant::now();
    let workers: Vec<_> = (0..o.connections)
        .map(|i| {
            let req = requests[i % requests.len()].clone();
            thread::spawn(move || -> io::Result<u64> {
                let mut s = TcpStream::connect(addr)?;
                s.set_nodelay(true)?;
                s.set_read_timeout(Some(Duration::from_secs(10)))?;
                let mut buf = vec![0u8; 16 * 1024];
                let mut n = 0;
                while n < MAX_REQUESTS_PER_CONNECTION && Instant::now() < deadline {
                    s.write_all(&req)?;
                    read_response(&mut s, &mut buf)?;
                    n += 1;
                }
                Ok(n)
            })
        })
        .collect();
    let mut total = 0;
    for w in workers {
        total += w.join().map_err(|_| "a load thread panicked")?.map_err(|e| format!("{addr}: {e}"))?;
    }
    Ok(total as f64 / start.elapsed().as_secs_f64())
}

/// Reads one response (status line, headers, `Content-Length` body); returns its length.
fn read_response(s: &mut TcpStream, buf: &mut [u8]) -> io::Result<usize> {
    let mut len = 0;
    loop {
        if len == buf.len() {
            return Err(io::Error::other("response too large"));
        }
        let n = s.read(&mut buf[len..])?;
        if n == 0 {
            return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "connection closed"));
        }
        len += n;
        if let Some(total) = complete(&buf[..len]) {
            if total != len {
                return Err(io::Error::other("unexpected bytes after the response"));
            }
            return Ok(len);
        }
    }
}

/// The length of the message at the start of `buf` once it is complete (head and `Content-Length` body).
fn complete(buf: &[u8]) -> Option<usize> {
    let head = buf.windows(4).position(|w| w == b"\r\n\r\n")? + 4;
    let text = std::str::from_utf8(&buf[..head]).ok()?;
    let body = text
        .lines()
        .find_map(|l| {
            let (name, value) = l.split_once(':')?;
            name.eq_ignore_ascii_case("content-length").then(|| value.trim().parse::<usize>().ok())?
        })
        .unwrap_or(0);
    (buf.len() >= head + body).then_some(head + body)
}

fn request(addr: SocketAddr, method: &str, target: &str, headers: &str, body: &str) -> Vec<u8> {
    let mut r = format!("{method} {target} HTTP/1.1\r\nHost: {addr}\r\nUser-Agent: oauth2-devices-load\r\n{headers}");
    if method == "POST" {
        r += &format!("Content-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n", body.len());
    }
    r += "\r\n";
    r += body;
    r.into_bytes()
}

fn poll_request(addr: SocketAddr, device_code: &str) -> Vec<u8> {
    let grant = "urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Adevice_code";
    request(
        addr,
        "POST",
        "/oauth/token",
        "",
        &format!("grant_type={grant}&device_code={device_code}&client_id=tv-demo"),
    )
}

/// The same request with the `Host` of another server.
fn retarget(req: &[u8], addr: SocketAddr) -> Vec<u8> {
    let text = String::from_utf8_lossy(req);
    let (head, rest) = text.split_once("\r\nHost: ").unwrap_or((&text, ""));
    let rest = rest.split_once("\r\n").map_or("", |(_, r)| r);
    format!("{head}\r\nHost: {addr}\r\n{rest}").into_bytes()
}

/// One request on a fresh connection; returns the whole response.
fn exchange(addr: SocketAddr, req: &[u8]) -> io::Result<Vec<u8>> {
    let mut s = TcpStream::connect(addr)?;
    s.set_read_timeout(Some(Duration::from_secs(10)))?;
    s.write_all(req)?;
    let mut buf = vec![0u8; 64 * 1024];
    let n = read_response(&mut s, &mut buf)?;
    buf.truncate(n);
    Ok(buf)
}

fn status_and_body(response: &[u8]) -> (u16, String) {
    let text = String::from_utf8_lossy(response);
    let status = text.get(9..12).and_then(|s| s.parse().ok()).unwrap_or(0);
    let body = text.split_once("\r\n\r\n").map_or("", |(_, b)| b).to_owned();
    (status, body)
}

/// The string after `key` up to the next `"`.
fn after<'a>(text: &'a str, key: &str) -> Option<&'a str> {
    let start = text.find(key)? + key.len();
    let end = text[start..].find('"')?;
    Some(&text[start..start + end])
}

/// Codes and a token obtained through the gateway's own endpoints, as the demo's curl commands do.
struct Setup {
    device_codes: Vec<String>,
    access_token: String,
}

impl Setup {
    fn new(gw: SocketAddr) -> Result<Self, String> {
        let call = |req: Vec<u8>, want: u16| -> Result<String, String> {
            let (status, body) = status_and_body(&exchange(gw, &req).map_err(|e| e.to_string())?);
            if status != want {
                return Err(format!("status {status}, expected {want}: {body}"));
            }
            Ok(body)
        };
        let authorize = || call(request(gw, "POST", "/oauth/device", "", "client_id=tv-demo&scope=profile"), 200);
        // alice:wonderland
        let basic = "Authorization: Basic YWxpY2U6d29uZGVybGFuZA==\r\n";

        let json = authorize()?;
        let device_code = after(&json, "\"device_code\":\"").ok_or("no device_code")?.to_owned();
        let user_code = after(&json, "\"user_code\":\"").ok_or("no user_code")?.to_owned();
        let page = call(request(gw, "GET", &format!("/activate?user_code={user_code}"), basic, ""), 200)?;
        let csrf = after(&page, "name=\"csrf\" value=\"").ok_or("no csrf field on the page")?;
        let form = format!("user_code={user_code}&csrf={csrf}&action=approve");
        call(request(gw, "POST", "/activate", basic, &form), 200)?;
        let tokens = call(poll_request(gw, &device_code), 200)?;
        let access_token = after(&tokens, "\"access_token\":\"").ok_or("no access_token")?.to_owned();

        let mut device_codes = Vec::new();
        for _ in 0..4 {
            let json = authorize()?;
            device_codes.push(after(&json, "\"device_code\":\"").ok_or("no device_code")?.to_owned());
        }
        Ok(Self { device_codes, access_token })
    }
}

/// The transport floor: reads each request whole (head and `Content-Length` body) and answers with a
/// canned response of `len` bytes, one thread per connection, keep-alive.
struct Floor {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    acceptor: thread::JoinHandle<()>,
}

impl Floor {
    fn start(len: usize) -> io::Result<Self> {
        let head = "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: ";
        let mut response = format!("{head}0000\r\n\r\n").into_bytes();
        let body = len.saturating_sub(response.len());
        response = format!("{head}{body:04}\r\n\r\n").into_bytes();
        response.resize(response.len() + body, b'x');
        let response: Arc<[u8]> = response.into();
        let listener = TcpListener::bind("127.0.0.1:0")?;
        let addr = listener.local_addr()?;
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let acceptor = thread::spawn(move || {
            for stream in listener.incoming() {
                if flag.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(mut s) = stream else { continue };
                let response = response.clone();
                thread::spawn(move || {
                    let _ = s.set_nodelay(true);
                    let _ = s.set_read_timeout(Some(Duration::from_secs(10)));
                    let mut buf = vec![0u8; 8 * 1024];
                    let mut len = 0;
                    loop {
                        match s.read(&mut buf[len..]) {
                            Ok(0) | Err(_) => return,
                            Ok(n) => len += n,
                        }
                        while let Some(used) = complete(&buf[..len]) {
                            if s.write_all(&response).is_err() {
                                return;
                            }
                            buf.copy_within(used..len, 0);
                            len -= used;
                        }
                        if len == buf.len() {
                            return;
                        }
                    }
                });
            }
        });
        Ok(Self { addr, stop, acceptor })
    }

    fn stop(self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wake the acceptor so it sees the flag.
        let _ = TcpStream::connect(self.addr);
        let _ = self.acceptor.join();
    }
}
