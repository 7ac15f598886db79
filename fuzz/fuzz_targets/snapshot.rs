//! Snapshot decoding: arbitrary bytes never panic `Provider::restore`, and a refused snapshot changes
//! nothing; an accepted one round-trips (restore → save → restore → save gives the same bytes). Then a
//! real snapshot with an arbitrary patch applied must be refused unless the patch changed nothing.
#![no_main]

#[path = "http_common.rs"]
mod common;

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use oauth2_devices::fuzzing;
use oauth2_devices::snapshot::max_snapshot_len;

#[derive(Debug, Arbitrary)]
struct Input {
    raw: Vec<u8>,
    /// (offset, xor) pairs applied to a genuine snapshot.
    patch: Vec<(u16, u8)>,
    truncate: Option<u16>,
    now: u32,
}

fn tables(p: &fuzzing::FuzzProvider) -> String {
    let grants: Vec<_> = fuzzing::grant_table(p).collect();
    let families: Vec<_> = fuzzing::family_table(p).map(|f| format!("{f:?}")).collect();
    format!("{grants:?} {families:?} {}", fuzzing::next_serial(p))
}

fuzz_target!(|input: Input| {
    let now = u64::from(input.now);
    let mut w = common::world();
    let before = tables(&w.provider);
    let version = w.provider.durable_version();
    match w.provider.restore(now, &input.raw) {
        Err(_) => {
            assert_eq!(tables(&w.provider), before, "a refused snapshot changes nothing");
            assert_eq!(w.provider.durable_version(), version);
        }
        Ok(_) => {
            let mut a = vec![0u8; max_snapshot_len(4, 4)];
            let n = w.provider.save(&mut a).expect("save what was restored");
            let mut again = common::world().provider;
            again.restore(now, &a[..n]).expect("our own snapshot restores");
            let mut b = vec![0u8; max_snapshot_len(4, 4)];
            let m = again.save(&mut b).expect("save");
            assert_eq!(&a[..n], &b[..m], "restore/save is a round trip");
        }
    }

    // Tampering with a genuine snapshot.
    let genuine = common::world();
    let mut snap = vec![0u8; max_snapshot_len(4, 4)];
    let len = genuine.provider.save(&mut snap).expect("save");
    snap.truncate(len);
    let mut bad = snap.clone();
    for &(at, x) in &input.patch {
        let i = usize::from(at) % len;
        bad[i] ^= x;
    }
    if let Some(t) = input.truncate {
        bad.truncate(usize::from(t) % (len + 1));
    }
    let mut target = common::world().provider;
    let result = target.restore(1000, &bad);
    if bad == snap {
        assert!(result.is_ok(), "the genuine snapshot restores: {result:?}");
    } else {
        assert!(result.is_err(), "an altered snapshot was accepted");
    }
});
