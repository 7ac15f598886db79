//! The provider on the record store: persist, restore with a trusted or untrusted clock, damage, power
//! cuts at every byte of a persist, refresh rotation across a reboot, migration of an old snapshot.
#[path = "common/flow.rs"]
mod flow;
#[path = "store_common/mod.rs"]
mod store_common;

use flow::{public, TestProvider};
use oauth2_devices::prelude::*;
use oauth2_devices::provider::{BearerError, DeviceAuthorization, TokenResponse};
use oauth2_devices::storage::{
    capture_records, find_legacy_snapshot, provider_store_config, Capture, Legacy, Migrated, PersistReport,
    RecordStore, SnapshotSlots, StoreError, StoreStatus,
};
use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;
use store_common::{block_on, frame_kind, frame_seq, raw_items, rebuilt, renumber, FakeFlash, KIND_COMMIT};

type Flash = FakeFlash<4, 1024>;
const LEN: usize = 16 * 1024;
type Store = RecordStore<Flash, 256, 16>;

fn store(flash: Flash) -> Store {
    RecordStore::new(flash, 0, LEN as u32, provider_store_config(16, 16)).expect("layout")
}

fn setup(seed: u64) -> (TestProvider, ChaCha20Rng) {
    let mut rng = ChaCha20Rng::seed_from_u64(seed);
    (flow::provider(&mut rng).unwrap(), rng)
}

/// A fresh store, loaded, with `p` restored (empty) from it.
fn fresh(p: &mut TestProvider) -> Store {
    let mut s = store(Flash::new(LEN));
    let r = block_on(p.restore_from(0, ClockTrust::Untrusted, &mut s)).unwrap();
    assert_eq!(r.status, StoreStatus::Empty);
    block_on(p.persist(&mut s)).unwrap();
    s
}

/// Boots a new provider (same key, other RNG) from a copy of `flash`.
fn reboot(flash: &Flash, now: u64, trust: ClockTrust) -> (TestProvider, StoreStatus, Store) {
    let mut q = setup(999).0;
    let mut s = store(flash.powered());
    let r = block_on(q.restore_from(now, trust, &mut s)).unwrap();
    block_on(q.persist(&mut s)).unwrap();
    (q, r.status, s)
}

fn start(p: &mut TestProvider, rng: &mut ChaCha20Rng, now: u64) -> DeviceAuthorization {
    p.device_authorization(now, &DeviceAuthorizationRequest { client: public("tv"), scope: None }, rng).unwrap()
}

fn poll(code: &str) -> TokenRequest<'_> {
    TokenRequest { client: public("tv"), grant: Grant::DeviceCode { device_code: code } }
}

fn refresh(t: &TokenResponse) -> TokenRequest<'_> {
    TokenRequest {
        client: public("tv"),
        grant: Grant::RefreshToken { refresh_token: t.refresh_token.as_ref().unwrap(), scope: None },
    }
}

fn bearer(p: &TestProvider, now: u64, t: &TokenResponse) -> Result<(), BearerError> {
    p.check_bearer(now, Some(&format!("Bearer {}", t.access_token)), ScopeSet::EMPTY).map(|_| ())
}

/// Pairs a device at `now` and persists after each durable step.
fn pair(
    p: &mut TestProvider,
    rng: &mut ChaCha20Rng,
    s: &mut Store,
    now: u64,
    user: u32,
) -> (DeviceAuthorization, TokenResponse) {
    let a = start(p, rng, now);
    p.approve(now + 1, &a.user_code.display(), b"u", user, ScopeSet::EMPTY).unwrap();
    block_on(p.persist(s)).unwrap();
    let t = p.token(now + 2, &poll(&a.device_code)).unwrap();
    block_on(p.persist(s)).unwrap();
    (a, t)
}

/// The scenario of the reboot tests: A revoked, B refreshed (its first refresh token spent), C denied,
/// D exchanged (its code spent). Returns the flash and the tokens.
struct Scenario {
    flash: Flash,
    a: TokenResponse,
    b_old: TokenResponse,
    b_new: TokenResponse,
    c: DeviceAuthorization,
    d: (DeviceAuthorization, TokenResponse),
}

