//! Records: the opaque byte strings the store keeps under small keys, and their encoding in a frame.
//!
//! In a frame body every record is an *entry*: `key` (u16 LE) ‖ `len` (u16 LE) ‖ `len` value bytes, where
//! `len` = `0xFFFF` (with no value bytes) marks a removal.

/// The key of a record (for example one per grant slot, one per token-family slot, one for the header).
pub type RecordKey = u16;

/// Bytes an entry takes before its value.
pub(crate) const ENTRY_HEADER: usize = 4;
/// The `len` of a removal.
const REMOVED: u16 = 0xFFFF;

/// One record as written in a commit or delivered by a load: a value put under a key, or the key removed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Record<'a> {
    /// The record's key.
    pub key: RecordKey,
    /// The new value, or `None` when the record is removed.
    pub value: Option<&'a [u8]>,
}

impl<'a> Record<'a> {
    /// `value` stored under `key`.
    pub const fn put(key: RecordKey, value: &'a [u8]) -> Self {
        Self { key, value: Some(value) }
    }

    /// The record under `key` removed.
    pub const fn remove(key: RecordKey) -> Self {
        Self { key, value: None }
    }

    /// Bytes this record takes in a frame body.
    pub(crate) fn entry_len(&self) -> usize {
        ENTRY_HEADER + self.value.map_or(0, <[u8]>::len)
    }
}

/// Writes `record` as an entry at `buf[at..]` and returns the position after it, or `None` if it does not
/// fit before `end` (or its value is too long to encode).
pub(crate) fn encode(buf: &mut [u8], at: usize, end: usize, record: &Record<'_>) -> Option<usize> {
    let next = at.checked_add(record.entry_len()).filter(|&n| n <= end)?;
    let len = match record.value {
        Some(v) => u16::try_from(v.len()).ok().filter(|&l| l != REMOVED)?,
        None => REMOVED,
    };
    let out = buf.get_mut(at..next)?;
    let (head, value) = out.split_at_mut(ENTRY_HEADER);
    head.get_mut(..2)?.copy_from_slice(&record.key.to_le_bytes());
    head.get_mut(2..)?.copy_from_slice(&len.to_le_bytes());
    if let Some(v) = record.value {
        value.copy_from_slice(v);
    }
    Some(next)
}

/// The entries of a frame body, in order; an entry that does not decode ends the iteration with `Err`.
pub(crate) struct Entries<'a> {
    rest: &'a [u8],
}

impl<'a> Entries<'a> {
    pub(crate) const fn new(body: &'a [u8]) -> Self {
        Self { rest: body }
    }
}

/// An entry that runs past the end of its frame body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct BadEntry;

impl<'a> Iterator for Entries<'a> {
    type Item = Result<Record<'a>, BadEntry>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.rest.is_empty() {
            return None;
        }
        let parsed = (|| {
            let head = self.rest.get(..ENTRY_HEADER)?;
            let key = u16::from_le_bytes([*head.first()?, *head.get(1)?]);
            let len = u16::from_le_bytes([*head.get(2)?, *head.get(3)?]);
            let after = self.rest.get(ENTRY_HEADER..)?;
            if len == REMOVED {
                return Some((Record::remove(key), after));
            }
            let (value, after) = after.split_at_checked(usize::from(len))?;
            Some((Record::put(key, value), after))
        })();
        match parsed {
            Some((record, after)) => {
                self.rest = after;
                Some(Ok(record))
            }
            None => {
                self.rest = &[];
                Some(Err(BadEntry))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_round_trip_and_reject_overruns() {
        let mut buf = [0u8; 32];
        let mut at = 0;
        for r in [Record::put(7, b"abc"), Record::remove(9), Record::put(0xFFFF, b"")] {
            at = encode(&mut buf, at, 32, &r).unwrap();
        }
        assert_eq!(at, 4 + 3 + 4 + 4);
        let got: Vec<_> = Entries::new(&buf[..at]).collect();
        assert_eq!(got, vec![Ok(Record::put(7, b"abc")), Ok(Record::remove(9)), Ok(Record::put(0xFFFF, b""))]);
        // Cut inside the last entry's header, or inside a value.
        assert_eq!(Entries::new(&buf[..at - 1]).last(), Some(Err(BadEntry)));
        assert_eq!(Entries::new(&buf[..5]).collect::<Vec<_>>(), vec![Err(BadEntry)]);
        // Does not fit.
        assert_eq!(encode(&mut buf, 30, 32, &Record::put(1, b"x")), None);
    }
}
