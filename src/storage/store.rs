//! The record store: an authenticated, wear-levelled log of records on a sequential-storage queue.

use core::fmt;

use embedded_storage_async::nor_flash::NorFlash;
use sequential_storage::cache::PagePointerCache;
use sequential_storage::queue::{QueueConfig, QueueStorage};

use super::error::StoreError;
use super::frame::{self, Kind, COUNT_LEN, HEADER_LEN, OVERHEAD};
use super::geometry::Geometry;
use super::record::{self, Record, ENTRY_HEADER};
use crate::key::{KeyRing, TAG_LEN};

/// Bytes of a mark frame (header and tag, no body).
pub(crate) const MARK_LEN: usize = OVERHEAD;

/// The largest state the store must be able to checkpoint: the range is checked against it once, in
/// [`RecordStore::new`], so a range too small fails at start-up rather than when the tables fill.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct StoreConfig {
    max_records: u32,
    max_value_len: u16,
}

impl StoreConfig {
    /// At most `max_records` live records of at most `max_value_len` bytes each.
    pub const fn new(max_records: u32, max_value_len: u16) -> Self {
        Self { max_records, max_value_len }
    }

    /// The most live records.
    pub const fn max_records(&self) -> u32 {
        self.max_records
    }

    /// The longest value.
    pub const fn max_value_len(&self) -> u16 {
        self.max_value_len
    }

    const fn max_entry(&self) -> u32 {
        ENTRY_HEADER as u32 + self.max_value_len as u32
    }
}

/// What a commit reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Committed {
    /// The log is close to full: write a checkpoint before the next commit, or that commit may be
    /// refused with [`StoreError::NeedsCheckpoint`].
    pub checkpoint_due: bool,
}

/// How much of the log is in use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct LogUsage {
    /// Flash bytes from the start of the newest checkpoint to the end of the log, with allowances for
    /// writes cut by power loss.
    pub used: u32,
    /// The most the log may take before it would reach back to the page where that checkpoint starts.
    pub limit: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Mode {
    /// Nothing loaded yet, or a write failed: the store does not know the end of its log.
    Unloaded,
    Ready,
    /// The last load found damage: only a checkpoint is accepted.
    Recovering,
}

/// An upper bound on what the next checkpoint holds: the records of the base checkpoint plus every record
/// put since (a put may add a key; a removal never makes a checkpoint larger than the bound).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct Bound {
    pub entries: u32,
    pub bytes: u32,
}

impl Bound {
    pub(crate) const fn add(self, entries: u32, bytes: u32) -> Self {
        Self { entries: self.entries.saturating_add(entries), bytes: self.bytes.saturating_add(bytes) }
    }
}

/// An authenticated, wear-levelled, power-loss-safe store of records on NOR flash (see the module docs
/// of [`crate::storage`] for the format, the commit protocol and the recovery rules).
///
/// `FRAME` is the size of the frame buffer (the largest item written; a multiple of the flash word,
/// at most a page); `PAGES` sizes sequential-storage's page cache (one state and two pointers per page;
/// a range with more pages still works, with fewer cache hits).
pub struct RecordStore<F: NorFlash, const FRAME: usize, const PAGES: usize> {
    pub(crate) queue: QueueStorage<F, PagePointerCache<PAGES>>,
    pub(crate) buf: [u8; FRAME],
    pub(crate) geo: Geometry,
    pub(crate) config: StoreConfig,
    pub(crate) mode: Mode,
    pub(crate) next_seq: u32,
    /// Flash bytes since the start of the base (the newest complete checkpoint, or the start of the log).
    pub(crate) live: u32,
    pub(crate) bound: Bound,
}

impl<F: NorFlash, const FRAME: usize, const PAGES: usize> fmt::Debug for RecordStore<F, FRAME, PAGES> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RecordStore")
            .field("mode", &self.mode)
            .field("next_seq", &self.next_seq)
            .field("live", &self.live)
            .field("limit", &self.geo.limit)
            .finish_non_exhaustive()
    }
}

