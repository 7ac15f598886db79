//! The provider on the record store: [`Provider::persist`] writes what the change journal lists,
//! [`Provider::restore_from`] loads the records straight into the tables, [`Provider::migrate_legacy`]
//! moves an old two-slot snapshot into the store. The record layout is in the module docs of
//! [`crate::storage`].

use embedded_storage_async::nor_flash::NorFlash;
use serde::{Deserialize, Serialize};

use super::capture::Records;
use super::journal::JOURNAL_SLOTS;
use super::{Found, Legacy, LoadReport, RecordKey, RecordStore, StoreConfig, StoreError};
use crate::client::ClientRegistry;
use crate::family::Family;
use crate::fmt::{log_info, log_warn};
use crate::grant::{GrantStore, PendingGrant};
use crate::provider::{secs, Provider};
use crate::snapshot::{ClockTrust, SERIAL_RESTORE_GAP};

/// Key of the header record (clock and serial lease).
pub const HEADER_KEY: RecordKey = 0;
/// Key of grant slot 0; slot `s` is `GRANT_KEY + s`.
pub const GRANT_KEY: RecordKey = 1;
/// Key of family slot 0; slot `s` is `FAMILY_KEY + s`.
pub const FAMILY_KEY: RecordKey = 0x8000;
/// The longest record value the provider writes (a family: 38 bytes of postcard at most).
pub const MAX_RECORD_LEN: u16 = 40;
/// The header's format version.
const HEADER_VERSION: u8 = 1;

/// The store configuration for a provider with `grants` grant slots and `families` family slots.
pub const fn provider_store_config(grants: usize, families: usize) -> StoreConfig {
    StoreConfig::new((1 + grants + families) as u32, MAX_RECORD_LEN)
}

#[derive(Serialize, Deserialize)]
struct StoreHeader {
    version: u8,
    clock: u32,
    serial_lease: u32,
}

/// What a persist wrote.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct PersistReport {
    /// Records written (header included); 0 when nothing had changed.
    pub records: u32,
    /// The whole state was written as a checkpoint (journal overflow, a due or required checkpoint, or
    /// changes too large for one commit) rather than one commit of the changed records.
    pub checkpoint: bool,
}

/// What a start from the record store found, as an application may show it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[non_exhaustive]
pub enum StoreStatus {
    /// The store was empty: a new device (or one to migrate, see [`Provider::migrate_legacy`]).
    Empty,
    /// The newest state, whole (possibly after a write cut by power loss: the state before or after it).
    Restored,
    /// The clock is not trusted and is behind the stored one: grants and token families were dropped,
    /// the serial counter kept (devices pair again; nothing revoked comes back).
    ClockUntrusted,
    /// The store is damaged, or a record in it does not fit this provider: grants and token families
    /// were dropped, the serial counter kept.
    Corrupted,
    /// The store holds data but nothing provable: the provider starts empty, with a fresh serial.
    NothingRestorable,
}

/// What [`Provider::restore_from`] brought back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct StoreRestored {
    /// The verdict for the application.
    pub status: StoreStatus,
    /// Grants restored.
    pub grants: usize,
    /// Token families restored.
    pub families: usize,
    /// The store's own report.
    pub load: LoadReport,
}

/// What [`Provider::migrate_legacy`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[non_exhaustive]
pub enum Migrated {
    /// No old snapshot: nothing written.
    Nothing,
    /// The old snapshot was restored and checkpointed into the store.
    Restored {
        /// Grants restored.
        grants: usize,
        /// Token families restored.
        families: usize,
        /// The clock was untrusted and behind: grants and families were dropped.
        clock_was_behind: bool,
    },
    /// The old slots were suspect (or the snapshot was refused): only the serial counter was kept (when
    /// an older intact snapshot gave one), grants and families dropped, and that state checkpointed.
    FailSafe,
}

/// Encodes `value` at the start of `out`; its length.
pub(super) fn encode<T: Serialize>(value: &T, out: &mut [u8]) -> Result<usize, StoreError> {
    postcard::to_slice(value, out).map(|s| s.len()).map_err(|_| StoreError::TooLarge)
}

