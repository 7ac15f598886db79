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
