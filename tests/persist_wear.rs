//! Flash wear of the provider persisting into the record store, driven through the provider's API: 50
//! paired devices refreshing hourly and 10 new pairings a day (each replacing a device that the user
//! then revokes), every durable change persisted before its response, time compressed. Erases are
//! counted per sector by the fake flash.
//!
//! The normal run simulates a few days and checks the 10-year budget from them; the year per layout:
//! `cargo test --release --test persist_wear -- --ignored --nocapture`.
#[path = "store_common/mod.rs"]
mod store_common;

use std::cell::Cell;

use embedded_storage_async::nor_flash::NorFlash;
use oauth2_devices::prelude::*;
use oauth2_devices::provider::TokenResponse;
use oauth2_devices::storage::{provider_store_config, RecordStore, StoreStatus};
use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;
use store_common::{block_on, FakeFlash};

type Gateway = Provider<FixedClients<2>, FixedGrants<16>, 64, 16>;
const REFRESHING: usize = 50;
const PAIRINGS_PER_DAY: u32 = 10;

fn gateway(rng: &mut ChaCha20Rng) -> Gateway {
    let mut clients = FixedClients::new();
    clients.add(Client::public("tv", "TV").unwrap()).unwrap();
    static SCOPES: &[&str] = &["profile"];
    let config = Config::new("http://gw.local/activate");
    Provider::build(
        config,
        ServerKey::new(1, &[9; 32]),
        ScopeRegistry::new(SCOPES).unwrap(),
        clients,
        FixedGrants::new(),
        rng,
    )
    .unwrap()
}

#[derive(Debug)]
struct Figures {
    days: u32,
    persists: u64,
    checkpoints: u64,
    bytes: u64,
    erases: Vec<u64>,
}

impl Figures {
    fn per_year(&self, n: u64) -> f64 {
        n as f64 * 365.0 / f64::from(self.days)
    }
    fn max_per_year(&self) -> f64 {
        self.per_year(*self.erases.iter().max().unwrap())
    }
    fn print(&self, name: &str) {
        let per: Vec<String> = self.erases.iter().map(|&e| format!("{:.0}", self.per_year(e))).collect();
        println!("{name} ({} simulated days)", self.days);
        println!(
            "  per year: {:.0} persists, {:.0} of them checkpoints, {:.1} MB written",
            self.per_year(self.persists),
            self.per_year(self.checkpoints),
            self.per_year(self.bytes) / 1e6
        );
        println!("  erases per sector per year: [{}]", per.join(", "));
        println!(
            "  erases of the most worn sector in 10 years: {:.0}; years to 10 000 cycles: {:.1}",
            10.0 * self.max_per_year(),
            10_000.0 / self.max_per_year()
        );
    }
}

fn refresh_req(t: &TokenResponse) -> TokenRequest<'_> {
    TokenRequest {
        client: ClientCredentials::new("tv", None),
        grant: Grant::RefreshToken { refresh_token: t.refresh_token.as_ref().unwrap(), scope: None },
    }
}

