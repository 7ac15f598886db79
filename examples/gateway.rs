//! A demo device authorization server on the host: the crate's HTTP binding over std TCP (or TLS
//! over it), one thread per connection, one provider behind a mutex.
//!
//! ```text
//! cargo run --example gateway                                    # http://127.0.0.1:8080
//! cargo run --example gateway -- --addr 0.0.0.0:8443 --tls       # HTTPS, development certificate
//! cargo run --example gateway -- --addr 0.0.0.0:443 --tls-cert cert.pem --tls-key key.pem
//! GATEWAY_ADDR=127.0.0.1:0 cargo run --example gateway           # any free port (printed)
//! ```
//!
//! It registers a public client `tv-demo` ("Demo TV"), a confidential client `printer-demo` ("Demo
//! printer") whose secret is the demo value `printer-secret` while it listens on loopback and 128
//! random bits, printed at start, on any other address (or `--printer-secret`), the scopes `profile
//! email sensors:read`, and one user, `alice` with password `wonderland` (user id 1), who signs in on
//! the verification page with HTTP Basic. `GET /api/me` is a protected route that needs the
//! `profile` scope. On start it prints `listening on http://ADDR` (or `https://`; always the first
//! line) and the curl commands of a whole flow; then one line per request: `METHOD PATH STATUS PEER`
//! (written in batches by a background thread, at most 0.1 s late).
//!
//! Plain HTTP is a development mode for loopback: a non-loopback address without TLS refuses to
//! start, unless `--insecure-http` (then a warning at start and in every page's footer). With TLS the
//! issuer and every endpoint of the metadata are `https://`; HSTS is sent only with the operator's
//! certificate on a non-loopback address (it would bind every port of the name).
//!
//! Options (all optional): `--addr HOST:PORT` (or `GATEWAY_ADDR`), `--issuer URL` (default: from the
//! bound address), `--device-code-lifetime SECS`, `--interval SECS`, `--access-token-lifetime SECS`,
//! `--refresh-token-lifetime SECS`, `--tables host|board` (2048 grants and families by default;
//! `board` runs the Embassy gateway's 16-slot tables, to try their policies on a host), `--tls`,
//! `--tls-cert PEM --tls-key PEM`, `--insecure-http`, `--handshake-timeout SECS` (default 10). The
//! server key is drawn from the OS on first start and kept in the state directory, unless
//! `GATEWAY_KEY_HEX` gives 32 bytes in hex.
//!
//! Connections follow the library's policy (`oauth2_devices::http::conn` and `http::pool`; seconds may
//! have decimals): `--read-timeout SECS` (default 10: from the first byte of a request to the end of
//! its body, else `408` and close), `--idle-timeout SECS` (default 5: between keep-alive requests),
//! `--drain-timeout SECS` (default 1: reading what a peer still sends after a response that closes),
//! `--max-connections N` (default 64), `--max-per-peer N` (default 16: connections one address, or
//! one IPv6 /64, may hold). When every connection is taken, an idle keep-alive one is closed to admit
//! the new one (log line `- - evicted PEER`); a connection that cannot be admitted gets `503` with
//! `Retry-After` (`- - 503 PEER`); a request cut off by the read timeout is logged `- - 408 PEER`.

use std::io::{self, Read as _, Write as _};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream, ToSocketAddrs};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use oauth2_devices::http::conn::{Clock as _, Closed, Limits, State as ConnState, Transport};
use oauth2_devices::http::pool::{Admit, Pool, Ticket};
use oauth2_devices::http::tcp::{StdClock, Tcp};
use oauth2_devices::http::{
    self, status, Application, Authorized, Context, HttpConfig, LogEntry, Request, Response, Timing, User,
};
use oauth2_devices::prelude::*;
use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;

#[path = "gateway/store.rs"]
mod store;
#[path = "gateway/tls.rs"]
mod tls;

/// The provider at the gateway's table sizes: `G` pending grants, `F` token families (connected
/// devices), `S` sources per attempt budget.
type GatewayProvider<const G: usize, const F: usize, const S: usize> = Provider<FixedClients<4>, FixedGrants<G>, F, S>;

