//! Surviving reboots and power loss: snapshots, the two-slot flash store, and what a restart keeps.
#[path = "common/flow.rs"]
mod flow;

use embedded_storage::nor_flash::{ErrorType, NorFlash, NorFlashError, NorFlashErrorKind, ReadNorFlash};
use flow::{public, TestProvider};
use oauth2_devices::prelude::*;
use oauth2_devices::provider::DeviceAuthorization;
use oauth2_devices::snapshot::{max_snapshot_len, SnapshotError, SNAPSHOT_VERSION};
use oauth2_devices::storage::{SnapshotSlots, StorageError};
use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;

/// RAM-backed NOR flash that loses power after `budget` byte operations (writes and erases count per
/// byte): every later operation fails, as if the device had died there.
#[derive(Clone, Debug)]
struct CuttableFlash {
    mem: Vec<u8>,
    budget: Option<usize>,
}

#[derive(Debug)]
struct PowerCut;

impl NorFlashError for PowerCut {
    fn kind(&self) -> NorFlashErrorKind {
        NorFlashErrorKind::Other
    }
}

impl CuttableFlash {
    fn new(len: usize) -> Self {
        Self { mem: vec![0xFF; len], budget: None }
    }
    fn spend(&mut self) -> Result<(), PowerCut> {
        match &mut self.budget {
            Some(0) => Err(PowerCut),
            Some(n) => {
                *n -= 1;
                Ok(())
            }
            None => Ok(()),
        }
    }
}

impl ErrorType for CuttableFlash {
    type Error = PowerCut;
}

impl ReadNorFlash for CuttableFlash {
    const READ_SIZE: usize = 1;
    fn read(&mut self, offset: u32, bytes: &mut [u8]) -> Result<(), PowerCut> {
        let o = offset as usize;
        bytes.copy_from_slice(&self.mem[o..o + bytes.len()]);
        Ok(())
    }
    fn capacity(&self) -> usize {
        self.mem.len()
    }
}

impl NorFlash for CuttableFlash {
    const WRITE_SIZE: usize = 4;
    const ERASE_SIZE: usize = 1024;
    fn erase(&mut self, from: u32, to: u32) -> Result<(), PowerCut> {
        for i in from..to {
            self.spend()?;
            self.mem[i as usize] = 0xFF;
        }
        Ok(())
    }
    fn write(&mut self, offset: u32, bytes: &[u8]) -> Result<(), PowerCut> {
        assert_eq!(offset as usize % Self::WRITE_SIZE, 0);
        assert_eq!(bytes.len() % Self::WRITE_SIZE, 0);
        for (i, b) in bytes.iter().enumerate() {
            self.spend()?;
            self.mem[offset as usize + i] &= b; // NOR: bits only go from 1 to 0
        }
        Ok(())
    }
}

fn setup(seed: u64) -> (TestProvider, ChaCha20Rng) {
    let mut rng = ChaCha20Rng::seed_from_u64(seed);
    let p = flow::provider(&mut rng).unwrap();
    (p, rng)
}

/// A "rebooted" provider: same key and configuration, empty tables, a different RNG.
fn reboot() -> TestProvider {
    setup(12345).0
}

fn start(p: &mut TestProvider, rng: &mut ChaCha20Rng, now: u64) -> DeviceAuthorization {
    p.device_authorization(now, &DeviceAuthorizationRequest { client: public("tv"), scope: None }, rng).unwrap()
}

fn poll<'a>(code: &'a str) -> TokenRequest<'a> {
    TokenRequest { client: public("tv"), grant: Grant::DeviceCode { device_code: code } }
}

fn snapshot(p: &TestProvider) -> Vec<u8> {
    let mut buf = vec![0u8; max_snapshot_len(16, 16)];
    let n = p.save(&mut buf).unwrap();
    buf.truncate(n);
    buf
}

