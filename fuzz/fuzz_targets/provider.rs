//! The provider's state machine: an arbitrary sequence of operations against the small standard provider
//! of `oauth2_devices::fuzzing` (4 clients, 4 grant slots, 4 token families, 4 rate-limit sources),
//! checked step by step against a model kept here.
//!
//! The model predicts the exact outcome of every call from the crate's documented rules (slot
//! allocation, expiry, the grant state machine, the slow_down rule, refresh rotation and replay, key
//! rotation, snapshots), and after every operation the provider's tables must equal the model's. On top
//! of that, the safety properties are asserted by name where they apply:
//! - no two grants in the table share a user code;
//! - a device code yields tokens at most once, never for a denied grant, never at or after its expiry;
//! - a forged or altered code or token is never accepted;
//! - after a refresh-token or device-code replay, the family's access tokens fail with `Revoked`;
//! - `live_grants` and `live_families` never exceed the capacities;
//! - wrong user-code guesses stay within twice the per-source and global budgets in any window, and a
//!   refusal happens only when a budget or the source table is actually spent;
//! - the durable version moves exactly when durable state changes (polling never moves it).
#![no_main]

use arbitrary::{Arbitrary, Unstructured};
use libfuzzer_sys::fuzz_target;
use oauth2_devices::code::{DeviceCodeClaims, UserCode, USER_CODE_ALPHABET};
use oauth2_devices::fuzzing::{
    self, family_table, grant_table, next_serial, server_key, FuzzProvider, CLIENTS, CLIENT_SECRET, SCOPES,
};
use oauth2_devices::grant::GrantState;
use oauth2_devices::key::KeyRing;
use oauth2_devices::prelude::*;
use oauth2_devices::provider::{BearerError, GrantInfo, Introspection, TokenInfo, TokenResponse};
use oauth2_devices::snapshot::{max_snapshot_len, Restored, SERIAL_RESTORE_GAP};
use oauth2_devices::token::{AccessClaims, RefreshClaims};
use rand_core::SeedableRng;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::OnceLock;

const GRANT_SLOTS: usize = 4;
const FAMILY_SLOTS: usize = 4;
const SOURCE_SLOTS: usize = 4;
const MAX_OPS: usize = 48;
const UNKNOWN_CLIENT: &str = "nobody";

// ----- the input -----

#[derive(Debug, Arbitrary)]
struct Input {
    seed: u64,
    start: u32,
    ops: Vec<Op>,
}

/// How a client presents itself: `Right` is what its registration expects.
#[derive(Debug, Clone, Copy, Arbitrary)]
enum Creds {
    Right,
    NoSecret,
    WrongSecret,
}

#[derive(Debug, Clone, Arbitrary)]
enum ScopeArg {
    /// No `scope` parameter.
    Default,
    /// Registered names (bits of `SCOPES`) joined by spaces.
    Names(u8),
    /// Anything.
    Raw(String),
}

#[derive(Debug, Clone, Arbitrary)]
enum CodeRef {
    /// A grant's user code, spelled one of several accepted ways.
    Real { grant: u8, style: u8 },
    /// A grant's user code with one letter changed to another alphabet letter.
    Mutated { grant: u8, pos: u8, letter: u8 },
    /// Anything.
    Raw(String),
}

#[derive(Debug, Clone, Copy, Arbitrary)]
enum Mutation {
    None,
    Replace { pos: u8, byte: u8 },
    Truncate(u8),
    Append(u8),
}

/// Which token of a family: its access tokens or its refresh tokens, newest first.
#[derive(Debug, Clone, Copy, Arbitrary)]
enum Which {
    Access(u8),
    Refresh(u8),
}

#[derive(Debug, Clone, Copy, Arbitrary)]
enum HeaderStyle {
    Standard,
    OddSpacing,
    Missing,
    OtherScheme,
    Empty,
}

#[derive(Debug, Clone, Arbitrary)]
enum Op {
    /// A whole device flow in one step (authorize, approve the real code, poll), to fill the tables.
    Flow {
        client: u8,
        user: u8,
    },
    Authorize {
        client: u8,
        creds: Creds,
        scope: ScopeArg,
    },
    Info {
        code: CodeRef,
        source: u8,
    },
    Approve {
        code: CodeRef,
        source: u8,
        user: u8,
        granted: u8,
    },
    Deny {
        code: CodeRef,
        source: u8,
    },
    Poll {
        grant: u8,
        client: Option<u8>,
        creds: Creds,
        mutation: Mutation,
    },
    Refresh {
        family: u8,
        token: u8,
        client: Option<u8>,
        creds: Creds,
        scope: ScopeArg,
        mutation: Mutation,
    },
    Revoke {
        family: u8,
        which: Which,
        client: Option<u8>,
        creds: Creds,
        mutation: Mutation,
    },
    Bearer {
        family: u8,
        token: u8,
        required: u8,
        header: HeaderStyle,
        mutation: Mutation,
    },
    Introspect {
        family: u8,
        which: Which,
        client: Option<u8>,
        creds: Creds,
        mutation: Mutation,
    },
    Purge,
    Wait(u8),
    Jump(u32),
    Back(u8),
    SaveRestore {
        behind: u8,
    },
    /// A real snapshot, altered (edits, cut, extension), re-signed or not, restored into a fresh provider.
    ForgeSnapshot {
        edits: Vec<(u16, u8)>,
        cut: u8,
        extend: Vec<u8>,
        resign: bool,
        behind: u8,
    },
    Rotate {
        id: u8,
    },
    Retire,
    Csrf {
        session: u8,
        other: u8,
    },
}

// ----- the model -----

/// A key by id and secret generation: a token verifies iff the ring holds exactly this key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct KeyRef {
    id: u8,
    generation: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum MState {
    Undecided,
    Approved { user: u32, scopes: u32 },
    Denied,
    Exchanged,
}

#[derive(Debug, Clone)]
struct MGrant {
    device_code: String,
    user_code: UserCode,
    key: KeyRef,
    client: u8,
    slot: usize,
    serial: u32,
    requested: u32,
    expires_at: u32,
    in_table: bool,
    state: MState,
    polled: bool,
    last_poll: u32,
    interval: u16,
    /// Tokens were issued for this grant (at most once, ever).
    issued: bool,
    /// The user denied it (no token may ever be issued).
    denied: bool,
}

#[derive(Debug, Clone)]
struct MAccess {
    text: String,
    key: KeyRef,
    expires_at: u32,
    scopes: u32,
}

