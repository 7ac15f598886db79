//! Load test of the host gateway (`examples/gateway.rs`) against the transport floor: a trivial server
//! with the same transport (std TCP on loopback, one thread per connection, keep-alive, `TCP_NODELAY`)
//! that reads each request whole and answers it with a canned response of the same length, doing
//! nothing else. The ratio of the two request rates is the share of the transport's capacity the gateway
//! keeps.
//!
//! ```text
//! bash benches/load.sh                       # builds, starts the gateway pinned to a core, runs this
//! load --gateway 127.0.0.1:PORT [--seconds 2] [--connections 8] [--rounds 3]
//!      [--floor-cpu N] [--gateway-pid PID] [--wrk] [--device-seconds 2]
//! load --serve-floor LEN                     # the floor alone (started by the above as a child)
//! ```
//!
//! Two harnesses measure the same two requests (a device-code poll answered `slow_down`, and
//! `GET /api/me` with a bearer token):
//! - this bin's own client: one thread per connection, blocking `write`/`read`, closed loop (each
//!   connection sends a request, reads the whole response, sends the next), for `--seconds` per run
//!   and at most 2 000 000 requests per connection;
//! - with `--wrk`, `wrk` (one thread, the same number of connections, event-driven on `epoll`), with
//!   a Lua script sending the same requests.
//!
//! Runs alternate between the gateway and the floor for `--rounds` rounds and the medians are
//! compared, so that a burst of load from elsewhere on the machine does not land on one side only. The
//! floor runs as a process of its own, like the gateway; `--floor-cpu N` starts it under `taskset -c N`
//! (give the gateway the same core and run this bin, hence its client threads and `wrk`, on another).
//!
//! Each run also reads the server process's CPU time (`/proc/PID/stat`; the gateway's with
//! `--gateway-pid`): microseconds of server CPU per request, and how busy the server's core was. When
//! the server's core is not saturated the client is the bottleneck, and the request-rate ratio says
//! more about the client than about the server; the CPU ratio is what the rate ratio becomes once the
//! server's core is the bottleneck.
//!
//! Then the 200 path of `POST /oauth/device`: one connection from each of the sources 127.0.0.2 to
//! 127.0.0.9 (the client socket bound to that address before it connects), so that the grant table's
//! fair share per source does not answer 429 before the table is full. Run once (a grant holds its slot
//! for minutes, so a second round would see a full table), for `--device-seconds`; it reports the
//! requests per second, the share of each status, and how fast the 200s came while slots were free.
//!
//! Loopback only: `--gateway` must be a 127.0.0.0/8 or ::1 address.

use std::collections::BTreeMap;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, ChildStdout, Command, ExitCode, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use socket2::{Domain, Protocol, Socket, Type};

const MAX_REQUESTS_PER_CONNECTION: u64 = 2_000_000;
/// The floor server exits after this long even if nobody stops it.
const FLOOR_MAX_LIFETIME: Duration = Duration::from_secs(900);
/// Timeout of every socket operation of the client and the floor.
const IO_TIMEOUT: Duration = Duration::from_secs(10);
/// The sources of the device-authorization load: 127.0.0.2 ..= 127.0.0.9.
const DEVICE_SOURCES: std::ops::RangeInclusive<u8> = 2..=9;
const USAGE: &str = "usage: load --gateway 127.0.0.1:PORT [--seconds N] [--connections N] [--rounds N] \
                     [--floor-cpu N] [--gateway-pid PID] [--wrk] [--device-seconds N]\n       load --serve-floor LEN";

