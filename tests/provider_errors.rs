//! Every error the provider can answer, one test per case, plus the full-table cases.
#[path = "common/flow.rs"]
mod flow;

use flow::{public, TestProvider};
use oauth2_devices::prelude::*;
use oauth2_devices::provider::{DeviceAuthorization, Introspection};
use oauth2_devices::token::AccessClaims;
use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;

fn setup() -> (TestProvider, ChaCha20Rng) {
    let mut rng = ChaCha20Rng::seed_from_u64(11);
    let p = flow::provider(&mut rng).unwrap();
    (p, rng)
}

fn start(p: &mut TestProvider, rng: &mut ChaCha20Rng, now: u64, client: ClientCredentials<'_>) -> DeviceAuthorization {
    p.device_authorization(now, &DeviceAuthorizationRequest { client, scope: None }, rng).unwrap()
}

fn poll<'a>(client: ClientCredentials<'a>, code: &'a str) -> TokenRequest<'a> {
    TokenRequest { client, grant: Grant::DeviceCode { device_code: code } }
}

fn err<T: std::fmt::Debug>(r: Result<T, OAuthError>) -> ErrorCode {
    r.unwrap_err().code
}

fn printer(secret: Option<&str>) -> ClientCredentials<'_> {
    ClientCredentials::new("printer", secret)
}

fn approve(p: &mut TestProvider, now: u64, a: &DeviceAuthorization) {
    p.approve(now, &a.user_code.display(), b"u", 1, ScopeSet::EMPTY).unwrap();
}

#[test]
fn device_authorization_client_errors() {
    let (mut p, mut rng) = setup();
    let req = |client| DeviceAuthorizationRequest { client, scope: None };
    assert_eq!(err(p.device_authorization(0, &req(public("nobody")), &mut rng)), ErrorCode::InvalidClient);
    let wrong = printer(Some("nope"));
    assert_eq!(err(p.device_authorization(0, &req(wrong), &mut rng)), ErrorCode::InvalidClient);
    assert_eq!(err(p.device_authorization(0, &req(printer(None)), &mut rng)), ErrorCode::InvalidClient);
    let tv_with_secret = ClientCredentials::new("tv", Some("x"));
    assert_eq!(err(p.device_authorization(0, &req(tv_with_secret), &mut rng)), ErrorCode::InvalidClient);
    // The confidential client with its secret and the public client without one work.
    for creds in [printer(Some("s3cret")), public("tv")] {
        p.device_authorization(0, &req(creds), &mut rng).unwrap();
    }
    assert_eq!(ErrorCode::InvalidClient.http_status(), 401);
}

#[test]
fn device_authorization_scope_errors() {
    let (mut p, mut rng) = setup();
    let req = |client, scope| DeviceAuthorizationRequest { client, scope: Some(scope) };
    assert_eq!(err(p.device_authorization(0, &req(public("tv"), "admin"), &mut rng)), ErrorCode::InvalidScope);
    assert_eq!(err(p.device_authorization(0, &req(public("tv"), "profile  email"), &mut rng)), ErrorCode::InvalidScope);
    // `cli` may only ask for sensors:read, and gets it by default.
    assert_eq!(err(p.device_authorization(0, &req(public("cli"), "profile"), &mut rng)), ErrorCode::InvalidScope);
    let a = start(&mut p, &mut rng, 0, public("cli"));
    let info = p.user_code_info(1, &a.user_code.display(), b"u").unwrap();
    assert_eq!(info.scopes, p.scopes().parse("sensors:read").unwrap());
}

#[test]
fn full_grant_table_is_503_until_a_grant_expires() {
    let (mut p, mut rng) = setup();
    for _ in 0..16 {
        start(&mut p, &mut rng, 100, public("tv"));
    }
    let req = DeviceAuthorizationRequest { client: public("tv"), scope: None };
    let full = p.device_authorization(200, &req, &mut rng).unwrap_err();
    assert_eq!(full.code, ErrorCode::TemporarilyUnavailable);
    assert_eq!(full.http_status(), 503);
    assert_eq!(p.live_grants(200), 16);
    // Nothing was evicted: the 16 grants are still live. After expiry, slots are reclaimed.
    p.device_authorization(700, &req, &mut rng).unwrap();
    assert_eq!(p.live_grants(700), 1);
}

