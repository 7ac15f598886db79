//! The two codes of RFC 8628: the user code a person types and the device code a device polls with.
//!
//! # User code (§6.1)
//! Eight characters from the 20-letter alphabet `BCDFGHJKLMNPQRSTVWXZ` (no vowels, so no words; no
//! digits, so nothing to confuse with letters), shown as `XXXX-XXXX`: 20^8 ≈ 2^34.6 values. Each
//! character is drawn by rejection sampling (bytes ≥ 240 are redrawn) so every letter is equally
//! likely. Input is normalised before comparison: ASCII case is ignored, dashes and spaces are dropped,
//! and what remains must be exactly eight letters of the alphabet. Comparison is constant-time.
//!
//! # Device code
//! 24 bytes, base64url without padding (32 characters):
//!
//! | bytes | field |
//! |---|---|
//! | 0 | format tag `D` |
//! | 1 | key id |
//! | 2..4 | slot of the pending grant (big-endian) |
//! | 4..8 | serial of the grant (big-endian, never reused by a provider) |
//! | 8..24 | HMAC-SHA256(key, `D` ‖ bytes 0..8 ‖ client_id) truncated to 128 bits |
//!
//! The MAC is checked first, so a forged or foreign-client code never touches the table; then the slot
//! gives the grant in O(1), and the serial must equal the grant's, so a slot reused after expiry never
//! matches an old code. The 128-bit MAC is the unguessable part.

use core::fmt;

use rand_core::CryptoRng;
use subtle::ConstantTimeEq;

use crate::b64::{decode_b64, encode_b64};
use crate::key::{Domain, KeyRing, ServerKey, TAG_LEN};

/// The user-code alphabet (RFC 8628 §6.1 example: base-20 consonants).
pub const USER_CODE_ALPHABET: &[u8; 20] = b"BCDFGHJKLMNPQRSTVWXZ";
/// Letters in a user code.
pub const USER_CODE_LEN: usize = 8;
/// Number of distinct user codes: 20^8.
pub const USER_CODE_SPACE: u64 = 25_600_000_000;

/// A user code: eight letters of [`USER_CODE_ALPHABET`], displayed as `XXXX-XXXX`.
#[derive(Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(try_from = "[u8; USER_CODE_LEN]", into = "[u8; USER_CODE_LEN]")]
pub struct UserCode([u8; USER_CODE_LEN]);

impl TryFrom<[u8; USER_CODE_LEN]> for UserCode {
    type Error = &'static str;
    fn try_from(bytes: [u8; USER_CODE_LEN]) -> Result<Self, Self::Error> {
        Self::from_bytes(bytes).ok_or("user code outside the alphabet")
    }
}

impl From<UserCode> for [u8; USER_CODE_LEN] {
    fn from(code: UserCode) -> Self {
        code.0
    }
}

impl UserCode {
    /// Draws a uniformly random user code. `None` only if the RNG keeps returning bytes ≥ 240
    /// (a broken RNG); the loop is bounded.
    pub fn generate<R: CryptoRng + ?Sized>(rng: &mut R) -> Option<Self> {
        let mut code = [0u8; USER_CODE_LEN];
        let mut filled = 0;
        for _ in 0..16 {
            let mut bytes = [0u8; 16];
            rng.fill_bytes(&mut bytes);
            for b in bytes {
                // 240 = 12 × 20: accepting only b < 240 makes `b % 20` uniform.
                if b < 240 {
                    if let (Some(slot), Some(&letter)) =
                        (code.get_mut(filled), USER_CODE_ALPHABET.get(usize::from(b % 20)))
                    {
                        *slot = letter;
                        filled += 1;
                    }
                }
            }
            if filled == USER_CODE_LEN {
                return Some(Self(code));
            }
        }
        None
    }

    /// Normalises what a person typed: case-insensitive, dashes and spaces ignored.
    /// `None` unless exactly eight letters of the alphabet remain.
    pub fn parse(input: &str) -> Option<Self> {
        let mut code = [0u8; USER_CODE_LEN];
        let mut n = 0;
        for b in input.bytes() {
            if b == b'-' || b == b' ' {
                continue;
            }
            let up = b.to_ascii_uppercase();
            if !USER_CODE_ALPHABET.contains(&up) {
                return None;
            }
            *code.get_mut(n)? = up;
            n += 1;
        }
        (n == USER_CODE_LEN).then_some(Self(code))
    }

    /// Constant-time equality.
    pub fn ct_eq(&self, other: &Self) -> bool {
        self.0.ct_eq(&other.0).into()
    }

    /// The display form `XXXX-XXXX`.
    pub fn display(&self) -> heapless::String<9> {
        let mut s = heapless::String::new();
        for (i, &b) in self.0.iter().enumerate() {
            if i == 4 {
                let _ = s.push('-');
            }
            let _ = s.push(char::from(b));
        }
        s
    }

