//! Bugs the `provider` fuzz target (fuzz/fuzz_targets/provider.rs) found, reduced to the public API
//! and kept as regression tests.

use oauth2_devices::prelude::*;
use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;

type Small = Provider<FixedClients<1>, FixedGrants<4>, 4, 4>;

fn provider(rng: &mut ChaCha20Rng) -> Small {
    let mut clients = FixedClients::<1>::new();
    clients.add(Client::public("tv", "TV").unwrap()).unwrap();
    let config = Config { families_per_user: 1, ..Config::new("https://gw.example/activate") };
    let scopes = ScopeRegistry::new(&["profile"]).unwrap();
    Provider::build(config, ServerKey::new(1, &[7; 32]), scopes, clients, FixedGrants::new(), rng).unwrap()
}

/// `Config::families_per_user` is "most connected devices (token families, approvals waiting for their
/// device included) one user may have at once". `revoke_serial` of an approval still waiting for its
/// device removes the reservation but leaves the grant approved, so the user can approve a second
/// device, and the first device's next poll then opens a family in a free slot without the account
/// check: the user ends up with two live families under a limit of one. (The same revoked approval
/// still yielding tokens is what `revoke_family` avoids by turning the grant into `Denied`.)
#[test]
fn revoke_serial_of_a_reservation_lets_an_account_exceed_its_limit() {
    let mut rng = ChaCha20Rng::seed_from_u64(1);
    let mut p = provider(&mut rng);
    let tv = ClientCredentials::new("tv", None);
    let req = DeviceAuthorizationRequest { client: tv, scope: None };
    let first = p.device_authorization(0, &req, &mut rng).unwrap();
    let second = p.device_authorization(0, &req, &mut rng).unwrap();
    p.approve(1, &first.user_code.display(), b"u", 7, ScopeSet::EMPTY).unwrap();
    let reservation = p.families(1, 7).next().unwrap();
    assert!(p.revoke_serial(reservation.serial), "the reservation is revoked");
    p.approve(2, &second.user_code.display(), b"u", 7, ScopeSet::EMPTY).unwrap();

    let poll = TokenRequest { client: tv, grant: Grant::DeviceCode { device_code: &first.device_code } };
    let answer = p.token(3, &poll);
    assert_eq!(answer.as_ref().err().map(|e| e.code), Some(ErrorCode::AccessDenied), "the approval was withdrawn");
    let devices = p.families(3, 7).count();
    assert!(
        devices <= usize::from(p.config().families_per_user),
        "user 7 has {devices} connected devices under a limit of 1 (the revoked approval's poll got {:?})",
        answer.map(|t| t.expires_in)
    );
}
