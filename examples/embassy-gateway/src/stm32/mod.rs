//! The Nucleo-F767ZI board: 216 MHz from the ST-LINK's 8 MHz clock, the on-chip Ethernet MAC with the
//! board's LAN8742A PHY (RMII), the hardware RNG, the record store in flash bank 2 ([`flash`]), defmt
//! over RTT.
//!
//! Time: the provider's `now` is `epoch + uptime`. At boot the epoch comes from the RTC (on the
//! Nucleo's 32.768 kHz LSE crystal) when it holds a time set from SNTP since the backup domain last
//! lost power (a marker in backup register 0, cleared with the RTC); it survives a reset, and a power
//! cut only when VBAT is powered separately. Then SNTP ([`net::SNTP_SERVER`]) is asked, before the
//! snapshot is restored and every hour after, and each good answer is written back to the RTC.
//! Without either the clock is untrusted (epoch 0): the provider sees its clock behind the
//! snapshot's and fails safe: it keeps the serial counter (no code or token is ever reissued) but
//! drops the grants and token families (devices start a new flow).

#[cfg(not(feature = "no-oauth"))]
pub mod flash;

use embassy_executor::Spawner;
use embassy_net::{Ipv4Address, Ipv4Cidr, Runner, StackResources, StaticConfigV4};
use embassy_stm32::bind_interrupts;
use embassy_stm32::eth::{self, Ethernet, GenericPhy, PacketQueue, Sma};
#[cfg(not(feature = "no-oauth"))]
use embassy_stm32::flash::Flash;
use embassy_stm32::peripherals::{ETH, ETH_SMA, RNG};
use embassy_stm32::rng::{self, Rng};
#[cfg(not(feature = "no-oauth"))]
use embassy_stm32::rtc::{Rtc, RtcConfig, RtcTimeProvider};
use embassy_stm32::time::Hertz;
use embassy_time::Duration;
use rand_chacha::ChaCha20Rng;
use rand_core::{RngCore, SeedableRng};
use static_cell::{ConstStaticCell, StaticCell};
use {defmt_rtt as _, panic_probe as _};

use crate::config::{self, net};
use crate::server::{self, ConnBuffers, Settings, Shared};

bind_interrupts!(struct Irqs {
    ETH => eth::InterruptHandler;
    RNG => rng::InterruptHandler<RNG>;
});

type Device = Ethernet<'static, ETH, GenericPhy<Sma<'static, ETH_SMA>>>;

static PACKETS: ConstStaticCell<PacketQueue<4, 4>> = ConstStaticCell::new(PacketQueue::new());
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

#[embassy_executor::task]
async fn net_task(mut runner: Runner<'static, Device>) -> ! {
    runner.run().await
}

#[cfg(not(feature = "no-oauth"))]
#[embassy_executor::task]
async fn persist_task(shared: &'static Shared, mut store: crate::persist::Store<flash::StoreFlash>) -> ! {
    // Writes happen only when durable state changed (approval, exchange, refresh, revocation; no poll),
    // in bank 2 while the program runs from bank 1, yielding during erases (see [`flash`]).
    crate::persist::persist(shared, &mut store, CAPTURE.take()).await
}

/// In backup register 0: the RTC holds a time set from a trusted source since the backup domain last
/// lost power (the register is cleared with the RTC).
#[cfg(not(feature = "no-oauth"))]
const RTC_SET: u32 = 0x4F32_4443;

/// The RTC, for the SNTP task to write each good answer back.
#[cfg(not(feature = "no-oauth"))]
static RTC: embassy_sync::blocking_mutex::Mutex<
    embassy_sync::blocking_mutex::raw::CriticalSectionRawMutex,
    core::cell::RefCell<Option<Rtc>>,
> = embassy_sync::blocking_mutex::Mutex::new(core::cell::RefCell::new(None));

/// The RTC's time as Unix seconds, if it was set from a trusted source since it last lost power.
#[cfg(not(feature = "no-oauth"))]
fn rtc_unix(rtc: &Rtc, time: &RtcTimeProvider) -> Option<u64> {
    if rtc.read_backup_register(0) != Some(RTC_SET) {
        return None;
    }
    let t = time.now().ok()?;
    u64::try_from(chrono::NaiveDateTime::from(t).and_utc().timestamp()).ok()
}

/// Writes `unix` to the RTC and marks it set.
#[cfg(not(feature = "no-oauth"))]
fn set_rtc(unix: u64) {
    RTC.lock(|r| {
        let mut r = r.borrow_mut();
        let Some(rtc) = r.as_mut() else { return };
        let Some(t) = i64::try_from(unix).ok().and_then(|u| chrono::DateTime::from_timestamp(u, 0)) else { return };
        match rtc.set_datetime(t.naive_utc().into()) {
            Ok(()) => rtc.write_backup_register(0, RTC_SET),
            Err(_) => defmt::warn!("clock: the RTC refused the time"),
        }
    });
}

