//! The record store under power loss: a cut at every byte of every write (commits, checkpoints, the first
//! write of a new device, the erases the ring does on the way) leaves exactly the state before or after.
#[path = "store_common/mod.rs"]
mod store_common;

use oauth2_devices::storage::{Found, StoreError};
use rand_chacha::ChaCha20Rng;
use rand_core::{RngCore, SeedableRng};
use store_common::*;

/// The records of one event: 1–3 records, sometimes a removal.
fn event(rng: &mut ChaCha20Rng, generation: u32) -> Vec<(u16, Option<Vec<u8>>)> {
    let n = 1 + rng.next_u32() as usize % 3;
    (0..n)
        .map(|_| {
            let key = (rng.next_u32() % 6) as u16;
            if rng.next_u32().is_multiple_of(5) {
                (key, None)
            } else {
                (key, Some(value(key, generation, 8 + rng.next_u32() as usize % 13)))
            }
        })
        .collect()
}

/// A store that has run `events` events (checkpointing when told to), and its state.
fn run(events: u32, seed: u64) -> (Small, State) {
    let keys = keys();
    let mut rng = ChaCha20Rng::seed_from_u64(seed);
    let mut store = small_store(Small::new(SMALL_LEN));
    let (report, _) = load(&mut store, &keys).unwrap();
    assert_eq!(report.found, Found::Empty);
    let mut state = State::new();
    for g in 0..events {
        let e = event(&mut rng, g);
        if commit(&mut store, &keys, &e).unwrap() {
            for (k, v) in &e {
                apply(&mut state, oauth2_devices::storage::Record { key: *k, value: v.as_deref() });
            }
            checkpoint(&mut store, &keys, &state).unwrap();
        } else {
            for (k, v) in &e {
                apply(&mut state, oauth2_devices::storage::Record { key: *k, value: v.as_deref() });
            }
        }
    }
    (store.into_inner(), state)
}

fn applied(state: &State, e: &[(u16, Option<Vec<u8>>)]) -> State {
    let mut s = state.clone();
    for (k, v) in e {
        apply(&mut s, oauth2_devices::storage::Record { key: *k, value: v.as_deref() });
    }
    s
}

/// Cuts the power at every byte operation of `op` on `base` (whose state is `before`; `after` once `op`
/// completes), then checks what a reboot finds, and that the store goes on from there.
fn cut_everywhere(
    base: &Small,
    before: &State,
    after: &State,
    op: &dyn Fn(&mut SmallStore) -> Result<(), StoreError>,
) -> (usize, usize) {
    let keys = keys();
    let mut s = small_store(base.powered());
    let (_, loaded) = load(&mut s, &keys).unwrap();
    assert_eq!(&loaded, before);
    let start = s.into_inner();
    let mut s = small_store(start.clone());
    op(&mut s).unwrap();
    let total = s.into_inner().ops - start.ops;
    let (mut saw_before, mut saw_after) = (0, 0);
    for cut in 0..=total {
        let mut s = small_store(start.cut_after(cut));
        let result = op(&mut s);
        assert_eq!(result.is_ok(), cut == total, "cut at {cut} of {total}: {result:?}");
        let mut s = small_store(s.into_inner().powered());
        let (report, state) = load(&mut s, &keys).unwrap();
        assert!(report.found.is_trusted(), "cut at {cut}: {report:?}");
        assert_eq!(report.breaks, 0, "cut at {cut}: {report:?}");
        if &state == after {
            saw_after += 1;
            // Complete but not yet confirmed by its mark: kept, and reported as a cut write.
            if cut < total && before != after {
                assert_eq!(report.found, Found::TornTail, "cut at {cut}");
            }
        } else if &state == before {
            saw_before += 1;
        } else {
            panic!("cut at {cut}: neither the state before nor after\n{state:?}\n{before:?}\n{after:?}");
        }
        if cut == total {
            assert_eq!(report.found, Found::Restored);
        }
        // The store goes on from whatever it found, and a reboot sees that too (checked on a sample of the
        // cuts, and on every cut in the last 64 operations, where the frame ends and its mark is written).
        if !cut.is_multiple_of(16) && cut + 64 < total {
            continue;
        }
        let next = vec![(5u16, Some(value(5, 999, 12)))];
        if let Err(StoreError::NeedsCheckpoint) = commit(&mut s, &keys, &next) {
            checkpoint(&mut s, &keys, &state).unwrap();
            commit(&mut s, &keys, &next).unwrap_or_else(|e| panic!("cut at {cut}: commit after reboot: {e}"));
        }
        let mut s = small_store(s.into_inner());
        let (report, again) = load(&mut s, &keys).unwrap();
        assert_eq!(report.found, Found::Restored, "cut at {cut}");
        assert_eq!(again, applied(&state, &next), "cut at {cut}");
    }
    assert!(saw_after >= 1, "the completed write shows the new state");
    (saw_before, saw_after)
}

