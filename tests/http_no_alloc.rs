//! The HTTP binding never allocates: a counting global allocator watches a whole device flow through
//! the sans-IO handler and a pipelined exchange through the blocking driver (after setup) and must see
//! zero allocations. Its own test binary, since a global allocator is per binary.

mod http_common;

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::fmt::Write as _;

use http_common::{provider, sign_in, TestProvider};
use oauth2_devices::http::{self, Application, Authorized, Context, HttpConfig, Outcome, Request, Response, User};
use oauth2_devices::prelude::*;
use rand_core::SeedableRng;

thread_local! {
    static COUNTING: Cell<bool> = const { Cell::new(false) };
    static ALLOCATIONS: Cell<usize> = const { Cell::new(0) };
}

/// Counts allocations made by the current thread while `COUNTING` is set.
struct CountingAllocator;

impl CountingAllocator {
    fn note() {
        if COUNTING.with(Cell::get) {
            ALLOCATIONS.with(|n| n.set(n.get() + 1));
        }
    }
}

// SAFETY: every call is forwarded unchanged to the system allocator.
unsafe impl GlobalAlloc for CountingAllocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        Self::note();
        unsafe { System.alloc(layout) }
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        Self::note();
        unsafe { System.alloc_zeroed(layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        Self::note();
        unsafe { System.realloc(ptr, layout, new_size) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GLOBAL: CountingAllocator = CountingAllocator;

/// Runs `f` and returns its result with the number of allocations it made.
fn counted<T>(f: impl FnOnce() -> T) -> (T, usize) {
    ALLOCATIONS.with(|n| n.set(0));
    COUNTING.with(|c| c.set(true));
    let out = f();
    COUNTING.with(|c| c.set(false));
    (out, ALLOCATIONS.with(Cell::get))
}

/// An application that allocates nothing.
struct App;

impl Application for App {
    fn user(&mut self, req: &Request<'_>) -> Option<User> {
        sign_in(req)
    }
    fn protected(&self, _method: &str, path: &str, scopes: &ScopeRegistry) -> Option<ScopeSet> {
        (path == "/api/me").then(|| scopes.lookup("profile")).flatten()
    }
    fn resource(&mut self, _req: &Request<'_>, auth: &Authorized<'_>, res: &mut Response<'_>) {
        res.header("Content-Type", "application/json");
        let _ = write!(res, "{{\"sub\":\"{}\"}}", auth.token.user);
    }
}

type Text = heapless::String<1024>;

struct Rig {
    cfg: HttpConfig<'static>,
    provider: TestProvider,
    rng: rand_chacha::ChaCha20Rng,
    now: u64,
    input: [u8; 3072],
    output: [u8; 8192],
    range: core::ops::Range<usize>,
}

impl Rig {
    /// Sends one request; returns the status and leaves the response in `output[..len]`.
    fn send(&mut self, request: &str) -> u16 {
        let bytes = request.as_bytes();
        self.input[..bytes.len()].copy_from_slice(bytes);
        let mut cx =
            Context { provider: &mut self.provider, app: &mut App, rng: &mut self.rng, now: self.now, peer: None };
        match http::handle(&self.cfg, &mut cx, &mut self.input[..bytes.len()], &mut self.output) {
            Outcome::Respond(s) => {
                assert_eq!(s.consumed, bytes.len());
                self.range = s.range();
                s.status
            }
            Outcome::NeedMore => 0,
        }
    }

    fn response(&self) -> &str {
        core::str::from_utf8(&self.output[self.range.clone()]).unwrap_or_default()
    }

    /// The string after `"key":"` (JSON) or `name="key" value="` (HTML), up to the next quote.
    fn value(&self, prefix: &str) -> heapless::String<64> {
        let r = self.response();
        let start = r.find(prefix).map(|i| i + prefix.len()).unwrap_or(r.len());
        let end = r[start..].find('"').map_or(r.len(), |i| i + start);
        heapless::String::try_from(&r[start..end]).unwrap_or_default()
    }
}

fn post(path: &str, auth: Option<&str>, body: &str) -> Text {
    let mut t = Text::new();
    let _ = write!(t, "POST {path} HTTP/1.1\r\nHost: gw.test\r\nContent-Type: application/x-www-form-urlencoded\r\n");
    if let Some(a) = auth {
        let _ = write!(t, "Authorization: {a}\r\n");
    }
    let _ = write!(t, "Content-Length: {}\r\n\r\n{body}", body.len());
    t
}

fn get(path: &str, auth: Option<&str>) -> Text {
    let mut t = Text::new();
    let _ = write!(t, "GET {path} HTTP/1.1\r\nHost: gw.test\r\n");
    if let Some(a) = auth {
        let _ = write!(t, "Authorization: {a}\r\n");
    }
    let _ = write!(t, "\r\n");
    t
}

fn form(args: core::fmt::Arguments<'_>) -> Text {
    let mut t = Text::new();
    let _ = t.write_fmt(args);
    t
}

const ALICE: &str = "Basic YWxpY2U6d29uZGVybGFuZA==";
const PRINTER: &str = "Basic cHJpbnRlci1kZW1vOnByaW50ZXItc2VjcmV0";
const GRANT: &str = "urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Adevice_code";

/// The whole flow; returns the first failed step.
fn flow(r: &mut Rig) -> Result<(), &'static str> {
    let check = |ok: bool, what: &'static str| if ok { Ok(()) } else { Err(what) };
    check(r.send(&post("/oauth/device", None, "client_id=tv-demo&scope=profile")) == 200, "device authorization")?;
    let device_code = r.value("\"device_code\":\"");
    let user_code = r.value("\"user_code\":\"");
    check(device_code.len() == 32 && user_code.len() == 9, "codes")?;

    let poll = post(
        "/oauth/token",
        None,
        &form(format_args!("grant_type={GRANT}&device_code={device_code}&client_id=tv-demo")),
    );
    check(r.send(&poll) == 400 && r.response().contains("authorization_pending"), "pending")?;
    r.now += 1;
    check(r.send(&poll) == 400 && r.response().contains("slow_down"), "slow_down")?;

    check(r.send(&get(&form(format_args!("/activate?user_code={user_code}")), None)) == 401, "page needs sign-in")?;
    check(r.send(&get(&form(format_args!("/activate?user_code={user_code}")), Some(ALICE))) == 200, "page")?;
    check(r.response().contains("<b id=\"client\">Demo TV</b>"), "client name")?;
    let csrf = r.value("name=\"csrf\" value=\"");
    let body = form(format_args!("user_code={user_code}&csrf={csrf}&action=approve"));
    check(r.send(&post("/activate", Some(ALICE), &body)) == 200, "approve")?;
    check(r.response().contains("Device approved"), "approved message")?;

    r.now += 20;
    check(r.send(&poll) == 200, "token")?;
    let access = r.value("\"access_token\":\"");
    let refresh = r.value("\"refresh_token\":\"");
    let bearer = form(format_args!("Bearer {access}"));
    check(r.send(&get("/api/me", Some(&bearer))) == 200 && r.response().ends_with("{\"sub\":\"1\"}"), "api/me")?;
    check(r.send(&get("/api/me", None)) == 401, "api/me without token")?;

    let body = form(format_args!("grant_type=refresh_token&refresh_token={refresh}&client_id=tv-demo"));
    check(r.send(&post("/oauth/token", None, &body)) == 200, "refresh")?;
    let access2 = r.value("\"access_token\":\"");
    let body = form(format_args!("token={access2}&client_id=tv-demo"));
    check(r.send(&post("/oauth/revoke", None, &body)) == 200, "revoke")?;
    let body = form(format_args!("token={access2}"));
    check(r.send(&post("/oauth/introspect", Some(PRINTER), &body)) == 200, "introspect")?;
    check(r.response().ends_with("{\"active\":false}"), "inactive")?;
    check(r.send(&get("/.well-known/oauth-authorization-server", None)) == 200, "metadata")?;
    check(r.send("BAD\r\n\r\n") == 400, "malformed")?;
    Ok(())
}

/// A connection over fixed arrays.
struct ArrayStream<'a> {
    input: &'a [u8],
    out: &'a mut [u8],
    written: usize,
}

impl embedded_io::ErrorType for ArrayStream<'_> {
    type Error = core::convert::Infallible;
}

