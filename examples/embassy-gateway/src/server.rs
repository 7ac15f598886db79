//! What every board shares: the provider and its lock, the application (users, `/api/me`), the pool of
//! socket tasks with their static buffers and read timeouts (the flash store is `crate::persist`).
//!
//! Concurrency model: one executor, [`config::SOCKETS`] `http_task`s, each owning one `TcpSocket` and
//! its own buffers. The provider sits in a blocking `Mutex<NoopRawMutex, RefCell<_>>` (every task runs
//! on the same executor, so no critical section is needed) that a task takes only inside the
//! request handler, a synchronous call of microseconds to a few milliseconds, and never across an
//! `.await`: a device polling and a browser on the verification page never wait on each other's I/O.

use core::cell::RefCell;
#[cfg(not(feature = "no-oauth"))]
use core::net::SocketAddr;

use embassy_net::tcp::{self, TcpSocket};
use embassy_net::Stack;
use embassy_sync::blocking_mutex::raw::NoopRawMutex;
use embassy_sync::blocking_mutex::Mutex;
use embassy_sync::signal::Signal;
#[cfg(feature = "no-oauth")]
use embassy_time::with_deadline;
use embassy_time::{with_timeout, Duration, Instant, Timer};
#[cfg(feature = "no-oauth")]
use embedded_io_async::Read;
use embedded_io_async::{ErrorKind, ErrorType, Write};

use crate::config;

/// The bytes a request may take: its head and its body.
pub const INPUT_LEN: usize = config::MAX_HEAD + config::MAX_BODY;

/// One connection's memory: TCP windows and HTTP buffers. `SOCKETS` of these live in a static.
pub struct ConnBuffers {
    rx: [u8; config::TCP_RX_LEN],
    tx: [u8; config::TCP_TX_LEN],
    input: [u8; INPUT_LEN],
    output: [u8; config::HTTP_OUTPUT_LEN],
}

impl ConnBuffers {
    /// Zeroed buffers (so a `static` of them lands in `.bss`).
    pub const fn new() -> Self {
        Self {
            rx: [0; config::TCP_RX_LEN],
            tx: [0; config::TCP_TX_LEN],
            input: [0; INPUT_LEN],
            output: [0; config::HTTP_OUTPUT_LEN],
        }
    }
}

/// Per-run settings of the socket tasks.
pub struct Settings {
    /// The listening port.
    pub port: u16,
    /// See [`config::READ_TIMEOUT_SECS`].
    pub read_timeout: Duration,
    /// Paths and limits of the HTTP binding.
    #[cfg(not(feature = "no-oauth"))]
    pub http: oauth2_devices::http::HttpConfig<'static>,
}

// ---------------------------------------------------------------------------------------------------
// The authorization server state
// ---------------------------------------------------------------------------------------------------

#[cfg(not(feature = "no-oauth"))]
pub use oauth::*;

#[cfg(not(feature = "no-oauth"))]
mod oauth {
    use core::fmt::Write as _;

    use embassy_futures::select::{select, Either};
    use oauth2_devices::http::conn::{AsyncTransport, Clock, Closed, Limits, State as ConnState};
    use oauth2_devices::http::pool::{Admit, Pool, EMBEDDED_PER_PEER};
    use oauth2_devices::http::{self, Application, Authorized, LogEntry, Request, Response, Timing, User};
    use oauth2_devices::prelude::*;
    use oauth2_devices::snapshot::max_snapshot_len;
    use oauth2_devices::storage::StoreStatus;
    use rand_chacha::ChaCha20Rng;

    use super::*;

    /// The provider with this gateway's capacities.
    pub type OAuth =
        Provider<FixedClients<4>, FixedGrants<{ config::GRANTS }>, { config::FAMILIES }, { config::LIMIT_SOURCES }>;

    /// Worst-case size of an old two-slot snapshot (the buffer its migration reads it into).
    pub const SNAPSHOT_LEN: usize = max_snapshot_len(config::GRANTS, config::FAMILIES);

