//! Shared pieces of the HTTP tests: a demo provider and application, request builders, an in-memory
//! stream for the drivers, a std adapter for loopback sockets, and a response parser.
#![allow(dead_code)]

use std::fmt::Write as _;

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use oauth2_devices::http::{
    self, Application, Authorized, Context, HttpConfig, LogEntry, Outcome, Request, Response, User,
};
use oauth2_devices::prelude::*;
use rand_core::SeedableRng;

pub type TestProvider = oauth2_devices_support::sample::SampleProvider;

pub static SCOPES: &[&str] = oauth2_devices_support::sample::SCOPES;
pub const ISSUER: &str = "http://gw.test";
pub const CONTENT_TYPE_FORM: &str = "application/x-www-form-urlencoded";
pub const DEVICE_GRANT: &str = "urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Adevice_code";
pub const CSP: &str = "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; frame-ancestors 'none'";

pub fn config() -> HttpConfig<'static> {
    HttpConfig::new(ISSUER)
}

/// `tv-demo` (public), `printer-demo` (confidential, secret `printer-secret`), `evil` (a name full of
/// HTML): `oauth2_devices_support::sample::HTTP`.
pub fn provider(rng: &mut rand_chacha::ChaCha20Rng) -> TestProvider {
    oauth2_devices_support::sample::HTTP.provider(rng).unwrap()
}

/// Users: alice / wonderland (id 1) and mallory / x (id 2, with HTML in her name).
pub static USERS: http::StaticUsers<'static> = http::StaticUsers::new(&[
    http::StaticUser { login: "alice", password: "wonderland", id: 1, name: "alice" },
    http::StaticUser { login: "mallory", password: "x", id: 2, name: "<b>mallory</b>" },
]);

/// Signs the request's user in against [`USERS`].
pub fn sign_in(req: &Request<'_>) -> Option<User> {
    USERS.sign_in(req)
}

/// The test application: `/api/me` needs `profile`, `/api/sensors` needs `sensors:read`, `/hello` is
/// public, everything else is 404. Keeps an access log.
#[derive(Default)]
pub struct TestApp {
    pub log: Vec<(String, String, u16)>,
}

impl Application for TestApp {
    fn user(&mut self, req: &Request<'_>) -> Option<User> {
        sign_in(req)
    }

    fn protected(&self, _method: &str, path: &str, scopes: &ScopeRegistry) -> Option<ScopeSet> {
        match path {
            "/api/me" => scopes.lookup("profile"),
            "/api/sensors" => scopes.lookup("sensors:read"),
            _ => None,
        }
    }

    fn resource(&mut self, _req: &Request<'_>, auth: &Authorized<'_>, res: &mut Response<'_>) {
        let name = if auth.token.user == 1 { "alice" } else { "someone" };
        let client = auth.client.map(|c| c.id()).unwrap_or("?");
        res.header("Content-Type", "application/json");
        let _ = write!(res, r#"{{"sub":"{}","name":"{name}","client_id":"{client}"}}"#, auth.token.user);
    }

    fn route(&mut self, req: &Request<'_>, res: &mut Response<'_>) {
        if req.path() == "/hello" {
            res.header("Content-Type", "text/plain");
            let _ = write!(res, "hello {}", req.body().len());
        } else {
            res.set_status(404);
            res.body(b"nope");
        }
    }

    fn on_response(&mut self, entry: &LogEntry<'_>) {
        self.log.push((entry.method.to_owned(), entry.path.to_owned(), entry.status));
    }
}

/// A sans-IO server: provider, app, rng and a settable clock.
pub struct Server {
    pub cfg: HttpConfig<'static>,
    pub provider: TestProvider,
    pub rng: rand_chacha::ChaCha20Rng,
    pub app: TestApp,
    pub now: u64,
    /// The peer the next requests come from (`None`: unknown, as a transport without addresses).
    pub peer: Option<std::net::SocketAddr>,
    /// The output buffer of [`Server::exchange`] (a response that does not fit is a bare 500).
    pub output_len: usize,
}

impl Default for Server {
    fn default() -> Self {
        Self::new()
    }
}

impl Server {
    pub fn new() -> Self {
        let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(8628);
        let provider = provider(&mut rng);
        Self { cfg: config(), provider, rng, app: TestApp::default(), now: 1_000, peer: None, output_len: 8192 }
    }

