//! The model: what the provider's tables should hold, predicted from the documented rules.

use super::ops::*;
use super::*;

// ----- the model -----

/// A key by id and secret generation: a token verifies iff the ring holds exactly this key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct KeyRef {
    pub(crate) id: u8,
    pub(crate) generation: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum MState {
    Undecided,
    Approved { user: u32, scopes: u32 },
    Denied,
    Exchanged { user: u32 },
}

#[derive(Debug, Clone)]
pub(crate) struct MGrant {
    pub(crate) device_code: String,
    pub(crate) user_code: UserCode,
    pub(crate) key: KeyRef,
    pub(crate) client: u8,
    pub(crate) slot: usize,
    pub(crate) serial: u32,
    pub(crate) requested: u32,
    pub(crate) expires_at: u32,
    pub(crate) in_table: bool,
    pub(crate) state: MState,
    pub(crate) polled: bool,
    /// The issue time, then the last poll answered without `slow_down` (while undecided).
    pub(crate) last_poll: u32,
    pub(crate) interval: u16,
    /// The grant-table tag of the source that asked (0: unattributed), see [`grant_tag`].
    pub(crate) source: u16,
    /// Tokens were issued for this grant (at most once, ever).
    pub(crate) issued: bool,
    /// The user denied it, or withdrew the approval (no token may ever be issued).
    pub(crate) denied: bool,
}

#[derive(Debug, Clone)]
pub(crate) struct MAccess {
    pub(crate) text: String,
    pub(crate) key: KeyRef,
    pub(crate) expires_at: u32,
    pub(crate) scopes: u32,
}

#[derive(Debug, Clone)]
pub(crate) struct MFamily {
    pub(crate) slot: usize,
    pub(crate) serial: u32,
    pub(crate) client: u8,
    pub(crate) user: u32,
    pub(crate) scopes: u32,
    pub(crate) expires_at: u32,
    pub(crate) in_table: bool,
    pub(crate) refresh: bool,
    pub(crate) counter: u32,
    /// False while the slot is only reserved by an approval (the device has not exchanged its code).
    pub(crate) issued: bool,
    pub(crate) approved_at: u32,
    pub(crate) last_used: u32,
    /// Opened at the exchange without a reservation (its approval's was revoked with `revoke_serial`):
    /// no account limit was checked for it (see tests/fuzz_found.rs).
    pub(crate) unreserved: bool,
    /// Refresh tokens by counter.
    pub(crate) refresh_tokens: Vec<(String, KeyRef)>,
    pub(crate) access: Vec<MAccess>,
}

/// One wrong user code, for the global guess bound (a property checked apart from the exact model).
pub(crate) struct Failure {
    pub(crate) at: u32,
    /// Bumped when a restore sets the clock back: the global window restarts then, and the bound is
    /// promised within one epoch.
    pub(crate) epoch: u32,
}

/// One entry of an attempt budget's source table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct LEntry {
    pub(crate) key: [u8; 8],
    pub(crate) last: u32,
    pub(crate) failures: u16,
}

/// An attempt budget as `limit.rs` documents it: per source a graduated back-off (`per_source` free
/// failures, then 1, 2, 4 … `max_delay` seconds after the last failure; a source quiet for `window`
/// seconds is forgotten), a fixed global window (`global == u16::MAX`: none), and a full source table
/// evicting the source that failed longest ago. Where the documentation leaves a tie open (two
/// sources that failed in the same second), the model takes the lowest entry, as the table does.
#[derive(Debug, Clone)]
pub(crate) struct MLimiter {
    pub(crate) cfg: LimitConfig,
    pub(crate) entries: [Option<LEntry>; SOURCE_SLOTS],
    pub(crate) start: u32,
    pub(crate) failures: u16,
}

impl MLimiter {
    pub(crate) fn new(cfg: LimitConfig) -> Self {
        Self { cfg, entries: [None; SOURCE_SLOTS], start: 0, failures: 0 }
    }

    /// The documented back-off after `n` failures.
    pub(crate) fn delay(&self, n: u16) -> u32 {
        if n < self.cfg.per_source {
            return 0;
        }
        let steps = u32::from(n - self.cfg.per_source);
        2u32.checked_pow(steps).unwrap_or(u32::MAX).min(self.cfg.max_delay)
    }

    /// Failed within the last `window` seconds (and not at a clock time still ahead, after a restore
    /// set the clock back).
    pub(crate) fn remembered(&self, e: &LEntry, now: u32) -> bool {
        now >= e.last && now - e.last < self.cfg.window
    }

