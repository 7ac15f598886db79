//! User-code verification (RFC 8628 §3.3): what the verification page asks of the provider.
//!
//! Every look-up is charged to a *source* (the signed-in user, the peer address) in the guess budgets
//! of [`crate::limit`], and compares the typed code with every slot in constant time.

use core::fmt;

use super::{Provider, UserId};
use crate::client::ClientRegistry;
use crate::code::UserCode;
use crate::family::Family;
use crate::fmt::{log_info, log_warn};
use crate::grant::{GrantState, GrantStore};
use crate::key::{Domain, TAG_LEN};
use crate::response::GrantInfo;
use crate::scope::ScopeSet;

/// Why a user code could not be looked up, approved or denied.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[non_exhaustive]
pub enum ApproveError {
    /// Malformed, or no grant has this code (counts against the guess budgets).
    InvalidCode,
    /// The code expired.
    Expired,
    /// The user already approved or denied this code, or it was exchanged.
    AlreadyDecided,
    /// Too many wrong guesses from this source or overall; try later.
    RateLimited,
    /// The user tried to grant a scope the client did not request.
    ScopeNotRequested,
    /// Every token-family slot is taken (by live devices or approvals waiting for theirs): the device
    /// would be refused its tokens, so the approval is refused now.
    DevicesFull,
    /// This user already has [`super::Config::families_per_user`] connected devices.
    AccountFull,
}

impl fmt::Display for ApproveError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::InvalidCode => "no pending request has this code",
            Self::Expired => "this code has expired",
            Self::AlreadyDecided => "this code has already been used",
            Self::RateLimited => "too many attempts, try again later",
            Self::ScopeNotRequested => "a granted scope was not requested",
            Self::DevicesFull => "no room for another connected device",
            Self::AccountFull => "this account has the most connected devices it may have",
        })
    }
}

impl core::error::Error for ApproveError {}

impl<C: ClientRegistry, G: GrantStore, const F: usize, const S: usize> Provider<C, G, F, S> {
    /// Finds the slot holding `input`, charging wrong guesses to `source` and to the global budget.
    /// Every slot is compared in constant time, with no early exit.
    fn find_user_code(&mut self, now: u32, input: &str, source: &[u8]) -> Result<usize, ApproveError> {
        let source = self.source_key(source);
        let limits = self.config.limits;
        self.limiter.admit(now, &source, &limits).map_err(|_| ApproveError::RateLimited)?;
        let mut found = None;
        if let Some(code) = UserCode::parse(input) {
            for slot in 0..self.grants.capacity() {
                if let Some(g) = self.grants.get(slot) {
                    if g.user_code.ct_eq(&code) {
                        found = Some(slot);
                    }
                }
            }
        }
        let Some(slot) = found else {
            self.limiter.record_failure(now, &source, &limits);
            return Err(ApproveError::InvalidCode);
        };
        match self.grants.get(slot) {
            Some(g) if g.is_expired(now) => Err(ApproveError::Expired),
            Some(_) => Ok(slot),
            None => Err(ApproveError::InvalidCode),
        }
    }

    fn info(&self, slot: usize) -> Result<GrantInfo, ApproveError> {
        let g = self.grants.get(slot).ok_or(ApproveError::InvalidCode)?;
        Ok(GrantInfo {
            client: g.client,
            scopes: g.scopes,
            state: g.state,
            expires_at: g.expires_at,
            user_code: g.user_code,
        })
    }

    /// Looks up what a user typed, so the page can show which client asks for which scopes.
    ///
    /// `source` identifies who is guessing (the signed-in user, the peer address): wrong codes are
    /// charged to it (see [`crate::limit`]). An already decided grant is returned with its state.
    pub fn user_code_info(&mut self, now: u64, input: &str, source: &[u8]) -> Result<GrantInfo, ApproveError> {
        let now = self.tick(now);
        let slot = self.find_user_code(now, input, source)?;
        self.info(slot)
    }