impl<F: NorFlash, const FRAME: usize, const PAGES: usize> RecordStore<F, FRAME, PAGES> {
    /// A store on `len` bytes of `flash` from `base`. Call [`Self::load`] before anything else.
    ///
    /// The range must hold nothing but this store (or be erased): sequential-storage erases pages whose
    /// state markers look like an interrupted erase, so other data there, such as old two-slot snapshots,
    /// can be lost at the first load. Migrate those from a separate range ([`super::find_legacy_snapshot`]).
    ///
    /// [`StoreError::BadLayout`] unless: the range is inside the flash, made of at least two whole erase
    /// blocks (pages, all the same size); the word (the larger of the read and write sizes) is at most 32
    /// bytes and `FRAME` is a multiple of it, holds one record of the configured maximum length, and fits a
    /// page; and the range holds two checkpoints of `config`'s largest state plus a commit.
    pub fn new(flash: F, base: u32, len: u32, config: StoreConfig) -> Result<Self, StoreError> {
        let end = base.checked_add(len).ok_or(StoreError::BadLayout)?;
        if usize::try_from(end).map_or(true, |end| end > flash.capacity()) {
            return Err(StoreError::BadLayout);
        }
        let geo = Geometry::new(F::READ_SIZE, F::WRITE_SIZE, F::ERASE_SIZE, len, FRAME, MARK_LEN)
            .ok_or(StoreError::BadLayout)?;
        let word = F::READ_SIZE.max(F::WRITE_SIZE);
        let body = FRAME.checked_sub(OVERHEAD + COUNT_LEN).ok_or(StoreError::BadLayout)?;
        if !FRAME.is_multiple_of(word) || (config.max_entry() as usize) > body {
            return Err(StoreError::BadLayout);
        }
        let queue_config = QueueConfig::try_new(base..end).ok_or(StoreError::BadLayout)?;
        let mut store = Self {
            queue: QueueStorage::new(flash, queue_config, PagePointerCache::new()),
            buf: [0; FRAME],
            geo,
            config,
            mode: Mode::Unloaded,
            next_seq: 0,
            live: 0,
            bound: Bound::default(),
        };
        // The largest checkpoint, written after another one and a commit, with a load's allowance each.
        let largest = Bound::default().add(config.max_records, config.max_records.saturating_mul(config.max_entry()));
        let c_max = store.checkpoint_bound(largest);
        // Right after one checkpoint there must be room for a commit and two more checkpoints (one that
        // may be cut, and its retry), so that a checkpoint is never due the moment it is written: see
        // `checkpoint_due`.
        let need = c_max
            .saturating_mul(3)
            .saturating_add(geo.max_item.saturating_mul(4))
            .saturating_add(geo.mark_item.saturating_mul(2));
        if need > geo.limit {
            return Err(StoreError::BadLayout);
        }
        store.bound = Bound::default();
        Ok(store)
    }

    /// The configuration given to [`Self::new`].
    pub const fn config(&self) -> StoreConfig {
        self.config
    }

    /// How much of the log is in use (for diagnostics and wear planning).
    pub const fn usage(&self) -> LogUsage {
        LogUsage { used: self.live, limit: self.geo.limit }
    }

    /// Gives the flash back.
    pub fn into_inner(self) -> F {
        self.queue.destroy().0
    }

    /// Flash bytes a checkpoint of at most `bound` takes, with its mark: every part is counted as a full
    /// frame, and greedy packing fills each part but the last to more than a part's room minus one entry.
    pub(crate) fn checkpoint_bound(&self, bound: Bound) -> u32 {
        let max_entry = self.config.max_entry();
        let entries = bound.entries.min(self.config.max_records);
        let bytes = bound.bytes.min(self.config.max_records.saturating_mul(max_entry));
        let room = (FRAME.saturating_sub(OVERHEAD + COUNT_LEN)) as u32;
        let per_part = room.saturating_sub(max_entry).saturating_add(1).max(1);
        let parts = if entries == 0 { 1 } else { entries.min((bytes / per_part).saturating_add(1)) };
        parts.saturating_mul(self.geo.max_item).saturating_add(self.geo.mark_item)
    }

    /// Whether it is time for a checkpoint: true once the room left after the next commit (of a full frame,
    /// also after a reboot in between) could hold fewer than two checkpoints, one for the current state and
    /// one for a retry should the first be cut by a power loss. Commits are refused only when the room for
    /// one checkpoint runs out.
    pub fn checkpoint_due(&self) -> bool {
        let room = FRAME.saturating_sub(OVERHEAD) as u32;
        let grown = self.bound.add(room / ENTRY_HEADER as u32, room);
        let largest = self.checkpoint_bound(Bound { entries: u32::MAX, bytes: u32::MAX });
        // A load's allowance, the commit's frame, the allowance of the load after it, the mark.
        self.live
            .saturating_add(self.geo.max_item.saturating_mul(3))
            .saturating_add(self.geo.mark_item)
            .saturating_add(self.checkpoint_bound(grown))
            .saturating_add(largest)
            > self.geo.limit
    }

