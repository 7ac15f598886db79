//! [`Capture`]: persisting a provider that request handlers share behind a lock.

use embedded_storage_async::nor_flash::NorFlash;

use super::journal::{Dirty, JOURNAL_SLOTS};
use super::persist::{FAMILY_KEY, GRANT_KEY, HEADER_KEY, MAX_RECORD_LEN};
use super::{PersistReport, Record, RecordKey, RecordStore, StoreError};
use crate::client::ClientRegistry;
use crate::grant::GrantStore;
use crate::key::KeyRing;
use crate::provider::Provider;

const VALUE: usize = MAX_RECORD_LEN as usize;

/// The records a [`Capture`] needs room for to hold a checkpoint of a provider with `grants` grant slots
/// and `families` family slots (the header, then one per slot).
pub const fn capture_records(grants: usize, families: usize) -> usize {
    1 + grants + families
}

/// The durable changes of a provider, copied out of it under its lock to be written to the flash
/// outside it, so no request waits for an erase.
///
/// [`Provider::persist`] captures and writes in one call, holding `&mut Provider` across the flash
/// writes: right for a provider with one owner. A server whose request handlers share the provider
/// behind a lock persists in two steps:
///
/// 1. under the lock, [`Provider::capture`] copies the changed records (microseconds, no flash access),
///    a checkpoint of the whole state when the store asks for one ([`RecordStore::checkpoint_due`]) or
///    the journal overflowed;
/// 2. outside it, [`Capture::write`] writes them (as long as the flash takes);
/// 3. if that failed, [`Provider::persist_failed`] under the lock: the next capture is a checkpoint.
///
/// A capture holds the records of one moment, so the flash only ever holds a state the provider had.
/// Changes made while it is written mark the journal again and go with the next capture.
///
/// `RECORDS` bounds a checkpoint: [`capture_records`] of the provider's tables always fits; less works
/// while the durable state is smaller, and a capture that does not fit fails with
/// [`StoreError::TooLarge`] and leaves the provider's journal as it was. A commit of changes needs at
/// most `JOURNAL_SLOTS + 1` (9) records. About `RECORDS × 44` bytes plus the key ring: keep it in a
/// static on a board.
pub struct Capture<const RECORDS: usize> {
    /// A copy of the provider's key ring, for the frames' MACs (empty until the first capture).
    keys: KeyRing,
    records: Records<RECORDS>,
}

impl<const RECORDS: usize> Default for Capture<RECORDS> {
    fn default() -> Self {
        Self::new()
    }
}

impl<const RECORDS: usize> Capture<RECORDS> {
    /// An empty capture.
    pub const fn new() -> Self {
        Self { keys: KeyRing::EMPTY, records: Records::new() }
    }

    /// Records captured (0 when nothing had changed, or after a write).
    pub const fn len(&self) -> usize {
        self.records.len
    }

    /// True when there is nothing to write.
    pub const fn is_empty(&self) -> bool {
        self.records.len == 0
    }

    /// The capture is a checkpoint of the whole state rather than a commit of changes.
    pub const fn is_checkpoint(&self) -> bool {
        self.records.checkpoint
    }

    /// Writes what was captured: one commit of the changed records, or a checkpoint. Empty afterwards,
    /// whatever the outcome. On `Err`, call [`Provider::persist_failed`] (the next capture is then a
    /// checkpoint); [`StoreError::NeedsCheckpoint`] (the store wants one before another commit) is
    /// answered that way too, at once.
    pub async fn write<Fl: NorFlash, const FRAME: usize, const PAGES: usize>(
        &mut self,
        store: &mut RecordStore<Fl, FRAME, PAGES>,
    ) -> Result<PersistReport, StoreError> {
        let result = self.records.write(&self.keys, store).await;
        self.records.clear();
        result
    }
}

/// Encoded records with their keys (a removal has no value), and whether they are a checkpoint: what
/// a [`Capture`] holds, and what [`Provider::persist`] builds on its stack for one commit.
pub(super) struct Records<const R: usize> {
    values: [[u8; VALUE]; R],
    lens: [Option<u8>; R],
    record_keys: [RecordKey; R],
    len: usize,
    checkpoint: bool,
}

impl<const R: usize> Records<R> {
    pub(super) const fn new() -> Self {
        Self { values: [[0; VALUE]; R], lens: [None; R], record_keys: [HEADER_KEY; R], len: 0, checkpoint: false }
    }

    fn clear(&mut self) {
        self.len = 0;
        self.checkpoint = false;
    }

    /// Appends a record whose value `encode` writes (`None`: a removal).
    fn push(
        &mut self,
        key: RecordKey,
        encode: impl FnOnce(&mut [u8]) -> Result<Option<usize>, StoreError>,
    ) -> Result<(), StoreError> {
        let i = self.len;
        let (Some(value), Some(len), Some(k)) =
            (self.values.get_mut(i), self.lens.get_mut(i), self.record_keys.get_mut(i))
        else {
            return Err(StoreError::TooLarge);
        };
        let n = encode(value)?;
        *len = n.map(|n| u8::try_from(n).map_err(|_| StoreError::TooLarge)).transpose()?;
        *k = key;
        self.len = i.saturating_add(1);
        Ok(())
    }

