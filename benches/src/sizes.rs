//! RAM figures of the sample provider, computed with `size_of`.
//!
//! `no_std` and dependency-free apart from the library, so the same file is compiled on the host (the
//! `footprint` bin of `oauth2-devices-benches`) and on the Cortex-M4 (the `measure` bin of
//! `size-probe/`, which includes it with `#[path]`): each target reports its own layout.
//!
//! Per-entry figures are marginal costs: the difference between two providers one entry apart, so
//! they include whatever the table's container adds per slot (an `Option` tag, padding). The token-family
//! and limiter-source types are private, which is why their cost can only be seen this way; those two are
//! measured eight entries apart (as `tests/sizes.rs` does), so the provider's own alignment padding does
//! not blur them.

use core::mem::size_of;

use oauth2_devices::grant::PendingGrant;
use oauth2_devices::key::KeyRing;
use oauth2_devices::prelude::*;
use oauth2_devices::provider::{DeviceAuthorization, TokenResponse};

/// The sample configuration: the capacities of the gateway example.
pub type Sample = Provider<FixedClients<4>, FixedGrants<16>, 16, 16>;

type P<const C: usize, const G: usize, const F: usize, const S: usize> =
    Provider<FixedClients<C>, FixedGrants<G>, F, S>;

/// The marginal RAM cost of one pending grant (target: at most 32 bytes).
pub fn per_grant() -> usize {
    size_of::<P<4, 17, 16, 16>>() - size_of::<Sample>()
}

/// The marginal RAM cost of one token family (a connected device).
pub fn per_family() -> usize {
    (size_of::<P<4, 16, 24, 16>>() - size_of::<Sample>()) / 8
}

/// The marginal RAM cost of one limiter source: an entry in each of the two attempt budgets (wrong user
/// codes; failed authentication).
pub fn per_source() -> usize {
    (size_of::<P<4, 16, 16, 24>>() - size_of::<Sample>()) / 8
}

/// One row: what, bytes.
pub type Row = (&'static str, usize);

/// The figures, in print order.
pub fn rows() -> [Row; 12] {
    [
        ("Provider<FixedClients<4>, FixedGrants<16>, 16, 16>", size_of::<Sample>()),
        ("per pending grant: P<G=17> - P<G=16>", per_grant()),
        ("  size_of::<Option<PendingGrant>>()", size_of::<Option<PendingGrant>>()),
        ("per client: P<C=5> - P<C=4>", size_of::<P<5, 16, 16, 16>>() - size_of::<Sample>()),
        ("per token family: (P<F=24> - P<F=16>) / 8", per_family()),
        ("per limiter source, both budgets: (P<S=24> - P<S=16>) / 8", per_source()),
        ("  of which: FixedClients<4>", size_of::<FixedClients<4>>()),
        ("  of which: FixedGrants<16>", size_of::<FixedGrants<16>>()),
        ("  of which: KeyRing (pre-keyed HMAC, 2 keys)", size_of::<KeyRing>()),
        ("  of which: ScopeRegistry", size_of::<ScopeRegistry>()),
        ("returned: DeviceAuthorization", size_of::<DeviceAuthorization>()),
        ("returned: TokenResponse", size_of::<TokenResponse>()),
    ]
}
