//! The server's HMAC-SHA256 keys: one current key and, during a rotation, the previous one.
//!
//! Every code and token this crate issues carries the one-byte id of the key that signed it. Each use
//! is domain-separated by a leading tag byte in the MAC input (`D` device code, `A` access token, `R`
//! refresh token, `S` rate-limit source, `C` anti-CSRF, `P` snapshot, `L` flash record store), so a
//! device code can never pass as a token or a CSRF token as a device code even though one key signs
//! them all.
//! The keyed HMAC state is computed once at start-up and cloned per MAC, which saves two SHA-256
//! compressions on every check.

use core::fmt;

use hmac::{Hmac, Mac};
use sha2::Sha256;
use subtle::ConstantTimeEq;

type HmacSha256 = Hmac<Sha256>;

/// Length of the truncated MAC carried in codes and tokens (128 bits).
pub const TAG_LEN: usize = 16;

/// What a MAC is for; the first byte of every MAC input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub(crate) enum Domain {
    DeviceCode = b'D',
    AccessToken = b'A',
    RefreshToken = b'R',
    /// Keyed hash of a rate-limit source.
    Source = b'S',
    /// Anti-CSRF token of the verification page.
    Csrf = b'C',
    /// Integrity of a persisted snapshot.
    Snapshot = b'P',
    /// Integrity of a frame of the flash record store.
    Store = b'L',
}

/// One HMAC-SHA256 server key with its id.
#[derive(Clone)]
pub struct ServerKey {
    id: u8,
    keyed: HmacSha256,
}

impl fmt::Debug for ServerKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServerKey").field("id", &self.id).finish_non_exhaustive()
    }
}

impl ServerKey {
    /// A key from 32 secret bytes (draw them from a hardware RNG, keep them in protected storage).
    pub fn new(id: u8, secret: &[u8; 32]) -> Self {
        // HMAC accepts keys of any length, so this cannot fail; fall back defensively without panicking.
        let keyed = HmacSha256::new_from_slice(secret).unwrap_or_else(|_| HmacSha256::new(&Default::default()));
        Self { id, keyed }
    }

    /// The key id carried in codes and tokens.
    pub fn id(&self) -> u8 {
        self.id
    }

    /// The full 32-byte HMAC of the domain tag followed by `parts`.
    pub(crate) fn mac(&self, domain: Domain, parts: &[&[u8]]) -> [u8; 32] {
        let mut m = self.keyed.clone();
        m.update(&[domain as u8]);
        for p in parts {
            m.update(p);
        }
        m.finalize().into_bytes().into()
    }

    /// The MAC truncated to [`TAG_LEN`] bytes.
    pub(crate) fn tag(&self, domain: Domain, parts: &[&[u8]]) -> [u8; TAG_LEN] {
        let full = self.mac(domain, parts);
        let mut t = [0u8; TAG_LEN];
        t.copy_from_slice(&full[..TAG_LEN]);
        t
    }

    /// Constant-time check of a truncated MAC.
    pub(crate) fn verify(&self, domain: Domain, parts: &[&[u8]], tag: &[u8]) -> bool {
        tag.len() == TAG_LEN && bool::from(self.tag(domain, parts).ct_eq(tag))
    }
}

/// The current key and, while a rotation is under way, the previous one.
///
/// Codes and tokens signed by the previous key keep working until [`KeyRing::retire_previous`];
/// new ones are always signed by the current key. A ring is empty only in a provider that was made
/// with `Provider::new` and not initialised yet: nothing verifies and nothing can be signed.
#[derive(Debug, Clone)]
pub struct KeyRing {
    current: Option<ServerKey>,
    previous: Option<ServerKey>,
}

/// Why a key could not be installed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[non_exhaustive]
pub enum KeyError {
    /// The new key has the id of a key still in the ring.
    IdInUse,
}

impl fmt::Display for KeyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("key id already in use")
    }
}

impl core::error::Error for KeyError {}

impl KeyRing {
    /// A ring holding one key.
    pub fn new(current: ServerKey) -> Self {
        Self { current: Some(current), previous: None }
    }

    /// A ring without keys (a provider before `init`).
    pub const EMPTY: Self = Self { current: None, previous: None };

    /// The key new codes and tokens are signed with (`None` only in an empty ring).
    pub fn current(&self) -> Option<&ServerKey> {
        self.current.as_ref()
    }

    /// The key being rotated out, if any.
    pub fn previous(&self) -> Option<&ServerKey> {
        self.previous.as_ref()
    }

    /// The key with this id, if it is still in the ring.
    pub fn get(&self, id: u8) -> Option<&ServerKey> {
        self.current.as_ref().filter(|k| k.id == id).or_else(|| self.previous.as_ref().filter(|k| k.id == id))
    }

    /// Makes `key` current; the current key becomes the previous one (and an older previous key is retired).
    pub fn rotate(&mut self, key: ServerKey) -> Result<(), KeyError> {
        if self.current.as_ref().is_some_and(|c| c.id == key.id) {
            return Err(KeyError::IdInUse);
        }
        self.previous = self.current.replace(key);
        Ok(())
    }

