//! Device authorization (RFC 8628 §3.1–3.2): a device asks for codes.

use rand_core::CryptoRng;

use super::Provider;
use crate::client::ClientRegistry;
use crate::code::{DeviceCodeClaims, UserCode};
use crate::error::{ErrorCode, OAuthError};
use crate::fmt::{log_info, log_warn};
use crate::grant::{GrantState, GrantStore, PendingGrant};
use crate::request::DeviceAuthorizationRequest;
use crate::response::DeviceAuthorization;

impl<C: ClientRegistry, G: GrantStore, const F: usize, const S: usize> Provider<C, G, F, S> {
    /// Handles a device authorization request: authenticates the client, resolves the scope, allocates a
    /// grant slot under the table's policy ([`crate::policy`]) and issues a device code and a unique
    /// user code.
    ///
    /// Errors: `invalid_client`, `invalid_scope` (unknown, malformed or not allowed for this client),
    /// [`ErrorCode::Throttled`] (429) when the request's source already holds its share of the table,
    /// `temporarily_unavailable` (503) when no slot can be reclaimed; both with a retry time.
    pub fn device_authorization<R: CryptoRng + ?Sized>(
        &mut self,
        now: u64,
        req: &DeviceAuthorizationRequest<'_>,
        rng: &mut R,
    ) -> Result<DeviceAuthorization, OAuthError> {
        let now = self.tick(now);
        self.signing_key()?;
        let index = self.authenticate(u64::from(now), &req.client)?;
        let client = self.clients.get(index).ok_or(OAuthError::invalid_client("unknown client"))?;
        let scopes = match req.scope {
            Some(s) => self.scopes.parse(s)?,
            None => client.default_scopes(),
        };
        if !scopes.is_subset_of(client.allowed_scopes()) {
            return Err(OAuthError::invalid_scope("scope not allowed for this client"));
        }
        let source = self.grant_source(req.client.source);
        let slot = self.free_grant_slot(now, source)?;
        let user_code = self.unique_user_code(rng)?;
        let serial = self.take_serial();
        self.grants.set(
            slot,
            Some(PendingGrant {
                serial,
                expires_at: now.saturating_add(self.config.device_code_lifetime),
                mark: now,
                scopes,
                user_code,
                source,
                interval: self.config.interval,
                client: index,
                state: GrantState::Pending,
            }),
        );
        // Not a durable change: an undecided request is not persisted (see `crate::snapshot`).
        let key = self.signing_key()?;
        let claims = DeviceCodeClaims { key_id: key.id(), slot: u16::try_from(slot).unwrap_or(u16::MAX), serial };
        Ok(DeviceAuthorization {
            device_code: claims.encode(key, self.client_id(index)?),
            user_code,
            expires_in: self.config.device_code_lifetime,
            interval: u32::from(self.config.interval),
        })
    }

    /// The 16-bit tag a request's source is counted under in the grant table (0: unattributed).
    fn grant_source(&self, source: &[u8]) -> u16 {
        if source.is_empty() {
            return 0;
        }
        let [a, b, ..] = self.source_key(source);
        u16::from_be_bytes([a, b]).max(1)
    }

    /// When a live grant stops holding its slot: at its expiry, or, undecided, once abandoned.
    fn releases_at(&self, g: &PendingGrant) -> u32 {
        match g.last_poll() {
            Some(last) => g.expires_at.min(last.saturating_add(self.config.abandon_after)),
            None => g.expires_at,
        }
    }

    /// How readily a slot is given to a new request (lower first), or `None` if its grant keeps it:
    /// free; expired (the one that expired first); decided and delivered or refused (exchanged or
    /// denied, the one expiring first); abandoned (undecided and not polled for `abandon_after`, the
    /// one polled longest ago). Live undecided and approved grants keep their slot.
    fn reclaim_rank(&self, g: Option<&PendingGrant>, now: u32) -> Option<(u8, u32)> {
        let Some(g) = g else { return Some((0, 0)) };
        if g.is_expired(now) {
            return Some((1, g.expires_at));
        }
        if matches!(g.state, GrantState::Exchanged | GrantState::Denied) {
            return Some((2, g.expires_at));
        }
        match g.last_poll() {
            Some(last) if now.saturating_sub(last) >= self.config.abandon_after => Some((3, last)),
            _ => None,
        }
    }

    /// The slot for a new grant from `source`, under the table's policy: a source that holds as many
    /// live grants as there are slots left to give gets 429, so no source ever holds more than half
    /// the table and a new source always finds room while any is left; an empty table of reclaimable
    /// slots is a 503. Both carry the time until a slot frees up.
    fn free_grant_slot(&self, now: u32, source: u16) -> Result<usize, OAuthError> {
        let mut best: Option<(usize, (u8, u32))> = None;
        let (mut free, mut held) = (0usize, 0usize);
        let (mut next_any, mut next_own) = (u32::MAX, u32::MAX);
        for slot in 0..self.grants.capacity() {
            let g = self.grants.get(slot);
            match (self.reclaim_rank(g, now), g) {
                (Some(rank), _) => {
                    free += 1;
                    if best.is_none_or(|(_, r)| rank < r) {
                        best = Some((slot, rank));
                    }
                }
                (None, Some(g)) => {
                    let at = self.releases_at(g);
                    next_any = next_any.min(at);
                    if source != 0 && g.source == source {
                        held += 1;
                        next_own = next_own.min(at);
                    }
                }
                (None, None) => {}
            }
        }
        if source != 0 && held > 0 && held >= free {
            log_info!("grant table: a source holds {} of {} slots, request refused (429)", held, free + held);
            return Err(OAuthError::new(ErrorCode::Throttled, "too many pending requests from this address")
                .retry_after(next_own.saturating_sub(now)));
        }
        best.map(|(slot, _)| slot).ok_or_else(|| {
            log_warn!("grant table full ({} slots): device authorization refused", self.grants.capacity());
            OAuthError::new(ErrorCode::TemporarilyUnavailable, "too many pending requests, retry later")
                .retry_after(next_any.saturating_sub(now))
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
