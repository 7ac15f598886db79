//! Registered clients (the seed's `clientgetter`) and their authentication (RFC 6749 §2.3).
//!
//! A client is *public* (a TV or CLI app that cannot keep a secret: it sends only `client_id`) or
//! *confidential* (it authenticates with `client_secret_basic` or `client_secret_post`). Secrets are
//! never stored: a client keeps a salted HMAC-SHA256 of its secret, compared in constant time. Client
//! secrets are meant to be long random strings, so no slow password hash is needed.
//!
//! Applications with their own client store implement [`ClientRegistry`]; [`FixedClients`] is a
//! fixed-capacity registry for firmware.

use core::fmt;

use hmac::{Hmac, Mac};
use rand_core::CryptoRng;
use sha2::Sha256;
use subtle::ConstantTimeEq;

use crate::scope::ScopeSet;

/// Longest accepted `client_id`.
pub const MAX_CLIENT_ID_LEN: usize = 48;
/// Longest client display name.
pub const MAX_CLIENT_NAME_LEN: usize = 48;

/// A client identifier.
pub type ClientId = heapless::String<MAX_CLIENT_ID_LEN>;

/// Index of a client in its registry (carried in tokens).
pub type ClientIndex = u8;

/// A salted HMAC-SHA256 of a client secret.
#[derive(Clone, PartialEq, Eq)]
pub struct SecretHash {
    salt: [u8; 16],
    hash: [u8; 32],
}

impl fmt::Debug for SecretHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SecretHash(..)")
    }
}

fn hash_secret(salt: &[u8; 16], secret: &[u8]) -> [u8; 32] {
    let mut m = match Hmac::<Sha256>::new_from_slice(salt) {
        Ok(m) => m,
        Err(_) => return [0; 32],
    };
    m.update(secret);
    m.finalize().into_bytes().into()
}

impl SecretHash {
    /// Hashes `secret` under a fresh random salt.
    pub fn new<R: CryptoRng + ?Sized>(secret: &str, rng: &mut R) -> Self {
        let mut salt = [0u8; 16];
        rng.fill_bytes(&mut salt);
        Self::with_salt(secret, salt)
    }

    /// Hashes `secret` under a given salt (to precompute the hash that firmware stores).
    pub fn with_salt(secret: &str, salt: [u8; 16]) -> Self {
        Self { salt, hash: hash_secret(&salt, secret.as_bytes()) }
    }

    /// A stored hash: firmware can hold these bytes instead of the secret.
    pub const fn from_parts(salt: [u8; 16], hash: [u8; 32]) -> Self {
        Self { salt, hash }
    }

    /// The salt and hash, for storing.
    pub fn parts(&self) -> (&[u8; 16], &[u8; 32]) {
        (&self.salt, &self.hash)
    }

    /// Constant-time check of a presented secret.
    pub fn verify(&self, secret: &str) -> bool {
        hash_secret(&self.salt, secret.as_bytes()).ct_eq(&self.hash).into()
    }
}

/// Why a client could not be registered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[non_exhaustive]
pub enum ClientError {
    /// The id is empty, too long, or has a character outside `VSCHAR` (RFC 6749 Appendix A.1).
    InvalidId,
    /// The display name is too long.
    NameTooLong,
    /// A client with this id is already registered.
    Duplicate,
    /// The registry is full.
    Full,
    /// Default scopes are not a subset of the allowed scopes.
    DefaultScopesNotAllowed,
}

impl fmt::Display for ClientError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::InvalidId => "client_id is empty, too long, or not VSCHAR",
            Self::NameTooLong => "client name too long",
            Self::Duplicate => "client_id already registered",
            Self::Full => "client registry is full",
            Self::DefaultScopesNotAllowed => "default scopes must be allowed scopes",
        })
    }
}

impl core::error::Error for ClientError {}

/// A registered client.
#[derive(Debug, Clone)]
pub struct Client {
    id: ClientId,
    name: heapless::String<MAX_CLIENT_NAME_LEN>,
    secret: Option<SecretHash>,
    allowed_scopes: ScopeSet,
    default_scopes: ScopeSet,
    refresh_tokens: bool,
}

impl Client {
    /// A public client (no secret): may use every scope, no default scopes, gets refresh tokens.
    pub fn public(id: &str, name: &str) -> Result<Self, ClientError> {
        if id.is_empty() || !id.bytes().all(|b| (0x20..=0x7e).contains(&b)) {
            return Err(ClientError::InvalidId);
        }
        Ok(Self {
            id: id.try_into().map_err(|_| ClientError::InvalidId)?,
            name: name.try_into().map_err(|_| ClientError::NameTooLong)?,
            secret: None,
            allowed_scopes: ScopeSet::from_bits(u32::MAX),
            default_scopes: ScopeSet::EMPTY,
            refresh_tokens: true,
        })
    }

    /// A confidential client authenticated by a secret (kept only as a salted hash).
    pub fn confidential(id: &str, name: &str, secret: SecretHash) -> Result<Self, ClientError> {
        let mut c = Self::public(id, name)?;
        c.secret = Some(secret);
        Ok(c)
    }

    /// Restricts the scopes this client may ask for, and sets the scopes it gets when it asks for none.
    pub fn with_scopes(mut self, allowed: ScopeSet, default: ScopeSet) -> Result<Self, ClientError> {
        if !default.is_subset_of(allowed) {
            return Err(ClientError::DefaultScopesNotAllowed);
        }
        self.allowed_scopes = allowed;
        self.default_scopes = default;
        Ok(self)
    }

    /// Whether this client receives refresh tokens (and may use the `refresh_token` grant).
    pub fn with_refresh_tokens(mut self, enabled: bool) -> Self {
        self.refresh_tokens = enabled;
        self
    }

