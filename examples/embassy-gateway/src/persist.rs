//! The provider on the board's flash: the library's record store (`oauth2_devices::storage`), restored
//! at start (an old two-slot snapshot migrated into it once), and written by one task whenever a
//! request changed the durable state.
//!
//! Each board gives a [`Layout`]: the old slots' range (read only, for the migration) and the store's
//! range, apart from each other. The store is written outside the provider's lock: the changed records
//! are copied under it ([`Provider::capture`](oauth2_devices::provider::Provider::capture)), the
//! flash written after ([`Capture::write`]). The response of a request that changed the state leaves
//! only once that change is on flash (see `server::PooledSocket`), so a refresh token a device received
//! is the one a reboot restores.

use embassy_time::{Duration, Instant, Timer};
use embedded_storage_async::nor_flash::NorFlash;
use oauth2_devices::snapshot::ClockTrust;
use oauth2_devices::storage::{
    capture_records, find_legacy_snapshot, provider_store_config, Capture, Legacy, Migrated, RecordStore, StoreError,
    StoreStatus,
};

use crate::config;
use crate::server::{Gateway, Shared};

/// Bytes of a frame: the largest item the store writes (a multiple of every board's flash word).
pub const FRAME: usize = 512;
/// Pages the store's page cache knows (every board's store has at most this many erase blocks).
pub const PAGES: usize = 8;
/// The record store of this gateway.
pub type Store<F> = RecordStore<F, FRAME, PAGES>;
/// The changed records on their way from the provider to the flash (a static: 1.5 KiB).
pub type Captured = Capture<{ capture_records(config::GRANTS, config::FAMILIES) }>;

/// Where a board keeps its state, as offsets into its flash.
#[derive(Debug, Clone, Copy)]
pub struct Layout {
    /// The old two-slot snapshots (`storage::SnapshotSlots`), read once at start if the store is empty.
    pub legacy: (u32, u32),
    /// The record store: whole erase blocks, at least two, apart from `legacy`.
    pub store: (u32, u32),
}

/// Why the store could not be opened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "stm32", derive(defmt::Format))]
pub enum OpenError {
    /// The layout does not fit the flash or the provider's records.
    Layout,
    /// The flash failed while loading or writing.
    Store(StoreError),
}

impl core::fmt::Display for OpenError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Self::Layout => f.write_str("the flash layout does not fit the store"),
            Self::Store(e) => write!(f, "record store: {e}"),
        }
    }
}

impl core::error::Error for OpenError {}

/// Restores `gw` from the store in `flash` (migrating an old snapshot into an empty store), makes the
/// restored state durable, and returns the store for [`persist`]. `buf` holds an old snapshot
/// (`server::SNAPSHOT_LEN` bytes). What was found is logged, and kept for `GET /status`.
pub async fn open<F: NorFlash>(
    gw: &mut Gateway,
    mut flash: F,
    layout: Layout,
    buf: &mut [u8],
) -> Result<Store<F>, OpenError> {
    let legacy = match find_legacy_snapshot(&mut flash, layout.legacy.0, layout.legacy.1, buf).await {
        Ok(found) => found,
        Err(_) => {
            warn!("old snapshot slots unreadable: nothing to migrate");
            Legacy::Absent
        }
    };
    let config = provider_store_config(config::GRANTS, config::FAMILIES);
    let mut store = Store::new(flash, layout.store.0, layout.store.1, config).map_err(|_| OpenError::Layout)?;
    let now = gw.now();
    let trust = if gw.clock.trusted() { ClockTrust::Trusted } else { ClockTrust::Untrusted };
    if trust == ClockTrust::Untrusted {
        warn!("clock untrusted: state newer than the clock is not restored whole (families dropped)");
    }
    let restored = gw.provider.restore_from(now, trust, &mut store).await.map_err(OpenError::Store)?;
    let (grants, families) = (restored.grants, restored.families);
    gw.store = restored.status;
    match restored.status {
        StoreStatus::Restored => info!("snapshot restored: {} grants, {} token families", grants, families),
        StoreStatus::ClockUntrusted => {
            warn!("snapshot restored: {} grants, {} token families (clock was behind: state dropped)", grants, families)
        }
        StoreStatus::Corrupted => warn!("store damaged: grants and token families dropped, revocations kept"),
        StoreStatus::NothingRestorable => warn!("store holds nothing provable: starting empty"),
        StoreStatus::Empty => {
            match gw.provider.migrate_legacy(now, trust, legacy, &mut store).await.map_err(OpenError::Store)? {
                Migrated::Nothing => info!("no snapshot yet; starting empty"),
                Migrated::Restored { grants, families, clock_was_behind } => {
                    gw.store = if clock_was_behind { StoreStatus::ClockUntrusted } else { StoreStatus::Restored };
                    info!(
                        "snapshot restored: {} grants, {} token families, migrated from the old slots{}",
                        grants,
                        families,
                        if clock_was_behind { " (clock was behind: state dropped)" } else { "" }
                    )
                }
                Migrated::FailSafe => {
                    gw.store = StoreStatus::Corrupted;
                    warn!("old snapshot suspect: migrated without grants and token families")
                }
                _ => {}
            }
        }
        _ => {}
    }
    // The restored serial lease must be durable before a code is issued.
    gw.provider.persist(&mut store).await.map_err(OpenError::Store)?;
    Ok(store)
}

