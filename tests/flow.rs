//! The shared device-flow scenario on the host (the same code runs on a Cortex-M4 under QEMU).
#[path = "common/flow.rs"]
mod flow;

#[test]
fn whole_flow_on_the_host() {
    let mut out = String::new();
    let result = flow::run(&mut out);
    print!("{out}");
    assert_eq!(result, Ok(()), "{out}");
    assert!(out.contains("expiry: expired_token"));
}
