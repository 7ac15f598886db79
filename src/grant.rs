//! Pending grants (the seed's `authcodegetter`/`authcodesetter`): one 32-byte record per device
//! authorization request, from issue until it expires.
//!
//! The provider owns the rules (allocation, expiry, the state machine); a [`GrantStore`] is only indexed
//! storage, so an application can keep grants elsewhere (external RAM, FRAM) by implementing it.
//! [`FixedGrants`] is the default: an array of `N` slots.
//!
//! A grant's life: `Pending` → (first poll) `Polling` → `Approved` or `Denied` → (token issued)
//! `Exchanged`. A grant past `expires_at` answers `expired_token` (a spent one stays a replay) until
//! its slot is reused; the grant serial in every device code makes a reused slot reject the old code.
//! Which slots may be reused, and who may take how many, is the table's policy: see
//! [`crate::policy`].

use crate::code::UserCode;
use crate::scope::ScopeSet;

/// Where a grant stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[repr(u8)]
pub enum GrantState {
    /// Issued; the device has not polled yet.
    Pending,
    /// The device has polled at least once (`last_poll` is meaningful).
    Polling,
    /// The user approved; the next poll gets the tokens.
    Approved,
    /// The user denied; polls get `access_denied`.
    Denied,
    /// Tokens were issued; the device code is spent.
    Exchanged,
}

impl GrantState {
    /// True while the user has not decided.
    pub fn is_undecided(self) -> bool {
        matches!(self, Self::Pending | Self::Polling)
    }
}

/// One device authorization request. 32 bytes; see the crate docs for the budget.
///
/// `mark` is the time of the last poll answered without `slow_down` while the user has not decided
/// (the issue time until the first poll: it tells an abandoned request from a live one), and the
/// approving user once approved; [`PendingGrant::last_poll`] and [`PendingGrant::user`] read it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct PendingGrant {
    /// Serial carried in the device code; unique for the provider's life.
    pub serial: u32,
    /// When the device code stops working (seconds, caller's clock).
    pub expires_at: u32,
    pub(crate) mark: u32,
    /// Requested scopes; after approval, the granted ones.
    pub scopes: ScopeSet,
    /// The user code.
    pub user_code: UserCode,
    /// Keyed hash of the source that asked (its peer address), for the table's fair shares; 0 when the
    /// transport gave none.
    pub source: u16,
    /// Current polling interval in seconds (grows by 5 with each `slow_down`).
    pub interval: u16,
    /// Index of the requesting client.
    pub client: u8,
    /// State.
    pub state: GrantState,
}

impl PendingGrant {
    /// True once `now` has reached the expiry.
    pub fn is_expired(&self, now: u32) -> bool {
        now >= self.expires_at
    }

    /// The last accepted poll (or the issue time before the first poll), while undecided.
    pub fn last_poll(&self) -> Option<u32> {
        self.state.is_undecided().then_some(self.mark)
    }

    /// The approving user, once approved.
    pub fn user(&self) -> Option<u32> {
        matches!(self.state, GrantState::Approved | GrantState::Exchanged).then_some(self.mark)
    }
}

/// Indexed storage for pending grants.
pub trait GrantStore {
    /// Number of slots (at most 65 536).
    fn capacity(&self) -> usize;
    /// The grant in `slot`, if any.
    fn get(&self, slot: usize) -> Option<&PendingGrant>;
    /// The grant in `slot`, mutably.
    fn get_mut(&mut self, slot: usize) -> Option<&mut PendingGrant>;
    /// Stores or clears `slot`. Out-of-range slots are ignored.
    fn set(&mut self, slot: usize, grant: Option<PendingGrant>);
}

/// `N` grant slots in an array.
#[derive(Debug, Clone)]
pub struct FixedGrants<const N: usize> {
    slots: [Option<PendingGrant>; N],
}

impl<const N: usize> FixedGrants<N> {
    /// Empty slots.
    pub const fn new() -> Self {
        Self { slots: [None; N] }
    }
}

impl<const N: usize> Default for FixedGrants<N> {
    fn default() -> Self {
        Self::new()
    }
}

impl<const N: usize> GrantStore for FixedGrants<N> {
    fn capacity(&self) -> usize {
        N.min(1 << 16)
    }
    fn get(&self, slot: usize) -> Option<&PendingGrant> {
        self.slots.get(slot)?.as_ref()
    }
    fn get_mut(&mut self, slot: usize) -> Option<&mut PendingGrant> {
        self.slots.get_mut(slot)?.as_mut()
    }
    fn set(&mut self, slot: usize, grant: Option<PendingGrant>) {
        if let Some(s) = self.slots.get_mut(slot) {
            *s = grant;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_slot_costs_32_bytes() {
        assert_eq!(core::mem::size_of::<PendingGrant>(), 32);
        assert_eq!(core::mem::size_of::<Option<PendingGrant>>(), 32);
    }
}