#[derive(Debug, Clone)]
struct MFamily {
    slot: usize,
    serial: u32,
    client: u8,
    user: u32,
    scopes: u32,
    expires_at: u32,
    in_table: bool,
    refresh: bool,
    counter: u32,
    /// Refresh tokens by counter.
    refresh_tokens: Vec<(String, KeyRef)>,
    access: Vec<MAccess>,
}

struct Failure {
    source: u8,
    key: KeyRef,
    at: u32,
    /// Bumped when a restore sets the clock back: windows of an older epoch can revive when the clock
    /// catches up with them again, but budgets are only promised within one epoch.
    epoch: u32,
}

struct Harness {
    p: FuzzProvider,
    rng: rand_chacha::ChaCha20Rng,
    /// The same keys as the provider's, built independently.
    ring: KeyRing,
    current: KeyRef,
    previous: Option<KeyRef>,
    generations: u32,
    /// The time passed to the next call.
    t: u64,
    /// The provider's clock as the model sees it.
    clock: u32,
    grants: Vec<MGrant>,
    families: Vec<MFamily>,
    failures: Vec<Failure>,
    epoch: u32,
    csrf: Vec<(u8, [u8; 16], KeyRef)>,
    durable: u32,
    stats: Stats,
}

/// What an input reached, printed when `PROVIDER_FUZZ_STATS` is set (to judge the corpus).
#[derive(Debug, Default)]
struct Stats {
    issued: u32,
    refreshed: u32,
    refresh_replays: u32,
    code_replays: u32,
    revoked: u32,
    bearer_ok: u32,
    approved: u32,
    denied: u32,
    slow_down: u32,
    rate_limited: u32,
    families_full: u32,
    grants_full: u32,
    restored: u32,
    restored_behind: u32,
    rotated: u32,
    forged_refused: u32,
    forged_accepted: u32,
}

fn secs(t: u64) -> u32 {
    u32::try_from(t).unwrap_or(u32::MAX)
}

fn client_id(index: u8) -> &'static str {
    CLIENTS.get(usize::from(index)).map_or(UNKNOWN_CLIENT, |c| c.id)
}

fn creds_for(index: u8, creds: Creds) -> (ClientCredentials<'static>, bool) {
    let spec = CLIENTS.get(usize::from(index));
    let confidential = spec.is_some_and(|s| s.confidential);
    let secret = match (confidential, creds) {
        (true, Creds::Right) => Some(CLIENT_SECRET),
        (_, Creds::WrongSecret) => Some(if confidential { "wrong" } else { CLIENT_SECRET }),
        _ => None,
    };
    let ok = spec.is_some() && (confidential == secret.is_some()) && !matches!(creds, Creds::WrongSecret);
    let method = if secret.is_some() { AuthMethod::ClientSecretPost } else { AuthMethod::None };
    (ClientCredentials { client_id: client_id(index), secret, method }, ok)
}

fn scope_text(arg: &ScopeArg) -> Option<String> {
    match arg {
        ScopeArg::Default => None,
        ScopeArg::Names(bits) => Some(
            SCOPES
                .iter()
                .enumerate()
                .filter(|(i, _)| bits & (1 << i) != 0)
                .map(|(_, s)| *s)
                .collect::<Vec<_>>()
                .join(" "),
        ),
        ScopeArg::Raw(s) => Some(s.clone()),
    }
}

/// RFC 6749 §3.3 against the registry, stated independently of `scope.rs`.
fn parse_scope(s: &str) -> Option<u32> {
    if s.is_empty() {
        return Some(0);
    }
    s.split(' ').try_fold(0, |bits, name| SCOPES.iter().position(|n| *n == name).map(|i| bits | 1u32 << i))
}

/// The user-code rule of `code.rs`, stated independently.
fn normalise(input: &str) -> Option<[u8; 8]> {
    let kept: Vec<u8> = input.bytes().filter(|&b| b != b'-' && b != b' ').map(|b| b.to_ascii_uppercase()).collect();
    if kept.len() == 8 && kept.iter().all(|b| USER_CODE_ALPHABET.contains(b)) {
        kept.try_into().ok()
    } else {
        None
    }
}

fn mutate(text: &str, m: Mutation) -> String {
    let mut bytes = text.as_bytes().to_vec();
    match m {
        Mutation::None => {}
        Mutation::Replace { pos, byte } => {
            if !bytes.is_empty() {
                let i = usize::from(pos) % bytes.len();
                bytes[i] = byte;
            }
        }
        Mutation::Truncate(n) => bytes.truncate(bytes.len().saturating_sub(1 + usize::from(n) % 4)),
        Mutation::Append(b) => bytes.push(b),
    }
    String::from_utf8_lossy(&bytes).into_owned()
}

fn nth_back<T>(v: &[T], n: u8) -> Option<&T> {
    if v.is_empty() {
        None
    } else {
        v.get(v.len() - 1 - usize::from(n) % v.len())
    }
}

fn state_of(g: &MGrant) -> GrantState {
    match g.state {
        MState::Undecided if g.polled => GrantState::Polling,
        MState::Undecided => GrantState::Pending,
        MState::Approved { .. } => GrantState::Approved,
        MState::Denied => GrantState::Denied,
        MState::Exchanged => GrantState::Exchanged,
    }
}

fn scopes_of(g: &MGrant) -> u32 {
    match g.state {
        MState::Approved { scopes, .. } => scopes,
        // After approval the table keeps the granted scopes; so does the model, in `requested`.
        _ => g.requested,
    }
}

fn code_of<T>(r: &Result<T, OAuthError>) -> Result<(), ErrorCode> {
    r.as_ref().map(|_| ()).map_err(|e| e.code)
}

impl Harness {
    fn new(input: &Input) -> Self {
        let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(input.seed);
        let p = fuzzing::provider(&mut rng).expect("the standard provider builds");
        let current = KeyRef { id: fuzzing::KEY_ID, generation: 0 };
        let t = u64::from(input.start);
        let durable = p.durable_version();
        Harness {
            p,
            rng,
            ring: KeyRing::new(server_key(current.id, 0)),
            current,
            previous: None,
            generations: 1,
            t,
            clock: 0,
            grants: Vec::new(),
            families: Vec::new(),
            failures: Vec::new(),
            epoch: 0,
            csrf: Vec::new(),
            durable,
            stats: Stats::default(),
        }
    }

    fn valid(&self, k: KeyRef) -> bool {
        self.current == k || self.previous == Some(k)
    }

    /// `now` as the provider sees it, without advancing its clock.
    fn seen(&self) -> u32 {
        self.clock.max(secs(self.t))
    }

    /// `now` as the provider sees it, advancing its clock (the ops that tick).
    fn tick(&mut self) -> u32 {
        self.clock = self.seen();
        self.clock
    }

