//! The record store's limits: layouts it refuses, records too large, a log that needs a checkpoint, a
//! state too large for the range, and a long run with reboots against a model.
#[path = "store_common/mod.rs"]
mod store_common;

use oauth2_devices::storage::{FileFlash, Found, Record, RecordStore, StoreConfig, StoreError};
use rand_chacha::ChaCha20Rng;
use rand_core::{RngCore, SeedableRng};
use store_common::*;

#[test]
fn layouts_that_do_not_fit_are_refused() {
    let new = |flash: Small, base: u32, len: u32, config: StoreConfig| {
        RecordStore::<Small, 128, 8>::new(flash, base, len, config).map(|_| ())
    };
    let flash = || Small::new(SMALL_LEN);
    assert_eq!(new(flash(), 0, SMALL_LEN as u32, SMALL_CONFIG), Ok(()));
    assert_eq!(new(flash(), 100, 4096 - 512, SMALL_CONFIG), Err(StoreError::BadLayout), "base not on a page");
    assert_eq!(new(flash(), 0, 4000, SMALL_CONFIG), Err(StoreError::BadLayout), "not whole pages");
    assert_eq!(new(flash(), 512, SMALL_LEN as u32, SMALL_CONFIG), Err(StoreError::BadLayout), "past the end");
    assert_eq!(new(flash(), 0, 512, SMALL_CONFIG), Err(StoreError::BadLayout), "one page");
    assert_eq!(
        new(flash(), 0, SMALL_LEN as u32, StoreConfig::new(6, 100)),
        Err(StoreError::BadLayout),
        "record > frame"
    );
    assert_eq!(
        new(flash(), 0, SMALL_LEN as u32, StoreConfig::new(64, 20)),
        Err(StoreError::BadLayout),
        "state > range"
    );
    assert_eq!(new(flash(), 0, 4 * 512, SMALL_CONFIG), Err(StoreError::BadLayout), "range < two checkpoints");
    // Frame sizes: a multiple of the word, and at most a page.
    assert_eq!(
        RecordStore::<Small, 130, 8>::new(flash(), 0, 4096, SMALL_CONFIG).map(|_| ()),
        Err(StoreError::BadLayout)
    );
    assert_eq!(
        RecordStore::<Small, 512, 8>::new(flash(), 0, 4096, StoreConfig::new(1, 1)).map(|_| ()),
        Err(StoreError::BadLayout)
    );
    // A cache smaller than the range works (fewer cache hits).
    let mut s = RecordStore::<Small, 128, 2>::new(flash(), 0, SMALL_LEN as u32, SMALL_CONFIG).unwrap();
    let keys = keys();
    load(&mut s, &keys).unwrap();
    commit(&mut s, &keys, &[(1, Some(vec![1, 2, 3]))]).unwrap();
    let mut s = RecordStore::<Small, 128, 2>::new(s.into_inner(), 0, SMALL_LEN as u32, SMALL_CONFIG).unwrap();
    assert_eq!(load(&mut s, &keys).unwrap().1, [(1u16, vec![1, 2, 3])].into_iter().collect());
}

#[test]
fn writes_before_a_load_and_records_too_large_are_refused_without_writing() {
    let keys = keys();
    let mut s = small_store(Small::new(SMALL_LEN));
    assert_eq!(commit(&mut s, &keys, &[(1, Some(vec![1]))]), Err(StoreError::NotLoaded));
    assert_eq!(s.checkpoint(&keys).map(|_| ()).unwrap_err(), StoreError::NotLoaded);
    load(&mut s, &keys).unwrap();
    assert_eq!(commit(&mut s, &keys, &[(1, Some(vec![0; 21]))]), Err(StoreError::TooLarge), "over max_value_len");
    let many: Vec<_> = (0..5).map(|k| (k, Some(vec![0; 20]))).collect();
    assert_eq!(commit(&mut s, &keys, &many), Err(StoreError::TooLarge), "more than one frame");
    assert_eq!(commit(&mut s, &keys, &[]), Ok(false), "an empty commit");
    let fl = s.into_inner();
    assert!(fl.mem.iter().all(|&b| b == 0xFF), "nothing was written");
    let mut s = small_store(fl);
    let too_long = block_on(async {
        load(&mut s, &keys).unwrap();
        let mut cp = s.checkpoint(&keys)?;
        cp.put(1, &[0; 21]).await
    });
    assert_eq!(too_long, Err(StoreError::TooLarge));
}

#[test]
fn a_full_log_asks_for_a_checkpoint_first_and_writes_nothing() {
    let keys = keys();
    let mut s = small_store(Small::new(SMALL_LEN));
    load(&mut s, &keys).unwrap();
    let mut state = State::new();
    let mut due_seen = false;
    let mut g = 0;
    let refused = loop {
        let e = vec![((g % 6) as u16, Some(value(g as u16, g, 20)))];
        match commit(&mut s, &keys, &e) {
            Ok(due) => {
                due_seen |= due;
                state.insert((g % 6) as u16, value(g as u16, g, 20));
            }
            Err(e) => break e,
        }
        g += 1;
        assert!(g < 1000, "the log never filled");
    };
    assert_eq!(refused, StoreError::NeedsCheckpoint);
    assert!(due_seen, "checkpoint_due came first");
    // The refused commit wrote nothing, and the log still restores.
    let full = s.into_inner();
    let mut s = small_store(full.clone());
    let (report, loaded) = load(&mut s, &keys).unwrap();
    assert_eq!((report.found, &loaded), (Found::Restored, &state));
    assert_eq!(commit(&mut s, &keys, &[(0, Some(vec![1]))]), Err(StoreError::NeedsCheckpoint));
    assert_eq!(s.into_inner().mem, full.mem);
    let mut s = small_store(full);
    load(&mut s, &keys).unwrap();
    checkpoint(&mut s, &keys, &state).unwrap();
    assert!(!s.checkpoint_due());
    commit(&mut s, &keys, &[(0, Some(vec![1]))]).unwrap();
    state.insert(0, vec![1]);
    let mut s = small_store(s.into_inner());
    let (report, loaded) = load(&mut s, &keys).unwrap();
    assert_eq!((report.found, loaded), (Found::Restored, state));
}