    /// Everything a request handler needs under the lock.
    pub struct Gateway {
        /// The authorization server.
        pub provider: OAuth,
        /// Randomness for codes and tokens: ChaCha20 seeded from the OS or the hardware RNG.
        pub rng: ChaCha20Rng,
        /// Unix time (or any persisted origin) at `Instant` zero: `now = epoch + uptime`.
        pub epoch: u64,
        /// Where `epoch` came from, and so whether it is trusted.
        pub clock: crate::clock::ClockSource,
        /// What the start found in the flash (`crate::persist::open`), for `GET /status`.
        pub store: StoreStatus,
    }

    impl Gateway {
        /// The provider's time, in seconds: the epoch plus embassy-time's uptime.
        pub fn now(&self) -> u64 {
            self.epoch.saturating_add(Instant::now().as_secs())
        }
    }

    /// Builds the provider from [`config`] and the board's provider settings (`settings.verification_uri`
    /// is the issuer plus `/activate`).
    pub fn build(
        settings: Config,
        mut rng: ChaCha20Rng,
        epoch: u64,
        clock: crate::clock::ClockSource,
    ) -> Result<Gateway, &'static str> {
        let scopes = ScopeRegistry::new(config::SCOPES).map_err(|_| "bad scope list")?;
        let mut clients = FixedClients::<4>::new();
        for spec in config::CLIENTS {
            let client = match spec.secret {
                None => Client::public(spec.id, spec.name),
                Some(secret) => Client::confidential(spec.id, spec.name, SecretHash::new(secret, &mut rng)),
            }
            .map_err(|_| "bad client")?;
            clients.add(client).map_err(|_| "too many clients")?;
        }
        let key = ServerKey::new(config::SERVER_KEY_ID, &config::SERVER_KEY);
        let provider = Provider::build(settings, key, scopes, clients, FixedGrants::new(), &mut rng)
            .map_err(|_| "bad provider configuration")?;
        Ok(Gateway { provider, rng, epoch, clock, store: StoreStatus::Empty })
    }

    /// The application: HTTP Basic users on the verification page, `GET /api/me` behind a bearer
    /// token with [`config::ME_SCOPE`], a plain index, and an access log.
    pub struct DemoApp {
        /// The connection's peer (for the log).
        pub peer: Option<SocketAddr>,
        /// The clock's source and reading, and what the start found in the flash, for `GET /status`.
        pub status: (crate::clock::ClockSource, u64, StoreStatus),
        /// When the handling of this request started (board cycles; feature `probe`).
        #[cfg(feature = "probe")]
        pub started: u64,
    }

    impl Application for DemoApp {
        fn user(&mut self, req: &Request<'_>) -> Option<User> {
            config::USERS.sign_in(req)
        }

        fn protected(&self, _method: &str, path: &str, scopes: &ScopeRegistry) -> Option<ScopeSet> {
            (path == "/api/me").then(|| scopes.lookup(config::ME_SCOPE)).flatten()
        }

        fn resource(&mut self, req: &Request<'_>, auth: &Authorized<'_>, res: &mut Response<'_>) {
            if req.method() != "GET" {
                res.set_status(405).header("Allow", "GET, HEAD");
                return;
            }
            let id = auth.token.user;
            let name = config::USERS.by_id(id).map_or("", |u| u.name);
            let client = auth.client.map_or("", |c| c.id());
            let scope = auth.scopes.to_string::<128>(auth.token.scopes).unwrap_or_default();
            res.header("Content-Type", "application/json").header("Cache-Control", "no-store");
            // Names and ids come from `config` (JSON-safe); the scope names are RFC 6749 tokens.
            let _ = write!(
                res,
                "{{\"sub\":\"{id}\",\"id\":{id},\"name\":\"{name}\",\"client_id\":\"{client}\",\"scope\":\"{scope}\"}}"
            );
        }

        fn route(&mut self, req: &Request<'_>, res: &mut Response<'_>) {
            #[cfg(feature = "probe")]
            if req.path() == "/debug/stack" && req.method() == "GET" {
                let crate::mps2::probe::StackUse { used, size } = crate::mps2::probe::stack();
                res.header("Content-Type", "application/json").header("Cache-Control", "no-store");
                let _ = write!(res, "{{\"stack_used\":{used},\"stack_size\":{size}}}");
                return;
            }
            if req.path() == "/status" && req.method() == "GET" {
                // What an operator (or a display) shows: is the clock trusted, and what it reads.
                let (source, now, store) = self.status;
                res.header("Content-Type", "application/json").header("Cache-Control", "no-store");
                let trusted = source.trusted();
                let store = match store {
                    StoreStatus::Empty => "empty",
                    StoreStatus::Restored => "restored",
                    StoreStatus::ClockUntrusted => "clock-untrusted",
                    StoreStatus::Corrupted => "corrupted",
                    _ => "nothing-restorable",
                };
                let _ = write!(
                    res,
                    "{{\"clock\":\"{}\",\"trusted\":{trusted},\"now\":{now},\"store\":\"{store}\"}}",
                    source.name()
                );
                return;
            }
            if req.path() == "/" && req.method() == "GET" {
                res.header("Content-Type", "text/plain; charset=utf-8");
                res.body(
                    b"oauth2-devices embassy gateway: see /.well-known/oauth-authorization-server and /activate\n",
                );
            } else {
                res.set_status(404).header("Content-Type", "text/plain; charset=utf-8");
                res.body(b"Not found\n");
            }
        }

        fn on_response(&mut self, e: &LogEntry<'_>) {
            // The handler's cost up to here: parsing, the provider, the response (not this log).
            #[cfg(feature = "probe")]
            let cost = crate::mps2::probe::elapsed_ns(self.started);
            let method = if e.method.is_empty() { "-" } else { e.method };
            let path = if e.path.is_empty() { "-" } else { e.path };
            match self.peer {
                Some(peer) => info!("{} {} {} {}", method, path, e.status, peer),
                None => info!("{} {} {} -", method, path, e.status),
            }
            #[cfg(feature = "probe")]
            info!("cost {} {} {} {} ns", method, path, e.status, cost);
        }
    }

    /// Connection slots: one fewer than the sockets, so one socket task is always listening (with
    /// none, embassy-net answers a new connection with a reset): the task that accepts beyond the
    /// slots either closes an idle connection to take its slot, or answers `503` with `Retry-After`
    /// at once and listens again. The policy (per-peer cap, idle first) is the library's
    /// (`oauth2_devices::http::pool`); the deadlines are `http::conn::Limits::EMBEDDED` with the
    /// configured read timeout as the head deadline.
    pub const SLOTS: usize = config::SOCKETS - 1;

    /// The pool, and which socket task holds each slot.
    type Slots = (Pool<SLOTS>, [Option<usize>; SLOTS]);

    /// The pool and, per socket task, the signal that closes its connection when the pool evicts it.
    pub struct Connections {
        pool: Mutex<NoopRawMutex, RefCell<Slots>>,
        evict: [Signal<NoopRawMutex, ()>; config::SOCKETS],
    }

    impl Connections {
        /// Empty, [`EMBEDDED_PER_PEER`] connections per peer address.
        pub const fn new() -> Self {
            Self {
                pool: Mutex::new(RefCell::new((Pool::new().with_per_peer(EMBEDDED_PER_PEER), [None; SLOTS]))),
                evict: [const { Signal::new() }; config::SOCKETS],
            }
        }
    }

    /// The connection deadlines: [`Limits::EMBEDDED`], the head deadline from the read timeout.
    fn limits(settings: &Settings) -> Limits {
        let head = settings.read_timeout.as_millis();
        Limits { head_deadline: head, idle_deadline: Limits::EMBEDDED.idle_deadline.min(head), ..Limits::EMBEDDED }
    }

    /// Milliseconds since boot, for the connection deadlines.
    struct Uptime;

    impl Clock for Uptime {
        fn now_ms(&self) -> u64 {
            Instant::now().as_millis()
        }
    }

    /// A `TcpSocket` as the library's timed transport; an eviction ends its wait for a request. The
    /// response of a request that changed the provider's durable state waits until the change is on
    /// flash (`durable`: the version it must reach), within the response's write deadline: a device
    /// never holds a refresh token that a reboot would take for a replay.
    pub struct PooledSocket<'s, 'b> {
        socket: &'s mut TcpSocket<'b>,
        evict: &'s Signal<NoopRawMutex, ()>,
        shared: &'s Shared,
        durable: &'s core::cell::Cell<Option<u32>>,
    }

    impl PooledSocket<'_, '_> {
        /// Waits (polling, bounded by `timeout_ms`) until the persist task has the version this
        /// connection's last request made on flash.
        async fn until_durable(&mut self, timeout_ms: u64) {
            let Some(version) = self.durable.take() else { return };
            let deadline = Instant::now() + Duration::from_millis(timeout_ms);
            while !self.shared.is_saved(version) {
                if Instant::now() >= deadline {
                    warn!("a response left before its change was on flash (the flash is slow or failing)");
                    return;
                }
                Timer::after_millis(2).await;
            }
        }
    }

    impl ErrorType for PooledSocket<'_, '_> {
        type Error = ConnError;
    }

    impl AsyncTransport for PooledSocket<'_, '_> {
        async fn read_within(&mut self, buf: &mut [u8], timeout_ms: u64) -> Result<Option<usize>, ConnError> {
            let read = with_timeout(Duration::from_millis(timeout_ms), self.socket.read(buf));
            match select(read, self.evict.wait()).await {
                Either::First(Ok(Ok(n))) => Ok(Some(n)),
                Either::First(Ok(Err(e))) => Err(ConnError::Tcp(e)),
                Either::First(Err(_)) => Ok(None),
                Either::Second(()) => Err(ConnError::Evicted),
            }
        }

        async fn write_within(&mut self, buf: &[u8], timeout_ms: u64) -> Result<Option<usize>, ConnError> {
            let started = Instant::now();
            self.until_durable(timeout_ms).await;
            let timeout_ms = timeout_ms.saturating_sub(started.elapsed().as_millis()).max(1);
            match with_timeout(Duration::from_millis(timeout_ms), self.socket.write(buf)).await {
                Ok(Ok(n)) => Ok(Some(n)),
                Ok(Err(e)) => Err(ConnError::Tcp(e)),
                Err(_) => Ok(None),
            }
        }

        async fn shutdown_write(&mut self) -> Result<(), ConnError> {
            self.socket.close();
            let _ = with_timeout(Duration::from_millis(config::LINGER_MS), self.socket.flush()).await;
            Ok(())
        }
    }

    /// Admits an accepted connection into the pool and serves it, or refuses it; then closes it.
    pub(super) async fn serve_pooled(
        id: usize,
        shared: &Shared,
        settings: &Settings,
        socket: &mut TcpSocket<'_>,
        input: &mut [u8],
        output: &mut [u8],
    ) {
        let peer: Option<SocketAddr> = socket.remote_endpoint().map(Into::into);
        let ip = peer.map_or(core::net::IpAddr::V4(core::net::Ipv4Addr::UNSPECIFIED), |p| p.ip());
        let conns = &shared.conns;
        let admitted = conns.pool.lock(|c| {
            let (pool, holders) = &mut *c.borrow_mut();
            let (victim, ticket) = match pool.admit(ip, Instant::now().as_millis()) {
                Admit::Slot(t) => (None, t),
                Admit::EvictIdle { slot, then } => (holders.get(slot).copied().flatten(), then),
                Admit::Refuse { retry_after } => return Err(retry_after),
            };
            if let Some(holder) = holders.get_mut(ticket.index()) {
                *holder = Some(id);
            }
            Ok((victim, ticket))
        });
        let ticket = match admitted {
            Ok((victim, ticket)) => {
                if let Some(victim) = victim {
                    info!("socket {}: an idle connection (socket {}) closed for {:?}", id, victim, peer);
                    if let Some(signal) = conns.evict.get(victim) {
                        signal.signal(());
                    }
                }
                ticket
            }
            Err(retry_after) => {
                info!("socket {}: busy, 503 to {:?}", id, peer);
                let mut buf = [0u8; 128];
                let answer = http::status::busy(retry_after, &mut buf);
                let _ = with_timeout(Duration::from_secs(1), socket.write_all(answer)).await;
                close_now(socket).await;
                return;
            }
        };
        // A signal raised for this task's previous connection is stale.
        let Some(evict) = conns.evict.get(id) else { return };
        evict.reset();
        let mut on_state = |state: ConnState| {
            conns.pool.lock(|c| c.borrow_mut().0.set(ticket, state, Instant::now().as_millis()));
        };
        let timing = Timing { limits: limits(settings), clock: &Uptime, on_state: &mut on_state };
        let durable = core::cell::Cell::new(None);
        let mut io = PooledSocket { socket, evict, shared, durable: &durable };
        let handler = |request: http::Framed<'_>, response: &mut [u8]| {
            // The lock is held for this synchronous call only.
            let (served, changed) = shared.state.lock(|cell| {
                let mut g = cell.borrow_mut();
                let now = g.now();
                let status = (g.clock, now, g.store);
                let Gateway { provider, rng, .. } = &mut *g;
                let before = provider.durable_version();
                let mut app = DemoApp {
                    peer,
                    status,
                    #[cfg(feature = "probe")]
                    started: crate::mps2::probe::now(),
                };
                let mut cx = http::Context { provider, app: &mut app, rng, now, peer };
                let served = http::answer(&settings.http, &mut cx, request, response);
                let after = provider.durable_version();
                (served, (after != before).then_some(after))
            });
            if let Some(version) = changed {
                durable.set(Some(version));
                shared.dirty.signal(());
            }
            served
        };
        let closed = http::serve_timed_async(&settings.http, timing, &mut io, input, output, handler).await;
        match closed {
            Ok(Closed::HeadDeadline) => info!("socket {}: timeout (request not whole, 408) ({:?})", id, peer),
            Ok(Closed::Idle) => info!("socket {}: timeout (idle) ({:?})", id, peer),
            Ok(Closed::WriteDeadline) => info!("socket {}: timeout (write) ({:?})", id, peer),
            Ok(_) => {}
            Err(http::ServeError::Io(ConnError::Evicted)) => info!("socket {}: evicted ({:?})", id, peer),
            Err(http::ServeError::Io(ConnError::Tcp(tcp::Error::ConnectionReset))) => {}
            Err(_) => info!("socket {}: I/O error ({:?})", id, peer),
        }
        conns.pool.lock(|c| {
            let (pool, holders) = &mut *c.borrow_mut();
            if pool.owns(ticket) {
                pool.release(ticket);
                if let Some(slot) = holders.get_mut(ticket.index()) {
                    *slot = None;
                }
            }
        });
        close_now(socket).await;
    }

    /// After the driver's own drain: FIN, a short wait for it to leave, then a reset if the peer is
    /// still there (the socket is reused at once).
    async fn close_now(socket: &mut TcpSocket<'_>) {
        socket.close();
        let _ = with_timeout(Duration::from_millis(100), socket.flush()).await;
        socket.abort();
        let _ = with_timeout(Duration::from_millis(100), socket.flush()).await;
    }
}

