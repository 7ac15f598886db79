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
    Exchanged,
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
    pub(crate) last_poll: u32,
    pub(crate) interval: u16,
    /// Tokens were issued for this grant (at most once, ever).
    pub(crate) issued: bool,
    /// The user denied it (no token may ever be issued).
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
    /// Refresh tokens by counter.
    pub(crate) refresh_tokens: Vec<(String, KeyRef)>,
    pub(crate) access: Vec<MAccess>,
}

pub(crate) struct Failure {
    pub(crate) source: u8,
    pub(crate) key: KeyRef,
    pub(crate) at: u32,
    /// Bumped when a restore sets the clock back: windows of an older epoch can revive when the clock
    /// catches up with them again, but budgets are only promised within one epoch.
    pub(crate) epoch: u32,
}

pub(crate) struct Harness {
    pub(crate) p: FuzzProvider,
    pub(crate) rng: rand_chacha::ChaCha20Rng,
    /// The same keys as the provider's, built independently.
    pub(crate) ring: KeyRing,
    pub(crate) current: KeyRef,
    pub(crate) previous: Option<KeyRef>,
    pub(crate) generations: u32,
    /// The time passed to the next call.
    pub(crate) t: u64,
    /// The provider's clock as the model sees it.
    /// The provider's clock as the model has it: every call of the provider, read-only ones included,
    /// moves it forward to `t` (see [`Harness::observe`]).
    pub(crate) clock: Cell<u32>,
    pub(crate) grants: Vec<MGrant>,
    pub(crate) families: Vec<MFamily>,
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
    pub(crate) refreshed: u32,
    pub(crate) refresh_replays: u32,
    pub(crate) code_replays: u32,
    pub(crate) revoked: u32,
    pub(crate) bearer_ok: u32,
    pub(crate) approved: u32,
    pub(crate) denied: u32,
    pub(crate) slow_down: u32,
    pub(crate) rate_limited: u32,
    pub(crate) families_full: u32,
    pub(crate) grants_full: u32,
    pub(crate) restored: u32,
    pub(crate) restored_behind: u32,
    pub(crate) rotated: u32,
    pub(crate) forged_refused: u32,
    pub(crate) forged_accepted: u32,
}

pub(crate) fn secs(t: u64) -> u32 {
    u32::try_from(t).unwrap_or(u32::MAX)
}

pub(crate) fn client_id(index: u8) -> &'static str {
    CLIENTS.get(usize::from(index)).map_or(UNKNOWN_CLIENT, |c| c.id)
}

pub(crate) fn creds_for(index: u8, creds: Creds) -> (ClientCredentials<'static>, bool) {
    let spec = CLIENTS.get(usize::from(index));
    let confidential = spec.is_some_and(|s| s.confidential);
    let secret = match (confidential, creds) {
        (true, Creds::Right) => Some(CLIENT_SECRET),
        (_, Creds::WrongSecret) => Some(if confidential { "wrong" } else { CLIENT_SECRET }),
        _ => None,
    };
    let ok = spec.is_some() && (confidential == secret.is_some()) && !matches!(creds, Creds::WrongSecret);
    (ClientCredentials::new(client_id(index), secret), ok)
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
        MState::Exchanged => GrantState::Exchanged,
    }
}

pub(crate) fn scopes_of(g: &MGrant) -> u32 {
    match g.state {
        MState::Approved { scopes, .. } => scopes,
        // After approval the table keeps the granted scopes; so does the model, in `requested`.
        _ => g.requested,
    }
}

pub(crate) fn code_of<T>(r: &Result<T, OAuthError>) -> Result<(), ErrorCode> {
    r.as_ref().map(|_| ()).map_err(|e| e.code)
}

impl Harness {
    pub(crate) fn new(input: &Input) -> Self {
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
            clock: Cell::new(0),
            grants: Vec::new(),
            families: Vec::new(),
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

    /// The family that holds a serial in the table (the model's view).
    pub(crate) fn family_of_serial(&mut self, serial: u32) -> Option<&mut MFamily> {
        self.families.iter_mut().find(|f| f.in_table && f.serial == serial)
    }

    /// `revoke_serial`: returns whether a family was in the table.
    pub(crate) fn revoke_serial(&mut self, serial: u32) -> bool {
        match self.family_of_serial(serial) {
            Some(f) => {
                f.in_table = false;
                true
            }
            None => false,
        }
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
