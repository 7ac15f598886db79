//! The record store under damage: a flipped bit, a raised sequence number, a missing frame or items that
//! are all bad are reported as damage, never as a clean older state; a revoked record never comes back.
#[path = "store_common/mod.rs"]
mod store_common;

use oauth2_devices::key::{KeyRing, ServerKey};
use oauth2_devices::storage::{Found, StoreError};
use store_common::*;

/// Key 3 plays a token family that gets revoked by the newest commit.
const REVOKED: u16 = 3;

struct Scenario {
    flash: Small,
    /// Before the newest commit (the revocation).
    before: State,
    /// After it.
    after: State,
    /// The checkpoint's state.
    checkpointed: State,
}

fn scenario() -> Scenario {
    let keys = keys();
    let mut store = small_store(Small::new(SMALL_LEN));
    load(&mut store, &keys).unwrap();
    let mut state = State::new();
    for k in 0..5u16 {
        let e = vec![(k, Some(value(k, 0, 16)))];
        commit(&mut store, &keys, &e).unwrap();
        state.insert(k, value(k, 0, 16));
    }
    checkpoint(&mut store, &keys, &state).unwrap();
    let checkpointed = state.clone();
    for k in [1u16, 2] {
        commit(&mut store, &keys, &[(k, Some(value(k, 1, 16)))]).unwrap();
        state.insert(k, value(k, 1, 16));
    }
    let before = state.clone();
    commit(&mut store, &keys, &[(REVOKED, None)]).unwrap();
    state.remove(&REVOKED);
    let flash = store.into_inner();
    let mut s = small_store(flash.clone());
    let (report, loaded) = load(&mut s, &keys).unwrap();
    assert_eq!((report.found, &loaded), (Found::Restored, &state));
    Scenario { flash, before, after: state, checkpointed }
}

/// Where an item's header and data are in the flash (its header is the 8 bytes before its data).
fn locate(flash: &Small, item: &[u8]) -> std::ops::Range<usize> {
    let data = flash.find(item).expect("item in flash");
    data - 8..data + item.len()
}

fn reload(flash: &Small) -> (oauth2_devices::storage::LoadReport, State, Small) {
    let keys = keys();
    let mut s = small_store(flash.clone());
    let (report, state) = load(&mut s, &keys).unwrap();
    (report, state, s.into_inner())
}

#[test]
fn a_flipped_bit_anywhere_in_the_newest_commit_is_damage() {
    let sc = scenario();
    let items = raw_items(&sc.flash);
    let newest = &items[items.len() - 2];
    assert_eq!((frame_kind(newest), frame_kind(&items[items.len() - 1])), (KIND_COMMIT, KIND_MARK));
    for at in locate(&sc.flash, newest) {
        let mut bad = sc.flash.clone();
        bad.flip(at, (at % 8) as u8);
        let (report, state, _) = reload(&bad);
        assert_eq!(report.found, Found::Corrupted, "flip at {at}: {report:?}");
        assert!(!report.found.is_trusted());
        // What is delivered is the state before the damage, flagged as such: the provider keeps only what
        // must never go back, so the revoked family is not restored as live.
        assert_eq!(state, sc.before, "flip at {at}");
    }
}

#[test]
fn a_flipped_bit_in_the_trailing_mark_loses_nothing() {
    let sc = scenario();
    let items = raw_items(&sc.flash);
    let mark = locate(&sc.flash, &items[items.len() - 1]);
    for at in mark {
        let mut bad = sc.flash.clone();
        bad.flip(at, (at % 8) as u8);
        let (report, state, _) = reload(&bad);
        // The commit is complete and authentic: kept, and reported like a mark cut by power loss.
        assert_eq!((report.found, &state), (Found::TornTail, &sc.after), "flip at {at}");
        assert!(!state.contains_key(&REVOKED));
    }
}

