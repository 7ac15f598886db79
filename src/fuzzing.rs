//! Entry points for the fuzz targets in `fuzz/` (feature `fuzzing`). Not a stable API.
//!
//! Everything here is read-only: a standard small provider for the stateful target, and views of the
//! tables it keeps private, so the harness can check invariants (unique user codes, capacities, which
//! families are live) without the crate making its internals public.

use rand_core::CryptoRng;

use crate::client::{Client, ClientIndex, ClientRegistry, FixedClients, SecretHash};
use crate::grant::{FixedGrants, GrantStore, PendingGrant};
use crate::key::{Domain, KeyRing, ServerKey, TAG_LEN};
use crate::provider::{Config, ConfigError, Provider, UserId};
use crate::scope::{ScopeRegistry, ScopeSet};

/// The provider of the stateful target: four clients, four grant slots, four token families and four
/// rate-limit sources, so every table fills up within a few operations.
pub type FuzzProvider = Provider<FixedClients<4>, FixedGrants<4>, 4, 4>;

/// Scope names of [`provider`], in bit order.
pub static SCOPES: &[&str] = &["profile", "sensors:read", "sensors:write", "admin"];

/// Id of the server key [`provider`] starts with.
pub const KEY_ID: u8 = 1;

/// The secret of a server key, derived from a generation number (generation 0 is the initial key), so
/// the harness can rebuild every key it rotates in.
pub fn key_secret(generation: u32) -> [u8; 32] {
    let mut s = [0x5a; 32];
    for (b, g) in s.iter_mut().zip(generation.to_be_bytes()) {
        *b ^= g;
    }
    s
}

/// The server key with this id and secret generation.
pub fn server_key(id: u8, generation: u32) -> ServerKey {
    ServerKey::new(id, &key_secret(generation))
}

/// The secret of the confidential clients of [`provider`].
pub const CLIENT_SECRET: &str = "s3cret";

/// How [`provider`] registers one client.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientSpec {
    /// The `client_id`.
    pub id: &'static str,
    /// Confidential (authenticates with [`CLIENT_SECRET`]) or public.
    pub confidential: bool,
    /// Whether it receives refresh tokens.
    pub refresh: bool,
    /// Scopes it may ask for (bits of [`SCOPES`]).
    pub allowed: u32,
    /// Scopes it gets when it sends no `scope`.
    pub default: u32,
}

/// The clients of [`provider`], at their registry indices.
pub const CLIENTS: [ClientSpec; 4] = [
    ClientSpec { id: "tv", confidential: false, refresh: true, allowed: u32::MAX, default: 0b0001 },
    ClientSpec { id: "svc", confidential: true, refresh: true, allowed: u32::MAX, default: 0 },
    ClientSpec { id: "cam", confidential: false, refresh: false, allowed: 0b0110, default: 0b0010 },
    ClientSpec { id: "gw", confidential: true, refresh: false, allowed: 0b1111, default: 0b0011 },
];

/// Lifetimes short enough for the fuzzer to cross them with a few clock steps.
pub fn config() -> Config {
    Config {
        device_code_lifetime: 60,
        interval: 5,
        access_token_lifetime: 30,
        refresh_token_lifetime: 120,
        ..Config::new("https://gw.example/activate")
    }
}

/// Why [`provider`] failed (it does not, unless the crate's validation changes).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SetupError {
    /// The scope names were refused.
    Scopes,
    /// A client was refused.
    Client,
    /// The provider was refused.
    Config(ConfigError),
}

/// The standard provider of the stateful target: [`config`], key [`KEY_ID`] of generation 0, the
/// [`CLIENTS`] and [`SCOPES`]. `rng` seeds the serial counter.
pub fn provider<R: CryptoRng + ?Sized>(rng: &mut R) -> Result<FuzzProvider, SetupError> {
    let scopes = ScopeRegistry::new(SCOPES).map_err(|_| SetupError::Scopes)?;
    let mut clients = FixedClients::<4>::new();
    for spec in CLIENTS {
        let client = if spec.confidential {
            Client::confidential(spec.id, spec.id, SecretHash::with_salt(CLIENT_SECRET, [7; 16]))
        } else {
            Client::public(spec.id, spec.id)
        }
        .and_then(|c| c.with_scopes(ScopeSet::from_bits(spec.allowed), ScopeSet::from_bits(spec.default)))
        .map_err(|_| SetupError::Client)?
        .with_refresh_tokens(spec.refresh);
        clients.add(client).map_err(|_| SetupError::Client)?;
    }
    Provider::build(config(), server_key(KEY_ID, 0), scopes, clients, FixedGrants::new(), rng)
        .map_err(SetupError::Config)
}

/// A key ring holding the same keys as a provider's, for checking what it issues independently.
pub fn key_ring<C: ClientRegistry, G: GrantStore, const F: usize, const S: usize>(
    p: &Provider<C, G, F, S>,
) -> &KeyRing {
    p.keys()
}

/// Every occupied grant slot (expired grants included), as `(slot, grant)`.
pub fn grant_table<C: ClientRegistry, G: GrantStore, const F: usize, const S: usize>(
    p: &Provider<C, G, F, S>,
) -> impl Iterator<Item = (usize, PendingGrant)> + '_ {
    let grants = p.grants();
    (0..grants.capacity()).filter_map(move |slot| grants.get(slot).map(|g| (slot, *g)))
}

/// A read-only copy of one token family.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FamilyView {
    /// Its slot in the family table (carried in its tokens).
    pub slot: usize,
    /// The serial of the grant it was issued from.
    pub serial: u32,
    /// When the family (its refresh token, or its only access token) expires.
    pub expires_at: u32,
    /// The approving user.
    pub user: UserId,
    /// The granted scopes.
    pub scopes: ScopeSet,
    /// The current refresh-token counter.
    pub counter: u32,
    /// The client it belongs to.
    pub client: ClientIndex,
    /// Whether it issues refresh tokens.
    pub refresh: bool,
}

/// Every occupied family slot (expired families included).
pub fn family_table<C: ClientRegistry, G: GrantStore, const F: usize, const S: usize>(
    p: &Provider<C, G, F, S>,
) -> impl Iterator<Item = FamilyView> + '_ {
    p.family_table().iter().map(|(slot, f)| FamilyView {
        slot,
        serial: f.serial,
        expires_at: f.expires_at,
        user: f.user,
        scopes: f.scopes,
        counter: f.counter,
        client: f.client,
        refresh: f.refresh,
    })
}

/// The serial the next grant will get.
pub fn next_serial<C: ClientRegistry, G: GrantStore, const F: usize, const S: usize>(p: &Provider<C, G, F, S>) -> u32 {
    p.next_serial()
}

/// The integrity tag `Provider::save` would append to a snapshot `body` (everything before the tag),
/// under the provider's current key: lets a target alter a real snapshot and still reach the decoder.
pub fn sign_snapshot<C: ClientRegistry, G: GrantStore, const F: usize, const S: usize>(
    p: &Provider<C, G, F, S>,
    body: &[u8],
) -> [u8; TAG_LEN] {
    p.keys().current().map_or([0; TAG_LEN], |k| k.tag(Domain::Snapshot, &[body]))
}