/// Writes the provider's changes whenever a socket task signals one, and publishes the durable
/// version on flash (`Shared::saved`) for the responses that wait for it. Bursts coalesce; polls cost
/// no write.
pub async fn persist<F: NorFlash>(shared: &Shared, store: &mut Store<F>, capture: &mut Captured) -> ! {
    loop {
        shared.dirty.wait().await;
        // A failed write is retried once at once (as a checkpoint), then at the next change or in 1 s.
        for attempt in 0..2 {
            let due = store.checkpoint_due();
            let captured = shared.state.lock(|g| {
                let mut g = g.borrow_mut();
                let version = g.provider.durable_version();
                g.provider.capture(capture, due).map(|some| (some, version))
            });
            let version = match captured {
                Ok((false, version)) => {
                    shared.set_saved(version);
                    break;
                }
                Ok((true, version)) => version,
                Err(e) => {
                    warn!("snapshot not captured: {}", e);
                    break;
                }
            };
            let (records, checkpoint) = (capture.len(), capture.is_checkpoint());
            let started = Instant::now();
            match capture.write(store).await {
                Ok(_) => {
                    shared.set_saved(version);
                    // "up to date": nothing changed while the flash was written, so every request
                    // answered before this line is in the flash (scripts wait for it before a kill).
                    let current = shared.state.lock(|g| g.borrow().provider.durable_version());
                    info!(
                        "snapshot saved ({} records{}, {} ms, {})",
                        records,
                        if checkpoint { ", checkpoint" } else { "" },
                        started.elapsed().as_millis(),
                        if current == version { "up to date" } else { "more pending" }
                    );
                    break;
                }
                Err(e) => {
                    shared.state.lock(|g| g.borrow_mut().provider.persist_failed());
                    warn!("snapshot write failed ({}); the next one is a checkpoint", e);
                    if attempt == 1 {
                        Timer::after(Duration::from_secs(1)).await;
                        shared.dirty.signal(());
                    }
                }
            }
        }
    }
}

#[cfg(all(test, feature = "host"))]
mod tests {
    use embassy_futures::block_on;
    use oauth2_devices::prelude::*;
    use oauth2_devices::storage::{FileFlash, SnapshotSlots};
    use rand_chacha::ChaCha20Rng;
    use rand_core::SeedableRng;

    use super::*;
    use crate::config::net;
    use crate::server;

    const NOW: u64 = 1_800_000_000;

    fn gateway(seed: u64) -> Gateway {
        let config = oauth2_devices::provider::Config::new("http://10.42.0.2:8080/activate");
        let epoch = NOW - embassy_time::Instant::now().as_secs();
        server::build(config, ChaCha20Rng::seed_from_u64(seed), epoch, crate::clock::ClockSource::Board).unwrap()
    }

    /// A device paired on `gw`: its access token.
    fn pair(gw: &mut Gateway) -> String {
        let Gateway { provider, rng, .. } = gw;
        let request = DeviceAuthorizationRequest { client: ClientCredentials::new("tv-demo", None), scope: None };
        let a = provider.device_authorization(NOW, &request, rng).unwrap();
        provider.approve(NOW, &a.user_code.display(), b"csrf", 1, ScopeSet::EMPTY).unwrap();
        let grant = Grant::DeviceCode { device_code: &a.device_code };
        let token = TokenRequest { client: ClientCredentials::new("tv-demo", None), grant };
        provider.token(NOW, &token).unwrap().access_token.to_string()
    }

    fn works(gw: &Gateway, token: &str) -> bool {
        gw.provider.check_bearer(NOW, Some(&format!("Bearer {token}")), ScopeSet::EMPTY).is_ok()
    }

    #[test]
    fn old_slots_migrate_once_then_the_store_restores() {
        let dir = std::env::temp_dir().join(format!("o2d-embassy-persist-{}", std::process::id()));
        let _ = std::fs::remove_file(&dir);
        let mut buf = [0u8; server::SNAPSHOT_LEN];
        // The old firmware: a paired device in the two snapshot slots.
        let mut old = gateway(1);
        let token = pair(&mut old);
        let n = old.provider.save(&mut buf).unwrap();
        let mut slots =
            SnapshotSlots::new(FileFlash::open(&dir, net::FLASH_LEN).unwrap(), 0, net::LAYOUT.legacy.1).unwrap();
        slots.store(&buf[..n]).unwrap();
        drop(slots);
        // The new firmware's first boot: empty store, the old snapshot migrated into it.
        let mut first = gateway(2);
        let flash = FileFlash::open(&dir, net::FLASH_LEN).unwrap();
        let mut store = block_on(open(&mut first, flash, net::LAYOUT, &mut buf)).unwrap();
        assert_eq!(first.store, StoreStatus::Restored);
        assert!(works(&first, &token), "the migrated device's token works");
        // A device paired since, persisted by the two-step capture and write.
        let newer = pair(&mut first);
        let mut capture = Captured::new();
        assert!(first.provider.capture(&mut capture, store.checkpoint_due()).unwrap());
        assert!(!capture.is_checkpoint(), "a pairing is a commit of its records");
        block_on(capture.write(&mut store)).unwrap();
        drop(store);
        // Next boot: the store itself restores both (the old slots are not read again).
        let mut second = gateway(3);
        block_on(open(&mut second, FileFlash::open(&dir, net::FLASH_LEN).unwrap(), net::LAYOUT, &mut buf)).unwrap();
        assert_eq!(second.store, StoreStatus::Restored);
        assert!(works(&second, &token) && works(&second, &newer));
        let _ = std::fs::remove_file(&dir);
    }
}