/// The state every socket task shares.
pub struct Shared {
    /// The provider, its RNG and clock, behind a lock held for one request's handling at a time.
    #[cfg(not(feature = "no-oauth"))]
    pub state: Mutex<NoopRawMutex, RefCell<Gateway>>,
    /// Raised after a request that changed the provider's durable state.
    pub dirty: Signal<NoopRawMutex, ()>,
    /// The provider's durable version on flash (set by the persist task).
    #[cfg(not(feature = "no-oauth"))]
    saved: Mutex<NoopRawMutex, core::cell::Cell<u32>>,
    /// Who holds which connection slot.
    #[cfg(not(feature = "no-oauth"))]
    pub conns: Connections,
}

impl Shared {
    /// Wraps a gateway.
    #[cfg(not(feature = "no-oauth"))]
    pub fn new(gw: Gateway) -> Self {
        let saved = Mutex::new(core::cell::Cell::new(gw.provider.durable_version()));
        Self { state: Mutex::new(RefCell::new(gw)), dirty: Signal::new(), saved, conns: Connections::new() }
    }

    /// The persist task wrote the provider's state as of durable version `version`.
    #[cfg(not(feature = "no-oauth"))]
    pub fn set_saved(&self, version: u32) {
        self.saved.lock(|c| c.set(version));
    }

