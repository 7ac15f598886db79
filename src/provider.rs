//! The device authorization server: the one owner of grants, token families and guess budgets.
//!
//! [`Provider`] turns typed requests into typed responses. It never does I/O and never reads a clock:
//! every call takes `now` (seconds from any monotonic origin the caller keeps for the life of its key,
//! below 2^32) and, where it draws randomness, a `rand_core::CryptoRng`.
//!
//! | seed (flask-oauth2-devices) | here |
//! |---|---|
//! | `clientgetter` | [`ClientRegistry`] ([`FixedClients`](crate::client::FixedClients)) |
//! | `authcodegetter` / `authcodesetter` | [`GrantStore`] ([`FixedGrants`](crate::grant::FixedGrants)) |
//! | `code_handler(authorize_url, activate_url, expires, interval)` | [`Config`] + [`Provider::device_authorization`] |
//! | `authorize_handler` | [`Provider::token`] |
//! | the activation page | [`Provider::user_code_info`], [`Provider::approve`], [`Provider::deny`] |
//! | `require_oauth(scope)` | [`Provider::check_bearer`] |

use core::fmt;

use rand_core::CryptoRng;

use crate::client::{Client, ClientIndex, ClientRegistry};
use crate::code::{DeviceCode, DeviceCodeClaims, UserCode};
use crate::error::{BufferTooSmall, ErrorCode, OAuthError};
use crate::grant::{GrantState, GrantStore, PendingGrant};
use crate::key::{Domain, KeyRing, ServerKey};
use crate::limit::{AttemptLimiter, LimitConfig};
use crate::request::{ClientCredentials, DeviceAuthorizationRequest, Grant, TokenQuery, TokenRequest};
use crate::response::{to_slice, DeviceAuthorizationBody, IntrospectionBody, ScopeStr, TokenBody};
use crate::scope::{ScopeRegistry, ScopeSet};
use crate::token::{AccessClaims, AccessToken, RefreshClaims, RefreshToken};

/// The application's identifier for a signed-in user (carried in tokens as `sub`).
pub type UserId = u32;

/// Seconds added to a grant's polling interval by each `slow_down` (RFC 8628 §3.5).
pub const SLOW_DOWN_STEP: u16 = 5;

/// Longest `verification_uri_complete` the provider builds.
pub const MAX_URI_LEN: usize = 160;

/// Server settings: the seed's `code_handler(authorize_url, activate_url, expires, interval)` and more.
#[derive(Debug, Clone, Copy)]
pub struct Config {
    /// Where users go to enter their code (`verification_uri`).
    pub verification_uri: &'static str,
    /// Also send `verification_uri_complete` (the URI with `?user_code=…`), for QR codes and links.
    pub verification_uri_complete: bool,
    /// Lifetime of a device code and its user code, in seconds (`expires_in`).
    pub device_code_lifetime: u32,
    /// Initial minimum polling interval, in seconds (`interval`).
    pub interval: u16,
    /// Lifetime of an access token, in seconds.
    pub access_token_lifetime: u32,
    /// Lifetime of a refresh token, in seconds (renewed at each rotation).
    pub refresh_token_lifetime: u32,
    /// Budgets for wrong user-code guesses.
    pub limits: LimitConfig,
}

impl Config {
    /// Defaults: 600 s codes, 5 s interval, 1 h access tokens, 30 d refresh tokens.
    pub const fn new(verification_uri: &'static str) -> Self {
        Self {
            verification_uri,
            verification_uri_complete: true,
            device_code_lifetime: 600,
            interval: 5,
            access_token_lifetime: 3600,
            refresh_token_lifetime: 30 * 24 * 3600,
            limits: LimitConfig { per_source: 5, global: 32, window: 60 },
        }
    }
}

/// Why a configuration was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum ConfigError {
    /// `verification_uri` is empty or longer than [`MAX_URI_LEN`] minus room for the code.
    VerificationUri,
    /// A lifetime or the interval is zero.
    ZeroDuration,
    /// The grant store has more than 65 536 slots or the family table more than 65 536 entries.
    Capacity,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::VerificationUri => "verification_uri empty or too long",
            Self::ZeroDuration => "lifetimes and interval must be positive",
            Self::Capacity => "capacities must not exceed 65536",
        })
    }
}

