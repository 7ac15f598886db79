//! Prints the RAM figures of the sample provider for the host this runs on.
//!
//! `cargo run -p oauth2-devices-benches --bin footprint` (or `bash .ci/footprint.sh`, which also prints
//! the Cortex-M4 figures from the same `sizes.rs`, compiled for thumbv7em and run under QEMU).

use oauth2_devices_benches::sizes;

fn main() {
    let target = format!("{}-{}, {}-bit pointers", std::env::consts::ARCH, std::env::consts::OS, usize::BITS);
    println!("RAM footprint (size_of, bytes) on the host: {target}");
    for (what, bytes) in sizes::rows() {
        println!("  {what:<52} {bytes:>6}");
    }
    let g = sizes::per_grant();
    println!("target: <= 32 B of RAM per pending grant: {} ({g} B)", if g <= 32 { "met" } else { "MISSED" });
    let f = sizes::per_family();
    println!("target: <= 32 B of RAM per token family: {} ({f} B)", if f <= 32 { "met" } else { "MISSED" });
}