    /// The eight letters without the dash.
    pub fn as_bytes(&self) -> &[u8; USER_CODE_LEN] {
        &self.0
    }

    /// A code from eight raw letters (as stored in a snapshot); `None` if one is outside the alphabet.
    pub fn from_bytes(bytes: [u8; USER_CODE_LEN]) -> Option<Self> {
        bytes.iter().all(|b| USER_CODE_ALPHABET.contains(b)).then_some(Self(bytes))
    }
}

impl fmt::Display for UserCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.display())
    }
}

impl fmt::Debug for UserCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "UserCode({})", self.display())
    }
}

/// Bytes in a decoded device code.
const DEVICE_CODE_BYTES: usize = 8 + TAG_LEN;
/// Characters in an encoded device code.
pub const DEVICE_CODE_LEN: usize = 32;

/// An encoded device code (what the device sends back when polling).
pub type DeviceCode = heapless::String<DEVICE_CODE_LEN>;

/// The authenticated content of a device code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DeviceCodeClaims {
    /// Id of the key that signed it.
    pub key_id: u8,
    /// Slot of the pending grant.
    pub slot: u16,
    /// Serial of the pending grant.
    pub serial: u32,
}

impl DeviceCodeClaims {
    fn header(&self) -> [u8; 8] {
        let mut h = [0u8; 8];
        h[0] = b'D';
        h[1] = self.key_id;
        h[2..4].copy_from_slice(&self.slot.to_be_bytes());
        h[4..8].copy_from_slice(&self.serial.to_be_bytes());
        h
    }

    /// Signs and encodes the code for `client_id`.
    pub fn encode(&self, key: &ServerKey, client_id: &str) -> DeviceCode {
        let header = self.header();
        let tag = key.tag(Domain::DeviceCode, &[&header, client_id.as_bytes()]);
        let mut raw = [0u8; DEVICE_CODE_BYTES];
        raw[..8].copy_from_slice(&header);
        raw[8..].copy_from_slice(&tag);
        encode_b64(&raw)
    }