    fn bump(&mut self) {
        self.durable = self.durable.wrapping_add(1);
    }

    fn live_family(&self, f: &MFamily, now: u32) -> bool {
        f.in_table && now < f.expires_at
    }

    /// The family that holds a serial in the table (the model's view).
    fn family_of_serial(&mut self, serial: u32) -> Option<&mut MFamily> {
        self.families.iter_mut().find(|f| f.in_table && f.serial == serial)
    }

    /// `revoke_serial`: returns whether a family was in the table.
    fn revoke_serial(&mut self, serial: u32) -> bool {
        match self.family_of_serial(serial) {
            Some(f) => {
                f.in_table = false;
                true
            }
            None => false,
        }
    }

    fn user_code_input(&self, code: &CodeRef) -> String {
        match code {
            CodeRef::Real { grant, style } => match nth_back(&self.grants, *grant) {
                Some(g) => {
                    let shown = g.user_code.display();
                    match style % 5 {
                        0 => shown.to_string(),
                        1 => shown.to_ascii_lowercase(),
                        2 => shown.replace('-', ""),
                        3 => format!(" {} ", shown.replace('-', " ")),
                        _ => shown.chars().flat_map(|c| [c, '-']).collect(),
                    }
                }
                None => "BCDF-GHJK".into(),
            },
            CodeRef::Mutated { grant, pos, letter } => match nth_back(&self.grants, *grant) {
                Some(g) => {
                    let mut bytes = *g.user_code.as_bytes();
                    let i = usize::from(*pos) % bytes.len();
                    bytes[i] = USER_CODE_ALPHABET[usize::from(*letter) % USER_CODE_ALPHABET.len()];
                    String::from_utf8_lossy(&bytes).into_owned()
                }
                None => "XXXX-XXXX".into(),
            },
            CodeRef::Raw(s) => s.clone(),
        }
    }

    // ----- the checks after every operation -----

    fn check_tables(&self) {
        let now = self.seen();
        assert_eq!(self.p.clock(), self.clock, "provider clock");
        assert_eq!(self.p.durable_version(), self.durable, "durable version");

        let table: Vec<_> = grant_table(&self.p).collect();
        for (i, (_, a)) in table.iter().enumerate() {
            for (_, b) in &table[..i] {
                assert_ne!(a.user_code, b.user_code, "two grants share a user code: {table:?}");
            }
        }
        let model: Vec<&MGrant> = self.grants.iter().filter(|g| g.in_table).collect();
        assert_eq!(table.len(), model.len(), "grant table {table:?} vs model {model:?}");
        for (slot, g) in &table {
            let m = model.iter().find(|m| m.slot == *slot).unwrap_or_else(|| panic!("slot {slot} not in model"));
            assert_eq!(g.serial, m.serial, "slot {slot}");
            assert_eq!(g.user_code, m.user_code, "slot {slot}");
            assert_eq!(g.client, m.client, "slot {slot}");
            assert_eq!(g.expires_at, m.expires_at, "slot {slot}");
            assert_eq!(g.state, state_of(m), "slot {slot}: {g:?} vs {m:?}");
            assert_eq!(g.scopes.bits(), scopes_of(m), "slot {slot}: {g:?} vs {m:?}");
            assert_eq!(g.interval, m.interval, "slot {slot}");
            assert_eq!(g.last_poll, m.last_poll, "slot {slot}");
            if let MState::Approved { user, .. } = m.state {
                assert_eq!(g.user, user);
            }
        }

        let table: Vec<_> = family_table(&self.p).collect();
        let model: Vec<&MFamily> = self.families.iter().filter(|f| f.in_table).collect();
        assert_eq!(table.len(), model.len(), "family table {table:?} vs model {model:?}");
        for f in &table {
            let m = model
                .iter()
                .find(|m| m.slot == f.slot)
                .unwrap_or_else(|| panic!("family slot {} not in model", f.slot));
            assert_eq!(
                (f.serial, f.expires_at, f.user, f.scopes.bits(), f.counter, f.client, f.refresh),
                (m.serial, m.expires_at, m.user, m.scopes, m.counter, m.client, m.refresh),
                "family slot {}",
                f.slot
            );
        }

        let live_grants = self.grants.iter().filter(|g| g.in_table && now < g.expires_at).count();
        assert_eq!(self.p.live_grants(u64::from(now)), live_grants);
        assert!(live_grants <= GRANT_SLOTS);
        let live_families = self.families.iter().filter(|f| self.live_family(f, now)).count();
        assert_eq!(self.p.live_families(u64::from(now)), live_families);
        assert!(live_families <= FAMILY_SLOTS);
    }

    /// Every recent access token: exactly the predicted bearer outcome.
    fn sweep_bearer(&self) {
        let mut checked = 0;
        for f in self.families.iter().rev() {
            for a in f.access.iter().rev().take(2) {
                self.check_known_bearer(f, a, 0, Some(&format!("Bearer {}", a.text)));
                checked += 1;
            }
            if checked >= 16 {
                break;
            }
        }
    }

    fn expected_bearer(&self, f: &MFamily, a: &MAccess, required: u32) -> Result<TokenInfo, BearerError> {
        let now = self.seen();
        if !self.valid(a.key) {
            return Err(BearerError::Invalid);
        }
        if now >= a.expires_at {
            return Err(BearerError::Expired);
        }
        if !f.in_table || now >= f.expires_at {
            return Err(BearerError::Revoked);
        }
        if required & !a.scopes != 0 {
            return Err(BearerError::InsufficientScope);
        }
        Ok(TokenInfo {
            client: f.client,
            user: f.user,
            scopes: ScopeSet::from_bits(a.scopes),
            expires_at: a.expires_at,
            serial: f.serial,
        })
    }

    fn check_known_bearer(&self, f: &MFamily, a: &MAccess, required: u32, header: Option<&str>) {
        let got = self.p.check_bearer(self.t, header, ScopeSet::from_bits(required));
        let want = self.expected_bearer(f, a, required);
        if got.is_ok() {
            BEARER_OK.fetch_add(1, Ordering::Relaxed);
        }
        assert_eq!(got, want, "bearer {header:?} at {} of {f:?}", self.seen());
        if let Err(e) = got {
            let mut out = oauth2_devices::heapless::String::<512>::new();
            e.write_challenge("gw", ScopeSet::from_bits(required), self.p.scopes(), &mut out).expect("fits");
        }
        assert_eq!(self.p.verify_access_token(self.t, &a.text), self.expected_bearer(f, a, 0));
    }

