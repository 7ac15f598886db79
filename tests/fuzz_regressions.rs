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

/// Every other spelling of `text`, the base64url (no padding) encoding of `bytes` bytes, that differs
/// only in the bits of its last character that carry no data: `6 × chars − 8 × bytes` of them.
fn non_canonical_spellings(text: &str, bytes: usize) -> Vec<String> {
    let unused = 6 * text.len() - 8 * bytes;
    assert!(unused < 6, "{text}: not the encoding of {bytes} bytes");
    let mask = (1 << unused) - 1;
    let last = *text.as_bytes().last().unwrap();
    let value = B64URL.iter().position(|&c| c == last).unwrap();
    assert_eq!(value & mask, 0, "the canonical encoding has its unused bits clear");
    let spellings: Vec<String> = (1..=mask)
        .map(|low| {
            let mut s = text[..text.len() - 1].to_owned();
            s.push(char::from(B64URL[value | low]));
            s
        })
        .collect();
    assert_eq!(spellings.len(), (1 << unused) - 1);
    spellings
}

/// `tokens` target, mode 0: whatever verifies is the canonical encoding of its claims. An access token
/// (37 bytes in 50 characters) leaves 4 bits of its last character unused, a refresh token (29 bytes in
/// 39) 2: a decoder that ignored them would accept 16 or 4 spellings of one token (and break every
/// "exact string" check, such as a revocation list kept by a client).
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
    let spellings = non_canonical_spellings(&token, 37);
    assert_eq!(spellings.len(), 15);
    for spelling in spellings {
        assert_eq!(AccessClaims::verify(&spelling, &ring, "tv"), None, "{spelling}");
    }
    let refresh = RefreshClaims { key_id: 1, client: 0, family_slot: 2, serial: 9, counter: 0 };
    let token = refresh.encode(&key, "tv");
    assert_eq!(RefreshClaims::verify(&token, &ring, "tv"), Some(refresh));
    let spellings = non_canonical_spellings(&token, 29);
    assert_eq!(spellings.len(), 3);
    for spelling in spellings {
        assert_eq!(RefreshClaims::verify(&spelling, &ring, "tv"), None, "{spelling}");
    }
    // A device code is 24 bytes: every bit of its 32 characters is used, so any change is a new value.
    let code = DeviceCodeClaims { key_id: 1, slot: 0, serial: 7 }.encode(&key, "tv");
    assert!(non_canonical_spellings(&code, 24).is_empty());
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
