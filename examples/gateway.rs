//! A demo device authorization server on the host: the crate's HTTP binding over std TCP, one thread
//! per connection, one provider behind a mutex.
//!
//! ```text
//! cargo run --example gateway                       # http://127.0.0.1:8080
//! cargo run --example gateway -- --addr 0.0.0.0:9000
//! GATEWAY_ADDR=127.0.0.1:0 cargo run --example gateway   # any free port (printed)
//! ```
//!
//! It registers a public client `tv-demo` ("Demo TV"), a confidential client `printer-demo` with secret
//! `printer-secret` ("Demo printer"), the scopes `profile email sensors:read`, and one user, `alice` with
//! password `wonderland` (user id 1), who signs in on the verification page with HTTP Basic. `GET /api/me`
//! is a protected route that needs the `profile` scope. On start it prints `listening on http://ADDR`
//! (first line) and the curl commands of a whole flow; then one line per request:
//! `METHOD PATH STATUS PEER` (written in batches by a background thread, at most 0.1 s late).
//!
//! Options (all optional): `--addr HOST:PORT` (or `GATEWAY_ADDR`), `--issuer URL` (default: from the
//! bound address), `--device-code-lifetime SECS`, `--interval SECS`, `--access-token-lifetime SECS`,
//! `--refresh-token-lifetime SECS`, `--read-timeout SECS` (default 10: a request must arrive whole within
//! it, and an idle connection closes after it), `--max-connections N` (default 32). The server key is drawn
//! from the OS at start, so tokens die with the process, unless `GATEWAY_KEY_HEX` gives 32 bytes in hex.

use std::io::{self, Read as _, Write as _};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use oauth2_devices::http::{self, Application, Authorized, Context, HttpConfig, LogEntry, Request, Response, User};
use oauth2_devices::prelude::*;
use oauth2_devices::snapshot::max_snapshot_len;
use oauth2_devices::storage::{FileFlash, SnapshotSlots};
use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;

type GatewayProvider = Provider<FixedClients<4>, FixedGrants<32>, 32, 32>;

static SCOPES: &[&str] = &["profile", "email", "sensors:read"];

/// The demo's user table: login, password, id, display name.
const USERS: &[(&str, &str, UserId, &str)] = &[("alice", "wonderland", 1, "alice")];

const USAGE: &str = "usage: gateway [--addr HOST:PORT] [--issuer URL] [--device-code-lifetime SECS] [--interval SECS]
               [--access-token-lifetime SECS] [--refresh-token-lifetime SECS] [--read-timeout SECS]
               [--max-connections N] [--state-dir DIR | --no-state]
state: grants, tokens and revocations survive restarts in DIR (default ./gateway-state: the server key
       in DIR/server.key, snapshots in DIR/snapshots.bin); --no-state keeps everything in memory
env: GATEWAY_ADDR (like --addr), GATEWAY_KEY_HEX (32-byte server key in hex; overrides DIR/server.key)";

#[derive(Debug)]
struct Options {
    addr: String,
    issuer: Option<String>,
    device_code_lifetime: Option<u32>,
    interval: Option<u16>,
    access_token_lifetime: Option<u32>,
    refresh_token_lifetime: Option<u32>,
    read_timeout: Duration,
    max_connections: usize,
    state_dir: Option<PathBuf>,
}