/// Decodes a whole value (no trailing bytes).
fn decode<'a, T: Deserialize<'a>>(bytes: &'a [u8]) -> Option<T> {
    match postcard::take_from_bytes(bytes) {
        Ok((v, [])) => Some(v),
        _ => None,
    }
}

impl<C: ClientRegistry, G: GrantStore, const F: usize, const S: usize> Provider<C, G, F, S> {
    /// The grant a record keeps for `slot`: decided and not expired.
    pub(super) fn durable_grant(&self, slot: usize) -> Option<PendingGrant> {
        let now = self.clock();
        self.grants().get(slot).filter(|g| !g.state.is_undecided() && !g.is_expired(now)).copied()
    }

    /// The family a record keeps for `slot`: live (reservations included).
    pub(super) fn durable_family(&self, slot: usize) -> Option<Family> {
        self.family_table().get(slot).filter(|f| f.is_live(self.clock()))
    }

    pub(super) fn header_value(&self, out: &mut [u8]) -> Result<usize, StoreError> {
        let h = StoreHeader { version: HEADER_VERSION, clock: self.clock(), serial_lease: self.serial_lease() };
        encode(&h, out)
    }

    pub(super) fn check_capacity(&self) -> Result<(), StoreError> {
        let grants_fit = self.grants().capacity() < usize::from(FAMILY_KEY - GRANT_KEY);
        if grants_fit && F <= usize::from(u16::MAX - FAMILY_KEY) + 1 {
            Ok(())
        } else {
            Err(StoreError::BadLayout)
        }
    }

    /// Makes every durable change since the last persist durable, atomically: one commit of the changed
    /// records (the header, one record per changed grant or family slot, a removal for a slot emptied),
    /// or a checkpoint of the whole state when the journal overflowed, the store asks for one, or the
    /// changes do not fit one frame. A power cut leaves the previous or the new state; the journal is
    /// cleared only on success. Nothing changed: nothing written.
    ///
    /// Call it before sending the response of a call that bumped [`Provider::durable_version`]: a
    /// refresh rotation that is not durable when its response leaves would make the device's next
    /// refresh after a reboot look like a replay.
    pub async fn persist<Fl: NorFlash, const FRAME: usize, const PAGES: usize>(
        &mut self,
        store: &mut RecordStore<Fl, FRAME, PAGES>,
    ) -> Result<PersistReport, StoreError> {
        self.check_capacity()?;
        let journal = *self.journal();
        if journal.is_clean() {
            return Ok(PersistReport { records: 0, checkpoint: false });
        }
        if !journal.is_all() && !store.checkpoint_due() {
            let mut changes = Records::<{ JOURNAL_SLOTS + 1 }>::new();
            self.capture_changes(&mut changes, &journal)?;
            match changes.write(self.keys(), store).await {
                Ok(report) => {
                    self.journal_mut().clear();
                    return Ok(report);
                }
                // The store needs a checkpoint, or the changes are too many for one frame.
                Err(StoreError::NeedsCheckpoint) => {}
                Err(e) => return Err(e),
            }
        }
        let records = self.write_checkpoint(store).await?;
        self.journal_mut().clear();
        Ok(PersistReport { records, checkpoint: true })
    }

    /// Writes the whole durable state as a checkpoint; the number of records.
    async fn write_checkpoint<Fl: NorFlash, const FRAME: usize, const PAGES: usize>(
        &self,
        store: &mut RecordStore<Fl, FRAME, PAGES>,
    ) -> Result<u32, StoreError> {
        let mut buf = [0u8; MAX_RECORD_LEN as usize];
        let mut cp = store.checkpoint(self.keys())?;
        let len = self.header_value(&mut buf)?;
        cp.put(HEADER_KEY, buf.get(..len).unwrap_or(&[])).await?;
        let mut n = 1u32;
        for slot in 0..self.grants().capacity() {
            if let Some(g) = self.durable_grant(slot) {
                let len = encode(&g, &mut buf)?;
                cp.put(GRANT_KEY.saturating_add(slot as u16), buf.get(..len).unwrap_or(&[])).await?;
                n = n.saturating_add(1);
            }
        }
        for slot in 0..F {
            if let Some(f) = self.durable_family(slot) {
                let len = encode(&f, &mut buf)?;
                cp.put(FAMILY_KEY.saturating_add(slot as u16), buf.get(..len).unwrap_or(&[])).await?;
                n = n.saturating_add(1);
            }
        }
        cp.finish().await?;
        Ok(n)
    }