impl embedded_io::Read for ArrayStream<'_> {
    fn read(&mut self, buf: &mut [u8]) -> Result<usize, Self::Error> {
        match (self.input.split_first(), buf.first_mut()) {
            (Some((b, rest)), Some(slot)) => {
                *slot = *b;
                self.input = rest;
                Ok(1)
            }
            _ => Ok(0),
        }
    }
}

impl embedded_io::Write for ArrayStream<'_> {
    fn write(&mut self, buf: &[u8]) -> Result<usize, Self::Error> {
        let n = buf.len().min(self.out.len() - self.written);
        self.out[self.written..self.written + n].copy_from_slice(&buf[..n]);
        self.written += n;
        Ok(n)
    }
    fn flush(&mut self) -> Result<(), Self::Error> {
        Ok(())
    }
}

#[test]
fn http_flow_makes_no_allocation() {
    let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(1);
    let provider = provider(&mut rng);
    let mut rig = Box::new(Rig {
        cfg: http_common::config(),
        provider,
        rng,
        now: 5_000,
        input: [0; 3072],
        output: [0; 8192],
        range: 0..0,
    });
    let (result, allocations) = counted(|| flow(&mut rig));
    assert_eq!(result, Ok(()), "last response: {}", rig.response());
    assert_eq!(allocations, 0);

    // Pipelined requests, one byte per read, through the blocking driver.
    let mut wire = [0u8; 1024];
    let mut len = 0;
    for part in [
        post("/oauth/device", None, "client_id=tv-demo"),
        get("/.well-known/oauth-authorization-server", None),
        post("/oauth/device", None, "client_id=tv-demo&client_id=tv-demo"),
    ] {
        wire[len..len + part.len()].copy_from_slice(part.as_bytes());
        len += part.len();
    }
    let mut sent = Box::new([0u8; 8192]);
    let rig = &mut *rig;
    let (written, allocations) = counted(|| {
        let mut stream = ArrayStream { input: &wire[..len], out: &mut sent[..], written: 0 };
        let (cfg, now) = (rig.cfg, rig.now);
        let mut input = [0u8; 3072];
        let result = http::serve(&cfg, &mut stream, &mut input, &mut rig.output, |i, o| {
            let mut cx = Context { provider: &mut rig.provider, app: &mut App, rng: &mut rig.rng, now, peer: None };
            http::answer(&cfg, &mut cx, i, o)
        });
        assert!(result.is_ok());
        stream.written
    });
    assert_eq!(allocations, 0);
    let text = core::str::from_utf8(&sent[..written]).unwrap();
    assert_eq!(text.matches("HTTP/1.1 200 OK").count(), 2, "{text}");
    assert_eq!(text.matches("HTTP/1.1 400 Bad Request").count(), 1, "{text}");
}

#[test]
fn the_counter_counts() {
    let (_, n) = counted(|| std::hint::black_box(Box::new(7u64)));
    assert!(n >= 1);
}