fn parse_options() -> Result<Options, String> {
    let mut o = Options {
        addr: std::env::var("GATEWAY_ADDR").unwrap_or_else(|_| "127.0.0.1:8080".into()),
        issuer: None,
        device_code_lifetime: None,
        interval: None,
        access_token_lifetime: None,
        refresh_token_lifetime: None,
        read_timeout: Duration::from_secs(10),
        max_connections: 32,
        state_dir: Some(PathBuf::from("gateway-state")),
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
        let (flag, inline) = match arg.split_once('=') {
            Some((f, v)) => (f.to_owned(), Some(v.to_owned())),
            None => (arg.clone(), None),
        };
        let mut value = || inline.clone().or_else(|| args.next()).ok_or(format!("{flag} needs a value"));
        fn num<T: std::str::FromStr>(flag: &str, v: String) -> Result<T, String> {
            v.parse().map_err(|_| format!("{flag}: not a valid number: {v}"))
        }
        match flag.as_str() {
            "--addr" => o.addr = value()?,
            "--issuer" => o.issuer = Some(value()?.trim_end_matches('/').to_owned()),
            "--device-code-lifetime" => o.device_code_lifetime = Some(num(&flag, value()?)?),
            "--interval" => o.interval = Some(num(&flag, value()?)?),
            "--access-token-lifetime" => o.access_token_lifetime = Some(num(&flag, value()?)?),
            "--refresh-token-lifetime" => o.refresh_token_lifetime = Some(num(&flag, value()?)?),
            "--read-timeout" => o.read_timeout = Duration::from_secs(num::<u64>(&flag, value()?)?.max(1)),
            "--max-connections" => o.max_connections = num::<usize>(&flag, value()?)?.max(1),
            "--state-dir" => o.state_dir = Some(PathBuf::from(value()?)),
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

fn leak(s: String) -> &'static str {
    Box::leak(s.into_boxed_str())
}

/// Seconds since the Unix epoch: a clock that survives restarts, so a persisted key keeps its tokens
/// valid (the provider ignores a clock that steps back).
fn unix_now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

struct Shared {
    provider: GatewayProvider,
    rng: ChaCha20Rng,
    /// Where snapshots go, and the provider's durable version they last captured.
    store: Option<(SnapshotSlots<FileFlash>, u32)>,
}

/// Bytes of flash file: two 16 KiB snapshot slots (a full snapshot of this provider is under 3 KiB).
const FLASH_LEN: usize = 32 * 1024;

impl Shared {
    /// Saves a snapshot when the provider's durable state changed since the last one.
    fn persist(&mut self) {
        let Some((slots, saved)) = &mut self.store else { return };
        let version = self.provider.durable_version();
        if version == *saved {
            return;
        }
        let mut buf = [0u8; max_snapshot_len(32, 32)];
        let result = self
            .provider
            .save(&mut buf)
            .map_err(|e| e.to_string())
            .and_then(|n| slots.store(buf.get(..n).unwrap_or_default()).map_err(|e| e.to_string()));
        match result {
            Ok(()) => *saved = version,
            Err(e) => eprintln!("cannot save the state: {e}"),
        }
    }
}

/// Opens the state directory's flash file and restores the newest snapshot into `provider`.
fn open_state(dir: &Path, provider: &mut GatewayProvider) -> Result<SnapshotSlots<FileFlash>, String> {
    let flash = FileFlash::open(dir.join("snapshots.bin"), FLASH_LEN).map_err(|e| format!("{}: {e}", dir.display()))?;
    let mut slots = SnapshotSlots::new(flash, 0, FLASH_LEN as u32).map_err(|e| e.to_string())?;
    let mut buf = [0u8; max_snapshot_len(32, 32)];
    match slots.load(&mut buf) {
        Ok(None) => println!("state: none yet in {}", dir.display()),
        Ok(Some(snapshot)) => match provider.restore(unix_now(), snapshot) {
            Ok(r) if r.clock_was_behind => {
                println!("state: the clock is behind the snapshot; grants and tokens dropped (see snapshot docs)")
            }
            Ok(r) => println!("state: restored {} pending grants and {} token families", r.grants, r.families),
            Err(e) => println!("state: snapshot refused ({e}); starting empty"),
        },
        Err(e) => println!("state: cannot read {} ({e}); starting empty", dir.display()),
    }
    Ok(slots)
}

fn build(opts: &Options, issuer: &'static str) -> Result<Shared, String> {
    let mut seed = [0u8; 32];
    getrandom::fill(&mut seed).map_err(|e| format!("OS random generator: {e}"))?;
    let mut rng = ChaCha20Rng::from_seed(seed);
    let scopes = ScopeRegistry::new(SCOPES).map_err(|e| e.to_string())?;
    let mut clients = FixedClients::<4>::new();
    clients.add(Client::public("tv-demo", "Demo TV").map_err(|e| e.to_string())?).map_err(|e| e.to_string())?;
    let secret = SecretHash::new("printer-secret", &mut rng);
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
    let store = match &opts.state_dir {
        Some(dir) => Some((open_state(dir, &mut provider)?, provider.durable_version())),
        None => None,
    };
    Ok(Shared { provider, rng, store })
}

/// The application around the server: one per connection.
struct Gateway {
    peer: SocketAddr,
}

/// Compares secrets without an early exit.
fn same(a: &str, b: &str) -> bool {
    a.len() == b.len() && a.bytes().zip(b.bytes()).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

impl Application for Gateway {
    fn user(&mut self, req: &Request<'_>) -> Option<User> {
        let mut scratch = [0u8; 256];
        let (login, password) = http::basic_auth(req.header("authorization")?, &mut scratch)?;
        let mut found = None;
        for &(l, p, id, name) in USERS {
            if same(l, login) & same(p, password) {
                found = Some(User::new(id, name));
            }
        }
        found
    }

    fn protected(&self, _method: &str, path: &str, scopes: &ScopeRegistry) -> Option<ScopeSet> {
        (path == "/api/me").then(|| scopes.lookup("profile")).flatten()
    }

    fn resource(&mut self, req: &Request<'_>, auth: &Authorized<'_>, res: &mut Response<'_>) {
        if req.method() != "GET" {
            res.set_status(405).header("Allow", "GET");
            return;
        }
        let name = USERS.iter().find(|u| u.2 == auth.token.user).map_or("", |u| u.3);
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

/// A TCP stream whose reads fail once `timeout` has passed since the last response (or the accept):
/// an idle connection, or a request that dribbles in, is dropped after `timeout` in all.
///
/// The socket's read timeout is re-armed (a `setsockopt`) only when the one armed would let a read
/// block more than `timeout / 100` past the deadline (or is under half of what is left): on a keep-alive
/// connection whose requests arrive whole, that is about once per connection, not once per read.
struct DeadlineStream<'s> {
    stream: &'s TcpStream,
    timeout: Duration,
    deadline: Instant,
    /// The read timeout set on the socket, if any.
    armed: Option<Duration>,
    /// Bytes arrived since the last response: a timeout now cuts a request short (else it is idle).
    partial: bool,
}

impl embedded_io::ErrorType for DeadlineStream<'_> {
    type Error = io::Error;
}

impl embedded_io::Read for DeadlineStream<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            let left = self.deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(io::Error::new(io::ErrorKind::TimedOut, "read timeout"));
            }
            // Re-arm if the armed timeout could overshoot the deadline, or is far shorter than what is
            // left (it would wake the loop below for nothing).
            if self.armed.is_none_or(|armed| armed > left + self.timeout / 100 || armed < left / 2) {
                self.stream.set_read_timeout(Some(left))?;
                self.armed = Some(left);
            }
            match (&mut &*self.stream).read(buf) {
                // The armed timeout may be shorter than what is left (armed for an earlier request):
                // the loop tries again until the deadline itself has passed.
                Err(e) if matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut) => {}
                Ok(n) => {
                    self.partial |= n > 0;
                    return Ok(n);
                }
                Err(e) => return Err(e),
            }
        }
    }
}