impl core::error::Error for ConfigError {}

/// One token family: everything issued from one approved grant, revoked together. 24 bytes, and
/// `Option<Family>` too (the `bool` gives it a niche).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub(crate) struct Family {
    pub(crate) serial: u32,
    pub(crate) expires_at: u32,
    pub(crate) user: UserId,
    pub(crate) scopes: ScopeSet,
    pub(crate) counter: u32,
    pub(crate) client: ClientIndex,
    /// Whether this family issues refresh tokens (fixed when it is opened).
    pub(crate) refresh: bool,
}

/// The answer to a device authorization request (RFC 8628 §3.2).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceAuthorization {
    /// The device code.
    pub device_code: DeviceCode,
    /// The user code.
    pub user_code: UserCode,
    /// Seconds until both codes expire.
    pub expires_in: u32,
    /// Minimum seconds between polls.
    pub interval: u32,
}

/// Tokens issued by the token endpoint (RFC 6749 §5.1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenResponse {
    /// The access token (a Bearer token).
    pub access_token: AccessToken,
    /// Seconds until the access token expires.
    pub expires_in: u32,
    /// A refresh token, if the client receives them.
    pub refresh_token: Option<RefreshToken>,
    /// The granted scopes.
    pub scopes: ScopeSet,
}

/// What the verification page shows about a pending request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GrantInfo {
    /// The requesting client.
    pub client: ClientIndex,
    /// Requested scopes (granted ones once approved).
    pub scopes: ScopeSet,
    /// The grant's state.
    pub state: GrantState,
    /// When the code expires.
    pub expires_at: u32,
    /// The normalised user code.
    pub user_code: UserCode,
}

/// Why a user code could not be looked up, approved or denied.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
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
}

impl fmt::Display for ApproveError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::InvalidCode => "no pending request has this code",
            Self::Expired => "this code has expired",
            Self::AlreadyDecided => "this code has already been used",
            Self::RateLimited => "too many attempts, try again later",
            Self::ScopeNotRequested => "a granted scope was not requested",
        })
    }
}

impl core::error::Error for ApproveError {}

/// What a valid access token grants.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TokenInfo {
    /// The client it was issued to.
    pub client: ClientIndex,
    /// The approving user.
    pub user: UserId,
    /// Granted scopes.
    pub scopes: ScopeSet,
    /// Expiry (caller's clock).
    pub expires_at: u32,
    /// The grant serial (identifies the token family).
    pub serial: u32,
}

/// Why a protected-resource request was refused (RFC 6750 §3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
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

    /// The HTTP status to answer with.
    pub fn http_status(self) -> u16 {
        self.oauth_error().map_or(401, |e| e.http_status())
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

/// The result of an introspection (RFC 7662 §2.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Introspection {
    /// Not a valid, unexpired, unrevoked token of ours.
    Inactive,
    /// An active access token.
    Access(TokenInfo),
    /// An active refresh token.
    Refresh(TokenInfo),
}

pub(crate) fn secs(now: u64) -> u32 {
    u32::try_from(now).unwrap_or(u32::MAX)
}

/// The device authorization server.
///
/// `C` finds clients, `G` stores pending grants, `F` is the number of token families (approved grants
/// whose tokens are still alive), `S` the number of rate-limit sources tracked at once.
pub struct Provider<C, G, const F: usize, const S: usize> {
    config: Config,
    pub(crate) keys: KeyRing,
    scopes: ScopeRegistry,
    pub(crate) clients: C,
    pub(crate) grants: G,
    pub(crate) families: [Option<Family>; F],
    limiter: AttemptLimiter<S>,
    pub(crate) next_serial: u32,
    /// The latest `now` seen: time never goes backwards for the provider (see [`Provider::clock`]).
    pub(crate) clock: u32,
    /// Bumped on every change a snapshot must capture (see [`Provider::durable_version`]).
    pub(crate) durable: u32,
}

impl<C, G, const F: usize, const S: usize> fmt::Debug for Provider<C, G, F, S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Provider").field("config", &self.config).field("keys", &self.keys).finish_non_exhaustive()
    }
}

