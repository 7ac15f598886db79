//! Connected devices: a signed-in user's token families, listed and revoked (the `/devices` page, or
//! firmware with a display of its own).

use super::{Provider, UserId};
use crate::client::ClientRegistry;
use crate::grant::GrantStore;
use crate::response::DeviceInfo;

impl<C: ClientRegistry, G: GrantStore, const F: usize, const S: usize> Provider<C, G, F, S> {
    /// The live token families `user` approved, reservations (approved, device not connected yet)
    /// included, in slot order.
    pub fn families(&self, now: u64, user: UserId) -> impl Iterator<Item = DeviceInfo> + '_ {
        let now = self.seen(now);
        self.families.iter().filter(move |(_, f)| f.user == user && f.is_live(now)).map(|(slot, f)| DeviceInfo {
            slot: u16::try_from(slot).unwrap_or(u16::MAX),
            serial: f.serial,
            client: f.client,
            scopes: f.scopes,
            approved_at: f.approved_at,
            last_used: f.issued.then_some(f.last_used),
            expires_at: f.expires_at,
            connected: f.issued,
        })
    }

    /// `user` revokes one of their devices (`slot` and `serial` as listed by [`Provider::families`]): its
    /// tokens stop working at once, and an approval still waiting for its device is withdrawn (the
    /// device's next poll gets `access_denied`). `false` if no such device of this user is live.
    pub fn revoke_family(&mut self, now: u64, user: UserId, slot: u16, serial: u32) -> bool {
        let now = self.tick(now);
        let Some(f) = self.families.get(usize::from(slot)) else { return false };
        if f.user != user || f.serial != serial || !f.is_live(now) {
            return false;
        }
        self.families.set(usize::from(slot), None);
        self.withdraw_approval(serial);
        self.touch_family(usize::from(slot));
        true
    }
}
