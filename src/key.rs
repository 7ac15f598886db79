//! The server's HMAC-SHA256 keys: one current key and, during a rotation, the previous one.
//!
//! Every code and token this crate issues carries the one-byte id of the key that signed it. Each use
//! is domain-separated by a leading tag byte in the MAC input ([`Domain`]), so a device code can never
//! pass as a token or a CSRF token as a device code even though one key signs them all.
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
/// new ones are always signed by the current key.
#[derive(Debug, Clone)]
pub struct KeyRing {
    current: ServerKey,
    previous: Option<ServerKey>,
}

/// Why a key could not be installed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
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
        Self { current, previous: None }
    }

    /// The key new codes and tokens are signed with.
    pub fn current(&self) -> &ServerKey {
        &self.current
    }

    /// The key being rotated out, if any.
    pub fn previous(&self) -> Option<&ServerKey> {
        self.previous.as_ref()
    }

    /// The key with this id, if it is still in the ring.
    pub fn get(&self, id: u8) -> Option<&ServerKey> {
        if self.current.id == id {
            Some(&self.current)
        } else {
            self.previous.as_ref().filter(|k| k.id == id)
        }
    }

    /// Makes `key` current; the current key becomes the previous one (and an older previous key is retired).
    pub fn rotate(&mut self, key: ServerKey) -> Result<(), KeyError> {
        if key.id == self.current.id {
            return Err(KeyError::IdInUse);
        }
        let old = core::mem::replace(&mut self.current, key);
        self.previous = Some(old);
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

    #[test]
    fn domains_separate_macs() {
        let k = ServerKey::new(1, &[7; 32]);
        let a = k.tag(Domain::AccessToken, &[b"x"]);
        let d = k.tag(Domain::DeviceCode, &[b"x"]);
        assert_ne!(a, d);
        assert!(k.verify(Domain::AccessToken, &[b"x"], &a));
        assert!(!k.verify(Domain::AccessToken, &[b"y"], &a));
        assert!(!k.verify(Domain::AccessToken, &[b"x"], &a[..15]));
        // parts are a concatenation
        assert_eq!(k.tag(Domain::Csrf, &[b"ab", b"c"]), k.tag(Domain::Csrf, &[b"abc"]));
    }

    #[test]
    fn matches_rfc4231_vector() {
        // RFC 4231 test case 2, with our domain byte folded into the message: key "Jefe".
        let mut m = HmacSha256::new_from_slice(b"Jefe").unwrap();
        m.update(b"what do ya want for nothing?");
        let out = m.finalize().into_bytes();
        assert_eq!(out[..4], [0x5b, 0xdc, 0xc1, 0x46]);
    }

    #[test]
    fn rotation_keeps_previous_until_retired() {
        let mut ring = KeyRing::new(ServerKey::new(1, &[1; 32]));
        assert_eq!(ring.rotate(ServerKey::new(1, &[2; 32])), Err(KeyError::IdInUse));
        ring.rotate(ServerKey::new(2, &[2; 32])).unwrap();
        assert_eq!(ring.current().id(), 2);
        assert!(ring.get(1).is_some());
        ring.retire_previous();
        assert!(ring.get(1).is_none());
        assert!(ring.get(2).is_some());
    }
}
