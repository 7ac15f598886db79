//! Frames: the authenticated unit the store appends, one per sequential-storage queue item.
//!
//! | offset | bytes | field |
//! |---|---|---|
//! | 0 | 1 | format version (1) |
//! | 1 | 1 | kind: 1 commit, 2 checkpoint part (+ `0x10` first, `0x20` last), 3 commit mark, 4 damage mark |
//! | 2 | 1 | id of the server key that signed it |
//! | 3 | 1 | reserved, 0 |
//! | 4 | 4 | sequence number (u32 LE), one more than the frame before it |
//! | 8 | 4 | span (u32 LE): flash bytes the log had used since its base when this frame was written |
//! | 12 | n | body, whitened: entries ([`super::record`]); a last checkpoint part ends with its record count (u32 LE) |
//! | 12 + n | 16 | tag: HMAC-SHA256 under the signing key, domain `L`, of bytes `0..12 + n`, truncated |
//!
//! The body is XORed with the SHA-256 of the sequence number, repeated. This is not secrecy: it keeps
//! runs of `0xFF` bytes (an all-ones value, padding) out of the stored item, because sequential-storage, when it skips over an item whose
//! header is damaged, takes eight erased-looking bytes for the end of the page and would hide every item
//! after it.

use sha2::{Digest, Sha256};

use crate::key::{Domain, KeyRing, ServerKey, TAG_LEN};

/// The frame format this crate writes and reads.
pub(crate) const VERSION: u8 = 1;
/// Bytes before the body.
pub(crate) const HEADER_LEN: usize = 12;
/// Bytes of a frame that are not body.
pub(crate) const OVERHEAD: usize = HEADER_LEN + TAG_LEN;
/// Bytes of the record count that ends the last part of a checkpoint.
pub(crate) const COUNT_LEN: usize = 4;

const FIRST: u8 = 0x10;
const LAST: u8 = 0x20;

/// What a frame is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    /// Records changed by one durable event.
    Commit,
    /// A part of a checkpoint (a complete copy of the live records).
    Checkpoint { first: bool, last: bool },
    /// Confirms that the frame before it was written whole.
    Mark,
    /// Written by a load that found damage: the state before it is not to be trusted again.
    Damage,
}

impl Kind {
    const fn code(self) -> u8 {
        match self {
            Self::Commit => 1,
            Self::Checkpoint { first, last } => 2 | if first { FIRST } else { 0 } | if last { LAST } else { 0 },
            Self::Mark => 3,
            Self::Damage => 4,
        }
    }

    const fn from_code(code: u8) -> Option<Self> {
        match code {
            1 => Some(Self::Commit),
            3 => Some(Self::Mark),
            4 => Some(Self::Damage),
            c if c & !(FIRST | LAST) == 2 => Some(Self::Checkpoint { first: c & FIRST != 0, last: c & LAST != 0 }),
            _ => None,
        }
    }
}

/// Why an item is not an authentic frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Reject {
    /// Too short, another format version, or an unknown kind.
    Malformed,
    /// Signed by a key that is not in the ring.
    UnknownKey,
    /// The tag does not match: damaged, or altered.
    BadTag,
}

/// An authenticated frame, its body already un-whitened.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Frame<'a> {
    pub kind: Kind,
    pub seq: u32,
    pub span: u32,
    /// The entries (without the record count of a last checkpoint part).
    pub entries: &'a [u8],
    /// The record count of a last checkpoint part.
    pub count: Option<u32>,
}

fn whiten(seq: u32, body: &mut [u8]) {
    let pad = Sha256::new().chain_update(b"oauth2-devices store pad").chain_update(seq.to_le_bytes()).finalize();
    for (b, p) in body.iter_mut().zip(pad.iter().cycle()) {
        *b ^= p;
    }
}

/// Finishes the frame whose body (plain) is `buf[HEADER_LEN..HEADER_LEN + body_len]`: writes the header,
/// whitens the body and appends the tag. Returns the frame's length, or `None` if `buf` is too small.
pub(crate) fn seal(key: &ServerKey, buf: &mut [u8], kind: Kind, seq: u32, span: u32, body_len: usize) -> Option<usize> {
    let signed = HEADER_LEN.checked_add(body_len)?;
    let len = signed.checked_add(TAG_LEN)?;
    let frame = buf.get_mut(..len)?;
    let (header, rest) = frame.split_at_mut(HEADER_LEN);
    header.copy_from_slice(&[0; HEADER_LEN]);
    *header.first_mut()? = VERSION;
    *header.get_mut(1)? = kind.code();
    *header.get_mut(2)? = key.id();
    header.get_mut(4..8)?.copy_from_slice(&seq.to_le_bytes());
    header.get_mut(8..12)?.copy_from_slice(&span.to_le_bytes());
    whiten(seq, rest.get_mut(..body_len)?);
    let tag = key.tag(Domain::Store, &[frame.get(..signed)?]);
    frame.get_mut(signed..)?.copy_from_slice(&tag);
    Some(len)
}

