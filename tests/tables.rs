//! Full tables with a policy, through the HTTP binding (sans-IO) with peer addresses: a flooding
//! address cannot take the grant table from others, an approval is never followed by a refusal at the
//! token endpoint, a full family table is explained on the page, the connected-devices page lists and
//! revokes, and failed client secrets and sign-ins are budgeted per address.

mod http_common;

use std::net::SocketAddr;

use http_common::*;

const FLOODER: &str = "127.0.0.2:40000";
const CLIENT: &str = "127.0.0.3:40000";

fn at(addr: &str) -> Option<SocketAddr> {
    Some(addr.parse().unwrap())
}

fn device(s: &mut Server) -> Resp {
    s.request(&post_form("/oauth/device", "client_id=tv-demo&scope=profile"))
}

fn codes(r: &Resp) -> (String, String) {
    let j = r.json();
    (j["device_code"].as_str().unwrap().into(), j["user_code"].as_str().unwrap().into())
}

fn poll(s: &mut Server, device_code: &str) -> Resp {
    s.request(&post_form(
        "/oauth/token",
        &format!("grant_type={DEVICE_GRANT}&device_code={device_code}&client_id=tv-demo"),
    ))
}

fn alice() -> String {
    basic("alice", "wonderland")
}

/// The verification page's confirmation, then its Approve button, as a person uses them.
fn approve(s: &mut Server, user_code: &str, auth: &str) -> Resp {
    let page = s.request(&get(&format!("/activate?user_code={user_code}"), &[("Authorization", auth)]));
    assert_eq!(page.status, 200, "{}", page.text());
    let csrf = page.input_value("csrf").expect("csrf field").to_owned();
    let body = format!("user_code={user_code}&csrf={csrf}&action=approve");
    s.request(&post_form_with("/activate", &[("Authorization", auth)], &body))
}

fn devices_page(s: &mut Server, auth: &str) -> Resp {
    s.request(&get("/devices", &[("Authorization", auth)]))
}

/// `(slot, serial)` of every device listed on the page, from the ids `device-<slot>-<serial>`.
fn listed(r: &Resp) -> Vec<(u16, u32)> {
    r.text()
        .split("id=\"device-")
        .skip(1)
        .map(|rest| {
            let id = &rest[..rest.find('"').unwrap()];
            let (slot, serial) = id.split_once('-').unwrap();
            (slot.parse().unwrap(), serial.parse().unwrap())
        })
        .collect()
}

#[test]
fn a_flooding_address_cannot_take_the_table_from_others() {
    let mut s = Server::new();
    s.peer = at(FLOODER);
    let (mut ok, mut throttled) = (0, 0);
    for _ in 0..300 {
        let r = device(&mut s);
        match r.status {
            200 => ok += 1,
            429 => {
                throttled += 1;
                assert_eq!(r.error(), "temporarily_unavailable");
                let wait: u32 = r.header("retry-after").expect("Retry-After").parse().unwrap();
                assert!(wait > 0 && wait <= s.provider.config().abandon_after, "{wait}");
            }
            other => panic!("the flooder got {other}: {}", r.text()),
        }
    }
    // No address ever holds more than half of the table.
    assert_eq!((ok, throttled), (8, 292));
    // Another address still gets codes and completes its flow.
    s.peer = at(CLIENT);
    let (device_code, user_code) = codes(&device(&mut s));
    assert_eq!(poll(&mut s, &device_code).error(), "authorization_pending");
    assert_eq!(approve(&mut s, &user_code, &alice()).message(), Some("Device approved"));
    s.now += 5;
    let r = poll(&mut s, &device_code);
    assert_eq!(r.status, 200, "{}", r.text());
    // And a third address too, while slots are left.
    s.peer = at("127.0.0.4:1");
    assert_eq!(device(&mut s).status, 200);
}

#[test]
fn an_ipv6_flooder_is_one_source_per_64() {
    let mut s = Server::new();
    let mut ok = 0;
    for i in 0..40u16 {
        s.peer = Some(format!("[2001:db8:0:1::{i:x}]:443").parse().unwrap());
        if device(&mut s).status == 200 {
            ok += 1;
        }
    }
    assert_eq!(ok, 8, "the whole /64 shares one share");
    s.peer = Some("[2001:db8:0:2::1]:443".parse().unwrap());
    assert_eq!(device(&mut s).status, 200);
}