#[test]
fn a_raised_sequence_number_fails_the_tag() {
    let sc = scenario();
    let items = raw_items(&sc.flash);
    let keys = keys();
    // In place: a commit after the checkpoint claims a later number.
    let i = items.len() - 4;
    assert_eq!(frame_kind(&items[i]), KIND_COMMIT);
    let mut raised = items.clone();
    let seq = frame_seq(&raised[i]) + 1;
    renumber(&mut raised[i], seq);
    let (report, state, _) = reload(&rebuilt(SMALL_LEN, &raised));
    assert_eq!(report.found, Found::Corrupted, "{report:?}");
    // Delivered: the state proven before the rejected frame (the checkpoint and the commit after it).
    let mut proven = sc.checkpointed.clone();
    proven.insert(1, value(1, 1, 16));
    assert_eq!((report.rejected, &state), (1, &proven));

    // The old two-slot attack: an old frame that still has the revoked record, its number raised to
    // look newest, appended at the end.
    let old = items
        .iter()
        .find(|it| frame_kind(it) == KIND_COMMIT && frame_seq(it) < frame_seq(&items[i]))
        .expect("an old commit");
    let mut replayed = old.clone();
    let last = frame_seq(items.last().unwrap());
    renumber(&mut replayed, last + 1);
    let mut with = items.clone();
    with.push(replayed);
    let (report, state, _) = reload(&rebuilt(SMALL_LEN, &with));
    assert_eq!((report.found, report.rejected), (Found::Corrupted, 1), "{report:?}");
    assert!(!state.contains_key(&REVOKED));
    // Unchanged, the same copy is an old frame in its place: nothing to see.
    let mut s = small_store(rebuilt(SMALL_LEN, &items));
    assert_eq!(load(&mut s, &keys).unwrap().0.found, Found::Restored);
}

#[test]
fn a_frame_missing_in_the_middle_is_damage() {
    let sc = scenario();
    let items = raw_items(&sc.flash);
    for (i, what) in [(items.len() - 4, "a commit"), (items.len() - 3, "a mark")] {
        let mut without = items.clone();
        without.remove(i);
        let (report, state, _) = reload(&rebuilt(SMALL_LEN, &without));
        assert_eq!(report.found, Found::Corrupted, "without {what}: {report:?}");
        assert!(report.breaks >= 1);
        assert_ne!(state, sc.after);
    }
}

#[test]
fn damage_older_than_the_checkpoint_does_not_matter() {
    let sc = scenario();
    let items = raw_items(&sc.flash);
    let first_commit = items.iter().find(|it| frame_seq(it) == 0).expect("frame 0 still on flash");
    let mut bad = sc.flash.clone();
    let at = locate(&bad, first_commit).start + 12;
    bad.flip(at, 2);
    let (report, state, _) = reload(&bad);
    assert_eq!((report.found, &state), (Found::Restored, &sc.after));
    assert!(report.breaks >= 1 || report.rejected == 0, "{report:?}");
}

#[test]
fn every_item_damaged_restores_nothing_and_stays_reported() {
    let sc = scenario();
    let items = raw_items(&sc.flash);
    let mut bad = sc.flash.clone();
    for it in &items {
        let at = locate(&bad, it).start + 10;
        bad.flip(at, 0);
    }
    let keys = keys();
    let mut s = small_store(bad);
    let (report, state) = load(&mut s, &keys).unwrap();
    assert_eq!((report.found, report.records, state.len()), (Found::NothingRestorable, 0, 0));
    assert_eq!(commit(&mut s, &keys, &[(0, Some(vec![1]))]), Err(StoreError::Recovering));
    // A reboot before recovery: still damage, not an empty start (sequential-storage has meanwhile
    // erased the pages in which it found nothing valid).
    let damaged = s.into_inner();
    let (report, _, damaged) = reload(&damaged);
    assert_eq!(report.found, Found::NothingRestorable, "{report:?}");

    // Recovery: a checkpoint of the fail-safe state (here: only the header record), cut at every byte.
    let fail_safe: State = [(0u16, value(0, 77, 12))].into_iter().collect();
    let mut s = small_store(damaged.clone());
    load(&mut s, &keys).unwrap();
    let start = s.into_inner();
    let mut s = small_store(start.clone());
    load(&mut s, &keys).unwrap();
    checkpoint(&mut s, &keys, &fail_safe).unwrap();
    let total = s.into_inner().ops - start.ops;
    for cut in 0..=total {
        let mut s = small_store(start.cut_after(cut));
        assert_eq!(load(&mut s, &keys).unwrap().0.found, Found::NothingRestorable);
        let done = checkpoint(&mut s, &keys, &fail_safe);
        assert_eq!(done.is_ok(), cut == total);
        let (report, state, _) = reload(&s.into_inner().powered());
        match report.found {
            Found::NothingRestorable => assert!(state.is_empty()),
            Found::Restored | Found::TornTail => assert_eq!(state, fail_safe, "cut at {cut}"),
            other => panic!("cut at {cut}: {other:?}"),
        }
    }
    let mut s = small_store(start);
    load(&mut s, &keys).unwrap();
    checkpoint(&mut s, &keys, &fail_safe).unwrap();
    commit(&mut s, &keys, &[(1, Some(vec![9; 4]))]).unwrap();
    let (report, state, _) = reload(&s.into_inner());
    assert_eq!(report.found, Found::Restored);
    assert_eq!(state.len(), 2);
}

