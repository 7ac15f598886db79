//! The host board: embassy-net over a Linux TAP device, the executor on a std thread, the record store
//! in a file (`oauth2_devices::storage::FileFlash`), the clock from the system time at start.
//!
//! ```text
//! embassy-gateway [--tap NAME] [--addr A.B.C.D/PREFIX] [--port N] [--state FILE] [--read-timeout SECS]
//!                 [--interval SECS] [--sntp A.B.C.D:PORT] [--untrusted-clock] [--flash-latency MS]
//! ```
//!
//! `--sntp` sets the clock from an SNTP server at start and every hour; `--untrusted-clock` starts
//! from the value an RTC that lost power reads (2000-01-01), untrusted until an SNTP answer, as a
//! board without a battery-backed RTC does after a power cut. `--flash-latency` makes every flash
//! write and erase take that much longer (awaited, as a board's yielding flash does), to see what a
//! slow flash changes: CI kills the gateway right after a refresh response with it.

#[cfg(not(feature = "no-oauth"))]
use std::time::{SystemTime, UNIX_EPOCH};

use embassy_executor::Spawner;
use embassy_net::{Ipv4Address, Ipv4Cidr, Runner, StackResources, StaticConfigV4};
use embassy_net_tuntap::TunTapDevice;
use embassy_time::Duration;
#[cfg(not(feature = "no-oauth"))]
use embassy_time::Instant;
#[cfg(not(feature = "no-oauth"))]
use oauth2_devices::storage::FileFlash;
use rand_chacha::ChaCha20Rng;
use rand_core::{RngCore, SeedableRng};
use static_cell::{ConstStaticCell, StaticCell};

use crate::config::{self, net};
use crate::server::{self, ConnBuffers, Settings, Shared};

const USAGE: &str =
    "usage: embassy-gateway [--tap NAME] [--addr A.B.C.D/PREFIX] [--port N] [--state FILE] [--read-timeout SECS]
                       [--interval SECS] [--sntp A.B.C.D:PORT] [--untrusted-clock] [--flash-latency MS]
env: O2D_TAP (like --tap), RUST_LOG (default: info)";

/// What an STM32 RTC reads after losing power: 2000-01-01T00:00:00Z.
#[cfg(not(feature = "no-oauth"))]
const RTC_RESET_UNIX: u64 = 946_684_800;

// The TCP sockets, the SNTP query's UDP socket, and one spare.
static RESOURCES: ConstStaticCell<StackResources<{ config::SOCKETS + 2 }>> =
    ConstStaticCell::new(StackResources::new());
static BUFFERS: ConstStaticCell<[ConnBuffers; config::SOCKETS]> =
    ConstStaticCell::new([const { ConnBuffers::new() }; config::SOCKETS]);
static SHARED: StaticCell<Shared> = StaticCell::new();
static SETTINGS: StaticCell<Settings> = StaticCell::new();
#[cfg(not(feature = "no-oauth"))]
static SNAPSHOT: ConstStaticCell<[u8; server::SNAPSHOT_LEN]> = ConstStaticCell::new([0; server::SNAPSHOT_LEN]);
#[cfg(not(feature = "no-oauth"))]
static CAPTURE: ConstStaticCell<crate::persist::Captured> = ConstStaticCell::new(crate::persist::Captured::new());

struct Options {
    tap: String,
    addr: [u8; 4],
    prefix: u8,
    port: u16,
    state: String,
    read_timeout: u64,
    interval: Option<u16>,
    sntp: Option<core::net::SocketAddr>,
    untrusted_clock: bool,
    flash_latency: Duration,
}