fn scenario() -> Scenario {
    let (mut p, mut rng) = setup(1);
    let mut s = fresh(&mut p);
    let (_, a) = pair(&mut p, &mut rng, &mut s, 1000, 1);
    let (_, b_old) = pair(&mut p, &mut rng, &mut s, 1010, 2);
    let d = pair(&mut p, &mut rng, &mut s, 1020, 3);
    p.revoke(1030, &TokenQuery { client: public("tv"), token: &a.access_token }).unwrap();
    let r = block_on(p.persist(&mut s)).unwrap();
    assert!(r.records == 1 && !r.checkpoint, "one record for a revocation: {r:?}");
    let b_new = p.token(1040, &refresh(&b_old)).unwrap();
    block_on(p.persist(&mut s)).unwrap();
    let c = start(&mut p, &mut rng, 1050);
    p.deny(1051, &c.user_code.display(), b"u").unwrap();
    block_on(p.persist(&mut s)).unwrap();
    // Nothing changed: nothing written.
    assert_eq!(block_on(p.persist(&mut s)).unwrap().records, 0);
    Scenario { flash: s.into_inner(), a, b_old, b_new, c, d }
}

/// Everything the scenario made durable holds in `q` at `now`.
fn assert_whole(q: &mut TestProvider, sc: &Scenario, now: u64) {
    assert_eq!(bearer(q, now, &sc.a), Err(BearerError::Revoked), "a revoked token stays revoked");
    assert!(bearer(q, now, &sc.b_new).is_ok(), "B's current access token works");
    assert!(bearer(q, now, &sc.d.1).is_ok(), "D's access token works");
    assert_eq!(q.token(now, &refresh(&sc.a)).unwrap_err().code, ErrorCode::InvalidGrant);
    assert_eq!(q.token(now, &poll(&sc.c.device_code)).unwrap_err().code, ErrorCode::AccessDenied);
    // A spent code stays spent (and its replay revokes D, as before the reboot).
    assert_eq!(q.token(now, &poll(&sc.d.0.device_code)).unwrap_err().code, ErrorCode::InvalidGrant);
    assert_eq!(bearer(q, now, &sc.d.1), Err(BearerError::Revoked));
}

#[test]
fn trusted_reboot_keeps_grants_families_and_revocations() {
    let sc = scenario();
    // The clock restarted at 5 but is trusted (say, an RTC set by SNTP that the test pretends is right).
    let (mut q, status, _) = reboot(&sc.flash, 5, ClockTrust::Trusted);
    assert_eq!(status, StoreStatus::Restored);
    assert_whole(&mut q, &sc, 1100);
    // The spent refresh token stays spent (a replay: it revokes B).
    let (mut q, _, _) = reboot(&sc.flash, 1100, ClockTrust::Trusted);
    assert_eq!(q.token(1100, &refresh(&sc.b_old)).unwrap_err().code, ErrorCode::InvalidGrant);
    // The rotated one works after the reboot: no false replay.
    let (mut q, _, _) = reboot(&sc.flash, 1100, ClockTrust::Untrusted);
    let t = q.token(1101, &refresh(&sc.b_new)).unwrap();
    assert!(bearer(&q, 1102, &t).is_ok());
}

#[test]
fn untrusted_clock_behind_fails_safe_and_ahead_restores() {
    let sc = scenario();
    let (mut q, status, mut s) = reboot(&sc.flash, 5, ClockTrust::Untrusted);
    assert_eq!(status, StoreStatus::ClockUntrusted);
    assert_eq!(q.live_families(6), 0);
    assert!(bearer(&q, 6, &sc.b_new).is_err() && bearer(&q, 6, &sc.d.1).is_err());
    assert_eq!(q.token(6, &refresh(&sc.b_new)).unwrap_err().code, ErrorCode::InvalidGrant);
    // New pairings work, and the dropped state was written: the next boot does not bring it back.
    let mut rng = ChaCha20Rng::seed_from_u64(7);
    let (_, t) = pair(&mut q, &mut rng, &mut s, 10, 9);
    let (q2, status, _) = reboot(&s.into_inner(), 2000, ClockTrust::Untrusted);
    assert_eq!(status, StoreStatus::Restored);
    assert!(bearer(&q2, 2000, &t).is_ok());
    assert!(bearer(&q2, 2000, &sc.b_new).is_err());
    // An untrusted clock that is not behind restores everything.
    let (mut q, status, _) = reboot(&sc.flash, 1100, ClockTrust::Untrusted);
    assert_eq!(status, StoreStatus::Restored);
    assert_whole(&mut q, &sc, 1100);
}

/// The index of the newest commit frame among the raw queue items.
fn newest_commit(items: &[Vec<u8>]) -> usize {
    items.iter().rposition(|i| frame_kind(i) == KIND_COMMIT).unwrap()
}

