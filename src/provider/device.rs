//! Device authorization (RFC 8628 §3.1–3.2): a device asks for codes.

use rand_core::CryptoRng;

use super::Provider;
use crate::client::ClientRegistry;
use crate::code::{DeviceCodeClaims, UserCode};
use crate::error::{ErrorCode, OAuthError};
use crate::fmt::log_warn;
use crate::grant::{GrantState, GrantStore, PendingGrant};
use crate::request::DeviceAuthorizationRequest;
use crate::response::DeviceAuthorization;

impl<C: ClientRegistry, G: GrantStore, const F: usize, const S: usize> Provider<C, G, F, S> {
    /// Handles a device authorization request: authenticates the client, resolves the scope, allocates a
    /// grant slot and issues a device code and a unique user code.
    ///
    /// Errors: `invalid_client`, `invalid_scope` (unknown, malformed or not allowed for this client),
    /// `temporarily_unavailable` (503) when every slot holds a grant that has not expired yet.
    pub fn device_authorization<R: CryptoRng + ?Sized>(
        &mut self,
        now: u64,
        req: &DeviceAuthorizationRequest<'_>,
        rng: &mut R,
    ) -> Result<DeviceAuthorization, OAuthError> {
        let now = self.tick(now);
        self.signing_key()?;
        let index = self.authenticate(&req.client)?;
        let client = self.clients.get(index).ok_or(OAuthError::invalid_client("unknown client"))?;
        let scopes = match req.scope {
            Some(s) => self.scopes.parse(s)?,
            None => client.default_scopes(),
        };
        if !scopes.is_subset_of(client.allowed_scopes()) {
            return Err(OAuthError::invalid_scope("scope not allowed for this client"));
        }
        let slot = self.free_grant_slot(now)?;
        let user_code = self.unique_user_code(rng)?;
        let serial = self.next_serial;
        self.next_serial = self.next_serial.wrapping_add(1);
        self.grants.set(
            slot,
            Some(PendingGrant {
                serial,
                expires_at: now.saturating_add(self.config.device_code_lifetime),
                last_poll: now,
                user: 0,
                scopes,
                user_code,
                interval: self.config.interval,
                client: index,
                state: GrantState::Pending,
            }),
        );
        self.touch();
        let key = self.signing_key()?;
        let claims = DeviceCodeClaims { key_id: key.id(), slot: u16::try_from(slot).unwrap_or(u16::MAX), serial };
        Ok(DeviceAuthorization {
            device_code: claims.encode(key, self.client_id(index)?),
            user_code,
            expires_in: self.config.device_code_lifetime,
            interval: u32::from(self.config.interval),
        })
    }

    /// The slot for a new grant: a free one; else the expired grant that expired first; else the
    /// exchanged grant that expires first (a spent code whose only remaining use is detecting a replay).
    /// Live undecided, approved and denied grants are never reclaimed: a full table is a 503.
    fn free_grant_slot(&self, now: u32) -> Result<usize, OAuthError> {
        let mut best: Option<(usize, (u8, u32))> = None;
        for slot in 0..self.grants.capacity() {
            let rank = match self.grants.get(slot) {
                None => return Ok(slot),
                Some(g) if g.is_expired(now) => (0, g.expires_at),
                Some(g) if g.state == GrantState::Exchanged => (1, g.expires_at),
                Some(_) => continue,
            };
            if best.is_none_or(|(_, r)| rank < r) {
                best = Some((slot, rank));
            }
        }
        best.map(|(slot, _)| slot).ok_or_else(|| {
            log_warn!("grant table full ({} slots): device authorization refused", self.grants.capacity());
            OAuthError::new(ErrorCode::TemporarilyUnavailable, "too many pending requests, retry later")
        })
    }

    /// A user code that no grant in the table has (expired ones included, so look-ups stay unambiguous).
    fn unique_user_code<R: CryptoRng + ?Sized>(&self, rng: &mut R) -> Result<UserCode, OAuthError> {
        let broken = OAuthError::new(ErrorCode::ServerError, "could not draw a user code");
        for _ in 0..8 {
            let code = UserCode::generate(rng).ok_or(broken)?;
            if !(0..self.grants.capacity()).any(|s| self.grants.get(s).is_some_and(|g| g.user_code == code)) {
                return Ok(code);
            }
        }
        Err(broken)
    }
}
