//! Durable state on NOR flash: the [`RecordStore`] (an authenticated, wear-levelled, power-loss-safe log
//! of records), the [legacy] two-slot snapshot format and its migration, and `FileFlash` for hosts
//! (feature `std`).
//!
//! # The record store
//! The provider hands the store *records*: opaque byte strings under 16-bit keys (one per grant slot, one
//! per token-family slot, one header with the serial counter and the clock). A durable event (an approval,
//! a token exchange, a refresh rotation, a revocation) changes one to three of them and costs one small
//! append ([`RecordStore::commit`]), never a rewrite of the state. From time to time the whole live state
//! is written again as a *checkpoint* ([`RecordStore::checkpoint`]), after which everything older in the
//! log may be overwritten. Loading ([`RecordStore::load`]) hands the records of the newest state the log
//! proves to a closure, and says what it found ([`Found`]).
//!
//! ## The provider's records
//! [`crate::provider::Provider::persist`] writes, and [`crate::provider::Provider::restore_from`] reads:
//!
//! | key | value |
//! |---|---|
//! | [`HEADER_KEY`] (0) | postcard(version `u8` = 1, clock `u32`, serial lease `u32`) |
//! | [`GRANT_KEY`] + slot (1 ..= 0x7FFF) | postcard(`PendingGrant`), the snapshot's grant encoding; decided grants only; removed when the slot is emptied, undecided or expired |
//! | [`FAMILY_KEY`] + slot (0x8000 ..= 0xFFFF) | postcard(`Family`), the snapshot's family encoding; removed when revoked or expired |
//!
//! A persist writes the records its change journal lists (the header only when the serial lease moved
//! or after a restore: the clock alone is not worth a write, and a restore takes the newest time a family
//! carries as a lower bound of the stored clock) in one commit, or the whole state in one checkpoint when
//! the journal overflowed, the store asks for a checkpoint or the changes do not fit one frame; so the
//! state on flash is always one the provider had. A value is at most [`MAX_RECORD_LEN`] bytes;
//! [`provider_store_config`] sizes a store for a provider's tables.
//!
//! At start: [`crate::provider::Provider::restore_from`] with a [`crate::snapshot::ClockTrust`], then
//! (store empty) [`crate::provider::Provider::migrate_legacy`] with what [`find_legacy_snapshot`] found,
//! then [`crate::provider::Provider::persist`] before serving. A restore that finds damage
//! ([`Found::Corrupted`], or a record that does not decode) or an untrusted clock behind the stored one
//! drops every grant and token family and keeps the serial lease, and the next persist checkpoints that
//! state: an older record never becomes the current state, so no revoked token, spent code or rotated
//! refresh token becomes valid again.
//!
//! A provider behind a lock that request handlers share persists in two steps instead, so no request
//! waits for the flash: [`crate::provider::Provider::capture`] copies the changed records into a
//! [`Capture`] under the lock, [`Capture::write`] writes them outside it (see [`capture`](Capture)).
//!
//! ## On flash
//! The log is a FIFO queue of [`sequential-storage`](sequential_storage) on the range: pages (erase blocks)
//! used in a ring, each item with a CRC-checked header and a CRC of its data, a page erased only when the
//! queue moves onto it, so every page of the range wears the same. Each queue item is one *frame*
//! (see `frame.rs`): a header (format version, kind, signing key id, sequence number, span), a body of
//! entries (`key` ‖ `len` ‖ value, `len` = `0xFFFF` for a removal) and a 128-bit HMAC-SHA256 tag under the
//! server key, domain `L`, over everything before it, header and sequence number included. Kinds:
//! - **commit**: the records one event changed, in order;
//! - **checkpoint part**: live records; the first part is flagged *first*, the last *last* and ends with
//!   the checkpoint's record count; a checkpoint has as many parts as it needs (no item as large as the
//!   state: tables of thousands of records checkpoint in frames of `FRAME` bytes);
//! - **mark**: empty; written right after each commit and each checkpoint, it proves the frame before it
//!   was written whole;
//! - **damage mark**: empty; written by a load that found nothing readable at all (see below); the state
//!   before it is never restored as trusted.
//!
//! Sequence numbers increase by one from frame to frame over the whole life of the store. The *span* is
//! the number of flash bytes the log had used since its base when the frame was written; it lets a load
//! know how much room the log takes, including writes cut by power loss that left nothing readable.
//!
//! ## Commit protocol
//! A commit appends its frame, then its mark; it returns once both are written. A checkpoint appends its
//! parts, then its mark. The *base* of the log is its newest complete checkpoint (first to last part with
//! no gap and the right count), or the empty state before sequence 0. The state is the base's records with
//! every later commit applied in order; checkpoint parts that never reached their last part are ignored.
//! The log never grows so far that the ring would erase the page where its base starts (see
//! `geometry.rs` for the bound): a commit is refused ([`StoreError::NeedsCheckpoint`], nothing written)
//! unless room for a checkpoint of the current state remains behind it, and
//! [`Committed::checkpoint_due`] turns true while room for two remains (one for a retry, should the first
//! be cut). So a checkpoint is written about once per (range − 3 checkpoints) of commits, and every page
//! is erased once per turn of the ring.
//!
//! ## Threat model
//! In scope: bit rot (any bit of the range may flip), writes and erases cut by power loss at any point,
//! flash that reads back differently. Out of scope: an attacker who can write the flash, in particular one
//! who rewrites the whole range with an older image that was validly signed by the same key (nothing kept
//! on the same flash can tell that from the real thing; a monotonic counter outside the flash could).
//! Without the server key no frame can be forged, but erasing the newest items is indistinguishable from
//! a cut write.
//!
//! ## Recovery rules
//! A load reads every frame in log order and checks each tag, then judges:
//! - a frame whose tag fails, whose key is unknown, or that does not decode is *rejected*; a rejected
//!   frame, or a jump in the sequence numbers, is a *break*;
//! - the newest state is provable when the frames from the newest base to the end of the log have no
//!   break: [`Found::Restored`] when the last frame is a mark, [`Found::TornTail`] when the last write was
//!   cut (a commit without its mark is kept, since it is complete and authenticated; an unfinished
//!   checkpoint is dropped; either way the state is exactly the one before or the one after the cut write);
//! - a power cut can only hide the write in progress, which is the last one: sequential-storage then
//!   finds no valid item and the frame simply is not there. Damage shows differently: a frame missing or
//!   rejected *before* the end (the mark after it proves it was written whole), or a rejected frame at the
//!   end (complete, since its CRC passed, yet not authentic). Then [`Found::Corrupted`]: the records
//!   delivered are those of the newest state proven before the damage, older than what was acknowledged.
//!   A raised sequence number fails the tag. Damage in frames older than the base does not matter;
//! - data but nothing provable (every item damaged, frames of another key, the start of the log lost):
//!   [`Found::NothingRestorable`], never an empty start; an erased range is [`Found::Empty`].
//!
//! After `Corrupted` or `NothingRestorable` the store accepts only a checkpoint until one completes, so
//! every later load reports the damage again. (When no item at all was readable, the load also appends a
//! damage mark: sequential-storage erases pages it found nothing valid in while iterating, and what it
//! leaves could otherwise pass for the traces of one cut first write.) The provider is to drop
//! its grants and token families and keep the serial counter (as for an untrusted clock), then checkpoint
//! that state: no revoked token, spent code or rotated refresh token can become valid again, since none
//! of the older records is ever restored as the current state.
//!
//! ## What sequential-storage does and the store relies on
//! - it writes an item's header (CRC of the data, length, CRC of the length) before its data, and an item
//!   whose data does not match its CRC, or whose header does not match its own CRC, is skipped by the
//!   iterator without an error: a cut write and a flipped bit both make an item vanish, hence the marks;
//! - items never span pages; the next item goes after the last one it can parse on the current page, or on
//!   the next page, which it erases first when it holds old data and overwriting is allowed;
//! - while iterating it erases leading pages in which it finds no valid item (so a load measures the used
//!   space first, and latches that case with a damage mark);
//! - it skips a damaged item header word by word and takes eight erased-looking bytes for the end of the
//!   page, hence whitened frame bodies;
//! - an erase cut by power loss leaves the page state inconsistent and it erases the page again; an item
//!   header damaged so that its length check still passes while it claims more than `FRAME` bytes stops its
//!   iteration, which the store reports as damage at that point;
//! - the queue of 7.2 behaves as that of 8.0 (whose only later queue fix concerns single-page queues;
//!   the store needs two pages or more); 8.x does not build on Rust 1.88, hence 7.2.
//!
//! ## Limits
//! - A load accounts for one invisible cut write after the newest frame, and the bound keeps a margin of
//!   four frames for more cut writes in a row with no complete write in between. Beyond that the ring may
//!   erase the page where the base starts; the next load then reports damage, never an older state.
//! - Each cut checkpoint stays in the log until the next checkpoint completes. After more cut checkpoints
//!   than the room kept for a retry, a checkpoint fails with [`StoreError::Full`] and commits are refused:
//!   the state stays loadable, but nothing new can be written on that range.
//! - Damage that makes sequential-storage itself give up (see above) is reported as damage at that point.
//!
//! ## Costs
//! Per commit: one frame (28 bytes of header and tag plus 4 + value bytes per record) and one 28-byte mark,
//! each padded to the flash word with an 8-byte item header (also padded). On the STM32F7's 16-byte words a
//! refresh rotation (one 40-byte record) takes 96 + 48 bytes. Loading reads the whole log twice.

mod capture;
mod checkpoint;
mod error;
#[cfg(feature = "std")]
mod file;
mod frame;
mod geometry;
pub(crate) mod journal;
pub mod legacy;
mod load;
mod persist;
mod record;
mod store;

pub use capture::{capture_records, Capture};
pub use checkpoint::Checkpoint;
pub use error::StoreError;
#[cfg(feature = "std")]
pub use file::{FileFlash, FileFlashError};
pub use legacy::{find_legacy_snapshot, Legacy, LegacySnapshot, SnapshotSlots, StorageError};
pub use load::{Found, LoadReport};
pub use persist::{
    provider_store_config, Migrated, PersistReport, StoreRestored, StoreStatus, FAMILY_KEY, GRANT_KEY, HEADER_KEY,
    MAX_RECORD_LEN,
};
pub use record::{Record, RecordKey};
pub use store::{Committed, LogUsage, RecordStore, StoreConfig};
