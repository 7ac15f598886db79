//! The gateway's state on disk: the library's record store in `DIR/store.bin` (a file with NOR
//! semantics, `storage::FileFlash`), written by one thread, and the handshake that holds a response
//! until its change is on disk.
//!
//! A request that changed the provider's durable state asks for its version ([`Durable::wait_for`]),
//! after releasing the provider's lock; the persist thread ([`persist_loop`]) copies the changed
//! records under that lock (`Provider::capture`, microseconds) and writes them outside it
//! (`Capture::write`, with the file's sync), then wakes the waiting requests. So no request waits for
//! another's disk write while holding the provider, and a response never promises what a crash would
//! forget. An earlier build's `DIR/snapshots.bin` (two-slot snapshots, of any size) is migrated into
//! an empty store once, and left as it was.

use std::path::Path;
use std::sync::{Condvar, Mutex, PoisonError};
use std::time::{Duration, Instant};

use embassy_futures::block_on;
use oauth2_devices::snapshot::{max_snapshot_len, ClockTrust};
use oauth2_devices::storage::{
    capture_records, find_legacy_snapshot, provider_store_config, Capture, FileFlash, Migrated, RecordStore,
    StoreStatus,
};

use super::{unix_now, GatewayProvider, Shared, HOST_TABLES};

/// Bytes of the store file: 256 pages of 4 KiB, three checkpoints of the largest (host) tables and
/// room to spare.
const STORE_LEN: usize = 1024 * 1024;
/// The pages of [`STORE_LEN`] (sequential-storage's page cache).
const PAGES: usize = STORE_LEN / 4096;
/// Bytes of one frame (the largest item written).
const FRAME: usize = 512;
/// How long a response waits for its change to reach the disk before it leaves anyway (logged).
const DURABLE_WAIT: Duration = Duration::from_secs(10);

/// The record store of the gateway.
pub type Store = RecordStore<FileFlash, FRAME, PAGES>;
/// A capture sized for the largest tables this build serves.
type HostCapture = Capture<{ capture_records(HOST_TABLES.0, HOST_TABLES.1) }>;

/// The provider's durable version the disk holds, and the newest one asked for.
#[derive(Default)]
struct Versions {
    saved: u32,
    wanted: u32,
}

/// Requests and the persist thread meet here.
pub struct Durable {
    versions: Mutex<Versions>,
    /// Raised when `wanted` moves (for the persist thread) and when `saved` moves (for the requests).
    moved: Condvar,
}

/// `a` is `b` or later (versions count up and wrap).
fn reached(a: u32, b: u32) -> bool {
    a.wrapping_sub(b) < u32::MAX / 2
}