impl<C: ClientRegistry, G: GrantStore, const F: usize, const S: usize> Provider<C, G, F, S> {
    /// A provider with empty tables. The serial counter starts at a random value so that codes issued
    /// before a restart (without a snapshot) are very unlikely to match new grants.
    pub fn new<R: CryptoRng + ?Sized>(
        config: Config,
        key: ServerKey,
        scopes: ScopeRegistry,
        clients: C,
        grants: G,
        rng: &mut R,
    ) -> Result<Self, ConfigError> {
        let uri = config.verification_uri;
        if uri.is_empty() || uri.len() + "?user_code=XXXX-XXXX".len() > MAX_URI_LEN {
            return Err(ConfigError::VerificationUri);
        }
        if config.device_code_lifetime == 0
            || config.interval == 0
            || config.access_token_lifetime == 0
            || config.refresh_token_lifetime == 0
            || config.limits.window == 0
        {
            return Err(ConfigError::ZeroDuration);
        }
        if grants.capacity() > 1 << 16 || F > 1 << 16 {
            return Err(ConfigError::Capacity);
        }
        Ok(Self {
            config,
            keys: KeyRing::new(key),
            scopes,
            clients,
            grants,
            families: [None; F],
            limiter: AttemptLimiter::new(),
            next_serial: rng.next_u32(),
            clock: 0,
            durable: 0,
        })
    }

    /// Advances the provider's clock to `now` and returns it; a `now` behind the clock is ignored, so a
    /// clock that jumps backwards never makes an expired code or token valid again.
    fn tick(&mut self, now: u64) -> u32 {
        self.clock = self.clock.max(secs(now));
        self.clock
    }

    /// `now` as seen by the provider: never behind the latest time it was given.
    fn seen(&self, now: u64) -> u32 {
        self.clock.max(secs(now))
    }

    /// The provider's clock: the latest `now` it was given (persisted in snapshots).
    pub fn clock(&self) -> u32 {
        self.clock
    }

    /// A counter bumped by every change a snapshot must capture: new, approved, denied and exchanged
    /// grants, opened, rotated and revoked token families. Save when it differs from the version of the
    /// last snapshot; polling alone never bumps it, so polls cost no flash writes.
    pub fn durable_version(&self) -> u32 {
        self.durable
    }

    fn touch(&mut self) {
        self.durable = self.durable.wrapping_add(1);
    }

    /// The configuration.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// The scope registry.
    pub fn scopes(&self) -> &ScopeRegistry {
        &self.scopes
    }

    /// The client registry.
    pub fn clients(&self) -> &C {
        &self.clients
    }

    /// The client at `index`.
    pub fn client(&self, index: ClientIndex) -> Option<&Client> {
        self.clients.get(index)
    }

    /// The keys; rotate with [`Provider::keys_mut`].
    pub fn keys(&self) -> &KeyRing {
        &self.keys
    }

    /// The keys, to rotate or retire one.
    pub fn keys_mut(&mut self) -> &mut KeyRing {
        &mut self.keys
    }

    /// Checks a client's credentials (RFC 6749 §2.3): `invalid_client` for an unknown client, a wrong or
    /// missing secret, or a public client sending a secret.
    pub fn authenticate(&self, creds: &ClientCredentials<'_>) -> Result<ClientIndex, OAuthError> {
        let (index, client) = self.clients.find(creds.client_id).ok_or(OAuthError::invalid_client("unknown client"))?;
        if !client.authenticate(creds.secret) {
            return Err(OAuthError::invalid_client("client authentication failed"));
        }
        Ok(index)
    }

    fn client_id(&self, index: ClientIndex) -> Result<&str, OAuthError> {
        self.clients.get(index).map(|c| c.id()).ok_or(OAuthError::invalid_client("unknown client"))
    }

    // ----- device authorization (RFC 8628 §3.1-3.2) -----

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
        let key = self.keys.current();
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
        best.map(|(slot, _)| slot)
            .ok_or(OAuthError::new(ErrorCode::TemporarilyUnavailable, "too many pending requests, retry later"))
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

