//! The device authorization server: the one owner of grants, token families and guess budgets.
//!
//! [`Provider`] turns typed requests into typed responses ([`crate::response`]). It never does I/O and
//! never reads a clock: every call takes `now` (seconds from any monotonic origin the caller keeps for
//! the life of its key, below 2^32) and, where it draws randomness, a `rand_core::CryptoRng`.
//!
//! One impl, split by area (each file is one RFC area):
//!
//! | file | area |
//! |---|---|
//! | `mod.rs` | the struct, construction, the clock, client authentication, housekeeping |
//! | `device.rs` | device authorization (RFC 8628 §3.1–3.2) |
//! | `verify.rs` | user-code verification: the verification page's look-up, approval, denial (§3.3) |
//! | `token.rs` | the token endpoint: polling and the `slow_down` rule (§3.4–3.5), refresh (RFC 6749 §6) |
//! | `bearer.rs` | protected resources: the bearer check (RFC 6750) |
//! | `introspect.rs` | introspection (RFC 7662) and revocation (RFC 7009) |
//! | `devices.rs` | the connected devices of a user: listing and revoking their token families |
//!
//! | seed (flask-oauth2-devices) | here |
//! |---|---|
//! | `clientgetter` | [`ClientRegistry`] ([`FixedClients`](crate::client::FixedClients)) |
//! | `authcodegetter` / `authcodesetter` | [`GrantStore`] ([`FixedGrants`](crate::grant::FixedGrants)) |
//! | `code_handler(authorize_url, activate_url, expires, interval)` | [`Config`] + [`Provider::device_authorization`] |
//! | `authorize_handler` | [`Provider::token`] |
//! | the activation page | [`Provider::user_code_info`], [`Provider::approve`], [`Provider::deny`] |
//! | `require_oauth(scope)` | [`Provider::check_bearer`] |

use core::cell::Cell;
use core::fmt;

use rand_core::CryptoRng;

use crate::client::{Client, ClientIndex, ClientRegistry};
use crate::error::{ErrorCode, OAuthError};
use crate::family::FamilyTable;
use crate::grant::{GrantState, GrantStore};
use crate::key::{Domain, KeyRing, ServerKey};
use crate::limit::{AttemptLimiter, LimitConfig, RateLimited};
use crate::request::ClientCredentials;
use crate::scope::ScopeRegistry;
use crate::storage::journal::Journal;

mod bearer;
mod device;
mod devices;
mod introspect;
mod token;
mod verify;

pub use bearer::{parse_bearer, BearerError};
pub use token::SLOW_DOWN_STEP;
pub use verify::ApproveError;

pub use crate::family::LAST_USED_GRANULARITY;

pub use crate::response::{DeviceAuthorization, DeviceInfo, GrantInfo, Introspection, TokenInfo, TokenResponse};

/// The application's identifier for a signed-in user (carried in tokens as `sub`).
pub type UserId = u32;

/// Longest `verification_uri_complete` the provider builds.
pub const MAX_URI_LEN: usize = 160;

/// Longest `verification_uri`: room is left for `?user_code=XXXX-XXXX`.
pub const MAX_VERIFICATION_URI_LEN: usize = MAX_URI_LEN - "?user_code=XXXX-XXXX".len();

/// A `verification_uri`, held by value so it can be set at run time (an address from DHCP).
pub type VerificationUri = heapless::String<MAX_VERIFICATION_URI_LEN>;

/// Server settings: the seed's `code_handler(authorize_url, activate_url, expires, interval)` and more.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// Where users go to enter their code (`verification_uri`). Set it with [`Config::new`] or
    /// [`Provider::set_verification_uri`]; a URI longer than [`MAX_VERIFICATION_URI_LEN`] is refused by
    /// [`Provider::init`].
    pub verification_uri: VerificationUri,
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
    /// Budgets for wrong user-code guesses (per source: the signed-in account).
    pub limits: LimitConfig,
    /// Budgets for failed client authentication and page sign-ins (per source: the peer address).
    pub auth_limits: LimitConfig,
    /// Most connected devices (token families, approvals waiting for their device included) one user
    /// may have at once; the next approval is refused on the page ([`ApproveError::AccountFull`]).
    pub families_per_user: u16,
    /// An undecided request whose device has not polled for this many seconds is abandoned: its slot
    /// may be given to a new request when the table is full (see [`crate::policy`]).
    pub abandon_after: u32,
}

