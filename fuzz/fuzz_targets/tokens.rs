//! Device codes, access tokens and refresh tokens.
//!
//! Mode 0 (first byte ≡ 0 mod 4): the rest of the input, as text, is decoded and verified as each of the
//! three under a fixed key ring and three client ids. Nothing may panic, and whatever verifies must be
//! the canonical encoding of its claims (re-encoding gives back the same text), so no two strings are
//! the same token.
//!
//! Other modes: arbitrary claims for an arbitrary client id are encoded under one of the ring's keys and
//! must verify to the same claims, for that client only, as that kind of token only, and under no
//! other key; every single-byte change, truncation and extension of the encoding must fail.
#![no_main]

use arbitrary::{Arbitrary, Unstructured};
use libfuzzer_sys::fuzz_target;
use oauth2_devices::code::{DeviceCodeClaims, DEVICE_CODE_LEN};
use oauth2_devices::fuzzing::server_key;
use oauth2_devices::key::{KeyRing, ServerKey};
use oauth2_devices::scope::ScopeSet;
use oauth2_devices::token::{AccessClaims, RefreshClaims, ACCESS_TOKEN_LEN, REFRESH_TOKEN_LEN};

/// The ring: key 1 (generation 0) is current, key 2 (generation 1) the previous one.
fn ring() -> KeyRing {
    let mut ring = KeyRing::new(server_key(2, 1));
    ring.rotate(server_key(1, 0)).expect("distinct ids");
    ring
}

/// The clients tokens are checked for in mode 0; the seeds hold valid tokens for them.
const CLIENT_IDS: [&str; 3] = ["tv", "svc", ""];

fn decode_any(text: &str) {
    let keys = ring();
    let key_of = |id: u8| keys.get(id).expect("verified under a key of the ring");
    for client in CLIENT_IDS {
        if let Some(c) = DeviceCodeClaims::decode(text, &keys, client) {
            assert_eq!(c.encode(key_of(c.key_id), client).as_str(), text, "non-canonical device code");
        }
        if let Some(c) = AccessClaims::verify(text, &keys, client) {
            assert_eq!(c.encode(key_of(c.key_id), client).as_str(), text, "non-canonical access token");
            assert_eq!(AccessClaims::peek(text), Some(c));
        }
        if let Some(c) = RefreshClaims::verify(text, &keys, client) {
            assert_eq!(c.encode(key_of(c.key_id), client).as_str(), text, "non-canonical refresh token");
            assert_eq!(RefreshClaims::peek(text), Some(c));
        }
    }
    // The index-keyed variants, with a registry of the three ids.
    let lookup = |i: u8| CLIENT_IDS.get(usize::from(i)).copied();
    if let Some(c) = AccessClaims::verify_with(text, &keys, lookup) {
        assert_eq!(Some(c), AccessClaims::verify(text, &keys, CLIENT_IDS[usize::from(c.client)]));
    }
    if let Some(c) = RefreshClaims::verify_with(text, &keys, lookup) {
        assert_eq!(Some(c), RefreshClaims::verify(text, &keys, CLIENT_IDS[usize::from(c.client)]));
    }
    // Peeking never panics and never sees more than an open of the right length and tag.
    if let Some(c) = AccessClaims::peek(text) {
        assert_eq!(text.len(), ACCESS_TOKEN_LEN, "{c:?}");
    }
    if let Some(c) = RefreshClaims::peek(text) {
        assert_eq!(text.len(), REFRESH_TOKEN_LEN, "{c:?}");
    }
}

#[derive(Debug, Arbitrary)]
enum Claims {
    Device { slot: u16, serial: u32 },
    Access { client: u8, family_slot: u16, serial: u32, user: u32, scopes: u32, expires_at: u32 },
    Refresh { client: u8, family_slot: u16, serial: u32, counter: u32 },
}

#[derive(Debug, Arbitrary)]
struct RoundTrip {
    claims: Claims,
    previous_key: bool,
    client_id: String,
    other_client_id: String,
    /// Single-byte edits: (position, new byte).
    edits: Vec<(u8, u8)>,
}

/// What one kind of token does with a string: its claims (in a common form) if it verifies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Verified {
    Device(DeviceCodeClaims),
    Access(AccessClaims),
    Refresh(RefreshClaims),
}

