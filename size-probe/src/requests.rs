//! The requests a gateway handles, through the sans-IO core: typed request in, JSON (or a
//! `WWW-Authenticate` challenge) out. Output buffers are the caller's, so a stack figure measured around
//! one of these functions is the library's own use.

use core::fmt::Write as _;

use oauth2_devices::heapless;
use oauth2_devices::prelude::*;
use oauth2_devices::provider::{DeviceAuthorization, TokenResponse};
use oauth2_devices_support::sample::{self, Sample};
use rand_core::CryptoRng;

/// The sample configuration: the capacities of the gateway example.
pub type Probe = Provider<FixedClients<4>, FixedGrants<16>, 16, 16>;

/// Scope names.
pub static SCOPES: &[&str] = sample::SCOPES;
/// The public client.
pub const CLIENT_ID: &str = "tv-app";
/// The confidential client (for introspection and revocation).
pub const CONFIDENTIAL_ID: &str = "printer";
/// Its secret.
pub const SECRET: &str = "s3cret";

/// The probe's sample (`oauth2_devices_support::sample::PROBE`), its secrets hashed with `salt`.
fn sample(salt: [u8; 16]) -> Sample {
    Sample { secret_salt: Some(salt), ..sample::PROBE }
}

/// Credentials of a public client.
pub fn public(client_id: &str) -> ClientCredentials<'_> {
    ClientCredentials::new(client_id, None)
}

/// A provider with a public client (`tv-app`, refresh tokens) and a confidential one (`printer`).
pub fn provider<R: CryptoRng>(rng: &mut R, key: &[u8; 32], salt: [u8; 16]) -> Option<Probe> {
    let s = sample(salt);
    let clients = s.clients(rng).ok()?;
    Provider::build(s.config(), ServerKey::new(1, key), s.scopes().ok()?, clients, FixedGrants::new(), rng).ok()
}

/// The same provider built in place: `Provider::new` (a `const fn`, so a firmware puts it in a
/// `static`) here, then [`init_in_place`] with the configuration.
pub fn new_in_place(salt: [u8; 16]) -> Option<Probe> {
    Some(Provider::new(sample(salt).clients_with_salt(salt).ok()?, FixedGrants::new()))
}

/// `Provider::init` on a provider that already lives where it will stay.
pub fn init_in_place<R: CryptoRng>(p: &mut Probe, rng: &mut R, key: &[u8; 32]) -> bool {
    let Ok(scopes) = ScopeRegistry::new(SCOPES) else { return false };
    p.init(Config::new("https://gw.local/activate"), ServerKey::new(1, key), scopes, rng).is_ok()
}

/// `POST /device_authorization`: the codes and their JSON body (or the error's JSON body).
pub fn device_authorization<R: CryptoRng>(
    p: &mut Probe,
    now: u64,
    req: &DeviceAuthorizationRequest<'_>,
    rng: &mut R,
    out: &mut [u8],
) -> Result<DeviceAuthorization, ErrorCode> {
    match p.device_authorization(now, req, rng) {
        Ok(auth) => {
            auth.write_json(p.config(), out).map_err(|_| ErrorCode::ServerError)?;
            Ok(auth)
        }
        Err(e) => {
            let _ = e.write_json(out);
            Err(e.code)
        }
    }
}

/// `POST /token`, either grant: the tokens and their JSON body, or the error's JSON body.
pub fn token(p: &mut Probe, now: u64, req: &TokenRequest<'_>, out: &mut [u8]) -> Result<TokenResponse, ErrorCode> {
    match p.token(now, req) {
        Ok(t) => {
            t.write_json(p.scopes(), out).map_err(|_| ErrorCode::ServerError)?;
            Ok(t)
        }
        Err(e) => {
            let _ = e.write_json(out);
            Err(e.code)
        }
    }
}

/// The verification page's approval of a typed user code.
pub fn approve(
    p: &mut Probe,
    now: u64,
    user_code: &str,
    source: &[u8],
    user: UserId,
    granted: ScopeSet,
) -> Result<(), ApproveError> {
    p.approve(now, user_code, source, user, granted).map(|_| ())
}

/// A protected resource: checks `Authorization`, and on refusal writes the `WWW-Authenticate` value.
pub fn check_bearer(
    p: &Probe,
    now: u64,
    authorization: Option<&str>,
    required: ScopeSet,
    challenge: &mut heapless::String<192>,
) -> Result<UserId, BearerError> {
    match p.check_bearer(now, authorization, required) {
        Ok(info) => Ok(info.user),
        Err(e) => {
            challenge.clear();
            let _ = e.write_challenge("gateway", required, p.scopes(), challenge);
            Err(e)
        }
    }
}

/// `Authorization: Bearer <token>`.
pub fn bearer_header(token: &str) -> heapless::String<64> {
    let mut h = heapless::String::new();
    let _ = write!(h, "Bearer {token}");
    h
}