impl Config {
    /// The defaults with no `verification_uri` yet: 600 s codes, 5 s interval, 1 h access tokens, 30 d
    /// refresh tokens. `const`, so a provider can be built in a `static`.
    pub const DEFAULT: Self = Self {
        verification_uri: heapless::String::new(),
        verification_uri_complete: true,
        device_code_lifetime: 600,
        interval: 5,
        access_token_lifetime: 3600,
        refresh_token_lifetime: 30 * 24 * 3600,
        limits: LimitConfig::USER_CODES,
        auth_limits: LimitConfig::AUTHENTICATION,
        families_per_user: 16,
        abandon_after: 120,
    };

    /// The defaults with this `verification_uri`. A URI that does not fit is left empty, which
    /// [`Provider::init`] refuses ([`ConfigError::VerificationUri`]).
    pub fn new(verification_uri: &str) -> Self {
        let mut config = Self::DEFAULT;
        if config.verification_uri.push_str(verification_uri).is_err() {
            config.verification_uri.clear();
        }
        config
    }
}

impl Default for Config {
    fn default() -> Self {
        Self::DEFAULT
    }
}

/// Why a configuration was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[non_exhaustive]
pub enum ConfigError {
    /// `verification_uri` is empty or longer than [`MAX_VERIFICATION_URI_LEN`].
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

/// How many grant serials one durable change leases (see the `serial_lease` field).
pub const SERIAL_LEASE: u32 = 1024;

/// `now` in the provider's 32-bit seconds (saturating).
pub(crate) fn secs(now: u64) -> u32 {
    u32::try_from(now).unwrap_or(u32::MAX)
}

/// The device authorization server.
///
/// `C` finds clients, `G` stores pending grants, `F` is the number of token families (approved grants
/// whose tokens are still alive), `S` the number of rate-limit sources tracked at once.
pub struct Provider<C, G, const F: usize, const S: usize> {
    config: Config,
    keys: KeyRing,
    scopes: ScopeRegistry,
    clients: C,
    grants: G,
    families: FamilyTable<F>,
    limiter: AttemptLimiter<S>,
    auth_limiter: AttemptLimiter<S>,
    next_serial: u32,
    /// Serials below this one may have been handed out: what a snapshot saves as the next serial, so
    /// that grants issued after the last save (undecided grants are not saved) never have their
    /// serials issued again after a reboot. Renewed, with a durable change, every [`SERIAL_LEASE`].
    serial_lease: u32,
    /// The latest `now` seen: time never goes backwards for the provider (see [`Provider::clock`]).
    clock: Cell<u32>,
    /// Bumped on every change a snapshot must capture (see [`Provider::durable_version`]).
    durable: u32,
    /// Which records changed since the last [`Provider::persist`] (the record store's unit of writing).
    journal: Journal,
}

impl<C, G, const F: usize, const S: usize> fmt::Debug for Provider<C, G, F, S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Provider").field("config", &self.config).field("keys", &self.keys).finish_non_exhaustive()
    }
}

/// The durable tables, as `snapshot` and `fuzzing` see them: the only view of the provider's state
/// outside this module.
pub(crate) struct Tables<'p, G, const F: usize> {
    pub(crate) grants: &'p mut G,
    pub(crate) families: &'p mut FamilyTable<F>,
    pub(crate) next_serial: &'p mut u32,
    pub(crate) serial_lease: &'p mut u32,
    pub(crate) clock: &'p Cell<u32>,
}

