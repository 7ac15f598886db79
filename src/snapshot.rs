//! Snapshots of the provider's durable state, so a reboot loses no approved grant, refresh token or
//! revocation, and resurrects nothing.
//!
//! # What is saved
//! Live *decided* grants (approved, denied or exchanged: a spent or denied code stays spent or denied),
//! live token families with their reservations (a revoked family is simply absent, so it stays
//! revoked; approval and last-use times come along), the grant serial lease (so no serial, hence no
//! code or token, is ever reused) and the provider's clock. Not saved: undecided grants (a device
//! that asked for codes just before a reboot starts a new flow; saving them would cost a flash write
//! per request), the server keys (they belong in the application's key storage), the clients and
//! scopes (configuration), the attempt budgets (they restart; a reboot is not something an attacker
//! gets for free on a gateway).
//!
//! # Format (version 2)
//! `"O2DS"` ‖ postcard(header) ‖ postcard(grant record)* ‖ postcard(family record)* ‖ tag, where the
//! header holds the format version, the id of the signing key, the clock, the serial lease and the
//! record counts, and the tag is HMAC-SHA256 (truncated to 128 bits) of everything before it, under the
//! server key named in the header. A snapshot from another server, or altered in any bit, is refused.
//! Version 1 (before fair shares and connected devices) is still read: its undecided grants are
//! dropped, its families get the snapshot's clock as their approval and last-use time, and the next
//! save writes version 2, so a firmware update forgets no paired device.
//!
//! # Time across reboots
//! Expiry is exact across a reboot when `now` comes from a clock that keeps running through it (an RTC,
//! SNTP, or the host's clock): nothing outlives its lifetime and nothing expires early. Within a run the
//! provider never lets time go backwards (it keeps the latest `now`), so a clock that jumps back never
//! revives an expired code or token. If at restore `now` is *behind* the snapshot's clock, the clock
//! restarted and the downtime is unknown: the provider then fails safe, keeping the serial counter but
//! dropping every grant and token family (devices start a new flow, clients re-authorize), because
//! keeping them could let a token outlive its lifetime. [`Restored::clock_was_behind`] reports it.
//! A clock the application knows to be right (an RTC that kept running, SNTP) is restored with
//! [`Provider::restore_with`] and [`ClockTrust::Trusted`]: then nothing is dropped.
//!
//! # Flash wear
//! [`Provider::durable_version`] changes only when durable state does: one write when the user approves
//! or denies, one at the token exchange, one per refresh and one per revocation, plus one per
//! [`crate::provider::SERIAL_LEASE`] device authorizations. Asking for codes and polling write nothing.
//! A complete device flow therefore costs two snapshot writes.

use core::fmt;

use serde::{Deserialize, Serialize};

use crate::client::ClientRegistry;
use crate::family::Family;
use crate::fmt::{log_info, log_warn};
use crate::grant::{GrantState, GrantStore, PendingGrant};
use crate::key::{Domain, TAG_LEN};
use crate::provider::{secs, Provider};

/// The first bytes of every snapshot.
pub const SNAPSHOT_MAGIC: [u8; 4] = *b"O2DS";
/// The format version this crate writes and reads.
pub const SNAPSHOT_VERSION: u8 = 2;

/// The first format version, still read (see the module docs).
const V1: u8 = 1;

/// How far the serial counter jumps at a restore. Grants issued after the last save and lost in a power
/// cut used serials just above the saved counter; skipping past them means no serial, hence no device
/// code or token, is ever issued twice, unless more than this many grants were made between two saves.
pub const SERIAL_RESTORE_GAP: u32 = 1 << 20;

/// Worst-case bytes of a snapshot with `grants` grant slots and `families` family slots.
pub const fn max_snapshot_len(grants: usize, families: usize) -> usize {
    // magic + header (1 + 1 + 5 + 5 + 3 + 3) + records (slot 3 + grant 36, slot 3 + family 38) + tag
    4 + 18 + grants * 39 + families * 41 + TAG_LEN
}

#[derive(Serialize, Deserialize)]
struct Header {
    version: u8,
    key_id: u8,
    clock: u32,
    next_serial: u32,
    grants: u16,
    families: u16,
}

