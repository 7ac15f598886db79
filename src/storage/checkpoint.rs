//! Checkpoints: a complete copy of the live records, written in as many frames as it needs, after which
//! everything older in the log may be overwritten.

use core::fmt;

use embedded_storage_async::nor_flash::NorFlash;

use super::error::StoreError;
use super::frame::{self, Kind, COUNT_LEN, HEADER_LEN};
use super::record::{self, Record, RecordKey};
use super::store::{Bound, Mode, RecordStore};
use crate::key::{KeyRing, TAG_LEN};

/// A checkpoint being written: [`Checkpoint::put`] every live record once, then [`Checkpoint::finish`].
///
/// Until `finish` returns, the previous state stays the one a load restores; a checkpoint that is dropped,
/// fails, or is cut by a power loss is ignored by later loads.
pub struct Checkpoint<'s, 'k, F: NorFlash, const FRAME: usize, const PAGES: usize> {
    store: &'s mut RecordStore<F, FRAME, PAGES>,
    keys: &'k KeyRing,
    /// End of the entries in the frame buffer.
    at: usize,
    first: bool,
    bound: Bound,
    /// Flash bytes of the parts written so far.
    written: u32,
    /// Written after a damaged load: nothing before it needs to survive.
    recovering: bool,
    failed: Option<StoreError>,
}

impl<F: NorFlash, const FRAME: usize, const PAGES: usize> fmt::Debug for Checkpoint<'_, '_, F, FRAME, PAGES> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Checkpoint")
            .field("records", &self.bound.entries)
            .field("written", &self.written)
            .field("recovering", &self.recovering)
            .finish_non_exhaustive()
    }
}

impl<F: NorFlash, const FRAME: usize, const PAGES: usize> RecordStore<F, FRAME, PAGES> {
    /// Starts a checkpoint, signed with the key ring's current key. Write one when a commit reports
    /// [`super::Committed::checkpoint_due`], after a load reported damage (the only write then accepted),
    /// to migrate an old snapshot into an empty store, and after a key rotation before retiring the
    /// previous key (frames signed by a retired key no longer verify).
    pub fn checkpoint<'s, 'k>(
        &'s mut self,
        keys: &'k KeyRing,
    ) -> Result<Checkpoint<'s, 'k, F, FRAME, PAGES>, StoreError> {
        let recovering = match self.mode {
            Mode::Ready => false,
            Mode::Recovering => true,
            Mode::Unloaded => return Err(StoreError::NotLoaded),
        };
        Ok(Checkpoint {
            store: self,
            keys,
            at: HEADER_LEN,
            first: true,
            bound: Bound::default(),
            written: 0,
            recovering,
            failed: None,
        })
    }
}

impl<F: NorFlash, const FRAME: usize, const PAGES: usize> Checkpoint<'_, '_, F, FRAME, PAGES> {
    /// Adds a live record (each key once). [`StoreError::TooLarge`] past the configured number of records
    /// or value length; [`StoreError::Full`] if the log has no room left beside the state it replaces
    /// (after earlier checkpoints were cut: the range is too small for the power it gets).
    pub async fn put(&mut self, key: RecordKey, value: &[u8]) -> Result<(), StoreError> {
        if let Some(e) = self.failed {
            return Err(e);
        }
        let result = self.put_inner(key, value).await;
        if let Err(e) = result {
            self.failed = Some(e);
        }
        result
    }

    async fn put_inner(&mut self, key: RecordKey, value: &[u8]) -> Result<(), StoreError> {
        // Beyond the configuration the room kept for a checkpoint is not guaranteed: refuse before the
        // attempt eats into it.
        if value.len() > usize::from(self.store.config.max_value_len())
            || self.bound.entries >= self.store.config.max_records()
        {
            return Err(StoreError::TooLarge);
        }
        let r = Record::put(key, value);
        let end = FRAME.saturating_sub(TAG_LEN + COUNT_LEN);
        if self.at.saturating_add(r.entry_len()) > end {
            self.flush(false).await?;
        }
        self.at = record::encode(&mut self.store.buf, self.at, end, &r).ok_or(StoreError::TooLarge)?;
        self.bound = self.bound.add(1, r.entry_len() as u32);
        Ok(())
    }

    /// Writes the last part and its mark. From here on a load restores exactly the records put.
    pub async fn finish(mut self) -> Result<(), StoreError> {
        if let Some(e) = self.failed {
            return Err(e);
        }
        let count = self.bound.entries.to_le_bytes();
        let after = self.at.saturating_add(COUNT_LEN);
        self.store.buf.get_mut(self.at..after).ok_or(StoreError::TooLarge)?.copy_from_slice(&count);
        self.at = after;
        self.flush(true).await?;
        // The new base: the log now starts at this checkpoint's first part.
        let store = &mut *self.store;
        store.live = self.written;
        store.bound = self.bound;
        store.mode = Mode::Ready;
        store.append_mark(self.keys, Kind::Mark).await
    }

    /// Seals and appends the part in the frame buffer.
    async fn flush(&mut self, last: bool) -> Result<(), StoreError> {
        let store = &mut *self.store;
        let seq = store.seq()?;
        let len = self.at.saturating_add(TAG_LEN);
        let item = store.geo.item(len);
        let needed = if last { item.saturating_add(store.geo.mark_item) } else { item };
        // In normal operation the state being replaced must survive until this checkpoint is complete;
        // after damage only the checkpoint itself must not wrap onto its own start.
        let since_base = if self.recovering { self.written } else { store.live };
        if since_base.saturating_add(needed) > store.geo.limit {
            return Err(StoreError::Full);
        }
        let kind = Kind::Checkpoint { first: self.first, last };
        let body = self.at - HEADER_LEN;
        let len =
            frame::seal(self.keys.current().ok_or(StoreError::NoKey)?, &mut store.buf, kind, seq, since_base, body)
                .ok_or(StoreError::TooLarge)?;
        let used = store.append(len).await?;
        self.written = self.written.saturating_add(used);
        if !self.recovering {
            store.live = store.live.saturating_add(used);
        }
        self.first = false;
        self.at = HEADER_LEN;
        Ok(())
    }
}