    /// One call of the sans-IO handler.
    pub fn handle(&mut self, input: &mut [u8], output: &mut [u8]) -> Outcome {
        let mut cx = Context {
            provider: &mut self.provider,
            app: &mut self.app,
            rng: &mut self.rng,
            now: self.now,
            peer: self.peer,
        };
        http::handle(&self.cfg, &mut cx, input, output)
    }

    /// Answers a request a driver framed (the driver's handler).
    pub fn answer(&mut self, framed: http::Framed<'_>, output: &mut [u8]) -> http::Served {
        let mut cx = Context {
            provider: &mut self.provider,
            app: &mut self.app,
            rng: &mut self.rng,
            now: self.now,
            peer: self.peer,
        };
        http::answer(&self.cfg, &mut cx, framed, output)
    }

    /// Feeds `bytes` as one buffer and answers every whole request in it, as a driver would; stops at
    /// a response that closes. Returns the responses, the unconsumed bytes and whether it closed.
    pub fn exchange(&mut self, bytes: &[u8]) -> (Vec<Resp>, usize, bool) {
        let mut input = bytes.to_vec();
        let mut responses = Vec::new();
        let mut output = vec![0u8; self.output_len];
        loop {
            match self.handle(&mut input, &mut output) {
                Outcome::NeedMore => return (responses, input.len(), false),
                Outcome::Respond(s) => {
                    let parsed = parse_responses(&output[s.range()]);
                    assert_eq!(parsed.len(), 1, "one response per call");
                    let mut r = parsed.into_iter().next().unwrap();
                    assert_eq!(r.status, s.status);
                    r.keep_alive = s.keep_alive;
                    responses.push(r);
                    input.drain(..s.consumed);
                    if !s.keep_alive {
                        return (responses, input.len(), true);
                    }
                    if input.is_empty() {
                        return (responses, 0, false);
                    }
                }
            }
        }
    }

    /// Exactly one request and its response.
    pub fn request(&mut self, bytes: &[u8]) -> Resp {
        let (mut r, left, _) = self.exchange(bytes);
        assert_eq!(r.len(), 1, "expected one response");
        assert_eq!(left, 0, "request not fully consumed");
        r.remove(0)
    }

    /// Runs the blocking driver over an in-memory connection delivering `bytes` in `chunk`-byte reads.
    pub fn drive(&mut self, bytes: &[u8], chunk: usize) -> Vec<Resp> {
        let mut stream = MemStream::new(bytes, chunk);
        let mut input = vec![0u8; self.cfg.input_buffer_len()];
        let mut output = vec![0u8; 8192];
        let cfg = self.cfg;
        http::serve(&cfg, &mut stream, &mut input, &mut output, |i, o| self.answer(i, o)).unwrap();
        parse_responses(&stream.output)
    }
}

/// An HTTP/1.1 request to `gw.test` with, except on GET, `Content-Length`.
pub fn request(method: &str, path: &str, headers: &[(&str, &str)], body: &str) -> Vec<u8> {
    oauth2_devices_support::client::request(method, path, "gw.test", headers, body)
}

pub fn get(path: &str, headers: &[(&str, &str)]) -> Vec<u8> {
    request("GET", path, headers, "")
}

pub fn post_form(path: &str, body: &str) -> Vec<u8> {
    request("POST", path, &[("Content-Type", CONTENT_TYPE_FORM)], body)
}

pub fn post_form_with(path: &str, headers: &[(&str, &str)], body: &str) -> Vec<u8> {
    let mut all = vec![("Content-Type", CONTENT_TYPE_FORM)];
    all.extend_from_slice(headers);
    request("POST", path, &all, body)
}

/// `Basic base64(user:password)`.
pub fn basic(user: &str, password: &str) -> String {
    let raw = format!("{user}:{password}");
    let mut buf = vec![0u8; raw.len() * 2 + 4];
    let n = STANDARD.encode_slice(raw.as_bytes(), &mut buf).unwrap();
    format!("Basic {}", std::str::from_utf8(&buf[..n]).unwrap())
}

pub use oauth2_devices_support::client::Resp;

/// What the HTTP tests read from a response beyond the shared client's view.
pub trait RespExt {
    /// The `error` member of an OAuth error body.
    fn error(&self) -> String;
    /// The text of the page's `id="message"` element.
    fn message(&self) -> Option<&str>;
    /// The value of the input called `name` on a page.
    fn input_value(&self, name: &str) -> Option<&str>;
}

impl RespExt for Resp {
    fn error(&self) -> String {
        self.json()["error"].as_str().unwrap_or_default().to_owned()
    }