#[derive(Serialize, Deserialize)]
struct GrantRecord {
    slot: u16,
    grant: PendingGrant,
}

#[derive(Serialize, Deserialize)]
struct FamilyRecord {
    slot: u16,
    family: Family,
}

/// A grant as version 1 stored it.
#[derive(Deserialize)]
struct V1Grant {
    slot: u16,
    serial: u32,
    expires_at: u32,
    last_poll: u32,
    user: u32,
    scopes: crate::scope::ScopeSet,
    user_code: crate::code::UserCode,
    interval: u16,
    client: u8,
    state: GrantState,
}

/// A token family as version 1 stored it.
#[derive(Deserialize)]
struct V1Family {
    slot: u16,
    serial: u32,
    expires_at: u32,
    user: u32,
    scopes: crate::scope::ScopeSet,
    counter: u32,
    client: u8,
    refresh: bool,
}

/// One grant record of a snapshot of `version`, in today's form; `None` for a grant today's format
/// does not keep (an undecided one).
fn take_grant(version: u8, input: &mut &[u8]) -> Result<Option<(u16, PendingGrant)>, SnapshotError> {
    if version == V1 {
        let g: V1Grant = take(input)?;
        let mark = if g.state.is_undecided() { g.last_poll } else { g.user };
        let grant = PendingGrant {
            serial: g.serial,
            expires_at: g.expires_at,
            mark,
            scopes: g.scopes,
            user_code: g.user_code,
            source: 0,
            interval: g.interval,
            client: g.client,
            state: g.state,
        };
        return Ok((!g.state.is_undecided()).then_some((g.slot, grant)));
    }
    let r: GrantRecord = take(input)?;
    Ok((!r.grant.state.is_undecided()).then_some((r.slot, r.grant)))
}

/// One family record of a snapshot of `version` saved at `clock`, in today's form.
fn take_family(version: u8, clock: u32, input: &mut &[u8]) -> Result<(u16, Family), SnapshotError> {
    if version == V1 {
        let f: V1Family = take(input)?;
        let family = Family {
            serial: f.serial,
            expires_at: f.expires_at,
            user: f.user,
            scopes: f.scopes,
            counter: f.counter,
            client: f.client,
            approved_at: clock,
            last_used: clock,
            refresh: f.refresh,
            issued: true,
        };
        return Ok((f.slot, family));
    }
    let r: FamilyRecord = take(input)?;
    Ok((r.slot, r.family))
}

/// Why a snapshot could not be written or read. On any read error the provider is left unchanged;
/// the documented fallback is to run from the empty state (old codes and tokens then fail to verify
/// against empty tables, so nothing is resurrected).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[non_exhaustive]
pub enum SnapshotError {
    /// The output buffer is too small (see [`max_snapshot_len`]).
    BufferTooSmall,
    /// The input ends early.
    Truncated,
    /// The input is not a snapshot.
    BadMagic,
    /// A snapshot of a format version this crate does not read.
    UnsupportedVersion(u8),
    /// Signed by a key that is not in the key ring.
    UnknownKey(u8),
    /// The integrity tag does not match: altered, or from another server.
    BadTag,
    /// Well signed but not decodable, or with trailing bytes.
    Malformed,
    /// It holds more grants or families, or higher slots, than this provider has room for.
    CapacityExceeded,
    /// The provider has no key yet (`Provider::init` was not called).
    NotInitialised,
}

impl fmt::Display for SnapshotError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::BufferTooSmall => f.write_str("snapshot buffer too small"),
            Self::Truncated => f.write_str("snapshot truncated"),
            Self::BadMagic => f.write_str("not a snapshot"),
            Self::UnsupportedVersion(v) => write!(f, "unsupported snapshot version {v}"),
            Self::UnknownKey(k) => write!(f, "snapshot signed by unknown key {k}"),
            Self::BadTag => f.write_str("snapshot integrity check failed"),
            Self::Malformed => f.write_str("snapshot malformed"),
            Self::CapacityExceeded => f.write_str("snapshot does not fit this provider's capacities"),
            Self::NotInitialised => f.write_str("the provider is not initialised"),
        }
    }
}

