//! The token endpoint (RFC 8628 §3.4–3.5, RFC 6749 §6): polling a device code, the `slow_down` rule,
//! the token exchange and refresh-token rotation.

use super::Provider;
use crate::client::{ClientIndex, ClientRegistry};
use crate::code::DeviceCodeClaims;
use crate::error::{ErrorCode, OAuthError};
use crate::family::{Family, LAST_USED_GRANULARITY};
use crate::fmt::log_warn;
use crate::grant::{GrantState, GrantStore, PendingGrant};
use crate::request::{Grant, TokenRequest};
use crate::response::TokenResponse;
use crate::scope::ScopeSet;
use crate::token::{AccessClaims, RefreshClaims};

/// Seconds added to a grant's polling interval by each `slow_down` (RFC 8628 §3.5).
pub const SLOW_DOWN_STEP: u16 = 5;

/// `now` at the granularity of a family's last use.
fn coarse(now: u32) -> u32 {
    now - now % LAST_USED_GRANULARITY
}

impl<C: ClientRegistry, G: GrantStore, const F: usize, const S: usize> Provider<C, G, F, S> {
    /// Handles a token request: polls a device code or rotates a refresh token.
    pub fn token(&mut self, now: u64, req: &TokenRequest<'_>) -> Result<TokenResponse, OAuthError> {
        let now = self.tick(now);
        let client = self.authenticate(u64::from(now), &req.client)?;
        match req.grant {
            Grant::DeviceCode { device_code } => self.poll(now, client, device_code),
            Grant::RefreshToken { refresh_token, scope } => self.refresh(now, client, refresh_token, scope),
        }
    }

    /// One poll of a device code. The order of checks is the contract:
    ///
    /// 1. the MAC, under a key still in the ring and bound to this client, else `invalid_grant`;
    /// 2. the slot must hold the grant with this serial; if it does not (the slot was reclaimed, or a
    ///    restore dropped the spent grant) but a token family with this serial is live, the code was
    ///    exchanged already: a replay (below); else `invalid_grant` (stale or unknown);
    /// 3. a spent code is a replay whatever its age (RFC 6749 §4.1.2 and §10.5, applied to device
    ///    codes): `invalid_grant`, and its token family is revoked (RFC 9700 §4.14);
    /// 4. expiry, in every other state: `expired_token`;
    /// 5. the state: `access_denied`; tokens once approved; while undecided, the **slow_down rule**:
    ///    the first poll is never throttled; a poll sooner than `interval` seconds after the last
    ///    *accepted* poll gets `slow_down` and the grant's interval grows by [`SLOW_DOWN_STEP`];
    ///    the last accepted poll is not moved, so a device that waits the new interval gets through.
    ///
    /// Step 2's family search is a scan of the family table, made only for a code that carries a valid
    /// MAC but no longer has its grant: a forged code never reaches a table.
    fn poll(&mut self, now: u32, client: ClientIndex, device_code: &str) -> Result<TokenResponse, OAuthError> {
        let unknown = OAuthError::invalid_grant("device code not recognised");
        let claims = DeviceCodeClaims::decode(device_code, &self.keys, self.client_id(client)?).ok_or(unknown)?;
        let slot = usize::from(claims.slot);
        let Some(g) = self.grants.get(slot).filter(|g| g.serial == claims.serial && g.client == client).copied() else {
            let spent = self.families.iter().any(|(_, f)| f.serial == claims.serial && f.client == client && f.issued);
            return Err(if spent { self.replayed_device_code(claims.serial) } else { unknown });
        };
        if g.state == GrantState::Exchanged {
            return Err(self.replayed_device_code(g.serial));
        }
        if g.is_expired(now) {
            return Err(OAuthError::new(ErrorCode::ExpiredToken, "device code expired"));
        }
        match g.state {
            GrantState::Pending | GrantState::Polling => {
                let gm = self.grants.get_mut(slot).ok_or(unknown)?;
                if g.state == GrantState::Polling && now < g.mark.saturating_add(u32::from(g.interval)) {
                    gm.interval = gm.interval.saturating_add(SLOW_DOWN_STEP);
                    return Err(OAuthError::new(ErrorCode::SlowDown, "polling too fast, interval increased by 5 s"));
                }
                gm.state = GrantState::Polling;
                gm.mark = now;
                Err(OAuthError::new(ErrorCode::AuthorizationPending, "the user has not yet approved"))
            }
            GrantState::Denied => Err(OAuthError::new(ErrorCode::AccessDenied, "the user denied the request")),
            GrantState::Exchanged => Err(self.replayed_device_code(g.serial)),
            GrantState::Approved => {
                let tokens = self.issue(now, &g)?;
                if let Some(gm) = self.grants.get_mut(slot) {
                    gm.state = GrantState::Exchanged;
                }
                self.touch_serial(slot, g.serial);
                Ok(tokens)
            }
        }
    }

