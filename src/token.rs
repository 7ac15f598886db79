//! Access and refresh token formats: self-contained, HMAC-signed, base64url without padding.
//!
//! # Access token (37 bytes → 50 characters)
//! | bytes | field |
//! |---|---|
//! | 0 | format tag `A` |
//! | 1 | key id |
//! | 2 | client index in the registry |
//! | 3..5 | token-family slot (big-endian) |
//! | 5..9 | grant serial (the family's identity) |
//! | 9..13 | user id |
//! | 13..17 | scope bit set |
//! | 17..21 | expiry, in the caller's clock (seconds) |
//! | 21..37 | HMAC-SHA256(key, `A` ‖ bytes 0..21 ‖ client_id), truncated to 128 bits |
//!
//! # Refresh token (29 bytes → 39 characters)
//! | bytes | field |
//! |---|---|
//! | 0 | format tag `R` |
//! | 1 | key id |
//! | 2 | client index |
//! | 3..5 | token-family slot |
//! | 5..9 | grant serial |
//! | 9..13 | rotation counter (the family accepts only its current value) |
//! | 13..29 | HMAC-SHA256(key, `R` ‖ bytes 0..13 ‖ client_id), truncated to 128 bits |
//!
//! A bearer check verifies the MAC (binding the client's id as well as its index, so a re-ordered
//! registry can never re-attribute a token), then the expiry, then one O(1) look-up of the family slot
//! for revocation: no token table is kept.

use crate::b64::{decode_b64, encode_b64};
use crate::key::{Domain, KeyRing, ServerKey, TAG_LEN};
use crate::scope::ScopeSet;

/// Characters in an encoded access token.
pub const ACCESS_TOKEN_LEN: usize = 50;
/// Characters in an encoded refresh token.
pub const REFRESH_TOKEN_LEN: usize = 39;

const ACCESS_BODY: usize = 21;
const REFRESH_BODY: usize = 13;

/// An encoded access token.
pub type AccessToken = heapless::String<ACCESS_TOKEN_LEN>;
/// An encoded refresh token.
pub type RefreshToken = heapless::String<REFRESH_TOKEN_LEN>;

/// The authenticated content of an access token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AccessClaims {
    /// Id of the signing key.
    pub key_id: u8,
    /// Index of the client in the registry.
    pub client: u8,
    /// Token-family slot.
    pub family_slot: u16,
    /// Grant serial (identifies the family).
    pub serial: u32,
    /// The user who approved the grant.
    pub user: u32,
    /// Granted scopes.
    pub scopes: ScopeSet,
    /// Expiry, in seconds of the caller's clock.
    pub expires_at: u32,
}

/// The authenticated content of a refresh token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RefreshClaims {
    /// Id of the signing key.
    pub key_id: u8,
    /// Index of the client in the registry.
    pub client: u8,
    /// Token-family slot.
    pub family_slot: u16,
    /// Grant serial (identifies the family).
    pub serial: u32,
    /// Rotation counter.
    pub counter: u32,
}

fn put(buf: &mut [u8], at: usize, v: &[u8]) {
    if let Some(dst) = buf.get_mut(at..at + v.len()) {
        dst.copy_from_slice(v);
    }
}

fn u32_at(buf: &[u8], at: usize) -> u32 {
    let mut b = [0u8; 4];
    if let Some(src) = buf.get(at..at + 4) {
        b.copy_from_slice(src);
    }
    u32::from_be_bytes(b)
}

fn u16_at(buf: &[u8], at: usize) -> u16 {
    match buf.get(at..at + 2) {
        Some(&[a, b]) => u16::from_be_bytes([a, b]),
        _ => 0,
    }
}

/// Decodes base64url into `raw`, checks length and tag, and returns (body, mac).
fn open<'a>(token: &str, raw: &'a mut [u8], tag: u8) -> Option<(&'a [u8], &'a [u8])> {
    let bytes = decode_b64(token, raw)?;
    if bytes.len() != raw_len(tag) || bytes.first() != Some(&tag) {
        return None;
    }
    Some(bytes.split_at(bytes.len() - TAG_LEN))
}

const fn raw_len(tag: u8) -> usize {
    if tag == b'A' {
        ACCESS_BODY + TAG_LEN
    } else {
        REFRESH_BODY + TAG_LEN
    }
}

impl AccessClaims {
    fn body(&self) -> [u8; ACCESS_BODY] {
        let mut b = [0u8; ACCESS_BODY];
        b[0] = b'A';
        b[1] = self.key_id;
        b[2] = self.client;
        put(&mut b, 3, &self.family_slot.to_be_bytes());
        put(&mut b, 5, &self.serial.to_be_bytes());
        put(&mut b, 9, &self.user.to_be_bytes());
        put(&mut b, 13, &self.scopes.bits().to_be_bytes());
        put(&mut b, 17, &self.expires_at.to_be_bytes());
        b
    }

    /// Signs and encodes the token.
    pub fn encode(&self, key: &ServerKey, client_id: &str) -> AccessToken {
        let body = self.body();
        let tag = key.tag(Domain::AccessToken, &[&body, client_id.as_bytes()]);
        let mut raw = [0u8; ACCESS_BODY + TAG_LEN];
        raw[..ACCESS_BODY].copy_from_slice(&body);
        raw[ACCESS_BODY..].copy_from_slice(&tag);
        encode_b64(&raw)
    }