    /// True once the flash holds durable version `version` or a later one.
    #[cfg(not(feature = "no-oauth"))]
    pub fn is_saved(&self, version: u32) -> bool {
        // Versions count up and wrap: later means less than half the range ahead.
        self.saved.lock(|c| c.get().wrapping_sub(version) < u32::MAX / 2)
    }

    /// No state (the `no-oauth` build).
    #[cfg(feature = "no-oauth")]
    pub fn new() -> Self {
        Self { dirty: Signal::new() }
    }
}

// ---------------------------------------------------------------------------------------------------
// Connections
// ---------------------------------------------------------------------------------------------------

/// Why a timed read or write failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConnError {
    /// The request did not arrive whole in time, or a write stalled for the whole timeout (the
    /// `no-oauth` build; the server's deadlines are the driver's).
    #[cfg_attr(not(feature = "no-oauth"), allow(dead_code))]
    Timeout,
    /// The TCP connection failed.
    Tcp(tcp::Error),
    /// The pool closed this idle connection to admit another.
    Evicted,
}

impl core::fmt::Display for ConnError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Self::Timeout => f.write_str("timeout"),
            Self::Tcp(e) => write!(f, "{e:?}"),
            Self::Evicted => f.write_str("evicted"),
        }
    }
}

impl core::error::Error for ConnError {}

