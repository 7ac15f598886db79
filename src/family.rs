//! Token families: everything issued from one approved grant (its access tokens and its chain of
//! refresh tokens), revoked together (RFC 9700 §4.14).
//!
//! A family lives in one slot of a fixed table of `F` slots, from the token exchange until its refresh
//! token (or, for a client without refresh tokens, its only access token) expires. Tokens carry the
//! slot and the grant serial, so checking a token is one look-up: the slot must still hold a live
//! family with that serial. Revoking is emptying the slot; nothing else needs to be remembered.

use crate::client::ClientIndex;
use crate::provider::UserId;
use crate::scope::ScopeSet;

/// One token family. 24 bytes, and `Option<Family>` too (the `bool` gives it a niche).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub(crate) struct Family {
    /// The serial of the grant it was issued from: its identity, carried in every token.
    pub(crate) serial: u32,
    /// When the family (its refresh token, or its only access token) expires.
    pub(crate) expires_at: u32,
    /// The approving user.
    pub(crate) user: UserId,
    /// The granted scopes.
    pub(crate) scopes: ScopeSet,
    /// The refresh-token counter: only a token with this value is accepted.
    pub(crate) counter: u32,
    /// The client it belongs to.
    pub(crate) client: ClientIndex,
    /// Whether this family issues refresh tokens (fixed when it is opened).
    pub(crate) refresh: bool,
}

impl Family {
    /// True while the family's tokens may still be used.
    pub(crate) fn is_live(&self, now: u32) -> bool {
        now < self.expires_at
    }
}

/// `F` family slots.
#[derive(Debug, Clone)]
pub(crate) struct FamilyTable<const F: usize> {
    slots: [Option<Family>; F],
}

impl<const F: usize> FamilyTable<F> {
    pub(crate) const fn new() -> Self {
        Self { slots: [None; F] }
    }

    /// The family in `slot`, live or not.
    pub(crate) fn get(&self, slot: usize) -> Option<Family> {
        self.slots.get(slot).copied().flatten()
    }

    /// Stores or clears `slot` (out-of-range slots are ignored).
    pub(crate) fn set(&mut self, slot: usize, family: Option<Family>) {
        if let Some(s) = self.slots.get_mut(slot) {
            *s = family;
        }
    }

    /// A slot for a new family: a free one, else one whose family expired.
    pub(crate) fn free_slot(&self, now: u32) -> Option<usize> {
        self.slots.iter().position(|f| f.is_none_or(|f| !f.is_live(now)))
    }

    /// Every occupied slot (expired families included).
    pub(crate) fn iter(&self) -> impl Iterator<Item = (usize, Family)> + '_ {
        self.slots.iter().enumerate().filter_map(|(slot, f)| f.map(|f| (slot, f)))
    }

    /// Empties every slot holding the family with this serial; returns whether one was live.
    pub(crate) fn revoke_serial(&mut self, serial: u32) -> bool {
        let mut found = false;
        for f in self.slots.iter_mut() {
            if f.is_some_and(|f| f.serial == serial) {
                *f = None;
                found = true;
            }
        }
        found
    }

    /// Frees expired families; returns how many.
    pub(crate) fn purge(&mut self, now: u32) -> usize {
        let mut n = 0;
        for f in self.slots.iter_mut() {
            if f.is_some_and(|f| !f.is_live(now)) {
                *f = None;
                n += 1;
            }
        }
        n
    }

    /// Empties the table.
    pub(crate) fn clear(&mut self) {
        self.slots = [None; F];
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_family_costs_24_bytes() {
        assert_eq!(core::mem::size_of::<Family>(), 24);
        assert_eq!(core::mem::size_of::<Option<Family>>(), 24);
    }
}