impl embedded_io::Write for DeadlineStream<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        (&mut &*self.stream).write(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        (&mut &*self.stream).flush()?;
        // A response went out: the next request gets a fresh budget.
        self.deadline = Instant::now() + self.timeout;
        self.partial = false;
        Ok(())
    }
}

/// Closes politely: FIN first, then a short drain, so the peer reads our last response rather than a
/// reset caused by unread input.
fn linger(stream: &TcpStream) {
    let _ = stream.shutdown(Shutdown::Write);
    let _ = stream.set_read_timeout(Some(Duration::from_millis(500)));
    let _ = io::copy(&mut stream.take(64 * 1024), &mut io::sink());
}

fn serve_connection(stream: TcpStream, peer: SocketAddr, shared: &Mutex<Shared>, cfg: &HttpConfig, timeout: Duration) {
    let _ = stream.set_nodelay(true);
    let _ = stream.set_write_timeout(Some(timeout));
    let mut io =
        DeadlineStream { stream: &stream, timeout, deadline: Instant::now() + timeout, armed: None, partial: false };
    let mut input = vec![0u8; cfg.input_buffer_len()];
    let mut output = vec![0u8; 8 * 1024];
    let mut app = Gateway { peer };
    let result = http::serve(cfg, &mut io, &mut input, &mut output, |request, response| {
        let now = unix_now();
        let mut guard = shared.lock().unwrap_or_else(PoisonError::into_inner);
        let Shared { provider, rng, .. } = &mut *guard;
        let mut cx = Context { provider, app: &mut app, rng, now, peer: Some(peer) };
        let served = http::answer(cfg, &mut cx, request, response);
        guard.persist();
        served
    });
    match result {
        Ok(()) => {}
        // An idle keep-alive connection timing out is normal; a request cut short is worth a line.
        Err(http::ServeError::Io(e)) if e.kind() == io::ErrorKind::TimedOut => {
            if io.partial {
                log_line(format_args!("- - timeout {peer}"));
            }
        }
        Err(http::ServeError::Io(e))
            if matches!(e.kind(), io::ErrorKind::ConnectionReset | io::ErrorKind::BrokenPipe) => {}
        Err(e) => eprintln!("{peer}: {e}"),
    }
    linger(&stream);
}

