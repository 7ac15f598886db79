//! Inputs and properties from the fuzz targets in `fuzz/`, replayed through the public API so that they
//! run with `cargo test` on every machine (the fuzzers need nightly and are run by `.ci/fuzz.sh`).
//!
//! Each test names the target and property it comes from. A crash found by a fuzzer gets a test here
//! that fails before its fix; properties the targets rely on are pinned here too, so a change that
//! breaks them fails fast without a fuzzing run.

use oauth2_devices::code::DeviceCodeClaims;
use oauth2_devices::key::{KeyRing, ServerKey};
use oauth2_devices::provider::{parse_bearer, BearerError};
use oauth2_devices::scope::ScopeSet;
use oauth2_devices::token::{AccessClaims, RefreshClaims};

const B64URL: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

/// Every spelling of `text` that differs only in the unused low bits of its last character.
fn non_canonical_spellings(text: &str) -> Vec<String> {
    let last = *text.as_bytes().last().unwrap();
    let value = B64URL.iter().position(|&c| c == last).unwrap();
    (0..4)
        .map(|low| (value & !3) | low)
        .filter(|&v| v != value)
        .map(|v| {
            let mut s = text[..text.len() - 1].to_owned();
            s.push(char::from(B64URL[v]));
            s
        })
        .collect()
}

/// `tokens` target, mode 0: whatever verifies is the canonical encoding of its claims. Access (37 bytes)
/// and refresh (29 bytes) tokens leave 2 bits of their last base64url character unused; a decoder that
/// ignored them would accept four spellings of one token (and break every "exact string" check, such
/// as a revocation list kept by a client).
#[test]
fn tokens_reject_non_canonical_base64() {
    let key = ServerKey::new(1, &[0x5a; 32]);
    let ring = KeyRing::new(key.clone());
    let access = AccessClaims {
        key_id: 1,
        client: 0,
        family_slot: 1,
        serial: 9,
        user: 42,
        scopes: ScopeSet::from_bits(3),
        expires_at: 1000,
    };
    let token = access.encode(&key, "tv");
    assert_eq!(AccessClaims::verify(&token, &ring, "tv"), Some(access));
    for spelling in non_canonical_spellings(&token) {
        assert_eq!(AccessClaims::verify(&spelling, &ring, "tv"), None, "{spelling}");
    }
    let refresh = RefreshClaims { key_id: 1, client: 0, family_slot: 2, serial: 9, counter: 0 };
    let token = refresh.encode(&key, "tv");
    assert_eq!(RefreshClaims::verify(&token, &ring, "tv"), Some(refresh));
    for spelling in non_canonical_spellings(&token) {
        assert_eq!(RefreshClaims::verify(&spelling, &ring, "tv"), None, "{spelling}");
    }
    // A device code is 24 bytes: every bit of its 32 characters is used, so any change is a new value.
    let code = DeviceCodeClaims { key_id: 1, slot: 0, serial: 7 }.encode(&key, "tv");
    assert!(DeviceCodeClaims::decode(&code, &ring, "tv").is_some());
}

/// `provider` target, `Bearer` with a token followed by a space: `parse_bearer` trims spaces around the
/// token, so the header names the real token (the harness first counted it as a forgery).
#[test]
fn bearer_header_tolerates_spaces_around_the_token() {
    assert_eq!(parse_bearer(Some("Bearer abc ")), Ok("abc"));
    assert_eq!(parse_bearer(Some("bEARER   abc  ")), Ok("abc"));
    assert_eq!(parse_bearer(Some("Bearer a bc")), Err(BearerError::Malformed));
    assert_eq!(parse_bearer(Some("Bearer")), Err(BearerError::Malformed));
    assert_eq!(parse_bearer(Some("Basic abc")), Err(BearerError::Missing));
}