#[test]
fn sixty_approvals_by_one_account_are_never_refused_at_the_token_endpoint() {
    let mut s = Server::new();
    let (mut approved, mut refused) = (0, 0);
    for i in 0..60u32 {
        // Devices on many addresses (a household), so the grant table's shares are not what refuses.
        s.peer = Some(format!("10.0.{}.{}:5000", i / 200, i % 200 + 1).parse().unwrap());
        s.now += 10;
        let r = device(&mut s);
        assert_eq!(r.status, 200, "request {i}: {}", r.text());
        let (device_code, user_code) = codes(&r);
        let page = approve(&mut s, &user_code, &alice());
        s.now += 5;
        let t = poll(&mut s, &device_code);
        match page.message() {
            Some("Device approved") => {
                approved += 1;
                assert_eq!(t.status, 200, "approved on the page, then refused: {}", t.text());
            }
            Some("Too many connected devices") => {
                refused += 1;
                assert_eq!(page.status, 409);
                assert!(page.text().contains("id=\"devices-link\" href=\"/devices\""), "links to the devices page");
                assert_eq!(t.error(), "authorization_pending", "a refused approval leaves the request undecided");
            }
            other => panic!("approval {i}: {other:?} {}", page.text()),
        }
    }
    let limit = u32::from(s.provider.config().families_per_user);
    assert_eq!((approved, refused), (limit, 60 - limit));
}

#[test]
fn a_full_family_table_is_explained_and_revoking_on_the_devices_page_frees_a_slot() {
    let mut s = Server::new();
    // Every page must fit the smallest output buffer the binding is designed for.
    s.output_len = oauth2_devices::http::MIN_OUTPUT_LEN;
    // alice's sixteen devices fill the sixteen family slots.
    let mut tokens = Vec::new();
    for i in 0..16u32 {
        s.peer = Some(format!("10.1.0.{}:5000", i + 1).parse().unwrap());
        let (device_code, user_code) = codes(&device(&mut s));
        assert_eq!(approve(&mut s, &user_code, &alice()).message(), Some("Device approved"));
        s.now += 5;
        tokens.push(poll(&mut s, &device_code).json());
    }
    assert_eq!(s.provider.live_families(s.now), 16);
    // The seventeenth approval is refused on the page, with the explanation and the link.
    let (device_code, user_code) = codes(&device(&mut s));
    let r = approve(&mut s, &user_code, &basic("mallory", "x"));
    assert_eq!((r.status, r.message()), (503, Some("No room for another device")), "{}", r.text());
    assert!(r.text().contains("href=\"/devices\""));

    // alice revokes her first device on the devices page (a page lists six; the rest are a link away).
    let page = devices_page(&mut s, &alice());
    assert_eq!(page.status, 200);
    let mine = listed(&page);
    assert_eq!(mine.len(), 6);
    let more = page.text().split("id=\"more\" href=\"").nth(1).map(|r| r[..r.find('"').unwrap()].to_owned());
    let mut all = mine.clone();
    let mut next = more;
    while let Some(href) = next {
        let p = s.request(&get(&href, &[("Authorization", &alice())]));
        assert_eq!(p.status, 200);
        all.extend(listed(&p));
        next = p.text().split("id=\"more\" href=\"").nth(1).map(|r| r[..r.find('"').unwrap()].to_owned());
    }
    assert_eq!(all.len(), 16, "every device is reachable");
    assert!(page.text().contains("Demo TV") && page.text().contains("approved"), "{}", page.text());
    let csrf = page.input_value("csrf").unwrap().to_owned();
    let (slot, serial) = mine[0];
    let first = &tokens[0];
    let access = first["access_token"].as_str().unwrap().to_owned();
    let refresh = first["refresh_token"].as_str().unwrap().to_owned();
    assert_eq!(s.request(&get("/api/me", &[("Authorization", &format!("Bearer {access}"))])).status, 200);
    let body = format!("device={slot}-{serial}&csrf={csrf}");
    let r = s.request(&post_form_with("/devices", &[("Authorization", &alice())], &body));
    assert_eq!((r.status, r.message()), (200, Some("Device revoked")));
    assert!(!listed(&r).contains(&(slot, serial)), "gone from the list");
    // Its tokens fail at once.
    assert_eq!(s.request(&get("/api/me", &[("Authorization", &format!("Bearer {access}"))])).status, 401);
    let r = s.request(&post_form(
        "/oauth/token",
        &format!("grant_type=refresh_token&refresh_token={refresh}&client_id=tv-demo"),
    ));
    assert_eq!(r.error(), "invalid_grant");
    // The slot it freed takes the waiting approval.
    assert_eq!(approve(&mut s, &user_code, &basic("mallory", "x")).message(), Some("Device approved"));
    s.now += 5;
    assert_eq!(poll(&mut s, &device_code).status, 200);
}

