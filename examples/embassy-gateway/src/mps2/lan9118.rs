//! An embassy-net driver for the SMSC LAN9118 Ethernet controller of the mps2-an386 board (memory-mapped
//! at `0x4020_0000`, interrupt 13), through `embassy-net-driver-channel`: the stack sees a
//! `Device` with bounded packet buffers, and [`run`] moves frames between those buffers and the chip.
//!
//! Receive is interrupt-driven: the chip raises `RSFL` when a status word enters the RX status FIFO; the
//! handler masks the chip's interrupts and wakes [`run`], which drains every waiting frame into the
//! channel's receive buffers (waiting for one when all are full: the chip's own FIFO holds the rest),
//! then clears the status and unmasks. Transmit copies a frame from the channel into the TX data FIFO
//! (two command words, then the data words) once it has room. The word-level rules live in
//! [`framing`] and are unit-tested on the host; this file holds the register access, the only `unsafe`
//! code of the driver.
//!
//! Register map used (32-bit registers, offsets from the base):
//!
//! | offset | register | use |
//! |---|---|---|
//! | `0x00` | `RX_DATA_FIFO` | read: the next data word of the current frame |
//! | `0x20` | `TX_DATA_FIFO` | write: command A, command B, then data words |
//! | `0x40` | `RX_STATUS_FIFO` | read: pop one frame's status word |
//! | `0x48` | `TX_STATUS_FIFO` | read: pop one sent frame's status word |
//! | `0x54` | `IRQ_CFG` | bit 8 `IRQ_EN`, bit 4 `IRQ_POL` (active high), bit 0 `IRQ_TYPE` (push-pull) |
//! | `0x58` | `INT_STS` | pending interrupt causes, write 1 to clear; bit 3 `RSFL` |
//! | `0x5C` | `INT_EN` | interrupt causes routed to the pin (same bits) |
//! | `0x64` | `BYTE_TEST` | reads `0x8765_4321` when the chip is there and the bus order right |
//! | `0x68` | `FIFO_INT` | FIFO levels for the interrupts; RX status level 0: one frame raises `RSFL` |
//! | `0x6C` | `RX_CFG` | end alignment and start offset of RX data (0 and 0 here) |
//! | `0x70` | `TX_CFG` | bit 1 `TX_ON`, bit 2 `TXSAO` (the TX status FIFO may overrun) |
//! | `0x74` | `HW_CFG` | bit 0 `SRST`: soft reset, self-clearing |
//! | `0x7C` | `RX_FIFO_INF` | bits 23:16 status words waiting |
//! | `0x80` | `TX_FIFO_INF` | bits 23:16 TX status words waiting, 15:0 free data bytes |
//! | `0x84` | `PMT_CTRL` | bit 0 `READY` after reset |
//! | `0xA4` | `MAC_CSR_CMD` | bit 31 busy, bit 30 read, bits 7:0 MAC register: indirect MAC access |
//! | `0xA8` | `MAC_CSR_DATA` | the data of that access |
//!
//! MAC registers (through `MAC_CSR_*`): 1 `MAC_CR` (bit 3 `TXEN`, bit 2 `RXEN`, bit 20 full duplex, bit 18
//! promiscuous, left off: only our address and broadcast pass), 2 `ADDRH`, 3 `ADDRL`, 6 `MII_ACC`
//! (PHY address 15:11, PHY register 10:6, bit 1 write, bit 0 busy), 7 `MII_DATA`. The internal PHY is
//! at address 1; its register 1 bit 2 is the link.

pub mod framing;

use core::ptr::{read_volatile, write_volatile};
use core::sync::atomic::{AtomicBool, Ordering};

use cortex_m::interrupt::InterruptNumber;
use cortex_m::peripheral::NVIC;
use embassy_futures::select::{select, select3, Either, Either3};
use embassy_net_driver_channel as ch;
use embassy_net_driver_channel::driver::LinkState;
use embassy_sync::blocking_mutex::raw::CriticalSectionRawMutex;
use embassy_sync::signal::Signal;
use embassy_time::{Duration, Ticker, Timer};

use framing::{FrameError, MAX_FRAME};

/// The MTU of the channel's packet buffers: a whole Ethernet frame without its check sequence.
pub const MTU: usize = MAX_FRAME;
/// The network device embassy-net drives.
pub type Device = ch::Device<'static, MTU>;
/// The channel end [`run`] serves.
pub type Runner = ch::Runner<'static, MTU>;