/// The host's tables (`--tables host`, the default): a Linux host affords thousands of grants. With
/// the default 600 s code lifetime that is 2048 ÷ 600 ≈ 3.4 new device codes per second sustained at
/// the worst (every device polling to expiry), more when flows finish early; one address may hold
/// up to half the table (1 024 live codes). 144 KiB of tables (32 B per grant and per family,
/// 16 B per source and budget).
const HOST_TABLES: (usize, usize, usize) = (2048, 2048, 512);
/// A microcontroller's tables (`--tables board`), the Embassy gateway's: 16 grants, 16 families,
/// 16 sources: 16 ÷ 600 s ≈ one new code every 38 s sustained at the worst, 8 live codes per address.
const BOARD_TABLES: (usize, usize, usize) = (16, 16, 16);

static SCOPES: &[&str] = &["profile", "email", "sensors:read"];

/// The demo's users (signed in with HTTP Basic on the pages).
static USERS: http::StaticUsers<'static> =
    http::StaticUsers::new(&[http::StaticUser { login: "alice", password: "wonderland", id: 1, name: "alice" }]);

const USAGE: &str = "usage: gateway [--addr HOST:PORT] [--issuer URL] [--device-code-lifetime SECS] [--interval SECS]
               [--access-token-lifetime SECS] [--refresh-token-lifetime SECS] [--read-timeout SECS]
               [--idle-timeout SECS] [--drain-timeout SECS] [--max-connections N] [--max-per-peer N]
               [--state-dir DIR | --no-state] [--tables host|board]
               [--printer-secret SECRET] [--tls | --tls-cert PEM --tls-key PEM] [--insecure-http]
               [--handshake-timeout SECS]
https: --tls-cert/--tls-key serve HTTPS with your certificate (PEM); --tls with a development
        certificate made on first start and kept in DIR (its fingerprint is printed). Plain HTTP is
        for loopback only: any other address needs TLS, or --insecure-http to serve it anyway
        (tokens, secrets and passwords then cross the network in cleartext)
tables: host (default: 2048 pending grants, 2048 connected devices, 512 sources per attempt budget)
        or board (16, 16, 16: the Embassy gateway's sizes)
printer-secret: the demo confidential client's secret (default: `printer-secret` when listening on
        loopback, else 128 random bits printed at start)
state: grants, tokens and revocations survive restarts in DIR (default ./gateway-state: the server key
       in DIR/server.key, the record store in DIR/store.bin; an earlier DIR/snapshots.bin is migrated
       into it once); --no-state keeps everything in memory
connections: --read-timeout (default 10 s, a request from its first byte to the end of its body),
        --idle-timeout (5 s between keep-alive requests), --drain-timeout (1 s after a closing response),
        --max-connections (64), --max-per-peer (16 per address or IPv6 /64); idle connections are
        closed to admit new ones before any is refused (503)
env: GATEWAY_ADDR (like --addr), GATEWAY_KEY_HEX (32-byte server key in hex; overrides DIR/server.key)";

#[derive(Debug)]
struct Options {
    addr: String,
    issuer: Option<String>,
    device_code_lifetime: Option<u32>,
    interval: Option<u16>,
    access_token_lifetime: Option<u32>,
    refresh_token_lifetime: Option<u32>,
    limits: Limits,
    max_connections: usize,
    max_per_peer: usize,
    state_dir: Option<PathBuf>,
    tables: Tables,
    printer_secret: Option<String>,
    /// `--tls`: HTTPS with a development certificate.
    tls_dev: bool,
    tls_cert: Option<PathBuf>,
    tls_key: Option<PathBuf>,
    /// `--insecure-http`: plain HTTP off loopback, knowingly.
    insecure_http: bool,
    handshake_timeout: Duration,
}

/// Which table sizes to serve with (`--tables`).
#[derive(Debug, Clone, Copy)]
enum Tables {
    /// [`HOST_TABLES`].
    Host,
    /// [`BOARD_TABLES`]: what a microcontroller would run, to try its policies on a host.
    Board,
}