    /// Writes the JSON body of a device authorization response.
    pub fn write_device_authorization(
        &self,
        auth: &DeviceAuthorization,
        out: &mut [u8],
    ) -> Result<usize, BufferTooSmall> {
        let shown = auth.user_code.display();
        let complete = self.verification_uri_complete(&auth.user_code);
        let body = DeviceAuthorizationBody {
            device_code: &auth.device_code,
            user_code: &shown,
            verification_uri: self.config.verification_uri,
            verification_uri_complete: complete.as_deref(),
            expires_in: auth.expires_in,
            interval: auth.interval,
        };
        to_slice(&body, out)
    }

    /// `verification_uri_complete` for a code, if enabled.
    pub fn verification_uri_complete(&self, code: &UserCode) -> Option<heapless::String<MAX_URI_LEN>> {
        if !self.config.verification_uri_complete {
            return None;
        }
        let uri = self.config.verification_uri;
        let mut s = heapless::String::new();
        s.push_str(uri).ok()?;
        s.push_str(if uri.contains('?') { "&user_code=" } else { "?user_code=" }).ok()?;
        s.push_str(&code.display()).ok()?;
        Some(s)
    }

    // ----- the verification page -----

    fn source_key(&self, source: &[u8]) -> [u8; 8] {
        let mac = self.keys.current().mac(Domain::Source, &[source]);
        let mut k = [0u8; 8];
        k.copy_from_slice(&mac[..8]);
        k
    }

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
        let g = self.grants.get_mut(slot).ok_or(ApproveError::InvalidCode)?;
        if !g.state.is_undecided() {
            return Err(ApproveError::AlreadyDecided);
        }
        if !granted.is_subset_of(g.scopes) {
            return Err(ApproveError::ScopeNotRequested);
        }
        g.scopes = granted;
        g.user = user;
        g.state = GrantState::Approved;
        self.touch();
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
        self.touch();
        self.info(slot)
    }

    // ----- the token endpoint (RFC 8628 §3.4-3.5, RFC 6749 §6) -----

    /// Handles a token request: polls a device code or rotates a refresh token.
    pub fn token(&mut self, now: u64, req: &TokenRequest<'_>) -> Result<TokenResponse, OAuthError> {
        let now = self.tick(now);
        let client = self.authenticate(&req.client)?;
        match req.grant {
            Grant::DeviceCode { device_code } => self.poll(now, client, device_code),
            Grant::RefreshToken { refresh_token, scope } => self.refresh(now, client, refresh_token, scope),
        }
    }

    /// One poll of a device code. The order of checks is the contract:
    ///
    /// 1. the MAC, under a key still in the ring and bound to this client, else `invalid_grant`;
    /// 2. the slot must hold the grant with this serial, else `invalid_grant` (stale or unknown);
    /// 3. expiry, in every state: `expired_token`;
    /// 4. the state: `access_denied`; tokens once approved; `invalid_grant` for a spent code (and its
    ///    token family is revoked, RFC 9700 §4.14); while undecided, the **slow_down rule**:
    ///    the first poll is never throttled; a poll sooner than `interval` seconds after the last
    ///    *accepted* poll gets `slow_down` and the grant's interval grows by [`SLOW_DOWN_STEP`];
    ///    the last accepted poll is not moved, so a device that waits the new interval gets through.
    fn poll(&mut self, now: u32, client: ClientIndex, device_code: &str) -> Result<TokenResponse, OAuthError> {
        let unknown = OAuthError::invalid_grant("device code not recognised");
        let claims = DeviceCodeClaims::decode(device_code, &self.keys, self.client_id(client)?).ok_or(unknown)?;
        let slot = usize::from(claims.slot);
        let g = *self.grants.get(slot).filter(|g| g.serial == claims.serial && g.client == client).ok_or(unknown)?;
        if g.is_expired(now) {
            return Err(OAuthError::new(ErrorCode::ExpiredToken, "device code expired"));
        }
        match g.state {
            GrantState::Pending | GrantState::Polling => {
                let gm = self.grants.get_mut(slot).ok_or(unknown)?;
                if g.state == GrantState::Polling && now < g.last_poll.saturating_add(u32::from(g.interval)) {
                    gm.interval = gm.interval.saturating_add(SLOW_DOWN_STEP);
                    return Err(OAuthError::new(ErrorCode::SlowDown, "polling too fast, interval increased by 5 s"));
                }
                gm.state = GrantState::Polling;
                gm.last_poll = now;
                Err(OAuthError::new(ErrorCode::AuthorizationPending, "the user has not yet approved"))
            }
            GrantState::Denied => Err(OAuthError::new(ErrorCode::AccessDenied, "the user denied the request")),
            GrantState::Exchanged => {
                self.revoke_serial(g.serial);
                Err(OAuthError::invalid_grant("device code already used; its tokens are revoked"))
            }
            GrantState::Approved => {
                let tokens = self.issue(now, client, g.serial, g.user, g.scopes)?;
                if let Some(gm) = self.grants.get_mut(slot) {
                    gm.state = GrantState::Exchanged;
                }
                self.touch();
                Ok(tokens)
            }
        }
    }

    /// Opens a token family for an approved grant and issues its first tokens.
    fn issue(
        &mut self,
        now: u32,
        client: ClientIndex,
        serial: u32,
        user: UserId,
        scopes: ScopeSet,
    ) -> Result<TokenResponse, OAuthError> {
        let refresh = self.clients.get(client).is_some_and(|c| c.refresh_tokens());
        let lifetime = if refresh { self.config.refresh_token_lifetime } else { self.config.access_token_lifetime };
        let slot = self
            .families
            .iter()
            .position(|f| f.is_none_or(|f| now >= f.expires_at))
            .ok_or(OAuthError::new(ErrorCode::TemporarilyUnavailable, "too many active grants, retry later"))?;
        let family =
            Family { serial, expires_at: now.saturating_add(lifetime), user, scopes, counter: 0, client, refresh };
        if let Some(f) = self.families.get_mut(slot) {
            *f = Some(family);
        }
        self.mint(now, slot, &family, scopes)
    }

    fn mint(&self, now: u32, slot: usize, family: &Family, scopes: ScopeSet) -> Result<TokenResponse, OAuthError> {
        let key = self.keys.current();
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
            .copied()
            .flatten()
            .filter(|f| f.serial == claims.serial && f.client == client)
            .ok_or(OAuthError::invalid_grant("refresh token revoked or expired"))?;
        if now >= family.expires_at {
            return Err(OAuthError::invalid_grant("refresh token expired"));
        }
        if claims.counter != family.counter {
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
        let rotated = Family { counter, expires_at: now.saturating_add(self.config.refresh_token_lifetime), ..family };
        if let Some(f) = self.families.get_mut(slot) {
            *f = Some(rotated);
        }
        self.touch();
        self.mint(now, slot, &rotated, scopes)
    }

    /// Writes the JSON body of a successful token response (RFC 6749 §5.1).
    pub fn write_token_response(&self, tokens: &TokenResponse, out: &mut [u8]) -> Result<usize, BufferTooSmall> {
        let body = TokenBody {
            access_token: &tokens.access_token,
            token_type: "Bearer",
            expires_in: tokens.expires_in,
            refresh_token: tokens.refresh_token.as_deref(),
            scope: ScopeStr(&self.scopes, tokens.scopes),
        };
        to_slice(&body, out)
    }

    // ----- protected resources (RFC 6750) -----

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
            .copied()
            .flatten()
            .is_some_and(|f| f.serial == claims.serial && f.client == claims.client && now < f.expires_at);
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
        let token = parse_bearer(authorization)?;
        let info = self.verify_access_token(now, token)?;
        if !info.scopes.contains(required) {
            return Err(BearerError::InsufficientScope);
        }
        Ok(info)
    }

    /// Writes a `WWW-Authenticate` value for a refused request (RFC 6750 §3).
    pub fn write_bearer_challenge<W: fmt::Write>(
        &self,
        realm: &str,
        err: BearerError,
        required: ScopeSet,
        out: &mut W,
    ) -> fmt::Result {
        write!(out, "Bearer realm=\"{realm}\"")?;
        if let Some(e) = err.oauth_error() {
            write!(out, ", error=\"{}\", error_description=\"{}\"", e.code, e.description)?;
        }
        if err == BearerError::InsufficientScope {
            write!(out, ", scope=\"{}\"", ScopeStr(&self.scopes, required))?;
        }
        Ok(())
    }

    // ----- introspection (RFC 7662) and revocation (RFC 7009) -----

    /// Introspects a token for an authenticated confidential client.
    pub fn introspect(&self, now: u64, query: &TokenQuery<'_>) -> Result<Introspection, OAuthError> {
        let index = self.authenticate(&query.client)?;
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
        let f = self.families.get(usize::from(claims.family_slot)).copied().flatten()?;
        (f.serial == claims.serial && f.client == claims.client && f.counter == claims.counter && now < f.expires_at)
            .then_some(TokenInfo {
                client: f.client,
                user: f.user,
                scopes: f.scopes,
                expires_at: f.expires_at,
                serial: f.serial,
            })
    }

    /// Writes the JSON body of an introspection response.
    pub fn write_introspection(&self, result: &Introspection, out: &mut [u8]) -> Result<usize, BufferTooSmall> {
        let (info, token_type) = match result {
            Introspection::Inactive => {
                return to_slice(
                    &IntrospectionBody {
                        active: false,
                        scope: None,
                        client_id: None,
                        sub: None,
                        token_type: None,
                        exp: None,
                    },
                    out,
                )
            }
            Introspection::Access(i) => (i, Some("Bearer")),
            Introspection::Refresh(i) => (i, None),
        };
        let mut sub = heapless::String::<10>::new();
        fmt::write(&mut sub, format_args!("{}", info.user)).map_err(|_| BufferTooSmall)?;
        let body = IntrospectionBody {
            active: true,
            scope: Some(ScopeStr(&self.scopes, info.scopes)),
            client_id: self.clients.get(info.client).map(|c| c.id()),
            sub: Some(&sub),
            token_type,
            exp: Some(info.expires_at),
        };
        to_slice(&body, out)
    }

    /// Revokes the token family of an access or refresh token (RFC 7009). A token that is invalid,
    /// expired, or issued to another client is ignored, as §2.2 requires (the answer is still 200).
    pub fn revoke(&mut self, query: &TokenQuery<'_>) -> Result<(), OAuthError> {
        let index = self.authenticate(&query.client)?;
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

    /// Revokes every token issued from the grant with this serial. Returns whether a family was live.
    pub fn revoke_serial(&mut self, serial: u32) -> bool {
        let mut found = false;
        for f in self.families.iter_mut() {
            if f.is_some_and(|f| f.serial == serial) {
                *f = None;
                found = true;
            }
        }
        if found {
            self.touch();
        }
        found
    }

    // ----- housekeeping -----

    /// Frees expired grants and token families (allocation also reclaims them lazily); returns how many.
    pub fn purge_expired(&mut self, now: u64) -> usize {
        let now = self.tick(now);
        let mut n = 0;
        for slot in 0..self.grants.capacity() {
            if self.grants.get(slot).is_some_and(|g| g.is_expired(now)) {
                self.grants.set(slot, None);
                n += 1;
            }
        }
        for f in self.families.iter_mut() {
            if f.is_some_and(|f| now >= f.expires_at) {
                *f = None;
                n += 1;
            }
        }
        n
    }

    /// Grants that have not expired.
    pub fn live_grants(&self, now: u64) -> usize {
        let now = self.seen(now);
        (0..self.grants.capacity()).filter(|&s| self.grants.get(s).is_some_and(|g| !g.is_expired(now))).count()
    }

    /// Token families that have not expired.
    pub fn live_families(&self, now: u64) -> usize {
        let now = self.seen(now);
        self.families.iter().flatten().filter(|f| now < f.expires_at).count()
    }

    /// An HMAC tag for the verification page's anti-CSRF token, bound to `session` (e.g. the user).
    pub fn csrf_tag(&self, session: &[u8]) -> [u8; crate::key::TAG_LEN] {
        self.keys.current().tag(Domain::Csrf, &[session])
    }

    /// Checks an anti-CSRF tag made by [`Provider::csrf_tag`] (with the current or previous key).
    pub fn verify_csrf_tag(&self, session: &[u8], tag: &[u8]) -> bool {
        self.keys.current().verify(Domain::Csrf, &[session], tag)
            || self.keys.previous().is_some_and(|k| k.verify(Domain::Csrf, &[session], tag))
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