fn parse() -> Result<Options, String> {
    let mut o = Options {
        tap: std::env::var("O2D_TAP").unwrap_or_else(|_| net::TAP.into()),
        addr: net::ADDRESS,
        prefix: net::PREFIX,
        port: net::PORT,
        state: net::STATE_FILE.into(),
        read_timeout: config::READ_TIMEOUT_SECS,
        interval: None,
        sntp: None,
        untrusted_clock: false,
        flash_latency: Duration::from_ticks(0),
    };
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        if flag == "-h" || flag == "--help" {
            return Err(String::new());
        }
        if flag == "--untrusted-clock" {
            o.untrusted_clock = true;
            continue;
        }
        let mut value = || args.next().ok_or(format!("{flag} needs a value"));
        match flag.as_str() {
            "--tap" => o.tap = value()?,
            "--addr" => {
                let v = value()?;
                let (ip, prefix) = v.split_once('/').unwrap_or((&v, "24"));
                let ip: std::net::Ipv4Addr = ip.parse().map_err(|_| format!("--addr: bad address {ip}"))?;
                o.addr = ip.octets();
                o.prefix = prefix.parse().ok().filter(|p| *p <= 32).ok_or("--addr: bad prefix")?;
            }
            "--port" => o.port = value()?.parse().map_err(|_| "--port: not a port")?,
            "--state" => o.state = value()?,
            "--read-timeout" => {
                o.read_timeout = value()?.parse::<u64>().map_err(|_| "--read-timeout: not seconds")?.max(1)
            }
            "--interval" => {
                o.interval = Some(value()?.parse::<u16>().ok().filter(|i| *i > 0).ok_or("--interval: not seconds")?)
            }
            "--flash-latency" => {
                o.flash_latency = Duration::from_millis(value()?.parse().map_err(|_| "--flash-latency: not ms")?)
            }
            "--sntp" => {
                let v = value()?;
                o.sntp = Some(v.parse().map_err(|_| format!("--sntp: not an address with a port: {v}"))?)
            }
            other => return Err(format!("unknown argument {other}")),
        }
    }
    Ok(o)
}

#[embassy_executor::task]
async fn net_task(mut runner: Runner<'static, TunTapDevice>) -> ! {
    runner.run().await
}

#[cfg(not(feature = "no-oauth"))]
#[embassy_executor::task]
async fn persist_task(shared: &'static Shared, mut store: crate::persist::Store<SlowFlash>) -> ! {
    crate::persist::persist(shared, &mut store, CAPTURE.take()).await
}

/// The flash file, each write and erase delayed by `latency` (`--flash-latency`; zero by default).
#[cfg(not(feature = "no-oauth"))]
struct SlowFlash {
    flash: FileFlash,
    latency: Duration,
}

#[cfg(not(feature = "no-oauth"))]
mod slow {
    use embedded_storage_async::nor_flash::{ErrorType, NorFlash, ReadNorFlash};
    use oauth2_devices::storage::FileFlashError;

    use super::SlowFlash;

    impl ErrorType for SlowFlash {
        type Error = FileFlashError;
    }

    impl ReadNorFlash for SlowFlash {
        const READ_SIZE: usize = 1;

        async fn read(&mut self, offset: u32, bytes: &mut [u8]) -> Result<(), Self::Error> {
            self.flash.read(offset, bytes).await
        }

        fn capacity(&self) -> usize {
            self.flash.capacity()
        }
    }

    impl NorFlash for SlowFlash {
        const WRITE_SIZE: usize = <oauth2_devices::storage::FileFlash as NorFlash>::WRITE_SIZE;
        const ERASE_SIZE: usize = <oauth2_devices::storage::FileFlash as NorFlash>::ERASE_SIZE;

        async fn erase(&mut self, from: u32, to: u32) -> Result<(), Self::Error> {
            embassy_time::Timer::after(self.latency).await;
            self.flash.erase(from, to).await
        }

        async fn write(&mut self, offset: u32, bytes: &[u8]) -> Result<(), Self::Error> {
            embassy_time::Timer::after(self.latency).await;
            self.flash.write(offset, bytes).await
        }
    }
}

fn fail(msg: impl std::fmt::Display) -> ! {
    eprintln!("{msg}");
    std::process::exit(1)
}

