//! The verification page in a real headless Chromium (Debian `chromium` + `chromium-driver`), driven
//! over the W3C WebDriver protocol: sign in (HTTP Basic, sent as a header through Chrome DevTools),
//! type the code, approve; and a second run that denies. Each run checks what the page shows and what
//! the device then gets, and saves a screenshot under `target/e2e-screenshots/`.
//!
//! Ignored by default (a developer machine may have no Chromium); `.ci/e2e.sh` installs Chromium and
//! runs them with `--ignored`.

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine;
use oauth2_devices_e2e::{demo_basic, http, Gateway};
use serde_json::{json, Value};

const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

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
        let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let child = Command::new("chromedriver")
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("chromedriver (Debian package chromium-driver) must be installed");
        let base = format!("http://127.0.0.1:{port}");
        let http = reqwest::blocking::Client::builder().timeout(Duration::from_secs(60)).build().unwrap();
        let deadline = Instant::now() + Duration::from_secs(20);
        while http.get(format!("{base}/status")).send().is_err() {
            assert!(Instant::now() < deadline, "chromedriver did not start");
            std::thread::sleep(Duration::from_millis(100));
        }
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
        let caps = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {"binary": "/usr/bin/chromium", "args": args}
        }}});
        let mut d = Driver { child, base, session: String::new(), http, _profile: profile };
        let v = d.call("POST", "/session", caps);
        d.session = v["sessionId"].as_str().expect("session id").to_string();
        d
    }

    fn call(&self, method: &str, path: &str, body: Value) -> Value {
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
        if let Some(err) = resp["value"]["error"].as_str() {
            panic!("webdriver {method} {path}: {err}: {}", resp["value"]["message"]);
        }
        resp["value"].clone()
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

    fn find(&self, css: &str) -> String {
        let v = self.call("POST", "/element", json!({"using": "css selector", "value": css}));
        v[ELEMENT].as_str().unwrap_or_else(|| panic!("no element {css}")).to_string()
    }

    fn text(&self, css: &str) -> String {
        let id = self.find(css);
        self.call("GET", &format!("/element/{id}/text"), Value::Null).as_str().unwrap_or("").to_string()
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
}

fn device_starts(gw: &Gateway) -> Device {
    let r = http(&gw.addr, "POST", "/oauth/device", &[], "client_id=tv-demo&scope=profile+email");
    assert_eq!(r.status, 200, "{}", r.body);
    let v = r.json();
    Device {
        device_code: v["device_code"].as_str().unwrap().into(),
        user_code: v["user_code"].as_str().unwrap().into(),
        verification_uri: v["verification_uri"].as_str().unwrap().into(),
        verification_uri_complete: v["verification_uri_complete"].as_str().unwrap().into(),
    }
}

fn device_polls(gw: &Gateway, d: &Device) -> (u16, Value) {
    let body = format!(
        "client_id=tv-demo&grant_type=urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Adevice_code&device_code={}",
        d.device_code
    );
    let r = http(&gw.addr, "POST", "/oauth/token", &[], &body);
    (r.status, r.json())
}

#[test]
#[ignore = "needs chromium and chromium-driver; run by .ci/e2e.sh"]
fn a_user_types_the_code_and_approves_in_chromium() {
    let gw = Gateway::start(&["--interval", "1"]);
    let d = device_starts(&gw);
    assert_eq!(device_polls(&gw, &d).1["error"], "authorization_pending");

    let browser = Driver::start();
    browser.sign_in(&demo_basic());
    browser.goto(&d.verification_uri);
    // The user types the code the way people do: lower case, without the dash.
    browser.type_into("#user_code", &d.user_code.replace('-', "").to_lowercase());
    browser.click("#continue");
    assert_eq!(browser.text("#client"), "Demo TV");
    let scopes = browser.text("#scopes");
    assert!(scopes.contains("profile") && scopes.contains("email"), "{scopes}");
    assert_eq!(browser.text("#code"), d.user_code);
    browser.click("#approve");
    let message = browser.text("#message");
    assert!(message.to_lowercase().contains("approved"), "{message}");
    browser.screenshot("approve");

    std::thread::sleep(Duration::from_millis(1100));
    let (status, token) = device_polls(&gw, &d);
    assert_eq!(status, 200, "{token}");
    let access = token["access_token"].as_str().unwrap();
    let me = http(&gw.addr, "GET", "/api/me", &[("Authorization", &format!("Bearer {access}"))], "");
    assert_eq!(me.status, 200);
    assert!(me.body.contains("alice"));

    // Going back to the same code now says it was used.
    browser.goto(&d.verification_uri_complete);
    let again = browser.text("#message").to_lowercase();
    assert!(again.contains("used") || again.contains("already"), "{again}");
}

#[test]
#[ignore = "needs chromium and chromium-driver; run by .ci/e2e.sh"]
fn a_user_arrives_prefilled_and_denies_in_chromium() {
    let gw = Gateway::start(&["--interval", "1"]);
    let d = device_starts(&gw);
    let browser = Driver::start();
    browser.sign_in(&demo_basic());
    // verification_uri_complete: the page reads the code and asks only for confirmation.
    browser.goto(&d.verification_uri_complete);
    assert!(browser.url().contains("user_code="));
    assert_eq!(browser.text("#code"), d.user_code);
    assert_eq!(browser.text("#client"), "Demo TV");
    browser.click("#deny");
    let message = browser.text("#message");
    assert!(message.to_lowercase().contains("denied"), "{message}");
    browser.screenshot("deny");
    let (status, v) = device_polls(&gw, &d);
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
    let message = browser.text("#message").to_lowercase();
    assert!(message.contains("invalid") || message.contains("not"), "{message}");
    browser.screenshot("wrong-code");
}