/// Counts live connections; decrements when dropped.
struct Slot(Arc<AtomicUsize>);

impl Drop for Slot {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

fn print_help(base: &str) {
    println!(
        "\noauth2-devices demo gateway
  clients: tv-demo (public, \"Demo TV\"), printer-demo / printer-secret (confidential, \"Demo printer\")
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
     curl -s -u printer-demo:printer-secret -d token=ACCESS_TOKEN {base}/oauth/introspect
     curl -s -d client_id=tv-demo -d token=REFRESH_TOKEN {base}/oauth/revoke
  metadata: curl -s {base}/.well-known/oauth-authorization-server
"
    );
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
    let issuer = leak(opts.issuer.clone().unwrap_or_else(|| format!("http://{local}")));
    // First line, always: scripts and tests wait for it to learn the address.
    println!("listening on http://{local}");
    let shared = match build(&opts, issuer) {
        Ok(s) => Arc::new(Mutex::new(s)),
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::FAILURE;
        }
    };
    let cfg = HttpConfig {
        realm: "oauth2-devices gateway",
        max_head: 8 * 1024,
        max_body: 2 * 1024,
        ..HttpConfig::new(issuer)
    };

    print_help(issuer);
    spawn_log_writer();

    let live = Arc::new(AtomicUsize::new(0));
    for stream in listener.incoming() {
        let stream = match stream {
            Ok(s) => s,
            Err(e) => {
                eprintln!("accept: {e}");
                continue;
            }
        };
        let Ok(peer) = stream.peer_addr() else { continue };
        if live.fetch_add(1, Ordering::SeqCst) >= opts.max_connections {
            live.fetch_sub(1, Ordering::SeqCst);
            log_line(format_args!("- - 503 {peer}"));
            let _ = stream.set_write_timeout(Some(Duration::from_secs(1)));
            let _ = (&stream).write_all(
                b"HTTP/1.1 503 Service Unavailable\r\nRetry-After: 1\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
            );
            let _ = stream.shutdown(Shutdown::Both);
            continue;
        }
        let slot = Slot(live.clone());
        let shared = shared.clone();
        let timeout = opts.read_timeout;
        let spawned = std::thread::Builder::new().name(format!("conn {peer}")).spawn(move || {
            let _slot = slot;
            serve_connection(stream, peer, &shared, &cfg, timeout);
        });
        if let Err(e) = spawned {
            eprintln!("cannot start a connection thread: {e}");
        }
    }
    ExitCode::SUCCESS
}
