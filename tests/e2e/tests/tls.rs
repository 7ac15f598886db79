//! HTTPS on the host gateway (`--tls`: a development certificate kept in the state directory), with
//! clients that trust that certificate explicitly: the `oauth2` crate, the crate's `device` example,
//! curl with `--cacert`. And plain HTTP off loopback: refused, unless `--insecure-http`, which warns.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use oauth2::basic::BasicClient;
use oauth2::{ClientId, DeviceAuthorizationUrl, Scope, StandardDeviceAuthorizationResponse, TokenResponse, TokenUrl};
use oauth2_devices_e2e::{csrf_of, demo_basic, example_bin, gateway_bin, Gateway};

/// A scratch state directory, removed on drop.
struct StateDir(PathBuf);

impl StateDir {
    fn new(tag: &str) -> StateDir {
        let dir = std::env::temp_dir().join(format!("o2d-tls-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        StateDir(dir)
    }
    fn arg(&self) -> &str {
        self.0.to_str().unwrap()
    }
    fn cert(&self) -> PathBuf {
        self.0.join("tls-dev-cert.pem")
    }
}

impl Drop for StateDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn https_gateway(dir: &StateDir) -> Gateway {
    let gw = Gateway::start(&["--tls", "--state-dir", dir.arg(), "--interval", "1"]);
    assert!(gw.base.starts_with("https://127.0.0.1:"), "{}", gw.base);
    assert!(dir.cert().exists(), "no development certificate in the state directory");
    gw
}

/// A blocking client that trusts only `cert`.
fn trusting(cert: &Path) -> reqwest::blocking::Client {
    let pem = std::fs::read(cert).unwrap();
    reqwest::blocking::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(&pem).unwrap())
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap()
}

/// Approves `user_code` on the verification page over HTTPS, as the signed-in demo user.
fn approve(client: &reqwest::blocking::Client, base: &str, user_code: &str) {
    let page = client
        .get(format!("{base}/activate?user_code={user_code}"))
        .header("Authorization", demo_basic())
        .send()
        .unwrap();
    assert_eq!(page.status(), 200);
    assert!(page.headers().get("strict-transport-security").is_none(), "HSTS with a development certificate");
    let csrf = csrf_of(&page.text().unwrap());
    let done = client
        .post(format!("{base}/activate"))
        .header("Authorization", demo_basic())
        .form(&[("user_code", user_code), ("csrf", &csrf), ("action", "approve")])
        .send()
        .unwrap();
    assert_eq!(done.status(), 200);
}

#[test]
fn metadata_names_https_endpoints_and_an_untrusting_client_is_refused() {
    let dir = StateDir::new("meta");
    let gw = https_gateway(&dir);
    let v: serde_json::Value = trusting(&dir.cert())
        .get(format!("{}/.well-known/oauth-authorization-server", gw.base))
        .send()
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(v["issuer"], gw.base.as_str());
    for key in ["device_authorization_endpoint", "token_endpoint", "introspection_endpoint", "revocation_endpoint"] {
        assert!(v[key].as_str().unwrap().starts_with("https://"), "{key}: {v}");
    }
    // Without the certificate, the client refuses the server: the trust the other tests give is real.
    let plain = reqwest::blocking::Client::builder().timeout(Duration::from_secs(10)).build().unwrap();
    assert!(plain.get(format!("{}/", gw.base)).send().is_err(), "an unknown certificate was accepted");
    // The same certificate is read back on the next start, not made anew.
    let first = std::fs::read(dir.cert()).unwrap();
    drop(gw);
    let gw = https_gateway(&dir);
    assert_eq!(std::fs::read(dir.cert()).unwrap(), first, "the development certificate changed on restart");
    drop(gw);
}

#[test]
fn the_oauth2_crate_runs_the_flow_over_https() {
    let dir = StateDir::new("oauth2");
    let gw = https_gateway(&dir);
    let pem = std::fs::read(dir.cert()).unwrap();
    let http = reqwest::ClientBuilder::new()
        .add_root_certificate(reqwest::Certificate::from_pem(&pem).unwrap())
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let client = BasicClient::new(ClientId::new("tv-demo".into()))
        .set_device_authorization_url(DeviceAuthorizationUrl::new(format!("{}/oauth/device", gw.base)).unwrap())
        .set_token_uri(TokenUrl::new(format!("{}/oauth/token", gw.base)).unwrap());
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let details: StandardDeviceAuthorizationResponse = rt
        .block_on(client.exchange_device_code().add_scope(Scope::new("profile".into())).request_async(&http))
        .expect("device authorization over HTTPS");
    assert!(details.verification_uri().as_str().starts_with("https://"));
    approve(&trusting(&dir.cert()), &gw.base, details.user_code().secret());
    let token = rt
        .block_on(client.exchange_device_access_token(&details).request_async(
            &http,
            tokio::time::sleep,
            Some(Duration::from_secs(30)),
        ))
        .expect("tokens over HTTPS");
    let me = trusting(&dir.cert())
        .get(format!("{}/api/me", gw.base))
        .bearer_auth(token.access_token().secret())
        .send()
        .unwrap();
    assert_eq!(me.status(), 200);
}

#[test]
fn the_device_example_runs_the_flow_over_https() {
    let dir = StateDir::new("device");
    let gw = https_gateway(&dir);
    let cert = dir.cert();
    let mut child = Command::new(example_bin("device"))
        .args(["--base", &gw.base, "--cacert", cert.to_str().unwrap(), "--max-wait", "60"])
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let out = child.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(out).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let web = trusting(&cert);
    let mut lines = Vec::new();
    while let Ok(line) = rx.recv_timeout(Duration::from_secs(90)) {
        if line.contains("enter the code") {
            approve(&web, &gw.base, line.rsplit(' ').next().unwrap());
        }
        lines.push(line);
    }
    let status = child.wait().unwrap().code();
    let all = lines.join("\n");
    assert_eq!(status, Some(0), "{all}");
    assert!(all.contains("GET /api/me -> 200"), "{all}");
}

#[test]
fn curl_trusts_the_certificate_it_is_given() {
    let dir = StateDir::new("curl");
    let gw = https_gateway(&dir);
    let curl = |extra: &[&str], url: String| {
        Command::new("curl")
            .args(["-sS", "--max-time", "10", "-o", "-", "-w", "\n%{http_code}"])
            .args(extra)
            .arg(url)
            .output()
            .expect("curl must be installed")
    };
    let cert = dir.cert();
    let ok = curl(
        &["--cacert", cert.to_str().unwrap(), "-d", "client_id=tv-demo", "-d", "scope=profile"],
        format!("{}/oauth/device", gw.base),
    );
    let text = String::from_utf8_lossy(&ok.stdout);
    assert!(ok.status.success(), "curl --cacert failed: {}", String::from_utf8_lossy(&ok.stderr));
    assert!(text.ends_with("200") && text.contains("\"user_code\""), "{text}");
    // Without --cacert curl refuses the certificate (exit 60: peer certificate cannot be verified).
    let refused = curl(&[], format!("{}/.well-known/oauth-authorization-server", gw.base));
    assert_eq!(refused.status.code(), Some(60), "{}", String::from_utf8_lossy(&refused.stderr));
}

#[test]
fn plain_http_off_loopback_refuses_to_start() {
    let out = Command::new(gateway_bin()).args(["--addr", "0.0.0.0:0", "--no-state"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(!stdout.contains("listening"), "it listened: {stdout}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("refusing to serve plain HTTP") && stderr.contains("--insecure-http"), "{stderr}");
    // Half a TLS set-up is an error too.
    let out = Command::new(gateway_bin()).args(["--addr", "127.0.0.1:0", "--no-state", "--tls-cert", "x.pem"]).output();
    assert_eq!(out.unwrap().status.code(), Some(2));
}

/// A network namespace of the test's own, deleted on drop.
struct Namespace(String);

impl Namespace {
    fn ip(args: &[&str]) -> bool {
        Command::new("ip").args(args).stderr(Stdio::null()).status().is_ok_and(|s| s.success())
    }
    fn new(name: String, addr: &str) -> Option<Namespace> {
        if !Self::ip(&["netns", "add", &name]) {
            return None;
        }
        let ns = Namespace(name);
        let ok = Self::ip(&["-n", &ns.0, "link", "set", "lo", "up"])
            && Self::ip(&["-n", &ns.0, "addr", "add", &format!("{addr}/32"), "dev", "lo"]);
        ok.then_some(ns)
    }
}

impl Drop for Namespace {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "delete", &self.0]).status();
    }
}

#[test]
fn insecure_http_off_loopback_starts_with_a_warning() {
    // A non-loopback address that exists only inside a namespace of this test.
    const ADDR: &str = "10.77.0.1";
    let is_root = Command::new("id").arg("-u").output().is_ok_and(|o| o.stdout.starts_with(b"0\n"));
    let Some(ns) = Namespace::new(format!("o2d-tls-{}", std::process::id()), ADDR) else {
        assert!(!is_root, "running as root, but no network namespace could be made (ip netns add)");
        eprintln!("skipped: needs root for a network namespace (CI runs it as root)");
        return;
    };
    let mut child = Command::new("ip")
        .args(["netns", "exec", &ns.0])
        .arg(gateway_bin())
        .args(["--addr", &format!("{ADDR}:8080"), "--no-state", "--insecure-http"])
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let out = child.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(out).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let first = rx.recv_timeout(Duration::from_secs(30)).expect("no output");
    let second = rx.recv_timeout(Duration::from_secs(30)).expect("no second line");
    let page = Command::new("ip")
        .args(["netns", "exec", &ns.0, "curl", "-sS", "--max-time", "10", "-u", "alice:wonderland"])
        .arg(format!("http://{ADDR}:8080/activate"))
        .output()
        .unwrap();
    let _ = child.kill();
    let _ = child.wait();
    assert_eq!(first, format!("listening on http://{ADDR}:8080"));
    assert!(second.starts_with("WARNING: plain HTTP"), "{second}");
    let html = String::from_utf8_lossy(&page.stdout);
    assert!(html.contains("id=\"notice\"") && html.contains("unencrypted"), "no warning in the page footer: {html}");
}

#[test]
fn a_stalled_handshake_is_dropped_at_its_deadline() {
    use std::io::Read;
    const HANDSHAKE: u64 = 1;
    let dir = StateDir::new("stall");
    let gw = Gateway::start(&["--tls", "--state-dir", dir.arg(), "--handshake-timeout", &HANDSHAKE.to_string()]);
    let started = std::time::Instant::now();
    let mut s = std::net::TcpStream::connect(&gw.addr).unwrap();
    // Far longer than the deadline, so that only the gateway's close ends the read.
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let mut buf = [0u8; 16];
    let n = s.read(&mut buf).unwrap_or(0);
    let waited = started.elapsed();
    assert_eq!(n, 0, "the gateway sent bytes to a client that never said hello");
    // The bound: the configured deadline, three times over, plus a wide margin for a loaded machine.
    assert!(waited < Duration::from_secs(3 * HANDSHAKE + 5), "held {waited:?} with a {HANDSHAKE} s handshake deadline");
    assert!(waited >= Duration::from_millis(900 * HANDSHAKE), "closed after {waited:?}, before the deadline");
    // And a real client is served afterwards.
    let v = trusting(&dir.cert()).get(format!("{}/.well-known/oauth-authorization-server", gw.base)).send().unwrap();
    assert_eq!(v.status(), 200);
}
