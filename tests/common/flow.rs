//! The whole device flow as one scenario, shared by the host test (`tests/flow.rs`), the zero-allocation
//! test (`tests/no_alloc.rs`) and the Cortex-M4 binary run under QEMU (`tests/qemu`).
//!
//! It is `no_std` and allocation-free; it reports progress through `core::fmt::Write` and returns the
//! first failed expectation.
#![allow(dead_code)]

use core::fmt::Write;

use oauth2_devices::heapless;
use oauth2_devices::prelude::*;
use oauth2_devices::provider::Introspection;
use rand_core::SeedableRng;

/// The sample configuration used by the tests.
pub type TestProvider = oauth2_devices_support::sample::SampleProvider;

/// The scope names of the tests.
pub static SCOPES: &[&str] = oauth2_devices_support::sample::SCOPES;

/// The tests' sample provider (`oauth2_devices_support::sample::TESTS`): a public client `tv`, a
/// confidential `printer` (secret `s3cret`), and a public `cli` client limited to `sensors:read`
/// without refresh tokens.
pub fn provider(rng: &mut rand_chacha::ChaCha20Rng) -> Result<TestProvider, &'static str> {
    oauth2_devices_support::sample::TESTS.provider(rng).map_err(|e| e.0)
}

pub fn public(id: &str) -> ClientCredentials<'_> {
    ClientCredentials::new(id, None)
}

macro_rules! check {
    ($out:expr, $cond:expr, $msg:expr) => {
        if !$cond {
            let _ = writeln!($out, "FAILED: {}", $msg);
            return Err($msg);
        }
    };
}

fn code_of<T>(r: &Result<T, OAuthError>) -> Option<ErrorCode> {
    r.as_ref().err().map(|e| e.code)
}