impl embedded_io_async::Error for ConnError {
    fn kind(&self) -> ErrorKind {
        match self {
            Self::Timeout => ErrorKind::TimedOut,
            Self::Tcp(e) => embedded_io_async::Error::kind(e),
            Self::Evicted => ErrorKind::ConnectionAborted,
        }
    }
}

/// A socket whose reads fail once `timeout` has passed since the accept or the last response: an idle
/// connection, or a request that dribbles in, is dropped after `timeout` in all. A write that makes no
/// progress for `timeout` fails too. (The `no-oauth` build's; the server's connections follow the
/// library's connection policy, [`PooledSocket`].)
#[cfg(feature = "no-oauth")]
pub struct TimedSocket<'s, 'b> {
    socket: &'s mut TcpSocket<'b>,
    timeout: Duration,
    deadline: Instant,
}

#[cfg(feature = "no-oauth")]
impl ErrorType for TimedSocket<'_, '_> {
    type Error = ConnError;
}

#[cfg(feature = "no-oauth")]
impl Read for TimedSocket<'_, '_> {
    async fn read(&mut self, buf: &mut [u8]) -> Result<usize, ConnError> {
        match with_deadline(self.deadline, self.socket.read(buf)).await {
            Ok(r) => r.map_err(ConnError::Tcp),
            Err(_) => Err(ConnError::Timeout),
        }
    }
}