    /// After a replay revoked `serial`: none of the family's access tokens verifies any more.
    fn assert_family_dead(&self, serial: u32) {
        for f in self.families.iter().filter(|f| f.serial == serial) {
            assert!(!f.in_table);
            for a in &f.access {
                let got = self.p.check_bearer(self.t, Some(&format!("Bearer {}", a.text)), ScopeSet::EMPTY);
                let now = self.seen();
                let want = if !self.valid(a.key) {
                    BearerError::Invalid
                } else if now >= a.expires_at {
                    BearerError::Expired
                } else {
                    BearerError::Revoked
                };
                assert_eq!(got, Err(want), "token of replayed family {serial} still accepted");
            }
        }
    }

    // ----- the guess budgets -----

    fn record_failure(&mut self, source: u8) {
        let at = self.clock;
        self.failures.push(Failure { source, key: self.current, at, epoch: self.epoch });
        let cfg = fuzzing::config().limits;
        let recent = |f: &&Failure| f.epoch == self.epoch && f.at <= at && at - f.at < cfg.window;
        let global = self.failures.iter().filter(recent).count();
        let mine = self.failures.iter().filter(recent).filter(|f| f.source == source && f.key == self.current).count();
        assert!(global <= 2 * usize::from(cfg.global), "{global} wrong guesses within one window");
        assert!(mine <= 2 * usize::from(cfg.per_source), "{mine} wrong guesses by one source within one window");
    }

    /// A refusal must have a cause: this source's budget, the global budget, or a full source table.
    /// A live window started at most `window` seconds ago; the failures it counts are those since, which
    /// after a restore that set the clock back include failures made at later clock times.
    fn check_rate_limited(&self, source: u8) {
        let now = self.clock;
        let cfg = fuzzing::config().limits;
        let recent: Vec<&Failure> =
            self.failures.iter().filter(|f| u64::from(f.at) + u64::from(cfg.window) > u64::from(now)).collect();
        let mine = recent.iter().filter(|f| f.source == source && f.key == self.current).count();
        let mut others: Vec<(u8, KeyRef)> = recent
            .iter()
            .filter(|f| !(f.source == source && f.key == self.current))
            .map(|f| (f.source, f.key))
            .collect();
        others.sort_by_key(|(s, k)| (*s, k.id, k.generation));
        others.dedup();
        assert!(
            mine >= usize::from(cfg.per_source)
                || recent.len() >= usize::from(cfg.global)
                || others.len() >= SOURCE_SLOTS,
            "rate-limited without cause: source {source}, {mine} own, {} recent, {} other sources at {now}; history {:?}",
            recent.len(),
            others.len(),
            self.failures.iter().map(|f| (f.source, f.key.id, f.key.generation, f.at, f.epoch)).collect::<Vec<_>>()
        );
    }

    // ----- operations -----

    fn authorize(&mut self, client: u8, creds: Creds, scope: &ScopeArg) {
        let index = client % 5;
        let (creds, authenticated) = creds_for(index, creds);
        let text = scope_text(scope);
        let before_serial = next_serial(&self.p);
        let req = DeviceAuthorizationRequest { client: creds, scope: text.as_deref() };
        let got = self.p.device_authorization(self.t, &req, &mut self.rng);
        let now = self.tick();
        let want: Result<(u32, usize), ErrorCode> = (|| {
            if !authenticated {
                return Err(ErrorCode::InvalidClient);
            }
            let spec = CLIENTS[usize::from(index)];
            let scopes = match &text {
                None => spec.default,
                Some(s) => parse_scope(s).ok_or(ErrorCode::InvalidScope)?,
            };
            if scopes & !spec.allowed != 0 {
                return Err(ErrorCode::InvalidScope);
            }
            // The documented slot choice: a free slot; else the expired grant that expired first;
            // else the exchanged grant that expires first; live undecided/approved/denied never.
            let occupied = |s: usize| self.grants.iter().find(|g| g.in_table && g.slot == s);
            if let Some(free) = (0..GRANT_SLOTS).find(|&s| occupied(s).is_none()) {
                return Ok((scopes, free));
            }
            (0..GRANT_SLOTS)
                .filter_map(|s| {
                    let g = occupied(s)?;
                    if now >= g.expires_at {
                        Some(((0, g.expires_at), s))
                    } else if g.state == MState::Exchanged {
                        Some(((1, g.expires_at), s))
                    } else {
                        None
                    }
                })
                .min()
                .map(|(_, s)| (scopes, s))
                .ok_or(ErrorCode::TemporarilyUnavailable)
        })();
        if want == Err(ErrorCode::TemporarilyUnavailable) {
            self.stats.grants_full += 1;
        }
        match (got, want) {
            (Ok(auth), Ok((scopes, slot))) => {
                let claims = DeviceCodeClaims::decode(&auth.device_code, &self.ring, client_id(index))
                    .expect("a fresh device code verifies");
                assert_eq!(
                    claims,
                    DeviceCodeClaims { key_id: self.current.id, slot: slot as u16, serial: before_serial }
                );
                assert_eq!(next_serial(&self.p), before_serial.wrapping_add(1));
                assert_eq!((auth.expires_in, auth.interval), (60, 5));
                for g in self.grants.iter().filter(|g| g.in_table) {
                    assert_ne!(g.user_code, auth.user_code, "user code reissued while in the table");
                }
                for g in self.grants.iter_mut().filter(|g| g.in_table && g.slot == slot) {
                    g.in_table = false;
                }
                let mut json = [0u8; 512];
                assert!(auth.write_json(self.p.config(), &mut json).is_ok());
                let mut small = [0u8; 64];
                assert!(auth.write_json(self.p.config(), &mut small).is_err());
                self.grants.push(MGrant {
                    device_code: auth.device_code.to_string(),
                    user_code: auth.user_code,
                    key: self.current,
                    client: index,
                    slot,
                    serial: before_serial,
                    requested: scopes,
                    expires_at: now.saturating_add(60),
                    in_table: true,
                    state: MState::Undecided,
                    polled: false,
                    last_poll: now,
                    interval: 5,
                    issued: false,
                    denied: false,
                });
                self.bump();
            }
            (got, want) => {
                assert_eq!(code_of(&got), want.map(|_| ()), "device_authorization {req:?}");
                assert_eq!(next_serial(&self.p), before_serial);
            }
        }
    }

    /// The grant a user-code input finds, or the error before any state check.
    fn find(&self, input: &str) -> Option<usize> {
        let code = normalise(input)?;
        self.grants.iter().position(|g| g.in_table && *g.user_code.as_bytes() == code)
    }

