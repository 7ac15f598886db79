//! Token families: everything issued from one approved grant (its access tokens and its chain of
//! refresh tokens), revoked together (RFC 9700 §4.14).
//!
//! A family lives in one slot of a fixed table of `F` slots. Its slot is taken when the user approves
//! (a *reservation*, which lasts until the device code expires), so the verification page never says
//! "approved" for a device that would then be refused; the token exchange opens it, and it lives until
//! its refresh token (or, for a client without refresh tokens, its only access token) expires. Tokens
//! carry the slot and the grant serial, so checking a token is one look-up: the slot must still hold a
//! live family with that serial. Revoking is emptying the slot; nothing else needs to be remembered.
//! RFC 8628 gives a device no identity, so every approval is a family of its own, listed on the
//! connected-devices page with its approval time and last use.

use crate::client::ClientIndex;
use crate::provider::UserId;
use crate::scope::ScopeSet;

/// Granularity of a family's last use, in seconds: coarse on purpose (it says "in use this hour", not
/// when exactly), and only a refresh updates it, so the bearer check stays read-only.
pub const LAST_USED_GRANULARITY: u32 = 3600;

/// One token family. 32 bytes, and `Option<Family>` too (the `bool`s give it a niche).
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
    /// When the user approved (seconds, provider clock).
    pub(crate) approved_at: u32,
    /// The last refresh, rounded down to [`LAST_USED_GRANULARITY`] (the exchange until the first).
    pub(crate) last_used: u32,
    /// Whether this family issues refresh tokens (fixed when it is opened).
    pub(crate) refresh: bool,
    /// False while the slot is only reserved by an approval whose device has not exchanged its code.
    pub(crate) issued: bool,
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

    /// The slot holding the family with this serial.
    pub(crate) fn find_serial(&self, serial: u32) -> Option<usize> {
        self.slots.iter().position(|f| f.is_some_and(|f| f.serial == serial))
    }

    /// Live families (reservations included) approved by `user`.
    pub(crate) fn count_user(&self, user: UserId, now: u32) -> usize {
        self.slots.iter().flatten().filter(|f| f.user == user && f.is_live(now)).count()
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
    fn a_family_costs_32_bytes() {
        assert_eq!(core::mem::size_of::<Family>(), 32);
        assert_eq!(core::mem::size_of::<Option<Family>>(), 32);
    }
}
