//! One test per pitfall of `shared/device-flow-pitfalls.md` that the protocol core owns (the HTTP ones,
//! such as `Content-Type` parameters, live in the HTTP tests).
#[path = "common/flow.rs"]
mod flow;

use flow::{public, TestProvider};
use oauth2_devices::code::{UserCode, USER_CODE_ALPHABET};
use oauth2_devices::form::{Form, FormError};
use oauth2_devices::prelude::*;
use oauth2_devices::provider::DeviceAuthorization;
use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;

fn setup() -> (TestProvider, ChaCha20Rng) {
    let mut rng = ChaCha20Rng::seed_from_u64(5);
    let p = flow::provider(&mut rng).unwrap();
    (p, rng)
}

fn start(p: &mut TestProvider, rng: &mut ChaCha20Rng, now: u64) -> DeviceAuthorization {
    p.device_authorization(now, &DeviceAuthorizationRequest { client: public("tv"), scope: None }, rng).unwrap()
}

fn poll(p: &mut TestProvider, now: u64, a: &DeviceAuthorization) -> Result<(), ErrorCode> {
    let req = TokenRequest { client: public("tv"), grant: Grant::DeviceCode { device_code: &a.device_code } };
    p.token(now, &req).map(|_| ()).map_err(|e| e.code)
}

#[test]
fn public_clients_work_at_the_device_endpoint() {
    let (mut p, mut rng) = setup();
    let a = start(&mut p, &mut rng, 0);
    assert_eq!(poll(&mut p, 0, &a), Err(ErrorCode::AuthorizationPending));
}

#[test]
fn expired_code_is_expired_token_whatever_its_state() {
    let (mut p, mut rng) = setup();
    let never_polled = start(&mut p, &mut rng, 0);
    let polling = start(&mut p, &mut rng, 0);
    let approved = start(&mut p, &mut rng, 0);
    let denied = start(&mut p, &mut rng, 0);
    poll(&mut p, 1, &polling).unwrap_err();
    p.approve(2, &approved.user_code.display(), b"u", 1, ScopeSet::EMPTY).unwrap();
    p.deny(2, &denied.user_code.display(), b"u").unwrap();
    for a in [&never_polled, &polling, &approved, &denied] {
        assert_eq!(poll(&mut p, 600, a), Err(ErrorCode::ExpiredToken));
        assert_eq!(poll(&mut p, 10_000, a), Err(ErrorCode::ExpiredToken));
    }
    // One second before expiry, the approved code still works.
    let late = start(&mut p, &mut rng, 1000);
    p.approve(1001, &late.user_code.display(), b"u", 1, ScopeSet::EMPTY).unwrap();
    assert_eq!(poll(&mut p, 1599, &late), Ok(()));
}

#[test]
fn denial_is_reported_on_the_next_poll_and_after() {
    let (mut p, mut rng) = setup();
    let a = start(&mut p, &mut rng, 0);
    poll(&mut p, 0, &a).unwrap_err();
    p.deny(3, &a.user_code.display(), b"u").unwrap();
    assert_eq!(poll(&mut p, 5, &a), Err(ErrorCode::AccessDenied));
    assert_eq!(poll(&mut p, 6, &a), Err(ErrorCode::AccessDenied));
}

#[test]
fn expiry_is_checked_on_the_verification_page_too() {
    let (mut p, mut rng) = setup();
    let a = start(&mut p, &mut rng, 0);
    let code = a.user_code.display();
    assert_eq!(p.user_code_info(600, &code, b"u"), Err(ApproveError::Expired));
    assert_eq!(p.approve(600, &code, b"u", 1, ScopeSet::EMPTY), Err(ApproveError::Expired));
    assert_eq!(p.deny(600, &code, b"u"), Err(ApproveError::Expired));
}