    fn message(&self) -> Option<&str> {
        let body = self.text();
        let start = body.find("id=\"message\"")?;
        let open = body[start..].find('>')? + start + 1;
        let close = body[open..].find("</p>")? + open;
        Some(&body[open..close])
    }

    fn input_value(&self, name: &str) -> Option<&str> {
        let body = self.text();
        let at = body.find(&format!("name=\"{name}\" value=\""))?;
        let start = at + format!("name=\"{name}\" value=\"").len();
        let end = body[start..].find('"')? + start;
        Some(&body[start..end])
    }
}

/// Splits a byte stream into responses (each framed by its `Content-Length`, which every response has).
pub fn parse_responses(bytes: &[u8]) -> Vec<Resp> {
    oauth2_devices_support::client::parse_all(bytes)
}

/// An in-memory connection: reads come in chunks of at most `chunk` bytes, writes are collected.
pub struct MemStream {
    input: Vec<u8>,
    pos: usize,
    chunk: usize,
    pub output: Vec<u8>,
}

impl MemStream {
    pub fn new(input: &[u8], chunk: usize) -> Self {
        Self { input: input.to_vec(), pos: 0, chunk, output: Vec::new() }
    }
}

impl embedded_io::ErrorType for MemStream {
    type Error = core::convert::Infallible;
}

impl embedded_io::Read for MemStream {
    fn read(&mut self, buf: &mut [u8]) -> Result<usize, Self::Error> {
        let n = buf.len().min(self.chunk).min(self.input.len() - self.pos);
        buf[..n].copy_from_slice(&self.input[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

impl embedded_io::Write for MemStream {
    fn write(&mut self, buf: &[u8]) -> Result<usize, Self::Error> {
        // Accept at most 7 bytes per call, to exercise partial writes.
        let n = buf.len().min(7);
        self.output.extend_from_slice(&buf[..n]);
        Ok(n)
    }
    fn flush(&mut self) -> Result<(), Self::Error> {
        Ok(())
    }
}

/// A std stream as an `embedded-io` stream (for loopback tests).
pub struct StdIo<T>(pub T);

impl<T> embedded_io::ErrorType for StdIo<T> {
    type Error = std::io::Error;
}

impl<T: std::io::Read> embedded_io::Read for StdIo<T> {
    fn read(&mut self, buf: &mut [u8]) -> Result<usize, Self::Error> {
        self.0.read(buf)
    }
}

impl<T: std::io::Write> embedded_io::Write for StdIo<T> {
    fn write(&mut self, buf: &[u8]) -> Result<usize, Self::Error> {
        self.0.write(buf)
    }
    fn flush(&mut self) -> Result<(), Self::Error> {
        self.0.flush()
    }
}