#[test]
fn damage_keeps_revoked_tokens_revoked_and_says_so() {
    // Persist a revocation last, then damage that newest commit in three ways.
    let (mut p, mut rng) = setup(3);
    let mut s = fresh(&mut p);
    let (_, a) = pair(&mut p, &mut rng, &mut s, 100, 1);
    let (_, b) = pair(&mut p, &mut rng, &mut s, 110, 2);
    p.revoke(120, &TokenQuery { client: public("tv"), token: &a.access_token }).unwrap();
    block_on(p.persist(&mut s)).unwrap();
    let flash = s.into_inner();
    let items = raw_items(&flash);
    let last = newest_commit(&items);

    let mut flipped = items.clone();
    let n = flipped[last].len();
    flipped[last][n / 2] ^= 0x10;
    let mut raised = items.clone();
    // The older commit renumbered as if it were the newest: no key, so its tag fails.
    let older = raised[..last].iter().rposition(|i| frame_kind(i) == KIND_COMMIT).unwrap();
    let seq = frame_seq(&raised[last]);
    let mut copy = raised[older].clone();
    renumber(&mut copy, seq);
    raised[last] = copy;
    let all_bad: Vec<Vec<u8>> = items
        .iter()
        .map(|i| {
            let mut i = i.clone();
            let n = i.len();
            i[n - 1] ^= 1;
            i
        })
        .collect();
    for (name, damaged, expected) in [
        ("flip in the newest record", flipped, StoreStatus::Corrupted),
        ("raised sequence number", raised, StoreStatus::Corrupted),
        ("everything bad", all_bad, StoreStatus::NothingRestorable),
    ] {
        let flash: Flash = rebuilt(LEN, &damaged);
        let (mut q, status, mut st) = reboot(&flash, 200, ClockTrust::Trusted);
        assert_eq!(status, expected, "{name}");
        assert!(bearer(&q, 200, &a).is_err(), "{name}: revoked token accepted");
        assert_eq!(q.token(200, &refresh(&a)).unwrap_err().code, ErrorCode::InvalidGrant, "{name}");
        assert!(bearer(&q, 200, &b).is_err(), "{name}: fail safe drops the families");
        // The fail-safe state was checkpointed: the next boot is clean and still has nothing revoked.
        let mut rng = ChaCha20Rng::seed_from_u64(8);
        let (_, t) = pair(&mut q, &mut rng, &mut st, 210, 5);
        let (q2, status, _) = reboot(&st.into_inner(), 300, ClockTrust::Trusted);
        assert_eq!(status, StoreStatus::Restored, "{name}: recovered after the checkpoint");
        assert!(bearer(&q2, 300, &t).is_ok() && bearer(&q2, 300, &a).is_err(), "{name}");
    }
}

/// A refresh rotation made durable by `write` (a persist, or a capture written later) on a flash that
/// loses power after every possible number of bytes: each reboot holds exactly one of the two refresh
/// tokens, the new one once `write` returned `Ok`, and both outcomes occur.
fn power_cut_at_every_byte(seed: u64, write: fn(&mut TestProvider, &mut Store) -> bool) {
    let (mut p, mut rng) = setup(seed);
    let mut s = fresh(&mut p);
    let (_, t0) = pair(&mut p, &mut rng, &mut s, 100, 1);
    let before = s.into_inner();
    let (mut old_seen, mut new_seen) = (0, 0);
    let mut cut = 0usize;
    loop {
        // A provider that made the rotation, writing onto a flash that loses power after `cut` bytes.
        let mut s = store(before.clone());
        let mut q = setup(seed).0;
        block_on(q.restore_from(150, ClockTrust::Trusted, &mut s)).unwrap();
        block_on(q.persist(&mut s)).unwrap();
        let t1q = q.token(200, &refresh(&t0)).unwrap();
        let mut f = s.into_inner();
        f.budget = Some(cut);
        let mut s = store(f);
        // The store must know its log: reload (reads only) before the cut write.
        block_on(s.load(q.keys(), |_| {})).unwrap();
        let done = write(&mut q, &mut s);
        let flash = s.into_inner().powered();
        // Exactly one of the two refresh tokens is the current one after the reboot.
        let (mut a, status, _) = reboot(&flash, 300, ClockTrust::Trusted);
        assert_eq!(status, StoreStatus::Restored, "cut {cut}");
        let new_ok = a.token(300, &refresh(&t1q)).is_ok();
        let (mut b, _, _) = reboot(&flash, 300, ClockTrust::Trusted);
        let old_ok = b.token(300, &refresh(&t0)).is_ok();
        assert!(new_ok != old_ok, "cut {cut}: new {new_ok}, old {old_ok}");
        if done {
            assert!(new_ok, "a write that returned Ok is durable");
            break;
        }
        if new_ok {
            new_seen += 1
        } else {
            old_seen += 1
        }
        cut += 1;
        assert!(cut < 100_000, "bounded");
    }
    println!("{cut} cut points: {old_seen} left the old state, {new_seen} the new one");
    assert!(old_seen > 0 && new_seen > 0, "cuts before and after the commit frame was whole");
}