impl core::error::Error for SnapshotError {}

/// Whether `now` given at a restore can be trusted when it is behind the stored clock.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum ClockTrust {
    /// `now` comes from a clock known to be right (an RTC that kept running, a clock set by SNTP): the
    /// state is restored whole even if `now` is behind the stored clock, and the provider's clock is the
    /// later of the two.
    Trusted,
    /// `now` may have restarted (uptime since boot, an RTC that lost power): when it is behind the
    /// stored clock the downtime is unknown, so grants and token families are dropped and the serial
    /// counter kept.
    Untrusted,
}

/// What a restore brought back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Restored {
    /// Pending grants restored.
    pub grants: usize,
    /// Token families restored.
    pub families: usize,
    /// The clock was behind the snapshot's: grants and families were dropped (see the module docs).
    pub clock_was_behind: bool,
}

fn put<T: Serialize>(value: &T, out: &mut [u8], pos: &mut usize) -> Result<(), SnapshotError> {
    let rest = out.get_mut(*pos..).ok_or(SnapshotError::BufferTooSmall)?;
    let n = postcard::to_slice(value, rest).map_err(|_| SnapshotError::BufferTooSmall)?.len();
    *pos += n;
    Ok(())
}

fn take<'a, T: Deserialize<'a>>(input: &mut &'a [u8]) -> Result<T, SnapshotError> {
    let (value, rest) = postcard::take_from_bytes(input).map_err(|e| match e {
        postcard::Error::DeserializeUnexpectedEnd => SnapshotError::Truncated,
        _ => SnapshotError::Malformed,
    })?;
    *input = rest;
    Ok(value)
}

impl<C: ClientRegistry, G: GrantStore, const F: usize, const S: usize> Provider<C, G, F, S> {
    /// Writes a snapshot of the durable state into `out` and returns its length. Grants and families
    /// that have expired by the provider's clock are left out.
    pub fn save(&self, out: &mut [u8]) -> Result<usize, SnapshotError> {
        let key = self.keys().current().ok_or(SnapshotError::NotInitialised)?;
        let now = self.clock();
        let table = self.grants();
        let live_grant =
            |slot: usize| table.get(slot).filter(|g| !g.is_expired(now) && !g.state.is_undecided()).copied();
        let grants = (0..table.capacity()).filter(|&s| live_grant(s).is_some()).count();
        let live_families = || self.family_table().iter().filter(|(_, f)| f.is_live(now));
        let families = live_families().count();
        let header = Header {
            version: SNAPSHOT_VERSION,
            key_id: key.id(),
            clock: now,
            next_serial: self.serial_lease(),
            grants: u16::try_from(grants).map_err(|_| SnapshotError::CapacityExceeded)?,
            families: u16::try_from(families).map_err(|_| SnapshotError::CapacityExceeded)?,
        };
        let magic = out.get_mut(..4).ok_or(SnapshotError::BufferTooSmall)?;
        magic.copy_from_slice(&SNAPSHOT_MAGIC);
        let mut pos = 4;
        put(&header, out, &mut pos)?;
        for slot in 0..table.capacity() {
            if let Some(grant) = live_grant(slot) {
                let slot = u16::try_from(slot).map_err(|_| SnapshotError::CapacityExceeded)?;
                put(&GrantRecord { slot, grant }, out, &mut pos)?;
            }
        }
        for (slot, family) in live_families() {
            let slot = u16::try_from(slot).map_err(|_| SnapshotError::CapacityExceeded)?;
            put(&FamilyRecord { slot, family }, out, &mut pos)?;
        }
        let body = out.get(..pos).ok_or(SnapshotError::BufferTooSmall)?;
        let tag = key.tag(Domain::Snapshot, &[body]);
        let dst = out.get_mut(pos..pos + TAG_LEN).ok_or(SnapshotError::BufferTooSmall)?;
        dst.copy_from_slice(&tag);
        Ok(pos + TAG_LEN)
    }