    fn roll(&mut self, now: u32) {
        if now < self.start || now - self.start >= self.cfg.window {
            self.start = now;
            self.failures = 0;
        }
    }

    /// Whether an attempt is admitted, else the seconds to wait.
    pub(crate) fn admit(&mut self, now: u32, key: [u8; 8]) -> Result<(), u32> {
        self.roll(now);
        if self.cfg.global != u16::MAX && self.failures >= self.cfg.global {
            return Err((self.cfg.window - (now - self.start)).max(1));
        }
        let Some(e) = self.entries.iter().flatten().find(|e| e.key == key && self.remembered(e, now)) else {
            return Ok(());
        };
        let ready = e.last.saturating_add(self.delay(e.failures));
        if now < ready {
            Err(ready - now)
        } else {
            Ok(())
        }
    }

    /// Charges a failure; returns whether a remembered source had to be evicted for it.
    pub(crate) fn fail(&mut self, now: u32, key: [u8; 8]) -> bool {
        self.roll(now);
        self.failures = self.failures.saturating_add(1);
        let fresh = LEntry { key, last: now, failures: 1 };
        if let Some(i) = self.entries.iter().position(|e| e.is_some_and(|e| e.key == key)) {
            let e = self.entries[i].expect("found");
            self.entries[i] = Some(if self.remembered(&e, now) {
                LEntry { last: now, failures: e.failures.saturating_add(1), ..e }
            } else {
                fresh
            });
            return false;
        }
        if let Some(i) = self.entries.iter().position(|e| e.is_none_or(|e| !self.remembered(&e, now))) {
            self.entries[i] = Some(fresh);
            return false;
        }
        let oldest = self.entries.iter().flatten().map(|e| e.last).min().expect("a full table");
        let i = self.entries.iter().position(|e| e.is_some_and(|e| e.last == oldest)).expect("present");
        self.entries[i] = Some(fresh);
        true
    }
}

pub(crate) struct Harness {
    pub(crate) p: FuzzProvider,
    pub(crate) rng: rand_chacha::ChaCha20Rng,
    /// The configuration the provider was given (the input chooses the policy knobs).
    pub(crate) config: Config,
    /// The same keys as the provider's, built independently.
    pub(crate) ring: KeyRing,
    pub(crate) current: KeyRef,
    pub(crate) previous: Option<KeyRef>,
    pub(crate) generations: u32,
    /// The time passed to the next call.
    pub(crate) t: u64,
    /// The provider's clock as the model has it: every call of the provider, read-only ones included,
    /// moves it forward to `t` (see [`Harness::observe`]).
    pub(crate) clock: Cell<u32>,
    pub(crate) grants: Vec<MGrant>,
    pub(crate) families: Vec<MFamily>,
    /// The serial the next grant gets, and the end of the serials leased so far.
    pub(crate) next_serial: u32,
    pub(crate) lease: u32,
    /// Wrong user codes (budget `config.limits`) and failed authentications (`config.auth_limits`).
    pub(crate) codes: MLimiter,
    pub(crate) auth: MLimiter,
    pub(crate) failures: Vec<Failure>,
    pub(crate) epoch: u32,
    pub(crate) csrf: Vec<(u8, [u8; 16], KeyRef)>,
    pub(crate) durable: u32,
    pub(crate) stats: Stats,
}

/// What an input reached, printed when `PROVIDER_FUZZ_STATS` is set (to judge the corpus).
#[derive(Debug, Default)]
pub(crate) struct Stats {
    pub(crate) issued: u32,
    pub(crate) issued_unreserved: u32,
    pub(crate) refreshed: u32,
    pub(crate) refresh_replays: u32,
    pub(crate) code_replays: u32,
    pub(crate) revoked: u32,
    pub(crate) bearer_ok: u32,
    pub(crate) approved: u32,
    pub(crate) denied: u32,
    pub(crate) slow_down: u32,
    pub(crate) rate_limited: u32,
    pub(crate) code_evictions: u32,
    pub(crate) account_full: u32,
    pub(crate) devices_full: u32,
    pub(crate) families_full: u32,
    pub(crate) share_refused: u32,
    pub(crate) grants_full: u32,
    pub(crate) reclaimed_expired: u32,
    pub(crate) reclaimed_decided: u32,
    pub(crate) reclaimed_abandoned: u32,
    pub(crate) lease_bumps: u32,
    pub(crate) auth_failures: u32,
    pub(crate) auth_throttled: u32,
    pub(crate) auth_evictions: u32,
    pub(crate) sign_in_throttled: u32,
    pub(crate) revoke_family: u32,
    pub(crate) revoke_family_refused: u32,
    pub(crate) withdrawn: u32,
    pub(crate) revoke_serial: u32,
    pub(crate) restored: u32,
    pub(crate) restored_behind: u32,
    pub(crate) rotated: u32,
    pub(crate) forged_refused: u32,
    pub(crate) forged_accepted: u32,
}