#[test]
fn power_cut_at_every_byte_of_a_persist_leaves_the_old_or_the_new_state() {
    power_cut_at_every_byte(4, |q, s| block_on(q.persist(s)).is_ok());
}

#[test]
fn a_legacy_snapshot_migrates_and_keeps_a_paired_device() {
    let (mut p, mut rng) = setup(5);
    let a = start(&mut p, &mut rng, 100);
    p.approve(101, &a.user_code.display(), b"u", 1, ScopeSet::EMPTY).unwrap();
    let t = p.token(102, &poll(&a.device_code)).unwrap();
    let mut buf = vec![0u8; 4096];
    let n = p.save(&mut buf).unwrap();
    let mut slots = SnapshotSlots::new(FakeFlash::<4, 1024>::new(8 * 1024), 0, 8 * 1024).unwrap();
    slots.store(&buf[..n]).unwrap();
    let mut old = slots.into_inner();

    // Firmware update: a new store, empty; the old range still holds the snapshot.
    let mut q = setup(999).0;
    let mut s = store(Flash::new(LEN));
    let r = block_on(q.restore_from(200, ClockTrust::Untrusted, &mut s)).unwrap();
    assert_eq!(r.status, StoreStatus::Empty);
    let mut legacy_buf = vec![0u8; 4096];
    let legacy = block_on(find_legacy_snapshot(&mut old, 0, 8 * 1024, &mut legacy_buf)).unwrap();
    assert!(matches!(legacy, Legacy::Intact(_)));
    let m = block_on(q.migrate_legacy(200, ClockTrust::Untrusted, legacy, &mut s)).unwrap();
    assert_eq!(m, Migrated::Restored { grants: 1, families: 1, clock_was_behind: false });
    // The next boot needs only the new store.
    let (mut q2, status, _) = reboot(&s.into_inner(), 300, ClockTrust::Untrusted);
    assert_eq!(status, StoreStatus::Restored);
    assert!(bearer(&q2, 300, &t).is_ok());
    let t2 = q2.token(301, &refresh(&t)).unwrap();
    assert!(bearer(&q2, 302, &t2).is_ok());
    assert_eq!(q2.token(303, &poll(&a.device_code)).unwrap_err().code, ErrorCode::InvalidGrant);
}

#[test]
fn power_cut_at_every_byte_of_a_migration_leaves_the_empty_or_the_migrated_store() {
    let (mut p, mut rng) = setup(6);
    let a = start(&mut p, &mut rng, 100);
    p.approve(101, &a.user_code.display(), b"u", 1, ScopeSet::EMPTY).unwrap();
    let t = p.token(102, &poll(&a.device_code)).unwrap();
    let mut buf = vec![0u8; 4096];
    let n = p.save(&mut buf).unwrap();
    let snapshot = buf[..n].to_vec();
    let (mut empty, mut migrated) = (0, 0);
    for cut in 0..100_000usize {
        let mut q = setup(999).0;
        let mut s = store(Flash::new(LEN).cut_after(cut));
        assert_eq!(block_on(q.restore_from(200, ClockTrust::Untrusted, &mut s)).unwrap().status, StoreStatus::Empty);
        let legacy = Legacy::Intact(oauth2_devices::storage::LegacySnapshot { seq: 1, payload: &snapshot });
        let done = block_on(q.migrate_legacy(200, ClockTrust::Untrusted, legacy, &mut s)).is_ok();
        let flash = s.into_inner().powered();
        let (q2, status, _) = reboot(&flash, 300, ClockTrust::Untrusted);
        assert!(matches!(status, StoreStatus::Empty | StoreStatus::Restored), "cut {cut}: {status:?}");
        if bearer(&q2, 300, &t).is_ok() {
            migrated += 1;
        } else {
            // Nothing of the snapshot arrived: the store is empty (the next boot migrates again) or holds
            // only a state before the migration's checkpoint.
            assert_eq!(q2.live_families(300), 0, "cut {cut}");
            empty += 1;
            assert!(!done, "cut {cut}: a migration that returned Ok is durable");
        }
        if done {
            println!("{cut} cut points: {empty} left no state, {migrated} the migrated one");
            assert!(empty > 0);
            return;
        }
    }
    panic!("the migration never completed");
}

