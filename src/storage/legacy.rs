//! The legacy snapshot format: two alternating slots on NOR flash (`embedded-storage`), used before the
//! [record store](super::RecordStore). Kept so that gateways keep working until they switch, and so that a
//! firmware update can move the newest old snapshot into the record store ([`find_legacy_snapshot`]).
//!
//! The flash range given to [`SnapshotSlots`] is split into two equal slots. Each holds one record:
//!
//! | offset | bytes | field |
//! |---|---|---|
//! | 0 | 4 | magic `O2DF` |
//! | 4 | 4 | sequence number (little-endian) |
//! | 8 | 4 | payload length |
//! | 12 | 20 | reserved (`0xFF`) |
//! | 32 | 32 | SHA-256 of the payload |
//! | 64 | len | payload (padded with `0xFF` to the write size) |
//!
//! A write goes to the slot that does *not* hold the newest valid record: erase it, write the payload,
//! then write the header last. The header is the commit: until its last byte is written the slot is
//! invalid (erased, or its hash does not match), so a power cut at any byte of a write leaves the previous
//! record as the newest valid one, and a completed write is the new newest. Reading picks the valid record
//! with the highest sequence number.
//!
//! Its weakness, and the reason for the record store: the hash covers the payload only, and a damaged
//! newer copy is indistinguishable from a write cut by power loss, so [`SnapshotSlots::load`] then quietly
//! returns the older copy. [`find_legacy_snapshot`] reports that case as [`Legacy::Suspect`] instead.
//!
//! Each save erases one slot: with flash rated for N erase cycles, the store lasts 2·N saves (see
//! [`crate::snapshot`] for how many saves a device flow costs).

use core::fmt;

use embedded_storage::nor_flash::NorFlash;
use embedded_storage_async::nor_flash::ReadNorFlash as AsyncReadNorFlash;
use sha2::{Digest, Sha256};

const MAGIC: [u8; 4] = *b"O2DF";
const HEADER_LEN: usize = 64;
/// Bytes moved per flash operation; flash write sizes up to this are supported.
const CHUNK: usize = 64;

/// Why the store failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum StorageError {
    /// The range is not two whole erase blocks' worth of slots, or the flash's write size is over 64.
    BadLayout,
    /// The payload does not fit a slot, or the read buffer is too small for the stored payload.
    TooLarge,
    /// The flash driver reported an error.
    Flash,
}

impl fmt::Display for StorageError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::BadLayout => "flash range does not split into two erasable slots",
            Self::TooLarge => "snapshot larger than a slot or than the buffer",
            Self::Flash => "flash operation failed",
        })
    }
}

impl core::error::Error for StorageError {}

/// Two alternating snapshot slots in a range of NOR flash.
#[derive(Debug)]
pub struct SnapshotSlots<F> {
    flash: F,
    base: u32,
    slot_len: u32,
}

struct Header {
    seq: u32,
    len: usize,
    hash: [u8; 32],
}

/// The header of a slot that starts with the magic (its length not yet checked against the slot).
fn parse_header(h: &[u8; HEADER_LEN]) -> Option<Header> {
    let word = |i: usize| h.get(i..i + 4).and_then(|b| b.try_into().ok()).map_or(0, u32::from_le_bytes);
    if h[..4] != MAGIC {
        return None;
    }
    let mut hash = [0u8; 32];
    hash.copy_from_slice(&h[32..]);
    Some(Header { seq: word(4), len: word(8) as usize, hash })
}

impl<F: NorFlash> SnapshotSlots<F> {
    /// Uses `len` bytes of `flash` from `base`; `len` must be two slots of whole erase blocks.
    pub fn new(flash: F, base: u32, len: u32) -> Result<Self, StorageError> {
        let erase = u32::try_from(F::ERASE_SIZE).map_err(|_| StorageError::BadLayout)?;
        let slot_len = len / 2;
        let fits = base.checked_add(len).is_some_and(|end| end as usize <= flash.capacity());
        if erase == 0
            || !slot_len.is_multiple_of(erase)
            || !base.is_multiple_of(erase)
            || (slot_len as usize) <= HEADER_LEN
            || F::WRITE_SIZE == 0
            || !CHUNK.is_multiple_of(F::WRITE_SIZE)
            || !fits
        {
            return Err(StorageError::BadLayout);
        }
        Ok(Self { flash, base, slot_len })
    }

    /// The largest payload a slot holds.
    pub fn max_payload(&self) -> usize {
        self.slot_len as usize - HEADER_LEN
    }

    /// Gives the flash back.
    pub fn into_inner(self) -> F {
        self.flash
    }

    fn slot_base(&self, slot: u32) -> u32 {
        self.base + slot * self.slot_len
    }