    fn info_of(&self, i: usize) -> GrantInfo {
        let g = &self.grants[i];
        GrantInfo {
            client: g.client,
            scopes: ScopeSet::from_bits(scopes_of(g)),
            state: state_of(g),
            expires_at: g.expires_at,
            user_code: g.user_code,
        }
    }

    /// user_code_info / approve / deny: `decide` is `None` for a look-up.
    fn verification(&mut self, code: &CodeRef, source: u8, decide: Option<Option<(u32, u32)>>) {
        let source = source % 6;
        let input = self.user_code_input(code);
        let src = [b's', source];
        let got = match decide {
            None => self.p.user_code_info(self.t, &input, &src),
            Some(Some((user, granted))) => self.p.approve(self.t, &input, &src, user, ScopeSet::from_bits(granted)),
            Some(None) => self.p.deny(self.t, &input, &src),
        };
        let now = self.tick();
        if got == Err(ApproveError::RateLimited) {
            self.stats.rate_limited += 1;
            self.check_rate_limited(source);
            return;
        }
        let Some(i) = self.find(&input) else {
            assert_eq!(got, Err(ApproveError::InvalidCode), "{input:?} matches no grant");
            self.record_failure(source);
            return;
        };
        let g = &self.grants[i];
        let want = if now >= g.expires_at {
            Err(ApproveError::Expired)
        } else {
            match decide {
                None => Ok(()),
                Some(_) if g.state != MState::Undecided => Err(ApproveError::AlreadyDecided),
                Some(Some((_, granted))) if granted & !g.requested != 0 => Err(ApproveError::ScopeNotRequested),
                Some(_) => Ok(()),
            }
        };
        if want.is_ok() {
            match decide {
                None => {}
                Some(Some((user, granted))) => {
                    let g = &mut self.grants[i];
                    g.state = MState::Approved { user, scopes: granted };
                    self.stats.approved += 1;
                    g.requested = granted;
                    self.bump();
                }
                Some(None) => {
                    let g = &mut self.grants[i];
                    g.state = MState::Denied;
                    self.stats.denied += 1;
                    g.denied = true;
                    self.bump();
                }
            }
        }
        assert_eq!(got, want.map(|()| self.info_of(i)), "verification of {input:?}");
    }

    fn check_tokens(&mut self, tokens: &TokenResponse, family: usize, scopes: u32, now: u32) {
        let f = &self.families[family];
        let id = client_id(f.client);
        let claims = AccessClaims::verify(&tokens.access_token, &self.ring, id).expect("issued access token verifies");
        let expires_at = now.saturating_add(30).min(f.expires_at);
        assert_eq!(
            claims,
            AccessClaims {
                key_id: self.current.id,
                client: f.client,
                family_slot: f.slot as u16,
                serial: f.serial,
                user: f.user,
                scopes: ScopeSet::from_bits(scopes),
                expires_at,
            }
        );
        assert_eq!(tokens.expires_in, expires_at - now.min(expires_at));
        assert_eq!(tokens.scopes.bits(), scopes);
        assert_eq!(tokens.refresh_token.is_some(), f.refresh);
        let access = MAccess { text: tokens.access_token.to_string(), key: self.current, expires_at, scopes };
        let key = self.current;
        let f = &mut self.families[family];
        if let Some(rt) = &tokens.refresh_token {
            let claims = RefreshClaims::verify(rt, &self.ring, id).expect("issued refresh token verifies");
            assert_eq!(
                claims,
                RefreshClaims {
                    key_id: key.id,
                    client: f.client,
                    family_slot: f.slot as u16,
                    serial: f.serial,
                    counter: f.counter,
                }
            );
            assert_eq!(f.refresh_tokens.len(), f.counter as usize, "one refresh token per counter");
            f.refresh_tokens.push((rt.to_string(), key));
        }
        f.access.push(access);
        let mut json = [0u8; 512];
        assert!(tokens.write_json(self.p.scopes(), &mut json).is_ok());
    }

    /// The slot `issue` opens a family in: the first one that is free or holds an expired family.
    fn free_family_slot(&self, now: u32) -> Option<usize> {
        (0..FAMILY_SLOTS).find(|&s| !self.families.iter().any(|f| f.slot == s && self.live_family(f, now)))
    }

    fn poll(&mut self, grant: u8, client: Option<u8>, creds: Creds, mutation: Mutation) {
        let Some(gi) =
            nth_back(&self.grants, grant).map(|_| self.grants.len() - 1 - usize::from(grant) % self.grants.len())
        else {
            return;
        };
        let owner = self.grants[gi].client;
        let index = client.map_or(owner, |c| c % 5);
        let (creds, authenticated) = creds_for(index, creds);
        let code = mutate(&self.grants[gi].device_code, mutation);
        let req = TokenRequest { client: creds, grant: Grant::DeviceCode { device_code: &code } };
        let got = self.p.token(self.t, &req);
        let now = self.tick();
        if let Err(e) = &got {
            let mut json = [0u8; 256];
            assert!(e.write_json(&mut json).is_ok());
        }
        if !authenticated {
            assert_eq!(code_of(&got), Err(ErrorCode::InvalidClient));
            return;
        }
        // The grant whose device code this exact string is, if any: anything else is a forgery.
        let Some(gi) = self.grants.iter().rposition(|g| g.device_code == code) else {
            assert_eq!(code_of(&got), Err(ErrorCode::InvalidGrant), "forged device code {code:?} accepted");
            return;
        };
        let g = self.grants[gi].clone();
        if !self.valid(g.key) || g.client != index || !g.in_table {
            assert_eq!(code_of(&got), Err(ErrorCode::InvalidGrant), "{g:?} by client {index}");
            return;
        }
        if now >= g.expires_at {
            assert_eq!(code_of(&got), Err(ErrorCode::ExpiredToken), "{g:?} at {now}");
            return;
        }
        match g.state {
            MState::Undecided => {
                let gm = &mut self.grants[gi];
                if g.polled && now < g.last_poll.saturating_add(u32::from(g.interval)) {
                    assert_eq!(code_of(&got), Err(ErrorCode::SlowDown));
                    self.stats.slow_down += 1;
                    gm.interval = gm.interval.saturating_add(5);
                } else {
                    assert_eq!(code_of(&got), Err(ErrorCode::AuthorizationPending));
                    gm.polled = true;
                    gm.last_poll = now;
                }
            }
            MState::Denied => assert_eq!(code_of(&got), Err(ErrorCode::AccessDenied)),
            MState::Exchanged => {
                assert_eq!(code_of(&got), Err(ErrorCode::InvalidGrant));
                self.stats.code_replays += 1;
                if self.revoke_serial(g.serial) {
                    self.bump();
                }
                self.assert_family_dead(g.serial);
            }
            MState::Approved { user, scopes } => {
                let Some(slot) = self.free_family_slot(now) else {
                    assert_eq!(code_of(&got), Err(ErrorCode::TemporarilyUnavailable));
                    self.stats.families_full += 1;
                    return;
                };
                self.stats.issued += 1;
                let tokens = got.unwrap_or_else(|e| panic!("approved {g:?} polled at {now}: {e:?}"));
                // The safety properties, by name.
                assert!(!g.issued, "a device code yielded tokens twice");
                assert!(!g.denied, "tokens issued for a denied grant");
                assert!(now < g.expires_at, "tokens issued after the grant expired");
                for f in self.families.iter_mut().filter(|f| f.in_table && f.slot == slot) {
                    assert!(now >= f.expires_at, "a live family was overwritten");
                    f.in_table = false;
                }
                let refresh = CLIENTS[usize::from(index)].refresh;
                let lifetime = if refresh { 120 } else { 30 };
                self.families.push(MFamily {
                    slot,
                    serial: g.serial,
                    client: index,
                    user,
                    scopes,
                    expires_at: now.saturating_add(lifetime),
                    in_table: true,
                    refresh,
                    counter: 0,
                    refresh_tokens: Vec::new(),
                    access: Vec::new(),
                });
                let gm = &mut self.grants[gi];
                gm.state = MState::Exchanged;
                gm.issued = true;
                self.bump();
                self.check_tokens(&tokens, self.families.len() - 1, scopes, now);
            }
        }
    }