fn clocks() -> embassy_stm32::Config {
    use embassy_stm32::rcc::*;
    let mut config = embassy_stm32::Config::default();
    // The RTC runs on the 32.768 kHz LSE crystal (it keeps time through a reset).
    config.rcc.ls = LsConfig::default_lse();
    // The ST-LINK's 8 MHz MCO drives HSE in bypass mode. 8 / 4 * 216 = 432 MHz VCO:
    // P / 2 = 216 MHz system clock, Q / 9 = 48 MHz for the RNG.
    config.rcc.hse = Some(Hse { freq: Hertz(8_000_000), mode: HseMode::Bypass });
    config.rcc.pll_src = PllSource::HSE;
    config.rcc.pll = Some(Pll {
        prediv: PllPreDiv::DIV4,
        mul: PllMul::MUL216,
        divp: Some(PllPDiv::DIV2),
        divq: Some(PllQDiv::DIV9),
        divr: None,
    });
    config.rcc.ahb_pre = AHBPrescaler::DIV1;
    config.rcc.apb1_pre = APBPrescaler::DIV4;
    config.rcc.apb2_pre = APBPrescaler::DIV2;
    config.rcc.sys = Sysclk::PLL1_P;
    config
}

pub async fn main(spawner: Spawner) {
    let p = embassy_stm32::init(clocks());
    defmt::info!("embassy-gateway on STM32F767ZI");

    // The hardware RNG seeds ChaCha20 (the provider's RNG) and the TCP stack.
    let mut hw_rng = Rng::new(p.RNG, Irqs);
    let mut seed = [0u8; 32];
    hw_rng.fill_bytes(&mut seed);
    let mut rng = ChaCha20Rng::from_seed(seed);
    drop(hw_rng);

    let device: Device = Ethernet::new(
        PACKETS.take(),
        p.ETH,
        Irqs,
        p.PA1,  // REF_CLK
        p.PA7,  // CRS_DV
        p.PC4,  // RXD0
        p.PC5,  // RXD1
        p.PG13, // TXD0
        p.PB13, // TXD1
        p.PG11, // TX_EN
        net::MAC,
        p.ETH_SMA,
        p.PA2, // MDIO
        p.PC1, // MDC
    );
    let [a, b, c, d] = net::ADDRESS;
    let net_config = embassy_net::Config::ipv4_static(StaticConfigV4 {
        address: Ipv4Cidr::new(Ipv4Address::new(a, b, c, d), net::PREFIX),
        gateway: net::GATEWAY.map(|[a, b, c, d]| Ipv4Address::new(a, b, c, d)),
        dns_servers: Default::default(),
    });
    let (stack, runner) = embassy_net::new(device, net_config, RESOURCES.take(), rng.next_u64());
    spawner.spawn(defmt::unwrap!(net_task(runner)));

    #[cfg(not(feature = "no-oauth"))]
    let shared = {
        // No clock survives a reset on this build yet: epoch 0, untrusted, until SNTP answers (asked
        // before the snapshot is restored; see the module docs).
        let (rtc, time) = Rtc::new(p.RTC, RtcConfig::default());
        let uptime = embassy_time::Instant::now().as_secs();
        let (epoch, source) = match rtc_unix(&rtc, &time) {
            Some(unix) => (unix.saturating_sub(uptime), crate::clock::ClockSource::Board),
            None => (0, crate::clock::ClockSource::Untrusted),
        };
        RTC.lock(|r| *r.borrow_mut() = Some(rtc));
        defmt::info!("clock: {} at boot", source.name());
        let (epoch, source) = match net::SNTP_SERVER {
            Some(server) => crate::sntp::boot_clock(stack, server, epoch, source).await,
            None => (epoch, source),
        };
        if source == crate::clock::ClockSource::Sntp {
            set_rtc(epoch.saturating_add(embassy_time::Instant::now().as_secs()));
        }
        let settings = oauth2_devices::provider::Config::new(net::VERIFICATION_URI);
        let mut gw = defmt::unwrap!(server::build(settings, rng, epoch, source));
        let flash = flash::StoreFlash::new(Flash::new_blocking(p.FLASH));
        let store = defmt::unwrap!(crate::persist::open(&mut gw, flash, net::LAYOUT, SNAPSHOT.take()).await);
        let shared: &'static Shared = SHARED.init(Shared::new(gw));
        spawner.spawn(defmt::unwrap!(persist_task(shared, store)));
        if let Some(server) = net::SNTP_SERVER {
            let set = source == crate::clock::ClockSource::Sntp;
            spawner.spawn(defmt::unwrap!(crate::sntp::sntp_task(shared, stack, server, set, set_rtc)));
        }
        shared
    };
    #[cfg(feature = "no-oauth")]
    let shared: &'static Shared = {
        let _ = rng;
        SHARED.init(Shared::new())
    };

    let settings: &'static Settings = SETTINGS.init(Settings {
        port: net::PORT,
        read_timeout: Duration::from_secs(config::READ_TIMEOUT_SECS),
        #[cfg(not(feature = "no-oauth"))]
        http: oauth2_devices::http::HttpConfig {
            realm: "oauth2-devices embassy gateway",
            max_head: config::MAX_HEAD,
            max_body: config::MAX_BODY,
            ..oauth2_devices::http::HttpConfig::new(net::ISSUER)
        },
    });
    for (id, bufs) in BUFFERS.take().iter_mut().enumerate() {
        spawner.spawn(defmt::unwrap!(server::http_task(id, stack, shared, settings, bufs)));
    }
    stack.wait_config_up().await;
    defmt::info!("listening on {} ({} sockets)", net::ISSUER, config::SOCKETS);
}