#[test]
fn a_cut_at_every_byte_of_commits_keeps_the_state_before_or_after() {
    // Enough events for the ring to have wrapped, so that commits also move to pages that must be erased.
    let (mut flash, mut state) = run(120, 1);
    assert!(flash.erases.iter().all(|&e| e >= 1), "the ring has wrapped: {:?}", flash.erases);
    let keys = keys();
    let mut rng = ChaCha20Rng::seed_from_u64(2);
    let erases_before: u64 = flash.erases.iter().sum();
    let (mut tested, mut tested_with_erase) = (0, 0);
    for g in 0..40 {
        let e = event(&mut rng, 1000 + g);
        let after = applied(&state, &e);
        // The commit, done once: did it move to a page it had to erase?
        let mut s = small_store(flash.powered());
        load(&mut s, &keys).unwrap();
        let due = commit(&mut s, &keys, &e).unwrap();
        let done = s.into_inner();
        let erased = done.erases.iter().sum::<u64>() > flash.erases.iter().sum::<u64>();
        // Cut-test the first commit and the first two that erase a page.
        if tested < 1 || (erased && tested_with_erase < 2) {
            let op = |s: &mut SmallStore| -> Result<(), StoreError> {
                let keys = store_common::keys();
                load(s, &keys)?;
                commit(s, &keys, &e).map(|_| ())
            };
            let (before_n, after_n) = cut_everywhere(&flash, &state, &after, &op);
            assert!(before_n > 0 && after_n >= 1);
            tested += 1;
            tested_with_erase += usize::from(erased);
        }
        state = after;
        let mut s = small_store(done);
        if due {
            load(&mut s, &keys).unwrap();
            checkpoint(&mut s, &keys, &state).unwrap();
        }
        flash = s.into_inner();
    }
    assert_eq!(tested_with_erase, 2, "two cut-tested commits erased a page");
    assert!(flash.erases.iter().sum::<u64>() > erases_before);
}

#[test]
fn a_cut_at_every_byte_of_a_checkpoint_keeps_the_same_state() {
    let (flash, state) = run(60, 3);
    assert!(state.len() >= 4, "a checkpoint of several parts: {}", state.len());
    let op = |s: &mut SmallStore| -> Result<(), StoreError> {
        let keys = store_common::keys();
        load(s, &keys)?;
        checkpoint(s, &keys, &state)
    };
    // A checkpoint changes the form, not the state: every cut restores the same records.
    cut_everywhere(&flash, &state, &state, &op);
    // And once complete it is the base: the log behind it no longer counts.
    let keys = keys();
    let mut s = small_store(flash.powered());
    load(&mut s, &keys).unwrap();
    let before = s.usage().used;
    checkpoint(&mut s, &keys, &state).unwrap();
    let after = s.usage().used;
    let mut s = small_store(s.into_inner());
    load(&mut s, &keys).unwrap();
    assert!(after < before && s.usage().used <= after + 136, "{before} -> {after} -> {}", s.usage().used);
}

#[test]
fn a_cut_at_every_byte_of_the_first_write_leaves_an_empty_or_the_first_state() {
    let empty = State::new();
    let first = vec![(0u16, Some(value(0, 0, 20))), (1, Some(value(1, 0, 20)))];
    let after = applied(&empty, &first);
    let op = |s: &mut SmallStore| -> Result<(), StoreError> {
        let keys = store_common::keys();
        let (report, _) = load(s, &keys)?;
        assert!(matches!(report.found, Found::Empty | Found::TornTail), "{report:?}");
        commit(s, &keys, &first).map(|_| ())
    };
    let (before_n, after_n) = cut_everywhere(&Small::new(SMALL_LEN), &empty, &after, &op);
    assert!(before_n > 0 && after_n >= 1);
}
