//! A device (a TV, a printer, a CLI) running the OAuth 2.0 device flow against the gateway:
//! it asks for codes, shows the user code and where to enter it, polls the token endpoint honouring
//! `interval` and `slow_down`, then calls the protected `/api/me` with its access token. A `503` (the
//! gateway's connections or tables full) is retried after its `Retry-After`, three times at most.
//!
//! ```sh
//! cargo run --example gateway            # in one terminal
//! cargo run --example device             # in another; then open the printed URL and approve
//! ```
//!
//! Options: `--base URL` (default `http://127.0.0.1:8080`; `https://` needs `--cacert PEM`, the
//! certificate to trust, such as the gateway's development certificate), `--client ID` (default `tv-demo`),
//! `--secret SECRET` (for a confidential client, sent with HTTP Basic), `--scope "a b"` (default
//! `profile`), `--max-wait SECS` (give up after this long; default: the code's lifetime).
//! Exit status: 0 with a token, 2 when the user denied, 3 when the code expired, 1 on any other error.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use serde_json::Value;

struct Args {
    host: String,
    /// `https://`: the TLS client set-up.
    tls: Option<Arc<rustls::ClientConfig>>,
    https: bool,
    cacert: Option<String>,
    client: String,
    secret: Option<String>,
    scope: String,
    max_wait: Option<u64>,
}

fn args() -> Result<Args, String> {
    let mut a = Args {
        host: "127.0.0.1:8080".into(),
        tls: None,
        https: false,
        cacert: None,
        client: "tv-demo".into(),
        secret: None,
        scope: "profile".into(),
        max_wait: None,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().ok_or(format!("{flag} needs a value"));
        match flag.as_str() {
            "--base" => {
                let base = value()?;
                let (https, host) = match (base.strip_prefix("https://"), base.strip_prefix("http://")) {
                    (Some(h), _) => (true, h),
                    (None, Some(h)) => (false, h),
                    _ => return Err("the base URL must start with http:// or https://".into()),
                };
                a.https = https;
                a.host = host.trim_end_matches('/').to_string();
            }
            "--cacert" => a.cacert = Some(value()?),
            "--client" => a.client = value()?,
            "--secret" => a.secret = Some(value()?),
            "--scope" => a.scope = value()?,
            "--max-wait" => a.max_wait = Some(value()?.parse().map_err(|_| "--max-wait takes seconds")?),
            "-h" | "--help" => {
                println!(
                    "usage: device [--base URL] [--cacert PEM] [--client ID] [--secret S] [--scope SCOPES] [--max-wait SECS]"
                );
                std::process::exit(0);
            }
            other => return Err(format!("unknown argument {other}")),
        }
    }
    if a.https {
        let path = a.cacert.as_deref().ok_or("an https:// base needs --cacert PEM (the certificate to trust)")?;
        let mut roots = rustls::RootCertStore::empty();
        for cert in CertificateDer::pem_file_iter(path).map_err(|e| format!("{path}: {e}"))? {
            roots.add(cert.map_err(|e| format!("{path}: {e}"))?).map_err(|e| format!("{path}: {e}"))?;
        }
        let config = rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .map_err(|e| e.to_string())?
            .with_root_certificates(roots)
            .with_no_client_auth();
        a.tls = Some(Arc::new(config));
    }
    Ok(a)
}

/// The server to talk to: `host:port`, and TLS when the base was `https://`.
struct Target<'a> {
    host: &'a str,
    tls: Option<&'a Arc<rustls::ClientConfig>>,
}

/// A stream that is plain TCP or TLS over it.
trait Stream: Read + Write {}
impl<T: Read + Write> Stream for T {}