/// The LAN9118's interrupt line on the mps2-an386 NVIC.
pub const IRQ_NUMBER: u16 = 13;

const BASE: usize = 0x4020_0000;

const RX_DATA_FIFO: usize = 0x00;
const TX_DATA_FIFO: usize = 0x20;
const RX_STATUS_FIFO: usize = 0x40;
const TX_STATUS_FIFO: usize = 0x48;
const IRQ_CFG: usize = 0x54;
const INT_STS: usize = 0x58;
const INT_EN: usize = 0x5C;
const BYTE_TEST: usize = 0x64;
const FIFO_INT: usize = 0x68;
const RX_CFG: usize = 0x6C;
const TX_CFG: usize = 0x70;
const HW_CFG: usize = 0x74;
const RX_FIFO_INF: usize = 0x7C;
const TX_FIFO_INF: usize = 0x80;
const PMT_CTRL: usize = 0x84;
const MAC_CSR_CMD: usize = 0xA4;
const MAC_CSR_DATA: usize = 0xA8;

const BYTE_TEST_VALUE: u32 = 0x8765_4321;
const IRQ_EN: u32 = 1 << 8;
const IRQ_POL: u32 = 1 << 4;
const IRQ_TYPE: u32 = 1 << 0;
const INT_RSFL: u32 = 1 << 3;
const TX_ON: u32 = 1 << 1;
const TXSAO: u32 = 1 << 2;
const HW_SRST: u32 = 1 << 0;
const PMT_READY: u32 = 1 << 0;
const CSR_BUSY: u32 = 1 << 31;
const CSR_READ: u32 = 1 << 30;

const MAC_CR: u32 = 1;
const MAC_ADDRH: u32 = 2;
const MAC_ADDRL: u32 = 3;
const MAC_MII_ACC: u32 = 6;
const MAC_MII_DATA: u32 = 7;
const MAC_CR_FDPX: u32 = 1 << 20;
const MAC_CR_TXEN: u32 = 1 << 3;
const MAC_CR_RXEN: u32 = 1 << 2;
const MII_BUSY: u32 = 1 << 0;
const PHY_ADDRESS: u32 = 1;
const PHY_BMSR: u32 = 1;
const BMSR_LINK: u32 = 1 << 2;

/// Register polls (reset, MAC and MII accesses) give up after this many reads.
const POLL_LIMIT: u32 = 100_000;
/// How long a frame may wait for room in the TX data FIFO before it is dropped: 20 polls 50 us apart
/// (a full frame leaves the FIFO in 120 us at 100 Mbit/s).
const TX_ROOM_POLLS: u32 = 20;
/// How often the PHY's link bit is read.
const LINK_POLL: Duration = Duration::from_secs(1);

/// Raised by the interrupt handler; [`run`] waits on it.
static IRQ: Signal<CriticalSectionRawMutex, ()> = Signal::new();
/// Only one driver may own the chip.
static TAKEN: AtomicBool = AtomicBool::new(false);

/// Why the chip could not be brought up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InitError {
    /// `BYTE_TEST` did not read back its fixed pattern: no LAN9118 at the address.
    Absent(u32),
    /// The soft reset or an indirect register access did not complete.
    Timeout,
    /// [`Lan9118::new`] was called twice.
    Taken,
}

impl core::fmt::Display for InitError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Self::Absent(v) => write!(f, "no LAN9118 (BYTE_TEST reads {v:#010x})"),
            Self::Timeout => f.write_str("LAN9118 reset or register access timed out"),
            Self::Taken => f.write_str("LAN9118 already in use"),
        }
    }
}

impl core::error::Error for InitError {}

#[derive(Clone, Copy)]
struct Irq;

// SAFETY: 13 is the LAN9118's line on this board, a valid device interrupt number.
unsafe impl InterruptNumber for Irq {
    fn number(self) -> u16 {
        IRQ_NUMBER
    }
}

/// The chip's registers. Holding it is owning the chip (see [`TAKEN`]).
struct Regs(());

impl Regs {
    fn read(&self, offset: usize) -> u32 {
        // SAFETY: BASE + offset is one of the LAN9118's 32-bit registers listed above (a device region
        // of the board's memory map, not RAM); a volatile word access is how the chip is meant to be read.
        unsafe { read_volatile((BASE + offset) as *const u32) }
    }

    fn write(&self, offset: usize, value: u32) {
        // SAFETY: as in `read`; writes to these registers affect only the chip.
        unsafe { write_volatile((BASE + offset) as *mut u32, value) }
    }

