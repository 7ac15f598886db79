//! The host gateway keeps its state in files across restarts: an approved grant, issued tokens, refresh
//! tokens and revocations survive; a spent device code stays spent.

use oauth2_devices_e2e::{decide, http, Gateway};

fn device(gw: &Gateway) -> (String, String) {
    let r = http(&gw.addr, "POST", "/oauth/device", &[], "client_id=tv-demo&scope=profile");
    assert_eq!(r.status, 200, "{}", r.text());
    let v = r.json();
    (v["device_code"].as_str().unwrap().into(), v["user_code"].as_str().unwrap().into())
}

fn poll(gw: &Gateway, device_code: &str) -> (u16, serde_json::Value) {
    let body = format!(
        "client_id=tv-demo&grant_type=urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Adevice_code&device_code={device_code}"
    );
    let r = http(&gw.addr, "POST", "/oauth/token", &[], &body);
    (r.status, r.json())
}

fn me(gw: &Gateway, token: &str) -> u16 {
    http(&gw.addr, "GET", "/api/me", &[("Authorization", &format!("Bearer {token}"))], "").status
}

#[test]
fn state_survives_a_restart() {
    let dir = std::env::temp_dir().join(format!("o2d-restart-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let dir_arg = dir.to_str().unwrap().to_string();
    let args = ["--state-dir", dir_arg.as_str(), "--interval", "1"];

    let gw = Gateway::start(&args);
    // A: approved before the restart, exchanged after it.
    let (a_code, a_user) = device(&gw);
    assert_eq!(decide(&gw.addr, &a_user, "approve").status, 200);
    // B: exchanged before the restart; its refresh token used after it.
    let (b_code, b_user) = device(&gw);
    assert_eq!(decide(&gw.addr, &b_user, "approve").status, 200);
    let (status, b_tokens) = poll(&gw, &b_code);
    assert_eq!(status, 200, "{b_tokens}");
    // C: exchanged, then revoked before the restart.
    let (c_code, c_user) = device(&gw);
    assert_eq!(decide(&gw.addr, &c_user, "approve").status, 200);
    let (_, c_tokens) = poll(&gw, &c_code);
    let c_access = c_tokens["access_token"].as_str().unwrap();
    let revoke = format!("client_id=tv-demo&token={c_access}");
    assert_eq!(http(&gw.addr, "POST", "/oauth/revoke", &[], &revoke).status, 200);
    drop(gw);
    assert!(dir.join("server.key").exists() && dir.join("store.bin").exists());
    assert!(!dir.join("snapshots.bin").exists(), "a new state directory has no old snapshot file");

    let gw = Gateway::start(&args);
    let (status, a_tokens) = poll(&gw, &a_code);
    assert_eq!(status, 200, "approved before the restart: {a_tokens}");
    assert_eq!(me(&gw, a_tokens["access_token"].as_str().unwrap()), 200);
    assert_eq!(me(&gw, b_tokens["access_token"].as_str().unwrap()), 200);
    let refresh = format!(
        "client_id=tv-demo&grant_type=refresh_token&refresh_token={}",
        b_tokens["refresh_token"].as_str().unwrap()
    );
    let refreshed = http(&gw.addr, "POST", "/oauth/token", &[], &refresh);
    assert_eq!(refreshed.status, 200);
    let b_access = refreshed.json()["access_token"].as_str().unwrap().to_string();
    assert_eq!(me(&gw, &b_access), 200);
    assert_eq!(me(&gw, c_access), 401, "revoked before the restart stays revoked");
    // B's device code, spent before the restart, is replayed after it: refused, and since its token
    // family is still live the replay revokes it (an empty slot would answer invalid_grant too, but
    // would leave the tokens working).
    let (status, v) = poll(&gw, &b_code);
    assert_eq!((status, v["error"].as_str()), (400, Some("invalid_grant")), "a spent code stays spent");
    assert_eq!(me(&gw, &b_access), 401, "the replay revoked what the spent code issued");
    drop(gw);
    std::fs::remove_dir_all(&dir).unwrap();
}

/// A state directory written by an earlier build of the example (32-slot tables, two 16 KiB
/// snapshot slots in `snapshots.bin`): the gateway migrates it into its record store once, and the
/// paired device keeps working, then and after a further restart.
#[test]
fn an_old_snapshot_file_is_migrated_into_the_record_store() {
    use oauth2_devices::prelude::*;
    use oauth2_devices::storage::{FileFlash, SnapshotSlots};
    use rand_core::SeedableRng;

    let dir = std::env::temp_dir().join(format!("o2d-migrate-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let key = [0x42u8; 32];
    let hex: String = key.iter().map(|b| format!("{b:02x}")).collect();
    std::fs::write(dir.join("server.key"), hex).unwrap();

    // The old gateway's provider: same clients in the same order, same key, 32-slot tables.
    let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(7);
    let scopes = ScopeRegistry::new(&["profile", "email", "sensors:read"]).unwrap();
    let mut clients = FixedClients::<4>::new();
    clients.add(Client::public("tv-demo", "Demo TV").unwrap()).unwrap();
    let secret = SecretHash::new("printer-secret", &mut rng);
    clients.add(Client::confidential("printer-demo", "Demo printer", secret).unwrap()).unwrap();
    let config = Config::new("http://127.0.0.1/activate");
    let mut old: Provider<_, FixedGrants<32>, 32, 32> =
        Provider::build(config, ServerKey::new(1, &key), scopes, clients, FixedGrants::new(), &mut rng).unwrap();
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
    let tv = ClientCredentials::new("tv-demo", None);
    let auth = old
        .device_authorization(now, &DeviceAuthorizationRequest { client: tv, scope: Some("profile") }, &mut rng)
        .unwrap();
    let typed: String = auth.user_code.display().chars().filter(|c| *c != '-').collect();
    let profile = old.scopes().parse("profile").unwrap();
    old.approve(now, &typed, b"user:1", 1, profile).unwrap();
    let poll = TokenRequest { client: tv, grant: Grant::DeviceCode { device_code: &auth.device_code } };
    let tokens = old.token(now, &poll).unwrap();
    let mut buf = vec![0u8; 32 * 1024];
    let n = old.save(&mut buf).unwrap();
    let flash = FileFlash::open(dir.join("snapshots.bin"), 32 * 1024).unwrap();
    SnapshotSlots::new(flash, 0, 32 * 1024).unwrap().store(&buf[..n]).unwrap();

    let dir_arg = dir.to_str().unwrap().to_string();
    let args = ["--state-dir", dir_arg.as_str()];
    let gw = Gateway::start(&args);
    let access = tokens.access_token.as_str();
    assert_eq!(me(&gw, access), 200, "a token issued before the migration works after it");
    let refresh = format!(
        "client_id=tv-demo&grant_type=refresh_token&refresh_token={}",
        tokens.refresh_token.as_ref().expect("refresh token").as_str()
    );
    let refreshed = http(&gw.addr, "POST", "/oauth/token", &[], &refresh);
    assert_eq!(refreshed.status, 200, "{}", refreshed.text());
    let new_access = refreshed.json()["access_token"].as_str().unwrap().to_string();
    let log = gw.log().join("\n");
    assert!(log.contains("state: migrated"), "no migration line in: {log}");
    drop(gw);
    assert!(dir.join("store.bin").exists(), "no record store after the migration");
    let len = std::fs::metadata(dir.join("snapshots.bin")).unwrap().len();
    assert_eq!(len, 32 * 1024, "the old file is left as it was");

    let gw = Gateway::start(&args);
    assert_eq!(me(&gw, &new_access), 200, "the refresh made after the migration survives a restart");
    assert!(!gw.log().join("\n").contains("state: migrated"), "migrated twice");
    drop(gw);
    std::fs::remove_dir_all(&dir).unwrap();
}