    fn header(&mut self, slot: u32) -> Result<Option<Header>, StorageError> {
        let mut h = [0u8; HEADER_LEN];
        self.flash.read(self.slot_base(slot), &mut h).map_err(|_| StorageError::Flash)?;
        Ok(parse_header(&h).filter(|h| h.len <= self.max_payload()))
    }

    /// Hashes a slot's payload, reading it in chunks (and copying it into `out` if given).
    fn payload_hash(&mut self, slot: u32, len: usize, mut out: Option<&mut [u8]>) -> Result<[u8; 32], StorageError> {
        let mut hasher = Sha256::new();
        let mut chunk = [0u8; CHUNK];
        let mut done = 0;
        let start = self.slot_base(slot) + HEADER_LEN as u32;
        while done < len {
            let n = CHUNK.min(len - done);
            let buf = chunk.get_mut(..n).ok_or(StorageError::Flash)?;
            self.flash.read(start + done as u32, buf).map_err(|_| StorageError::Flash)?;
            hasher.update(&*buf);
            if let Some(out) = out.as_deref_mut() {
                out.get_mut(done..done + n).ok_or(StorageError::TooLarge)?.copy_from_slice(buf);
            }
            done += n;
        }
        Ok(hasher.finalize().into())
    }

    /// The slot and sequence number of the newest valid record.
    fn newest(&mut self) -> Result<Option<(u32, Header)>, StorageError> {
        let mut best: Option<(u32, Header)> = None;
        for slot in 0..2 {
            if let Some(h) = self.header(slot)? {
                if self.payload_hash(slot, h.len, None)? == h.hash && best.as_ref().is_none_or(|(_, b)| h.seq > b.seq) {
                    best = Some((slot, h));
                }
            }
        }
        Ok(best)
    }

    /// Reads the newest valid snapshot into `buf`; `None` if there is none (a fresh device).
    pub fn load<'b>(&mut self, buf: &'b mut [u8]) -> Result<Option<&'b [u8]>, StorageError> {
        let Some((slot, h)) = self.newest()? else { return Ok(None) };
        let out = buf.get_mut(..h.len).ok_or(StorageError::TooLarge)?;
        // Read and hash again while copying, so what is returned is what was verified.
        if self.payload_hash(slot, h.len, Some(out))? != h.hash {
            return Err(StorageError::Flash);
        }
        Ok(buf.get(..h.len))
    }

    /// Stores `payload` as the newest snapshot, safely against power loss at any point.
    pub fn store(&mut self, payload: &[u8]) -> Result<(), StorageError> {
        if payload.len() > self.max_payload() {
            return Err(StorageError::TooLarge);
        }
        let (slot, seq) = match self.newest()? {
            Some((s, h)) => (1 - s, h.seq.wrapping_add(1)),
            None => (0, 1),
        };
        let base = self.slot_base(slot);
        self.flash.erase(base, base + self.slot_len).map_err(|_| StorageError::Flash)?;
        let mut offset = base + HEADER_LEN as u32;
        for part in payload.chunks(CHUNK) {
            let mut chunk = [0xFFu8; CHUNK];
            let padded = part.len().div_ceil(F::WRITE_SIZE) * F::WRITE_SIZE;
            chunk.get_mut(..part.len()).ok_or(StorageError::TooLarge)?.copy_from_slice(part);
            let data = chunk.get(..padded).ok_or(StorageError::TooLarge)?;
            self.flash.write(offset, data).map_err(|_| StorageError::Flash)?;
            offset += padded as u32;
        }
        let mut h = [0xFFu8; HEADER_LEN];
        h[..4].copy_from_slice(&MAGIC);
        h[4..8].copy_from_slice(&seq.to_le_bytes());
        h[8..12].copy_from_slice(&(payload.len() as u32).to_le_bytes());
        h[32..].copy_from_slice(&Sha256::digest(payload));
        self.flash.write(base, &h).map_err(|_| StorageError::Flash)
    }
}

/// The newest old-format snapshot of a range.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LegacySnapshot<'b> {
    /// Its sequence number.
    pub seq: u32,
    /// The payload: a snapshot for [`crate::provider::Provider::restore`] (which checks its own tag).
    pub payload: &'b [u8],
}

/// What [`find_legacy_snapshot`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Legacy<'b> {
    /// Neither slot starts with the old format's magic: nothing to migrate.
    Absent,
    /// The newest old snapshot, intact, and no slot with a higher sequence number that fails its check.
    Intact(LegacySnapshot<'b>),
    /// A slot carries the magic but fails its check (length or hash) and is not older than the intact
    /// one, if any. The old format cannot tell a write cut by power loss from damage here: treat `older`
    /// like [`super::Found::Corrupted`] records (keep only what must never go back).
    Suspect {
        /// The intact older snapshot, if one is left.
        older: Option<LegacySnapshot<'b>>,
    },
}