    fn record(&self, i: usize) -> Option<Record<'_>> {
        let key = *self.record_keys.get(i)?;
        let value = match *self.lens.get(i)? {
            Some(n) => Some(self.values.get(i)?.get(..usize::from(n))?),
            None => None,
        };
        Some(Record { key, value })
    }

    /// Writes the records, signed with `keys`: one commit, or a checkpoint.
    pub(super) async fn write<Fl: NorFlash, const FRAME: usize, const PAGES: usize>(
        &self,
        keys: &KeyRing,
        store: &mut RecordStore<Fl, FRAME, PAGES>,
    ) -> Result<PersistReport, StoreError> {
        if self.len == 0 {
            return Ok(PersistReport { records: 0, checkpoint: false });
        }
        if !self.checkpoint {
            let mut records = [Record::remove(HEADER_KEY); JOURNAL_SLOTS + 1];
            let mut n = 0;
            for (i, r) in records.iter_mut().enumerate().take(self.len) {
                *r = self.record(i).ok_or(StoreError::TooLarge)?;
                n = i + 1;
            }
            if n < self.len {
                // More changes than one commit takes: only a checkpoint holds them.
                return Err(StoreError::NeedsCheckpoint);
            }
            return match store.commit(keys, records.get(..n).unwrap_or(&[])).await {
                Ok(_) => Ok(PersistReport { records: n as u32, checkpoint: false }),
                Err(StoreError::Recovering | StoreError::TooLarge) => Err(StoreError::NeedsCheckpoint),
                Err(e) => Err(e),
            };
        }
        let mut cp = store.checkpoint(keys)?;
        for i in 0..self.len {
            if let Some(Record { key, value: Some(value) }) = self.record(i) {
                cp.put(key, value).await?;
            }
        }
        cp.finish().await?;
        Ok(PersistReport { records: self.len as u32, checkpoint: true })
    }
}

impl<C: ClientRegistry, G: GrantStore, const F: usize, const S: usize> Provider<C, G, F, S> {
    /// Copies every durable change since the last capture (or persist) into `out`, to be written with
    /// [`Capture::write`] outside the provider's lock; `false` when nothing changed. `checkpoint`: the
    /// store asked for one ([`RecordStore::checkpoint_due`]); a checkpoint is also captured when the
    /// journal overflowed or the state was replaced. The journal is cleared: call
    /// [`Provider::persist_failed`] if the write fails. On `Err` nothing is cleared.
    pub fn capture<const RECORDS: usize>(
        &mut self,
        out: &mut Capture<RECORDS>,
        checkpoint: bool,
    ) -> Result<bool, StoreError> {
        self.check_capacity()?;
        let records = &mut out.records;
        records.clear();
        let journal = *self.journal();
        if journal.is_clean() {
            return Ok(false);
        }
        let full = checkpoint || journal.is_all();
        let filled = if full { self.capture_all(records) } else { self.capture_changes(records, &journal) };
        if let Err(e) = filled {
            records.clear();
            return Err(e);
        }
        records.checkpoint = full;
        out.keys.clone_from(self.keys());
        self.journal_mut().clear();
        Ok(true)
    }

    /// The write of the last capture failed: everything is dirty again, so the next capture is a
    /// checkpoint and nothing that capture held is lost.
    pub fn persist_failed(&mut self) {
        self.journal_mut().everything();
    }

    pub(super) fn capture_changes<const R: usize>(
        &self,
        out: &mut Records<R>,
        journal: &super::journal::Journal,
    ) -> Result<(), StoreError> {
        if journal.has_header() {
            out.push(HEADER_KEY, |b| self.header_value(b).map(Some))?;
        }
        for dirty in journal.slots() {
            match dirty {
                Dirty::Grant(s) => out.push(GRANT_KEY.saturating_add(s as u16), |b| {
                    self.durable_grant(s).map(|g| super::persist::encode(&g, b)).transpose()
                })?,
                Dirty::Family(s) => out.push(FAMILY_KEY.saturating_add(s as u16), |b| {
                    self.durable_family(s).map(|f| super::persist::encode(&f, b)).transpose()
                })?,
            }
        }
        Ok(())
    }

    fn capture_all<const R: usize>(&self, out: &mut Records<R>) -> Result<(), StoreError> {
        out.push(HEADER_KEY, |b| self.header_value(b).map(Some))?;
        for slot in 0..self.grants().capacity() {
            if let Some(g) = self.durable_grant(slot) {
                out.push(GRANT_KEY.saturating_add(slot as u16), |b| super::persist::encode(&g, b).map(Some))?;
            }
        }
        for slot in 0..F {
            if let Some(f) = self.durable_family(slot) {
                out.push(FAMILY_KEY.saturating_add(slot as u16), |b| super::persist::encode(&f, b).map(Some))?;
            }
        }
        Ok(())
    }
}