    /// Replaces the durable state with the store's: the records go straight into the tables as the store
    /// reads them (no buffer for the state). Call once at start, after [`Provider::init`], then
    /// [`Provider::persist`] before serving (the restored serial lease must be durable, and after damage
    /// the store accepts only the checkpoint that persist then writes).
    ///
    /// - trusted state and a `now` not behind the stored clock, or `trust` = [`ClockTrust::Trusted`]:
    ///   everything restored, the clock the later of the two;
    /// - a `now` behind the stored clock with [`ClockTrust::Untrusted`]: grants and token families
    ///   dropped, serial lease kept ([`StoreStatus::ClockUntrusted`]);
    /// - damage ([`Found::Corrupted`]) or a record that does not decode or fit: grants and families
    ///   dropped, serial lease kept ([`StoreStatus::Corrupted`]): the state delivered is older than the
    ///   acknowledged one, and dropping it is what keeps every revoked token, spent code and rotated
    ///   refresh token from becoming valid again;
    /// - [`Found::NothingRestorable`]: empty tables, the serial of `init` ([`StoreStatus::NothingRestorable`]).
    ///
    /// The serial counter restarts [`SERIAL_RESTORE_GAP`] past the stored lease. On `Err` the tables are
    /// left empty (nothing restored is served).
    pub async fn restore_from<Fl: NorFlash, const FRAME: usize, const PAGES: usize>(
        &mut self,
        now: u64,
        trust: ClockTrust,
        store: &mut RecordStore<Fl, FRAME, PAGES>,
    ) -> Result<StoreRestored, StoreError> {
        self.check_capacity()?;
        let now = secs(now);
        let mut header: Option<(u32, u32)> = None;
        let mut bad = 0u32;
        let (keys, t) = self.keys_and_tables();
        let capacity = t.grants.capacity();
        for slot in 0..capacity {
            t.grants.set(slot, None);
        }
        t.families.clear();
        let loaded = store
            .load(keys, |r| {
                let ok = match r.key {
                    HEADER_KEY => match r.value.map(decode::<StoreHeader>) {
                        Some(Some(h)) if h.version == HEADER_VERSION => {
                            header = Some((h.clock, h.serial_lease));
                            true
                        }
                        _ => false,
                    },
                    k if k < FAMILY_KEY => {
                        let slot = usize::from(k - GRANT_KEY);
                        let grant = r.value.map(decode::<PendingGrant>);
                        match grant {
                            _ if slot >= capacity => false,
                            Some(None) => false,
                            Some(Some(g)) => {
                                t.grants.set(slot, (!g.state.is_undecided()).then_some(g));
                                true
                            }
                            None => {
                                t.grants.set(slot, None);
                                true
                            }
                        }
                    }
                    k => {
                        let slot = usize::from(k - FAMILY_KEY);
                        match r.value.map(decode::<Family>) {
                            _ if slot >= F => false,
                            Some(None) => false,
                            Some(f) => {
                                t.families.set(slot, f);
                                true
                            }
                            None => {
                                t.families.set(slot, None);
                                true
                            }
                        }
                    }
                };
                if !ok {
                    bad = bad.saturating_add(1);
                }
            })
            .await;
        let report = match loaded {
            Ok(r) => r,
            Err(e) => {
                let (_, t) = self.keys_and_tables();
                for slot in 0..capacity {
                    t.grants.set(slot, None);
                }
                t.families.clear();
                self.journal_mut().everything();
                log_warn!("record store: load failed: {}", e);
                return Err(e);
            }
        };
        let (_, t) = self.keys_and_tables();
        if let Some((_, lease)) = header {
            *t.next_serial = lease.wrapping_add(SERIAL_RESTORE_GAP);
            *t.serial_lease = *t.next_serial;
        }
        // The header is written with serial leases and checkpoints, not with every change: the newest
        // time a family carries is a lower bound of the stored clock too.
        let family_clock = t.families.iter().map(|(_, f)| f.approved_at.max(f.last_used)).max().unwrap_or(0);
        let stored_clock = header.map_or(0, |(c, _)| c).max(family_clock);
        let behind = now < stored_clock && trust == ClockTrust::Untrusted;
        let status = match report.found {
            Found::Empty => StoreStatus::Empty,
            Found::NothingRestorable => StoreStatus::NothingRestorable,
            Found::Corrupted => StoreStatus::Corrupted,
            Found::Restored | Found::TornTail if bad > 0 || header.is_none() && report.records > 0 => {
                StoreStatus::Corrupted
            }
            Found::Restored | Found::TornTail if behind => StoreStatus::ClockUntrusted,
            _ => StoreStatus::Restored,
        };
        t.clock.set(if behind { now } else { stored_clock.max(now).max(t.clock.get()) });
        if status != StoreStatus::Restored {
            for slot in 0..capacity {
                t.grants.set(slot, None);
            }
            t.families.clear();
        }
        let grants = (0..capacity).filter(|&s| t.grants.get(s).is_some()).count();
        let families = t.families.iter().count();
        match status {
            StoreStatus::Restored => {
                log_info!("record store restored: {} grants, {} token families", grants, families)
            }
            StoreStatus::Empty => log_info!("record store empty: starting fresh"),
            StoreStatus::ClockUntrusted => {
                log_warn!("clock untrusted and behind the stored one: grants and token families dropped, serial kept")
            }
            StoreStatus::Corrupted => {
                log_warn!("record store damaged: grants and token families dropped, serial kept ({} bad records)", bad)
            }
            StoreStatus::NothingRestorable => {
                log_warn!("record store holds nothing restorable: starting empty")
            }
        }
        let journal = self.journal_mut();
        if status == StoreStatus::Restored {
            journal.clear();
            journal.header();
        } else {
            journal.everything();
        }
        Ok(StoreRestored { status, grants, families, load: report })
    }