/// An error as the model predicts it: the code and the `Retry-After`.
pub(crate) type Refusal = (ErrorCode, Option<u32>);

pub(crate) fn secs(t: u64) -> u32 {
    u32::try_from(t).unwrap_or(u32::MAX)
}

/// `now` at the granularity of a family's last use.
pub(crate) fn coarse(now: u32) -> u32 {
    now - now % LAST_USED_GRANULARITY
}

pub(crate) fn client_id(index: u8) -> &'static str {
    CLIENTS.get(usize::from(index)).map_or(UNKNOWN_CLIENT, |c| c.id)
}

/// The peer a request comes from: the unattributed empty source, or one of four addresses (as
/// `source::of_ip` gives them).
pub(crate) fn peer(n: u8) -> &'static [u8] {
    const PEERS: [&[u8]; 5] =
        [b"", &[192, 0, 2, 1], &[192, 0, 2, 2], &[198, 51, 100, 7], &[0x20, 1, 0xd, 0xb8, 0, 0, 0, 1]];
    PEERS[usize::from(n) % PEERS.len()]
}

/// The provider's keyed hash of a source under the key of this generation, stated independently:
/// HMAC-SHA256 over the domain byte `S` and the source bytes.
pub(crate) fn source_mac(generation: u32, source: &[u8]) -> [u8; 32] {
    let mut m = Hmac::<Sha256>::new_from_slice(&fuzzing::key_secret(generation)).expect("any key length");
    m.update(b"S");
    m.update(source);
    m.finalize().into_bytes().into()
}

/// The 8 bytes an attempt budget tracks a source under.
pub(crate) fn limiter_key(generation: u32, source: &[u8]) -> [u8; 8] {
    source_mac(generation, source)[..8].try_into().expect("8 bytes")
}

/// The 16-bit tag a grant's source is counted under: 0 for no source, else never 0.
pub(crate) fn grant_tag(generation: u32, source: &[u8]) -> u16 {
    if source.is_empty() {
        return 0;
    }
    let m = source_mac(generation, source);
    u16::from_be_bytes([m[0], m[1]]).max(1)
}

pub(crate) fn creds_for(index: u8, creds: Creds, from: u8) -> (ClientCredentials<'static>, bool) {
    let spec = CLIENTS.get(usize::from(index));
    let confidential = spec.is_some_and(|s| s.confidential);
    let secret = match (confidential, creds) {
        (true, Creds::Right) => Some(CLIENT_SECRET),
        (_, Creds::WrongSecret) => Some(if confidential { "wrong" } else { CLIENT_SECRET }),
        _ => None,
    };
    let ok = spec.is_some() && (confidential == secret.is_some()) && !matches!(creds, Creds::WrongSecret);
    let mut c = ClientCredentials::new(client_id(index), secret);
    c.source = peer(from);
    (c, ok)
}