    /// Replaces the durable state with a snapshot's. Atomic: on error nothing changes.
    ///
    /// `now` is the current time; see the module docs for what happens when it is behind the
    /// snapshot's clock.
    pub fn restore(&mut self, now: u64, snapshot: &[u8]) -> Result<Restored, SnapshotError> {
        self.restore_with(now, ClockTrust::Untrusted, snapshot)
    }

    /// [`Provider::restore`] with an explicit clock trust: with [`ClockTrust::Trusted`] a `now` behind the
    /// snapshot's clock keeps everything (the provider's clock becomes the snapshot's).
    pub fn restore_with(&mut self, now: u64, trust: ClockTrust, snapshot: &[u8]) -> Result<Restored, SnapshotError> {
        let restored = self.restore_inner(now, trust, snapshot);
        match &restored {
            Ok(r) if r.clock_was_behind => {
                log_warn!("snapshot: the clock is behind the snapshot's; grants and token families dropped")
            }
            Ok(r) => log_info!("snapshot restored: {} grants, {} token families", r.grants, r.families),
            Err(e) => log_warn!("snapshot refused: {}", e),
        }
        restored
    }

    fn restore_inner(&mut self, now: u64, trust: ClockTrust, snapshot: &[u8]) -> Result<Restored, SnapshotError> {
        let (body, tag) = snapshot.split_at(snapshot.len().saturating_sub(TAG_LEN));
        if tag.len() < TAG_LEN || body.len() < 4 {
            return Err(SnapshotError::Truncated);
        }
        let (magic, mut records) = body.split_at(4);
        if magic != SNAPSHOT_MAGIC {
            return Err(SnapshotError::BadMagic);
        }
        // The version comes first in the header, so a newer format is named as such, not as garbage.
        let version = match records.first() {
            Some(&v @ (V1 | SNAPSHOT_VERSION)) => v,
            Some(&v) => return Err(SnapshotError::UnsupportedVersion(v)),
            None => return Err(SnapshotError::Truncated),
        };
        let header: Header = take(&mut records)?;
        let key = self.keys().get(header.key_id).ok_or(SnapshotError::UnknownKey(header.key_id))?;
        if !key.verify(Domain::Snapshot, &[body], tag) {
            return Err(SnapshotError::BadTag);
        }
        // Pass 1: validate everything before touching the provider.
        let grant_count = usize::from(header.grants);
        let family_count = usize::from(header.families);
        let capacity = self.grants().capacity();
        if grant_count > capacity || family_count > F {
            return Err(SnapshotError::CapacityExceeded);
        }
        let mut check = records;
        for _ in 0..grant_count {
            if take_grant(version, &mut check)?.is_some_and(|(slot, _)| usize::from(slot) >= capacity) {
                return Err(SnapshotError::CapacityExceeded);
            }
        }
        for _ in 0..family_count {
            if usize::from(take_family(version, header.clock, &mut check)?.0) >= F {
                return Err(SnapshotError::CapacityExceeded);
            }
        }
        if !check.is_empty() {
            return Err(SnapshotError::Malformed);
        }
        // Pass 2: apply.
        let now = secs(now);
        let behind = now < header.clock && trust == ClockTrust::Untrusted;
        self.touched();
        let t = self.tables();
        for slot in 0..capacity {
            t.grants.set(slot, None);
        }
        t.families.clear();
        *t.next_serial = header.next_serial.wrapping_add(SERIAL_RESTORE_GAP);
        *t.serial_lease = *t.next_serial;
        t.clock.set(if behind { now } else { header.clock.max(now) });
        if behind {
            return Ok(Restored { grants: 0, families: 0, clock_was_behind: true });
        }
        let mut grants = 0;
        for _ in 0..grant_count {
            if let Some((slot, grant)) = take_grant(version, &mut records)? {
                t.grants.set(usize::from(slot), Some(grant));
                grants += 1;
            }
        }
        for _ in 0..family_count {
            let (slot, family) = take_family(version, header.clock, &mut records)?;
            t.families.set(usize::from(slot), Some(family));
        }
        Ok(Restored { grants, families: family_count, clock_was_behind: false })
    }
}