    /// Decodes and verifies a device code presented by `client_id`. `None` for anything malformed,
    /// signed by an unknown key, forged, or issued to another client.
    pub fn decode(code: &str, keys: &KeyRing, client_id: &str) -> Option<Self> {
        let mut raw = [0u8; DEVICE_CODE_BYTES];
        if code.len() != DEVICE_CODE_LEN {
            return None;
        }
        if decode_b64(code, &mut raw)?.len() != DEVICE_CODE_BYTES {
            return None;
        }
        let mut header = [0u8; 8];
        header.copy_from_slice(&raw[..8]);
        if header[0] != b'D' {
            return None;
        }
        let key = keys.get(header[1])?;
        if !key.verify(Domain::DeviceCode, &[&header, client_id.as_bytes()], &raw[8..]) {
            return None;
        }
        Some(Self {
            key_id: header[1],
            slot: u16::from_be_bytes([header[2], header[3]]),
            serial: u32::from_be_bytes([header[4], header[5], header[6], header[7]]),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand_core::SeedableRng;

    /// Hands out the given 16-byte blocks in order, then `fallback` for ever.
    struct Blocks<'a> {
        blocks: &'a [[u8; 16]],
        fallback: [u8; 16],
    }

    impl rand_core::RngCore for Blocks<'_> {
        fn next_u32(&mut self) -> u32 {
            unimplemented!("the generator draws whole blocks")
        }
        fn next_u64(&mut self) -> u64 {
            unimplemented!("the generator draws whole blocks")
        }
        fn fill_bytes(&mut self, d: &mut [u8]) {
            let block = match self.blocks.split_first() {
                Some((first, rest)) => {
                    self.blocks = rest;
                    *first
                }
                None => self.fallback,
            };
            d.copy_from_slice(&block[..d.len()]);
        }
    }
    impl rand_core::CryptoRng for Blocks<'_> {}

    /// Bytes 20..36: a block that spells `BCDFGHJK`, told apart from a code of one repeated letter.
    const SPELLS_BCDFGHJK: [u8; 16] = [20, 21, 22, 23, 24, 25, 26, 27, 28, 29, 30, 31, 32, 33, 34, 35];

    #[test]
    fn user_codes_are_uniform_every_letter_from_exactly_twelve_byte_values() {
        // Exhaustive over the value of the byte a letter is drawn from: a first block of 16 copies of
        // `b`, then blocks spelling BCDFGHJK. Uniform means the 240 accepted values give each letter
        // 12 times and the 16 values >= 240 are redrawn; a plain `b % 20` would give the first 16
        // letters 13 values each (13/256 against 12/256 for the last four: 1.6 % more and 6.25 % less
        // than 1/20) and redraw nothing.
        let mut values_per_letter = [0u32; 20];
        let mut redrawn = 0;
        for b in 0..=255u8 {
            let first = [[b; 16]];
            let code = UserCode::generate(&mut Blocks { blocks: &first, fallback: SPELLS_BCDFGHJK }).unwrap();
            let letters = code.as_bytes();
            if letters.iter().all(|l| *l == letters[0]) {
                values_per_letter[USER_CODE_ALPHABET.iter().position(|x| *x == letters[0]).unwrap()] += 1;
            } else {
                assert_eq!(letters, b"BCDFGHJK", "byte {b}");
                assert!(b >= 240, "byte {b} was redrawn");
                redrawn += 1;
            }
        }
        assert_eq!(values_per_letter, [12; 20], "byte values per letter");
        assert_eq!(redrawn, 16);
    }

    #[test]
    fn a_redrawn_byte_is_skipped_not_wrapped() {
        // 248..=255 are all redrawn, so the code comes from the next block; `b % 20` would spell
        // LMNPQRST from them.
        let mut first = [0u8; 16];
        for (i, b) in first.iter_mut().enumerate() {
            *b = 248 + (i % 8) as u8;
        }
        let blocks = [first, SPELLS_BCDFGHJK];
        let code = UserCode::generate(&mut Blocks { blocks: &blocks, fallback: [0xff; 16] }).unwrap();
        assert_eq!(code.as_bytes(), b"BCDFGHJK");
    }

    #[test]
    fn generated_codes_are_well_formed() {
        let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(1);
        for _ in 0..2000 {
            let c = UserCode::generate(&mut rng).unwrap();
            assert!(c.as_bytes().iter().all(|b| USER_CODE_ALPHABET.contains(b)));
            let d = c.display();
            assert_eq!(d.len(), 9);
            assert_eq!(&d[4..5], "-");
            assert_eq!(UserCode::parse(&d), Some(c));
        }
    }

    #[test]
    fn a_broken_rng_does_not_loop_forever() {
        struct Stuck;
        impl rand_core::RngCore for Stuck {
            fn next_u32(&mut self) -> u32 {
                u32::MAX
            }
            fn next_u64(&mut self) -> u64 {
                u64::MAX
            }
            fn fill_bytes(&mut self, d: &mut [u8]) {
                d.fill(0xff)
            }
        }
        impl rand_core::CryptoRng for Stuck {}
        assert_eq!(UserCode::generate(&mut Stuck), None);
    }

    #[test]
    fn user_code_normalisation() {
        let c = UserCode::parse("BCDF-GHJK").unwrap();
        for input in ["bcdfghjk", "bcdf ghjk", " B-C-D-F-G-H-J-K ", "bCdF-gHjK"] {
            assert_eq!(UserCode::parse(input), Some(c), "{input}");
        }
        for input in ["BCDF-GHJ", "BCDF-GHJKL", "BCDF-GHJA", "", "BCDF_GHJK", "ＢCDFGHJK"] {
            assert_eq!(UserCode::parse(input), None, "{input}");
        }
        assert!(c.ct_eq(&UserCode::parse("bcdfghjk").unwrap()));
        assert_eq!(UserCode::from_bytes(*b"BCDFGHJA"), None);
    }

    #[test]
    fn device_code_round_trip_and_binding() {
        let keys = KeyRing::new(ServerKey::new(3, &[9; 32]));
        let claims = DeviceCodeClaims { key_id: 3, slot: 513, serial: 0xdead_beef };
        let code = claims.encode(keys.current().unwrap(), "tv");
        assert_eq!(code.len(), DEVICE_CODE_LEN);
        assert_eq!(DeviceCodeClaims::decode(&code, &keys, "tv"), Some(claims));
        assert_eq!(DeviceCodeClaims::decode(&code, &keys, "other"), None);
        let other_key = KeyRing::new(ServerKey::new(3, &[8; 32]));
        assert_eq!(DeviceCodeClaims::decode(&code, &other_key, "tv"), None);
        // Flip each character: never accepted.
        for i in 0..code.len() {
            let mut bytes: heapless::Vec<u8, 32> = code.as_bytes().iter().copied().collect();
            bytes[i] = if bytes[i] == b'A' { b'B' } else { b'A' };
            let s = core::str::from_utf8(&bytes).unwrap();
            assert_eq!(DeviceCodeClaims::decode(s, &keys, "tv"), None);
        }
        assert_eq!(DeviceCodeClaims::decode("short", &keys, "tv"), None);
        assert_eq!(DeviceCodeClaims::decode("é", &keys, "tv"), None);
    }
}