#[test]
fn approved_grant_and_refresh_survive_a_reboot() {
    let (mut p, mut rng) = setup(1);
    let a = start(&mut p, &mut rng, 1000);
    p.approve(1010, &a.user_code.display(), b"u", 3, ScopeSet::EMPTY).unwrap();
    let b = start(&mut p, &mut rng, 1011);
    p.approve(1012, &b.user_code.display(), b"u", 4, ScopeSet::EMPTY).unwrap();
    let tb = p.token(1013, &poll(&b.device_code)).unwrap();
    let snap = snapshot(&p);

    let mut q = reboot();
    let restored = q.restore(1100, &snap).unwrap();
    // Two decided grants; two families: b's, and the slot a's approval reserved for its device.
    assert_eq!((restored.grants, restored.families, restored.clock_was_behind), (2, 2, false));
    // The device finishes its flow after the reboot.
    let ta = q.token(1100, &poll(&a.device_code)).unwrap();
    assert!(q.check_bearer(1101, Some(&format!("Bearer {}", ta.access_token)), ScopeSet::EMPTY).is_ok());
    // The token issued before the reboot still works, and so does its refresh token.
    assert!(q.check_bearer(1101, Some(&format!("Bearer {}", tb.access_token)), ScopeSet::EMPTY).is_ok());
    let r = TokenRequest {
        client: public("tv"),
        grant: Grant::RefreshToken { refresh_token: tb.refresh_token.as_ref().unwrap(), scope: None },
    };
    assert!(q.token(1102, &r).is_ok());
}

#[test]
fn revoked_stays_revoked_and_used_codes_stay_used() {
    let (mut p, mut rng) = setup(2);
    let a = start(&mut p, &mut rng, 0);
    p.approve(1, &a.user_code.display(), b"u", 1, ScopeSet::EMPTY).unwrap();
    let t = p.token(2, &poll(&a.device_code)).unwrap();
    p.revoke(2, &TokenQuery { client: public("tv"), token: &t.access_token }).unwrap();
    let c = start(&mut p, &mut rng, 3);
    p.deny(4, &c.user_code.display(), b"u").unwrap();
    let snap = snapshot(&p);

    let mut q = reboot();
    q.restore(10, &snap).unwrap();
    let header = format!("Bearer {}", t.access_token);
    assert_eq!(q.check_bearer(11, Some(&header), ScopeSet::EMPTY), Err(BearerError::Revoked));
    assert_eq!(q.token(11, &poll(&a.device_code)).unwrap_err().code, ErrorCode::InvalidGrant);
    assert_eq!(q.token(11, &poll(&c.device_code)).unwrap_err().code, ErrorCode::AccessDenied);
    let r = TokenRequest {
        client: public("tv"),
        grant: Grant::RefreshToken { refresh_token: t.refresh_token.as_ref().unwrap(), scope: None },
    };
    assert_eq!(q.token(12, &r).unwrap_err().code, ErrorCode::InvalidGrant);
}

#[test]
fn codes_issued_after_the_last_save_never_match_new_grants() {
    let (mut p, mut rng) = setup(3);
    let snap = snapshot(&p);
    // Issued, never saved, then the power goes.
    let lost: Vec<_> = (0..16).map(|i| start(&mut p, &mut rng, i)).collect();
    let mut q = reboot();
    q.restore(20, &snap).unwrap();
    let mut rng2 = ChaCha20Rng::seed_from_u64(77);
    let fresh: Vec<_> = (0..16).map(|i| start(&mut q, &mut rng2, 20 + i)).collect();
    for f in &fresh {
        q.approve(40, &f.user_code.display(), b"u", 1, ScopeSet::EMPTY).unwrap();
    }
    for a in &lost {
        assert_eq!(q.token(50, &poll(&a.device_code)).unwrap_err().code, ErrorCode::InvalidGrant);
    }
}

#[test]
fn a_clock_behind_the_snapshot_fails_safe() {
    let (mut p, mut rng) = setup(4);
    let a = start(&mut p, &mut rng, 5000);
    p.approve(5001, &a.user_code.display(), b"u", 1, ScopeSet::EMPTY).unwrap();
    let b = start(&mut p, &mut rng, 5002);
    p.approve(5003, &b.user_code.display(), b"u", 1, ScopeSet::EMPTY).unwrap();
    let t = p.token(5004, &poll(&b.device_code)).unwrap();
    let snap = snapshot(&p);
    // The clock restarted at 10 s: the downtime is unknown, so nothing may outlive its lifetime.
    let mut q = reboot();
    let r = q.restore(10, &snap).unwrap();
    assert!(r.clock_was_behind);
    assert_eq!(q.token(11, &poll(&a.device_code)).unwrap_err().code, ErrorCode::InvalidGrant);
    let header = format!("Bearer {}", t.access_token);
    assert_eq!(q.check_bearer(11, Some(&header), ScopeSet::EMPTY), Err(BearerError::Revoked));
}