fn word(bytes: &[u8], at: usize) -> Option<u32> {
    bytes.get(at..at.checked_add(4)?)?.try_into().ok().map(u32::from_le_bytes)
}

/// Authenticates `item` (with the key its header names) and un-whitens its body in place.
pub(crate) fn open<'a>(keys: &KeyRing, item: &'a mut [u8]) -> Result<Frame<'a>, Reject> {
    let signed = item.len().checked_sub(TAG_LEN).filter(|&n| n >= HEADER_LEN).ok_or(Reject::Malformed)?;
    let (body, tag) = item.split_at_mut(signed);
    let (header, body) = body.split_at_mut(HEADER_LEN);
    if header.first() != Some(&VERSION) || header.get(3) != Some(&0) {
        return Err(Reject::Malformed);
    }
    let kind = header.get(1).and_then(|&c| Kind::from_code(c)).ok_or(Reject::Malformed)?;
    let key_id = header.get(2).copied().ok_or(Reject::Malformed)?;
    let key = keys.get(key_id).ok_or(Reject::UnknownKey)?;
    if !key.verify(Domain::Store, &[&*header, &*body], tag) {
        return Err(Reject::BadTag);
    }
    let seq = word(header, 4).ok_or(Reject::Malformed)?;
    let span = word(header, 8).ok_or(Reject::Malformed)?;
    whiten(seq, body);
    let body: &'a [u8] = body;
    let (entries, count) = match kind {
        Kind::Checkpoint { last: true, .. } => {
            let at = body.len().checked_sub(COUNT_LEN).ok_or(Reject::Malformed)?;
            (body.get(..at).ok_or(Reject::Malformed)?, Some(word(body, at).ok_or(Reject::Malformed)?))
        }
        Kind::Mark | Kind::Damage if !body.is_empty() => return Err(Reject::Malformed),
        _ => (body, None),
    };
    Ok(Frame { kind, seq, span, entries, count })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ring() -> KeyRing {
        KeyRing::new(ServerKey::new(3, &[9; 32]))
    }

    #[test]
    fn seal_then_open_and_every_bit_matters() {
        let keys = ring();
        let mut buf = [0u8; 64];
        buf[HEADER_LEN..HEADER_LEN + 8].copy_from_slice(&[0xFF; 8]);
        let kind = Kind::Checkpoint { first: true, last: true };
        let len = seal(keys.current().unwrap(), &mut buf, kind, 41, 1234, 8).unwrap();
        assert_eq!(len, OVERHEAD + 8);
        // Whitened: the run of 0xFF is gone from what is stored.
        assert_ne!(&buf[HEADER_LEN..HEADER_LEN + 8], &[0xFF; 8]);
        let stored = buf;
        let f = open(&keys, &mut buf[..len]).unwrap();
        assert_eq!((f.kind, f.seq, f.span, f.count), (kind, 41, 1234, Some(u32::from_le_bytes([0xFF; 4]))));
        assert_eq!(f.entries, &[0xFF; 4]);
        for i in 0..len {
            for bit in 0..8 {
                let mut bad = stored;
                bad[i] ^= 1 << bit;
                assert!(open(&keys, &mut bad[..len]).is_err(), "byte {i} bit {bit}");
            }
        }
        let mut short = stored;
        assert_eq!(open(&keys, &mut short[..OVERHEAD - 1]), Err(Reject::Malformed));
        let other = KeyRing::new(ServerKey::new(4, &[9; 32]));
        let mut copy = stored;
        assert_eq!(open(&other, &mut copy[..len]), Err(Reject::UnknownKey));
        let same_id = KeyRing::new(ServerKey::new(3, &[8; 32]));
        let mut copy = stored;
        assert_eq!(open(&same_id, &mut copy[..len]), Err(Reject::BadTag));
    }

    #[test]
    fn kinds_round_trip() {
        for k in [
            Kind::Commit,
            Kind::Mark,
            Kind::Damage,
            Kind::Checkpoint { first: false, last: false },
            Kind::Checkpoint { first: true, last: false },
            Kind::Checkpoint { first: false, last: true },
            Kind::Checkpoint { first: true, last: true },
        ] {
            assert_eq!(Kind::from_code(k.code()), Some(k));
        }
        assert_eq!(Kind::from_code(0), None);
        assert_eq!(Kind::from_code(0x42), None);
        assert_eq!(Kind::from_code(0x11), None);
    }
}
