//! The provider's state machine: an arbitrary sequence of operations against the small standard provider
//! of `oauth2_devices::fuzzing` (4 clients, 4 grant slots, 4 token families, 4 rate-limit sources; the
//! input picks the table-policy knobs: families per account, `abandon_after`, free failures), checked
//! step by step against a model kept here.
//!
//! The model predicts the exact outcome of every call from the crate's documented rules (the grant
//! table's policy: reclaim ranking, fair shares per source with 429 and 503 and their `Retry-After`;
//! family reservations at approval and the per-account limit; expiry, the grant state machine, the
//! slow_down rule, refresh rotation and replay, revocation from the devices page; the attempt budgets
//! of user codes and of client authentication, entry by entry; the serial lease; key rotation;
//! snapshots of format 2), and after every operation the provider's tables must equal the model's,
//! as must the connected devices of every user. On top of that, the safety properties are asserted by
//! name where they apply:
//! - no two grants in the table share a user code;
//! - a device code yields tokens at most once, never for a denied (or withdrawn) grant, never at or
//!   after its expiry;
//! - allocation never reclaims a grant that keeps its slot, a new family never overwrites a live one;
//! - after an allocation no source holds more than half the grant table; a source holding no grant is
//!   never refused for its share; 503 only when every slot is kept by a live grant;
//! - a forged or altered code or token is never accepted;
//! - after a refresh-token or device-code replay, or a revocation, the family's access tokens fail
//!   with `Revoked`;
//! - `live_grants` and `live_families` never exceed the capacities;
//! - wrong user-code guesses stay within twice the global budget in any window, and a source in its
//!   back-off is refused (and only then, or when the global budget is spent);
//! - the durable version moves exactly when durable state changes (polling and asking for codes
//!   never move it, except for a new serial lease).
#![no_main]

use arbitrary::{Arbitrary, Unstructured};
use hmac::{Hmac, Mac};
use libfuzzer_sys::fuzz_target;
use oauth2_devices::code::{DeviceCodeClaims, UserCode, USER_CODE_ALPHABET};
use oauth2_devices::fuzzing::{
    self, family_table, grant_table, next_serial, server_key, FuzzProvider, CLIENTS, CLIENT_SECRET, SCOPES,
};
use oauth2_devices::grant::{GrantState, PendingGrant};
use oauth2_devices::key::KeyRing;
use oauth2_devices::limit::{LimitConfig, RateLimited};
use oauth2_devices::prelude::*;
use oauth2_devices::provider::{
    BearerError, DeviceInfo, GrantInfo, Introspection, TokenInfo, TokenResponse, LAST_USED_GRANULARITY, SERIAL_LEASE,
    SLOW_DOWN_STEP,
};
use oauth2_devices::snapshot::{max_snapshot_len, Restored, SERIAL_RESTORE_GAP, SNAPSHOT_VERSION};
use oauth2_devices::token::{AccessClaims, RefreshClaims};
use rand_core::SeedableRng;
use sha2::Sha256;
use std::cell::Cell;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::OnceLock;

const GRANT_SLOTS: usize = 4;
const FAMILY_SLOTS: usize = 4;
const SOURCE_SLOTS: usize = 4;
const MAX_OPS: usize = 48;
const UNKNOWN_CLIENT: &str = "nobody";

#[path = "provider/checks.rs"]
mod checks;
#[path = "provider/model.rs"]
mod model;
#[path = "provider/ops.rs"]
mod ops;

use model::Harness;
use ops::Input;

// The grant record's documented size (the family record's is pinned by the library's own tests).
const _: () = assert!(std::mem::size_of::<PendingGrant>() == 32);
const _: () = assert!(std::mem::size_of::<Option<PendingGrant>>() == 32);

pub(crate) static BEARER_OK: AtomicU32 = AtomicU32::new(0);

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