#[test]
fn another_key_restores_nothing_and_writes_nothing() {
    let sc = scenario();
    let other = KeyRing::new(ServerKey::new(1, &[0x11; 32]));
    let mut s = small_store(sc.flash.clone());
    let (report, state) = load(&mut s, &other).unwrap();
    assert_eq!((report.found, report.frames, state.len()), (Found::NothingRestorable, 0, 0));
    assert!(report.rejected > 0);
    let untouched = s.into_inner();
    assert_eq!(untouched.mem, sc.flash.mem);
    let (report, state, _) = reload(&untouched);
    assert_eq!((report.found, &state), (Found::Restored, &sc.after));
}

#[test]
fn frames_of_the_previous_key_verify_until_it_is_retired_after_a_checkpoint() {
    let sc = scenario();
    let mut ring = keys();
    ring.rotate(ServerKey::new(2, &[0x77; 32])).unwrap();
    let mut s = small_store(sc.flash.clone());
    assert_eq!(load(&mut s, &ring).unwrap().0.found, Found::Restored);
    commit(&mut s, &ring, &[(4, Some(value(4, 5, 10)))]).unwrap();
    let mut state = sc.after.clone();
    state.insert(4, value(4, 5, 10));
    // Retiring the previous key before a checkpoint makes its frames unverifiable.
    let mut retired = ring.clone();
    retired.retire_previous();
    let flash = s.into_inner();
    let mut s = small_store(flash.clone());
    let (report, _) = load(&mut s, &retired).unwrap();
    assert!(!report.found.is_trusted(), "{report:?}");
    // The right order: checkpoint under the new key, then retire.
    let mut s = small_store(flash);
    load(&mut s, &ring).unwrap();
    checkpoint(&mut s, &ring, &state).unwrap();
    let mut s = small_store(s.into_inner());
    let (report, loaded) = load(&mut s, &retired).unwrap();
    assert_eq!((report.found, loaded), (Found::Restored, state));
}

#[test]
fn a_damaged_header_before_erased_looking_data_does_not_hide_the_frames_after_it() {
    // A value of all ones (say, a time that never expires) in the newest commit, then its mark. When the
    // commit's item header is damaged, sequential-storage skips it word by word; were eight 0xFF bytes
    // stored, it would take them for the end of the page and never see the mark, and the damage would pass
    // for a cut write. The store whitens frame bodies so that the mark is still found.
    let sc = scenario();
    let keys = keys();
    let mut s = small_store(sc.flash.clone());
    load(&mut s, &keys).unwrap();
    commit(&mut s, &keys, &[(4, Some(vec![0xFF; 20]))]).unwrap();
    let flash = s.into_inner();
    let items = raw_items(&flash);
    let newest = &items[items.len() - 2];
    let header = locate(&flash, newest).start;
    for at in header..header + 8 {
        let mut bad = flash.clone();
        bad.flip(at, (at % 8) as u8);
        let (report, state, _) = reload(&bad);
        assert_eq!((report.found, &state), (Found::Corrupted, &sc.after), "flip at {at}");
    }
}

#[test]
fn a_fully_damaged_log_is_never_taken_for_a_cut_first_write() {
    // Grow the log until its newest item is alone on the newest page: when every item is damaged,
    // sequential-storage's iterator erases the pages before it, and what is left (one item's worth) looks
    // like the traces of one cut first write. The load's damage mark keeps the verdict.
    let keys = keys();
    let mut s = small_store(Small::new(SMALL_LEN));
    load(&mut s, &keys).unwrap();
    let (mut g, mut state) = (0u32, State::new());
    let flash = loop {
        let k = (g % 6) as u16;
        state.insert(k, value(k, g, 20));
        if commit(&mut s, &keys, &[(k, Some(value(k, g, 20)))]).unwrap() {
            checkpoint(&mut s, &keys, &state).unwrap();
        }
        g += 1;
        let flash = s.into_inner();
        let items = raw_items(&flash);
        if locate(&flash, items.last().unwrap()).start % 512 == 4 {
            break flash;
        }
        assert!(g < 300, "no item started a page");
        s = small_store(flash);
        load(&mut s, &keys).unwrap();
    };
    let mut bad = flash.clone();
    for it in &raw_items(&flash) {
        let at = locate(&bad, it).start + 10;
        bad.flip(at, 0);
    }
    let mut verdicts = Vec::new();
    for _ in 0..3 {
        let (report, state, after) = reload(&bad);
        assert!(state.is_empty());
        verdicts.push(report.found);
        bad = after;
    }
    assert_eq!(verdicts, [Found::NothingRestorable; 3]);
}
