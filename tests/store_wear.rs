//! Flash wear of the record store under the gateway's load: 50 paired devices refreshing hourly (one
//! family record each) and 10 new pairings a day (an approval and a token exchange), time compressed.
//!
//! The normal run checks that wear spreads evenly over every page. The figures for real layouts come from
//! the ignored test (run it optimised, it simulates a year per layout):
//! `cargo test --release --test store_wear -- --ignored --nocapture`.
#[path = "store_common/mod.rs"]
mod store_common;

use oauth2_devices::storage::{Record, RecordStore, StoreConfig};
use store_common::*;

/// Record keys of the scenario: the header, grant slots, token-family slots.
const HEADER: u16 = 0;
const GRANTS: u16 = 0x100;
const FAMILIES: u16 = 0x200;
const GRANT_SLOTS: u32 = 16;
const FAMILY_SLOTS: u32 = 60;
const REFRESHING: u32 = 50;
/// Sizes of the provider's records (postcard): header, pending grant, token family.
const HEADER_LEN: usize = 10;
const GRANT_LEN: usize = 38;
const FAMILY_LEN: usize = 27;
const CONFIG: StoreConfig = StoreConfig::new(1 + GRANT_SLOTS + 64, 48);

#[derive(Debug)]
struct Figures {
    days: u32,
    commits: u64,
    checkpoints: u64,
    bytes: u64,
    erases: Vec<u64>,
}

impl Figures {
    fn per_year(&self, n: u64) -> f64 {
        n as f64 * 365.0 / f64::from(self.days)
    }
    fn print(&self, name: &str) {
        let max = *self.erases.iter().max().unwrap();
        let per_year: Vec<String> = self.erases.iter().map(|&e| format!("{:.0}", self.per_year(e))).collect();
        println!("{name}");
        println!(
            "  per year: {:.0} commits, {:.0} checkpoints, {:.1} MB written, {:.0} erases",
            self.per_year(self.commits),
            self.per_year(self.checkpoints),
            self.per_year(self.bytes) / 1e6,
            self.per_year(self.erases.iter().sum())
        );
        println!("  erases per sector per year: [{}]", per_year.join(", "));
        println!("  years to 10 000 cycles of the most worn sector: {:.1}", 10_000.0 / self.per_year(max));
    }
}

/// Drives `days` of the scenario through a store on a fresh flash.
fn simulate<const W: usize, const E: usize, const FRAME: usize, const PAGES: usize>(len: usize, days: u32) -> Figures {
    let keys = keys();
    let mut store = RecordStore::<FakeFlash<W, E>, FRAME, PAGES>::new(FakeFlash::new(len), 0, len as u32, CONFIG)
        .expect("layout holds the scenario's state");
    load(&mut store, &keys).unwrap();
    let mut state = State::new();
    let (mut commits, mut checkpoints, mut serial, mut pairings) = (0u64, 0u64, 0u32, 0u32);
    let mut run =
        |store: &mut RecordStore<FakeFlash<W, E>, FRAME, PAGES>, state: &mut State, rs: Vec<(u16, Vec<u8>)>| {
            let records: Vec<Record<'_>> = rs.iter().map(|(k, v)| Record::put(*k, v)).collect();
            let due = block_on(store.commit(&keys, &records)).unwrap().checkpoint_due;
            for (k, v) in rs {
                state.insert(k, v);
            }
            commits += 1;
            if due {
                checkpoint(store, &keys, state).unwrap();
                checkpoints += 1;
            }
        };
    for day in 0..days {
        for hour in 0..24u32 {
            let now = (day * 24 + hour) * 3600;
            for d in 0..REFRESHING {
                run(&mut store, &mut state, vec![(FAMILIES + d as u16, value(d as u16, now, FAMILY_LEN))]);
            }
            // Ten pairings a day, in the ten daytime hours.
            if (8..18).contains(&hour) {
                let slot = GRANTS + (pairings % GRANT_SLOTS) as u16;
                let family = FAMILIES + (REFRESHING + pairings % (FAMILY_SLOTS - REFRESHING)) as u16;
                serial += 1;
                let header = value(HEADER, serial, HEADER_LEN);
                run(&mut store, &mut state, vec![(slot, value(slot, now, GRANT_LEN)), (HEADER, header.clone())]);
                run(
                    &mut store,
                    &mut state,
                    vec![
                        (slot, value(slot, now + 1, GRANT_LEN)),
                        (family, value(family, now, FAMILY_LEN)),
                        (HEADER, header),
                    ],
                );
                pairings += 1;
            }
        }
    }
    // The store restores exactly the model after all that.
    let flash = store.into_inner();
    let mut again = RecordStore::<FakeFlash<W, E>, FRAME, PAGES>::new(flash, 0, len as u32, CONFIG).unwrap();
    let (report, loaded) = load(&mut again, &keys).unwrap();
    assert_eq!(report.found, oauth2_devices::storage::Found::Restored);
    assert_eq!(loaded, state);
    let flash = again.into_inner();
    Figures { days, commits, checkpoints, bytes: flash.written as u64, erases: flash.erases }
}

#[test]
fn wear_spreads_over_every_page() {
    // 16 pages of 2 KiB with 4-byte words: two simulated days turn the ring several times.
    let f = simulate::<4, 2048, 256, 16>(16 * 2048, 2);
    let (min, max) = (*f.erases.iter().min().unwrap(), *f.erases.iter().max().unwrap());
    assert!(min >= 3, "every page erased, several times: {:?}", f.erases);
    assert!(max - min <= 1 && max as f64 / min as f64 <= 1.5, "even wear: {:?}", f.erases);
    assert!(f.checkpoints >= 2 && f.commits == 2 * (24 * 50 + 20), "{f:?}");
    // Writes only what changed: far less than a state per commit.
    let state_bytes = (GRANT_SLOTS as usize * (GRANT_LEN + 4) + FAMILY_SLOTS as usize * (FAMILY_LEN + 4)) as u64;
    assert!(f.bytes / f.commits < state_bytes / 10, "{} bytes per commit", f.bytes / f.commits);
}

#[test]
#[ignore = "a simulated year per layout: run optimised, with --nocapture, for the figures"]
fn wear_figures_for_a_year() {
    println!("scenario: {REFRESHING} devices refreshing hourly, 10 pairings a day; frames of 512 bytes");
    simulate::<16, { 128 * 1024 }, 512, 3>(3 * 128 * 1024, 365)
        .print("STM32F767 dual bank, bank 2 sectors 17-19 (3 x 128 KiB, 16-byte words)");
    simulate::<16, { 16 * 1024 }, 512, 4>(4 * 16 * 1024, 365)
        .print("STM32F767 dual bank, bank 2 sectors 12-15 (4 x 16 KiB, 16-byte words)");
    simulate::<16, { 128 * 1024 }, 512, 7>(7 * 128 * 1024, 365)
        .print("STM32F767ZI dual bank, bank 2 sectors 17-23 (7 x 128 KiB, 16-byte words)");
    simulate::<4, 4096, 512, 16>(16 * 4096, 365).print("uniform: 16 x 4 KiB (64 KiB), 4-byte words");
    simulate::<4, 4096, 512, 64>(64 * 4096, 365).print("uniform: 64 x 4 KiB (256 KiB), 4-byte words");
}