#[test]
fn the_devices_page_needs_sign_in_and_csrf_and_shows_only_your_devices() {
    let mut s = Server::new();
    let (device_code, user_code) = codes(&device(&mut s));
    approve(&mut s, &user_code, &alice());
    // Approved, not yet connected: listed as waiting.
    let page = devices_page(&mut s, &alice());
    assert!(page.text().contains("waiting for the device to connect"), "{}", page.text());
    s.now += 5;
    assert_eq!(poll(&mut s, &device_code).status, 200);
    let page = devices_page(&mut s, &alice());
    assert!(page.text().contains("used this hour"));
    let (slot, serial) = listed(&page)[0];
    let csrf = page.input_value("csrf").unwrap().to_owned();

    assert_eq!(s.request(&get("/devices", &[])).status, 401);
    let r = devices_page(&mut s, &basic("mallory", "x"));
    assert_eq!((r.status, listed(&r).len()), (200, 0));
    assert!(r.text().contains("id=\"no-devices\""));
    // A forged form is refused; mallory cannot revoke alice's device, even with her own CSRF field
    // (read from a confirmation page of hers).
    let body = format!("device={slot}-{serial}&csrf=AAAAAAAAAAAAAAAAAAAAAA");
    let r = s.request(&post_form_with("/devices", &[("Authorization", &alice())], &body));
    assert_eq!((r.status, r.message()), (403, Some("Form expired")));
    let (_, other) = codes(&device(&mut s));
    let confirm =
        s.request(&get(&format!("/activate?user_code={other}"), &[("Authorization", &basic("mallory", "x"))]));
    let mallory_csrf = confirm.input_value("csrf").unwrap().to_owned();
    let body = format!("device={slot}-{serial}&csrf={mallory_csrf}");
    let r = s.request(&post_form_with("/devices", &[("Authorization", &basic("mallory", "x"))], &body));
    assert_eq!((r.status, r.message()), (404, Some("Device not found")));
    assert_eq!(listed(&devices_page(&mut s, &alice())), vec![(slot, serial)]);
    let body = format!("device={slot}-{serial}&csrf={csrf}");
    let r = s.request(&post_form_with("/devices", &[("Authorization", &alice())], &body));
    assert_eq!(r.message(), Some("Device revoked"));
}

#[test]
fn wrong_client_secrets_are_budgeted_per_address() {
    let mut s = Server::new();
    let wrong = basic("printer-demo", "guess");
    let right = basic("printer-demo", "printer-secret");
    let attempt = |s: &mut Server, auth: &str| {
        s.request(&post_form_with("/oauth/device", &[("Authorization", auth)], "scope=sensors%3Aread"))
    };
    s.peer = at(FLOODER);
    let limits = s.provider.config().auth_limits;
    for _ in 0..limits.per_source {
        assert_eq!(attempt(&mut s, &wrong).status, 401);
    }
    let r = attempt(&mut s, &wrong);
    assert_eq!((r.status, r.header("retry-after")), (429, Some("1")));
    // The budget belongs to the address, not to the client: the printer elsewhere still works...
    s.peer = at(CLIENT);
    assert_eq!(attempt(&mut s, &right).status, 200);
    // ...and the guessing address, after its back-off, may try again.
    s.peer = at(FLOODER);
    s.now += 1;
    assert_eq!(attempt(&mut s, &wrong).status, 401);
    assert_eq!(attempt(&mut s, &wrong).status, 429);
}

#[test]
fn failed_sign_ins_are_budgeted_per_address() {
    let mut s = Server::new();
    let (_, user_code) = codes(&device(&mut s));
    let path = format!("/activate?user_code={user_code}");
    s.peer = at(FLOODER);
    for _ in 0..s.provider.config().auth_limits.per_source {
        assert_eq!(s.request(&get(&path, &[("Authorization", &basic("alice", "guess"))])).status, 401);
    }
    let r = s.request(&get(&path, &[("Authorization", &basic("alice", "guess"))]));
    assert_eq!((r.status, r.message()), (429, Some("Too many sign-in attempts")));
    assert!(r.header("retry-after").is_some());
    // Even the right password waits out the back-off from this address; from another one it works.
    assert_eq!(s.request(&get(&path, &[("Authorization", &alice())])).status, 429);
    s.peer = at(CLIENT);
    assert_eq!(s.request(&get(&path, &[("Authorization", &alice())])).status, 200);
    // A first visit without credentials is not a failure.
    s.peer = at("127.0.0.5:1");
    for _ in 0..10 {
        assert_eq!(s.request(&get(&path, &[])).status, 401);
    }
    assert_eq!(s.request(&get(&path, &[("Authorization", &alice())])).status, 200);
}
