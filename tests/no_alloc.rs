//! Proves the whole flow makes zero heap allocations: a counting global allocator wraps the system one,
//! and the scenario runs between two readings of the counter.
use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};

#[path = "common/flow.rs"]
mod flow;

struct Counting;

static ALLOCATIONS: AtomicUsize = AtomicUsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::SeqCst);
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

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
    let before = ALLOCATIONS.load(Ordering::SeqCst);
    let result = flow::run(&mut sink);
    let after = ALLOCATIONS.load(Ordering::SeqCst);
    assert_eq!(result, Ok(()), "{}", sink.0);
    assert_eq!(after - before, 0, "allocations during the flow");
    // The counter works: a Vec allocates.
    let v: Vec<u8> = Vec::with_capacity(8);
    assert!(ALLOCATIONS.load(Ordering::SeqCst) > after);
    drop(v);
}
