//! Protected resources (RFC 6750): the bearer check, the seed's `require_oauth`.
//!
//! MAC first, then the expiry, then one O(1) look-up of the token's family for revocation.

use core::fmt;

use super::Provider;
use crate::client::ClientRegistry;
use crate::error::{ErrorCode, OAuthError};
use crate::grant::GrantStore;
use crate::response::TokenInfo;
use crate::scope::ScopeSet;
use crate::token::AccessClaims;

/// Why a protected-resource request was refused (RFC 6750 §3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[non_exhaustive]
pub enum BearerError {
    /// No bearer credentials: 401 with a bare challenge (no error code, §3.1).
    Missing,
    /// `Authorization: Bearer` with a malformed value: `invalid_request`.
    Malformed,
    /// Not a token of ours (bad MAC, unknown key, unknown client): `invalid_token`.
    Invalid,
    /// Past its expiry: `invalid_token`.
    Expired,
    /// Its family was revoked: `invalid_token`.
    Revoked,
    /// Valid, but without every required scope: `insufficient_scope`.
    InsufficientScope,
}

impl BearerError {
    /// The OAuth error, or `None` for [`BearerError::Missing`].
    pub fn oauth_error(self) -> Option<OAuthError> {
        Some(match self {
            Self::Missing => return None,
            Self::Malformed => OAuthError::invalid_request("malformed bearer credentials"),
            Self::Invalid => OAuthError::new(ErrorCode::InvalidToken, "token not recognised"),
            Self::Expired => OAuthError::new(ErrorCode::InvalidToken, "token expired"),
            Self::Revoked => OAuthError::new(ErrorCode::InvalidToken, "token revoked"),
            Self::InsufficientScope => OAuthError::new(ErrorCode::InsufficientScope, "token lacks a required scope"),
        })
    }
}

impl fmt::Display for BearerError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.oauth_error() {
            Some(e) => e.fmt(f),
            None => f.write_str("bearer token missing"),
        }
    }
}

impl core::error::Error for BearerError {}

impl<C: ClientRegistry, G: GrantStore, const F: usize, const S: usize> Provider<C, G, F, S> {
    /// Verifies an access token: MAC, then expiry, then one look-up of its family for revocation.
    pub fn verify_access_token(&self, now: u64, token: &str) -> Result<TokenInfo, BearerError> {
        let now = self.seen(now);
        let claims = AccessClaims::verify_with(token, &self.keys, |i| self.clients.get(i).map(|c| c.id()))
            .ok_or(BearerError::Invalid)?;
        if now >= claims.expires_at {
            return Err(BearerError::Expired);
        }
        let live = self
            .families
            .get(usize::from(claims.family_slot))
            .is_some_and(|f| f.issued && f.serial == claims.serial && f.client == claims.client && f.is_live(now));
        if !live {
            return Err(BearerError::Revoked);
        }
        Ok(TokenInfo {
            client: claims.client,
            user: claims.user,
            scopes: claims.scopes,
            expires_at: claims.expires_at,
            serial: claims.serial,
        })
    }

    /// The seed's `require_oauth(scopes)`: checks an `Authorization` header value for a Bearer token
    /// carrying every scope in `required`.
    pub fn check_bearer(
        &self,
        now: u64,
        authorization: Option<&str>,
        required: ScopeSet,
    ) -> Result<TokenInfo, BearerError> {
        let now = u64::from(self.seen(now));
        let token = parse_bearer(authorization)?;
        let info = self.verify_access_token(now, token)?;
        if !info.scopes.contains(required) {
            return Err(BearerError::InsufficientScope);
        }
        Ok(info)
    }
}

/// True for the characters of a `b64token` before its trailing `=`s (RFC 6750 §2.1): `ALPHA / DIGIT /
/// "-" / "." / "_" / "~" / "+" / "/"`. Comparisons only, no early exit, so a token's check compiles to
/// vector code.
fn is_b64token_char(b: u8) -> bool {
    let lower = b | 0x20;
    b.is_ascii_digit()
        | lower.is_ascii_lowercase()
        | (b == b'-')
        | (b == b'.')
        | (b == b'_')
        | (b == b'~')
        | (b == b'+')
        | (b == b'/')
}

/// Extracts the token from `Bearer <token>` (RFC 6750 §2.1; the scheme is case-insensitive).
///
/// No header, or another scheme, is [`BearerError::Missing`]; a Bearer header whose value is not one
/// `b64token` is [`BearerError::Malformed`].
pub fn parse_bearer(authorization: Option<&str>) -> Result<&str, BearerError> {
    let value = authorization.ok_or(BearerError::Missing)?;
    let (scheme, token) = value.split_once(' ').unwrap_or((value, ""));
    if !scheme.eq_ignore_ascii_case("bearer") {
        return Err(BearerError::Missing);
    }
    let token = token.trim_start_matches(' ').trim_end_matches(' ');
    let body = token.trim_end_matches('=');
    if !body.is_empty() && body.bytes().fold(true, |ok, b| ok & is_b64token_char(b)) {
        Ok(token)
    } else {
        Err(BearerError::Malformed)
    }
}