fn verify_as_each(text: &str, keys: &KeyRing, client: &str) -> [Option<Verified>; 3] {
    [
        DeviceCodeClaims::decode(text, keys, client).map(Verified::Device),
        AccessClaims::verify(text, keys, client).map(Verified::Access),
        RefreshClaims::verify(text, keys, client).map(Verified::Refresh),
    ]
}

fn round_trip(u: &mut Unstructured<'_>) -> arbitrary::Result<()> {
    let input = RoundTrip::arbitrary(u)?;
    let keys = ring();
    let key: &ServerKey =
        if input.previous_key { keys.previous().expect("two keys") } else { keys.current().expect("one key") };
    let key_id = key.id();
    let client = input.client_id.as_str();
    let (encoded, expected, kind, len): (String, Verified, usize, usize) = match input.claims {
        Claims::Device { slot, serial } => {
            let c = DeviceCodeClaims { key_id, slot, serial };
            (c.encode(key, client).to_string(), Verified::Device(c), 0, DEVICE_CODE_LEN)
        }
        Claims::Access { client: index, family_slot, serial, user, scopes, expires_at } => {
            let scopes = ScopeSet::from_bits(scopes);
            let c = AccessClaims { key_id, client: index, family_slot, serial, user, scopes, expires_at };
            assert_eq!(
                AccessClaims::verify_with(&c.encode(key, client), &keys, |i| (i == index).then_some(client)),
                Some(c)
            );
            (c.encode(key, client).to_string(), Verified::Access(c), 1, ACCESS_TOKEN_LEN)
        }
        Claims::Refresh { client: index, family_slot, serial, counter } => {
            let c = RefreshClaims { key_id, client: index, family_slot, serial, counter };
            assert_eq!(
                RefreshClaims::verify_with(&c.encode(key, client), &keys, |i| (i == index).then_some(client)),
                Some(c)
            );
            (c.encode(key, client).to_string(), Verified::Refresh(c), 2, REFRESH_TOKEN_LEN)
        }
    };
    assert_eq!(encoded.len(), len, "{expected:?} encodes to {encoded:?}");
    assert!(encoded.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'), "{encoded:?}");

    // The right client: exactly this kind of token, with these claims.
    let mut want = [None; 3];
    want[kind] = Some(expected);
    assert_eq!(verify_as_each(&encoded, &keys, client), want, "{encoded:?} for {client:?}");

    // Another client id, a ring without the signing key, or the same id with another secret: nothing.
    if input.other_client_id != input.client_id {
        assert_eq!(verify_as_each(&encoded, &keys, &input.other_client_id), [None; 3]);
    }
    let mut without = KeyRing::new(server_key(key_id.wrapping_add(7), 9));
    assert_eq!(verify_as_each(&encoded, &without, client), [None; 3]);
    without.rotate(server_key(key_id, 99)).expect("distinct ids");
    assert_eq!(verify_as_each(&encoded, &without, client), [None; 3]);

    // Any edit of the encoding: nothing verifies, whatever the kind.
    let mut edited = encoded.clone().into_bytes();
    for &(pos, byte) in input.edits.iter().take(8) {
        let pos = usize::from(pos) % edited.len();
        if edited[pos] == byte {
            continue;
        }
        let before = edited[pos];
        edited[pos] = byte;
        if let Ok(text) = std::str::from_utf8(&edited) {
            assert_eq!(verify_as_each(text, &keys, client), [None; 3], "{text:?} (edited from {encoded:?}) verifies");
        }
        edited[pos] = before;
    }
    for cut in [1, 2, 3, len / 2, len] {
        let text = &encoded[..len - cut];
        assert_eq!(verify_as_each(text, &keys, client), [None; 3], "truncated {text:?} verifies");
    }
    for tail in ["A", "AA", "AAA", "AAAA", "=", "==", " ", "\n"] {
        let text = format!("{encoded}{tail}");
        assert_eq!(verify_as_each(&text, &keys, client), [None; 3], "extended {text:?} verifies");
    }
    Ok(())
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else { return };
    if mode % 4 == 0 {
        if let Ok(text) = std::str::from_utf8(rest) {
            decode_any(text);
        }
    } else {
        let _ = round_trip(&mut Unstructured::new(rest));
    }
});