/// Runs the scenario. Each step prints one line.
pub fn run<W: Write>(out: &mut W) -> Result<(), &'static str> {
    let s = sizes();
    let _ = writeln!(out, "sizes: {s:?}");
    check!(out, s == EXPECTED, "sizes differ from the documented ones");
    let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(2026);
    let mut p = provider(&mut rng)?;
    let profile = p.scopes().parse("profile").map_err(|_| "scope")?;
    let both = p.scopes().parse("profile email").map_err(|_| "scope")?;
    let tv = public("tv");

    // 1. Device authorization.
    let req = DeviceAuthorizationRequest { client: tv, scope: Some("profile email") };
    let auth = p.device_authorization(1000, &req, &mut rng).map_err(|_| "device authorization")?;
    let mut json = [0u8; 512];
    let n = auth.write_json(p.config(), &mut json).map_err(|_| "json")?;
    let body = core::str::from_utf8(json.get(..n).unwrap_or_default()).map_err(|_| "utf8")?;
    check!(out, body.contains("\"verification_uri\":\"https://gw.example/activate\""), "verification_uri");
    check!(out, body.contains("verification_uri_complete"), "verification_uri_complete");
    check!(out, body.contains("\"interval\":5") && body.contains("\"expires_in\":600"), "interval and expires_in");
    let _ = writeln!(out, "device authorization: user code {}", auth.user_code);

    // 2. Polling: pending, then slow_down, then pending again at the new interval.
    let poll = TokenRequest { client: tv, grant: Grant::DeviceCode { device_code: &auth.device_code } };
    check!(out, code_of(&p.token(1000, &poll)) == Some(ErrorCode::AuthorizationPending), "first poll pending");
    check!(out, code_of(&p.token(1002, &poll)) == Some(ErrorCode::SlowDown), "fast poll slow_down");
    check!(out, code_of(&p.token(1009, &poll)) == Some(ErrorCode::SlowDown), "still too fast for 10 s");
    check!(out, code_of(&p.token(1015, &poll)) == Some(ErrorCode::AuthorizationPending), "obeying 15 s passes");
    let _ = writeln!(out, "polling: pending, slow_down x2, pending");

    // 3. Approval on the verification page (lower case, no dash) with one of the two scopes.
    let mut typed = heapless::String::<16>::new();
    for c in auth.user_code.display().chars().filter(|c| *c != '-') {
        let _ = typed.push(c.to_ascii_lowercase());
    }
    let info = p.user_code_info(1020, &typed, b"user:7").map_err(|_| "info")?;
    check!(out, info.scopes == both && info.state == GrantState::Polling, "info shows the request");
    check!(
        out,
        p.approve(1020, &typed, b"user:7", 7, both.union(ScopeSet::from_bits(4)))
            == Err(ApproveError::ScopeNotRequested),
        "no widening"
    );
    p.approve(1021, &typed, b"user:7", 7, profile).map_err(|_| "approve")?;
    check!(out, p.deny(1022, &typed, b"user:7") == Err(ApproveError::AlreadyDecided), "decided once");
    let _ = writeln!(out, "approved by user 7 with scope profile");

    // 4. Token exchange.
    let tokens = p.token(1040, &poll).map_err(|_| "token exchange")?;
    check!(out, tokens.scopes == profile && tokens.expires_in == 3600, "token scope and lifetime");
    let n = tokens.write_json(p.scopes(), &mut json).map_err(|_| "json")?;
    let body = core::str::from_utf8(json.get(..n).unwrap_or_default()).map_err(|_| "utf8")?;
    check!(out, body.contains("\"token_type\":\"Bearer\"") && body.contains("\"scope\":\"profile\""), "token json");
    let refresh = tokens.refresh_token.clone().ok_or("refresh token")?;
    let _ = writeln!(out, "token issued ({} bytes of JSON)", n);

    // 5. Bearer checks.
    let mut header = heapless::String::<80>::new();
    let _ = write!(header, "Bearer {}", tokens.access_token);
    let ok = p.check_bearer(1050, Some(&header), profile).map_err(|_| "bearer")?;
    check!(out, ok.user == 7 && ok.client == 0, "bearer identifies user and client");
    check!(out, p.check_bearer(1050, Some(&header), both) == Err(BearerError::InsufficientScope), "insufficient scope");
    check!(out, p.check_bearer(1050, None, profile) == Err(BearerError::Missing), "missing");
    check!(out, p.check_bearer(1050, Some("Bearer a b"), profile) == Err(BearerError::Malformed), "malformed");
    let _ = writeln!(out, "bearer: ok, insufficient_scope, missing, malformed");

    // 6. Refresh with rotation; narrowing allowed, widening refused; replay revokes the family.
    let r1 = TokenRequest {
        client: tv,
        grant: Grant::RefreshToken { refresh_token: &refresh, scope: Some("profile email") },
    };
    check!(out, code_of(&p.token(1100, &r1)) == Some(ErrorCode::InvalidScope), "refresh cannot widen");
    let r1 = TokenRequest { client: tv, grant: Grant::RefreshToken { refresh_token: &refresh, scope: None } };
    let t2 = p.token(1100, &r1).map_err(|_| "refresh")?;
    let refresh2 = t2.refresh_token.clone().ok_or("rotated refresh token")?;
    check!(out, refresh2 != refresh, "refresh token rotates");
    check!(out, code_of(&p.token(1101, &r1)) == Some(ErrorCode::InvalidGrant), "replayed refresh token");
    let mut h2 = heapless::String::<80>::new();
    let _ = write!(h2, "Bearer {}", t2.access_token);
    check!(out, p.check_bearer(1102, Some(&h2), profile) == Err(BearerError::Revoked), "replay revokes the family");
    let r2 = TokenRequest { client: tv, grant: Grant::RefreshToken { refresh_token: &refresh2, scope: None } };
    check!(out, code_of(&p.token(1103, &r2)) == Some(ErrorCode::InvalidGrant), "family stays revoked");
    let _ = writeln!(out, "refresh: rotation, no widening, replay revokes the family");

    // 7. A second grant, revoked through RFC 7009, then introspected.
    let auth2 = p
        .device_authorization(2000, &DeviceAuthorizationRequest { client: tv, scope: None }, &mut rng)
        .map_err(|_| "auth2")?;
    p.approve(2001, &auth2.user_code.display(), b"user:7", 7, ScopeSet::EMPTY).map_err(|_| "approve2")?;
    let poll2 = TokenRequest { client: tv, grant: Grant::DeviceCode { device_code: &auth2.device_code } };
    let t3 = p.token(2002, &poll2).map_err(|_| "token2")?;
    let printer = ClientCredentials::new("printer", Some("s3cret"));
    let q = TokenQuery { client: printer, token: &t3.access_token };
    check!(out, matches!(p.introspect(2003, &q), Ok(Introspection::Access(_))), "introspection active");
    let revoke = TokenQuery { client: tv, token: &t3.access_token };
    p.revoke(2003, &revoke).map_err(|_| "revoke")?;
    check!(out, p.introspect(2004, &q) == Ok(Introspection::Inactive), "introspection inactive after revoke");
    let _ = writeln!(out, "revocation and introspection");

    // 8. Denial.
    let auth3 = p.device_authorization(3000, &req, &mut rng).map_err(|_| "auth3")?;
    p.deny(3001, &auth3.user_code.display(), b"user:7").map_err(|_| "deny")?;
    let poll3 = TokenRequest { client: tv, grant: Grant::DeviceCode { device_code: &auth3.device_code } };
    check!(out, code_of(&p.token(3002, &poll3)) == Some(ErrorCode::AccessDenied), "access_denied");
    let _ = writeln!(out, "denial: access_denied");

    // 9. Expiry, even of an approved grant.
    let auth4 = p.device_authorization(4000, &req, &mut rng).map_err(|_| "auth4")?;
    p.approve(4001, &auth4.user_code.display(), b"user:7", 7, profile).map_err(|_| "approve4")?;
    let poll4 = TokenRequest { client: tv, grant: Grant::DeviceCode { device_code: &auth4.device_code } };
    check!(out, code_of(&p.token(4600, &poll4)) == Some(ErrorCode::ExpiredToken), "approved but expired");
    check!(
        out,
        p.approve(4600, &auth4.user_code.display(), b"user:7", 7, profile) == Err(ApproveError::Expired),
        "page says expired"
    );
    let _ = writeln!(out, "expiry: expired_token");

    // 10. The access token of step 4, past its lifetime (last: the provider's clock never goes back).
    check!(out, p.check_bearer(1040 + 3600, Some(&header), profile) == Err(BearerError::Expired), "expired");
    let _ = writeln!(out, "bearer: expired");
    Ok(())
}