#[test]
fn many_changes_between_persists_overflow_into_one_checkpoint() {
    let (mut p, mut rng) = setup(7);
    let mut s = fresh(&mut p);
    let mut tokens = Vec::new();
    for i in 0..6u32 {
        let a = start(&mut p, &mut rng, 100 + u64::from(i));
        p.approve(110, &a.user_code.display(), b"u", i, ScopeSet::EMPTY).unwrap();
        tokens.push(p.token(120, &poll(&a.device_code)).unwrap());
    }
    // Twelve slots changed: more than the journal lists.
    let r = block_on(p.persist(&mut s)).unwrap();
    assert!(r.checkpoint && r.records >= 13, "{r:?}");
    let (q, status, _) = reboot(&s.into_inner(), 130, ClockTrust::Untrusted);
    assert_eq!(status, StoreStatus::Restored);
    assert!(tokens.iter().all(|t| bearer(&q, 130, t).is_ok()));
}

#[test]
fn snapshot_restore_with_a_trusted_clock_keeps_everything() {
    let (mut p, mut rng) = setup(8);
    let a = start(&mut p, &mut rng, 1000);
    p.approve(1001, &a.user_code.display(), b"u", 1, ScopeSet::EMPTY).unwrap();
    let t = p.token(1002, &poll(&a.device_code)).unwrap();
    let mut buf = vec![0u8; 4096];
    let n = p.save(&mut buf).unwrap();
    // Behind the snapshot's clock: the old call fails safe, a trusted clock keeps the device.
    let mut q = setup(999).0;
    assert!(q.restore(5, &buf[..n]).unwrap().clock_was_behind);
    assert!(bearer(&q, 1003, &t).is_err());
    let mut q = setup(999).0;
    let r = q.restore_with(5, ClockTrust::Trusted, &buf[..n]).unwrap();
    assert!(!r.clock_was_behind && r.families == 1);
    assert_eq!(q.clock(), 1002);
    assert!(bearer(&q, 5, &t).is_ok());
}

// Capture, then write: the two-step persist of a provider shared behind a lock.

type Cap = Capture<{ capture_records(16, 16) }>;

/// Captures and writes (outside any lock in a server); the report.
fn capture_write(p: &mut TestProvider, s: &mut Store, cap: &mut Cap) -> Option<PersistReport> {
    let due = s.checkpoint_due();
    if !p.capture(cap, due).unwrap() {
        return None;
    }
    Some(block_on(cap.write(s)).unwrap())
}

#[test]
fn capture_then_write_keeps_what_persist_keeps() {
    let (mut p, mut rng) = setup(1);
    let mut s = fresh(&mut p);
    let mut cap = Cap::new();
    assert!(capture_write(&mut p, &mut s, &mut cap).is_none(), "nothing changed: nothing captured");
    let a = start(&mut p, &mut rng, 1000);
    p.approve(1001, &a.user_code.display(), b"u", 1, ScopeSet::EMPTY).unwrap();
    let r = capture_write(&mut p, &mut s, &mut cap).unwrap();
    assert!(!r.checkpoint && r.records >= 1, "{r:?}");
    let t = p.token(1002, &poll(&a.device_code)).unwrap();
    capture_write(&mut p, &mut s, &mut cap).unwrap();
    let rotated = p.token(1003, &refresh(&t)).unwrap();
    capture_write(&mut p, &mut s, &mut cap).unwrap();
    assert!(cap.is_empty(), "a capture is empty after its write");
    let (mut q, status, _) = reboot(&s.into_inner(), 1010, ClockTrust::Trusted);
    assert_eq!(status, StoreStatus::Restored);
    assert!(bearer(&q, 1010, &rotated).is_ok(), "the rotated access token works");
    // The spent refresh token is a replay: it revokes the family; the device code stays spent.
    assert_eq!(q.token(1010, &refresh(&t)).unwrap_err().code, ErrorCode::InvalidGrant);
    assert_eq!(q.token(1010, &poll(&a.device_code)).unwrap_err().code, ErrorCode::InvalidGrant);
}

