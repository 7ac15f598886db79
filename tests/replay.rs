//! Two promises a reviewer asked to see fail when broken: the provider's clock never goes backwards,
//! also on its read-only paths (the bearer check, introspection), and a spent device code is a replay
//! whatever its age and across a restart: `invalid_grant`, and what it issued is revoked while its
//! token family lives.
#[path = "common/flow.rs"]
mod flow;

use flow::{public, TestProvider};
use oauth2_devices::prelude::*;
use oauth2_devices::provider::{DeviceAuthorization, Introspection, TokenResponse};
use oauth2_devices::snapshot::max_snapshot_len;
use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;

fn setup(seed: u64) -> (TestProvider, ChaCha20Rng) {
    let mut rng = ChaCha20Rng::seed_from_u64(seed);
    (flow::provider(&mut rng).unwrap(), rng)
}

fn poll(code: &str) -> TokenRequest<'_> {
    TokenRequest { client: public("tv"), grant: Grant::DeviceCode { device_code: code } }
}

/// A device flow for `tv`, exchanged at `now + 2`.
fn exchanged(p: &mut TestProvider, rng: &mut ChaCha20Rng, now: u64) -> (DeviceAuthorization, TokenResponse) {
    let a =
        p.device_authorization(now, &DeviceAuthorizationRequest { client: public("tv"), scope: None }, rng).unwrap();
    p.approve(now + 1, &a.user_code.display(), b"u", 7, ScopeSet::EMPTY).unwrap();
    let t = p.token(now + 2, &poll(&a.device_code)).unwrap();
    (a, t)
}

fn bearer(t: &TokenResponse) -> String {
    format!("Bearer {}", t.access_token)
}

#[test]
fn the_bearer_check_never_lets_time_go_back() {
    let (mut p, mut rng) = setup(1);
    let (_, t) = exchanged(&mut p, &mut rng, 1000);
    let expiry = 1002 + u64::from(p.config().access_token_lifetime);
    assert!(p.check_bearer(expiry - 1, Some(&bearer(&t)), ScopeSet::EMPTY).is_ok());
    assert_eq!(p.check_bearer(expiry, Some(&bearer(&t)), ScopeSet::EMPTY), Err(BearerError::Expired));
    // Nothing mutating in between: a later call with an earlier `now` must still see the token expired.
    assert_eq!(p.check_bearer(expiry - 10, Some(&bearer(&t)), ScopeSet::EMPTY), Err(BearerError::Expired));
    assert_eq!(u64::from(p.clock()), expiry);
}

#[test]
fn introspection_never_lets_time_go_back() {
    let (mut p, mut rng) = setup(2);
    let (_, t) = exchanged(&mut p, &mut rng, 1000);
    let expiry = 1002 + u64::from(p.config().access_token_lifetime);
    let printer = ClientCredentials::new("printer", Some("s3cret"));
    let q = TokenQuery { client: printer, token: &t.access_token };
    assert!(matches!(p.introspect(expiry - 1, &q), Ok(Introspection::Access(_))));
    assert_eq!(p.introspect(expiry, &q), Ok(Introspection::Inactive));
    assert_eq!(p.introspect(expiry - 10, &q), Ok(Introspection::Inactive));
    // The refresh token's family lives on; its own expiry is guarded the same way.
    let refresh = t.refresh_token.as_ref().unwrap();
    let family_end = 1002 + u64::from(p.config().refresh_token_lifetime);
    let rq = TokenQuery { client: printer, token: refresh };
    assert!(matches!(p.introspect(family_end - 1, &rq), Ok(Introspection::Refresh(_))));
    assert_eq!(p.introspect(family_end, &rq), Ok(Introspection::Inactive));
    assert_eq!(p.introspect(expiry, &rq), Ok(Introspection::Inactive));
}

#[test]
fn a_spent_code_replayed_after_its_expiry_revokes_what_it_issued() {
    let (mut p, mut rng) = setup(3);
    let (a, t) = exchanged(&mut p, &mut rng, 1000);
    let after_expiry = 1000 + u64::from(p.config().device_code_lifetime) + 5;
    assert!(p.check_bearer(after_expiry, Some(&bearer(&t)), ScopeSet::EMPTY).is_ok());
    let e = p.token(after_expiry, &poll(&a.device_code)).unwrap_err();
    assert_eq!(e.code, ErrorCode::InvalidGrant, "a spent code is a replay, not an expired one");
    assert_eq!(p.check_bearer(after_expiry, Some(&bearer(&t)), ScopeSet::EMPTY), Err(BearerError::Revoked));
}

#[test]
fn a_spent_code_replayed_after_its_slot_was_reused_revokes_what_it_issued() {
    let (mut p, mut rng) = setup(4);
    let (a, t) = exchanged(&mut p, &mut rng, 1000);
    // Fill the grant table after the code expired, so its slot is reclaimed by a new grant.
    let later = 1000 + u64::from(p.config().device_code_lifetime) + 5;
    for i in 0..16 {
        p.device_authorization(later + i, &DeviceAuthorizationRequest { client: public("tv"), scope: None }, &mut rng)
            .unwrap();
    }
    assert_eq!(p.token(later + 20, &poll(&a.device_code)).unwrap_err().code, ErrorCode::InvalidGrant);
    assert_eq!(p.check_bearer(later + 20, Some(&bearer(&t)), ScopeSet::EMPTY), Err(BearerError::Revoked));
}

#[test]
fn a_spent_code_replayed_after_a_restore_revokes_what_it_issued() {
    for replay_late in [false, true] {
        let (mut p, mut rng) = setup(5);
        let (a, t) = exchanged(&mut p, &mut rng, 1000);
        let mut buf = vec![0u8; max_snapshot_len(16, 16)];
        let n = p.save(&mut buf).unwrap();
        let mut q = setup(99).0;
        let now = if replay_late { 1000 + u64::from(q.config().device_code_lifetime) + 5 } else { 1010 };
        q.restore(now, &buf[..n]).unwrap();
        assert!(q.check_bearer(now, Some(&bearer(&t)), ScopeSet::EMPTY).is_ok(), "the family was restored");
        assert_eq!(q.token(now, &poll(&a.device_code)).unwrap_err().code, ErrorCode::InvalidGrant);
        assert_eq!(
            q.check_bearer(now, Some(&bearer(&t)), ScopeSet::EMPTY),
            Err(BearerError::Revoked),
            "replay after a restore (late: {replay_late}) revokes the family"
        );
    }
}