    fn refresh(&mut self, family: u8, token: u8, client: Option<u8>, creds: Creds, scope: &ScopeArg, m: Mutation) {
        let Some(f) = nth_back(&self.families, family) else { return };
        let Some((text, _)) = nth_back(&f.refresh_tokens, token) else { return };
        let text = mutate(text, m);
        let index = client.map_or(f.client, |c| c % 5);
        let (creds, authenticated) = creds_for(index, creds);
        let scope_text = scope_text(scope);
        let req = TokenRequest {
            client: creds,
            grant: Grant::RefreshToken { refresh_token: &text, scope: scope_text.as_deref() },
        };
        let got = self.p.token(self.t, &req);
        let now = self.tick();
        if !authenticated {
            assert_eq!(code_of(&got), Err(ErrorCode::InvalidClient));
            return;
        }
        if !CLIENTS[usize::from(index)].refresh {
            assert_eq!(code_of(&got), Err(ErrorCode::UnauthorizedClient));
            return;
        }
        let found = self.families.iter().enumerate().rev().find_map(|(fi, f)| {
            f.refresh_tokens.iter().position(|(t, _)| *t == text).map(|c| (fi, c as u32, f.refresh_tokens[c].1))
        });
        let Some((fi, counter, key)) = found else {
            assert_eq!(code_of(&got), Err(ErrorCode::InvalidGrant), "forged refresh token {text:?} accepted");
            return;
        };
        let f = self.families[fi].clone();
        if !self.valid(key) || f.client != index || !f.in_table || now >= f.expires_at {
            assert_eq!(code_of(&got), Err(ErrorCode::InvalidGrant));
            return;
        }
        if counter != f.counter {
            assert_eq!(code_of(&got), Err(ErrorCode::InvalidGrant), "replayed refresh token accepted");
            self.stats.refresh_replays += 1;
            self.families[fi].in_table = false;
            self.bump();
            self.assert_family_dead(f.serial);
            return;
        }
        let scopes = match &scope_text {
            None => f.scopes,
            Some(s) => match parse_scope(s) {
                Some(bits) if bits & !f.scopes == 0 => bits,
                _ => {
                    assert_eq!(code_of(&got), Err(ErrorCode::InvalidScope));
                    return;
                }
            },
        };
        let tokens = got.unwrap_or_else(|e| panic!("refresh of {f:?} at {now}: {e:?}"));
        self.stats.refreshed += 1;
        let fm = &mut self.families[fi];
        fm.counter += 1;
        fm.expires_at = now.saturating_add(120);
        self.bump();
        self.check_tokens(&tokens, fi, scopes, now);
    }

    /// A token of a family (or a mutation of one) and what the model knows of it.
    fn pick_token(&self, family: u8, which: Which, m: Mutation) -> Option<String> {
        let f = nth_back(&self.families, family)?;
        let text = match which {
            Which::Access(n) => &nth_back(&f.access, n)?.text,
            Which::Refresh(n) => &nth_back(&f.refresh_tokens, n)?.0,
        };
        Some(mutate(text, m))
    }

    /// The family and key of a token the provider issued, by its exact text.
    fn lookup(&self, text: &str) -> Option<(usize, KeyRef, Option<&MAccess>)> {
        self.families.iter().enumerate().rev().find_map(|(fi, f)| {
            if let Some(a) = f.access.iter().find(|a| a.text == text) {
                return Some((fi, a.key, Some(a)));
            }
            f.refresh_tokens.iter().find(|(t, _)| t == text).map(|(_, k)| (fi, *k, None))
        })
    }

    fn revoke(&mut self, family: u8, which: Which, client: Option<u8>, creds: Creds, m: Mutation) {
        let Some(text) = self.pick_token(family, which, m) else { return };
        let owner = self.lookup(&text).map_or(0, |(fi, _, _)| self.families[fi].client);
        let index = client.map_or(owner, |c| c % 5);
        let (creds, authenticated) = creds_for(index, creds);
        let got = self.p.revoke(&TokenQuery { client: creds, token: &text, hint: None });
        if !authenticated {
            assert_eq!(got.map_err(|e| e.code), Err(ErrorCode::InvalidClient));
            return;
        }
        assert_eq!(got, Ok(()));
        if let Some((fi, key, _)) = self.lookup(&text) {
            let f = &self.families[fi];
            if self.valid(key) && f.client == index && f.in_table {
                self.families[fi].in_table = false;
                self.stats.revoked += 1;
                self.bump();
            }
        }
    }

