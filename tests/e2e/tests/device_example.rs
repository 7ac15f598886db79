//! The crate's `device` example runs the flow against the host gateway: it prints the user code, polls,
//! and once a user approves on the verification page it calls `/api/me` and exits 0; a denial exits 2.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use oauth2_devices_e2e::{decide, example_bin, Gateway};

fn run_device(gw: &Gateway, action: &'static str, extra: &[&str]) -> (i32, Vec<String>) {
    let mut child = Command::new(example_bin("device"))
        .args(["--base", &gw.base, "--max-wait", "60"])
        .args(extra)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let (tx, rx) = mpsc::channel();
    let out = child.stdout.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(out).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let mut lines = Vec::new();
    let mut decided = false;
    while let Ok(line) = rx.recv_timeout(Duration::from_secs(90)) {
        if !decided && line.contains("enter the code") {
            let code = line.rsplit(' ').next().unwrap().to_string();
            let r = decide(&gw.addr, &code, action);
            assert_eq!(r.status, 200, "{}", r.text());
            decided = true;
        }
        lines.push(line);
    }
    let status = child.wait().unwrap().code().unwrap_or(-1);
    (status, lines)
}

#[test]
fn the_device_example_gets_a_token_and_calls_the_api() {
    let gw = Gateway::start(&["--interval", "1"]);
    let (status, lines) = run_device(&gw, "approve", &[]);
    let all = lines.join("\n");
    assert_eq!(status, 0, "{all}");
    assert!(all.contains("verification_uri") || all.contains("/activate"), "{all}");
    assert!(all.contains("state: authorized"), "{all}");
    assert!(all.contains("GET /api/me -> 200"), "{all}");
}

#[test]
fn the_device_example_reports_a_denial() {
    let gw = Gateway::start(&["--interval", "1"]);
    let (status, lines) = run_device(&gw, "deny", &[]);
    assert_eq!(status, 2, "{}", lines.join("\n"));
    assert!(lines.iter().any(|l| l.contains("access_denied")));
}

#[test]
fn the_device_example_works_as_a_confidential_client() {
    let gw = Gateway::start(&["--interval", "1"]);
    let (status, lines) = run_device(&gw, "approve", &["--client", "printer-demo", "--secret", "printer-secret"]);
    assert_eq!(status, 0, "{}", lines.join("\n"));
}

/// Every connection of the gateway is held by a client dribbling a request from another address: the
/// device's first requests are answered `503` with `Retry-After`, which it honours, and it gets its
/// token once the head deadline has cut the dribblers.
#[test]
fn the_device_example_waits_out_a_busy_gateway() {
    use std::io::Write as _;
    let gw = Gateway::start(&["--interval", "1", "--max-connections", "2", "--read-timeout", "1"]);
    let to = gw.addr.parse().unwrap();
    let attacker = std::net::Ipv4Addr::new(127, 0, 0, 2).into();
    let mut held = Vec::new();
    for _ in 0..2 {
        let mut s = oauth2_devices_e2e::try_connect_from(attacker, to, Duration::from_secs(5)).unwrap();
        s.write_all(b"POST /oauth/device HTTP/1.1\r\nHost: x\r\n").unwrap();
        held.push(s);
    }
    // Both are in the listen queue ahead of the device's first connection: they get the two slots.
    let (status, lines) = run_device(&gw, "approve", &[]);
    let all = lines.join("\n");
    assert_eq!(status, 0, "{all}");
    assert!(all.contains("state: server busy (503), retrying POST /oauth/device"), "{all}");
    assert!(all.contains("GET /api/me -> 200"), "{all}");
    drop(held);
}
