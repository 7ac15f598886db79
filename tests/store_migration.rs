//! Migration from the two-slot snapshot format: detecting old slots, telling an intact newest snapshot from
//! a suspect one, and moving a snapshot into the record store safely against power loss.
#[path = "common/flow.rs"]
mod flow;
#[path = "store_common/mod.rs"]
mod store_common;

use oauth2_devices::prelude::*;
use oauth2_devices::snapshot::max_snapshot_len;
use oauth2_devices::storage::{find_legacy_snapshot, Found, Legacy, LegacySnapshot, SnapshotSlots};
use rand_core::SeedableRng;
use store_common::*;

/// Old slots in the first 2 KiB, the record store in the 4 KiB after them.
const OLD: (u32, u32) = (0, 2048);
const NEW: (u32, u32) = (2048, SMALL_LEN as u32);
const TOTAL: usize = 2048 + SMALL_LEN;

fn find(flash: &mut Small, buf: &mut [u8]) -> Vec<u8> {
    match block_on(find_legacy_snapshot(flash, OLD.0, OLD.1, buf)).unwrap() {
        Legacy::Intact(s) => s.payload.to_vec(),
        other => panic!("{other:?}"),
    }
}

fn old_slots(payloads: &[&[u8]]) -> Small {
    let mut slots = SnapshotSlots::new(Small::new(TOTAL), OLD.0, OLD.1).unwrap();
    for p in payloads {
        slots.store(p).unwrap();
    }
    slots.into_inner()
}

/// Where slot `i`'s payload starts.
fn payload_at(slot: u32) -> usize {
    (OLD.0 + slot * OLD.1 / 2) as usize + 64
}

#[test]
fn old_slots_are_found_and_judged() {
    let mut buf = [0u8; 1024];
    let mut erased = Small::new(TOTAL);
    assert_eq!(block_on(find_legacy_snapshot(&mut erased, OLD.0, OLD.1, &mut buf)), Ok(Legacy::Absent));

    // Two generations: slot 0 holds "first" (1), slot 1 "second" (2).
    let flash = old_slots(&[b"first generation", b"second generation"]);
    let mut f = flash.clone();
    assert_eq!(
        block_on(find_legacy_snapshot(&mut f, OLD.0, OLD.1, &mut buf)),
        Ok(Legacy::Intact(LegacySnapshot { seq: 2, payload: b"second generation" }))
    );
    // The newer copy damaged: the older one is returned, but as suspect (the old reader returned it as if
    // nothing had happened).
    let mut newer_bad = flash.clone();
    newer_bad.flip(payload_at(1) + 3, 1);
    let mut old_reader = SnapshotSlots::new(newer_bad.clone(), OLD.0, OLD.1).unwrap();
    assert_eq!(old_reader.load(&mut buf).unwrap(), Some(&b"first generation"[..]));
    assert_eq!(
        block_on(find_legacy_snapshot(&mut newer_bad, OLD.0, OLD.1, &mut buf)),
        Ok(Legacy::Suspect { older: Some(LegacySnapshot { seq: 1, payload: b"first generation" }) })
    );
    // The older copy damaged: nothing newer was lost.
    let mut older_bad = flash.clone();
    older_bad.flip(payload_at(0), 0);
    assert_eq!(find(&mut older_bad, &mut buf), b"second generation");
    // Both damaged.
    let mut both = newer_bad.clone();
    both.flip(payload_at(0), 0);
    assert_eq!(block_on(find_legacy_snapshot(&mut both, OLD.0, OLD.1, &mut buf)), Ok(Legacy::Suspect { older: None }));
    // A buffer too small for the payload.
    let mut f = flash.clone();
    let mut tiny = [0u8; 4];
    assert!(block_on(find_legacy_snapshot(&mut f, OLD.0, OLD.1, &mut tiny)).is_err());
    // A record store is not mistaken for old slots.
    let keys = keys();
    let mut s = oauth2_devices::storage::RecordStore::<Small, 128, 8>::new(
        Small::new(TOTAL),
        0,
        SMALL_LEN as u32,
        SMALL_CONFIG,
    )
    .unwrap();
    load(&mut s, &keys).unwrap();
    for g in 0..40 {
        if commit(&mut s, &keys, &[(1, Some(value(1, g, 20)))]).unwrap() {
            checkpoint(&mut s, &keys, &[(1u16, value(1, g, 20))].into_iter().collect()).unwrap();
        }
    }
    let mut f = s.into_inner();
    assert_eq!(block_on(find_legacy_snapshot(&mut f, 0, 2048, &mut buf)), Ok(Legacy::Absent));
}

