//! One address floods `POST /oauth/device` while a client on another address runs whole flows: the
//! grant table's fair share (crate docs, module `policy`) keeps the flooder to its share and the
//! client served. The flooder connects from 127.0.0.2, the client from 127.0.0.3, so the gateway on
//! 127.0.0.1 sees two peers.

use std::net::{IpAddr, Ipv4Addr};
use std::sync::mpsc;
use std::thread;
use std::time::Duration;

use oauth2_devices_e2e::{decide, http_from, Gateway, Response};

const FLOODER: IpAddr = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2));
const CLIENT: IpAddr = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 3));
/// Requests the flooder sends, as fast as one connection after another goes.
const FLOOD: usize = 300;
const DEVICE_CODE_GRANT: &str = "urn:ietf:params:oauth:grant-type:device_code";

fn device_request(addr: &str, from: IpAddr) -> Response {
    http_from(from, addr, "POST", "/oauth/device", &[], "client_id=tv-demo&scope=profile")
}

/// A whole flow from `CLIENT`: codes, approval on the page, tokens. Returns the token response.
fn client_flow(addr: &str) -> Response {
    let codes = device_request(addr, CLIENT);
    assert_eq!(codes.status, 200, "the client on another address is refused codes: {}", codes.text());
    let codes = codes.json();
    let user_code = codes["user_code"].as_str().expect("user_code");
    let device_code = codes["device_code"].as_str().expect("device_code");
    let page = decide(addr, user_code, "approve");
    assert_eq!(page.status, 200, "approval: {}", page.text());
    let body = format!("client_id=tv-demo&grant_type={DEVICE_CODE_GRANT}&device_code={device_code}");
    http_from(CLIENT, addr, "POST", "/oauth/token", &[], &body)
}

/// Statuses of the flood, counted.
#[derive(Default, Debug)]
struct Tally {
    ok: usize,
    throttled: usize,
    other: Vec<u16>,
}

/// Floods from `FLOODER`; after the first refusal (or the first `signal_after` successes on a table
/// that never refuses) it tells `started`, so the client runs while the flood goes on.
fn flood(addr: &str, started: mpsc::Sender<()>, signal_after: usize) -> Tally {
    let mut tally = Tally::default();
    let mut signalled = false;
    for _ in 0..FLOOD {
        let r = device_request(addr, FLOODER);
        match r.status {
            200 => tally.ok += 1,
            429 => {
                let v = r.json();
                assert_eq!(v["error"], "temporarily_unavailable", "{}", r.text());
                let after: u64 = r.header("retry-after").and_then(|s| s.parse().ok()).expect("429 carries Retry-After");
                assert!(after >= 1, "Retry-After {after}");
                tally.throttled += 1;
            }
            s => tally.other.push(s),
        }
        if !signalled && (tally.throttled > 0 || tally.ok >= signal_after) {
            signalled = true;
            let _ = started.send(());
        }
    }
    if !signalled {
        let _ = started.send(());
    }
    tally
}

/// Runs the flood and, once it has started to bite, three client flows beside it.
fn flood_beside_client(addr: &str, signal_after: usize) -> (Tally, Vec<Response>) {
    let (tx, rx) = mpsc::channel();
    thread::scope(|s| {
        let flooder = s.spawn(|| flood(addr, tx, signal_after));
        rx.recv_timeout(Duration::from_secs(60)).expect("the flood never started");
        let tokens: Vec<Response> = (0..3).map(|_| client_flow(addr)).collect();
        (flooder.join().expect("flooder"), tokens)
    })
}

#[test]
fn a_flooding_address_keeps_to_its_share_of_a_board_table() {
    let gw = Gateway::start(&["--tables", "board"]);
    let (tally, tokens) = flood_beside_client(&gw.addr, usize::MAX);
    assert!(tally.other.is_empty(), "unexpected statuses: {:?}", tally.other);
    // 16 slots: an address may take one while it holds fewer than there are slots left, so 8 at most.
    assert!(tally.ok <= 8, "the flooder got {} codes, more than half of 16 slots", tally.ok);
    assert!(tally.ok >= 1, "the flooder got no code at all");
    assert_eq!(tally.ok + tally.throttled, FLOOD);
    for t in &tokens {
        assert_eq!(t.status, 200, "the client's flow failed beside the flood: {}", t.text());
        assert!(t.json()["access_token"].is_string());
    }
}

#[test]
fn one_address_runs_a_load_test_unthrottled_on_host_tables() {
    let gw = Gateway::start(&[]);
    let (tally, tokens) = flood_beside_client(&gw.addr, 50);
    assert_eq!(tally.ok, FLOOD, "host tables throttled one address's {FLOOD} requests: {tally:?}");
    for t in &tokens {
        assert_eq!(t.status, 200, "the client's flow failed beside the load: {}", t.text());
    }
}