#[cfg(feature = "no-oauth")]
impl Write for TimedSocket<'_, '_> {
    async fn write(&mut self, buf: &[u8]) -> Result<usize, ConnError> {
        match with_timeout(self.timeout, self.socket.write(buf)).await {
            Ok(r) => r.map_err(ConnError::Tcp),
            Err(_) => Err(ConnError::Timeout),
        }
    }

    async fn flush(&mut self) -> Result<(), ConnError> {
        match with_timeout(self.timeout, self.socket.flush()).await {
            Ok(r) => r.map_err(ConnError::Tcp)?,
            Err(_) => return Err(ConnError::Timeout),
        }
        // A response went out: the next request gets a fresh budget.
        self.deadline = Instant::now() + self.timeout;
        Ok(())
    }
}

/// One socket of the pool: accept, serve until the connection ends, close politely, repeat.
/// `pool_size` is [`config::SOCKETS`] (the macro needs a literal).
#[embassy_executor::task(pool_size = 4)]
pub async fn http_task(
    id: usize,
    stack: Stack<'static>,
    shared: &'static Shared,
    settings: &'static Settings,
    bufs: &'static mut ConnBuffers,
) -> ! {
    let ConnBuffers { rx, tx, input, output } = bufs;
    loop {
        let mut socket = TcpSocket::new(stack, &mut rx[..], &mut tx[..]);
        // smoltcp's own timer drops a peer that stops acknowledging what we send. Longer than the read
        // timeout, so an idle peer meets our deadline (and a polite close) first.
        socket.set_timeout(Some(settings.read_timeout * 2));
        if socket.accept(settings.port).await.is_err() {
            continue;
        }
        socket.set_nagle_enabled(false);

        #[cfg(not(feature = "no-oauth"))]
        serve_pooled(id, shared, settings, &mut socket, &mut input[..], &mut output[..]).await;

        #[cfg(feature = "no-oauth")]
        {
            let _ = (id, shared);
            let mut io = TimedSocket {
                socket: &mut socket,
                timeout: settings.read_timeout,
                deadline: Instant::now() + settings.read_timeout,
            };
            if let Err(why) = serve_fixed(&mut io, &mut input[..], &mut output[..]).await {
                info!("socket {}: {}", id, why);
            }
            linger(&mut socket).await;
        }
    }
}

