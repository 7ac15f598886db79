//! The QEMU mps2-an386 board (Cortex-M4, 25 MHz): the same executor (`platform-cortex-m`), stack,
//! socket tasks and provider as the STM32 firmware; only this layer differs.
//!
//! | need | here |
//! |---|---|
//! | network | the board's LAN9118, driven by [`lan9118`] (QEMU user-mode networking on the host side) |
//! | time | SysTick (64-bit cycle count) + CMSDK TIMER0 alarms, [`time`] |
//! | randomness | **no TRNG on this board**: ChaCha20 seeded from the host's `/dev/urandom` via semihosting |
//! | clock (`now`) | the host's wall clock via semihosting, read once at boot, standing in for an RTC |
//! | state | [`flash::HostFlash`], a host file with NOR semantics, through the record store (`crate::persist`) |
//! | logging | `log`, one line per record on the host's standard error via semihosting |
//! | stack | painted at boot, measured by [`stack`] (`GET /debug/stack` with the `probe` feature) |
//!
//! Options come from QEMU's `-append` ([`semihost::Options::USAGE`]); `runner.sh` passes them.

pub mod flash;
pub mod lan9118;
pub mod semihost;
#[cfg(feature = "probe")]
pub mod stack;
pub mod time;

use core::ffi::CStr;
use core::fmt::Write as _;

use cortex_m_rt::{exception, ExceptionFrame};
use embassy_executor::Spawner;
use embassy_net::{Ipv4Address, Ipv4Cidr, Runner, StackResources, StaticConfigV4};
use embassy_net_driver_channel::driver::HardwareAddress;
use embassy_time::Duration;
#[cfg(not(feature = "no-oauth"))]
use rand_chacha::ChaCha20Rng;
use rand_core::{RngCore, SeedableRng};
use static_cell::{ConstStaticCell, StaticCell};

use crate::config::{self, net};
use crate::server::{self, ConnBuffers, Settings, Shared};

/// Receive and transmit buffers between the driver and the stack (4 + 4 frames, like the STM32's DMA
/// rings).
static CHANNEL: ConstStaticCell<embassy_net_driver_channel::State<{ lan9118::MTU }, 4, 4>> =
    ConstStaticCell::new(embassy_net_driver_channel::State::new());
static RESOURCES: ConstStaticCell<StackResources<{ config::SOCKETS + 1 }>> =
    ConstStaticCell::new(StackResources::new());
static BUFFERS: ConstStaticCell<[ConnBuffers; config::SOCKETS]> =
    ConstStaticCell::new([const { ConnBuffers::new() }; config::SOCKETS]);
static SHARED: StaticCell<Shared> = StaticCell::new();
static SETTINGS: StaticCell<Settings> = StaticCell::new();
static OPTIONS: StaticCell<semihost::Options> = StaticCell::new();
#[cfg(not(feature = "no-oauth"))]
static VERIFICATION_URI: StaticCell<heapless::String<{ semihost::MAX_ARG + 16 }>> = StaticCell::new();
#[cfg(not(feature = "no-oauth"))]
static SNAPSHOT: ConstStaticCell<[u8; server::SNAPSHOT_LEN]> = ConstStaticCell::new([0; server::SNAPSHOT_LEN]);
#[cfg(not(feature = "no-oauth"))]
static CAPTURE: ConstStaticCell<crate::persist::Captured> = ConstStaticCell::new(crate::persist::Captured::new());

/// Logs `what` and stops the emulator with a failure status.
fn fail(what: &str, why: impl core::fmt::Display) -> ! {
    log::error!("{what}: {why}");
    semihost::exit(1)
}

#[embassy_executor::task]
async fn lan9118_task(chip: lan9118::Lan9118, runner: lan9118::Runner) -> ! {
    lan9118::run(chip, runner).await
}

#[embassy_executor::task]
async fn net_task(mut runner: Runner<'static, lan9118::Device>) -> ! {
    runner.run().await
}

#[cfg(not(feature = "no-oauth"))]
#[embassy_executor::task]
async fn persist_task(shared: &'static Shared, mut store: crate::persist::Store<flash::HostFlash>) -> ! {
    crate::persist::persist(shared, &mut store, CAPTURE.take()).await
}

