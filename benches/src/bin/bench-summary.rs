//! Prints the medians of the last `cargo bench -p oauth2-devices-benches` run, read from criterion's
//! `estimates.json` files, and checks the speed targets of BENCHMARKS.md.
//!
//! `cargo run -p oauth2-devices-benches --bin bench-summary` (criterion's output is in
//! `$CARGO_TARGET_DIR/criterion`, else `target/criterion` of the workspace).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

fn criterion_dir() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../target"));
    target.join("criterion")
}

/// `full_id` → (median, mean, median's 95 % interval), in nanoseconds.
fn collect(dir: &Path, out: &mut BTreeMap<String, (f64, f64, f64, f64)>) {
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    for entry in entries.flatten() {
        let path = entry.path();
        if !path.is_dir() {
            continue;
        }
        if path.file_name().is_some_and(|n| n == "new") {
            let read = |f: &str| -> Option<serde_json::Value> {
                serde_json::from_str(&std::fs::read_to_string(path.join(f)).ok()?).ok()
            };
            let (Some(bench), Some(est)) = (read("benchmark.json"), read("estimates.json")) else { continue };
            let Some(id) = bench["full_id"].as_str() else { continue };
            let num = |v: &serde_json::Value| v.as_f64().unwrap_or(f64::NAN);
            let median = &est["median"];
            out.insert(
                id.to_owned(),
                (
                    num(&median["point_estimate"]),
                    num(&est["mean"]["point_estimate"]),
                    num(&median["confidence_interval"]["lower_bound"]),
                    num(&median["confidence_interval"]["upper_bound"]),
                ),
            );
        } else {
            collect(&path, out);
        }
    }
}

fn time(ns: f64) -> String {
    if ns >= 1000.0 {
        format!("{:.2} µs", ns / 1000.0)
    } else {
        format!("{ns:.0} ns")
    }
}

fn main() -> ExitCode {
    let dir = criterion_dir();
    let mut all = BTreeMap::new();
    collect(&dir, &mut all);
    if all.is_empty() {
        eprintln!("no criterion results in {}; run `cargo bench -p oauth2-devices-benches` first", dir.display());
        return ExitCode::FAILURE;
    }
    println!("{:<46} {:>10} {:>23} {:>10}", "benchmark", "median", "median 95% CI", "mean");
    for (id, (median, mean, lo, hi)) in &all {
        println!(
            "{id:<46} {:>10} {:>23} {:>10}",
            time(*median),
            format!("[{} .. {}]", time(*lo), time(*hi)),
            time(*mean)
        );
    }
    let median = |id: &str| all.get(id).map(|v| v.0);
    println!();
    if let Some(poll) = median("http/token_poll_pending") {
        let verdict = if poll < 2000.0 { "met" } else { "MISSED" };
        println!("target: HTTP token poll < 2 µs median: {verdict} ({})", time(poll));
    }
    if let Some(bearer) = median("bearer_check/check_bearer") {
        let verdict = if bearer < 400.0 { "met" } else { "MISSED" };
        println!("target: bearer check < 400 ns median: {verdict} ({})", time(bearer));
        if let Some(jwt) = median("reference/jsonwebtoken_hs256_verify") {
            let ratio = jwt / bearer;
            let verdict = if ratio >= 3.0 { "met" } else { "MISSED" };
            println!("target: bearer check >= 3x faster than jsonwebtoken HS256 verify: {verdict} ({ratio:.1}x)");
        }
    }
    ExitCode::SUCCESS
}