    /// Moves an old two-slot snapshot (found by [`super::find_legacy_snapshot`]) into the store: call it
    /// at start when [`Provider::restore_from`] reported [`StoreStatus::Empty`], before serving. The
    /// snapshot is restored with `trust` and the whole state written as one checkpoint. A suspect old
    /// range keeps only the serial counter of the older intact snapshot, if any (grants and families are
    /// dropped, as for a damaged store).
    pub async fn migrate_legacy<Fl: NorFlash, const FRAME: usize, const PAGES: usize>(
        &mut self,
        now: u64,
        trust: ClockTrust,
        legacy: Legacy<'_>,
        store: &mut RecordStore<Fl, FRAME, PAGES>,
    ) -> Result<Migrated, StoreError> {
        let migrated = match legacy {
            Legacy::Absent => return Ok(Migrated::Nothing),
            Legacy::Intact(snap) => match self.restore_with(now, trust, snap.payload) {
                Ok(r) => {
                    Migrated::Restored { grants: r.grants, families: r.families, clock_was_behind: r.clock_was_behind }
                }
                Err(_) => Migrated::FailSafe,
            },
            Legacy::Suspect { older } => {
                if let Some(snap) = older {
                    // Only its serial lease is kept: a restore with an untrusted clock at time 0 drops the rest.
                    let _ = self.restore_with(0, ClockTrust::Untrusted, snap.payload);
                    let now = secs(now);
                    let (_, t) = self.keys_and_tables();
                    t.clock.set(now);
                }
                Migrated::FailSafe
            }
        };
        if migrated == Migrated::FailSafe {
            log_warn!("old snapshot suspect or refused: grants and token families dropped");
            let (_, t) = self.keys_and_tables();
            for slot in 0..t.grants.capacity() {
                t.grants.set(slot, None);
            }
            t.families.clear();
        }
        self.journal_mut().everything();
        self.persist(store).await?;
        Ok(migrated)
    }
}