#[test]
fn stale_slot_never_matches_an_old_device_code() {
    let (mut p, mut rng) = setup();
    let mut old = Vec::new();
    for _ in 0..16 {
        old.push(start(&mut p, &mut rng, 0, public("tv")));
    }
    // Every slot is reused after expiry.
    for _ in 0..16 {
        start(&mut p, &mut rng, 600, public("tv"));
    }
    for a in &old {
        assert_eq!(err(p.token(601, &poll(public("tv"), &a.device_code))), ErrorCode::InvalidGrant);
    }
}

#[test]
fn token_endpoint_errors() {
    let (mut p, mut rng) = setup();
    let a = start(&mut p, &mut rng, 0, public("tv"));
    // Unknown and malformed device codes.
    assert_eq!(err(p.token(1, &poll(public("tv"), "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"))), ErrorCode::InvalidGrant);
    assert_eq!(err(p.token(1, &poll(public("tv"), "not a code"))), ErrorCode::InvalidGrant);
    // A code of another client.
    let b = start(&mut p, &mut rng, 0, printer(Some("s3cret")));
    assert_eq!(err(p.token(1, &poll(public("tv"), &b.device_code))), ErrorCode::InvalidGrant);
    // Client authentication on the token endpoint.
    assert_eq!(err(p.token(1, &poll(public("ghost"), &a.device_code))), ErrorCode::InvalidClient);
    assert_eq!(err(p.token(1, &poll(printer(Some("bad")), &b.device_code))), ErrorCode::InvalidClient);
    assert_eq!(err(p.token(1, &poll(printer(None), &b.device_code))), ErrorCode::InvalidClient);
    // The confidential client polls its own code fine.
    assert_eq!(err(p.token(1, &poll(printer(Some("s3cret")), &b.device_code))), ErrorCode::AuthorizationPending);
    // Single use.
    approve(&mut p, 2, &a);
    p.token(10, &poll(public("tv"), &a.device_code)).unwrap();
    assert_eq!(err(p.token(20, &poll(public("tv"), &a.device_code))), ErrorCode::InvalidGrant);
}

#[test]
fn request_level_errors() {
    use oauth2_devices::form::Form;
    let cases: &[(&str, ErrorCode)] = &[
        ("grant_type=password&client_id=tv", ErrorCode::UnsupportedGrantType),
        ("grant_type=authorization_code&code=x&client_id=tv", ErrorCode::UnsupportedGrantType),
        ("client_id=tv&device_code=x", ErrorCode::InvalidRequest),
        ("grant_type=urn:ietf:params:oauth:grant-type:device_code&client_id=tv", ErrorCode::InvalidRequest),
        ("grant_type=refresh_token&client_id=tv", ErrorCode::InvalidRequest),
        ("grant_type=refresh_token&refresh_token=x", ErrorCode::InvalidClient),
        ("grant_type=refresh_token&refresh_token=x&refresh_token=y&client_id=tv", ErrorCode::InvalidRequest),
        ("grant_type=refresh_token&refresh_token=%zz&client_id=tv", ErrorCode::InvalidRequest),
    ];
    for (body, code) in cases {
        let mut buf = body.as_bytes().to_vec();
        let got = Form::<8>::parse(&mut buf)
            .map_err(OAuthError::from)
            .and_then(|f| TokenRequest::from_form(&f, None).map(|_| ()));
        assert_eq!(got.unwrap_err().code, *code, "{body}");
    }
}