    /// Waits (bounded) for `bit` of `offset` to read as `set`.
    fn poll(&self, offset: usize, bit: u32, set: bool) -> Result<u32, InitError> {
        for _ in 0..POLL_LIMIT {
            let v = self.read(offset);
            if (v & bit != 0) == set {
                return Ok(v);
            }
        }
        Err(InitError::Timeout)
    }

    fn mac_write(&self, reg: u32, value: u32) -> Result<(), InitError> {
        self.poll(MAC_CSR_CMD, CSR_BUSY, false)?;
        self.write(MAC_CSR_DATA, value);
        self.write(MAC_CSR_CMD, CSR_BUSY | reg);
        self.poll(MAC_CSR_CMD, CSR_BUSY, false).map(|_| ())
    }

    fn mac_read(&self, reg: u32) -> Result<u32, InitError> {
        self.poll(MAC_CSR_CMD, CSR_BUSY, false)?;
        self.write(MAC_CSR_CMD, CSR_BUSY | CSR_READ | reg);
        self.poll(MAC_CSR_CMD, CSR_BUSY, false)?;
        Ok(self.read(MAC_CSR_DATA))
    }

    fn phy_read(&self, reg: u32) -> Result<u32, InitError> {
        let busy = |r: &Self| -> Result<(), InitError> {
            for _ in 0..POLL_LIMIT {
                if r.mac_read(MAC_MII_ACC)? & MII_BUSY == 0 {
                    return Ok(());
                }
            }
            Err(InitError::Timeout)
        };
        busy(self)?;
        self.mac_write(MAC_MII_ACC, (PHY_ADDRESS << 11) | (reg << 6) | MII_BUSY)?;
        busy(self)?;
        Ok(self.mac_read(MAC_MII_DATA)? & 0xFFFF)
    }
}

/// Frames dropped or failed, for the log.
#[derive(Default)]
struct Counters {
    rx_dropped: u32,
    tx_dropped: u32,
    tx_errors: u32,
}

/// The LAN9118, reset and configured.
pub struct Lan9118 {
    regs: Regs,
    tag: u16,
    counters: Counters,
}

impl Lan9118 {
    /// Resets the chip, sets its MAC address, enables receive and transmit, and unmasks its interrupt.
    pub fn new(mac: [u8; 6]) -> Result<Self, InitError> {
        if TAKEN.swap(true, Ordering::AcqRel) {
            return Err(InitError::Taken);
        }
        let regs = Regs(());
        let test = regs.read(BYTE_TEST);
        if test != BYTE_TEST_VALUE {
            return Err(InitError::Absent(test));
        }
        regs.write(HW_CFG, HW_SRST);
        regs.poll(HW_CFG, HW_SRST, false)?;
        regs.poll(PMT_CTRL, PMT_READY, true)?;

        let (low, high) = framing::mac_registers(mac);
        regs.mac_write(MAC_ADDRL, low)?;
        regs.mac_write(MAC_ADDRH, high)?;
        regs.mac_write(MAC_CR, MAC_CR_FDPX | MAC_CR_TXEN | MAC_CR_RXEN)?;
        regs.write(TX_CFG, TX_ON | TXSAO);
        regs.write(RX_CFG, 0);
        // TX data-available level 0x48 (reset value), TX status level 0, RX status level 0.
        regs.write(FIFO_INT, 0x4800_0000);
        regs.write(INT_STS, u32::MAX);
        regs.write(INT_EN, 0);
        regs.write(IRQ_CFG, IRQ_EN | IRQ_POL | IRQ_TYPE);
        NVIC::unpend(Irq);
        // SAFETY: the handler (`on_interrupt`, dispatched from the board's DefaultHandler) only masks the
        // chip and raises a signal; it shares no data with code it could interrupt other than that signal,
        // which is interrupt-safe.
        unsafe { NVIC::unmask(Irq) };
        Ok(Self { regs, tag: 0, counters: Counters::default() })
    }

    fn link_up(&self) -> bool {
        self.regs.phy_read(PHY_BMSR).is_ok_and(|bmsr| bmsr & BMSR_LINK != 0)
    }

    fn rx_pending(&self) -> bool {
        framing::rx_status_used(self.regs.read(RX_FIFO_INF)) > 0
    }

    /// Clears the receive cause and routes it to the interrupt line again.
    fn listen(&self) {
        self.regs.write(INT_STS, INT_RSFL);
        self.regs.write(INT_EN, INT_RSFL);
    }

