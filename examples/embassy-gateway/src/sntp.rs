//! Wall-clock time from an SNTP server (RFC 4330, with `sntpc` over an embassy-net UDP socket), and
//! whether the gateway's clock can be trusted.
//!
//! The provider's `now` is `epoch + uptime` ([`crate::server::Gateway::now`]). A board starts with
//! the epoch of whatever clock it has (a battery-backed RTC, the host's clock, semihosting) or, when
//! it has none that survived, an untrusted guess; an SNTP answer sets the epoch and makes the clock
//! trusted. A snapshot restored under an untrusted clock fails safe (see the crate's `snapshot`
//! docs), so a board without a trusted clock waits for its first SNTP answer, boundedly, before
//! restoring.
//!
//! Every query is bounded ([`QUERY_TIMEOUT`]); an answer that `sntpc` refuses (wrong origin
//! timestamp, mode, stratum, a Kiss-o'-Death) or no answer leaves the clock as it was and says so
//! in the log.

use core::net::SocketAddr;

use embassy_net::udp::{PacketMetadata, UdpSocket};
use embassy_net::Stack;
use embassy_time::{with_timeout, Duration, Instant, Timer};
use sntpc::{NtpContext, NtpTimestampGenerator};

use crate::clock::ClockSource;
use crate::server::Shared;

/// How long one query may take, request to answer.
pub const QUERY_TIMEOUT: Duration = Duration::from_secs(2);
/// Between two queries once the clock is set (drift of a crystal is seconds a day).
pub const PERIOD: Duration = Duration::from_secs(3600);
/// Between two queries while no answer came yet.
pub const RETRY: Duration = Duration::from_secs(10);

/// The client's timestamps: the gateway's own clock (`epoch + uptime`), not bare uptime, so the
/// offset `sntpc` computes is the correction to apply to the epoch.
#[derive(Clone, Copy)]
struct GatewayTime {
    epoch: u64,
    micros: u64,
}

impl NtpTimestampGenerator for GatewayTime {
    fn init(&mut self) {
        self.micros = Instant::now().as_micros();
    }

    fn timestamp_sec(&self) -> u64 {
        self.epoch.saturating_add(self.micros / 1_000_000)
    }

    fn timestamp_subsec_micros(&self) -> u32 {
        (self.micros % 1_000_000) as u32
    }
}

/// Why a query gave no time.
#[derive(Debug, Clone, Copy)]
pub enum QueryError {
    /// No answer within [`QUERY_TIMEOUT`].
    NoAnswer,
    /// An answer `sntpc` refused, or a socket error.
    Refused(sntpc::Error),
}

impl QueryError {
    /// Why, in words, for the log (the same on every board's logger).
    pub fn reason(self) -> &'static str {
        use sntpc::Error as E;
        match self {
            QueryError::NoAnswer => "no answer",
            QueryError::Refused(E::IncorrectOriginTimestamp) => "origin timestamp not ours",
            QueryError::Refused(E::IncorrectMode) => "not a server answer",
            QueryError::Refused(E::UnsynchronizedClock) => "server not synchronised",
            QueryError::Refused(E::InvalidTimestamp) => "invalid timestamp",
            QueryError::Refused(E::IncorrectResponseVersion) => "wrong version",
            QueryError::Refused(E::IncorrectStratumHeaders) => "bad stratum",
            QueryError::Refused(E::IncorrectPayload) => "short answer",
            QueryError::Refused(E::ResponseAddressMismatch) => "answer from another address",
            QueryError::Refused(E::Network) => "network error",
            QueryError::Refused(_) => "answer refused",
        }
    }
}

/// One query to `server`: the correction, in whole seconds, to add to `epoch`.
pub async fn query(stack: Stack<'_>, server: SocketAddr, epoch: u64) -> Result<i64, QueryError> {
    let mut rx_meta = [PacketMetadata::EMPTY; 2];
    let mut tx_meta = [PacketMetadata::EMPTY; 2];
    let mut rx = [0u8; 128];
    let mut tx = [0u8; 128];
    let mut socket = UdpSocket::new(stack, &mut rx_meta, &mut rx, &mut tx_meta, &mut tx);
    socket.bind(0).map_err(|_| QueryError::Refused(sntpc::Error::Network))?;
    let socket = sntpc_net_embassy::UdpSocketWrapper::new(socket);
    let context = NtpContext::new(GatewayTime { epoch, micros: 0 });
    match with_timeout(QUERY_TIMEOUT, sntpc::get_time(server, &socket, context)).await {
        Err(_) => Err(QueryError::NoAnswer),
        Ok(Err(e)) => Err(QueryError::Refused(e)),
        // `offset` is the server's time minus ours, in microseconds.
        Ok(Ok(answer)) => Ok(answer.offset / 1_000_000),
    }
}

/// Asks `server` for the time and, on a good answer, sets the epoch and trusts the clock (see
/// [`crate::sntp`]). Returns whether it did.
pub async fn sync_clock(shared: &Shared, stack: Stack<'_>, server: SocketAddr) -> bool {
    let (epoch, was) = shared.state.lock(|g| {
        let g = g.borrow();
        (g.epoch, g.clock)
    });
    apply_sntp(server, was, query(stack, server, epoch).await, |correction| {
        shared.state.lock(|g| {
            let mut g = g.borrow_mut();
            g.epoch = g.epoch.saturating_add_signed(correction);
            g.clock = ClockSource::Sntp;
        })
    })
}

/// Keeps the clock set: a query every [`PERIOD`] once one succeeded (`set`), every
/// [`RETRY`] until then. After each good answer `on_set` gets the new Unix time (a board writes its
/// RTC there).
#[embassy_executor::task]
pub async fn sntp_task(
    shared: &'static Shared,
    stack: Stack<'static>,
    server: SocketAddr,
    set: bool,
    on_set: fn(u64),
) -> ! {
    let mut set = set;
    loop {
        Timer::after(if set { PERIOD } else { RETRY }).await;
        set = sync_clock(shared, stack, server).await;
        if set {
            on_set(shared.state.lock(|g| g.borrow().now()));
        }
    }
}

/// The first reading at boot, before the snapshot is restored: waits (boundedly) for the link,
/// then tries [`BOOT_ATTEMPTS`] queries. Returns the corrected epoch and its source.
pub async fn boot_clock(stack: Stack<'_>, server: SocketAddr, epoch: u64, source: ClockSource) -> (u64, ClockSource) {
    let _ = with_timeout(Duration::from_secs(5), stack.wait_config_up()).await;
    let (mut epoch, mut source) = (epoch, source);
    for _ in 0..BOOT_ATTEMPTS {
        let outcome = query(stack, server, epoch).await;
        if apply_sntp(server, source, outcome, |c| {
            epoch = epoch.saturating_add_signed(c);
            source = ClockSource::Sntp;
        }) {
            break;
        }
    }
    (epoch, source)
}

/// Queries at boot before restoring under whatever clock there is.
pub const BOOT_ATTEMPTS: usize = 2;

/// Logs a query's outcome and applies a correction through `set`.
pub fn apply_sntp(
    server: SocketAddr,
    was: ClockSource,
    outcome: Result<i64, QueryError>,
    set: impl FnOnce(i64),
) -> bool {
    match outcome {
        Ok(correction) => {
            set(correction);
            info!("clock: set by SNTP from {}, corrected by {} s (was {})", server, correction, was.name());
            true
        }
        Err(e) => {
            warn!("clock: SNTP from {}: {}; the clock stays {}", server, e.reason(), was.name());
            false
        }
    }
}