#[test]
fn refresh_errors() {
    let (mut p, mut rng) = setup();
    // `cli` has no refresh tokens: the grant is unauthorized_client.
    let a = start(&mut p, &mut rng, 0, public("cli"));
    let sensors = p.scopes().parse("sensors:read").unwrap();
    p.approve(1, &a.user_code.display(), b"u", 1, sensors).unwrap();
    let t = p.token(2, &poll(public("cli"), &a.device_code)).unwrap();
    assert!(t.refresh_token.is_none());
    let r = TokenRequest { client: public("cli"), grant: Grant::RefreshToken { refresh_token: "x", scope: None } };
    assert_eq!(err(p.token(3, &r)), ErrorCode::UnauthorizedClient);

    let a = start(&mut p, &mut rng, 0, public("tv"));
    approve(&mut p, 1, &a);
    let t = p.token(2, &poll(public("tv"), &a.device_code)).unwrap();
    let rt = t.refresh_token.unwrap();
    // Another client cannot use it.
    let foreign = TokenRequest {
        client: printer(Some("s3cret")),
        grant: Grant::RefreshToken { refresh_token: &rt, scope: None },
    };
    assert_eq!(err(p.token(3, &foreign)), ErrorCode::InvalidGrant);
    // Unknown scope is invalid_scope.
    let bad =
        TokenRequest { client: public("tv"), grant: Grant::RefreshToken { refresh_token: &rt, scope: Some("nope") } };
    assert_eq!(err(p.token(3, &bad)), ErrorCode::InvalidScope);
    // Garbage.
    let junk = TokenRequest { client: public("tv"), grant: Grant::RefreshToken { refresh_token: "junk", scope: None } };
    assert_eq!(err(p.token(3, &junk)), ErrorCode::InvalidGrant);
    // Expired refresh token.
    let ok = TokenRequest { client: public("tv"), grant: Grant::RefreshToken { refresh_token: &rt, scope: None } };
    assert_eq!(err(p.token(10 + 30 * 24 * 3600, &ok)), ErrorCode::InvalidGrant);
}

#[test]
fn approval_errors() {
    let (mut p, mut rng) = setup();
    let a = start(&mut p, &mut rng, 0, public("tv"));
    assert_eq!(p.approve(1, "BCDF-GHJK", b"u", 1, ScopeSet::EMPTY), Err(ApproveError::InvalidCode));
    assert_eq!(p.approve(1, "garbage", b"u", 1, ScopeSet::EMPTY), Err(ApproveError::InvalidCode));
    let code = a.user_code.display();
    assert_eq!(p.approve(1, &code, b"u", 1, ScopeSet::from_bits(1)), Err(ApproveError::ScopeNotRequested));
    p.deny(2, &code, b"u").unwrap();
    assert_eq!(p.approve(3, &code, b"u", 1, ScopeSet::EMPTY), Err(ApproveError::AlreadyDecided));
    assert_eq!(p.user_code_info(3, &code, b"u").unwrap().state, GrantState::Denied);
    // Expired beats every other state on the verification page.
    assert_eq!(p.approve(600, &code, b"u", 1, ScopeSet::EMPTY), Err(ApproveError::Expired));
    assert_eq!(p.user_code_info(600, &code, b"u"), Err(ApproveError::Expired));
}

/// A user code that is not `live`'s (so every guess with it is wrong).
fn wrong_code(live: &DeviceAuthorization) -> &'static str {
    if live.user_code.display() == "BBBB-BBBB" {
        "CCCC-CCCC"
    } else {
        "BBBB-BBBB"
    }
}

#[test]
fn wrong_guesses_are_limited_per_source() {
    let (mut p, mut rng) = setup();
    let limits = p.config().limits;
    let a = start(&mut p, &mut rng, 0, public("tv"));
    let code = a.user_code.display();
    let wrong = wrong_code(&a);
    assert_eq!((limits.per_source, limits.global, limits.window), (5, 32, 60), "the defaults this test is about");
    // Per source: five wrong guesses for free, then a graduated back-off: 1 s, 2 s, 4 s, ...
    for _ in 0..5 {
        assert_eq!(p.user_code_info(1, wrong, b"mallory"), Err(ApproveError::InvalidCode));
    }
    assert_eq!(p.user_code_info(1, wrong, b"mallory"), Err(ApproveError::RateLimited));
    // Even the right code is refused to a source that is in its back-off...
    assert_eq!(p.user_code_info(1, &code, b"mallory"), Err(ApproveError::RateLimited));
    // ...but another source is not affected, and the wait is short.
    assert!(p.user_code_info(1, &code, b"alice").is_ok());
    assert!(p.user_code_info(2, &code, b"mallory").is_ok());
    assert_eq!(p.user_code_info(2, wrong, b"mallory"), Err(ApproveError::InvalidCode));
    assert_eq!(p.user_code_info(3, &code, b"mallory"), Err(ApproveError::RateLimited), "now 2 s");
    assert!(p.user_code_info(4, &code, b"mallory").is_ok());
    // The source is remembered for a whole window after its last failure, so the back-off keeps
    // growing while it keeps guessing; a quiet window forgets it.
    let quiet = 2 + u64::from(limits.window);
    assert_eq!(p.user_code_info(quiet, wrong, b"mallory"), Err(ApproveError::InvalidCode));
    assert_eq!(p.user_code_info(quiet, wrong, b"mallory"), Err(ApproveError::InvalidCode), "free again");
}