    /// A device code presented again after its exchange: what it issued is revoked.
    fn replayed_device_code(&mut self, serial: u32) -> OAuthError {
        if self.revoke_serial(serial) {
            log_warn!("device code replayed: token family {} revoked", serial);
        }
        OAuthError::invalid_grant("device code already used; its tokens are revoked")
    }

    /// Opens the token family the approval reserved and issues its first tokens. A grant approved
    /// without a reservation (restored from a snapshot of the first format) takes a free slot now.
    fn issue(&mut self, now: u32, g: &PendingGrant) -> Result<TokenResponse, OAuthError> {
        let reserved = self.families.find_serial(g.serial).filter(|&s| self.families.get(s).is_some_and(|f| !f.issued));
        let (slot, reservation) = match reserved.and_then(|s| Some((s, self.families.get(s)?))) {
            Some(found) => found,
            None => {
                let slot = self.families.free_slot(now).ok_or_else(|| {
                    log_warn!("token family table full ({} slots): token exchange refused", F);
                    OAuthError::new(ErrorCode::TemporarilyUnavailable, "too many active grants, retry later")
                })?;
                let user = g.user().unwrap_or(0);
                let refresh = self.clients.get(g.client).is_some_and(|c| c.refresh_tokens());
                let f = Family {
                    serial: g.serial,
                    expires_at: now,
                    user,
                    scopes: g.scopes,
                    counter: 0,
                    client: g.client,
                    approved_at: now,
                    last_used: now,
                    refresh,
                    issued: false,
                };
                (slot, f)
            }
        };
        let lifetime =
            if reservation.refresh { self.config.refresh_token_lifetime } else { self.config.access_token_lifetime };
        let family =
            Family { expires_at: now.saturating_add(lifetime), last_used: coarse(now), issued: true, ..reservation };
        self.families.set(slot, Some(family));
        self.mint(now, slot, &family, family.scopes)
    }

    fn mint(&self, now: u32, slot: usize, family: &Family, scopes: ScopeSet) -> Result<TokenResponse, OAuthError> {
        let key = self.signing_key()?;
        let client_id = self.client_id(family.client)?;
        let family_slot = u16::try_from(slot).unwrap_or(u16::MAX);
        let expires_at = now.saturating_add(self.config.access_token_lifetime).min(family.expires_at);
        let access = AccessClaims {
            key_id: key.id(),
            client: family.client,
            family_slot,
            serial: family.serial,
            user: family.user,
            scopes,
            expires_at,
        };
        let refresh_token = family.refresh.then(|| {
            RefreshClaims {
                key_id: key.id(),
                client: family.client,
                family_slot,
                serial: family.serial,
                counter: family.counter,
            }
            .encode(key, client_id)
        });
        Ok(TokenResponse {
            access_token: access.encode(key, client_id),
            expires_in: expires_at - now.min(expires_at),
            refresh_token,
            scopes,
        })
    }

    /// Rotates a refresh token (RFC 6749 §6, RFC 9700 §4.14.2): the family accepts only its current
    /// counter; an older one means the token was replayed, and the whole family is revoked.
    fn refresh(
        &mut self,
        now: u32,
        client: ClientIndex,
        token: &str,
        scope: Option<&str>,
    ) -> Result<TokenResponse, OAuthError> {
        let unknown = OAuthError::invalid_grant("refresh token not recognised");
        if !self.clients.get(client).is_some_and(|c| c.refresh_tokens()) {
            return Err(OAuthError::new(ErrorCode::UnauthorizedClient, "client may not use refresh tokens"));
        }
        let claims = RefreshClaims::verify(token, &self.keys, self.client_id(client)?).ok_or(unknown)?;
        let slot = usize::from(claims.family_slot);
        let family = self
            .families
            .get(slot)
            .filter(|f| f.serial == claims.serial && f.client == client && f.issued)
            .ok_or(OAuthError::invalid_grant("refresh token revoked or expired"))?;
        if !family.is_live(now) {
            return Err(OAuthError::invalid_grant("refresh token expired"));
        }
        if claims.counter != family.counter {
            log_warn!("refresh token replayed: token family {} revoked", family.serial);
            self.revoke_serial(family.serial);
            return Err(OAuthError::invalid_grant("refresh token reused; the grant is revoked"));
        }
        let scopes = match scope {
            Some(s) => self.scopes.parse(s)?,
            None => family.scopes,
        };
        if !scopes.is_subset_of(family.scopes) {
            return Err(OAuthError::invalid_scope("scope wider than the original grant"));
        }
        let counter = family.counter.checked_add(1).ok_or(unknown)?;
        let rotated = Family {
            counter,
            expires_at: now.saturating_add(self.config.refresh_token_lifetime),
            last_used: coarse(now),
            ..family
        };
        self.families.set(slot, Some(rotated));
        self.touch_family(slot);
        self.mint(now, slot, &rotated, scopes)
    }
}