    /// Moves the next frame into `buf`: `Some(len)`, or `None` when it was dropped. Call only when
    /// [`Self::rx_pending`]: every data word of the frame is read either way.
    fn receive(&mut self, buf: &mut [u8]) -> Option<usize> {
        let status = self.regs.read(RX_STATUS_FIFO);
        let frame = framing::rx_frame(status, buf.len());
        let len = *frame.verdict.as_ref().unwrap_or(&0);
        for i in 0..frame.words {
            let word = self.regs.read(RX_DATA_FIFO);
            framing::rx_store(buf, len, i, word);
        }
        match frame.verdict {
            Ok(len) => Some(len),
            Err(why) => {
                self.counters.rx_dropped = self.counters.rx_dropped.wrapping_add(1);
                debug!("lan9118: frame dropped ({}; {} dropped so far)", why, self.counters.rx_dropped);
                None
            }
        }
    }

    /// Writes `frame` into the TX data FIFO once it has room (bounded wait), then collects the status
    /// words of frames already sent.
    async fn transmit(&mut self, frame: &[u8]) {
        let commands = match framing::tx_commands(frame.len(), self.tag) {
            Ok(c) => c,
            Err(why) => return self.tx_drop(why),
        };
        let need = framing::tx_space(frame.len());
        let mut polls = 0;
        while framing::tx_data_free(self.regs.read(TX_FIFO_INF)) < need {
            polls += 1;
            if polls > TX_ROOM_POLLS {
                return self.tx_drop(FrameError::TooLong);
            }
            Timer::after_micros(50).await;
        }
        self.tag = self.tag.wrapping_add(1);
        for word in commands.into_iter().chain(framing::tx_words(frame)) {
            self.regs.write(TX_DATA_FIFO, word);
        }
        // At most 255 status words can wait (an 8-bit field).
        let waiting = framing::tx_status_used(self.regs.read(TX_FIFO_INF));
        for _ in 0..waiting {
            if framing::tx_failed(self.regs.read(TX_STATUS_FIFO)) {
                self.counters.tx_errors = self.counters.tx_errors.wrapping_add(1);
                warn!("lan9118: transmit error ({} so far)", self.counters.tx_errors);
            }
        }
    }

    fn tx_drop(&mut self, why: FrameError) {
        self.counters.tx_dropped = self.counters.tx_dropped.wrapping_add(1);
        warn!("lan9118: frame not sent ({}; {} so far)", why, self.counters.tx_dropped);
    }
}

/// The chip's interrupt: masks it and wakes [`run`] (which unmasks it once the FIFO is drained).
/// Called by the board's interrupt dispatch for [`IRQ_NUMBER`].
pub fn on_interrupt() {
    // The chip's line is level-triggered: it stays asserted until `run` clears the cause, so mask it here.
    Regs(()).write(INT_EN, 0);
    IRQ.signal(());
}

/// Serves the channel: frames in from the chip, frames out to it, and the link state. Never returns.
pub async fn run(mut chip: Lan9118, runner: Runner) -> ! {
    let (state, mut rx, mut tx) = runner.split();
    let mut link = chip.link_up();
    state.set_link_state(if link { LinkState::Up } else { LinkState::Down });
    info!("lan9118: link {}", if link { "up" } else { "down" });
    let mut ticker = Ticker::every(LINK_POLL);
    loop {
        if chip.rx_pending() {
            // A frame waits in the chip: move it as soon as the stack has a buffer, sending meanwhile.
            match select(rx.rx_buf(), tx.tx_buf()).await {
                Either::First(buf) => {
                    if let Some(len) = chip.receive(buf) {
                        rx.rx_done(len);
                    }
                }
                Either::Second(frame) => {
                    chip.transmit(frame).await;
                    tx.tx_done();
                }
            }
            continue;
        }
        chip.listen();
        // A frame that arrived before `listen` cleared the cause is seen here; one after it raises the
        // interrupt (which may then wake us once more for nothing).
        if chip.rx_pending() {
            continue;
        }
        match select3(IRQ.wait(), tx.tx_buf(), ticker.next()).await {
            Either3::First(()) => {}
            Either3::Second(frame) => {
                chip.transmit(frame).await;
                tx.tx_done();
            }
            Either3::Third(()) => {
                let now = chip.link_up();
                if now != link {
                    link = now;
                    state.set_link_state(if link { LinkState::Up } else { LinkState::Down });
                    info!("lan9118: link {}", if link { "up" } else { "down" });
                }
            }
        }
    }
}