#[test]
fn wrong_guesses_are_limited_globally() {
    let (mut p, mut rng) = setup();
    let limits = p.config().limits;
    assert_eq!((limits.global, limits.per_source), (32, 5), "the defaults the crate documents");
    let t0 = 1000;
    let a = start(&mut p, &mut rng, t0, public("tv"));
    let code = a.user_code.display();
    let wrong = wrong_code(&a);
    // Spread over few sources, each within its own budget (and the 16-entry source table far from
    // full), so that only the global budget can refuse. The first wrong guess opens the window.
    let source = |i: u16| (i / limits.per_source).to_be_bytes();
    for i in 0..limits.global {
        assert_eq!(p.user_code_info(t0, wrong, &source(i)), Err(ApproveError::InvalidCode), "guess {i}");
    }
    // The budget is spent: a source that has not guessed yet, and one with budget left, are refused,
    // even with the right code.
    let fresh = source(limits.global + limits.per_source);
    assert_eq!(p.user_code_info(t0, wrong, &fresh), Err(ApproveError::RateLimited));
    assert_eq!(p.user_code_info(t0 + 1, &code, &fresh), Err(ApproveError::RateLimited));
    assert_eq!(p.user_code_info(t0 + 1, &code, &source(limits.global - 1)), Err(ApproveError::RateLimited));
    // The window does not reopen early: still refused in its last second, open at its end.
    let end = t0 + u64::from(limits.window);
    assert_eq!(p.user_code_info(end - 1, &code, &fresh), Err(ApproveError::RateLimited));
    assert!(p.user_code_info(end, &code, &fresh).is_ok());
}

/// An attacker with every source it likes guesses as fast as the budgets allow during the lifetime of
/// one code, its first global window opened `lead` seconds before the code was issued. Returns the
/// wrong guesses admitted while the code was live.
fn guesses_during_a_lifetime(lead: u64) -> u64 {
    let (mut p, mut rng) = setup();
    let cfg = p.config().clone();
    let t0 = 10_000;
    // Opens a window `lead` seconds early, with one guess that cannot hit the code (not issued yet).
    assert_eq!(p.user_code_info(t0 - lead, "BBBB-BBBB", b"opener"), Err(ApproveError::InvalidCode));
    let a = start(&mut p, &mut rng, t0, public("tv"));
    let wrong = wrong_code(&a);
    let mut admitted = 0;
    for t in t0..t0 + u64::from(cfg.device_code_lifetime) {
        // Every second, every source of a pool guesses until refused (the pool's 16 × 5 per window
        // is more than the global 32, so only the global budget binds).
        for s in 0u8..16 {
            for _ in 0..=cfg.limits.per_source {
                match p.user_code_info(t, wrong, &[b'a', s]) {
                    Err(ApproveError::InvalidCode) => admitted += 1,
                    Err(ApproveError::RateLimited) => break,
                    other => panic!("t = {t}: {other:?}"),
                }
            }
        }
    }
    // The loop covered the code's whole life and no more.
    let end = t0 + u64::from(cfg.device_code_lifetime);
    assert_eq!((p.live_grants(end - 1), p.live_grants(end)), (1, 0));
    admitted
}

