//! The verification page in a real headless Chromium (Debian `chromium` + `chromium-driver`), driven
//! over the W3C WebDriver protocol: sign in (HTTP Basic, sent as a header through Chrome DevTools),
//! type the code, approve; and a second run that denies. Each run checks what the page shows and what
//! the device then gets, and saves a screenshot under `target/e2e-screenshots/`.
//!
//! Ignored by default (a developer machine may have no Chromium); `.ci/e2e.sh` installs Chromium and
//! runs them with `--ignored`.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use base64::Engine;
use oauth2_devices_e2e::{demo_basic, http, Gateway};
use serde_json::{json, Value};

const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

/// How long chromedriver may take to start and a page to show what a test waits for: far more than
/// either takes on loopback, even on a loaded machine.
const WAIT: Duration = Duration::from_secs(30);
/// Pause between two looks while waiting for a condition.
const LOOK_AGAIN: Duration = Duration::from_millis(50);

/// Polls `look` until it returns `Some`, for at most `WAIT`; `None` if it never did.
fn poll_until<T>(mut look: impl FnMut() -> Option<T>) -> Option<T> {
    let deadline = Instant::now() + WAIT;
    loop {
        if let Some(v) = look() {
            return Some(v);
        }
        if Instant::now() >= deadline {
            return None;
        }
        std::thread::sleep(LOOK_AGAIN);
    }
}

/// [`poll_until`], failing the test if `look` never succeeds; `what` names the condition.
fn wait_until<T>(what: &str, look: impl FnMut() -> Option<T>) -> T {
    poll_until(look).unwrap_or_else(|| panic!("waited {WAIT:?} for {what}"))
}

struct Driver {
    child: Child,
    base: String,
    session: String,
    http: reqwest::blocking::Client,
    _profile: tempdir::Dir,
}

mod tempdir {
    /// A scratch directory removed on drop.
    pub struct Dir(pub std::path::PathBuf);
    impl Dir {
        pub fn new(tag: &str) -> Dir {
            let p = std::env::temp_dir().join(format!(
                "o2d-{tag}-{}-{:?}",
                std::process::id(),
                std::thread::current().id()
            ));
            let _ = std::fs::remove_dir_all(&p);
            std::fs::create_dir_all(&p).unwrap();
            Dir(p)
        }
    }
    impl Drop for Dir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}

impl Driver {
    fn start() -> Driver {
        Driver::start_with(&[])
    }