    /// The `client_id`.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The name shown to users on the verification page.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// True for a confidential client.
    pub fn is_confidential(&self) -> bool {
        self.secret.is_some()
    }

    /// The scopes this client may be granted.
    pub fn allowed_scopes(&self) -> ScopeSet {
        self.allowed_scopes
    }

    /// The scopes requested on its behalf when it sends no `scope`.
    pub fn default_scopes(&self) -> ScopeSet {
        self.default_scopes
    }

    /// Whether refresh tokens are issued to this client.
    pub fn refresh_tokens(&self) -> bool {
        self.refresh_tokens
    }

    /// Checks presented credentials: a confidential client must send the right secret, a public client
    /// must send none.
    pub fn authenticate(&self, secret: Option<&str>) -> bool {
        match (&self.secret, secret) {
            (Some(hash), Some(s)) => hash.verify(s),
            (None, None) => true,
            _ => false,
        }
    }
}

/// Where the provider finds clients: the `clientgetter` of the seed.
pub trait ClientRegistry {
    /// The client with this `client_id`, and its index.
    fn find(&self, client_id: &str) -> Option<(ClientIndex, &Client)>;
    /// The client at `index` (as carried in tokens).
    fn get(&self, index: ClientIndex) -> Option<&Client>;
}

/// A registry of at most `N` clients (and at most 256).
#[derive(Debug, Clone, Default)]
pub struct FixedClients<const N: usize> {
    clients: heapless::Vec<Client, N>,
}

impl<const N: usize> FixedClients<N> {
    /// An empty registry.
    pub const fn new() -> Self {
        Self { clients: heapless::Vec::new() }
    }

    /// Registers a client and returns its index.
    pub fn add(&mut self, client: Client) -> Result<ClientIndex, ClientError> {
        if self.clients.iter().any(|c| c.id == client.id) {
            return Err(ClientError::Duplicate);
        }
        let index = ClientIndex::try_from(self.clients.len()).map_err(|_| ClientError::Full)?;
        self.clients.push(client).map_err(|_| ClientError::Full)?;
        Ok(index)
    }

    /// The registered clients.
    pub fn iter(&self) -> impl Iterator<Item = &Client> {
        self.clients.iter()
    }
}

impl<const N: usize> ClientRegistry for FixedClients<N> {
    fn find(&self, client_id: &str) -> Option<(ClientIndex, &Client)> {
        let i = self.clients.iter().position(|c| c.id == client_id)?;
        Some((ClientIndex::try_from(i).ok()?, self.clients.get(i)?))
    }

    fn get(&self, index: ClientIndex) -> Option<&Client> {
        self.clients.get(usize::from(index))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // What a test can see of secrets: they verify, and only a salted hash is kept. That the comparison
    // takes the same time whatever the input is not observable here; it rests on `subtle::ct_eq`.
    #[test]
    fn secrets_verify_and_only_a_salted_hash_is_kept() {
        let h = SecretHash::with_salt("s3cret", [1; 16]);
        assert!(h.verify("s3cret"));
        assert!(!h.verify("s3creT"));
        assert!(!h.verify("s3cre"));
        assert!(!h.verify("s3cret "));
        assert!(!h.verify(""));
        assert_eq!(format!("{h:?}"), "SecretHash(..)");
        // What is kept: the salt and HMAC-SHA256(salt, secret), nothing holding the secret's bytes.
        let (salt, hash) = h.parts();
        assert_eq!(salt, &[1; 16]);
        let mut m = Hmac::<Sha256>::new_from_slice(&[1; 16]).unwrap();
        m.update(b"s3cret");
        assert_eq!(hash[..], m.finalize().into_bytes()[..]);
        assert!(!salt.windows(6).chain(hash.windows(6)).any(|w| w == b"s3cret"));
        // Salted: the same secret under another salt is another hash, and each verifies only under its own.
        let other = SecretHash::with_salt("s3cret", [2; 16]);
        assert_ne!(other.parts().1, hash);
        assert!(other.verify("s3cret"));
        assert!(!SecretHash::from_parts([2; 16], *hash).verify("s3cret"));
        // A stored hash (what firmware keeps instead of the secret) verifies like the original.
        assert!(SecretHash::from_parts(*salt, *hash).verify("s3cret"));
        let c = Client::confidential("c", "C", h).unwrap();
        assert!(c.authenticate(Some("s3cret")));
        assert!(!c.authenticate(None));
        let p = Client::public("p", "P").unwrap();
        assert!(p.authenticate(None));
        assert!(!p.authenticate(Some("x")));
    }

    #[test]
    fn registry_capacity_and_ids() {
        let mut r = FixedClients::<2>::new();
        assert_eq!(r.add(Client::public("a", "A").unwrap()), Ok(0));
        assert_eq!(r.add(Client::public("a", "A").unwrap()), Err(ClientError::Duplicate));
        assert_eq!(r.add(Client::public("b", "B").unwrap()), Ok(1));
        assert_eq!(r.add(Client::public("c", "C").unwrap()), Err(ClientError::Full));
        assert_eq!(r.find("b").map(|(i, _)| i), Some(1));
        assert!(r.find("c").is_none());
        assert_eq!(Client::public("", "x").unwrap_err(), ClientError::InvalidId);
        assert_eq!(Client::public("a\n", "x").unwrap_err(), ClientError::InvalidId);
        assert_eq!(Client::public(&"x".repeat(49), "x").unwrap_err(), ClientError::InvalidId);
        let scoped = Client::public("s", "S").unwrap().with_scopes(ScopeSet::from_bits(1), ScopeSet::from_bits(2));
        assert_eq!(scoped.unwrap_err(), ClientError::DefaultScopesNotAllowed);
    }
}
