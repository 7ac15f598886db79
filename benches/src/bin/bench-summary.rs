//! Prints the medians of the last `cargo bench -p oauth2-devices-benches` run, read from criterion's
//! `estimates.json` files, and checks the speed targets of BENCHMARKS.md: ratios to the HMAC-SHA256
//! reference (`reference/hmac_sha256_prekeyed`) of the same run.
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
    // The targets are ratios to the bare HMAC-SHA256 of the same run: the machine's speed drifts, and
    // every benchmark of one run sees the same drift.
    let Some(floor) = median("reference/hmac_sha256_prekeyed") else {
        println!("no reference/hmac_sha256_prekeyed in this run: the targets (ratios to it) are not checked");
        return ExitCode::SUCCESS;
    };
    println!("reference: HMAC-SHA256, pre-keyed: {}", time(floor));
    let targets = [
        ("bearer check", "bearer_check/check_bearer", 1.3),
        ("HTTP token poll", "http/token_poll_pending", 5.0),
        ("protected resource", "http/protected_resource", 3.5),
    ];
    for (what, id, limit) in targets {
        let Some(t) = median(id) else { continue };
        let ratio = t / floor;
        let verdict = if ratio <= limit { "met" } else { "MISSED" };
        println!("target: {what} <= {limit}x the HMAC reference: {verdict} ({}, {ratio:.2}x)", time(t));
    }
    for (what, id) in [
        ("jsonwebtoken HS256 verify", "reference/jsonwebtoken_hs256_verify"),
        ("HTTP token exchange", "http/token_exchange"),
        ("HTTP device authorization", "http/device_authorization"),
    ] {
        if let Some(t) = median(id) {
            println!("figure: {what}: {}, {:.2}x the HMAC reference", time(t), t / floor);
        }
    }
    ExitCode::SUCCESS
}