    /// [`Driver::start`] with more Chromium arguments.
    fn start_with(extra: &[String]) -> Driver {
        // Port 0: chromedriver binds a free port itself and prints it, so no port is chosen here and
        // handed over (another process could take it in between).
        let mut child = Command::new("chromedriver")
            .arg("--port=0")
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("chromedriver (Debian package chromium-driver) must be installed");
        let stdout = child.stdout.take().expect("stdout");
        let (tx, rx) = mpsc::channel();
        // Reads chromedriver's output until it exits, so that it never blocks on a full pipe.
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        let deadline = Instant::now() + WAIT;
        let port = loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match rx.recv_timeout(left) {
                Ok(line) => {
                    if let Some(rest) = line.split("started successfully on port ").nth(1) {
                        break rest.trim_end_matches('.').trim().parse::<u16>().expect("a port number");
                    }
                }
                Err(mpsc::RecvTimeoutError::Timeout) => panic!("chromedriver printed no port within {WAIT:?}"),
                Err(mpsc::RecvTimeoutError::Disconnected) => {
                    panic!("chromedriver exited before listening: {:?}", child.wait())
                }
            }
        };
        let base = format!("http://127.0.0.1:{port}");
        let http = reqwest::blocking::Client::builder().timeout(WAIT).build().unwrap();
        wait_until("chromedriver's /status to answer ready", || {
            let v: Value = http.get(format!("{base}/status")).send().ok()?.json().ok()?;
            (v["value"]["ready"] == true).then_some(())
        });
        let profile = tempdir::Dir::new("chromium");
        let args = [
            "--headless=new",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--window-size=420,900",
        ];
        let mut args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
        args.push(format!("--user-data-dir={}", profile.0.display()));
        args.extend(extra.iter().cloned());
        let caps = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {"binary": "/usr/bin/chromium", "args": args}
        }}});
        let mut d = Driver { child, base, session: String::new(), http, _profile: profile };
        let v = d.call("POST", "/session", caps);
        d.session = v["sessionId"].as_str().expect("session id").to_string();
        d
    }

    fn try_call(&self, method: &str, path: &str, body: Value) -> Result<Value, String> {
        let url = if path == "/session" {
            format!("{}{path}", self.base)
        } else {
            format!("{}/session/{}{path}", self.base, self.session)
        };
        let req = match method {
            "GET" => self.http.get(url),
            "DELETE" => self.http.delete(url),
            _ => self.http.post(url).json(&body),
        };
        let resp: Value = req.send().expect("webdriver request").json().expect("webdriver JSON");
        match resp["value"]["error"].as_str() {
            Some(err) => Err(format!("webdriver {method} {path}: {err}: {}", resp["value"]["message"])),
            None => Ok(resp["value"].clone()),
        }
    }

    fn call(&self, method: &str, path: &str, body: Value) -> Value {
        self.try_call(method, path, body).unwrap_or_else(|e| panic!("{e}"))
    }

    /// Sends `Authorization` with every request of the page, as a browser does once the user signed in.
    fn sign_in(&self, authorization: &str) {
        self.call("POST", "/goog/cdp/execute", json!({"cmd": "Network.enable", "params": {}}));
        self.call(
            "POST",
            "/goog/cdp/execute",
            json!({"cmd": "Network.setExtraHTTPHeaders", "params": {"headers": {"Authorization": authorization}}}),
        );
    }

    fn goto(&self, url: &str) {
        self.call("POST", "/url", json!({"url": url}));
    }

    /// The element matching `css` on the current page, if there is one.
    fn try_find(&self, css: &str) -> Option<String> {
        let v = self.try_call("POST", "/element", json!({"using": "css selector", "value": css})).ok()?;
        v[ELEMENT].as_str().map(str::to_string)
    }

    /// Waits for an element matching `css` (a page being loaded after a click may not have it yet).
    fn find(&self, css: &str) -> String {
        wait_until(&format!("an element {css}"), || self.try_find(css))
    }

    /// Waits until the text of `css` satisfies `want`, and returns it. A look may find the page before
    /// the one awaited, or an element that a navigation just replaced: both mean "look again".
    fn wait_text(&self, css: &str, want: impl Fn(&str) -> bool) -> String {
        let mut last = None;
        let found = poll_until(|| {
            let id = self.try_find(css)?;
            let text = self.try_call("GET", &format!("/element/{id}/text"), Value::Null).ok()?;
            let text = text.as_str().unwrap_or("").to_string();
            last = Some(text.clone());
            want(&text).then_some(text)
        });
        found.unwrap_or_else(|| panic!("waited {WAIT:?} for the text of {css}; last seen: {last:?}"))
    }

    fn type_into(&self, css: &str, text: &str) {
        let id = self.find(css);
        self.call("POST", &format!("/element/{id}/value"), json!({"text": text}));
    }

    fn click(&self, css: &str) {
        let id = self.find(css);
        self.call("POST", &format!("/element/{id}/click"), json!({}));
    }

    fn url(&self) -> String {
        self.call("GET", "/url", Value::Null).as_str().unwrap_or("").to_string()
    }

    fn screenshot(&self, name: &str) -> PathBuf {
        let png = self.call("GET", "/screenshot", Value::Null);
        let bytes = base64::engine::general_purpose::STANDARD.decode(png.as_str().unwrap()).unwrap();
        assert_eq!(&bytes[1..4], b"PNG");
        let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../target/e2e-screenshots");
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join(format!("{name}.png"));
        std::fs::write(&path, bytes).unwrap();
        println!("screenshot: {}", path.display());
        path
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        if !self.session.is_empty() {
            let _ = self.http.delete(format!("{}/session/{}", self.base, self.session)).send();
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

struct Device {
    device_code: String,
    user_code: String,
    verification_uri: String,
    verification_uri_complete: String,
    /// The polling interval the server asked for.
    interval: Duration,
    /// When the last answer to a poll arrived.
    last_poll: Option<Instant>,
}

fn device_starts(gw: &Gateway) -> Device {
    let r = http(&gw.addr, "POST", "/oauth/device", &[], "client_id=tv-demo&scope=profile+email");
    assert_eq!(r.status, 200, "{}", r.text());
    let v = r.json();
    Device {
        device_code: v["device_code"].as_str().unwrap().into(),
        user_code: v["user_code"].as_str().unwrap().into(),
        verification_uri: v["verification_uri"].as_str().unwrap().into(),
        verification_uri_complete: v["verification_uri_complete"].as_str().unwrap().into(),
        interval: Duration::from_secs(v["interval"].as_u64().expect("interval")),
        last_poll: None,
    }
}

/// One poll, as a device obeying RFC 8628 §3.5 makes it: at least `interval` after the previous one
/// (the server answers `slow_down` otherwise). This waits for the protocol's schedule, not for the
/// server to be ready: the wait is whatever is left of the interval, usually nothing.
fn device_polls(gw: &Gateway, d: &mut Device) -> (u16, Value) {
    if let Some(last) = d.last_poll {
        std::thread::sleep(d.interval.saturating_sub(last.elapsed()));
    }
    let body = format!(
        "client_id=tv-demo&grant_type=urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Adevice_code&device_code={}",
        d.device_code
    );
    let r = http(&gw.addr, "POST", "/oauth/token", &[], &body);
    d.last_poll = Some(Instant::now());
    (r.status, r.json())
}

#[test]
#[ignore = "needs chromium and chromium-driver; run by .ci/e2e.sh"]
fn a_user_types_the_code_and_approves_in_chromium() {
    let gw = Gateway::start(&["--interval", "1"]);
    let mut d = device_starts(&gw);
    assert_eq!(device_polls(&gw, &mut d).1["error"], "authorization_pending");

    let browser = Driver::start();
    browser.sign_in(&demo_basic());
    browser.goto(&d.verification_uri);
    // The user types the code the way people do: lower case, without the dash.
    browser.type_into("#user_code", &d.user_code.replace('-', "").to_lowercase());
    browser.click("#continue");
    // The confirmation page, once it has replaced the entry form.
    browser.wait_text("#client", |t| t == "Demo TV");
    let scopes = browser.wait_text("#scopes", |t| !t.is_empty());
    assert!(scopes.contains("profile") && scopes.contains("email"), "{scopes}");
    assert_eq!(browser.wait_text("#code", |t| !t.is_empty()), d.user_code);
    browser.click("#approve");
    browser.wait_text("#message", |t| t.to_lowercase().contains("approved"));
    browser.screenshot("approve");

    // The device's next poll gets the tokens.
    let (status, token) = device_polls(&gw, &mut d);
    assert_eq!(status, 200, "{token}");
    let access = token["access_token"].as_str().unwrap();
    let me = http(&gw.addr, "GET", "/api/me", &[("Authorization", &format!("Bearer {access}"))], "");
    assert_eq!(me.status, 200);
    assert!(me.text().contains("alice"));

    // Going back to the same code now says it was used.
    browser.goto(&d.verification_uri_complete);
    browser.wait_text("#message", |t| {
        let t = t.to_lowercase();
        t.contains("used") || t.contains("already")
    });
}

#[test]
#[ignore = "needs chromium and chromium-driver; run by .ci/e2e.sh"]
fn a_user_arrives_prefilled_and_denies_in_chromium() {
    let gw = Gateway::start(&["--interval", "1"]);
    let mut d = device_starts(&gw);
    let browser = Driver::start();
    browser.sign_in(&demo_basic());
    // verification_uri_complete: the page reads the code and asks only for confirmation.
    browser.goto(&d.verification_uri_complete);
    assert!(browser.url().contains("user_code="));
    assert_eq!(browser.wait_text("#code", |t| !t.is_empty()), d.user_code);
    browser.wait_text("#client", |t| t == "Demo TV");
    browser.click("#deny");
    browser.wait_text("#message", |t| t.to_lowercase().contains("denied"));
    browser.screenshot("deny");
    let (status, v) = device_polls(&gw, &mut d);
    assert_eq!((status, v["error"].as_str()), (400, Some("access_denied")));
}

#[test]
#[ignore = "needs chromium and chromium-driver; run by .ci/e2e.sh"]
fn the_page_refuses_a_wrong_code_and_an_unsigned_visitor() {
    let gw = Gateway::start(&[]);
    let browser = Driver::start();
    // Not signed in: the page asks for credentials (401) and shows nothing of the flow.
    let r = http(&gw.addr, "GET", "/activate", &[], "");
    assert_eq!(r.status, 401);
    assert!(r.header("www-authenticate").unwrap().starts_with("Basic"));
    browser.sign_in(&demo_basic());
    browser.goto(&format!("{}/activate", gw.base));
    browser.type_into("#user_code", "BCDF-GHJK");
    browser.click("#continue");
    browser.wait_text("#message", |t| {
        let t = t.to_lowercase();
        t.contains("invalid") || t.contains("not")
    });
    browser.screenshot("wrong-code");
}

/// Two devices approved, then the connected-devices page in Chromium: both listed, one revoked with
/// its button (its tokens fail at once, the other's keep working), and a form whose CSRF field was
/// tampered with refused.
#[test]
#[ignore = "needs chromium and chromium-driver; run by .ci/e2e.sh"]
fn a_user_lists_and_revokes_devices_in_chromium() {
    let gw = Gateway::start(&["--interval", "1"]);
    let mut tokens = Vec::new();
    for _ in 0..2 {
        let mut d = device_starts(&gw);
        assert_eq!(oauth2_devices_e2e::decide(&gw.addr, &d.user_code, "approve").status, 200);
        let (status, token) = device_polls(&gw, &mut d);
        assert_eq!(status, 200, "{token}");
        tokens.push(token["access_token"].as_str().unwrap().to_string());
    }
    let me =
        |token: &str| http(&gw.addr, "GET", "/api/me", &[("Authorization", &format!("Bearer {token}"))], "").status;
    let browser = Driver::start();
    browser.sign_in(&demo_basic());
    browser.goto(&format!("{}/devices", gw.base));
    let list = browser.wait_text("#devices", |t| t.matches("Demo TV").count() == 2);
    assert!(list.contains("profile"), "the scopes are listed: {list}");
    browser.screenshot("devices");

    browser.click("button[id^=\"revoke-\"]");
    browser.wait_text("#message", |t| t.to_lowercase().contains("revoked"));
    browser.wait_text("#devices", |t| t.matches("Demo TV").count() == 1);
    browser.screenshot("devices-revoked");
    let statuses: Vec<u16> = tokens.iter().map(|t| me(t)).collect();
    assert!(statuses.contains(&401) && statuses.contains(&200), "one revoked, one working: {statuses:?}");

    // A forged form (the CSRF field replaced) is refused and revokes nothing.
    browser.call(
        "POST",
        "/execute/sync",
        json!({"script": "document.querySelector('input[name=csrf]').value = 'forged'; return true;", "args": []}),
    );
    browser.click("button[id^=\"revoke-\"]");
    browser.wait_text("#message", |t| t.to_lowercase().contains("expired"));
    browser.screenshot("devices-csrf");
    let after: Vec<u16> = tokens.iter().map(|t| me(t)).collect();
    assert_eq!(after, statuses, "the forged form revoked a device");
}

/// The verification page over HTTPS with the gateway's development certificate, which this Chromium
/// is told to trust by its public key (and nothing else).
#[test]
#[ignore = "needs chromium and chromium-driver; run by .ci/e2e.sh"]
fn a_user_approves_over_https_in_chromium() {
    let dir = tempdir::Dir::new("https-state");
    let gw = Gateway::start(&["--tls", "--state-dir", dir.0.to_str().unwrap()]);
    assert!(gw.base.starts_with("https://"), "{}", gw.base);
    let log = wait_until("the certificate's public key line", || {
        let lines = gw.log();
        lines.into_iter().find(|l| l.starts_with("tls: public key sha256 (base64) "))
    });
    let spki = log.trim_start_matches("tls: public key sha256 (base64) ").to_string();
    let pem = std::fs::read(dir.0.join("tls-dev-cert.pem")).unwrap();
    let client = reqwest::blocking::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(&pem).unwrap())
        .timeout(WAIT)
        .build()
        .unwrap();
    let r = client
        .post(format!("{}/oauth/device", gw.base))
        .form(&[("client_id", "tv-demo"), ("scope", "profile")])
        .send()
        .unwrap();
    assert_eq!(r.status(), 200);
    let v: Value = r.json().unwrap();
    let complete = v["verification_uri_complete"].as_str().unwrap().to_string();
    assert!(complete.starts_with("https://"), "{complete}");

    let browser = Driver::start_with(&[format!("--ignore-certificate-errors-spki-list={spki}")]);
    browser.sign_in(&demo_basic());
    browser.goto(&complete);
    browser.wait_text("#client", |t| t == "Demo TV");
    browser.click("#approve");
    browser.wait_text("#message", |t| t.to_lowercase().contains("approved"));
    assert!(browser.url().starts_with("https://"), "{}", browser.url());
    browser.screenshot("approve-https");
    let body = format!(
        "client_id=tv-demo&grant_type=urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Adevice_code&device_code={}",
        v["device_code"].as_str().unwrap()
    );
    let token = client
        .post(format!("{}/oauth/token", gw.base))
        .header("Content-Type", "application/x-www-form-urlencoded")
        .body(body)
        .send()
        .unwrap();
    assert_eq!(token.status(), 200);
}
