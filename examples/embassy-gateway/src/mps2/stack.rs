//! The deepest the stack has been since boot. cortex-m-rt (feature `paint-stack`) fills the stack region
//! with `STACK_PAINT_VALUE` before `main`; every word the program has used since lost that value, so
//! the first unpainted word from the bottom marks the deepest point. The region is the 64 KiB below
//! the statics (see `memory-mps2.x`): an overflow leaves RAM instead of running into `.bss`.

use cortex_m_rt::STACK_PAINT_VALUE;

extern "C" {
    /// The top of the stack region (the initial stack pointer), from the linker script.
    static _stack_start: u32;
    /// Its bottom.
    static _stack_end: u32;
}

/// Stack use in bytes.
#[derive(Debug, Clone, Copy)]
pub struct StackUse {
    /// The deepest the stack has reached (a lower bound if the program wrote the paint value itself).
    pub used: usize,
    /// The size of the stack region.
    pub size: usize,
}

/// Scans the stack region from its bottom for the first word no longer painted.
pub fn usage() -> StackUse {
    let bottom = core::ptr::addr_of!(_stack_end) as usize;
    let top = core::ptr::addr_of!(_stack_start) as usize;
    let mut at = bottom;
    while at < top {
        // SAFETY: `bottom..top` is the stack region the linker script reserves, word-aligned (cortex-m-rt
        // asserts it). The words below the deepest stack pointer are owned by no live frame; the scan
        // stops at the first word a frame has written, and reads it only as a plain value.
        let word = unsafe { core::ptr::read_volatile(at as *const u32) };
        if word != STACK_PAINT_VALUE {
            break;
        }
        at += 4;
    }
    StackUse { used: top - at, size: top - bottom }
}