#[test]
fn slow_down_never_on_first_poll_and_adds_five_seconds() {
    let (mut p, mut rng) = setup();
    let a = start(&mut p, &mut rng, 0);
    // The first poll comes immediately: never throttled.
    assert_eq!(poll(&mut p, 0, &a), Err(ErrorCode::AuthorizationPending));
    assert_eq!(poll(&mut p, 4, &a), Err(ErrorCode::SlowDown)); // interval now 10
    assert_eq!(poll(&mut p, 9, &a), Err(ErrorCode::SlowDown)); // interval now 15
    assert_eq!(poll(&mut p, 14, &a), Err(ErrorCode::SlowDown)); // interval now 20
    assert_eq!(poll(&mut p, 20, &a), Err(ErrorCode::AuthorizationPending));
    // Exactly one interval after the last accepted poll is fine.
    assert_eq!(poll(&mut p, 40, &a), Err(ErrorCode::AuthorizationPending));
}

#[test]
fn a_client_obeying_the_new_interval_gets_through() {
    let (mut p, mut rng) = setup();
    let a = start(&mut p, &mut rng, 0);
    poll(&mut p, 100, &a).unwrap_err();
    // Too fast: slow_down, interval 5 → 10. The client then waits the *new* interval from its slow_down.
    assert_eq!(poll(&mut p, 103, &a), Err(ErrorCode::SlowDown));
    assert_eq!(poll(&mut p, 113, &a), Err(ErrorCode::AuthorizationPending));
    assert_eq!(poll(&mut p, 123, &a), Err(ErrorCode::AuthorizationPending));
    assert_eq!(poll(&mut p, 133, &a), Err(ErrorCode::AuthorizationPending));
}

#[test]
fn interval_is_always_in_the_response() {
    let (mut p, mut rng) = setup();
    let a = start(&mut p, &mut rng, 0);
    let mut buf = [0u8; 512];
    let n = a.write_json(p.config(), &mut buf).unwrap();
    let json: serde_json::Value = serde_json::from_slice(&buf[..n]).unwrap();
    assert_eq!(json["interval"], 5);
    assert_eq!(json["expires_in"], 600);
    assert_eq!(json["user_code"].as_str().unwrap(), a.user_code.display().as_str());
    let complete = json["verification_uri_complete"].as_str().unwrap();
    assert_eq!(complete, format!("https://gw.example/activate?user_code={}", a.user_code.display()));
}

#[test]
fn device_code_is_single_use() {
    let (mut p, mut rng) = setup();
    let a = start(&mut p, &mut rng, 0);
    p.approve(1, &a.user_code.display(), b"u", 1, ScopeSet::EMPTY).unwrap();
    assert_eq!(poll(&mut p, 2, &a), Ok(()));
    assert_eq!(poll(&mut p, 10, &a), Err(ErrorCode::InvalidGrant));
    assert_eq!(poll(&mut p, 20, &a), Err(ErrorCode::InvalidGrant));
}

#[test]
fn unknown_device_code_is_invalid_grant_not_invalid_request() {
    let (mut p, _) = setup();
    let fake = DeviceAuthorization {
        device_code: "RAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA".try_into().unwrap(),
        user_code: UserCode::parse("BCDFGHJK").unwrap(),
        expires_in: 600,
        interval: 5,
    };
    assert_eq!(poll(&mut p, 0, &fake), Err(ErrorCode::InvalidGrant));
}

#[test]
fn user_codes_are_case_insensitive_and_ignore_dashes_and_spaces() {
    let (mut p, mut rng) = setup();
    let a = start(&mut p, &mut rng, 0);
    let shown = a.user_code.display();
    let lower = shown.to_lowercase();
    let spaced: String = shown.chars().filter(|c| *c != '-').flat_map(|c| [c, ' ']).collect();
    for typed in [shown.to_string(), lower.clone(), lower.replace('-', ""), spaced] {
        assert!(p.user_code_info(1, &typed, b"u").is_ok(), "{typed}");
    }
}