/// Memory figures of the sample configuration.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sizes {
    pub pending_grant: usize,
    pub family: usize,
    pub limiter_source: usize,
    pub client: usize,
    pub provider: usize,
}

/// The figures documented in the crate docs, for this target.
#[cfg(target_pointer_width = "64")]
pub const EXPECTED: Sizes = Sizes { pending_grant: 32, family: 32, limiter_source: 32, client: 176, provider: 2872 };
#[cfg(target_pointer_width = "32")]
pub const EXPECTED: Sizes = Sizes { pending_grant: 32, family: 32, limiter_source: 32, client: 164, provider: 2808 };

/// Measures the figures; per-entry sizes are differences between providers one entry apart.
pub fn sizes() -> Sizes {
    use core::mem::size_of;
    type P<const F: usize, const S: usize> = Provider<FixedClients<4>, FixedGrants<16>, F, S>;
    Sizes {
        pending_grant: size_of::<Option<oauth2_devices::grant::PendingGrant>>(),
        // Eight entries apart, so the provider's own alignment padding does not blur the figure.
        family: (size_of::<P<24, 16>>() - size_of::<P<16, 16>>()) / 8,
        limiter_source: (size_of::<P<16, 24>>() - size_of::<P<16, 16>>()) / 8,
        client: size_of::<FixedClients<5>>() - size_of::<FixedClients<4>>(),
        provider: size_of::<TestProvider>(),
    }
}
