//! Why a record-store operation failed.

use core::fmt;

/// Why a [`super::RecordStore`] operation failed. After [`StoreError::Flash`] or [`StoreError::Unstable`]
/// the store refuses to write until [`super::RecordStore::load`] has read the flash again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[non_exhaustive]
pub enum StoreError {
    /// The range, the flash geometry, the frame size or the configuration do not fit together (see
    /// [`super::RecordStore::new`]).
    BadLayout,
    /// A record is longer than the configured maximum, or a commit's records do not fit one frame.
    TooLarge,
    /// The log has no room for this commit while keeping room for a checkpoint: write a checkpoint first.
    NeedsCheckpoint,
    /// A checkpoint does not fit beside the state it replaces: the range is too small for the state.
    Full,
    /// Nothing was loaded yet, or a flash error happened since the last load.
    NotLoaded,
    /// The last load found damage: only a checkpoint (of the fail-safe state) is accepted.
    Recovering,
    /// The 32-bit sequence number is used up.
    SequenceExhausted,
    /// The flash read back differently between the two passes of a load.
    Unstable,
    /// The flash driver failed, or sequential-storage found page states it could not repair.
    Flash,
    /// The key ring has no signing key (a provider before `init`).
    NoKey,
}

impl fmt::Display for StoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::BadLayout => "flash range, frame size and configuration do not fit together",
            Self::TooLarge => "record too long, or too many records for one frame",
            Self::NeedsCheckpoint => "log full: a checkpoint is needed before the next commit",
            Self::Full => "checkpoint does not fit beside the current state",
            Self::NotLoaded => "store not loaded since start or since the last flash error",
            Self::Recovering => "store damaged: only a checkpoint is accepted",
            Self::SequenceExhausted => "sequence numbers exhausted",
            Self::Unstable => "flash read back differently between two passes",
            Self::Flash => "flash operation failed",
            Self::NoKey => "no signing key",
        })
    }
}

impl core::error::Error for StoreError {}

impl<E> From<sequential_storage::Error<E>> for StoreError {
    fn from(e: sequential_storage::Error<E>) -> Self {
        match e {
            // With old data allowed to be overwritten the queue never reports itself full; the store's own
            // accounting keeps live data out of the pages it erases.
            sequential_storage::Error::FullStorage => Self::Full,
            sequential_storage::Error::ItemTooBig | sequential_storage::Error::BufferTooSmall(_) => Self::TooLarge,
            _ => Self::Flash,
        }
    }
}