#[test]
fn a_clock_jumping_back_never_revives_anything() {
    let (mut p, mut rng) = setup(5);
    let a = start(&mut p, &mut rng, 0);
    assert_eq!(p.token(600, &poll(&a.device_code)).unwrap_err().code, ErrorCode::ExpiredToken);
    // The clock jumps back 500 s: the code stays expired, on every path.
    assert_eq!(p.token(100, &poll(&a.device_code)).unwrap_err().code, ErrorCode::ExpiredToken);
    assert_eq!(p.user_code_info(100, &a.user_code.display(), b"u"), Err(ApproveError::Expired));
    assert_eq!(p.clock(), 600);
}

#[test]
fn bad_snapshots_are_refused_and_change_nothing() {
    let (mut p, mut rng) = setup(6);
    let a = start(&mut p, &mut rng, 0);
    let snap = snapshot(&p);
    let (mut q, mut rng_q) = setup(7);
    let mine = start(&mut q, &mut rng_q, 0);
    let before = q.durable_version();

    for n in 0..snap.len() {
        let e = q.restore(1, &snap[..n]).unwrap_err();
        assert!(matches!(e, SnapshotError::Truncated | SnapshotError::BadMagic | SnapshotError::BadTag), "{n}: {e:?}");
    }
    for i in 0..snap.len() {
        let mut bad = snap.clone();
        bad[i] ^= 0x01;
        assert!(q.restore(1, &bad).is_err(), "flipped byte {i}");
    }
    let mut newer = snap.clone();
    newer[4] = SNAPSHOT_VERSION + 1;
    assert_eq!(q.restore(1, &newer), Err(SnapshotError::UnsupportedVersion(SNAPSHOT_VERSION + 1)));
    assert_eq!(q.restore(1, b"definitely not a snapshot"), Err(SnapshotError::BadMagic));
    // Another server's snapshot (same key id, other key material).
    let mut other = TestProvider::build(
        Config::new("https://gw.example/activate"),
        ServerKey::new(1, &[0x11; 32]),
        ScopeRegistry::new(flow::SCOPES).unwrap(),
        FixedClients::new(),
        FixedGrants::new(),
        &mut rng,
    )
    .unwrap();
    let foreign = snapshot(&other);
    assert_eq!(q.restore(1, &foreign), Err(SnapshotError::BadTag));
    other.keys_mut().rotate(ServerKey::new(9, &[0x11; 32])).unwrap();
    assert_eq!(q.restore(1, &snapshot(&other)), Err(SnapshotError::UnknownKey(9)));
    // Nothing changed: q's own grant still polls, p's does not exist here.
    assert_eq!(q.durable_version(), before);
    assert_eq!(q.token(2, &poll(&mine.device_code)).unwrap_err().code, ErrorCode::AuthorizationPending);
    assert_eq!(q.token(2, &poll(&a.device_code)).unwrap_err().code, ErrorCode::InvalidGrant);
}

#[test]
fn a_snapshot_too_big_for_a_smaller_provider_is_refused() {
    let (mut p, mut rng) = setup(8);
    for i in 0..10 {
        // Approved, since undecided grants are not saved.
        let a = start(&mut p, &mut rng, i);
        p.approve(i, &a.user_code.display(), b"u", 1, ScopeSet::EMPTY).unwrap();
    }
    let snap = snapshot(&p);
    let mut small: Provider<FixedClients<4>, FixedGrants<4>, 4, 4> = Provider::build(
        Config::new("https://gw.example/activate"),
        ServerKey::new(1, &[0x5a; 32]),
        ScopeRegistry::new(flow::SCOPES).unwrap(),
        FixedClients::new(),
        FixedGrants::new(),
        &mut rng,
    )
    .unwrap();
    assert_eq!(small.restore(20, &snap), Err(SnapshotError::CapacityExceeded));
    let mut tiny = [0u8; 10];
    assert_eq!(p.save(&mut tiny), Err(SnapshotError::BufferTooSmall));
}

