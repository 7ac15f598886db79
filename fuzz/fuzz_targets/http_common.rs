//! Shared by the HTTP targets: a deterministic provider with one approved and one pending grant, a
//! small application, and a checker for what the server wrote.
#![allow(dead_code)]

use oauth2_devices::fuzzing::{self, FuzzProvider, CLIENT_SECRET};
use oauth2_devices::http::{self, Application, Authorized, HttpConfig, Request, Response, User};
use oauth2_devices::prelude::*;
use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;

pub const ISSUER: &str = "http://gw.fuzz";

pub fn config() -> HttpConfig<'static> {
    HttpConfig::new(ISSUER)
}

/// Users: `alice:wonderland` (id 1) via HTTP Basic.
pub struct FuzzApp;

impl Application for FuzzApp {
    fn user(&mut self, req: &Request<'_>) -> Option<User> {
        let mut scratch = [0u8; 96];
        match http::basic_auth(req.header("authorization")?, &mut scratch)? {
            ("alice", "wonderland") => Some(User::new(1, "alice")),
            _ => None,
        }
    }
    fn protected(&self, _method: &str, path: &str, scopes: &ScopeRegistry) -> Option<ScopeSet> {
        (path == "/api/me").then(|| scopes.lookup("profile")).flatten()
    }
    fn resource(&mut self, _req: &Request<'_>, auth: &Authorized<'_>, res: &mut Response<'_>) {
        use core::fmt::Write;
        res.header("Content-Type", "application/json");
        let _ = write!(res, "{{\"sub\":\"{}\"}}", auth.token.user);
    }
}

/// The provider with, at t = 1000: grant A (client `tv`) approved by user 1, grant B (client `svc`)
/// pending. Deterministic, so the codes below are stable and seeds can carry them
/// (`FUZZ_PRINT_CODES=1` prints them).
pub struct World {
    pub provider: FuzzProvider,
    pub rng: ChaCha20Rng,
    pub approved_device_code: String,
    pub pending_device_code: String,
    pub pending_user_code: String,
}

pub fn world() -> World {
    let mut rng = ChaCha20Rng::seed_from_u64(0);
    let mut provider = fuzzing::provider(&mut rng).expect("fuzz provider");
    let tv = ClientCredentials::new("tv", None);
    let svc = ClientCredentials::new("svc", Some(CLIENT_SECRET));
    let a = provider
        .device_authorization(1000, &DeviceAuthorizationRequest { client: tv, scope: Some("profile") }, &mut rng)
        .expect("a");
    provider
        .approve(1000, &a.user_code.display(), b"user:1", 1, provider.scopes().parse("profile").expect("scope"))
        .expect("approve");
    let b = provider
        .device_authorization(1000, &DeviceAuthorizationRequest { client: svc, scope: None }, &mut rng)
        .expect("b");
    let w = World {
        provider,
        rng,
        approved_device_code: a.device_code.to_string(),
        pending_device_code: b.device_code.to_string(),
        pending_user_code: b.user_code.display().to_string(),
    };
    if std::env::var_os("FUZZ_PRINT_CODES").is_some() {
        eprintln!("approved device code (tv): {}", w.approved_device_code);
        eprintln!("pending device code (svc): {}", w.pending_device_code);
        eprintln!("pending user code: {}", w.pending_user_code);
    }
    w
}

/// Checks that `out` is exactly a sequence of well-formed HTTP/1.1 responses, each with a
/// `Content-Length` equal to its body; returns their statuses.
pub fn check_responses(out: &[u8]) -> Vec<u16> {
    check_responses_to(out, false)
}

/// [`check_responses`], where `head` says the (single) response answers a `HEAD` that was not refused
/// for its framing: then it ends right after its head (its `Content-Length` is the GET body's, which
/// is not sent; RFC 9110 §9.3.2).
pub fn check_responses_to(mut out: &[u8], head: bool) -> Vec<u16> {
    let mut statuses = Vec::new();
    while !out.is_empty() {
        let mut headers = [httparse::EMPTY_HEADER; 32];
        let mut resp = httparse::Response::new(&mut headers);
        let head_len = match resp.parse(out) {
            Ok(httparse::Status::Complete(n)) => n,
            other => panic!("malformed response head ({other:?}): {:?}", String::from_utf8_lossy(out)),
        };
        assert_eq!(resp.version, Some(1), "HTTP/1.1 responses only");
        let status = resp.code.expect("status");
        assert!((200..600).contains(&status));
        let lengths: Vec<usize> = resp
            .headers
            .iter()
            .filter(|h| h.name.eq_ignore_ascii_case("content-length"))
            .map(|h| std::str::from_utf8(h.value).expect("ascii").trim().parse().expect("a number"))
            .collect();
        assert_eq!(lengths.len(), 1, "exactly one Content-Length");
        for h in resp.headers.iter() {
            assert!(!h.value.iter().any(|&b| b == b'\r' || b == b'\n'), "header injection");
        }
        if head {
            assert_eq!(out.len(), head_len, "a HEAD response with a body");
        }
        let end = if head { head_len } else { head_len + lengths[0] };
        assert!(end <= out.len(), "body shorter than its Content-Length");
        statuses.push(status);
        out = &out[end..];
    }
    statuses
}