    fn bearer(&mut self, family: u8, token: u8, required: u8, header: HeaderStyle, m: Mutation) {
        let Some(f) = nth_back(&self.families, family) else { return };
        let Some(a) = nth_back(&f.access, token) else { return };
        let text = mutate(&a.text, m);
        let required = u32::from(required) & 0b1111;
        let header = match header {
            HeaderStyle::Standard => Some(format!("Bearer {text}")),
            HeaderStyle::OddSpacing => Some(format!("bEARER   {text}  ")),
            HeaderStyle::Missing => None,
            HeaderStyle::OtherScheme => Some(format!("Basic {text}")),
            HeaderStyle::Empty => Some("Bearer".into()),
        };
        let got = self.p.check_bearer(self.t, header.as_deref(), ScopeSet::from_bits(required));
        match header.as_deref() {
            None => assert_eq!(got, Err(BearerError::Missing)),
            Some(h) if h.starts_with("Basic") => assert_eq!(got, Err(BearerError::Missing)),
            Some("Bearer") => assert_eq!(got, Err(BearerError::Malformed)),
            // `parse_bearer` tolerates spaces around the token.
            Some(h) => match self.lookup(text.trim_matches(' ')) {
                Some((fi, _, Some(a))) => self.check_known_bearer(&self.families[fi], a, required, Some(h)),
                _ => assert!(
                    matches!(got, Err(BearerError::Invalid | BearerError::Malformed)),
                    "forged bearer {text:?}: {got:?}"
                ),
            },
        }
    }

    fn introspect(&mut self, family: u8, which: Which, client: Option<u8>, creds: Creds, m: Mutation) {
        let Some(text) = self.pick_token(family, which, m) else { return };
        let index = client.map_or(1, |c| c % 5);
        let (creds, authenticated) = creds_for(index, creds);
        let got = self.p.introspect(self.t, &TokenQuery { client: creds, token: &text, hint: None });
        if !authenticated || !CLIENTS[usize::from(index)].confidential {
            assert_eq!(got.map_err(|e| e.code), Err(ErrorCode::InvalidClient));
            return;
        }
        let now = self.seen();
        let want = match self.lookup(&text) {
            Some((fi, _, Some(a))) => {
                self.expected_bearer(&self.families[fi], a, 0).map_or(Introspection::Inactive, Introspection::Access)
            }
            Some((fi, key, None)) => {
                let f = &self.families[fi];
                let current = f.refresh_tokens.get(f.counter as usize).is_some_and(|(t, _)| *t == text);
                if self.valid(key) && current && self.live_family(f, now) {
                    Introspection::Refresh(TokenInfo {
                        client: f.client,
                        user: f.user,
                        scopes: ScopeSet::from_bits(f.scopes),
                        expires_at: f.expires_at,
                        serial: f.serial,
                    })
                } else {
                    Introspection::Inactive
                }
            }
            None => Introspection::Inactive,
        };
        assert_eq!(got, Ok(want), "introspection of {text:?}");
        let mut json = [0u8; 512];
        assert!(want.write_json(self.p.scopes(), self.p.clients(), &mut json).is_ok());
    }

    fn purge(&mut self) {
        let n = self.p.purge_expired(self.t);
        let now = self.tick();
        let mut want = 0;
        for g in self.grants.iter_mut().filter(|g| g.in_table && now >= g.expires_at) {
            g.in_table = false;
            want += 1;
        }
        for f in self.families.iter_mut().filter(|f| f.in_table && now >= f.expires_at) {
            f.in_table = false;
            want += 1;
        }
        assert_eq!(n, want, "purge_expired");
    }

    fn save_restore(&mut self, behind: u8) {
        let mut buf = [0u8; 1024];
        let len = self.p.save(&mut buf).expect("a snapshot fits");
        assert!(len <= max_snapshot_len(GRANT_SLOTS, FAMILY_SLOTS), "{len} bytes");
        let before_serial = next_serial(&self.p);
        let grants_before: Vec<_> = grant_table(&self.p).collect();
        let families_before: Vec<_> = family_table(&self.p).collect();
        // A flipped bit is refused and changes nothing.
        let mut bad = buf;
        bad[usize::from(behind) % len] ^= 1 << (behind % 8);
        assert!(self.p.restore(self.t, &bad[..len]).is_err());
        assert!(self.p.restore(self.t, &buf[..len - 1]).is_err());
        self.check_tables();

        let behind = u32::from(behind % 4) * 37;
        let at = if behind > 0 && self.clock >= behind { self.clock - behind } else { self.clock };
        let restored = self.p.restore(u64::from(at), &buf[..len]).expect("own snapshot restores");
        self.bump();
        assert_eq!(next_serial(&self.p), before_serial.wrapping_add(SERIAL_RESTORE_GAP));
        if at < self.clock {
            assert_eq!(restored, Restored { grants: 0, families: 0, clock_was_behind: true });
            self.stats.restored_behind += 1;
            self.clock = at;
            self.t = u64::from(at);
            self.grants.iter_mut().for_each(|g| g.in_table = false);
            self.families.iter_mut().for_each(|f| f.in_table = false);
            // The guess budgets live in RAM and are not part of a snapshot: see `Failure::epoch`.
            self.epoch += 1;
            return;
        }
        let now = self.clock;
        let mut grants = 0;
        for g in self.grants.iter_mut().filter(|g| g.in_table) {
            if now >= g.expires_at {
                g.in_table = false;
            } else {
                grants += 1;
            }
        }
        let mut families = 0;
        for f in self.families.iter_mut().filter(|f| f.in_table) {
            if now >= f.expires_at {
                f.in_table = false;
            } else {
                families += 1;
            }
        }
        assert_eq!(restored, Restored { grants, families, clock_was_behind: false });
        self.stats.restored += 1;
        let kept: Vec<_> = grants_before.into_iter().filter(|(_, g)| now < g.expires_at).collect();
        assert_eq!(grant_table(&self.p).collect::<Vec<_>>(), kept, "grants after restore");
        let kept: Vec<_> = families_before.into_iter().filter(|f| now < f.expires_at).collect();
        assert_eq!(family_table(&self.p).collect::<Vec<_>>(), kept, "families after restore");
    }