impl<C, G, const F: usize, const S: usize> Provider<C, G, F, S> {
    /// A provider with empty tables and no key yet: call [`Provider::init`] before serving (until
    /// then every request that needs the key answers `server_error` and every code or token is
    /// refused). `const`, so on a microcontroller the provider can live in a `static` (for example an
    /// embassy `ConstStaticCell`) and start-up never builds it on the stack:
    ///
    /// ```
    /// use oauth2_devices::prelude::*;
    /// # use rand_core::SeedableRng;
    /// # let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(1);
    /// type Gateway = Provider<FixedClients<2>, FixedGrants<8>, 8, 8>;
    /// const _BUILT_AT_COMPILE_TIME: Gateway = Provider::new(FixedClients::new(), FixedGrants::new());
    /// let mut provider: Gateway = Provider::new(FixedClients::new(), FixedGrants::new());
    /// provider.clients_mut().add(Client::public("tv", "Living-room TV").unwrap()).unwrap();
    /// static SCOPES: &[&str] = &["profile"];
    /// provider
    ///     .init(Config::new("http://gw.local/activate"), ServerKey::new(1, &[7; 32]), ScopeRegistry::new(SCOPES).unwrap(), &mut rng)
    ///     .unwrap();
    /// ```
    pub const fn new(clients: C, grants: G) -> Self {
        Self {
            config: Config::DEFAULT,
            keys: KeyRing::EMPTY,
            scopes: ScopeRegistry::EMPTY,
            clients,
            grants,
            families: FamilyTable::new(),
            limiter: AttemptLimiter::new(),
            auth_limiter: AttemptLimiter::new(),
            next_serial: 0,
            serial_lease: 0,
            clock: Cell::new(0),
            durable: 0,
            journal: Journal::new(),
        }
    }

    /// The client registry, to register clients before (or after) [`Provider::init`].
    pub fn clients_mut(&mut self) -> &mut C {
        &mut self.clients
    }
}

impl<C: ClientRegistry, G: GrantStore, const F: usize, const S: usize> Provider<C, G, F, S> {
    /// Configures a provider made by [`Provider::new`], in place: settings, server key and scopes. The
    /// serial counter starts at a random value so that codes issued before a restart (without a
    /// snapshot) are very unlikely to match new grants. On error nothing changes.
    pub fn init<R: CryptoRng + ?Sized>(
        &mut self,
        config: Config,
        key: ServerKey,
        scopes: ScopeRegistry,
        rng: &mut R,
    ) -> Result<(), ConfigError> {
        if config.verification_uri.is_empty() {
            return Err(ConfigError::VerificationUri);
        }
        if config.device_code_lifetime == 0
            || config.interval == 0
            || config.access_token_lifetime == 0
            || config.refresh_token_lifetime == 0
            || config.limits.window == 0
            || config.auth_limits.window == 0
            || config.abandon_after == 0
        {
            return Err(ConfigError::ZeroDuration);
        }
        if self.grants.capacity() > 1 << 16 || F > 1 << 16 {
            return Err(ConfigError::Capacity);
        }
        self.config = config;
        self.keys = KeyRing::new(key);
        self.scopes = scopes;
        self.next_serial = rng.next_u32();
        self.serial_lease = self.next_serial;
        Ok(())
    }

    /// [`Provider::new`] and [`Provider::init`] in one call, returning the provider by value: for hosts
    /// and tests, where a few KiB on the stack do not matter.
    pub fn build<R: CryptoRng + ?Sized>(
        config: Config,
        key: ServerKey,
        scopes: ScopeRegistry,
        clients: C,
        grants: G,
        rng: &mut R,
    ) -> Result<Self, ConfigError> {
        let mut provider = Self::new(clients, grants);
        provider.init(config, key, scopes, rng)?;
        Ok(provider)
    }

    /// Changes `verification_uri` at run time (for example once DHCP gave the gateway its address).
    pub fn set_verification_uri(&mut self, uri: &str) -> Result<(), ConfigError> {
        let mut new = VerificationUri::new();
        new.push_str(uri).map_err(|_| ConfigError::VerificationUri)?;
        if new.is_empty() {
            return Err(ConfigError::VerificationUri);
        }
        self.config.verification_uri = new;
        Ok(())
    }

    /// Advances the provider's clock to `now` and returns it; a `now` behind the clock is ignored, so a
    /// clock that jumps backwards never makes an expired code or token valid again.
    fn tick(&mut self, now: u64) -> u32 {
        self.seen(now)
    }