fn parse_options() -> Result<Options, String> {
    let mut o = Options {
        addr: std::env::var("GATEWAY_ADDR").unwrap_or_else(|_| "127.0.0.1:8080".into()),
        issuer: None,
        device_code_lifetime: None,
        interval: None,
        access_token_lifetime: None,
        refresh_token_lifetime: None,
        limits: Limits::HOST,
        max_connections: 64,
        max_per_peer: oauth2_devices::http::pool::HOST_PER_PEER,
        state_dir: Some(PathBuf::from("gateway-state")),
        tables: Tables::Host,
        printer_secret: None,
        tls_dev: false,
        tls_cert: None,
        tls_key: None,
        insecure_http: false,
        handshake_timeout: Duration::from_secs(10),
    };
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        if arg == "-h" || arg == "--help" {
            return Err(String::new());
        }
        if arg == "--no-state" {
            o.state_dir = None;
            continue;
        }
        if arg == "--tls" {
            o.tls_dev = true;
            continue;
        }
        if arg == "--insecure-http" {
            o.insecure_http = true;
            continue;
        }
        let (flag, inline) = match arg.split_once('=') {
            Some((f, v)) => (f.to_owned(), Some(v.to_owned())),
            None => (arg.clone(), None),
        };
        let mut value = || inline.clone().or_else(|| args.next()).ok_or(format!("{flag} needs a value"));
        fn num<T: std::str::FromStr>(flag: &str, v: String) -> Result<T, String> {
            v.parse().map_err(|_| format!("{flag}: not a valid number: {v}"))
        }
        // Seconds, decimals allowed, as milliseconds (at least 1).
        fn millis(flag: &str, v: String) -> Result<u64, String> {
            let secs: f64 = num(flag, v)?;
            if !(secs.is_finite() && secs >= 0.0) {
                return Err(format!("{flag}: seconds must be a positive number"));
            }
            Ok(((secs * 1000.0) as u64).max(1))
        }
        match flag.as_str() {
            "--addr" => o.addr = value()?,
            "--issuer" => o.issuer = Some(value()?.trim_end_matches('/').to_owned()),
            "--device-code-lifetime" => o.device_code_lifetime = Some(num(&flag, value()?)?),
            "--interval" => o.interval = Some(num(&flag, value()?)?),
            "--access-token-lifetime" => o.access_token_lifetime = Some(num(&flag, value()?)?),
            "--refresh-token-lifetime" => o.refresh_token_lifetime = Some(num(&flag, value()?)?),
            "--read-timeout" => o.limits.head_deadline = millis(&flag, value()?)?,
            "--idle-timeout" => o.limits.idle_deadline = millis(&flag, value()?)?,
            "--drain-timeout" => o.limits.drain_deadline = millis(&flag, value()?)?,
            "--max-connections" => o.max_connections = num::<usize>(&flag, value()?)?.clamp(1, MAX_CONNECTIONS),
            "--max-per-peer" => o.max_per_peer = num::<usize>(&flag, value()?)?.max(1),
            "--state-dir" => o.state_dir = Some(PathBuf::from(value()?)),
            "--tables" => {
                o.tables = match value()?.as_str() {
                    "host" => Tables::Host,
                    "board" => Tables::Board,
                    v => return Err(format!("--tables: host or board, not {v}")),
                }
            }
            "--printer-secret" => o.printer_secret = Some(value()?),
            "--tls-cert" => o.tls_cert = Some(PathBuf::from(value()?)),
            "--tls-key" => o.tls_key = Some(PathBuf::from(value()?)),
            "--handshake-timeout" => o.handshake_timeout = Duration::from_secs(num::<u64>(&flag, value()?)?.max(1)),
            _ => return Err(format!("unknown argument: {arg}")),
        }
    }
    Ok(o)
}

fn parse_key(hex: &str, what: &str) -> Result<[u8; 32], String> {
    let hex = hex.trim();
    let mut key = [0u8; 32];
    if hex.len() != 64 || !hex.is_ascii() {
        return Err(format!("{what} must be 64 hexadecimal digits"));
    }
    for (i, byte) in key.iter_mut().enumerate() {
        *byte = u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).map_err(|_| format!("{what} is not hexadecimal"))?;
    }
    Ok(key)
}