    /// Forgets the previous key: everything it signed stops verifying.
    pub fn retire_previous(&mut self) {
        self.previous = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every domain. The match has no wildcard, so a new variant does not compile until it is listed.
    fn all_domains() -> [Domain; 7] {
        let all = [
            Domain::DeviceCode,
            Domain::AccessToken,
            Domain::RefreshToken,
            Domain::Source,
            Domain::Csrf,
            Domain::Snapshot,
            Domain::Store,
        ];
        for d in all {
            match d {
                Domain::DeviceCode
                | Domain::AccessToken
                | Domain::RefreshToken
                | Domain::Source
                | Domain::Csrf
                | Domain::Snapshot
                | Domain::Store => {}
            }
        }
        all
    }

    fn hex(s: &str) -> [u8; 32] {
        let mut out = [0u8; 32];
        for (i, o) in out.iter_mut().enumerate() {
            *o = u8::from_str_radix(&s[2 * i..2 * i + 2], 16).unwrap();
        }
        out
    }

    #[test]
    fn server_key_macs_the_domain_byte_then_the_parts() {
        // Known answers from an independent HMAC-SHA256 (Python's `hmac`): key = 32 bytes of 7,
        // message = the domain's tag byte followed by "abc".
        let expected = [
            (Domain::DeviceCode, b'D', "1f43c402763c1e692b046ce772855b1899dada36aeacc90429a7f5d6f1e5b706"),
            (Domain::AccessToken, b'A', "880d4c0e56ff37f72b17260560e9f2218d3f1398e70b0b58626024821c632899"),
            (Domain::RefreshToken, b'R', "1e382d0d68b7ad74b3ea232cbbab8c6aa23935ffbf03bfcb287812e452b0cd12"),
            (Domain::Source, b'S', "8c48e1aad8df78ae150d117b462b9ae3de666ce20e9618109264f0bb2a638270"),
            (Domain::Csrf, b'C', "b799ac4659a15bb27862d09c26a4295f0f06a3a8d4a393c54e1995019ba5df3f"),
            (Domain::Snapshot, b'P', "554a85a52e5aefabbd65ff0819435a7de61e0d255b5ace2e66223c5e266fa8cb"),
            (Domain::Store, b'L', "a7e6f9371d61499a40bc3e556c66ac1b0dcd94ed6047775ae876195c50a1f634"),
        ];
        assert_eq!(expected.map(|(d, ..)| d), all_domains());
        let k = ServerKey::new(1, &[7; 32]);
        for (domain, byte, mac) in expected {
            assert_eq!(domain as u8, byte);
            let mac = hex(mac);
            // The parts are concatenated, so how a caller splits its input does not matter.
            assert_eq!(k.mac(domain, &[b"abc"]), mac, "{domain:?}");
            assert_eq!(k.mac(domain, &[b"ab", b"", b"c"]), mac, "{domain:?}");
            assert_eq!(k.tag(domain, &[b"abc"])[..], mac[..TAG_LEN], "{domain:?}");
            assert!(k.verify(domain, &[b"abc"], &mac[..TAG_LEN]), "{domain:?}");
            // Only the truncated tag, whole, verifies.
            assert!(!k.verify(domain, &[b"abc"], &mac), "{domain:?}");
            assert!(!k.verify(domain, &[b"abc"], &mac[..TAG_LEN - 1]), "{domain:?}");
            assert!(!k.verify(domain, &[b"abd"], &mac[..TAG_LEN]), "{domain:?}");
        }
        // Another key, same id: nothing verifies.
        let other = ServerKey::new(1, &[8; 32]);
        assert!(!other.verify(Domain::AccessToken, &[b"abc"], &k.tag(Domain::AccessToken, &[b"abc"])));
    }

    // (Two domains cannot share a tag byte: the enum's discriminants would clash and not compile.)
    #[test]
    fn a_tag_of_one_domain_never_verifies_in_another() {
        let k = ServerKey::new(1, &[7; 32]);
        let parts: &[&[u8]] = &[b"same input", b"for every domain"];
        for a in all_domains() {
            for b in all_domains() {
                if a == b {
                    continue;
                }
                let tag = k.tag(a, parts);
                assert_ne!(tag, k.tag(b, parts), "{a:?} vs {b:?}");
                assert!(!k.verify(b, parts, &tag), "a {a:?} tag verified as {b:?}");
            }
        }
    }

    #[test]
    fn rotation_keeps_previous_until_retired() {
        let mut ring = KeyRing::new(ServerKey::new(1, &[1; 32]));
        assert_eq!(ring.rotate(ServerKey::new(1, &[2; 32])), Err(KeyError::IdInUse));
        ring.rotate(ServerKey::new(2, &[2; 32])).unwrap();
        assert_eq!(ring.current().map(ServerKey::id), Some(2));
        assert!(ring.get(1).is_some());
        ring.retire_previous();
        assert!(ring.get(1).is_none());
        assert!(ring.get(2).is_some());
    }
}