/// Looks for the old two-slot format in `len` bytes of `flash` from `base` (the range given to
/// [`SnapshotSlots::new`]) and returns the newest snapshot in `buf`. Only reads, so it can run on the flash
/// the record store will use. Keep the two ranges apart: the old snapshot then survives until the new
/// store holds its checkpoint, and the record store never sees the old data (which its first load could
/// erase, see [`super::RecordStore::new`]).
pub async fn find_legacy_snapshot<'b, F: AsyncReadNorFlash>(
    flash: &mut F,
    base: u32,
    len: u32,
    buf: &'b mut [u8],
) -> Result<Legacy<'b>, StorageError> {
    let slot_len = len / 2;
    let fits = base.checked_add(len).is_some_and(|end| end as usize <= flash.capacity());
    if (slot_len as usize) <= HEADER_LEN || F::READ_SIZE == 0 || !CHUNK.is_multiple_of(F::READ_SIZE) || !fits {
        return Err(StorageError::BadLayout);
    }
    let max_payload = slot_len as usize - HEADER_LEN;
    let (mut any_magic, mut newest, mut suspect) = (false, None::<(u32, Header)>, None::<u32>);
    for slot in 0..2 {
        let start = base + slot * slot_len;
        let mut h = [0u8; HEADER_LEN];
        flash.read(start, &mut h).await.map_err(|_| StorageError::Flash)?;
        let Some(header) = parse_header(&h) else { continue };
        any_magic = true;
        let intact = header.len <= max_payload && legacy_hash(flash, start, header.len, None).await? == header.hash;
        if !intact {
            suspect = Some(suspect.map_or(header.seq, |s: u32| s.max(header.seq)));
        } else if newest.as_ref().is_none_or(|(_, n)| header.seq > n.seq) {
            newest = Some((start, header));
        }
    }
    if !any_magic {
        return Ok(Legacy::Absent);
    }
    let older = match newest {
        Some((start, header)) => {
            let out = buf.get_mut(..header.len).ok_or(StorageError::TooLarge)?;
            // Read and hash again while copying, so what is returned is what was verified.
            if legacy_hash(flash, start, header.len, Some(out)).await? != header.hash {
                return Err(StorageError::Flash);
            }
            let payload = buf.get(..header.len).ok_or(StorageError::TooLarge)?;
            Some((LegacySnapshot { seq: header.seq, payload }, header.seq))
        }
        None => None,
    };
    Ok(match (older, suspect) {
        (Some((snap, seq)), Some(bad)) if bad < seq => Legacy::Intact(snap),
        (Some((snap, _)), None) => Legacy::Intact(snap),
        (older, _) => Legacy::Suspect { older: older.map(|(s, _)| s) },
    })
}

/// SHA-256 of a slot's payload, read in chunks (and copied into `out` if given).
async fn legacy_hash<F: AsyncReadNorFlash>(
    flash: &mut F,
    slot_start: u32,
    len: usize,
    mut out: Option<&mut [u8]>,
) -> Result<[u8; 32], StorageError> {
    let mut hasher = Sha256::new();
    let mut chunk = [0u8; CHUNK];
    let mut done = 0;
    let start = slot_start + HEADER_LEN as u32;
    while done < len {
        let n = CHUNK.min(len - done);
        // Reads are whole read units; the slot is padded to the write size, so this stays inside it.
        let padded = n.div_ceil(F::READ_SIZE) * F::READ_SIZE;
        let raw = chunk.get_mut(..padded).ok_or(StorageError::BadLayout)?;
        flash.read(start + done as u32, raw).await.map_err(|_| StorageError::Flash)?;
        let data = chunk.get(..n).ok_or(StorageError::Flash)?;
        hasher.update(data);
        if let Some(out) = out.as_deref_mut() {
            out.get_mut(done..done + n).ok_or(StorageError::TooLarge)?.copy_from_slice(data);
        }
        done += n;
    }
    Ok(hasher.finalize().into())
}

#[cfg(all(test, feature = "std"))]
mod tests {
    use super::*;
    use crate::storage::FileFlash;

    #[test]
    fn file_flash_keeps_snapshots_across_reopen() {
        let path = std::env::temp_dir().join(format!("oauth2-devices-flash-{}.bin", std::process::id()));
        let _ = std::fs::remove_file(&path);
        {
            let mut s = SnapshotSlots::new(FileFlash::open(&path, 16384).unwrap(), 0, 16384).unwrap();
            s.store(b"first").unwrap();
            s.store(b"second").unwrap();
        }
        let mut s = SnapshotSlots::new(FileFlash::open(&path, 16384).unwrap(), 0, 16384).unwrap();
        let mut buf = [0u8; 64];
        assert_eq!(s.load(&mut buf).unwrap(), Some(&b"second"[..]));
        std::fs::remove_file(&path).unwrap();
    }
}