    /// `now` as seen by the provider: never behind the latest time it was given, on every path. The
    /// read-only paths (the bearer check, introspection) move the clock forward too, through a `Cell`:
    /// an access token found expired stays expired even if a later call brings an earlier `now`. A
    /// clock change alone is not a durable change (no snapshot is due for it).
    fn seen(&self, now: u64) -> u32 {
        let now = self.clock.get().max(secs(now));
        self.clock.set(now);
        now
    }

    /// The provider's clock: the latest `now` it was given (persisted in snapshots).
    pub fn clock(&self) -> u32 {
        self.clock.get()
    }

    /// A counter bumped by every change a snapshot must capture: approved, denied and exchanged grants,
    /// opened, rotated and revoked token families, and a new lease of serials every
    /// [`SERIAL_LEASE`] device authorizations. Save when it differs from the version of the last
    /// snapshot; asking for codes and polling do not bump it, so they cost no flash writes.
    pub fn durable_version(&self) -> u32 {
        self.durable
    }

    /// A durable change the journal cannot name slot by slot: everything is written at the next persist.
    fn touch(&mut self) {
        self.durable = self.durable.wrapping_add(1);
        self.journal.everything();
    }

    /// A durable change of one grant slot.
    fn touch_grant(&mut self, slot: usize) {
        self.durable = self.durable.wrapping_add(1);
        self.journal.grant(slot);
    }

    /// A durable change of one family slot.
    fn touch_family(&mut self, slot: usize) {
        self.durable = self.durable.wrapping_add(1);
        self.journal.family(slot);
    }

    /// A durable change of a grant slot and of the family slot of `serial` (approval, exchange).
    fn touch_serial(&mut self, grant_slot: usize, serial: u32) {
        self.touch_grant(grant_slot);
        match self.families.find_serial(serial) {
            Some(slot) => self.journal.family(slot),
            None => self.journal.everything(),
        }
    }

    /// The change journal, for [`Provider::persist`].
    pub(crate) fn journal(&self) -> &Journal {
        &self.journal
    }

    /// The change journal, to clear after a persist or to mark a restored state.
    pub(crate) fn journal_mut(&mut self) -> &mut Journal {
        &mut self.journal
    }

    /// The keys and the durable tables at once, for a load that checks frames while it fills the tables.
    pub(crate) fn keys_and_tables(&mut self) -> (&KeyRing, Tables<'_, G, F>) {
        (
            &self.keys,
            Tables {
                grants: &mut self.grants,
                families: &mut self.families,
                next_serial: &mut self.next_serial,
                serial_lease: &mut self.serial_lease,
                clock: &self.clock,
            },
        )
    }