    fn parse(body: &[u8]) -> Option<Self> {
        Some(Self {
            key_id: *body.get(1)?,
            client: *body.get(2)?,
            family_slot: u16_at(body, 3),
            serial: u32_at(body, 5),
            user: u32_at(body, 9),
            scopes: ScopeSet::from_bits(u32_at(body, 13)),
            expires_at: u32_at(body, 17),
        })
    }

    /// Reads the claims without verifying them (for diagnostics; nothing read here may be trusted).
    pub fn peek(token: &str) -> Option<Self> {
        let mut raw = [0u8; ACCESS_BODY + TAG_LEN];
        Self::parse(open(token, &mut raw, b'A')?.0)
    }

    /// Verifies the MAC of `token` for `client_id` and returns its claims.
    pub fn verify(token: &str, keys: &KeyRing, client_id: &str) -> Option<Self> {
        Self::verify_with(token, keys, |_| Some(client_id))
    }

    /// Verifies `token`, finding the client id its MAC binds from the client index it carries:
    /// one decode, one MAC.
    pub fn verify_with<'c>(token: &str, keys: &KeyRing, client_id: impl FnOnce(u8) -> Option<&'c str>) -> Option<Self> {
        let mut raw = [0u8; ACCESS_BODY + TAG_LEN];
        let (body, tag) = open(token, &mut raw, b'A')?;
        let key = keys.get(*body.get(1)?)?;
        let client_id = client_id(*body.get(2)?)?;
        if !key.verify(Domain::AccessToken, &[body, client_id.as_bytes()], tag) {
            return None;
        }
        Self::parse(body)
    }
}

impl RefreshClaims {
    fn body(&self) -> [u8; REFRESH_BODY] {
        let mut b = [0u8; REFRESH_BODY];
        b[0] = b'R';
        b[1] = self.key_id;
        b[2] = self.client;
        put(&mut b, 3, &self.family_slot.to_be_bytes());
        put(&mut b, 5, &self.serial.to_be_bytes());
        put(&mut b, 9, &self.counter.to_be_bytes());
        b
    }

    /// Signs and encodes the token.
    pub fn encode(&self, key: &ServerKey, client_id: &str) -> RefreshToken {
        let body = self.body();
        let tag = key.tag(Domain::RefreshToken, &[&body, client_id.as_bytes()]);
        let mut raw = [0u8; REFRESH_BODY + TAG_LEN];
        raw[..REFRESH_BODY].copy_from_slice(&body);
        raw[REFRESH_BODY..].copy_from_slice(&tag);
        encode_b64(&raw)
    }

    fn parse(body: &[u8]) -> Option<Self> {
        Some(Self {
            key_id: *body.get(1)?,
            client: *body.get(2)?,
            family_slot: u16_at(body, 3),
            serial: u32_at(body, 5),
            counter: u32_at(body, 9),
        })
    }

    /// Reads the claims without verifying them (for diagnostics; nothing read here may be trusted).
    pub fn peek(token: &str) -> Option<Self> {
        let mut raw = [0u8; REFRESH_BODY + TAG_LEN];
        Self::parse(open(token, &mut raw, b'R')?.0)
    }

    /// Verifies the MAC of `token` for `client_id` and returns its claims.
    pub fn verify(token: &str, keys: &KeyRing, client_id: &str) -> Option<Self> {
        Self::verify_with(token, keys, |_| Some(client_id))
    }

    /// Verifies `token`, finding the client id its MAC binds from the client index it carries.
    pub fn verify_with<'c>(token: &str, keys: &KeyRing, client_id: impl FnOnce(u8) -> Option<&'c str>) -> Option<Self> {
        let mut raw = [0u8; REFRESH_BODY + TAG_LEN];
        let (body, tag) = open(token, &mut raw, b'R')?;
        let key = keys.get(*body.get(1)?)?;
        let client_id = client_id(*body.get(2)?)?;
        if !key.verify(Domain::RefreshToken, &[body, client_id.as_bytes()], tag) {
            return None;
        }
        Self::parse(body)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_lengths() {
        let keys = KeyRing::new(ServerKey::new(1, &[5; 32]));
        let a = AccessClaims {
            key_id: 1,
            client: 2,
            family_slot: 7,
            serial: 99,
            user: 42,
            scopes: ScopeSet::from_bits(5),
            expires_at: 1000,
        };
        let t = a.encode(keys.current().unwrap(), "cli");
        assert_eq!(t.len(), ACCESS_TOKEN_LEN);
        assert_eq!(AccessClaims::verify(&t, &keys, "cli"), Some(a));
        assert_eq!(AccessClaims::verify(&t, &keys, "clj"), None);
        assert_eq!(RefreshClaims::verify(&t, &keys, "cli"), None);
        let r = RefreshClaims { key_id: 1, client: 2, family_slot: 7, serial: 99, counter: 3 };
        let rt = r.encode(keys.current().unwrap(), "cli");
        assert_eq!(rt.len(), REFRESH_TOKEN_LEN);
        assert_eq!(RefreshClaims::verify(&rt, &keys, "cli"), Some(r));
        assert_eq!(AccessClaims::verify(&rt, &keys, "cli"), None);
        assert_eq!(AccessClaims::peek("!!"), None);
        assert_eq!(AccessClaims::peek(""), None);
    }
}
