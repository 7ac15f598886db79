//! Introspection (RFC 7662) and revocation (RFC 7009).

use super::Provider;
use crate::client::ClientRegistry;
use crate::error::OAuthError;
use crate::grant::GrantStore;
use crate::request::TokenQuery;
use crate::response::{Introspection, TokenInfo};
use crate::token::{AccessClaims, RefreshClaims};

impl<C: ClientRegistry, G: GrantStore, const F: usize, const S: usize> Provider<C, G, F, S> {
    /// Introspects a token for an authenticated confidential client.
    pub fn introspect(&mut self, now: u64, query: &TokenQuery<'_>) -> Result<Introspection, OAuthError> {
        let now = u64::from(self.tick(now));
        let index = self.authenticate(now, &query.client)?;
        if !self.clients.get(index).is_some_and(|c| c.is_confidential()) {
            return Err(OAuthError::invalid_client("introspection needs client authentication"));
        }
        if let Ok(info) = self.verify_access_token(now, query.token) {
            return Ok(Introspection::Access(info));
        }
        Ok(self.refresh_info(self.seen(now), query.token).map_or(Introspection::Inactive, Introspection::Refresh))
    }

    fn refresh_info(&self, now: u32, token: &str) -> Option<TokenInfo> {
        let claims = RefreshClaims::verify_with(token, &self.keys, |i| self.clients.get(i).map(|c| c.id()))?;
        let f = self.families.get(usize::from(claims.family_slot))?;
        (f.issued
            && f.serial == claims.serial
            && f.client == claims.client
            && f.counter == claims.counter
            && f.is_live(now))
        .then_some(TokenInfo {
            client: f.client,
            user: f.user,
            scopes: f.scopes,
            expires_at: f.expires_at,
            serial: f.serial,
        })
    }

    /// Revokes the token family of an access or refresh token (RFC 7009). A token that is invalid,
    /// expired, or issued to another client is ignored, as §2.2 requires (the answer is still 200).
    pub fn revoke(&mut self, now: u64, query: &TokenQuery<'_>) -> Result<(), OAuthError> {
        let index = self.authenticate(now, &query.client)?;
        let client_id = self.client_id(index)?;
        let serial = match (
            AccessClaims::verify(query.token, &self.keys, client_id),
            RefreshClaims::verify(query.token, &self.keys, client_id),
        ) {
            (Some(a), _) if a.client == index => Some(a.serial),
            (_, Some(r)) if r.client == index => Some(r.serial),
            _ => None,
        };
        if let Some(serial) = serial {
            self.revoke_serial(serial);
        }
        Ok(())
    }
}