fn main() -> ExitCode {
    let mut args = std::env::args().skip(1).peekable();
    let result = if args.peek().is_some_and(|a| a == "--serve-floor") {
        args.next();
        match args.next().map(|v| v.parse::<usize>()) {
            Some(Ok(len)) => serve_floor(len),
            _ => Err("--serve-floor needs a response length".into()),
        }
    } else {
        options(args).and_then(|o| run(&o))
    };
    match result {
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
    floor_cpu: Option<usize>,
    gateway_pid: Option<u32>,
    wrk: bool,
    device_seconds: u64,
}

fn options(mut args: impl Iterator<Item = String>) -> Result<Options, String> {
    let mut o = Options {
        gateway: ([127, 0, 0, 1], 0).into(),
        seconds: 2,
        connections: 8,
        rounds: 3,
        floor_cpu: None,
        gateway_pid: None,
        wrk: false,
        device_seconds: 2,
    };
    let mut gateway = None;
    while let Some(flag) = args.next() {
        if flag == "--wrk" {
            o.wrk = true;
            continue;
        }
        let value = args.next().ok_or(format!("{flag} needs a value"))?;
        let num = |v: &str| v.parse::<u64>().map_err(|e| format!("{flag}: {e}"));
        match flag.as_str() {
            "--gateway" => gateway = Some(value.parse::<SocketAddr>().map_err(|e| format!("--gateway: {e}"))?),
            "--seconds" => o.seconds = num(&value)?,
            "--connections" => o.connections = num(&value)? as usize,
            "--rounds" => o.rounds = num(&value)? as usize,
            "--floor-cpu" => o.floor_cpu = Some(num(&value)? as usize),
            "--gateway-pid" => o.gateway_pid = Some(num(&value)? as u32),
            "--device-seconds" => o.device_seconds = num(&value)?,
            _ => return Err(format!("unknown option {flag}")),
        }
    }
    o.gateway = gateway.ok_or("--gateway is required")?;
    if !o.gateway.ip().is_loopback() {
        return Err("only loopback addresses are load-tested".into());
    }
    if !(1..=60).contains(&o.seconds)
        || !(1..=60).contains(&o.device_seconds)
        || !(1..=30).contains(&o.connections)
        || !(1..=9).contains(&o.rounds)
    {
        return Err("--seconds and --device-seconds must be 1..=60, --connections 1..=30 and --rounds 1..=9".into());
    }
    Ok(o)
}

/// A harness: requests per second of a run against an address, connection `i` sending `requests[i % len]`.
type Measure<'a> = Box<dyn Fn(SocketAddr, &[Vec<u8>]) -> Result<Run, String> + 'a>;

/// One timed run of a harness.
#[derive(Clone, Copy)]
struct Run {
    per_second: f64,
    requests: u64,
    seconds: f64,
}

/// A run and the CPU time its server process used meanwhile.
#[derive(Clone, Copy)]
struct Measured {
    run: Run,
    /// Seconds of CPU (user + system, all threads) of the server process, if known.
    server_cpu: Option<f64>,
}

impl Measured {
    /// Microseconds of server CPU per request.
    fn cpu_per_request(&self) -> Option<f64> {
        self.server_cpu.map(|c| c * 1e6 / self.run.requests.max(1) as f64)
    }

    /// The share of one core the server used.
    fn utilisation(&self) -> Option<f64> {
        self.server_cpu.map(|c| c / self.run.seconds)
    }
}

/// Seconds of CPU (user + system) a process has used so far: `/proc/PID/stat` fields 14 and 15, in
/// the kernel's `USER_HZ` (100 per second on Linux).
fn cpu_seconds(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // After the command name (in parentheses, which may hold spaces): field 3 onwards.
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    let ticks = |i: usize| fields.get(i).and_then(|f| f.parse::<u64>().ok());
    Some((ticks(11)? + ticks(12)?) as f64 / 100.0)
}

/// Runs `measure` against `addr` and reads the CPU time `pid` used meanwhile.
fn measured(
    measure: &Measure<'_>,
    addr: SocketAddr,
    requests: &[Vec<u8>],
    pid: Option<u32>,
) -> Result<Measured, String> {
    let before = pid.and_then(cpu_seconds);
    let run = measure(addr, requests)?;
    let after = pid.and_then(cpu_seconds);
    Ok(Measured { run, server_cpu: before.zip(after).map(|(b, a)| a - b) })
}

/// One request kind measured against the gateway and the floor.
struct Scenario {
    name: &'static str,
    /// Connection `i` sends `requests[i % len]`.
    requests: Vec<Vec<u8>>,
}

fn run(o: &Options) -> Result<(), String> {
    let setup = Setup::new(o.gateway).map_err(|e| format!("setting up the flow on the gateway: {e}"))?;
    let scenarios = [
        Scenario {
            name: "POST /oauth/token (device code poll: slow_down)",
            requests: setup.device_codes.iter().map(|code| poll_request(o.gateway, code)).collect(),
        },
        Scenario {
            name: "GET /api/me (bearer check, protected route)",
            requests: vec![request(
                o.gateway,
                "GET",
                "/api/me",
                &[("Authorization", &format!("Bearer {}", setup.access_token))],
                "",
            )],
        },
    ];
    let cpu = o.floor_cpu.map_or("any core".to_owned(), |c| format!("CPU {c}"));
    println!(
        "load: gateway {} vs transport floor (a separate process on {cpu}); {} connections, {} s per run, \
         {} rounds (medians), closed loop, loopback",
        o.gateway, o.connections, o.seconds, o.rounds
    );
    let work = WorkDir::new()?;
    for (i, s) in scenarios.iter().enumerate() {
        // The response the gateway gives to this request, so the floor answers with as many bytes.
        let sample = exchange(o.gateway, &s.requests[0]).map_err(|e| format!("{}: {e}", s.name))?;
        let floor = Floor::start(sample.len(), o.floor_cpu)?;
        let floor_requests: Vec<Vec<u8>> = s.requests.iter().map(|r| retarget(r, floor.addr)).collect();
        let mut harnesses: Vec<(&str, Measure<'_>)> =
            vec![("load", Box::new(|addr, reqs: &[Vec<u8>]| closed_loop(addr, reqs, o)))];
        if o.wrk {
            let script = work.path.join(format!("scenario{i}.lua"));
            harnesses.push(("wrk", Box::new(move |addr, reqs: &[Vec<u8>]| wrk(addr, reqs, &script, o))));
        }
        for (harness, measure) in &harnesses {
            let (mut gateway_runs, mut floor_runs) = (Vec::new(), Vec::new());
            for _ in 0..o.rounds {
                gateway_runs.push(measured(measure, o.gateway, &s.requests, o.gateway_pid)?);
                floor_runs.push(measured(measure, floor.addr, &floor_requests, Some(floor.child.id()))?);
            }
            let rounds: Vec<String> = gateway_runs
                .iter()
                .zip(&floor_runs)
                .map(|(g, f)| format!("{:.0}k/{:.0}k", g.run.per_second / 1e3, f.run.per_second / 1e3))
                .collect();
            let rate = |runs: &[Measured]| median(runs.iter().map(|m| m.run.per_second).collect());
            let (gateway_rate, floor_rate) = (rate(&gateway_runs), rate(&floor_runs));
            let ratio = gateway_rate / floor_rate;
            println!(
                "  {:<48} {harness:<4} gateway {gateway_rate:>7.0}/s  floor {floor_rate:>7.0}/s  {:>4.0} %   rounds (gateway/floor): {}",
                s.name,
                ratio * 100.0,
                rounds.join(" ")
            );
            let cpu = |runs: &[Measured]| -> Option<(f64, f64)> {
                let per: Option<Vec<f64>> = runs.iter().map(Measured::cpu_per_request).collect();
                let busy: Option<Vec<f64>> = runs.iter().map(Measured::utilisation).collect();
                Some((median(per?), median(busy?)))
            };
            if let (Some((g_us, g_busy)), Some((f_us, f_busy))) = (cpu(&gateway_runs), cpu(&floor_runs)) {
                println!(
                    "    server CPU per request: gateway {g_us:.1} µs (its core {:.0} % busy), floor {f_us:.1} µs ({:.0} % busy): \
                     with the server core saturated the gateway would serve {:.0} % of the floor's rate",
                    g_busy * 100.0,
                    f_busy * 100.0,
                    100.0 * f_us / g_us
                );
            }
            println!(
                "target: host gateway >= 90 % of the transport floor ({}, {harness}): {} ({:.0} %)",
                s.name,
                if ratio >= 0.90 { "met" } else { "MISSED" },
                ratio * 100.0
            );
        }
        floor.stop();
    }
    device_load(o)
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// This bin's client: requests per second over all connections, closed loop.
fn closed_loop(addr: SocketAddr, requests: &[Vec<u8>], o: &Options) -> Result<Run, String> {
    let deadline = Instant::now() + Duration::from_secs(o.seconds);
    let start = Instant::now();
    let workers: Vec<_> = (0..o.connections)
        .map(|i| {
            let req = requests[i % requests.len()].clone();
            thread::spawn(move || -> io::Result<u64> {
                let mut s = connect(addr, None)?;
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
    let seconds = start.elapsed().as_secs_f64();
    Ok(Run { per_second: total as f64 / seconds, requests: total, seconds })
}

/// `wrk`: one thread, the same connections and duration; returns its `Requests/sec`. The script only
/// sets the request (method, path, headers, body of `requests[0]`), so `wrk` formats it once and sends
/// the same bytes on every connection: with a Lua `request()` function it would call into Lua for every
/// request, which costs client CPU on every request. (The load bin spreads the
/// token poll over four device codes; the server's work is the same for each.)
fn wrk(addr: SocketAddr, requests: &[Vec<u8>], script: &std::path::Path, o: &Options) -> Result<Run, String> {
    let text = String::from_utf8_lossy(&requests[0]).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").ok_or("a request without a head")?;
    let mut lines = head.split("\r\n");
    let mut start = lines.next().unwrap_or_default().split(' ');
    let (method, path) = (start.next().unwrap_or("GET"), start.next().unwrap_or("/"));
    let quote = |s: &str| format!("\"{}\"", s.bytes().map(|b| format!("\\{b}")).collect::<String>());
    let mut lua = format!("wrk.method = {}\nwrk.path = {}\nwrk.body = {}\n", quote(method), quote(path), quote(body));
    for line in lines {
        let Some((name, value)) = line.split_once(": ") else { continue };
        // wrk writes `Host` from the URL, and `Content-Length` from the body.
        if !name.eq_ignore_ascii_case("host") && !name.eq_ignore_ascii_case("content-length") {
            lua += &format!("wrk.headers[{}] = {}\n", quote(name), quote(value));
        }
    }
    std::fs::write(script, lua).map_err(|e| format!("writing {}: {e}", script.display()))?;
    let out = Command::new("wrk")
        .args(["-t1", &format!("-c{}", o.connections), &format!("-d{}s", o.seconds), "--timeout", "10s", "-s"])
        .arg(script)
        .arg(format!("http://{addr}/"))
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("running wrk (Debian package `wrk`): {e}"))?;
    let text = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() {
        return Err(format!("wrk failed: {text}{}", String::from_utf8_lossy(&out.stderr)));
    }
    if let Some(line) = text.lines().find(|l| l.contains("Socket errors")) {
        return Err(format!("wrk against {addr}: {}", line.trim()));
    }
    let per_second: f64 = text
        .lines()
        .find_map(|l| l.trim().strip_prefix("Requests/sec:").and_then(|v| v.trim().parse().ok()))
        .ok_or(format!("no Requests/sec in wrk's output: {text}"))?;
    // "  123456 requests in 2.00s, 12.34MB read"
    let (requests, seconds) = text
        .lines()
        .find_map(|l| {
            let (n, rest) = l.trim().split_once(" requests in ")?;
            let secs = rest.split_once('s')?.0.parse::<f64>().ok()?;
            Some((n.parse::<u64>().ok()?, secs))
        })
        .ok_or(format!("no request count in wrk's output: {text}"))?;
    Ok(Run { per_second, requests, seconds })
}

/// A client socket, bound to `source` (port chosen by the system) when given, with `TCP_NODELAY` and
/// read/write timeouts.
fn connect(addr: SocketAddr, source: Option<Ipv4Addr>) -> io::Result<TcpStream> {
    let s = match source {
        None => TcpStream::connect_timeout(&addr, IO_TIMEOUT)?,
        Some(ip) => {
            let socket = Socket::new(Domain::IPV4, Type::STREAM, Some(Protocol::TCP))?;
            socket.bind(&SocketAddr::V4(SocketAddrV4::new(ip, 0)).into())?;
            socket.connect_timeout(&addr.into(), IO_TIMEOUT)?;
            socket.into()
        }
    };
    s.set_nodelay(true)?;
    s.set_read_timeout(Some(IO_TIMEOUT))?;
    s.set_write_timeout(Some(IO_TIMEOUT))?;
    Ok(s)
}

/// What one device-authorization connection saw.
#[derive(Default)]
struct DeviceCounts {
    statuses: BTreeMap<u16, u64>,
    /// Time from the start to its last 200.
    last_ok: Option<Duration>,
    reconnects: u64,
}

/// The 200 path of `POST /oauth/device`, one connection per source address.
fn device_load(o: &Options) -> Result<(), String> {
    let req = request(o.gateway, "POST", "/oauth/device", &[], "client_id=tv-demo&scope=profile");
    let sources: Vec<Ipv4Addr> = DEVICE_SOURCES.map(|d| Ipv4Addr::new(127, 0, 0, d)).collect();
    let start = Instant::now();
    let deadline = start + Duration::from_secs(o.device_seconds);
    let gateway = o.gateway;
    let workers: Vec<_> = sources
        .iter()
        .map(|&source| {
            let req = req.clone();
            thread::spawn(move || -> io::Result<DeviceCounts> {
                let mut c = DeviceCounts::default();
                let mut s = connect(gateway, Some(source))?;
                let mut buf = vec![0u8; 16 * 1024];
                let mut n = 0;
                while n < MAX_REQUESTS_PER_CONNECTION && Instant::now() < deadline {
                    s.write_all(&req)?;
                    let len = read_response(&mut s, &mut buf)?;
                    n += 1;
                    let status = status_of(&buf[..len]);
                    *c.statuses.entry(status).or_default() += 1;
                    if status == 200 {
                        c.last_ok = Some(start.elapsed());
                    }
                    if closes(&buf[..len]) {
                        c.reconnects += 1;
                        s = connect(gateway, Some(source))?;
                    }
                }
                Ok(c)
            })
        })
        .collect();
    let mut statuses: BTreeMap<u16, u64> = BTreeMap::new();
    let (mut last_ok, mut reconnects, mut sources_ok) = (Duration::ZERO, 0, 0);
    for w in workers {
        let c = w.join().map_err(|_| "a load thread panicked")?.map_err(|e| format!("POST /oauth/device: {e}"))?;
        for (status, n) in c.statuses.iter() {
            *statuses.entry(*status).or_default() += n;
        }
        if let Some(t) = c.last_ok {
            last_ok = last_ok.max(t);
            sources_ok += 1;
        }
        reconnects += c.reconnects;
    }
    let elapsed = start.elapsed().as_secs_f64();
    let total: u64 = statuses.values().sum();
    let ok = statuses.get(&200).copied().unwrap_or(0);
    let shares: Vec<String> = statuses
        .iter()
        .map(|(status, n)| format!("{status}: {n} ({:.2} %)", 100.0 * *n as f64 / total.max(1) as f64))
        .collect();
    println!(
        "  POST /oauth/device from {} sources (127.0.0.{}..=127.0.0.{}), one connection each, {} s, once:",
        sources.len(),
        DEVICE_SOURCES.start(),
        DEVICE_SOURCES.end(),
        o.device_seconds
    );
    println!(
        "    {:.0} requests/s; 200s: {ok} of {total} ({:.2} %), {:.0}/s over the run; statuses {}; reconnects {reconnects}",
        total as f64 / elapsed,
        100.0 * ok as f64 / total.max(1) as f64,
        ok as f64 / elapsed,
        shares.join(", ")
    );
    if ok > 0 {
        println!(
            "    while slots were free: {ok} 200s in {:.1} ms ({:.0}/s), from {sources_ok} of {} sources",
            last_ok.as_secs_f64() * 1e3,
            ok as f64 / last_ok.as_secs_f64().max(1e-6),
            sources.len()
        );
    }
    if ok < total {
        let (too_many, unavailable) =
            (statuses.get(&429).copied().unwrap_or(0), statuses.get(&503).copied().unwrap_or(0));
        println!(
            "    the 200s stopped after {ok} grants (the table's capacity less the harness's own live grants and \
             the slots the policy keeps for new sources); then 429 ({too_many}: a source holding as many live grants \
             as slots are left) and 503 ({unavailable}: no slot left at all)"
        );
    }
    // A source that sent nothing yet still finds a slot while any is left (the policy's promise).
    let fresh = Ipv4Addr::new(127, 0, 0, DEVICE_SOURCES.end() + 1);
    let mut s = connect(o.gateway, Some(fresh)).map_err(|e| format!("POST /oauth/device from {fresh}: {e}"))?;
    let mut buf = vec![0u8; 16 * 1024];
    s.write_all(&req).map_err(|e| e.to_string())?;
    let len = read_response(&mut s, &mut buf).map_err(|e| format!("POST /oauth/device from {fresh}: {e}"))?;
    println!("    then one request from a new source, {fresh}: {}", status_of(&buf[..len]));
    Ok(())
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

/// The length of the response at the start of `buf` once it is complete (the shared test client's
/// framing: head and `Content-Length` body).
fn complete(buf: &[u8]) -> Option<usize> {
    oauth2_devices_support::client::complete(buf)
}

/// The value of header `name` in a message head.
fn header<'a>(head: &'a [u8], name: &str) -> Option<&'a str> {
    let text = std::str::from_utf8(head).ok()?;
    text.lines().find_map(|l| {
        let (n, value) = l.split_once(':')?;
        n.eq_ignore_ascii_case(name).then_some(value.trim())
    })
}

/// Whether the server closes the connection after this response.
fn closes(response: &[u8]) -> bool {
    header(response, "connection").is_some_and(|v| v.eq_ignore_ascii_case("close"))
}

fn status_of(response: &[u8]) -> u16 {
    response.get(9..12).and_then(|s| std::str::from_utf8(s).ok()).and_then(|s| s.parse().ok()).unwrap_or(0)
}

fn request(addr: SocketAddr, method: &str, target: &str, headers: &[(&str, &str)], body: &str) -> Vec<u8> {
    use oauth2_devices_support::client::FORM;
    let mut all = vec![("User-Agent", "oauth2-devices-load")];
    all.extend_from_slice(headers);
    if method == "POST" {
        all.push(("Content-Type", FORM));
    }
    oauth2_devices_support::client::request(method, target, &addr.to_string(), &all, body)
}

fn poll_request(addr: SocketAddr, device_code: &str) -> Vec<u8> {
    let grant = "urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Adevice_code";
    request(
        addr,
        "POST",
        "/oauth/token",
        &[],
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
    let mut s = connect(addr, None)?;
    s.write_all(req)?;
    let mut buf = vec![0u8; 64 * 1024];
    let n = read_response(&mut s, &mut buf)?;
    buf.truncate(n);
    Ok(buf)
}

fn status_and_body(response: &[u8]) -> (u16, String) {
    let text = String::from_utf8_lossy(response);
    let body = text.split_once("\r\n\r\n").map_or("", |(_, b)| b).to_owned();
    (status_of(response), body)
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
        let authorize = || call(request(gw, "POST", "/oauth/device", &[], "client_id=tv-demo&scope=profile"), 200);
        // alice:wonderland
        let basic: &[(&str, &str)] = &[("Authorization", "Basic YWxpY2U6d29uZGVybGFuZA==")];

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

/// A temporary directory for the `wrk` scripts, removed on drop.
struct WorkDir {
    path: PathBuf,
}

impl WorkDir {
    fn new() -> Result<Self, String> {
        let path = std::env::temp_dir().join(format!("oauth2-devices-load-{}", std::process::id()));
        std::fs::create_dir_all(&path).map_err(|e| format!("creating {}: {e}", path.display()))?;
        Ok(Self { path })
    }
}

impl Drop for WorkDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.path);
    }
}

/// The transport floor, running as a child process (`load --serve-floor LEN`), optionally pinned to a
/// CPU with `taskset`.
struct Floor {
    addr: SocketAddr,
    child: Child,
}

impl Floor {
    fn start(len: usize, cpu: Option<usize>) -> Result<Self, String> {
        let me = std::env::current_exe().map_err(|e| format!("finding this executable: {e}"))?;
        let mut cmd = match cpu {
            Some(cpu) => {
                let mut c = Command::new("taskset");
                c.arg("-c").arg(cpu.to_string()).arg(me);
                c
            }
            None => Command::new(me),
        };
        cmd.arg("--serve-floor").arg(len.to_string()).stdin(Stdio::piped()).stdout(Stdio::piped());
        let mut child = cmd.spawn().map_err(|e| format!("starting the floor server: {e}"))?;
        let addr = child.stdout.take().ok_or("no stdout from the floor server").and_then(|out| read_listening(out));
        match addr {
            Ok(addr) => Ok(Self { addr, child }),
            Err(e) => {
                let _ = child.kill();
                let _ = child.wait();
                Err(format!("the floor server: {e}"))
            }
        }
    }

    fn stop(mut self) {
        // Closing its standard input tells it to exit; the kill is for a floor that does not.
        drop(self.child.stdin.take());
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The address from a first line `listening on http://ADDR` (as the gateway prints it).
fn read_listening(out: ChildStdout) -> Result<SocketAddr, &'static str> {
    let mut line = String::new();
    BufReader::new(out).read_line(&mut line).map_err(|_| "no first line")?;
    line.trim().strip_prefix("listening on http://").and_then(|a| a.parse().ok()).ok_or("no `listening on` line")
}

/// The floor server: reads each request whole (head and `Content-Length` body) and answers with a
/// canned response of `len` bytes, one thread per connection, keep-alive. Exits when its standard
/// input closes, or after [`FLOOR_MAX_LIFETIME`].
fn serve_floor(len: usize) -> Result<(), String> {
    let head = "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: ";
    let mut response = format!("{head}0000\r\n\r\n").into_bytes();
    let body = len.saturating_sub(response.len());
    response = format!("{head}{body:04}\r\n\r\n").into_bytes();
    response.resize(response.len() + body, b'x');
    let response: std::sync::Arc<[u8]> = response.into();
    let listener = TcpListener::bind("127.0.0.1:0").map_err(|e| format!("floor: {e}"))?;
    let addr = listener.local_addr().map_err(|e| format!("floor: {e}"))?;
    println!("listening on http://{addr}");
    io::stdout().flush().map_err(|e| format!("floor: {e}"))?;
    thread::spawn(|| {
        // Standard input closed (or broken): the parent is done.
        let mut sink = [0u8; 64];
        while matches!(io::stdin().read(&mut sink), Ok(n) if n > 0) {}
        std::process::exit(0);
    });
    thread::spawn(|| {
        thread::sleep(FLOOR_MAX_LIFETIME);
        std::process::exit(0);
    });
    for stream in listener.incoming() {
        let Ok(mut s) = stream else { continue };
        let response = response.clone();
        thread::spawn(move || {
            let _ = s.set_nodelay(true);
            let _ = s.set_read_timeout(Some(IO_TIMEOUT));
            let _ = s.set_write_timeout(Some(IO_TIMEOUT));
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
    Ok(())
}