fn simulate<const W: usize, const E: usize, const FRAME: usize, const PAGES: usize>(len: usize, days: u32) -> Figures
where
    FakeFlash<W, E>: NorFlash,
{
    let mut rng = ChaCha20Rng::seed_from_u64(1);
    let mut p = gateway(&mut rng);
    let mut store = RecordStore::<FakeFlash<W, E>, FRAME, PAGES>::new(
        FakeFlash::new(len),
        0,
        len as u32,
        provider_store_config(16, 64),
    )
    .expect("layout holds the provider's state");
    block_on(p.restore_from(0, ClockTrust::Trusted, &mut store)).unwrap();
    let (persists, checkpoints) = (Cell::new(0u64), Cell::new(0u64));
    let persist = |p: &mut Gateway, store: &mut RecordStore<FakeFlash<W, E>, FRAME, PAGES>| {
        let r = block_on(p.persist(store)).unwrap();
        persists.set(persists.get() + 1);
        checkpoints.set(checkpoints.get() + u64::from(r.checkpoint));
    };
    persist(&mut p, &mut store);
    let tv = ClientCredentials::new("tv", None);
    let mut pair = |p: &mut Gateway, store: &mut RecordStore<FakeFlash<W, E>, FRAME, PAGES>, now: u64, user: u32| {
        let a = p.device_authorization(now, &DeviceAuthorizationRequest { client: tv, scope: None }, &mut rng).unwrap();
        if p.durable_version() != 0 {
            persist(p, store); // a new serial lease now and then; nothing otherwise
        }
        p.approve(now + 10, &a.user_code.display(), b"u", user, ScopeSet::EMPTY).unwrap();
        persist(p, store);
        let t =
            p.token(now + 15, &TokenRequest { client: tv, grant: Grant::DeviceCode { device_code: &a.device_code } });
        persist(p, store);
        t.unwrap()
    };
    let mut devices: Vec<TokenResponse> = (0..REFRESHING as u32).map(|u| pair(&mut p, &mut store, 1, u)).collect();
    let mut next_user = REFRESHING as u32;
    for day in 0..days {
        for hour in 0..24u32 {
            let now = 3600 + u64::from(day * 24 + hour) * 3600;
            for d in devices.iter_mut() {
                *d = p.token(now, &refresh_req(d)).unwrap();
                persist(&mut p, &mut store);
            }
            if (8..8 + PAIRINGS_PER_DAY).contains(&hour) {
                let t = pair(&mut p, &mut store, now + 60, next_user);
                next_user += 1;
                // The user unpairs the device the new one replaces.
                let i = (next_user as usize) % REFRESHING;
                p.revoke(now + 120, &TokenQuery { client: tv, token: &devices[i].access_token }).unwrap();
                persist(&mut p, &mut store);
                devices[i] = t;
            }
        }
    }
    // A reboot then restores every device.
    let flash = store.into_inner();
    let mut again =
        RecordStore::<FakeFlash<W, E>, FRAME, PAGES>::new(flash, 0, len as u32, provider_store_config(16, 64)).unwrap();
    let mut q = gateway(&mut ChaCha20Rng::seed_from_u64(2));
    let now = 3600 + u64::from(days * 24 - 1) * 3600 + 600; // after the last refresh, before its access tokens expire
    let r = block_on(q.restore_from(now, ClockTrust::Trusted, &mut again)).unwrap();
    assert_eq!(r.status, StoreStatus::Restored);
    assert_eq!(q.live_families(now), REFRESHING);
    for d in &devices {
        assert!(q.check_bearer(now, Some(&format!("Bearer {}", d.access_token)), ScopeSet::EMPTY).is_ok());
    }
    let flash = again.into_inner();
    Figures {
        days,
        persists: persists.get(),
        checkpoints: checkpoints.get(),
        bytes: flash.written as u64,
        erases: flash.erases,
    }
}

#[test]
fn wear_of_a_few_days_stays_within_ten_years_of_endurance() {
    let f = simulate::<16, { 16 * 1024 }, 512, 4>(4 * 16 * 1024, 3);
    f.print("4 x 16 KiB, 16-byte words");
    let (min, max) = (*f.erases.iter().min().unwrap(), *f.erases.iter().max().unwrap());
    assert!(min >= 1 && max - min <= 1, "even wear: {:?}", f.erases);
    assert!(f.checkpoints >= 1 && f.checkpoints * 20 < f.persists, "{f:?}");
    assert!(10.0 * f.max_per_year() < 10_000.0, "{f:?}");
}

#[test]
#[ignore = "a simulated year per layout: run optimised, with --nocapture, for the figures"]
fn wear_figures_for_a_year() {
    println!("scenario: {REFRESHING} devices refreshing hourly, {PAIRINGS_PER_DAY} pairings (and unpairings) a day");
    let big = simulate::<16, { 128 * 1024 }, 512, 3>(3 * 128 * 1024, 365);
    big.print("STM32F767 dual bank, bank 2, 3 x 128 KiB sectors, 16-byte words");
    let small = simulate::<16, { 16 * 1024 }, 512, 4>(4 * 16 * 1024, 365);
    small.print("STM32F767 dual bank, bank 2, 4 x 16 KiB sectors, 16-byte words");
    assert!(10.0 * big.max_per_year() < 10_000.0 && 10.0 * small.max_per_year() < 10_000.0);
}
