//! Proves the whole flow makes zero heap allocations: a counting global allocator wraps the system one
//! and counts, on the test's own thread only (the test harness allocates on its threads whenever it
//! likes), every allocation made while the scenario runs.
use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

#[path = "common/flow.rs"]
mod flow;

thread_local! {
    static COUNTING: Cell<bool> = const { Cell::new(false) };
    static ALLOCATIONS: Cell<usize> = const { Cell::new(0) };
}

struct Counting;

impl Counting {
    fn note() {
        if COUNTING.with(Cell::get) {
            ALLOCATIONS.with(|n| n.set(n.get() + 1));
        }
    }
}

// SAFETY: every call is forwarded unchanged to the system allocator.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        Self::note();
        unsafe { System.alloc(layout) }
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        Self::note();
        unsafe { System.alloc_zeroed(layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        Self::note();
        unsafe { System.realloc(ptr, layout, new_size) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// Runs `f` and returns its result with the number of allocations this thread made in it.
fn counted<T>(f: impl FnOnce() -> T) -> (T, usize) {
    ALLOCATIONS.with(|n| n.set(0));
    COUNTING.with(|c| c.set(true));
    let out = f();
    COUNTING.with(|c| c.set(false));
    (out, ALLOCATIONS.with(Cell::get))
}

/// A `fmt::Write` sink with a fixed buffer, so printing does not allocate either.
struct Sink(heapless::String<4096>);

impl core::fmt::Write for Sink {
    fn write_str(&mut self, s: &str) -> core::fmt::Result {
        self.0.push_str(s).map_err(|_| core::fmt::Error)
    }
}

#[test]
fn the_whole_flow_makes_no_heap_allocation() {
    let mut sink = Sink(heapless::String::new());
    let (result, allocations) = counted(|| flow::run(&mut sink));
    assert_eq!(result, Ok(()), "{}", sink.0);
    assert_eq!(allocations, 0, "allocations during the flow");
    // The counter works: a Vec allocates.
    let (v, n) = counted(|| Vec::<u8>::with_capacity(8));
    assert_eq!(n, 1);
    drop(v);
}