#[test]
fn a_capture_is_one_moment_and_later_changes_go_with_the_next() {
    let (mut p, mut rng) = setup(2);
    let mut s = fresh(&mut p);
    let mut cap = Cap::new();
    let a = start(&mut p, &mut rng, 100);
    p.approve(101, &a.user_code.display(), b"u", 1, ScopeSet::EMPTY).unwrap();
    let t = p.token(102, &poll(&a.device_code)).unwrap();
    assert!(p.capture(&mut cap, false).unwrap());
    // A request revokes the token while the capture is being written.
    p.revoke(103, &TokenQuery { client: public("tv"), token: &t.access_token }).unwrap();
    block_on(cap.write(&mut s)).unwrap();
    let flash = s.into_inner();
    let (q, _, _) = reboot(&flash, 110, ClockTrust::Trusted);
    assert!(bearer(&q, 110, &t).is_ok(), "the capture holds the state before the revocation");
    let mut s = store(flash);
    block_on(s.load(p.keys(), |_| {})).unwrap();
    let r = capture_write(&mut p, &mut s, &mut cap).expect("the revocation is still to persist");
    assert_eq!(r.records, 1, "only the revoked family's record: {r:?}");
    let (q, _, _) = reboot(&s.into_inner(), 110, ClockTrust::Trusted);
    assert_eq!(bearer(&q, 110, &t), Err(BearerError::Revoked), "and the next capture made it durable");
}

#[test]
fn a_failed_write_makes_the_next_capture_a_checkpoint() {
    let (mut p, mut rng) = setup(3);
    let mut s = fresh(&mut p);
    let mut cap = Cap::new();
    let (_, t) = pair(&mut p, &mut rng, &mut s, 100, 1);
    let flash = s.into_inner();
    let b = start(&mut p, &mut rng, 200);
    p.approve(201, &b.user_code.display(), b"u", 2, ScopeSet::EMPTY).unwrap();
    // The flash loses power at its first byte: the write fails.
    let mut dying = flash.clone();
    dying.budget = Some(0);
    let mut s = store(dying);
    block_on(s.load(p.keys(), |_| {})).unwrap();
    assert!(p.capture(&mut cap, false).unwrap());
    assert!(!cap.is_checkpoint());
    assert!(block_on(cap.write(&mut s)).is_err());
    p.persist_failed();
    // Powered again: the next capture writes the whole state, approval included.
    let mut s = store(s.into_inner().powered());
    block_on(s.load(p.keys(), |_| {})).unwrap();
    assert!(p.capture(&mut cap, false).unwrap());
    assert!(cap.is_checkpoint(), "after a failure the next capture is a checkpoint");
    let r = block_on(cap.write(&mut s)).unwrap();
    assert!(r.checkpoint && r.records >= 3, "header, two grants, one family at least: {r:?}");
    let (mut q, status, _) = reboot(&s.into_inner(), 210, ClockTrust::Trusted);
    assert_eq!(status, StoreStatus::Restored);
    assert!(bearer(&q, 210, &t).is_ok(), "the first device's token survived");
    assert!(q.token(210, &poll(&b.device_code)).is_ok(), "the approval captured before the failure is durable");
}

#[test]
fn a_capture_too_small_for_the_state_fails_and_keeps_the_journal() {
    let (mut p, mut rng) = setup(5);
    let mut s = fresh(&mut p);
    let (_, t) = pair(&mut p, &mut rng, &mut s, 100, 1);
    let (_, u) = pair(&mut p, &mut rng, &mut s, 110, 2);
    p.persist_failed();
    let mut small = Capture::<2>::new();
    assert_eq!(p.capture(&mut small, false), Err(StoreError::TooLarge));
    assert!(small.is_empty());
    let mut cap = Cap::new();
    assert!(p.capture(&mut cap, false).unwrap(), "the failed capture cleared nothing");
    assert!(cap.is_checkpoint());
    block_on(cap.write(&mut s)).unwrap();
    let (q, _, _) = reboot(&s.into_inner(), 120, ClockTrust::Trusted);
    assert!(bearer(&q, 120, &t).is_ok() && bearer(&q, 120, &u).is_ok());
}

#[test]
fn power_cut_at_every_byte_of_a_captured_write_leaves_the_old_or_the_new_state() {
    power_cut_at_every_byte(6, |q, s| {
        let mut cap = Cap::new();
        assert!(q.capture(&mut cap, false).unwrap());
        block_on(cap.write(s)).is_ok()
    });
}