#[test]
fn polling_does_not_dirty_the_snapshot() {
    let (mut p, mut rng) = setup(9);
    let a = start(&mut p, &mut rng, 0);
    let v = p.durable_version();
    // Each poll reaches the grant and gets the answer its timing calls for (interval 5, then 10).
    let answers: Vec<_> = [0, 5, 6, 20, 40].map(|t| p.token(t, &poll(&a.device_code)).unwrap_err().code).into();
    use ErrorCode::{AuthorizationPending as Pending, SlowDown};
    assert_eq!(answers, [Pending, Pending, SlowDown, Pending, Pending]);
    assert_eq!(p.durable_version(), v);
    p.approve(50, &a.user_code.display(), b"u", 1, ScopeSet::EMPTY).unwrap();
    assert_ne!(p.durable_version(), v);
}

/// What a gateway does: after each request, one snapshot write if `durable_version()` changed.
struct Writes {
    last: u32,
    by: Vec<&'static str>,
}

impl Writes {
    fn new(p: &TestProvider) -> Self {
        Self { last: p.durable_version(), by: Vec::new() }
    }
    fn after(&mut self, p: &TestProvider, request: &'static str) {
        if p.durable_version() != self.last {
            self.last = p.durable_version();
            self.by.push(request);
        }
    }
}

#[test]
fn a_whole_device_flow_costs_two_writes() {
    use oauth2_devices::provider::Introspection;
    let (mut p, mut rng) = setup(13);
    // The first request after start-up takes a lease of serials: one write (see the next test).
    start(&mut p, &mut rng, 50);
    let mut w = Writes::new(&p);
    let a = start(&mut p, &mut rng, 100);
    w.after(&p, "device authorization");
    let code = a.user_code.display();
    let answers = [100, 102, 112, 113].map(|t| {
        let r = p.token(t, &poll(&a.device_code)).unwrap_err().code;
        w.after(&p, "poll");
        r
    });
    use ErrorCode::{AuthorizationPending as Pending, SlowDown};
    assert_eq!(answers, [Pending, SlowDown, Pending, SlowDown]);
    // The verification page: a wrong code, then the right one shown, then approved.
    assert_eq!(p.user_code_info(114, "BBBB-BBBB", b"u").unwrap_err(), ApproveError::InvalidCode);
    w.after(&p, "a wrong code on the page");
    assert_eq!(p.user_code_info(114, &code, b"u").unwrap().state, GrantState::Polling);
    w.after(&p, "the page");
    p.approve(115, &code, b"u", 1, ScopeSet::EMPTY).unwrap();
    w.after(&p, "approve");
    let t = p.token(120, &poll(&a.device_code)).unwrap();
    w.after(&p, "token exchange");
    // Using the tokens writes nothing.
    let header = format!("Bearer {}", t.access_token);
    assert!(p.check_bearer(121, Some(&header), ScopeSet::EMPTY).is_ok());
    w.after(&p, "bearer check");
    let printer = ClientCredentials::new("printer", Some("s3cret"));
    let q = TokenQuery { client: printer, token: &t.access_token };
    assert!(matches!(p.introspect(122, &q), Ok(Introspection::Access(_))));
    w.after(&p, "introspection");
    // Asking for codes is not saved (an undecided request does not survive a reboot).
    assert_eq!(w.by, ["approve", "token exchange"]);

    // And, as documented, one per refresh and one per revocation.
    let r = TokenRequest {
        client: public("tv"),
        grant: Grant::RefreshToken { refresh_token: t.refresh_token.as_ref().unwrap(), scope: None },
    };
    let t2 = p.token(130, &r).unwrap();
    w.after(&p, "refresh");
    p.revoke(131, &TokenQuery { client: public("tv"), token: &t2.access_token }).unwrap();
    w.after(&p, "revocation");
    assert_eq!(w.by[2..], ["refresh", "revocation"]);

    // A denied flow: one write, and polling the denial writes nothing.
    let mut w = Writes::new(&p);
    let d = start(&mut p, &mut rng, 200);
    w.after(&p, "device authorization");
    p.deny(201, &d.user_code.display(), b"u").unwrap();
    w.after(&p, "deny");
    for t in [205, 206, 220] {
        assert_eq!(p.token(t, &poll(&d.device_code)).unwrap_err().code, ErrorCode::AccessDenied);
        w.after(&p, "poll");
    }
    assert_eq!(w.by, ["deny"]);
}