#[test]
fn the_documented_guessing_bound_holds_for_the_configuration() {
    let (mut p, mut rng) = setup();
    let cfg = p.config().clone();
    // L: live codes at once, the grant table's capacity (filled here, not assumed).
    let mut live = 0u64;
    while p.device_authorization(0, &DeviceAuthorizationRequest { client: public("tv"), scope: None }, &mut rng).is_ok()
    {
        live += 1;
        assert!(live <= 1 << 16, "the grant table never fills");
    }
    // The bound of the `limit` docs: global × (⌈T / window⌉ + 1) wrong guesses during a lifetime T,
    // each hitting one of L live codes out of 20^8.
    let windows = u64::from(cfg.device_code_lifetime.div_ceil(cfg.limits.window)) + 1;
    let max_wrong = u64::from(cfg.limits.global) * windows;
    let bound = (max_wrong * live) as f64 / oauth2_devices::code::USER_CODE_SPACE as f64;
    assert_eq!((live, windows, max_wrong), (16, 11, 352));
    // The docs say ≈ 2.2·10^-7 (and the README about 2·10^-7).
    assert!((bound - 2.2e-7).abs() < 0.005e-7, "bound {bound:e}");
    // What an attacker gets: never more than the bound's guesses, and with the worst alignment of
    // windows more than ⌈T / window⌉ windows' worth, so the "+ 1" is needed.
    let full_windows = u64::from(cfg.limits.global) * u64::from(cfg.device_code_lifetime.div_ceil(cfg.limits.window));
    let mut worst = 0;
    for lead in [0, 1, 30, u64::from(cfg.limits.window) - 1] {
        let got = guesses_during_a_lifetime(lead);
        assert!(got <= max_wrong, "lead {lead}: {got} wrong guesses admitted, bound {max_wrong}");
        worst = worst.max(got);
    }
    assert!(worst > full_windows, "worst case {worst}, {full_windows} without the extra window");
}

#[test]
fn guess_bound_computes_the_documented_formula() {
    let p = setup().0;
    let c = p.config();
    // global × (⌈T / window⌉ + 1) × L / 20^8, with L the grant table's 16 slots.
    let bound = oauth2_devices::limit::guess_bound(&c.limits, c.device_code_lifetime, 16).unwrap();
    let by_hand = 32.0 * (600.0_f64 / 60.0 + 1.0) * 16.0 / 20f64.powi(8);
    assert!((bound - by_hand).abs() < 1e-12, "{bound} vs {by_hand}");
    assert!(bound < 2.3e-7 && bound > 2.1e-7, "the docs say about 2.2e-7: {bound}");
    assert_eq!(oauth2_devices::limit::guess_bound(&c.auth_limits, 600, 16), None, "no global budget, no bound");
}

