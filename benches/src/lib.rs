//! Fixtures shared by the benchmarks (`benches/provider.rs`) and the `footprint` bin.
//!
//! Not a library for users: it exists so that the benches and the figures in BENCHMARKS.md are built
//! from one sample provider.

pub mod sizes;

use oauth2_devices::heapless;
use oauth2_devices::prelude::*;
use oauth2_devices::provider::DeviceAuthorization;
use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;

pub use sizes::Sample as SampleProvider;

/// Scope names of the sample.
pub static SCOPES: &[&str] = oauth2_devices_support::sample::SCOPES;
/// The public client used by the benches (it receives refresh tokens).
pub const CLIENT_ID: &str = "tv-app";
/// The server key (the benches do not care that it is not secret).
pub const KEY: [u8; 32] = oauth2_devices_support::sample::BENCHES.key;
/// The rate-limit source of the approving user.
pub const SOURCE: &[u8] = b"user:42";
/// The approving user.
pub const USER: UserId = 42;
/// Seconds a device code lives in the sample configuration.
pub const CODE_LIFETIME: u64 = 600;

/// The credentials of the public client.
pub fn public() -> ClientCredentials<'static> {
    ClientCredentials::new(CLIENT_ID, None)
}

/// A provider, its RNG and a clock that only moves forward.
pub struct Fixture {
    /// The provider, with the capacities of the gateway example.
    pub provider: SampleProvider,
    /// A seeded CSPRNG (a hardware RNG on a device).
    pub rng: ChaCha20Rng,
    /// The caller's clock, in seconds.
    pub now: u64,
}

impl Default for Fixture {
    fn default() -> Self {
        Self::new()
    }
}

impl Fixture {
    /// A provider with three clients: `tv-app` (public, refresh tokens), `printer` (confidential) and
    /// `cli` (public, no refresh tokens).
    pub fn new() -> Self {
        let mut rng = ChaCha20Rng::seed_from_u64(8628);
        let provider = oauth2_devices_support::sample::BENCHES.provider(&mut rng).expect("provider");
        Self { provider, rng, now: 1_000 }
    }

    /// Moves the clock past the lifetime of every device code issued so far, so their slots can be
    /// reused (as in a server's steady state). Starts over with a fresh provider well before the 32-bit
    /// clock would overflow.
    pub fn expire_codes(&mut self) {
        self.now += CODE_LIFETIME + 1;
        if self.now > u64::from(u32::MAX) - 100 * 24 * 3600 {
            *self = Self::new();
        }
    }

    /// The scope set `profile`.
    pub fn profile(&self) -> ScopeSet {
        self.provider.scopes().parse("profile").expect("scope")
    }

    /// A device authorization for `tv-app` with scope `profile`.
    pub fn authorize(&mut self) -> DeviceAuthorization {
        let req = DeviceAuthorizationRequest { client: public(), scope: Some("profile") };
        self.provider.device_authorization(self.now, &req, &mut self.rng).expect("device authorization")
    }

    /// Authorizes and approves a grant; returns its device code.
    pub fn approved(&mut self) -> oauth2_devices::code::DeviceCode {
        let auth = self.authorize();
        let profile = self.profile();
        self.provider.approve(self.now, &auth.user_code.display(), SOURCE, USER, profile).expect("approve");
        auth.device_code
    }

    /// Runs one grant through the flow and returns `Bearer <access token>`.
    pub fn bearer_header(&mut self) -> heapless::String<64> {
        let code = self.approved();
        let poll = TokenRequest { client: public(), grant: Grant::DeviceCode { device_code: &code } };
        let tokens = self.provider.token(self.now, &poll).expect("tokens");
        let mut h = heapless::String::new();
        h.push_str("Bearer ").expect("fits");
        h.push_str(&tokens.access_token).expect("fits");
        h
    }
}
