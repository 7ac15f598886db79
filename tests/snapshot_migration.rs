//! A firmware update must not forget paired devices: a snapshot written by the first format (before
//! fair shares and connected devices) is read, migrated, and saved again in today's format.
#[path = "common/flow.rs"]
mod flow;

use flow::public;
use oauth2_devices::prelude::*;
use oauth2_devices::snapshot::{max_snapshot_len, SNAPSHOT_MAGIC, SNAPSHOT_VERSION};
use rand_core::SeedableRng;

/// Written by the crate at format 1 (commit 6a1defe) from `flow::provider` (seed 77): at 1000–1002 a
/// grant A approved by user 7 and exchanged (a live family with a refresh token), at 1003–1004 a grant
/// B approved by user 8 and not exchanged, at 1005–1006 a denied grant C, at 1007 an undecided grant D.
const V1: &str = "4f3244530101ef07c5f0ca8e0c040100c1f0ca8e0cc00ce8070700444c46444444574b05000401c2f0ca8e0cc30ceb070800464d464e5157444e05000202c3f0ca8e0cc50ced070000565243565a524b4705000303c4f0ca8e0cc70cef07000058575a524a47585605000000c1f0ca8e0ceaa19e010700000001527448b1289a95939e07b7dc91a4da23";
const A: &str = "RAEAAMHSuEFubRP8vGfrvlpQB8I5KKcI";
const ACCESS: &str = "QQEAAADB0rhBAAAABwAAAAAAABH6rNX582rlsQpdSxwesi4NHQ";
const REFRESH: &str = "UgEAAADB0rhBAAAAAHQG5upQhki6R3TxhGHmQ6A";
const B: &str = "RAEAAcHSuEKCibSnUlvYG78YP4b0J1xw";
const C: &str = "RAEAAsHSuEPeU5atDxdiV08OeHKXPdsU";
const D: &str = "RAEAA8HSuERtn3GWWtyX3RONQtbIimvE";

fn bytes(hex: &str) -> Vec<u8> {
    (0..hex.len()).step_by(2).map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap()).collect()
}

fn poll(code: &str) -> TokenRequest<'_> {
    TokenRequest { client: public("tv"), grant: Grant::DeviceCode { device_code: code } }
}

fn restored() -> flow::TestProvider {
    let mut p = flow::provider(&mut rand_chacha::ChaCha20Rng::seed_from_u64(1)).unwrap();
    let r = p.restore(1010, &bytes(V1)).expect("a format-1 snapshot is read");
    // The three decided grants and A's family; the undecided D is not kept.
    assert_eq!((r.grants, r.families, r.clock_was_behind), (3, 1, false));
    p
}

#[test]
fn a_format_1_snapshot_keeps_its_devices_and_tokens() {
    let mut p = restored();
    let bearer = format!("Bearer {ACCESS}");
    assert_eq!(p.check_bearer(1011, Some(&bearer), ScopeSet::EMPTY).map(|t| t.user), Ok(7));
    let devices: Vec<_> = p.families(1011, 7).collect();
    assert_eq!(devices.len(), 1);
    assert_eq!((devices[0].approved_at, devices[0].connected), (1007, true), "approval time: the snapshot's clock");
    let refresh =
        TokenRequest { client: public("tv"), grant: Grant::RefreshToken { refresh_token: REFRESH, scope: None } };
    assert!(p.token(1012, &refresh).is_ok());
    // B, approved before the update, gets its tokens now; C stays denied; D starts over.
    assert!(p.token(1013, &poll(B)).is_ok());
    assert_eq!(p.families(1013, 8).count(), 1);
    assert_eq!(p.token(1013, &poll(C)).unwrap_err().code, ErrorCode::AccessDenied);
    assert_eq!(p.token(1013, &poll(D)).unwrap_err().code, ErrorCode::InvalidGrant);
}

#[test]
fn a_spent_code_from_a_format_1_snapshot_is_still_a_replay() {
    let mut p = restored();
    assert_eq!(p.token(1011, &poll(A)).unwrap_err().code, ErrorCode::InvalidGrant);
    assert_eq!(p.check_bearer(1011, Some(&format!("Bearer {ACCESS}")), ScopeSet::EMPTY), Err(BearerError::Revoked));
}

#[test]
fn the_next_save_is_format_2_and_restores_the_same() {
    let p = restored();
    let mut buf = vec![0u8; max_snapshot_len(16, 16)];
    let n = p.save(&mut buf).unwrap();
    assert_eq!((&buf[..4], buf[4]), (&SNAPSHOT_MAGIC[..], SNAPSHOT_VERSION));
    assert_eq!(SNAPSHOT_VERSION, 2);
    let mut q = flow::provider(&mut rand_chacha::ChaCha20Rng::seed_from_u64(2)).unwrap();
    let r = q.restore(1011, &buf[..n]).unwrap();
    assert_eq!((r.grants, r.families), (3, 1));
    assert!(q.check_bearer(1011, Some(&format!("Bearer {ACCESS}")), ScopeSet::EMPTY).is_ok());
}