/// Closes politely: FIN first, then a short drain so the peer reads our last response rather than a
/// reset caused by unread input; then the socket is aborted (RST) if the peer is still there.
#[cfg(feature = "no-oauth")]
async fn linger(socket: &mut TcpSocket<'_>) {
    let linger = Duration::from_millis(config::LINGER_MS);
    socket.close();
    let _ = with_timeout(linger, async {
        let _ = socket.flush().await;
        let mut sink = [0u8; 64];
        while let Ok(n) = socket.read(&mut sink).await {
            if n == 0 {
                break;
            }
        }
    })
    .await;
    socket.abort();
    let _ = with_timeout(Duration::from_millis(100), socket.flush()).await;
}

/// The `no-oauth` build's whole server: reads one request head and answers a fixed 503. It keeps the
/// network stack, the socket pool and the same per-connection buffers, so the size difference between
/// the two builds is the authorization server itself.
#[cfg(feature = "no-oauth")]
async fn serve_fixed(io: &mut TimedSocket<'_, '_>, input: &mut [u8], output: &mut [u8]) -> Result<(), &'static str> {
    const ANSWER: &[u8] = b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: text/plain\r\nContent-Length: 22\r\n\
        Connection: close\r\n\r\nno authorization here\n";
    let mut filled = 0;
    loop {
        let n = io.read(&mut input[filled..]).await.map_err(|_| "read failed")?;
        if n == 0 {
            return Ok(());
        }
        filled += n;
        if input[..filled].windows(4).any(|w| w == b"\r\n\r\n") || filled == input.len() {
            break;
        }
    }
    output[..ANSWER.len()].copy_from_slice(ANSWER);
    io.write_all(&output[..ANSWER.len()]).await.map_err(|_| "write failed")?;
    io.flush().await.map_err(|_| "write failed")
}