#[test]
fn device_authorizations_cost_one_write_per_serial_lease() {
    use oauth2_devices::provider::SERIAL_LEASE;
    let (mut p, mut rng) = setup(14);
    let mut w = Writes::new(&p);
    // Requests whose devices never poll: each is abandoned before the next, so the table never fills.
    let step = u64::from(p.config().abandon_after) + 1;
    for i in 0..u64::from(SERIAL_LEASE) * 2 + 1 {
        start(&mut p, &mut rng, i * step);
        w.after(&p, "device authorization");
    }
    // The first request takes a lease, the 1025th and the 2049th the next ones.
    assert_eq!(w.by.len(), 3);
}

const SLOT: usize = 2048;

fn slots(flash: CuttableFlash) -> SnapshotSlots<CuttableFlash> {
    SnapshotSlots::new(flash, 1024, (2 * SLOT) as u32).unwrap()
}

fn load(flash: &CuttableFlash) -> Option<Vec<u8>> {
    let mut f = flash.clone();
    f.budget = None;
    let mut s = slots(f);
    let mut buf = vec![0u8; SLOT];
    s.load(&mut buf).unwrap().map(|b| b.to_vec())
}

#[test]
fn a_power_cut_at_every_byte_of_a_write_leaves_the_old_or_the_new_snapshot() {
    let (mut p, mut rng) = setup(10);
    start(&mut p, &mut rng, 0);
    let old = snapshot(&p);
    let a = start(&mut p, &mut rng, 1);
    p.approve(2, &a.user_code.display(), b"u", 1, ScopeSet::EMPTY).unwrap();
    let new = snapshot(&p);
    assert_ne!(old, new);

    // Two generations already on flash, so the write goes to the slot holding the older one.
    let mut s = slots(CuttableFlash::new(1024 + 2 * SLOT));
    s.store(b"generation zero").unwrap();
    s.store(&old).unwrap();
    let base = s.into_inner();
    assert_eq!(load(&base).as_deref(), Some(&old[..]));

    // Count the byte operations of a complete write.
    let mut counted = base.clone();
    counted.budget = Some(usize::MAX);
    let mut s = slots(counted);
    s.store(&new).unwrap();
    let total = usize::MAX - s.into_inner().budget.unwrap();
    assert!(total > SLOT, "erase and write counted: {total}");

    let (mut saw_old, mut saw_new) = (0, 0);
    for cut in 0..=total {
        let mut f = base.clone();
        f.budget = Some(cut);
        let mut s = slots(f);
        let result = s.store(&new);
        assert_eq!(result.is_ok(), cut == total, "cut at {cut}");
        if cut < total {
            assert_eq!(result, Err(StorageError::Flash));
        }
        let after = load(&s.into_inner()).expect("a snapshot is always there");
        if after == old {
            saw_old += 1;
        } else if after == new {
            saw_new += 1;
        } else {
            panic!("cut at {cut}: neither the old nor the new snapshot");
        }
        // And whatever survived restores cleanly.
        let mut q = reboot();
        q.restore(3, &after).unwrap();
    }
    assert_eq!(saw_new, 1, "only the completed write shows the new snapshot");
    assert_eq!(saw_old, total);
}

#[test]
fn storage_layout_errors() {
    assert_eq!(SnapshotSlots::new(CuttableFlash::new(4096), 0, 3000).unwrap_err(), StorageError::BadLayout);
    assert_eq!(SnapshotSlots::new(CuttableFlash::new(4096), 100, 2048).unwrap_err(), StorageError::BadLayout);
    assert_eq!(SnapshotSlots::new(CuttableFlash::new(2048), 0, 4096).unwrap_err(), StorageError::BadLayout);
    let mut s = SnapshotSlots::new(CuttableFlash::new(2048), 0, 2048).unwrap();
    assert_eq!(s.store(&[0; 2000]), Err(StorageError::TooLarge));
    let mut buf = [0u8; 4];
    assert_eq!(s.load(&mut buf), Ok(None));
    s.store(&[1; 10]).unwrap();
    assert_eq!(s.load(&mut buf), Err(StorageError::TooLarge));
}