    /// The sequence number of the next frame.
    pub(crate) fn seq(&self) -> Result<u32, StoreError> {
        if self.next_seq == u32::MAX {
            Err(StoreError::SequenceExhausted)
        } else {
            Ok(self.next_seq)
        }
    }

    /// Appends the sealed frame in `buf[..len]` as one queue item; returns the flash bytes it took.
    /// Until the push returns the store does not know whether the frame is on flash, so a failure leaves it
    /// [`Mode::Unloaded`].
    pub(crate) async fn append(&mut self, len: usize) -> Result<u32, StoreError> {
        let data = self.buf.get(..len).ok_or(StoreError::TooLarge)?;
        let resume = self.mode;
        self.mode = Mode::Unloaded;
        // Overwriting old pages is allowed: the store's own accounting (`live` against `limit`) keeps the
        // pages it still needs out of reach.
        self.queue.push(data, true).await?;
        self.mode = resume;
        self.next_seq = self.next_seq.saturating_add(1);
        Ok(self.geo.item(len))
    }

    /// Appends a frame with no body (a commit mark or a damage mark).
    pub(crate) async fn append_mark(&mut self, keys: &KeyRing, kind: Kind) -> Result<(), StoreError> {
        let seq = self.seq()?;
        let len = frame::seal(keys.current().ok_or(StoreError::NoKey)?, &mut self.buf, kind, seq, self.live, 0)
            .ok_or(StoreError::TooLarge)?;
        let used = self.append(len).await?;
        self.live = self.live.saturating_add(used);
        Ok(())
    }

    /// Makes the records of one durable event durable: one frame (puts and removals, applied in order),
    /// then its commit mark. When this returns `Ok`, a load restores the records; when it fails (power cut,
    /// flash error) a load restores either the state before or the state after it.
    ///
    /// Costs `frame + mark` bytes of flash: for one 40-byte record on a flash with 16-byte words, 96 + 48.
    /// Refused without writing anything when the log could then no longer hold a checkpoint
    /// ([`StoreError::NeedsCheckpoint`]), after a damaged load ([`StoreError::Recovering`]), or when the
    /// records do not fit one frame ([`StoreError::TooLarge`]). An empty slice writes nothing.
    pub async fn commit(&mut self, keys: &KeyRing, records: &[Record<'_>]) -> Result<Committed, StoreError> {
        match self.mode {
            Mode::Ready => {}
            Mode::Recovering => return Err(StoreError::Recovering),
            Mode::Unloaded => return Err(StoreError::NotLoaded),
        }
        if records.is_empty() {
            return Ok(Committed { checkpoint_due: self.checkpoint_due() });
        }
        let end = FRAME.saturating_sub(TAG_LEN);
        let mut at = HEADER_LEN;
        let mut bound = self.bound;
        for r in records {
            if r.value.is_some_and(|v| v.len() > usize::from(self.config.max_value_len)) {
                return Err(StoreError::TooLarge);
            }
            at = record::encode(&mut self.buf, at, end, r).ok_or(StoreError::TooLarge)?;
            if r.value.is_some() {
                bound = bound.add(1, r.entry_len() as u32);
            }
        }
        let item = self.geo.item(at.saturating_add(TAG_LEN));
        // After this frame and its mark, the next load's allowance and a checkpoint must still fit.
        let need = self
            .live
            .saturating_add(item)
            .saturating_add(self.geo.mark_item)
            .saturating_add(self.geo.max_item)
            .saturating_add(self.checkpoint_bound(bound));
        if need > self.geo.limit {
            return Err(StoreError::NeedsCheckpoint);
        }
        let seq = self.seq()?;
        if seq >= u32::MAX - 1 {
            return Err(StoreError::SequenceExhausted);
        }
        let body = at - HEADER_LEN;
        let len =
            frame::seal(keys.current().ok_or(StoreError::NoKey)?, &mut self.buf, Kind::Commit, seq, self.live, body)
                .ok_or(StoreError::TooLarge)?;
        let used = self.append(len).await?;
        self.live = self.live.saturating_add(used);
        self.bound = bound;
        self.append_mark(keys, Kind::Mark).await?;
        Ok(Committed { checkpoint_due: self.checkpoint_due() })
    }
}
