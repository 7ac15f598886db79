//! `UserCode::parse` on arbitrary text, against an independent statement of the normalisation rule,
//! and the display form, raw bytes and generator round trips.
#![no_main]

use libfuzzer_sys::fuzz_target;
use oauth2_devices::code::{UserCode, USER_CODE_ALPHABET, USER_CODE_LEN};
use rand_core::SeedableRng;

/// The rule of `code.rs`: ASCII case ignored, `-` and ` ` dropped, exactly eight alphabet letters left.
fn reference(input: &str) -> Option<[u8; USER_CODE_LEN]> {
    let kept: Vec<u8> = input.bytes().filter(|&b| b != b'-' && b != b' ').map(|b| b.to_ascii_uppercase()).collect();
    if kept.len() != USER_CODE_LEN || !kept.iter().all(|b| USER_CODE_ALPHABET.contains(b)) {
        return None;
    }
    kept.try_into().ok()
}

fn check_code(code: UserCode) {
    let bytes = *code.as_bytes();
    assert!(bytes.iter().all(|b| USER_CODE_ALPHABET.contains(b)), "letter outside the alphabet: {bytes:?}");
    let shown = code.display();
    assert_eq!(shown.len(), 9);
    assert_eq!(shown.as_bytes()[4], b'-');
    assert_eq!(&shown.as_bytes()[..4], &bytes[..4]);
    assert_eq!(&shown.as_bytes()[5..], &bytes[4..]);
    assert_eq!(shown.as_str(), code.to_string());
    for spelling in [shown.to_string(), shown.to_ascii_lowercase(), shown.replace('-', " "), shown.replace('-', "")] {
        let back = UserCode::parse(&spelling);
        assert_eq!(back, Some(code), "{spelling:?} does not parse back");
        assert!(back.is_some_and(|b| b.ct_eq(&code)));
    }
    assert_eq!(UserCode::from_bytes(bytes), Some(code));
}

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let parsed = UserCode::parse(&text);
    assert_eq!(parsed.map(|c| *c.as_bytes()), reference(&text), "parse({text:?})");
    if let Some(code) = parsed {
        check_code(code);
    }
    // Raw bytes (as a snapshot stores them) are accepted exactly when all eight are alphabet letters.
    if let Ok(raw) = <[u8; USER_CODE_LEN]>::try_from(data.get(..USER_CODE_LEN).unwrap_or_default()) {
        let code = UserCode::from_bytes(raw);
        assert_eq!(code.is_some(), raw.iter().all(|b| USER_CODE_ALPHABET.contains(b)));
        if let Some(code) = code {
            check_code(code);
            // Equality is byte equality, and the constant-time comparison agrees.
            if let Some(other) = parsed {
                assert_eq!(other == code, other.ct_eq(&code));
                assert_eq!(other == code, other.as_bytes() == code.as_bytes());
            }
        }
    }
    // The generator, seeded from the input: always a well-formed code.
    let mut seed = [0u8; 32];
    for (s, d) in seed.iter_mut().zip(data) {
        *s = *d;
    }
    let mut rng = rand_chacha::ChaCha20Rng::from_seed(seed);
    let code = UserCode::generate(&mut rng).expect("a working RNG always yields a code");
    check_code(code);
});