#[test]
fn user_code_generation_has_no_modulo_bias() {
    // Chi-square over the 20 letters of 25 000 codes (200 000 letters) from a real CSPRNG. A biased
    // `byte % 20` draws letters 0..16 with probability 13/256 and 16..20 with 12/256: its expected
    // statistic is 19 + 200 000 × Σ (p − 1/20)² / (1/20) ≈ 19 + 195 = 214, against 19 for a uniform
    // generator; the threshold below is crossed by a uniform one once in a thousand seeds.
    const CODES: usize = 25_000;
    let mut rng = ChaCha20Rng::seed_from_u64(99);
    let mut counts = [0f64; 20];
    for _ in 0..CODES {
        for b in UserCode::generate(&mut rng).unwrap().as_bytes() {
            counts[USER_CODE_ALPHABET.iter().position(|x| x == b).unwrap()] += 1.0;
        }
    }
    let expected = (CODES * 8) as f64 / 20.0;
    let chi2: f64 = counts.iter().map(|c| (c - expected).powi(2) / expected).sum();
    // 99.9th percentile of chi-square with 19 degrees of freedom is 43.8.
    assert!(chi2 < 43.8, "chi2 = {chi2}, counts {counts:?}");
}

#[test]
fn wrong_user_code_guesses_have_a_budget() {
    let (mut p, mut rng) = setup();
    start(&mut p, &mut rng, 0);
    let mut refused = 0;
    for i in 0..100 {
        if p.user_code_info(1, &format!("BBBB-BB{}", ["BB", "BC", "CB"][i % 3]), b"mallory")
            == Err(ApproveError::RateLimited)
        {
            refused += 1;
        }
    }
    assert_eq!(refused, 95);
}

#[test]
fn duplicate_parameters_are_rejected() {
    let mut body = *b"client_id=tv&scope=a&client_id=tv";
    assert_eq!(Form::<8>::parse(&mut body).unwrap_err(), FormError::DuplicateParameter);
}

#[test]
fn memory_is_bounded_and_expired_entries_are_reclaimed() {
    let (mut p, mut rng) = setup();
    let req = DeviceAuthorizationRequest { client: public("tv"), scope: None };
    // A thousand requests over simulated hours whose devices never poll: the table never exceeds its
    // capacity, and abandoned requests (no poll for `abandon_after`) make room for new ones.
    let abandon = u64::from(p.config().abandon_after);
    for i in 0..1000u64 {
        p.device_authorization(i * 10, &req, &mut rng).unwrap();
        assert!(p.live_grants(i * 10) <= 16);
    }
    // Devices that keep polling keep their slots: the seventeenth request is a 503 with a retry time,
    // and once the codes expire there is room again.
    let t0 = 1000 * 10 + abandon;
    let mut codes = Vec::new();
    for _ in 0..16 {
        codes.push(p.device_authorization(t0, &req, &mut rng).unwrap().device_code);
    }
    let poll = |c| TokenRequest { client: public("tv"), grant: Grant::DeviceCode { device_code: c } };
    for t in [t0 + 60, t0 + 120, t0 + 180] {
        for c in &codes {
            assert_eq!(p.token(t, &poll(c)).unwrap_err().code, ErrorCode::AuthorizationPending);
        }
    }
    let e = p.device_authorization(t0 + 180, &req, &mut rng).unwrap_err();
    assert_eq!(e.code, ErrorCode::TemporarilyUnavailable);
    assert!(e.retry_after.is_some_and(|s| s > 0 && u64::from(s) <= abandon), "{e:?}");
    assert!(p.device_authorization(t0 + 600, &req, &mut rng).is_ok(), "expired grants make room");
}

#[test]
fn verification_uri_complete_carries_the_code() {
    let (mut p, mut rng) = setup();
    let a = start(&mut p, &mut rng, 0);
    let uri = p.config().verification_uri_complete(&a.user_code).unwrap();
    let code = uri.split("user_code=").nth(1).unwrap();
    assert_eq!(UserCode::parse(code), Some(a.user_code));
}
