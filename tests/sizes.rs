//! The memory figures stated in the crate docs (src/lib.rs, "Capacities and memory"), checked on the
//! host; the same check runs on the Cortex-M4 in the QEMU run (tests/common/flow.rs).
#[path = "common/flow.rs"]
mod flow;

#[test]
fn documented_sizes_hold() {
    let s = flow::sizes();
    println!("{s:?}");
    assert_eq!(s, flow::EXPECTED);
    assert!(s.pending_grant <= 32, "the issue's budget: at most 32 bytes per pending grant");
}