/// The server key: `GATEWAY_KEY_HEX`; else the state directory's `server.key` (created on first run,
/// readable by the owner only); else 32 fresh bytes from the OS.
fn server_key(state_dir: Option<&Path>) -> Result<[u8; 32], String> {
    if let Ok(hex) = std::env::var("GATEWAY_KEY_HEX") {
        return parse_key(&hex, "GATEWAY_KEY_HEX");
    }
    let path = state_dir.map(|d| d.join("server.key"));
    if let Some(hex) = path.as_ref().and_then(|p| std::fs::read_to_string(p).ok()) {
        return parse_key(&hex, "server.key");
    }
    let mut key = [0u8; 32];
    getrandom::fill(&mut key).map_err(|e| format!("OS random generator: {e}"))?;
    if let Some(path) = path {
        let hex: String = key.iter().map(|b| format!("{b:02x}")).collect();
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create_new(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        let mut file = options.open(&path).map_err(|e| format!("{}: {e}", path.display()))?;
        file.write_all(hex.as_bytes()).map_err(|e| format!("{}: {e}", path.display()))?;
    }
    Ok(key)
}

/// Seconds since the Unix epoch: a clock that survives restarts, so a persisted key keeps its tokens
/// valid (the provider ignores a clock that steps back).
fn unix_now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

/// What every connection shares under one lock: the provider and the RNG. Held only while a request
/// is answered (microseconds); the state is written to disk by another thread ([`store`]).
struct Shared<const G: usize, const F: usize, const S: usize> {
    provider: GatewayProvider<G, F, S>,
    rng: ChaCha20Rng,
}

/// The demo confidential client's secret: the well-known demo value while the gateway listens on
/// loopback only (nobody else can reach it), else 128 random bits, printed at start, unless
/// `--printer-secret` names one.
fn printer_secret(opts: &Options, local: &SocketAddr) -> Result<String, String> {
    if let Some(s) = &opts.printer_secret {
        return Ok(s.clone());
    }
    if local.ip().is_loopback() {
        return Ok(DEMO_PRINTER_SECRET.to_owned());
    }
    let mut bytes = [0u8; 16];
    getrandom::fill(&mut bytes).map_err(|e| format!("OS random generator: {e}"))?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

/// The demo secret of `printer-demo` on loopback.
const DEMO_PRINTER_SECRET: &str = "printer-secret";

fn build<const G: usize, const F: usize, const S: usize>(
    opts: &Options,
    issuer: &str,
    printer_secret: &str,
) -> Result<(Shared<G, F, S>, Option<(store::Store, store::Durable)>), String> {
    let mut seed = [0u8; 32];
    getrandom::fill(&mut seed).map_err(|e| format!("OS random generator: {e}"))?;
    let mut rng = ChaCha20Rng::from_seed(seed);
    let scopes = ScopeRegistry::new(SCOPES).map_err(|e| e.to_string())?;
    let mut clients = FixedClients::<4>::new();
    clients.add(Client::public("tv-demo", "Demo TV").map_err(|e| e.to_string())?).map_err(|e| e.to_string())?;
    let secret = SecretHash::new(printer_secret, &mut rng);
    let printer = Client::confidential("printer-demo", "Demo printer", secret).map_err(|e| e.to_string())?;
    clients.add(printer).map_err(|e| e.to_string())?;

    let mut config = Config::new(&format!("{issuer}/activate"));
    if let Some(v) = opts.device_code_lifetime {
        config.device_code_lifetime = v;
    }
    if let Some(v) = opts.interval {
        config.interval = v;
    }
    if let Some(v) = opts.access_token_lifetime {
        config.access_token_lifetime = v;
    }
    if let Some(v) = opts.refresh_token_lifetime {
        config.refresh_token_lifetime = v;
    }
    if let Some(dir) = &opts.state_dir {
        std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    }
    let key = ServerKey::new(1, &server_key(opts.state_dir.as_deref())?);
    let mut provider =
        Provider::build(config, key, scopes, clients, FixedGrants::new(), &mut rng).map_err(|e| e.to_string())?;
    let state = match &opts.state_dir {
        Some(dir) => Some(store::open(dir, &mut provider)?),
        None => None,
    };
    Ok((Shared { provider, rng }, state))
}

/// The application around the server: one per connection.
struct Gateway {
    peer: SocketAddr,
}

impl Application for Gateway {
    fn user(&mut self, req: &Request<'_>) -> Option<User> {
        USERS.sign_in(req)
    }

    fn protected(&self, _method: &str, path: &str, scopes: &ScopeRegistry) -> Option<ScopeSet> {
        (path == "/api/me").then(|| scopes.lookup("profile")).flatten()
    }

    fn resource(&mut self, req: &Request<'_>, auth: &Authorized<'_>, res: &mut Response<'_>) {
        if req.method() != "GET" {
            res.set_status(405).header("Allow", "GET, HEAD");
            return;
        }
        let name = USERS.by_id(auth.token.user).map_or("", |u| u.name);
        let scope = auth.scopes.to_string::<128>(auth.token.scopes).unwrap_or_default();
        let me = serde_json::json!({
            "sub": auth.token.user.to_string(),
            "id": auth.token.user,
            "name": name,
            "client_id": auth.client.map(|c| c.id()),
            "scope": scope.as_str(),
        });
        res.header("Content-Type", "application/json").header("Cache-Control", "no-store");
        res.body(me.to_string().as_bytes());
    }

    fn route(&mut self, req: &Request<'_>, res: &mut Response<'_>) {
        if req.path() == "/" && req.method() == "GET" {
            res.header("Content-Type", "text/plain; charset=utf-8");
            res.body(b"oauth2-devices demo gateway: see /.well-known/oauth-authorization-server and /activate\n");
        } else {
            res.set_status(404).header("Content-Type", "text/plain; charset=utf-8");
            res.body(b"Not found\n");
        }
    }

    fn on_response(&mut self, e: &LogEntry<'_>) {
        fn dash(s: &str) -> &str {
            if s.is_empty() {
                "-"
            } else {
                s
            }
        }
        log_line(format_args!("{} {} {} {}", dash(e.method), dash(e.path), e.status, self.peer));
    }
}

/// The access log's lines not yet written. A line costs a format into this buffer under its lock; a
/// background thread ([`spawn_log_writer`]) writes them to stdout every [`LOG_FLUSH_EVERY`], so
/// requests make no `write(2)` of their own (a line appears at most that much later; lines still
/// pending when the process is killed are lost).
static LOG: Mutex<Vec<u8>> = Mutex::new(Vec::new());
const LOG_FLUSH_EVERY: Duration = Duration::from_millis(100);
/// Above this many pending bytes, the line's writer flushes them itself.
const LOG_HIGH_WATER: usize = 64 * 1024;

fn log_line(line: std::fmt::Arguments<'_>) {
    let mut pending = LOG.lock().unwrap_or_else(PoisonError::into_inner);
    let _ = pending.write_fmt(line);
    pending.push(b'\n');
    if pending.len() >= LOG_HIGH_WATER {
        let full = std::mem::take(&mut *pending);
        drop(pending);
        write_log(&full);
    }
}

fn write_log(bytes: &[u8]) {
    let mut out = io::stdout().lock();
    let _ = out.write_all(bytes);
    let _ = out.flush();
}

fn spawn_log_writer() {
    let _ = std::thread::Builder::new().name("access log".into()).spawn(|| {
        let mut spare = Vec::new();
        loop {
            std::thread::sleep(LOG_FLUSH_EVERY);
            std::mem::swap(&mut *LOG.lock().unwrap_or_else(PoisonError::into_inner), &mut spare);
            if !spare.is_empty() {
                write_log(&spare);
                spare.clear();
            }
        }
    });
}

/// Most connections `--max-connections` may ask for: the pool's capacity.
const MAX_CONNECTIONS: usize = 4096;

/// Who holds which connection slot, under one lock: the library's pool, and for each slot a handle on
/// its socket (to shut it down when the pool evicts it) and its peer (for the log line).
struct Connections {
    pool: Pool<MAX_CONNECTIONS>,
    sockets: Vec<Option<(TcpStream, SocketAddr)>>,
}

impl Connections {
    fn lock(this: &Mutex<Self>) -> std::sync::MutexGuard<'_, Self> {
        this.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Serves one admitted connection under the library's connection policy, then gives its slot back.
#[allow(clippy::too_many_arguments)]
fn serve_connection<const G: usize, const F: usize, const S: usize>(
    stream: TcpStream,
    peer: SocketAddr,
    ticket: Ticket,
    connections: &Mutex<Connections>,
    clock: &StdClock,
    tls: Option<(&Arc<rustls::ServerConfig>, Duration)>,
    shared: &Mutex<Shared<G, F, S>>,
    durable: Option<&store::Durable>,
    cfg: &HttpConfig,
    limits: Limits,
) {
    let _ = stream.set_nodelay(true);
    // HTTPS: the handshake first, under its own deadline; then the same driver over the TLS stream.
    let mut secure = None;
    if let Some((config, deadline)) = tls {
        match tls::TlsConn::accept(config, &stream, deadline) {
            Ok(conn) => secure = Some(conn),
            Err(e) => {
                log_line(format_args!("- - tls-handshake-failed {peer} ({e})"));
                let _ = stream.shutdown(Shutdown::Both);
                release(connections, ticket);
                return;
            }
        }
    }
    let mut plain = Tcp::new(&stream);
    let io: &mut dyn Transport<Error = io::Error> = match secure.as_mut() {
        Some(t) => t,
        None => &mut plain,
    };
    let mut input = vec![0u8; cfg.input_buffer_len()];
    let mut output = vec![0u8; 8 * 1024];
    let mut app = Gateway { peer };
    // The pool tells reading from writing apart not at all (both busy): take its lock only when the
    // slot's kind changes, twice per keep-alive request.
    let mut was_busy = false;
    let mut on_state = |s: ConnState| {
        let busy = matches!(s, ConnState::Reading | ConnState::Writing);
        if !(busy && was_busy) {
            Connections::lock(connections).pool.set(ticket, s, clock.now_ms());
        }
        was_busy = busy;
    };
    let timing = Timing { limits, clock, on_state: &mut on_state };
    let result = http::serve_timed(cfg, timing, io, &mut input, &mut output, |request, response| {
        let now = unix_now();
        let mut guard = shared.lock().unwrap_or_else(PoisonError::into_inner);
        let Shared { provider, rng } = &mut *guard;
        let before = provider.durable_version();
        let mut cx = Context { provider, app: &mut app, rng, now, peer: Some(peer) };
        let served = http::answer(cfg, &mut cx, request, response);
        let after = guard.provider.durable_version();
        drop(guard);
        // The response leaves once its change is on disk (the provider's lock is free meanwhile).
        if let (Some(durable), true) = (durable, after != before) {
            durable.wait_for(after);
        }
        served
    });
    match result {
        Ok(Closed::HeadDeadline) => log_line(format_args!("- - 408 {peer}")),
        Ok(_) => {}
        // An evicted idle connection (its socket shut down under it) or a peer's reset.
        Err(http::ServeError::Io(e))
            if matches!(
                e.kind(),
                io::ErrorKind::ConnectionReset | io::ErrorKind::BrokenPipe | io::ErrorKind::NotConnected
            ) => {}
        Err(e) => eprintln!("{peer}: {e}"),
    }
    release(connections, ticket);
}

/// Gives a connection's slot back to the pool (unless the pool already gave it to another).
fn release(connections: &Mutex<Connections>, ticket: Ticket) {
    let mut c = Connections::lock(connections);
    if c.pool.owns(ticket) {
        c.pool.release(ticket);
        if let Some(slot) = c.sockets.get_mut(ticket.index()) {
            *slot = None;
        }
    }
}

/// Answers a connection the pool refused: `503` with `Retry-After`, FIN, and whatever the peer already
/// sent read without waiting, so the answer is not replaced by a reset.
fn refuse(stream: &TcpStream, peer: SocketAddr, retry_after: u32) {
    log_line(format_args!("- - 503 {peer}"));
    let mut buf = [0u8; 128];
    let _ = stream.set_write_timeout(Some(Duration::from_secs(1)));
    let _ = (&mut &*stream).write_all(status::busy(retry_after, &mut buf));
    let _ = stream.shutdown(Shutdown::Write);
    let _ = stream.set_nonblocking(true);
    let mut scratch = [0u8; 4096];
    let _ = (&mut &*stream).read(&mut scratch);
}

fn print_help(base: &str, secret: &str, grants: usize, families: usize, cacert: Option<&Path>) {
    let help = format!(
        "\noauth2-devices demo gateway ({grants} pending grants, {families} connected devices)
  clients: tv-demo (public, \"Demo TV\"), printer-demo / {secret} (confidential, \"Demo printer\")
  user:    alice / wonderland (id 1)     scopes: profile email sensors:read

Try the device flow:
  1. the device asks for codes:
     curl -s -d client_id=tv-demo -d scope=profile {base}/oauth/device
  2. open its verification_uri_complete in a browser and sign in as alice / wonderland,
     or review and approve with curl (the page's form carries a csrf field):
     curl -s -u alice:wonderland '{base}/activate?user_code=USER_CODE'
     curl -s -u alice:wonderland -d user_code=USER_CODE -d csrf=CSRF -d action=approve {base}/activate
  3. the device polls for its tokens:
     curl -s -d client_id=tv-demo -d grant_type=urn:ietf:params:oauth:grant-type:device_code -d device_code=DEVICE_CODE {base}/oauth/token
  4. it calls a protected route:
     curl -s -H 'Authorization: Bearer ACCESS_TOKEN' {base}/api/me
  5. refresh, introspect, revoke:
     curl -s -d client_id=tv-demo -d grant_type=refresh_token -d refresh_token=REFRESH_TOKEN {base}/oauth/token
     curl -s -u printer-demo:{secret} -d token=ACCESS_TOKEN {base}/oauth/introspect
     curl -s -d client_id=tv-demo -d token=REFRESH_TOKEN {base}/oauth/revoke
  metadata: curl -s {base}/.well-known/oauth-authorization-server
"
    );
    // Over HTTPS, curl needs the certificate to trust.
    match cacert {
        Some(path) => println!("{}", help.replace("curl -s ", &format!("curl -s --cacert {} ", path.display()))),
        None => println!("{help}"),
    }
}

fn main() -> ExitCode {
    let opts = match parse_options() {
        Ok(o) => o,
        Err(msg) => {
            if msg.is_empty() {
                println!("{USAGE}");
                return ExitCode::SUCCESS;
            }
            eprintln!("{msg}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    // Plain HTTP off loopback is refused before anything listens there.
    let plain = opts.tls_cert.is_none() && opts.tls_key.is_none() && !opts.tls_dev;
    if plain && !opts.insecure_http {
        let off_loopback = match opts.addr.to_socket_addrs() {
            Ok(addrs) => addrs.into_iter().any(|a| !a.ip().is_loopback()),
            Err(e) => {
                eprintln!("cannot resolve {}: {e}", opts.addr);
                return ExitCode::from(2);
            }
        };
        if off_loopback {
            eprintln!(
                "refusing to serve plain HTTP on {}: tokens, client secrets and passwords would cross the \
                 network in cleartext. Serve HTTPS (--tls-cert PEM --tls-key PEM, or --tls for a development \
                 certificate), bind a loopback address, or pass --insecure-http to do it anyway.",
                opts.addr
            );
            return ExitCode::from(2);
        }
    }
    let listener = match TcpListener::bind(&opts.addr) {
        Ok(l) => l,
        Err(e) => {
            eprintln!("cannot listen on {}: {e}", opts.addr);
            return ExitCode::FAILURE;
        }
    };
    let local = match listener.local_addr() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("cannot read the bound address: {e}");
            return ExitCode::FAILURE;
        }
    };
    let tls = match (&opts.tls_cert, &opts.tls_key) {
        (Some(cert), Some(key)) => tls::from_files(cert, key).map(Some),
        (None, None) if opts.tls_dev => {
            if let Some(dir) = &opts.state_dir {
                let _ = std::fs::create_dir_all(dir);
            }
            tls::development(opts.state_dir.as_deref(), local.ip()).map(Some)
        }
        (None, None) => Ok(None),
        _ => Err("--tls-cert and --tls-key go together".to_string()),
    };
    let tls = match tls {
        Ok(t) => t,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(2);
        }
    };
    let scheme = if tls.is_some() { "https" } else { "http" };
    let issuer = opts.issuer.clone().unwrap_or_else(|| format!("{scheme}://{local}"));
    let issuer = issuer.as_str();
    // First line, always: scripts and tests wait for it to learn the address.
    println!("listening on {scheme}://{local}");
    match &tls {
        Some(t) => {
            let kind = if t.origin == tls::Origin::Development { "development certificate" } else { "certificate" };
            println!("tls: {kind} sha256 {}", t.fingerprint);
            if let Some(path) = &t.cert_path {
                println!("tls: certificate file {}", path.display());
            }
            if let Some(spki) = &t.spki_sha256 {
                println!("tls: public key sha256 (base64) {spki}");
            }
        }
        None if local.ip().is_loopback() => {
            println!("development mode: plain HTTP on loopback only (serve a network with --tls-cert/--tls-key)")
        }
        None => println!(
            "WARNING: plain HTTP on {local} (--insecure-http): tokens, client secrets and passwords cross the \
             network in cleartext"
        ),
    }
    let secret = match printer_secret(&opts, &local) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::FAILURE;
        }
    };
    match opts.tables {
        Tables::Host => {
            run::<{ HOST_TABLES.0 }, { HOST_TABLES.1 }, { HOST_TABLES.2 }>(&opts, listener, issuer, &secret, tls)
        }
        Tables::Board => {
            run::<{ BOARD_TABLES.0 }, { BOARD_TABLES.1 }, { BOARD_TABLES.2 }>(&opts, listener, issuer, &secret, tls)
        }
    }
}

/// Serves with tables of `G` grants, `F` families and `S` sources per budget.
fn run<const G: usize, const F: usize, const S: usize>(
    opts: &Options,
    listener: TcpListener,
    issuer: &str,
    secret: &str,
    tls: Option<tls::Tls>,
) -> ExitCode {
    let local = listener.local_addr().ok();
    let off_loopback = local.is_some_and(|a| !a.ip().is_loopback());
    let (shared, state) = match build::<G, F, S>(opts, issuer, secret) {
        Ok((s, state)) => (Arc::new(Mutex::new(s)), state),
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::FAILURE;
        }
    };
    let cfg = HttpConfig {
        realm: "oauth2-devices gateway",
        max_head: 8 * 1024,
        max_body: 2 * 1024,
        // HSTS binds every port of the name: only for the operator's certificate, off loopback.
        hsts_max_age: tls
            .as_ref()
            .filter(|t| t.origin == tls::Origin::Operator && off_loopback)
            .map(|_| 365 * 24 * 3600),
        notice: (tls.is_none() && off_loopback)
            .then_some("This gateway serves plain HTTP: what you type here crosses the network unencrypted."),
        ..HttpConfig::new(issuer)
    };
    let cacert = tls.as_ref().and_then(|t| t.cert_path.clone());
    let tls = tls.map(|t| t.config);

    print_help(issuer, secret, G, F, cacert.as_deref());
    spawn_log_writer();

    let limits = opts.limits;
    // Scoped threads: the connections borrow the configuration (and its issuer) from here.
    let (store, durable) = match state {
        Some((store, durable)) => (Some(store), Some(durable)),
        None => (None, None),
    };
    std::thread::scope(|scope| {
        if let (Some(store), Some(durable)) = (store, durable.as_ref()) {
            let shared = &*shared;
            let started = std::thread::Builder::new()
                .name("persist".into())
                .spawn_scoped(scope, move || store::persist_loop(shared, store, durable));
            if let Err(e) = started {
                eprintln!("cannot start the persist thread: {e}");
                return;
            }
        }
        accept_loop(scope, &listener, opts, &cfg, &shared, durable.as_ref(), tls.as_ref(), limits)
    });
    ExitCode::SUCCESS
}

/// Accepts, admits into the pool and starts one thread per connection, for ever.
#[allow(clippy::too_many_arguments)]
fn accept_loop<'scope, 'env, const G: usize, const F: usize, const S: usize>(
    scope: &'scope std::thread::Scope<'scope, 'env>,
    listener: &TcpListener,
    opts: &Options,
    cfg: &'env HttpConfig<'env>,
    shared: &'env Mutex<Shared<G, F, S>>,
    durable: Option<&'env store::Durable>,
    tls: Option<&Arc<rustls::ServerConfig>>,
    limits: Limits,
) {
    let clock = Arc::new(StdClock::new());
    let pool = Pool::new().with_limit(opts.max_connections).with_per_peer(opts.max_per_peer);
    let connections = Arc::new(Mutex::new(Connections { pool, sockets: Vec::new() }));
    Connections::lock(&connections).sockets.resize_with(opts.max_connections, || None);
    for stream in listener.incoming() {
        let stream = match stream {
            Ok(s) => s,
            Err(e) => {
                eprintln!("accept: {e}");
                continue;
            }
        };
        let Ok(peer) = stream.peer_addr() else { continue };
        let Ok(handle) = stream.try_clone() else { continue };
        let mut c = Connections::lock(&connections);
        let ticket = match c.pool.admit(peer.ip(), clock.now_ms()) {
            Admit::Slot(ticket) => ticket,
            Admit::EvictIdle { slot, then } => {
                if let Some((old, old_peer)) = c.sockets.get_mut(slot).and_then(Option::take) {
                    // Its blocked read returns at once; the pool already gave the slot to `then`.
                    let _ = old.shutdown(Shutdown::Both);
                    log_line(format_args!("- - evicted {old_peer}"));
                }
                then
            }
            Admit::Refuse { retry_after } => {
                drop(c);
                refuse(&stream, peer, retry_after);
                continue;
            }
        };
        if let Some(slot) = c.sockets.get_mut(ticket.index()) {
            *slot = Some((handle, peer));
        }
        drop(c);
        let conns = connections.clone();
        let clock = clock.clone();
        let tls = tls.cloned();
        let handshake = opts.handshake_timeout;
        let spawned = std::thread::Builder::new().name(format!("conn {peer}")).spawn_scoped(scope, move || {
            let tls = tls.as_ref().map(|config| (config, handshake));
            serve_connection(stream, peer, ticket, &conns, &clock, tls, shared, durable, cfg, limits);
        });
        if let Err(e) = spawned {
            eprintln!("cannot start a connection thread: {e}");
            release(&connections, ticket);
        }
    }
}
