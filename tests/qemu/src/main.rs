//! Bare-metal Cortex-M4 (QEMU `mps2-an386`) run of the shared device-flow
//! scenario in `tests/common/flow.rs`.
//!
//! There is deliberately **no global allocator** in this binary: if the
//! library (or anything it pulls in) needed `alloc`, this would fail to link.
//! Output goes to the host through ARM semihosting, and the semihosting exit
//! call makes QEMU's own exit status report the result (0 = ok, 1 = failure).

#![no_std]
#![no_main]

use core::fmt::Write as _;
use core::panic::PanicInfo;

use cortex_m_rt::{entry, exception, ExceptionFrame};
use cortex_m_semihosting::{debug, hio};

#[path = "../../common/flow.rs"]
mod flow;

/// Semihosting stdout as a `core::fmt::Write` sink.
///
/// A failed host write is swallowed rather than turned into `fmt::Error`, so
/// a flaky debugger link can never be mistaken for a flow failure.
struct HostOut(Option<hio::HostStream>);

impl HostOut {
    fn open() -> Self {
        HostOut(hio::hstdout().ok())
    }
}

impl core::fmt::Write for HostOut {
    fn write_str(&mut self, s: &str) -> core::fmt::Result {
        if let Some(stream) = self.0.as_mut() {
            let _ = stream.write_all(s.as_bytes());
        }
        Ok(())
    }
}

/// Ends the QEMU session with the given status. Never returns.
fn exit(ok: bool) -> ! {
    debug::exit(if ok { debug::EXIT_SUCCESS } else { debug::EXIT_FAILURE });
    // Only reached if the debugger chose to resume us.
    loop {
        cortex_m::asm::bkpt();
    }
}

#[entry]
fn main() -> ! {
    let mut out = HostOut::open();
    let _ = writeln!(out, "oauth2-devices qemu: cortex-m4 (mps2-an386), no heap allocator");

    match flow::run(&mut out) {
        Ok(()) => {
            let _ = writeln!(out, "QEMU FLOW OK");
            exit(true)
        }
        Err(reason) => {
            let _ = writeln!(out, "QEMU FLOW FAILED: {reason}");
            exit(false)
        }
    }
}

#[panic_handler]
fn panic(info: &PanicInfo) -> ! {
    cortex_m::interrupt::disable();
    let mut out = HostOut::open();
    let _ = writeln!(out, "QEMU FLOW FAILED: {info}");
    exit(false)
}

#[exception]
unsafe fn HardFault(frame: &ExceptionFrame) -> ! {
    let mut out = HostOut::open();
    let _ = writeln!(out, "QEMU FLOW FAILED: HardFault\n{frame:?}");
    exit(false)
}

#[exception]
unsafe fn DefaultHandler(irqn: i16) {
    let mut out = HostOut::open();
    let _ = writeln!(out, "QEMU FLOW FAILED: unexpected exception/interrupt {irqn}");
    exit(false)
}