#[test]
fn a_checkpoint_larger_than_configured_or_without_room_is_refused_and_the_old_state_kept() {
    let keys = keys();
    let mut s = small_store(Small::new(SMALL_LEN));
    load(&mut s, &keys).unwrap();
    let mut state = State::new();
    for k in 0..6u16 {
        commit(&mut s, &keys, &[(k, Some(value(k, 1, 20)))]).unwrap();
        state.insert(k, value(k, 1, 20));
    }
    // More records than configured: refused at the first one too many.
    let huge: State = (0..200u16).map(|k| (k, value(k, 2, 20))).collect();
    assert_eq!(checkpoint(&mut s, &keys, &huge), Err(StoreError::TooLarge));
    // Fill the log while ignoring `checkpoint_due`, until commits are refused.
    let mut g = 10;
    while commit(&mut s, &keys, &[((g % 6) as u16, Some(value(g as u16, g, 20)))]).is_ok() {
        state.insert((g % 6) as u16, value(g as u16, g, 20));
        g += 1;
    }
    // One checkpoint still fits; abandoned ones (cut, or dropped) eat the room kept for it.
    for _ in 0..3 {
        block_on(async {
            let mut cp = s.checkpoint(&keys).unwrap();
            for (k, v) in state.iter().take(5) {
                if cp.put(*k, v).await.is_err() {
                    break;
                }
            }
        });
    }
    assert_eq!(checkpoint(&mut s, &keys, &state), Err(StoreError::Full));
    let mut s = small_store(s.into_inner());
    let (report, loaded) = load(&mut s, &keys).unwrap();
    assert_eq!((report.found, &loaded), (Found::TornTail, &state), "the old state is kept");
}

/// Many turns of the ring with random events, checkpoints when due and reboots at random points: every
/// load restores the model's state, every page wears the same.
#[test]
fn a_long_run_with_reboots_matches_the_model() {
    let keys = keys();
    let mut rng = ChaCha20Rng::seed_from_u64(11);
    let mut s = small_store(Small::new(SMALL_LEN));
    assert_eq!(load(&mut s, &keys).unwrap().0.found, Found::Empty);
    let mut state = State::new();
    let (mut reboots, mut checkpoints) = (0, 0);
    for g in 0..3000u32 {
        let n = 1 + rng.next_u32() % 3;
        let e: Vec<_> = (0..n)
            .map(|_| {
                let k = (rng.next_u32() % 6) as u16;
                if rng.next_u32().is_multiple_of(4) {
                    (k, None)
                } else {
                    (k, Some(value(k, g, 1 + rng.next_u32() as usize % 20)))
                }
            })
            .collect();
        let due = commit(&mut s, &keys, &e).unwrap();
        for (k, v) in &e {
            apply(&mut state, Record { key: *k, value: v.as_deref() });
        }
        if due {
            checkpoint(&mut s, &keys, &state).unwrap();
            checkpoints += 1;
        }
        if rng.next_u32().is_multiple_of(50) {
            let mut again = small_store(s.into_inner());
            let (report, loaded) = load(&mut again, &keys).unwrap();
            assert_eq!((report.found, report.breaks, report.rejected), (Found::Restored, 0, 0), "event {g}");
            assert_eq!(loaded, state, "event {g}");
            s = again;
            reboots += 1;
        }
    }
    let flash = s.into_inner();
    let (min, max) = (flash.erases.iter().min().unwrap(), flash.erases.iter().max().unwrap());
    assert!(*min >= 10 && max - min <= 1, "erases per page {:?}", flash.erases);
    assert!(reboots > 20 && checkpoints > 10, "{reboots} reboots, {checkpoints} checkpoints");
}

#[test]
fn file_flash_keeps_records_across_reopen() {
    let path = std::env::temp_dir().join(format!("oauth2-devices-store-{}.bin", std::process::id()));
    let _ = std::fs::remove_file(&path);
    let keys = keys();
    let config = StoreConfig::new(16, 64);
    let open =
        || RecordStore::<FileFlash, 256, 4>::new(FileFlash::open(&path, 16384).unwrap(), 0, 16384, config).unwrap();
    {
        let mut s = open();
        assert_eq!(load(&mut s, &keys).unwrap().0.found, Found::Empty);
        commit(&mut s, &keys, &[(1, Some(b"family one".to_vec())), (0, Some(b"header".to_vec()))]).unwrap();
        commit(&mut s, &keys, &[(1, None), (2, Some(b"family two".to_vec()))]).unwrap();
    }
    let mut s = open();
    let (report, state) = load(&mut s, &keys).unwrap();
    assert_eq!(report.found, Found::Restored);
    assert_eq!(state, [(0u16, b"header".to_vec()), (2, b"family two".to_vec())].into_iter().collect());
    drop(s);
    std::fs::remove_file(&path).unwrap();
}