    /// The signed-in `user` approves the request with `granted` scopes (a subset of those requested).
    ///
    /// The approval reserves the device's token-family slot, so capacity is checked **before**
    /// consent: [`ApproveError::DevicesFull`] when every slot is taken, [`ApproveError::AccountFull`]
    /// when the user is at [`super::Config::families_per_user`]; the device's next poll then gets its
    /// tokens for sure. The reservation lasts until the device code expires.
    pub fn approve(
        &mut self,
        now: u64,
        input: &str,
        source: &[u8],
        user: UserId,
        granted: ScopeSet,
    ) -> Result<GrantInfo, ApproveError> {
        let now = self.tick(now);
        let slot = self.find_user_code(now, input, source)?;
        let g = *self.grants.get(slot).ok_or(ApproveError::InvalidCode)?;
        if !g.state.is_undecided() {
            return Err(ApproveError::AlreadyDecided);
        }
        if !granted.is_subset_of(g.scopes) {
            return Err(ApproveError::ScopeNotRequested);
        }
        if self.families.count_user(user, now) >= usize::from(self.config.families_per_user) {
            log_info!("user {} has {} connected devices: approval refused", user, self.config.families_per_user);
            return Err(ApproveError::AccountFull);
        }
        let Some(family_slot) = self.families.free_slot(now) else {
            log_warn!("token family table full ({} slots): approval refused", F);
            return Err(ApproveError::DevicesFull);
        };
        let refresh = self.clients.get(g.client).is_some_and(|c| c.refresh_tokens());
        let reservation = Family {
            serial: g.serial,
            expires_at: g.expires_at,
            user,
            scopes: granted,
            counter: 0,
            client: g.client,
            approved_at: now,
            last_used: now,
            refresh,
            issued: false,
        };
        self.families.set(family_slot, Some(reservation));
        if let Some(gm) = self.grants.get_mut(slot) {
            gm.scopes = granted;
            gm.mark = user;
            gm.state = GrantState::Approved;
        }
        self.touch_serial(slot, g.serial);
        self.info(slot)
    }

    /// The user denies the request: the device's next poll gets `access_denied`.
    pub fn deny(&mut self, now: u64, input: &str, source: &[u8]) -> Result<GrantInfo, ApproveError> {
        let now = self.tick(now);
        let slot = self.find_user_code(now, input, source)?;
        let g = self.grants.get_mut(slot).ok_or(ApproveError::InvalidCode)?;
        if !g.state.is_undecided() {
            return Err(ApproveError::AlreadyDecided);
        }
        g.state = GrantState::Denied;
        self.touch_grant(slot);
        self.info(slot)
    }

    /// Seconds until `source` may try a user code again (0 if it may now).
    pub fn user_code_retry_after(&mut self, now: u64, source: &[u8]) -> u32 {
        let now = self.tick(now);
        let source = self.source_key(source);
        let limits = self.config.limits;
        self.limiter.admit(now, &source, &limits).err().map_or(0, |e| e.retry_after)
    }

    /// An HMAC tag for the verification page's anti-CSRF token, bound to `session` (e.g. the user).
    /// Before `init` it is all zeros, which [`Provider::verify_csrf_tag`] never accepts.
    pub fn csrf_tag(&self, session: &[u8]) -> [u8; TAG_LEN] {
        self.keys.current().map_or([0; TAG_LEN], |k| k.tag(Domain::Csrf, &[session]))
    }

    /// Checks an anti-CSRF tag made by [`Provider::csrf_tag`] (with the current or previous key).
    pub fn verify_csrf_tag(&self, session: &[u8], tag: &[u8]) -> bool {
        self.keys.current().is_some_and(|k| k.verify(Domain::Csrf, &[session], tag))
            || self.keys.previous().is_some_and(|k| k.verify(Domain::Csrf, &[session], tag))
    }
}
