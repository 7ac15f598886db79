//! Test support: build and spawn the host gateway on a loopback port, talk HTTP to it, and drive the
//! verification page the way a signed-in user does.

use std::io::{BufRead, BufReader, Write};
use std::net::{IpAddr, SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::sync::OnceLock;
use std::time::Duration;

/// The demo user the gateway example signs in on the verification page (HTTP Basic).
pub const DEMO_USER: (&str, &str) = ("alice", "wonderland");

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..").canonicalize().expect("workspace root")
}

/// Builds the root crate's examples once and returns the path of the named one's executable.
pub fn example_bin(name: &str) -> PathBuf {
    static BINS: OnceLock<Vec<(String, PathBuf)>> = OnceLock::new();
    let bins = BINS.get_or_init(|| {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let out = Command::new(cargo)
            .args(["build", "--example", "gateway", "--example", "device", "--message-format=json"])
            .current_dir(workspace_root())
            .stderr(Stdio::inherit())
            .output()
            .expect("run cargo build");
        assert!(out.status.success(), "cargo build of the examples failed");
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .filter(|v| v["target"]["kind"][0] == "example")
            .filter_map(|v| Some((v["target"]["name"].as_str()?.to_string(), PathBuf::from(v["executable"].as_str()?))))
            .collect()
    });
    bins.iter().find(|(n, _)| n == name).map(|(_, p)| p.clone()).unwrap_or_else(|| panic!("no example {name}"))
}

/// The `gateway` example's executable.
pub fn gateway_bin() -> PathBuf {
    example_bin("gateway")
}

/// A running gateway on 127.0.0.1 and an ephemeral port; killed when dropped.
pub struct Gateway {
    child: Child,
    /// `http://127.0.0.1:PORT` (`https://` with TLS).
    pub base: String,
    /// `127.0.0.1:PORT`.
    pub addr: String,
    lines: mpsc::Receiver<String>,
}

impl Gateway {
    /// Starts the gateway with extra arguments (e.g. `["--device-code-lifetime", "3"]`). Unless they name
    /// a state directory, it keeps everything in memory (`--no-state`).
    pub fn start(extra: &[&str]) -> Gateway {
        let state: &[&str] = if extra.contains(&"--state-dir") { &[] } else { &["--no-state"] };
        let mut child = Command::new(gateway_bin())
            .args(["--addr", "127.0.0.1:0"])
            .args(state)
            .args(extra)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn gateway");
        let stdout = child.stdout.take().expect("stdout");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let mut gateway = Gateway { child, base: String::new(), addr: String::new(), lines: rx };
        // The address line comes first; anything else (or nothing within 30 s) fails the test, and
        // dropping `gateway` then kills the process.
        let first = gateway.lines.recv_timeout(Duration::from_secs(30)).expect("gateway printed nothing in 30 s");
        let base = first
            .strip_prefix("listening on ")
            .unwrap_or_else(|| panic!("first line should be `listening on URL`: {first}"))
            .trim_end_matches('/')
            .to_string();
        gateway.addr = base.trim_start_matches("http://").trim_start_matches("https://").to_string();
        gateway.base = base;
        gateway
    }

    /// Log lines printed so far.
    pub fn log(&self) -> Vec<String> {
        self.lines.try_iter().collect()
    }
}

impl Drop for Gateway {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A response, as the shared test client parses it (`oauth2_devices_support::client`).
pub type Response = oauth2_devices_support::client::Resp;

/// One request on a fresh connection (`Connection: close`), read to the end.
pub fn http(addr: &str, method: &str, path: &str, headers: &[(&str, &str)], body: &str) -> Response {
    send(TcpStream::connect(addr).expect("connect"), addr, method, path, headers, body)
}

/// [`http`] from a chosen loopback source address (e.g. `127.0.0.2`), so that the gateway sees
/// distinct peers.
pub fn http_from(
    source: IpAddr,
    addr: &str,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> Response {
    send(connect_from(source, addr), addr, method, path, headers, body)
}

/// A TCP connection to `addr` from `source` (port chosen by the system), with a 10 s connect timeout.
pub fn connect_from(source: IpAddr, addr: &str) -> TcpStream {
    let to: SocketAddr = addr.parse().expect("a socket address");
    try_connect_from(source, to, Duration::from_secs(10)).unwrap_or_else(|e| panic!("{source} -> {addr}: {e}"))
}

/// A TCP connection to `to` from `source`, `timeout` for the connect and for every read and write.
pub fn try_connect_from(source: IpAddr, to: SocketAddr, timeout: Duration) -> std::io::Result<TcpStream> {
    let socket = socket2::Socket::new(socket2::Domain::for_address(to), socket2::Type::STREAM, None)?;
    socket.bind(&SocketAddr::new(source, 0).into())?;
    socket.connect_timeout(&to.into(), timeout)?;
    let stream: TcpStream = socket.into();
    stream.set_read_timeout(Some(timeout))?;
    stream.set_write_timeout(Some(timeout))?;
    Ok(stream)
}

fn send(mut s: TcpStream, addr: &str, method: &str, path: &str, headers: &[(&str, &str)], body: &str) -> Response {
    use oauth2_devices_support::client::{read_response, request, FORM};
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.set_write_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut all = vec![("Connection", "close")];
    if method == "POST" {
        all.push(("Content-Type", FORM));
    }
    all.extend_from_slice(headers);
    s.write_all(&request(method, path, addr, &all, body)).unwrap();
    read_response(&mut s).unwrap_or_else(|e| panic!("{method} {path}: {e}"))
}

/// `Authorization: Basic` for the demo user.
pub fn demo_basic() -> String {
    // alice:wonderland
    "Basic YWxpY2U6d29uZGVybGFuZA==".to_string()
}

/// The value of the hidden `csrf` field of a verification page.
pub fn csrf_of(html: &str) -> String {
    let at = html.find("name=\"csrf\"").expect("csrf field");
    let rest = &html[at..];
    let v = rest.find("value=\"").expect("csrf value") + 7;
    rest[v..].split('"').next().unwrap().to_string()
}

/// Approves (`action = "approve"`) or denies a user code on the verification page as the demo user,
/// the way the browser form does: GET the page for the code, then POST the form with its CSRF token.
pub fn decide(addr: &str, user_code: &str, action: &str) -> Response {
    let basic = demo_basic();
    let page = http(addr, "GET", &format!("/activate?user_code={user_code}"), &[("Authorization", &basic)], "");
    assert_eq!(page.status, 200, "{}", page.text());
    let csrf = csrf_of(page.text());
    let body = format!("user_code={user_code}&csrf={csrf}&action={action}");
    http(addr, "POST", "/activate", &[("Authorization", &basic)], &body)
}