pub(crate) fn scope_text(arg: &ScopeArg) -> Option<String> {
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
pub(crate) fn parse_scope(s: &str) -> Option<u32> {
    if s.is_empty() {
        return Some(0);
    }
    s.split(' ').try_fold(0, |bits, name| SCOPES.iter().position(|n| *n == name).map(|i| bits | 1u32 << i))
}

/// The user-code rule of `code.rs`, stated independently.
pub(crate) fn normalise(input: &str) -> Option<[u8; 8]> {
    let kept: Vec<u8> = input.bytes().filter(|&b| b != b'-' && b != b' ').map(|b| b.to_ascii_uppercase()).collect();
    if kept.len() == 8 && kept.iter().all(|b| USER_CODE_ALPHABET.contains(b)) {
        kept.try_into().ok()
    } else {
        None
    }
}

pub(crate) fn mutate(text: &str, m: Mutation) -> String {
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

pub(crate) fn nth_back<T>(v: &[T], n: u8) -> Option<&T> {
    if v.is_empty() {
        None
    } else {
        v.get(v.len() - 1 - usize::from(n) % v.len())
    }
}

pub(crate) fn state_of(g: &MGrant) -> GrantState {
    match g.state {
        MState::Undecided if g.polled => GrantState::Polling,
        MState::Undecided => GrantState::Pending,
        MState::Approved { .. } => GrantState::Approved,
        MState::Denied => GrantState::Denied,
        MState::Exchanged { .. } => GrantState::Exchanged,
    }
}

/// `PendingGrant::user`: the approving user, once approved.
pub(crate) fn user_of(g: &MGrant) -> Option<u32> {
    match g.state {
        MState::Approved { user, .. } | MState::Exchanged { user } => Some(user),
        _ => None,
    }
}

pub(crate) fn scopes_of(g: &MGrant) -> u32 {
    match g.state {
        MState::Approved { scopes, .. } => scopes,
        // After approval the table keeps the granted scopes; so does the model, in `requested`.
        _ => g.requested,
    }
}

/// An error result as the model predicts errors (code and `Retry-After`).
pub(crate) fn outcome<T>(r: &Result<T, OAuthError>) -> Result<(), Refusal> {
    r.as_ref().map(|_| ()).map_err(|e| (e.code, e.retry_after))
}

/// A refusal without `Retry-After`.
pub(crate) fn plain(code: ErrorCode) -> Result<(), Refusal> {
    Err((code, None))
}

impl Harness {
    pub(crate) fn new(input: &Input) -> Self {
        let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(input.seed);
        let mut p = fuzzing::provider(&mut rng).expect("the standard provider builds");
        // The standard provider, re-initialised with the input's policy knobs (so per-account limits and
        // abandonment, which the standard configuration never reaches with four slots, are exercised).
        let config = input.policy.config();
        let scopes = ScopeRegistry::new(SCOPES).expect("the standard scopes");
        p.init(config.clone(), server_key(fuzzing::KEY_ID, 0), scopes, &mut rng).expect("a valid configuration");
        let current = KeyRef { id: fuzzing::KEY_ID, generation: 0 };
        let t = u64::from(input.start);
        let durable = p.durable_version();
        let next_serial = next_serial(&p);
        Harness {
            p,
            rng,
            codes: MLimiter::new(config.limits),
            auth: MLimiter::new(config.auth_limits),
            config,
            ring: KeyRing::new(server_key(current.id, 0)),
            current,
            previous: None,
            generations: 1,
            t,
            clock: Cell::new(0),
            grants: Vec::new(),
            families: Vec::new(),
            next_serial,
            // `init` leases from the serial it draws: the first grant takes a new lease.
            lease: next_serial,
            failures: Vec::new(),
            epoch: 0,
            csrf: Vec::new(),
            durable,
            stats: Stats::default(),
        }
    }

    pub(crate) fn valid(&self, k: KeyRef) -> bool {
        self.current == k || self.previous == Some(k)
    }

    /// `now` as the provider sees it, without advancing its clock.
    pub(crate) fn seen(&self) -> u32 {
        self.clock.get().max(secs(self.t))
    }

    /// A read-only call of the provider at `t` happened: its clock never goes back, so it moved too.
    pub(crate) fn observe(&self) {
        self.clock.set(self.seen());
    }

    /// `now` as the provider sees it, advancing its clock (the ops that tick).
    pub(crate) fn tick(&mut self) -> u32 {
        self.clock.set(self.seen());
        self.clock.get()
    }

    pub(crate) fn bump(&mut self) {
        self.durable = self.durable.wrapping_add(1);
    }

    pub(crate) fn live_family(&self, f: &MFamily, now: u32) -> bool {
        f.in_table && now < f.expires_at
    }

    /// The grant in a slot of the table (the model's view).
    pub(crate) fn occupant(&self, slot: usize) -> Option<&MGrant> {
        self.grants.iter().find(|g| g.in_table && g.slot == slot)
    }

    /// How readily a grant's slot is given to a new request (lower first), or `None` if it keeps it:
    /// expired (by expiry); exchanged or denied (by expiry); abandoned, i.e. undecided and not polled
    /// for `abandon_after` since issue or the last accepted poll (by that time). Free slots rank first.
    pub(crate) fn reclaim_rank(&self, g: &MGrant, now: u32) -> Option<(u8, u32)> {
        if now >= g.expires_at {
            return Some((1, g.expires_at));
        }
        match g.state {
            MState::Exchanged { .. } | MState::Denied => Some((2, g.expires_at)),
            MState::Undecided if now.saturating_sub(g.last_poll) >= self.config.abandon_after => Some((3, g.last_poll)),
            _ => None,
        }
    }

    /// When a grant that keeps its slot stops keeping it: its expiry, or, undecided, once abandoned.
    pub(crate) fn releases_at(&self, g: &MGrant) -> u32 {
        match g.state {
            MState::Undecided => g.expires_at.min(g.last_poll.saturating_add(self.config.abandon_after)),
            _ => g.expires_at,
        }
    }

    /// The slot a new grant from the source tagged `tag` gets, with the rank it was taken at, or the
    /// refusal: 429 when the source holds as many live grants as there are slots to give (unattributed
    /// requests have no share), 503 when no slot can be given; both retry when a slot frees up (their
    /// own, for 429).
    pub(crate) fn allocate(&self, now: u32, tag: u16) -> Result<(usize, (u8, u32)), Refusal> {
        let mut free = Vec::new();
        let (mut held, mut next_own, mut next_any) = (0, u32::MAX, u32::MAX);
        for slot in 0..GRANT_SLOTS {
            let Some(g) = self.occupant(slot) else {
                free.push(((0, 0), slot));
                continue;
            };
            match self.reclaim_rank(g, now) {
                Some(rank) => free.push((rank, slot)),
                None => {
                    next_any = next_any.min(self.releases_at(g));
                    if tag != 0 && g.source == tag {
                        held += 1;
                        next_own = next_own.min(self.releases_at(g));
                    }
                }
            }
        }
        if tag != 0 && held > 0 && held >= free.len() {
            return Err((ErrorCode::Throttled, Some((next_own - now).max(1))));
        }
        free.iter()
            .min()
            .map(|&(rank, slot)| (slot, rank))
            .ok_or((ErrorCode::TemporarilyUnavailable, Some((next_any - now).max(1))))
    }

    /// `authenticate`: the auth budget of the request's source first (429 while it waits), then the
    /// credentials; a failure is charged to the source.
    pub(crate) fn authenticate(&mut self, now: u32, from: u8, ok: bool) -> Result<(), Refusal> {
        let key = limiter_key(self.current.generation, peer(from));
        if let Err(retry) = self.auth.admit(now, key) {
            self.stats.auth_throttled += 1;
            return Err((ErrorCode::Throttled, Some(retry)));
        }
        if !ok {
            self.stats.auth_failures += 1;
            if self.auth.fail(now, key) {
                self.stats.auth_evictions += 1;
            }
            return plain(ErrorCode::InvalidClient);
        }
        Ok(())
    }

    /// Live families (reservations included) of `user`.
    pub(crate) fn count_user(&self, user: u32, now: u32) -> usize {
        self.families.iter().filter(|f| f.user == user && self.live_family(f, now)).count()
    }

    /// The first family slot that is empty or holds a family that is no longer live.
    pub(crate) fn free_family_slot(&self, now: u32) -> Option<usize> {
        (0..FAMILY_SLOTS).find(|&s| !self.families.iter().any(|f| f.slot == s && self.live_family(f, now)))
    }

    /// Puts a new family in `slot`: what it replaces must not be live.
    pub(crate) fn place_family(&mut self, f: MFamily, now: u32) {
        for old in self.families.iter_mut().filter(|o| o.in_table && o.slot == f.slot) {
            assert!(now >= old.expires_at, "a live family was overwritten: {old:?} by {f:?}");
            old.in_table = false;
        }
        self.families.push(f);
    }

    /// The family that holds a serial in the table (the model's view), first by slot.
    pub(crate) fn family_of_serial(&self, serial: u32) -> Option<usize> {
        (0..self.families.len())
            .filter(|&i| self.families[i].in_table && self.families[i].serial == serial)
            .min_by_key(|&i| self.families[i].slot)
    }

    /// `revoke_serial`: every family with the serial leaves the table (live or not); returns whether
    /// there was one.
    pub(crate) fn revoke_serial(&mut self, serial: u32) -> bool {
        let mut found = false;
        for f in self.families.iter_mut().filter(|f| f.in_table && f.serial == serial) {
            f.in_table = false;
            found = true;
        }
        if found {
            // An approval still waiting for its device is withdrawn with its reservation.
            for g in self.grants.iter_mut().filter(|g| g.in_table && g.serial == serial) {
                if let MState::Approved { .. } = g.state {
                    g.state = MState::Denied;
                    g.denied = true;
                }
            }
        }
        found
    }

    pub(crate) fn user_code_input(&self, code: &CodeRef) -> String {
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
}
