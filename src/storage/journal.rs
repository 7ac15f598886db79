//! The provider's change journal: which grant and family slots, and whether the header, changed durably
//! since the last [`crate::provider::Provider::persist`], so a persist writes only those records.
//!
//! A fixed list of slots, not a bitset: the grant table's size is a run-time property of its
//! [`crate::grant::GrantStore`], and a bitset sized by the family count needs const-generic arithmetic
//! stable Rust does not have. A durable event changes at most three slots, so the list only fills up when
//! the application persists rarely; it then overflows into "everything changed", which a persist answers
//! with a checkpoint of the whole state (atomic as well, just longer).

/// Slots the journal lists before it overflows into "everything changed".
pub const JOURNAL_SLOTS: usize = 8;

/// Set in an entry for a family slot (grant slots are below it).
const FAMILY: u32 = 1 << 31;

/// A slot the journal lists.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Dirty {
    Grant(usize),
    Family(usize),
}

/// Changes since the last successful persist.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Journal {
    entries: [u32; JOURNAL_SLOTS],
    /// A `u32`, so the journal is 40 bytes on every target (the provider's size is documented).
    len: u32,
    /// The header (clock, serial lease) changed.
    header: bool,
    /// More changed than the list holds, or the whole state was replaced: write everything.
    all: bool,
}

impl Journal {
    /// Everything dirty: nothing of this state is known to be on flash yet.
    pub(crate) const fn new() -> Self {
        Self { entries: [0; JOURNAL_SLOTS], len: 0, header: true, all: true }
    }

    fn push(&mut self, entry: u32) {
        if self.all || self.listed().contains(&entry) {
            return;
        }
        match self.entries.get_mut(self.len as usize) {
            Some(e) => {
                *e = entry;
                self.len = self.len.saturating_add(1);
            }
            None => self.all = true,
        }
    }

    fn listed(&self) -> &[u32] {
        self.entries.get(..self.len as usize).unwrap_or(&[])
    }

    /// A grant slot changed.
    pub(crate) fn grant(&mut self, slot: usize) {
        match u32::try_from(slot).ok().filter(|&s| s < FAMILY) {
            Some(s) => self.push(s),
            None => self.everything(),
        }
    }

    /// A family slot changed.
    pub(crate) fn family(&mut self, slot: usize) {
        match u32::try_from(slot).ok().filter(|&s| s < FAMILY) {
            Some(s) => self.push(s | FAMILY),
            None => self.everything(),
        }
    }

    /// The header changed (a new serial lease, a restore).
    pub(crate) fn header(&mut self) {
        self.header = true;
    }

    /// The whole state changed (a restore, or a change the journal cannot name).
    pub(crate) fn everything(&mut self) {
        self.header = true;
        self.all = true;
    }

    /// Nothing to persist.
    pub(crate) const fn is_clean(&self) -> bool {
        !self.header && !self.all && self.len == 0
    }

    /// Everything must be written (a checkpoint).
    pub(crate) const fn is_all(&self) -> bool {
        self.all
    }

    /// The header must be written.
    pub(crate) const fn has_header(&self) -> bool {
        self.header
    }

    /// The listed slots, in the order they changed first.
    pub(crate) fn slots(&self) -> impl Iterator<Item = Dirty> + '_ {
        self.listed().iter().map(|&e| {
            if e & FAMILY != 0 {
                Dirty::Family((e & !FAMILY) as usize)
            } else {
                Dirty::Grant(e as usize)
            }
        })
    }

    /// After a successful persist.
    pub(crate) fn clear(&mut self) {
        *self = Self { entries: [0; JOURNAL_SLOTS], len: 0, header: false, all: false };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_each_slot_once_and_overflows_into_everything() {
        let mut j = Journal::new();
        j.clear();
        assert!(j.is_clean());
        j.grant(3);
        j.family(3);
        j.grant(3);
        assert_eq!(j.slots().collect::<Vec<_>>(), vec![Dirty::Grant(3), Dirty::Family(3)]);
        assert!(!j.is_all() && !j.is_clean());
        for s in 0..JOURNAL_SLOTS {
            j.family(100 + s);
        }
        assert!(j.is_all());
        j.clear();
        j.header();
        assert!(!j.is_clean() && j.slots().next().is_none());
    }
}