pub async fn main(spawner: Spawner) {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info")).init();
    let opts = match parse() {
        Ok(o) => o,
        Err(msg) if msg.is_empty() => {
            println!("{USAGE}");
            std::process::exit(0)
        }
        Err(msg) => fail(format_args!("{msg}\n{USAGE}")),
    };

    let mut seed = [0u8; 32];
    getrandom::fill(&mut seed).unwrap_or_else(|e| fail(format_args!("OS random generator: {e}")));
    let mut rng = ChaCha20Rng::from_seed(seed);

    let mut device = TunTapDevice::new(&opts.tap).unwrap_or_else(|e| {
        fail(format_args!("cannot open TAP device {}: {e} (create it first; see README.md)", opts.tap))
    });
    device.set_hardware_address(net::MAC);
    let [a, b, c, d] = opts.addr;
    let net_config = embassy_net::Config::ipv4_static(StaticConfigV4 {
        address: Ipv4Cidr::new(Ipv4Address::new(a, b, c, d), opts.prefix),
        gateway: None,
        dns_servers: Default::default(),
    });
    let (stack, runner) = embassy_net::new(device, net_config, RESOURCES.take(), rng.next_u64());
    spawner.spawn(net_task(runner).unwrap_or_else(|e| fail(e)));

    let host = std::net::Ipv4Addr::from(opts.addr);
    let issuer: &'static str =
        String::leak(if opts.port == 80 { format!("http://{host}") } else { format!("http://{host}:{}", opts.port) });

    #[cfg(not(feature = "no-oauth"))]
    let shared = {
        // The provider's clock: Unix time, as uptime plus the Unix time at uptime zero; the host's clock
        // stands in for a battery-backed RTC, unless told to play one that lost power.
        use crate::clock::ClockSource;
        let (unix, source) = if opts.untrusted_clock {
            (RTC_RESET_UNIX, ClockSource::Untrusted)
        } else {
            (SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs()), ClockSource::Board)
        };
        let mut epoch = unix.saturating_sub(Instant::now().as_secs());
        let mut source = source;
        // The first SNTP answer comes before the snapshot is restored, so an untrusted clock that SNTP
        // can correct does not drop the paired devices.
        if let Some(server) = opts.sntp {
            (epoch, source) = crate::sntp::boot_clock(stack, server, epoch, source).await;
        }
        let synced = source == ClockSource::Sntp;
        let mut provider_config = oauth2_devices::provider::Config::new(&format!("{issuer}/activate"));
        if let Some(interval) = opts.interval {
            provider_config.interval = interval;
        }
        let mut gw = server::build(provider_config, rng, epoch, source).unwrap_or_else(|e| fail(e));
        let flash =
            FileFlash::open(&opts.state, net::FLASH_LEN).unwrap_or_else(|e| fail(format_args!("{}: {e}", opts.state)));
        let flash = SlowFlash { flash, latency: opts.flash_latency };
        let store = crate::persist::open(&mut gw, flash, net::LAYOUT, SNAPSHOT.take())
            .await
            .unwrap_or_else(|e| fail(format_args!("{}: {e}", opts.state)));
        let shared: &'static Shared = SHARED.init(Shared::new(gw));
        spawner.spawn(persist_task(shared, store).unwrap_or_else(|e| fail(e)));
        if let Some(server) = opts.sntp {
            spawner.spawn(crate::sntp::sntp_task(shared, stack, server, synced, |_| {}).unwrap_or_else(|e| fail(e)));
        }
        shared
    };
    #[cfg(feature = "no-oauth")]
    let shared: &'static Shared = {
        let _ = (rng, opts.interval, &opts.state);
        SHARED.init(Shared::new())
    };

    let settings: &'static Settings = SETTINGS.init(Settings {
        port: opts.port,
        read_timeout: Duration::from_secs(opts.read_timeout),
        #[cfg(not(feature = "no-oauth"))]
        http: oauth2_devices::http::HttpConfig {
            realm: "oauth2-devices embassy gateway",
            max_head: config::MAX_HEAD,
            max_body: config::MAX_BODY,
            ..oauth2_devices::http::HttpConfig::new(issuer)
        },
    });
    for (id, bufs) in BUFFERS.take().iter_mut().enumerate() {
        spawner.spawn(server::http_task(id, stack, shared, settings, bufs).unwrap_or_else(|e| fail(e)));
    }
    // The script waits for this line.
    println!(
        "listening on {issuer} (TAP {}, {} sockets, read timeout {} s)",
        opts.tap,
        config::SOCKETS,
        opts.read_timeout
    );
}