/// The provider's snapshot, cut into records (the conversion the provider will do is its own; this one
/// only needs to be reversible).
fn as_records(payload: &[u8]) -> State {
    payload.chunks(20).enumerate().map(|(i, c)| (i as u16, c.to_vec())).collect()
}

#[test]
fn a_migration_cut_at_every_byte_keeps_the_old_snapshot_until_the_new_store_holds_it() {
    let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(5);
    let mut p = flow::provider(&mut rng).unwrap();
    let tv = flow::public("tv");
    let a = p.device_authorization(100, &DeviceAuthorizationRequest { client: tv, scope: None }, &mut rng).unwrap();
    p.approve(110, &a.user_code.display(), b"u", 7, ScopeSet::EMPTY).unwrap();
    let mut snap = vec![0u8; max_snapshot_len(16, 16)];
    let n = p.save(&mut snap).unwrap();
    snap.truncate(n);
    let base = old_slots(&[b"an older snapshot", &snap]);

    let mut buf = vec![0u8; 1024];
    let found = find(&mut base.clone(), &mut buf);
    assert_eq!(found, snap);
    let mut q = flow::provider(&mut rand_chacha::ChaCha20Rng::seed_from_u64(6)).unwrap();
    assert_eq!(q.restore(200, &found).unwrap().grants, 1);

    let records = as_records(&found);
    let keys = keys();
    let config = oauth2_devices::storage::StoreConfig::new(6, 20);
    let open = |f: Small| oauth2_devices::storage::RecordStore::<Small, 128, 8>::new(f, NEW.0, NEW.1, config).unwrap();
    // A short snapshot fits the small test store's 6 records of 20 bytes.
    assert!(records.len() <= 6, "{} records", records.len());
    let migrate = |f: Small| -> Result<Small, (Small, oauth2_devices::storage::StoreError)> {
        let mut s = open(f);
        let (report, _) = load(&mut s, &keys).map_err(|_| unreachable!())?;
        assert!(report.found.is_trusted(), "{report:?}");
        match checkpoint(&mut s, &keys, &records) {
            Ok(()) => Ok(s.into_inner()),
            Err(e) => Err((s.into_inner(), e)),
        }
    };
    let done = migrate(base.clone()).unwrap();
    let total = done.ops - base.ops;
    for cut in 0..=total {
        let after = match migrate(base.cut_after(cut)) {
            Ok(f) => f,
            Err((f, _)) => f,
        }
        .powered();
        // The old slots are untouched: the migration can run again.
        assert_eq!(find(&mut after.clone(), &mut buf), snap, "cut at {cut}");
        let mut s = open(after);
        let (report, state) = load(&mut s, &keys).unwrap();
        match report.found {
            Found::Empty | Found::TornTail if state.is_empty() => assert!(cut < total),
            Found::Restored | Found::TornTail => assert_eq!(state, records, "cut at {cut}"),
            other => panic!("cut at {cut}: {other:?}"),
        }
    }
    // Migrated: reassembled from the records it is the old snapshot, and it restores.
    let mut s = open(done);
    let (report, state) = load(&mut s, &keys).unwrap();
    assert_eq!(report.found, Found::Restored);
    let joined: Vec<u8> = state.values().flatten().copied().collect();
    assert_eq!(joined, snap);
}