pub async fn main(spawner: Spawner) {
    let mut core = cortex_m::Peripherals::take().unwrap_or_else(|| semihost::exit(1));
    time::start(&mut core.SYST);
    let opts: &'static semihost::Options =
        match semihost::Options::parse(net::ISSUER, net::STATE_FILE, config::READ_TIMEOUT_SECS) {
            Ok(o) => OPTIONS.init(o),
            Err(why) => {
                semihost::init_log(log::LevelFilter::Info);
                log::error!("{why}\n{}", semihost::Options::USAGE);
                semihost::exit(2)
            }
        };
    semihost::init_log(opts.log);
    info!("embassy-gateway on QEMU mps2-an386 (Cortex-M4)");

    // No TRNG on this board: the host's random device seeds ChaCha20 (the provider's RNG) and the stack.
    let seed = semihost::seed().unwrap_or_else(|e| fail("seed from the host's /dev/urandom", e));
    let mut rng = ChaCha20Rng::from_seed(seed);

    let chip = lan9118::Lan9118::new(net::MAC).unwrap_or_else(|e| fail("Ethernet", e));
    let (runner, device) = embassy_net_driver_channel::new(CHANNEL.take(), HardwareAddress::Ethernet(net::MAC));
    spawner.spawn(lan9118_task(chip, runner).unwrap_or_else(|e| fail("spawn", e)));

    let [a, b, c, d] = net::ADDRESS;
    let net_config = embassy_net::Config::ipv4_static(StaticConfigV4 {
        address: Ipv4Cidr::new(Ipv4Address::new(a, b, c, d), net::PREFIX),
        gateway: net::GATEWAY.map(|[a, b, c, d]| Ipv4Address::new(a, b, c, d)),
        dns_servers: Default::default(),
    });
    let (stack, runner) = embassy_net::new(device, net_config, RESOURCES.take(), rng.next_u64());
    spawner.spawn(net_task(runner).unwrap_or_else(|e| fail("spawn", e)));
    let issuer: &'static str = opts.issuer.as_str();

    #[cfg(not(feature = "no-oauth"))]
    let shared = {
        // The host's wall clock stands in for an RTC: `now` is Unix time, so a reboot (QEMU restarted on
        // the same flash file) keeps grants and tokens.
        let unix = semihost::unix_time().unwrap_or_else(|| fail("clock", "the host gave no time"));
        let epoch = unix.saturating_sub(embassy_time::Instant::now().as_secs());
        let uri = VERIFICATION_URI.init(heapless::String::new());
        write!(uri, "{issuer}/activate").unwrap_or_else(|_| fail("--issuer", "too long"));
        let mut provider_config = oauth2_devices::provider::Config::new(uri.as_str());
        if let Some(interval) = opts.interval {
            provider_config.interval = interval;
        }
        let mut gw = server::build(provider_config, rng, epoch, crate::clock::ClockSource::Board)
            .unwrap_or_else(|e| fail("provider", e));
        let path = CStr::from_bytes_with_nul(&opts.state).unwrap_or_else(|_| fail("--state", "bad path"));
        let flash =
            flash::HostFlash::open(path, net::FLASH_LEN as usize).unwrap_or_else(|e| fail(opts.state_path(), e));
        let store = crate::persist::open(&mut gw, flash, net::LAYOUT, SNAPSHOT.take())
            .await
            .unwrap_or_else(|e| fail("flash", e));
        let shared: &'static Shared = SHARED.init(Shared::new(gw));
        spawner.spawn(persist_task(shared, store).unwrap_or_else(|e| fail("spawn", e)));
        shared
    };
    #[cfg(feature = "no-oauth")]
    let shared: &'static Shared = {
        let _ = rng;
        SHARED.init(Shared::new())
    };

    let settings: &'static Settings = SETTINGS.init(Settings {
        port: net::PORT,
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
        spawner.spawn(server::http_task(id, stack, shared, settings, bufs).unwrap_or_else(|e| fail("spawn", e)));
    }
    stack.wait_config_up().await;
    // Scripts wait for this line.
    info!(
        "listening on {} (guest port {}, flash file {}, {} sockets, read timeout {} s)",
        issuer,
        net::PORT,
        opts.state_path(),
        config::SOCKETS,
        opts.read_timeout
    );
}

/// Measurement hooks for CI (feature `probe`): the cost of each request and the stack report.
#[cfg(feature = "probe")]
pub mod probe {
    pub use super::stack::{usage as stack, StackUse};

    /// A point in time, in core cycles.
    pub fn now() -> u64 {
        super::time::cycles()
    }

    /// Virtual nanoseconds since `start` (instructions under `-icount shift=0`).
    pub fn elapsed_ns(start: u64) -> u64 {
        super::time::virtual_ns(now().saturating_sub(start))
    }
}

/// The board's device interrupts (no PAC: cortex-m-rt routes every device interrupt here).
#[exception]
unsafe fn DefaultHandler(irqn: i16) {
    match irqn {
        n if n == lan9118::IRQ_NUMBER as i16 => lan9118::on_interrupt(),
        n if n == time::TIMER0_IRQ as i16 => time::on_timer0(),
        // Nothing else is unmasked.
        _ => {}
    }
}

/// A fault (bad memory access, stack overflow into unmapped memory, ...): say where, and stop QEMU.
#[exception]
unsafe fn HardFault(frame: &ExceptionFrame) -> ! {
    semihosting::eprintln!("hard fault at pc {:#010x} (lr {:#010x})", frame.pc(), frame.lr());
    semihost::exit(3)
}