#[test]
fn bearer_errors_including_wrong_key() {
    let (mut p, mut rng) = setup();
    let a = start(&mut p, &mut rng, 0, public("tv"));
    approve(&mut p, 1, &a);
    let t = p.token(2, &poll(public("tv"), &a.device_code)).unwrap();
    let header = format!("Bearer {}", t.access_token);
    assert!(p.check_bearer(3, Some(&header), ScopeSet::EMPTY).is_ok());
    assert_eq!(p.check_bearer(3, Some("Basic abc"), ScopeSet::EMPTY), Err(BearerError::Missing));
    assert_eq!(p.check_bearer(3, Some("Bearer"), ScopeSet::EMPTY), Err(BearerError::Malformed));
    assert_eq!(p.check_bearer(3, Some("Bearer a,b"), ScopeSet::EMPTY), Err(BearerError::Malformed));
    assert_eq!(p.check_bearer(3, Some("Bearer abc"), ScopeSet::EMPTY), Err(BearerError::Invalid));
    assert_eq!(p.check_bearer(3, Some("bearer  ".to_owned().as_str()), ScopeSet::EMPTY), Err(BearerError::Malformed));
    // The scheme is case-insensitive.
    assert!(p.check_bearer(3, Some(&format!("bEaReR {}", t.access_token)), ScopeSet::EMPTY).is_ok());
    // A token signed by another server's key with the same id (1) and the same history, so that only
    // the MAC tells it apart: its key id, client, family slot and serial are all ones `p` knows.
    let (mut other, mut rng2) = setup();
    other.keys_mut().rotate(ServerKey::new(2, &[1; 32])).unwrap();
    other.keys_mut().rotate(ServerKey::new(1, &[1; 32])).unwrap();
    other.keys_mut().retire_previous();
    assert_eq!(other.keys().current().map(|k| k.id()), p.keys().current().map(|k| k.id()));
    let b = start(&mut other, &mut rng2, 0, public("tv"));
    approve(&mut other, 1, &b);
    let foreign = other.token(2, &poll(public("tv"), &b.device_code)).unwrap();
    let (mine, theirs) =
        (AccessClaims::peek(&t.access_token).unwrap(), AccessClaims::peek(&foreign.access_token).unwrap());
    assert_eq!(theirs, mine, "same claims, different key material");
    assert_ne!(foreign.access_token, t.access_token);
    assert_eq!(
        p.check_bearer(3, Some(&format!("Bearer {}", foreign.access_token)), ScopeSet::EMPTY),
        Err(BearerError::Invalid)
    );
    // Tampered claims (scope bits widened) fail the MAC.
    let claims = AccessClaims::peek(&t.access_token).unwrap();
    let forged = AccessClaims { scopes: ScopeSet::from_bits(7), ..claims }.encode(&ServerKey::new(1, &[0; 32]), "tv");
    assert_eq!(p.check_bearer(3, Some(&format!("Bearer {forged}")), ScopeSet::EMPTY), Err(BearerError::Invalid));
    // Statuses and the challenge.
    assert_eq!(BearerError::Missing.http_status(), 401);
    assert_eq!(BearerError::Malformed.http_status(), 400);
    assert_eq!(BearerError::Revoked.http_status(), 401);
    assert_eq!(BearerError::InsufficientScope.http_status(), 403);
    let mut challenge = String::new();
    let profile = p.scopes().parse("profile").unwrap();
    BearerError::InsufficientScope.write_challenge("gw", profile, p.scopes(), &mut challenge).unwrap();
    assert_eq!(
        challenge,
        r#"Bearer realm="gw", error="insufficient_scope", error_description="token lacks a required scope", scope="profile""#
    );
    challenge.clear();
    BearerError::Missing.write_challenge("gw", profile, p.scopes(), &mut challenge).unwrap();
    assert_eq!(challenge, r#"Bearer realm="gw""#);
}

#[test]
fn key_rotation_keeps_old_tokens_until_retired() {
    let (mut p, mut rng) = setup();
    let a = start(&mut p, &mut rng, 0, public("tv"));
    approve(&mut p, 1, &a);
    let t = p.token(2, &poll(public("tv"), &a.device_code)).unwrap();
    let pending = start(&mut p, &mut rng, 3, public("tv"));
    p.keys_mut().rotate(ServerKey::new(2, &[2; 32])).unwrap();
    let header = format!("Bearer {}", t.access_token);
    assert!(p.check_bearer(4, Some(&header), ScopeSet::EMPTY).is_ok());
    assert_eq!(err(p.token(4, &poll(public("tv"), &pending.device_code))), ErrorCode::AuthorizationPending);
    // Refresh under the old key yields tokens under the new key.
    let r = TokenRequest {
        client: public("tv"),
        grant: Grant::RefreshToken { refresh_token: t.refresh_token.as_ref().unwrap(), scope: None },
    };
    let t2 = p.token(5, &r).unwrap();
    assert_eq!(AccessClaims::peek(&t2.access_token).unwrap().key_id, 2);
    p.keys_mut().retire_previous();
    assert_eq!(p.check_bearer(6, Some(&header), ScopeSet::EMPTY), Err(BearerError::Invalid));
    assert_eq!(err(p.token(10, &poll(public("tv"), &pending.device_code))), ErrorCode::InvalidGrant);
    assert!(p.check_bearer(6, Some(&format!("Bearer {}", t2.access_token)), ScopeSet::EMPTY).is_ok());
}

#[test]
fn a_full_family_table_refuses_the_approval_and_a_revocation_makes_room() {
    let (mut p, mut rng) = setup();
    let mut tokens = Vec::new();
    // 16 families, of 16 users, fill the table (`cli`: no refresh, families live as long as access tokens).
    let sensors = p.scopes().parse("sensors:read").unwrap();
    for i in 0..16 {
        let a = start(&mut p, &mut rng, i, public("cli"));
        p.approve(i, &a.user_code.display(), b"u", i as u32, sensors).unwrap();
        tokens.push(p.token(i, &poll(public("cli"), &a.device_code)).unwrap());
    }
    // Capacity is checked before consent: the 17th approval is refused, its grant stays undecided.
    let a = start(&mut p, &mut rng, 20, public("cli"));
    assert_eq!(p.approve(21, &a.user_code.display(), b"u", 99, sensors), Err(ApproveError::DevicesFull));
    assert_eq!(err(p.token(22, &poll(public("cli"), &a.device_code))), ErrorCode::AuthorizationPending);
    // Revoking one frees a family; the approval then succeeds and the exchange is certain.
    let q = TokenQuery { client: public("cli"), token: &tokens[0].access_token };
    p.revoke(23, &q).unwrap();
    p.approve(24, &a.user_code.display(), b"u", 99, sensors).unwrap();
    assert!(p.token(30, &poll(public("cli"), &a.device_code)).is_ok());
    assert_eq!(p.live_families(30), 16);
}

#[test]
fn an_account_at_its_limit_is_refused_before_consent() {
    let (mut p, mut rng) = setup();
    let limit = p.config().families_per_user;
    for i in 0..u64::from(limit) {
        let a = start(&mut p, &mut rng, i, public("tv"));
        p.approve(i, &a.user_code.display(), b"u", 7, ScopeSet::EMPTY).unwrap();
        p.token(i, &poll(public("tv"), &a.device_code)).unwrap();
    }
    let a = start(&mut p, &mut rng, 100, public("tv"));
    assert_eq!(p.approve(100, &a.user_code.display(), b"u", 7, ScopeSet::EMPTY), Err(ApproveError::AccountFull));
    // Another user is not affected by user 7's limit (the table itself has no room left, though).
    assert_eq!(p.approve(100, &a.user_code.display(), b"u", 8, ScopeSet::EMPTY), Err(ApproveError::DevicesFull));
}

#[test]
fn introspection_and_revocation_rules() {
    let (mut p, mut rng) = setup();
    let a = start(&mut p, &mut rng, 0, public("tv"));
    approve(&mut p, 1, &a);
    let t = p.token(2, &poll(public("tv"), &a.device_code)).unwrap();
    let rt = t.refresh_token.clone().unwrap();
    // Public clients cannot introspect.
    let q = TokenQuery { client: public("tv"), token: &t.access_token };
    assert_eq!(err(p.introspect(3, &q)), ErrorCode::InvalidClient);
    let pq = |token| TokenQuery { client: printer(Some("s3cret")), token };
    assert!(matches!(p.introspect(3, &pq(&rt)), Ok(Introspection::Refresh(_))));
    assert_eq!(p.introspect(3, &pq("junk")), Ok(Introspection::Inactive));
    let mut buf = [0u8; 256];
    let n = Introspection::Inactive.write_json(p.scopes(), p.clients(), &mut buf).unwrap();
    assert_eq!(&buf[..n], br#"{"active":false}"#);
    let Ok(active) = p.introspect(3, &pq(&t.access_token)) else { panic!() };
    let n = active.write_json(p.scopes(), p.clients(), &mut buf).unwrap();
    let json = std::str::from_utf8(&buf[..n]).unwrap();
    assert!(
        json.starts_with(r#"{"active":true,"scope":"","client_id":"tv","sub":"1","token_type":"Bearer","exp":"#),
        "{json}"
    );
    // Another client's revocation of tv's token is ignored (RFC 7009 §2.1), with success.
    p.revoke(4, &pq(&t.access_token)).unwrap();
    assert!(matches!(p.introspect(4, &pq(&t.access_token)), Ok(Introspection::Access(_))));
    // Revoking the refresh token revokes the access token too.
    p.revoke(4, &TokenQuery { client: public("tv"), token: &rt }).unwrap();
    assert_eq!(p.introspect(5, &pq(&t.access_token)), Ok(Introspection::Inactive));
    // Unknown client on revocation.
    assert_eq!(err(p.revoke(4, &TokenQuery { client: public("ghost"), token: &rt })), ErrorCode::InvalidClient);
}
