//! The embassy-time driver of the mps2-an386 board, and its cycle counter.
//!
//! - **Time base**: SysTick counts the 25 MHz core clock; `systick-timer` extends it to 64 bits
//!   (wrap counting with the pending-bit check). The reload is the largest SysTick allows (2^24 cycles,
//!   0.67 s), so the wrap interrupt is rare and the count survives the emulator's thread being
//!   descheduled for up to that long (one missed wrap is recovered). 64 bits of cycles last 23 000 years.
//! - **Wake-ups**: embassy's own timer queue (`embassy-time-queue-utils`, the queue integrated in the
//!   executor's tasks): one entry per waiting task, no fixed number of slots to run out of however many
//!   deadlines embassy-net and the socket tasks set.
//! - **Alarm**: the CMSDK APB TIMER0 (`0x4000_0000`, interrupt 8, also clocked at 25 MHz) counts down
//!   once to the next wake-up. A late alarm only delays a wake-up; it never moves the time base.
//!
//! Under `qemu-system-arm -icount shift=0` every instruction advances the virtual clock by 1 ns, so
//! [`virtual_ns`] of a stretch of code is its instruction count (within one 40 ns tick).

use core::cell::RefCell;
use core::ptr::write_volatile;

use cortex_m::interrupt::InterruptNumber;
use cortex_m::peripheral::{NVIC, SYST};
use cortex_m_rt::exception;
use embassy_sync::blocking_mutex::raw::CriticalSectionRawMutex;
use embassy_sync::blocking_mutex::Mutex;
use embassy_time_driver::{Driver, TICK_HZ};
use embassy_time_queue_utils::Queue;
use systick_timer::Timer;

/// The board's system clock (SysTick and the APB timers).
pub const SYSCLK_HZ: u64 = 25_000_000;
const CYCLES_PER_TICK: u64 = SYSCLK_HZ / TICK_HZ;
const _: () = assert!(SYSCLK_HZ.is_multiple_of(TICK_HZ), "embassy's tick rate must divide the system clock");
/// Nanoseconds per cycle (40 at 25 MHz).
#[cfg(feature = "probe")]
const NS_PER_CYCLE: u64 = 1_000_000_000 / SYSCLK_HZ;

/// SysTick's largest reload value.
const RELOAD: u32 = 0x00FF_FFFF;
/// The 64-bit cycle count (`tick_hz` = the clock itself: no scaling).
static CYCLES: Timer = Timer::new(SYSCLK_HZ, RELOAD, SYSCLK_HZ);

/// TIMER0 registers.
const TIMER0: usize = 0x4000_0000;
const CTRL: usize = 0x00;
const VALUE: usize = 0x04;
const RELOAD_REG: usize = 0x08;
const INTCLEAR: usize = 0x0C;
const CTRL_ENABLE: u32 = 1 << 0;
const CTRL_IRQ_ENABLE: u32 = 1 << 3;
/// The interrupt of TIMER0 on the mps2-an386 NVIC.
pub const TIMER0_IRQ: u16 = 8;
/// The longest single countdown; a later wake-up is re-armed when it ends (85 s).
const MAX_COUNTDOWN: u64 = 1 << 31;

#[derive(Clone, Copy)]
struct Timer0Irq;

// SAFETY: 8 is TIMER0's line on this board, a valid device interrupt number.
unsafe impl InterruptNumber for Timer0Irq {
    fn number(self) -> u16 {
        TIMER0_IRQ
    }
}

fn timer0(offset: usize, value: u32) {
    // SAFETY: TIMER0 + offset is a register of the CMSDK APB timer 0 of the board's memory map (a device
    // region, not RAM); it is written only from `arm` and `stop_alarm`, both inside critical sections, or
    // before the interrupt is unmasked.
    unsafe { write_volatile((TIMER0 + offset) as *mut u32, value) }
}

fn stop_alarm() {
    timer0(CTRL, 0);
    timer0(INTCLEAR, 1);
}

struct Mps2Time {
    queue: Mutex<CriticalSectionRawMutex, RefCell<Queue>>,
}

embassy_time_driver::time_driver_impl!(static DRIVER: Mps2Time = Mps2Time {
    queue: Mutex::new(RefCell::new(Queue::new())),
});

impl Mps2Time {
    /// Wakes the tasks whose time has come and counts TIMER0 down to the next one. Called inside a
    /// critical section (it holds the queue).
    fn arm(&self, queue: &mut Queue) {
        stop_alarm();
        let now = self.now();
        let next = queue.next_expiration(now);
        if next == u64::MAX {
            return;
        }
        // `next_expiration` returns a time after `now` (earlier ones were woken).
        let cycles = next.saturating_sub(now).saturating_mul(CYCLES_PER_TICK).clamp(1, MAX_COUNTDOWN);
        // Reload 0: one countdown, then the timer holds at zero (and is stopped in the handler anyway).
        timer0(RELOAD_REG, 0);
        timer0(VALUE, cycles as u32);
        timer0(CTRL, CTRL_ENABLE | CTRL_IRQ_ENABLE);
    }
}

impl Driver for Mps2Time {
    fn now(&self) -> u64 {
        CYCLES.now() / CYCLES_PER_TICK
    }

    fn schedule_wake(&self, at: u64, waker: &core::task::Waker) {
        critical_section::with(|cs| {
            let mut queue = self.queue.borrow(cs).borrow_mut();
            if queue.schedule_wake(at, waker) {
                self.arm(&mut queue);
            }
        })
    }
}

/// Starts the time base and the alarm. Call once, first thing.
pub fn start(syst: &mut SYST) {
    stop_alarm();
    CYCLES.start(syst);
    NVIC::unpend(Timer0Irq);
    // SAFETY: the TIMER0 handler (`on_timer0`) takes the queue inside a critical section, like every
    // other user of it.
    unsafe { NVIC::unmask(Timer0Irq) };
}

/// TIMER0's interrupt: the next wake-up is due. Called by the board's interrupt dispatch.
pub fn on_timer0() {
    critical_section::with(|cs| DRIVER.arm(&mut DRIVER.queue.borrow(cs).borrow_mut()))
}

#[exception]
fn SysTick() {
    CYCLES.systick_handler();
}

/// Core clock cycles since [`start`].
#[cfg(feature = "probe")]
pub fn cycles() -> u64 {
    CYCLES.now()
}

/// Cycles as nanoseconds of the emulator's virtual clock (instructions under `-icount shift=0`).
#[cfg(feature = "probe")]
pub const fn virtual_ns(cycles: u64) -> u64 {
    cycles.saturating_mul(NS_PER_CYCLE)
}