    /// The snapshot decoder on altered input: never a panic; an error changes nothing; whatever it
    /// accepts saves and restores again to the same tables, and a second save is byte-identical.
    fn forge_snapshot(&mut self, edits: &[(u16, u8)], cut: u8, extend: &[u8], resign: bool, behind: u8) {
        const TAG: usize = 16;
        let mut buf = [0u8; 1024];
        let len = self.p.save(&mut buf).expect("a snapshot fits");
        let mut body = buf[..len - TAG].to_vec();
        for &(pos, byte) in edits.iter().take(8) {
            let i = usize::from(pos) % body.len();
            body[i] = byte;
        }
        body.truncate(body.len().saturating_sub(usize::from(cut % 8)));
        body.extend(extend.iter().take(48));
        let fresh = || {
            let mut p = fuzzing::provider(&mut rand_chacha::ChaCha20Rng::seed_from_u64(1)).expect("builds");
            if self.current != (KeyRef { id: fuzzing::KEY_ID, generation: 0 }) {
                // Give it the live provider's current key (through a spare id when the ids collide).
                p.keys_mut().rotate(server_key(255, u32::MAX)).expect("spare id");
                p.keys_mut().rotate(server_key(self.current.id, self.current.generation)).expect("new id");
                p.keys_mut().retire_previous();
            }
            p
        };
        let mut target = fresh();
        let tag =
            if resign { fuzzing::sign_snapshot(&target, &body) } else { buf[len - TAG..len].try_into().expect("16") };
        let mut snapshot = body;
        snapshot.extend_from_slice(&tag);
        let state = |p: &FuzzProvider| {
            (
                grant_table(p).collect::<Vec<_>>(),
                family_table(p).collect::<Vec<_>>(),
                next_serial(p),
                p.clock(),
                p.durable_version(),
            )
        };
        let before = state(&target);
        let now = u64::from(self.seen().saturating_sub(u32::from(behind % 3) * 50));
        let Ok(restored) = target.restore(now, &snapshot) else {
            assert_eq!(state(&target), before, "a refused snapshot changed the provider");
            self.stats.forged_refused += 1;
            return;
        };
        self.stats.forged_accepted += 1;
        // Records may repeat a slot (the last one wins), so the tables hold at most the counts.
        assert!(grant_table(&target).count() <= restored.grants);
        assert!(family_table(&target).count() <= restored.families);
        let clock = target.clock();
        let mut again = [0u8; 1024];
        let n = target.save(&mut again).expect("fits");
        let mut copy = fresh();
        copy.restore(u64::from(clock), &again[..n]).expect("a saved snapshot restores");
        let live = |p: &FuzzProvider| {
            (
                grant_table(p).filter(|(_, g)| clock < g.expires_at).collect::<Vec<_>>(),
                family_table(p).filter(|f| clock < f.expires_at).collect::<Vec<_>>(),
            )
        };
        assert_eq!(live(&copy), live(&target), "save/restore of an accepted snapshot");
        assert_eq!(copy.clock(), clock);
        assert_eq!(next_serial(&copy), next_serial(&target).wrapping_add(SERIAL_RESTORE_GAP));
    }

    fn rotate(&mut self, id: u8) {
        let id = 1 + id % 3;
        let generation = self.generations;
        let got = self.p.keys_mut().rotate(server_key(id, generation));
        if id == self.current.id {
            assert!(got.is_err());
            return;
        }
        assert!(got.is_ok());
        self.ring.rotate(server_key(id, generation)).expect("mirrors the provider");
        self.generations += 1;
        self.previous = Some(self.current);
        self.current = KeyRef { id, generation };
        self.stats.rotated += 1;
    }

    fn retire(&mut self) {
        self.p.keys_mut().retire_previous();
        self.ring.retire_previous();
        self.previous = None;
    }

    fn csrf(&mut self, session: u8, other: u8) {
        let s = [b'u', session % 4];
        let tag = self.p.csrf_tag(&s);
        assert!(self.p.verify_csrf_tag(&s, &tag));
        if other % 4 != session % 4 {
            assert!(!self.p.verify_csrf_tag(&[b'u', other % 4], &tag));
        }
        let mut flipped = tag;
        flipped[usize::from(other) % 16] ^= 1 << (session % 8);
        assert!(!self.p.verify_csrf_tag(&s, &flipped));
        assert!(!self.p.verify_csrf_tag(&s, &tag[..15]));
        for (sess, old, key) in &self.csrf {
            assert_eq!(self.p.verify_csrf_tag(&[b'u', *sess], old), self.valid(*key), "old CSRF tag");
        }
        if self.csrf.len() < 8 {
            self.csrf.push((session % 4, tag, self.current));
        }
    }

    fn run(&mut self, op: &Op) {
        match op {
            Op::Authorize { client, creds, scope } => self.authorize(*client, *creds, scope),
            Op::Flow { client, user } => {
                let before = self.grants.len();
                self.authorize(client % 4, Creds::Right, &ScopeArg::Default);
                if self.grants.len() > before {
                    let granted = self.grants[before].requested;
                    let code = CodeRef::Real { grant: 0, style: *user };
                    self.verification(&code, 5, Some(Some((u32::from(*user), granted))));
                    self.poll(0, None, Creds::Right, Mutation::None);
                }
            }
            Op::Info { code, source } => self.verification(code, *source, None),
            Op::Approve { code, source, user, granted } => {
                self.verification(code, *source, Some(Some((u32::from(*user), u32::from(*granted) & 0b1111))))
            }
            Op::Deny { code, source } => self.verification(code, *source, Some(None)),
            Op::Poll { grant, client, creds, mutation } => self.poll(*grant, *client, *creds, *mutation),
            Op::Refresh { family, token, client, creds, scope, mutation } => {
                self.refresh(*family, *token, *client, *creds, scope, *mutation)
            }
            Op::Revoke { family, which, client, creds, mutation } => {
                self.revoke(*family, *which, *client, *creds, *mutation)
            }
            Op::Bearer { family, token, required, header, mutation } => {
                self.bearer(*family, *token, *required, *header, *mutation)
            }
            Op::Introspect { family, which, client, creds, mutation } => {
                self.introspect(*family, *which, *client, *creds, *mutation)
            }
            Op::Purge => self.purge(),
            Op::Wait(s) => self.t = self.t.saturating_add(u64::from(*s)),
            Op::Jump(s) => self.t = self.t.saturating_add(u64::from(*s)),
            Op::Back(s) => self.t = self.t.saturating_sub(u64::from(*s % 16)),
            Op::SaveRestore { behind } => self.save_restore(*behind),
            Op::ForgeSnapshot { edits, cut, extend, resign, behind } => {
                self.forge_snapshot(edits, *cut, extend, *resign, *behind)
            }
            Op::Rotate { id } => self.rotate(*id),
            Op::Retire => self.retire(),
            Op::Csrf { session, other } => self.csrf(*session, *other),
        }
        self.check_tables();
        self.sweep_bearer();
    }
}

static BEARER_OK: AtomicU32 = AtomicU32::new(0);

fuzz_target!(|data: &[u8]| {
    let Ok(input) = Input::arbitrary_take_rest(Unstructured::new(data)) else { return };
    let mut h = Harness::new(&input);
    h.check_tables();
    for op in input.ops.iter().take(MAX_OPS) {
        h.run(op);
    }
    static SHOW: OnceLock<bool> = OnceLock::new();
    if *SHOW.get_or_init(|| std::env::var_os("PROVIDER_FUZZ_STATS").is_some()) {
        h.stats.bearer_ok = BEARER_OK.swap(0, Ordering::Relaxed);
        eprintln!("STATS {:?}", h.stats);
    }
});