    /// The durable tables, for `snapshot` and `fuzzing`. A caller that changes them calls
    /// [`Provider::touched`] after.
    pub(crate) fn tables(&mut self) -> Tables<'_, G, F> {
        self.keys_and_tables().1
    }

    /// The durable tables, read-only.
    pub(crate) fn grants(&self) -> &G {
        &self.grants
    }

    /// The family table, read-only.
    pub(crate) fn family_table(&self) -> &FamilyTable<F> {
        &self.families
    }

    /// The serial the next grant gets.
    #[cfg_attr(not(feature = "fuzzing"), allow(dead_code))]
    pub(crate) fn next_serial(&self) -> u32 {
        self.next_serial
    }

    /// The end of the serials leased so far: what a snapshot saves.
    pub(crate) fn serial_lease(&self) -> u32 {
        self.serial_lease
    }

    /// The serial for a new grant; takes a new lease (a durable change) when the last one is used up.
    fn take_serial(&mut self) -> u32 {
        let serial = self.next_serial;
        self.next_serial = serial.wrapping_add(1);
        if serial == self.serial_lease {
            self.serial_lease = serial.wrapping_add(SERIAL_LEASE);
            self.durable = self.durable.wrapping_add(1);
            self.journal.header();
        }
        serial
    }

    /// Marks the durable state as changed by a [`Provider::tables`] caller.
    pub(crate) fn touched(&mut self) {
        self.touch();
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
    /// missing secret, or a public client sending a secret. Each failure is charged to the credentials'
    /// `source` in the authentication budget ([`Config::auth_limits`]); a source past its back-off is
    /// refused with 429 before its credentials are looked at. A client is never locked out as such:
    /// the budget belongs to where the attempts come from.
    pub fn authenticate(&mut self, now: u64, creds: &ClientCredentials<'_>) -> Result<ClientIndex, OAuthError> {
        let now = self.tick(now);
        let source = self.source_key(creds.source);
        let limits = self.config.auth_limits;
        self.auth_limiter.admit(now, &source, &limits).map_err(|e| {
            OAuthError::new(ErrorCode::Throttled, "too many failed authentications, retry later")
                .retry_after(e.retry_after)
        })?;
        let found = self.clients.find(creds.client_id).map(|(i, c)| (i, c.authenticate(creds.secret)));
        match found {
            Some((index, true)) => Ok(index),
            failed => {
                self.auth_limiter.record_failure(now, &source, &limits);
                Err(OAuthError::invalid_client(if failed.is_none() {
                    "unknown client"
                } else {
                    "client authentication failed"
                }))
            }
        }
    }

    /// A sign-in on the verification or devices page is about to be checked for `source` (the peer):
    /// `Err` with the seconds to wait if the source is past its back-off ([`Config::auth_limits`]).
    pub fn admit_sign_in(&mut self, now: u64, source: &[u8]) -> Result<(), RateLimited> {
        let now = self.tick(now);
        let source = self.source_key(source);
        let limits = self.config.auth_limits;
        self.auth_limiter.admit(now, &source, &limits)
    }

    /// A sign-in from `source` failed: charged to the same budget as client authentication.
    pub fn record_sign_in_failure(&mut self, now: u64, source: &[u8]) {
        let now = self.tick(now);
        let source = self.source_key(source);
        let limits = self.config.auth_limits;
        self.auth_limiter.record_failure(now, &source, &limits);
    }

    /// The keyed hash a source is tracked under (every source maps to zeros before `init`, when there
    /// is nothing to guess anyway).
    fn source_key(&self, source: &[u8]) -> [u8; 8] {
        let mut k = [0u8; 8];
        if let Some(key) = self.keys.current() {
            if let Some(mac) = key.mac(Domain::Source, &[source]).get(..8) {
                k.copy_from_slice(mac);
            }
        }
        k
    }

    /// The key new codes and tokens are signed with; `server_error` before [`Provider::init`].
    fn signing_key(&self) -> Result<&ServerKey, OAuthError> {
        self.keys.current().ok_or(OAuthError::new(ErrorCode::ServerError, "the provider is not initialised"))
    }

    fn client_id(&self, index: ClientIndex) -> Result<&str, OAuthError> {
        self.clients.get(index).map(|c| c.id()).ok_or(OAuthError::invalid_client("unknown client"))
    }

    /// Revokes every token issued from the grant with this serial, and withdraws its approval if the
    /// device has not exchanged it yet (its next poll gets `access_denied`). Returns whether a family
    /// (a reservation included, expired or not) was in the table.
    pub fn revoke_serial(&mut self, serial: u32) -> bool {
        for (slot, _) in self.families.iter().filter(|(_, f)| f.serial == serial) {
            self.journal.family(slot);
        }
        let found = self.families.revoke_serial(serial);
        if found {
            self.withdraw_approval(serial);
            self.durable = self.durable.wrapping_add(1);
        }
        found
    }

    /// An approved grant of this serial that was not exchanged becomes denied: its reservation is
    /// gone, so it must not take a slot at its exchange.
    fn withdraw_approval(&mut self, serial: u32) {
        for s in 0..self.grants.capacity() {
            if let Some(g) = self.grants.get_mut(s).filter(|g| g.serial == serial && g.state == GrantState::Approved) {
                g.state = GrantState::Denied;
                self.journal.grant(s);
            }
        }
    }

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
        n + self.families.purge(now)
    }

    /// Grants that have not expired.
    pub fn live_grants(&self, now: u64) -> usize {
        let now = self.seen(now);
        (0..self.grants.capacity()).filter(|&s| self.grants.get(s).is_some_and(|g| !g.is_expired(now))).count()
    }

    /// Token families that have not expired.
    pub fn live_families(&self, now: u64) -> usize {
        let now = self.seen(now);
        self.families.iter().filter(|(_, f)| f.is_live(now)).count()
    }
}
