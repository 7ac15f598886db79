//! The sample providers: one description ([`Sample`]) per use, one way to build it.

use oauth2_devices::prelude::*;
use rand_core::CryptoRng;

/// The scope names of every sample.
pub static SCOPES: &[&str] = &["profile", "email", "sensors:read"];

/// A provider with the capacities of the Embassy gateway (16 grants, 16 families, 16 sources).
pub type SampleProvider = Provider<FixedClients<4>, FixedGrants<16>, 16, 16>;

/// One client of a sample.
#[derive(Debug, Clone, Copy)]
pub struct SampleClient {
    /// Its `client_id`.
    pub id: &'static str,
    /// Its display name.
    pub name: &'static str,
    /// A confidential client's secret.
    pub secret: Option<&'static str>,
    /// A client limited to one scope (its default as well).
    pub only_scope: Option<&'static str>,
    /// Whether it receives refresh tokens.
    pub refresh_tokens: bool,
}

impl SampleClient {
    /// A public client with refresh tokens.
    pub const fn public(id: &'static str, name: &'static str) -> Self {
        Self { id, name, secret: None, only_scope: None, refresh_tokens: true }
    }

    /// A confidential client with refresh tokens.
    pub const fn confidential(id: &'static str, name: &'static str, secret: &'static str) -> Self {
        Self { id, name, secret: Some(secret), only_scope: None, refresh_tokens: true }
    }

    /// The same client limited to `scope`.
    pub const fn only(mut self, scope: &'static str) -> Self {
        self.only_scope = Some(scope);
        self
    }

    /// The same client without refresh tokens.
    pub const fn without_refresh_tokens(mut self) -> Self {
        self.refresh_tokens = false;
        self
    }
}

/// What a sample provider is made of.
#[derive(Debug, Clone, Copy)]
pub struct Sample {
    /// Up to four clients, registered in this order.
    pub clients: &'static [SampleClient],
    /// The server key (id 1).
    pub key: [u8; 32],
    /// The verification URI.
    pub verification_uri: &'static str,
    /// Salt for the client secrets' hashes; `None` draws it from the RNG.
    pub secret_salt: Option<[u8; 16]>,
}

/// Why a sample could not be built (a sample that does not fit the library's rules).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SampleError(pub &'static str);

impl core::fmt::Display for SampleError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "sample provider: {}", self.0)
    }
}

/// The library tests' sample: `tv` (public), `printer` (confidential, secret `s3cret`) and `cli`
/// (public, `sensors:read` only, no refresh tokens).
pub const TESTS: Sample = Sample {
    clients: &[
        SampleClient::public("tv", "Living-room TV"),
        SampleClient::confidential("printer", "Office printer", "s3cret"),
        SampleClient::public("cli", "Command line").only("sensors:read").without_refresh_tokens(),
    ],
    key: [0x5a; 32],
    verification_uri: "https://gw.example/activate",
    secret_salt: None,
};

/// The HTTP tests' sample, the gateways' clients: `tv-demo` (public), `printer-demo` (confidential,
/// secret `printer-secret`) and `evil` (public, a name full of HTML, for the page's escaping).
pub const HTTP: Sample = Sample {
    clients: &[
        SampleClient::public("tv-demo", "Demo TV"),
        SampleClient::confidential("printer-demo", "Demo printer", "printer-secret"),
        SampleClient::public("evil", "<script>alert(1)</script> & \"Co\""),
    ],
    key: [0x11; 32],
    verification_uri: "http://gw.test/activate",
    secret_salt: None,
};

/// The benchmarks' sample: `tv-app` (public), `printer` (confidential, secret `s3cret`) and `cli`
/// (public, no refresh tokens).
pub const BENCHES: Sample = Sample {
    clients: &[
        SampleClient::public("tv-app", "Living-room TV"),
        SampleClient::confidential("printer", "Office printer", "s3cret"),
        SampleClient::public("cli", "Command line").without_refresh_tokens(),
    ],
    key: [0x42; 32],
    verification_uri: "https://gw.local/activate",
    secret_salt: None,
};

/// The size probe's sample: the benchmarks' first two clients, a fixed salt (no RNG before `init`).
pub const PROBE: Sample = Sample {
    clients: &[
        SampleClient::public("tv-app", "Living-room TV"),
        SampleClient::confidential("printer", "Office printer", "s3cret"),
    ],
    key: [0x42; 32],
    verification_uri: "https://gw.local/activate",
    secret_salt: Some([7; 16]),
};

impl Sample {
    /// The scope registry of every sample.
    pub fn scopes(&self) -> Result<ScopeRegistry, SampleError> {
        ScopeRegistry::new(SCOPES).map_err(|_| SampleError("scopes"))
    }

    /// The clients, registered in order; `rng` salts the secrets unless [`Sample::secret_salt`] does.
    pub fn clients<R: CryptoRng + ?Sized>(&self, rng: &mut R) -> Result<FixedClients<4>, SampleError> {
        let salt = self.secret_salt;
        self.make_clients(|secret| match salt {
            Some(salt) => SecretHash::with_salt(secret, salt),
            None => SecretHash::new(secret, rng),
        })
    }

    /// The clients, their secrets hashed with `salt` (no RNG: before a provider's `init`).
    pub fn clients_with_salt(&self, salt: [u8; 16]) -> Result<FixedClients<4>, SampleError> {
        self.make_clients(|secret| SecretHash::with_salt(secret, salt))
    }

    fn make_clients(&self, mut hash: impl FnMut(&str) -> SecretHash) -> Result<FixedClients<4>, SampleError> {
        let scopes = self.scopes()?;
        let mut clients = FixedClients::<4>::new();
        for c in self.clients {
            let client = match c.secret {
                None => Client::public(c.id, c.name),
                Some(secret) => Client::confidential(c.id, c.name, hash(secret)),
            }
            .map_err(|_| SampleError("client"))?;
            let client = match c.only_scope {
                Some(name) => {
                    let only = scopes.parse(name).map_err(|_| SampleError("scope"))?;
                    client.with_scopes(only, only).map_err(|_| SampleError("client scopes"))?
                }
                None => client,
            };
            clients.add(client.with_refresh_tokens(c.refresh_tokens)).map_err(|_| SampleError("too many clients"))?;
        }
        Ok(clients)
    }

    /// The configuration: the library's defaults and [`Sample::verification_uri`].
    pub fn config(&self) -> Config {
        Config::new(self.verification_uri)
    }

    /// The server key.
    pub fn server_key(&self) -> ServerKey {
        ServerKey::new(1, &self.key)
    }

    /// The provider, with any capacities.
    pub fn build<const G: usize, const F: usize, const S: usize, R: CryptoRng + ?Sized>(
        &self,
        rng: &mut R,
    ) -> Result<Provider<FixedClients<4>, FixedGrants<G>, F, S>, SampleError> {
        let clients = self.clients(rng)?;
        Provider::build(self.config(), self.server_key(), self.scopes()?, clients, FixedGrants::new(), rng)
            .map_err(|_| SampleError("provider"))
    }

    /// The provider with the Embassy gateway's capacities.
    pub fn provider<R: CryptoRng + ?Sized>(&self, rng: &mut R) -> Result<SampleProvider, SampleError> {
        self.build(rng)
    }
}

/// The credentials of public client `id`.
pub fn public(id: &str) -> ClientCredentials<'_> {
    ClientCredentials::new(id, None)
}