fn connect(target: &Target<'_>) -> Result<Box<dyn Stream>, String> {
    let tcp = TcpStream::connect(target.host).map_err(|e| format!("connect {}: {e}", target.host))?;
    tcp.set_read_timeout(Some(Duration::from_secs(10))).map_err(|e| e.to_string())?;
    tcp.set_write_timeout(Some(Duration::from_secs(10))).map_err(|e| e.to_string())?;
    let Some(config) = target.tls else { return Ok(Box::new(tcp)) };
    // The name to verify: the host without its port (and without the brackets of an IPv6 literal).
    let name = target.host.rsplit_once(':').map_or(target.host, |(h, _)| h);
    let name = name.trim_start_matches('[').trim_end_matches(']');
    let name = ServerName::try_from(name.to_string()).map_err(|e| format!("{name}: {e}"))?;
    let conn = rustls::ClientConnection::new(config.clone(), name).map_err(|e| e.to_string())?;
    Ok(Box::new(rustls::StreamOwned::new(conn, tcp)))
}

/// `application/x-www-form-urlencoded` encoding of one value.
fn encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => (b as char).to_string(),
            b' ' => "+".into(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

struct Response {
    status: u16,
    /// Seconds, from a `Retry-After` header.
    retry_after: Option<u64>,
    body: Vec<u8>,
}

/// Times a `503` (a server busy: its connection pool or a table full) is retried after its
/// `Retry-After`, before the request counts as failed.
const BUSY_RETRIES: u32 = 3;
/// The longest `Retry-After` honoured, in seconds.
const MAX_RETRY_AFTER: u64 = 30;

/// [`request`], retrying a `503` after its `Retry-After` (1 s without one) up to [`BUSY_RETRIES`] times.
fn send(
    target: &Target<'_>,
    method: &str,
    path: &str,
    headers: &[(&str, String)],
    body: &str,
) -> Result<Response, String> {
    let mut tries = 0;
    loop {
        let r = request(target, method, path, headers, body)?;
        if r.status != 503 || tries == BUSY_RETRIES {
            return Ok(r);
        }
        tries += 1;
        let wait = r.retry_after.unwrap_or(1).clamp(1, MAX_RETRY_AFTER);
        println!("state: server busy (503), retrying {method} {path} in {wait} s");
        std::thread::sleep(Duration::from_secs(wait));
    }
}

/// One HTTP/1.1 request on a fresh connection; the response is parsed with `httparse`.
fn request(
    target: &Target<'_>,
    method: &str,
    path: &str,
    headers: &[(&str, String)],
    body: &str,
) -> Result<Response, String> {
    let host = target.host;
    let mut stream = connect(target)?;
    let mut req = format!("{method} {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n");
    for (name, value) in headers {
        req.push_str(&format!("{name}: {value}\r\n"));
    }
    if method == "POST" {
        req.push_str("Content-Type: application/x-www-form-urlencoded\r\n");
        req.push_str(&format!("Content-Length: {}\r\n", body.len()));
    }
    req.push_str("\r\n");
    req.push_str(body);
    stream.write_all(req.as_bytes()).map_err(|e| e.to_string())?;
    let mut raw = Vec::new();
    match stream.read_to_end(&mut raw) {
        Ok(_) => {}
        // A TLS peer that closes without close_notify, after a whole response, is still a response.
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof && !raw.is_empty() => {}
        Err(e) => return Err(format!("read: {e}")),
    }
    let mut hdrs = [httparse::EMPTY_HEADER; 32];
    let mut resp = httparse::Response::new(&mut hdrs);
    let head = match resp.parse(&raw).map_err(|e| format!("bad response: {e}"))? {
        httparse::Status::Complete(n) => n,
        httparse::Status::Partial => return Err("truncated response".into()),
    };
    let status = resp.code.ok_or("no status")?;
    let retry_after = resp
        .headers
        .iter()
        .find(|h| h.name.eq_ignore_ascii_case("retry-after"))
        .and_then(|h| std::str::from_utf8(h.value).ok())
        .and_then(|v| v.trim().parse().ok());
    Ok(Response { status, retry_after, body: raw[head..].to_vec() })
}

fn json(r: &Response) -> Result<Value, String> {
    serde_json::from_slice(&r.body).map_err(|e| format!("status {}: not JSON ({e})", r.status))
}

fn run() -> Result<i32, String> {
    let a = args()?;
    // Client authentication: HTTP Basic for a confidential client (id and secret form-urlencoded,
    // RFC 6749 §2.3.1), `client_id` in the body for a public one.
    let (auth_headers, client_param) = match &a.secret {
        Some(secret) => {
            let raw = format!("{}:{}", encode(&a.client), encode(secret));
            let mut buf = vec![0u8; raw.len() * 4 / 3 + 4];
            let n = STANDARD.encode_slice(raw.as_bytes(), &mut buf).map_err(|e| e.to_string())?;
            let creds = String::from_utf8_lossy(&buf[..n]).into_owned();
            (vec![("Authorization", format!("Basic {creds}"))], String::new())
        }
        None => (vec![], format!("client_id={}&", encode(&a.client))),
    };

    let target = Target { host: &a.host, tls: a.tls.as_ref() };
    let body = format!("{client_param}scope={}", encode(&a.scope));
    let r = send(&target, "POST", "/oauth/device", &auth_headers, &body)?;
    let auth = json(&r)?;
    if r.status != 200 {
        return Err(format!("device authorization failed: {} {auth}", r.status));
    }
    let device_code = auth["device_code"].as_str().ok_or("no device_code")?.to_string();
    let mut interval = auth["interval"].as_u64().unwrap_or(5);
    let expires_in = auth["expires_in"].as_u64().ok_or("no expires_in")?;
    println!(
        "To sign in, open {} and enter the code {}",
        auth["verification_uri"].as_str().unwrap_or("?"),
        auth["user_code"].as_str().unwrap_or("?")
    );
    if let Some(complete) = auth["verification_uri_complete"].as_str() {
        println!("Or open {complete}");
    }
    println!("(the code expires in {expires_in} s; polling every {interval} s)");

    let deadline = Instant::now() + Duration::from_secs(a.max_wait.unwrap_or(expires_in + interval));
    let poll_body = format!(
        "{client_param}grant_type={}&device_code={}",
        encode("urn:ietf:params:oauth:grant-type:device_code"),
        encode(&device_code)
    );
    let token = loop {
        if Instant::now() >= deadline {
            return Err("gave up waiting".into());
        }
        std::thread::sleep(Duration::from_secs(interval));
        let r = send(&target, "POST", "/oauth/token", &auth_headers, &poll_body)?;
        let v = json(&r)?;
        if r.status == 200 {
            break v;
        }
        match v["error"].as_str() {
            Some("authorization_pending") => println!("state: authorization_pending"),
            Some("slow_down") => {
                interval += 5;
                println!("state: slow_down, polling every {interval} s now");
            }
            Some("access_denied") => {
                println!("state: access_denied");
                return Ok(2);
            }
            Some("expired_token") => {
                println!("state: expired_token");
                return Ok(3);
            }
            _ => return Err(format!("token endpoint: {} {v}", r.status)),
        }
    };
    let access = token["access_token"].as_str().ok_or("no access_token")?;
    println!(
        "state: authorized (token_type {}, expires_in {}, scope \"{}\", refresh token {})",
        token["token_type"].as_str().unwrap_or("?"),
        token["expires_in"],
        token["scope"].as_str().unwrap_or(""),
        if token.get("refresh_token").is_some() { "yes" } else { "no" }
    );
    let r = send(&target, "GET", "/api/me", &[("Authorization", format!("Bearer {access}"))], "")?;
    println!("GET /api/me -> {} {}", r.status, String::from_utf8_lossy(&r.body));
    Ok(if r.status == 200 { 0 } else { 1 })
}

fn main() {
    match run() {
        Ok(code) => std::process::exit(code),
        Err(e) => {
            eprintln!("device: {e}");
            std::process::exit(1);
        }
    }
}