impl Durable {
    fn new(saved: u32) -> Self {
        Self { versions: Mutex::new(Versions { saved, wanted: saved }), moved: Condvar::new() }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Versions> {
        self.versions.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Asks for durable version `version` and waits until the disk holds it (at most
    /// [`DURABLE_WAIT`]). Call without the provider's lock.
    pub fn wait_for(&self, version: u32) {
        let mut v = self.lock();
        if !reached(v.wanted, version) {
            v.wanted = version;
            self.moved.notify_all();
        }
        let end = Instant::now() + DURABLE_WAIT;
        while !reached(v.saved, version) {
            let left = end.saturating_duration_since(Instant::now());
            if left.is_zero() {
                eprintln!("state: a response left before its change was on disk (the disk is failing)");
                return;
            }
            v = self.moved.wait_timeout(v, left).unwrap_or_else(PoisonError::into_inner).0;
        }
    }

    /// Blocks until a version not on disk yet is asked for.
    fn next_wanted(&self) {
        let mut v = self.lock();
        while reached(v.saved, v.wanted) {
            v = self.moved.wait(v).unwrap_or_else(PoisonError::into_inner);
        }
    }

    fn saved(&self, version: u32) {
        let mut v = self.lock();
        if !reached(v.saved, version) {
            v.saved = version;
        }
        self.moved.notify_all();
    }
}

/// Opens `DIR/store.bin`, restores `provider` from it (migrating `DIR/snapshots.bin` into an empty
/// store), and makes the restored state durable before anything is served.
pub fn open<const G: usize, const F: usize, const S: usize>(
    dir: &Path,
    provider: &mut GatewayProvider<G, F, S>,
) -> Result<(Store, Durable), String> {
    let path = dir.join("store.bin");
    let io = |e: std::io::Error| format!("{}: {e}", path.display());
    let flash = FileFlash::open(&path, STORE_LEN).map_err(io)?;
    let config = provider_store_config(G, F);
    let mut store = Store::new(flash, 0, STORE_LEN as u32, config).map_err(|e| format!("{}: {e}", path.display()))?;
    let now = unix_now();
    // The system clock can be wrong: a store newer than it is not restored whole (fail safe).
    let trust = ClockTrust::Untrusted;
    let restored =
        block_on(provider.restore_from(now, trust, &mut store)).map_err(|e| format!("{}: {e}", path.display()))?;
    match restored.status {
        StoreStatus::Restored => {
            println!("state: restored {} pending grants and {} token families", restored.grants, restored.families)
        }
        StoreStatus::ClockUntrusted => {
            println!("state: the clock is behind the store; grants and tokens dropped, revocations kept")
        }
        StoreStatus::Corrupted => {
            println!("state: {} is damaged; grants and tokens dropped, revocations kept", path.display())
        }
        StoreStatus::NothingRestorable => println!("state: {} holds nothing provable; starting empty", path.display()),
        _ => migrate(dir, provider, &mut store, now, trust)?,
    }
    block_on(provider.persist(&mut store)).map_err(|e| format!("{}: {e}", path.display()))?;
    let durable = Durable::new(provider.durable_version());
    Ok((store, durable))
}

/// An empty store: takes an earlier build's two-slot snapshots, if any.
fn migrate<const G: usize, const F: usize, const S: usize>(
    dir: &Path,
    provider: &mut GatewayProvider<G, F, S>,
    store: &mut Store,
    now: u64,
    trust: ClockTrust,
) -> Result<(), String> {
    let old = dir.join("snapshots.bin");
    let len = std::fs::metadata(&old).map_or(0, |m| m.len() as usize);
    if len == 0 {
        println!("state: none yet in {}", dir.display());
        return Ok(());
    }
    let io = |e: std::io::Error| format!("{}: {e}", old.display());
    let mut flash = FileFlash::open(&old, len).map_err(io)?;
    let mut buf = vec![0u8; max_snapshot_len(G, F).max(len / 2)];
    let legacy = match block_on(find_legacy_snapshot(&mut flash, 0, len as u32, &mut buf)) {
        Ok(legacy) => legacy,
        Err(e) => {
            println!("state: {} is not an old snapshot file ({e}); nothing migrated, starting empty", old.display());
            return Ok(());
        }
    };
    match block_on(provider.migrate_legacy(now, trust, legacy, store)).map_err(|e| e.to_string())? {
        Migrated::Nothing => println!("state: none yet in {}", dir.display()),
        Migrated::Restored { grants, families, clock_was_behind } => println!(
            "state: migrated {} into the record store: {grants} pending grants, {families} token families{}",
            old.display(),
            if clock_was_behind { " (the clock was behind: grants and tokens dropped)" } else { "" }
        ),
        Migrated::FailSafe => {
            println!("state: migrated {} without grants and tokens (its newest snapshot was damaged)", old.display())
        }
        _ => println!("state: migrated {}", old.display()),
    }
    Ok(())
}

/// The persist thread: whenever a request asks for a version not on disk yet, captures the changes
/// under the provider's lock and writes them outside it. A failed write is retried at once as a
/// checkpoint, then every second while requests wait.
pub fn persist_loop<const G: usize, const F: usize, const S: usize>(
    shared: &Mutex<Shared<G, F, S>>,
    mut store: Store,
    durable: &Durable,
) {
    let mut capture: Box<HostCapture> = Box::new(HostCapture::new());
    loop {
        durable.next_wanted();
        for attempt in 0..2 {
            let due = store.checkpoint_due();
            let captured = {
                let mut guard = shared.lock().unwrap_or_else(PoisonError::into_inner);
                let version = guard.provider.durable_version();
                guard.provider.capture(&mut capture, due).map(|some| (some, version))
            };
            match captured {
                Ok((false, version)) => {
                    durable.saved(version);
                    break;
                }
                Ok((true, version)) => match block_on(capture.write(&mut store)) {
                    Ok(_) => {
                        durable.saved(version);
                        break;
                    }
                    Err(e) => {
                        shared.lock().unwrap_or_else(PoisonError::into_inner).provider.persist_failed();
                        eprintln!("state: cannot write the store ({e}); the next write is a checkpoint");
                        if attempt == 1 {
                            std::thread::sleep(Duration::from_secs(1));
                        }
                    }
                },
                Err(e) => {
                    eprintln!("state: cannot capture the state ({e})");
                    std::thread::sleep(Duration::from_secs(1));
                    break;
                }
            }
        }
    }
}
