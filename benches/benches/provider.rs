//! Criterion benchmarks of the provider, one group per concern, with the references in the same run.
//!
//! `cargo bench -p oauth2-devices-benches -- --warm-up-time 1 --measurement-time 3`
//!
//! Operations that change the provider's tables (a grant slot taken, a grant approved, a token family
//! opened) are timed in chunks of at most 16 (the grant table's capacity) with `iter_custom`: the state
//! each chunk needs is prepared outside the timed region, and the clock is moved past the code lifetime
//! between chunks so that slots are reclaimed exactly as in a server's steady state. Every path is
//! checked once for the expected outcome before it is timed.
//!
//! Figures and the commands that produced them: BENCHMARKS.md.

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion};
use hmac::{Hmac, Mac};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use oauth2_devices::code::DeviceCode;
use oauth2_devices::heapless;
use oauth2_devices::http::{self, Application, Authorized, Context, HttpConfig, Outcome, Request, Response, User};
use oauth2_devices::prelude::*;
use oauth2_devices::provider::parse_bearer;
use oauth2_devices::token::AccessClaims;
use oauth2_devices_benches::{public, Fixture, CLIENT_ID, KEY, SOURCE, USER};
use serde::{Deserialize, Serialize};
use sha2::Sha256;

/// Grants prepared per timed chunk: the capacity of the sample grant table.
const CHUNK: u64 = 16;

/// Runs `iters` timed operations in chunks: `prepare(fixture, n)` is untimed and returns the inputs of the
/// chunk, `op(fixture, input)` is timed, `cleanup(fixture)` is untimed.
fn chunked<T>(
    f: &mut Fixture,
    iters: u64,
    mut prepare: impl FnMut(&mut Fixture, u64) -> Vec<T>,
    mut op: impl FnMut(&mut Fixture, &T),
    mut cleanup: impl FnMut(&mut Fixture),
) -> Duration {
    let mut total = Duration::ZERO;
    let mut left = iters;
    while left > 0 {
        let n = left.min(CHUNK);
        let inputs = prepare(f, n);
        let start = Instant::now();
        for input in &inputs {
            op(f, input);
        }
        total += start.elapsed();
        cleanup(f);
        left -= n;
    }
    total
}

fn device_authorization(c: &mut Criterion) {
    let mut g = c.benchmark_group("device_authorization");
    let req = DeviceAuthorizationRequest { client: public(), scope: Some("profile") };

    let mut f = Fixture::new();
    assert!(f.provider.device_authorization(f.now, &req, &mut f.rng).is_ok());
    g.bench_function("typed", |b| {
        b.iter_custom(|iters| {
            chunked(
                &mut f,
                iters,
                |f, n| {
                    f.expire_codes();
                    vec![(); n as usize]
                },
                |f, ()| {
                    black_box(f.provider.device_authorization(black_box(f.now), black_box(&req), &mut f.rng)).ok();
                },
                |_| {},
            )
        })
    });

    let mut f = Fixture::new();
    let mut json = [0u8; 512];
    g.bench_function("typed+json", |b| {
        b.iter_custom(|iters| {
            chunked(
                &mut f,
                iters,
                |f, n| {
                    f.expire_codes();
                    vec![(); n as usize]
                },
                |f, ()| {
                    if let Ok(auth) = f.provider.device_authorization(black_box(f.now), black_box(&req), &mut f.rng) {
                        black_box(auth.write_json(f.provider.config(), &mut json)).ok();
                    }
                },
                |_| {},
            )
        })
    });
    g.finish();
}

fn token_poll_pending(c: &mut Criterion) {
    let mut g = c.benchmark_group("token_poll_pending");
    // 16 grants polled round robin, the clock advancing 1 s per poll: each grant sees a poll every 16 s,
    // more than its 5 s interval, so every answer is authorization_pending (never slow_down) until the
    // codes are about to expire; then 16 fresh grants are issued (untimed).
    const ROUNDS: u64 = 36; // 16 × 36 = 576 s < the 600 s code lifetime
    struct Polling {
        codes: Vec<DeviceCode>,
        start: u64,
        polls: u64,
    }
    let fresh = |f: &mut Fixture| {
        f.expire_codes();
        Polling { codes: (0..CHUNK).map(|_| f.authorize().device_code).collect(), start: f.now, polls: 0 }
    };

    for with_json in [false, true] {
        let mut f = Fixture::new();
        // The whole schedule of one chunk answers authorization_pending.
        let s = fresh(&mut f);
        for i in 0..CHUNK * ROUNDS {
            let code: &str = &s.codes[(i % CHUNK) as usize];
            let poll = TokenRequest { client: public(), grant: Grant::DeviceCode { device_code: code } };
            let r = f.provider.token(s.start + 1 + i, &poll);
            assert_eq!(r.err().map(|e| e.code), Some(ErrorCode::AuthorizationPending), "poll {i}");
        }
        let mut s = fresh(&mut f);
        let mut json = [0u8; 256];
        let name = if with_json { "typed+json" } else { "typed" };
        g.bench_function(name, |b| {
            b.iter_custom(|iters| {
                let mut total = Duration::ZERO;
                let mut left = iters;
                while left > 0 {
                    if s.polls == CHUNK * ROUNDS {
                        s = fresh(&mut f);
                    }
                    let n = left.min(CHUNK * ROUNDS - s.polls);
                    let start = Instant::now();
                    for i in s.polls..s.polls + n {
                        let code: &str = &s.codes[(i % CHUNK) as usize];
                        let poll = TokenRequest { client: public(), grant: Grant::DeviceCode { device_code: code } };
                        let r = f.provider.token(black_box(s.start + 1 + i), black_box(&poll));
                        if with_json {
                            if let Err(e) = r {
                                black_box(e.write_json(&mut json)).ok();
                            }
                        } else {
                            black_box(r).ok();
                        }
                    }
                    total += start.elapsed();
                    s.polls += n;
                    left -= n;
                }
                total
            })
        });
    }
    g.finish();
}

fn token_exchange(c: &mut Criterion) {
    let mut g = c.benchmark_group("token_exchange");
    // Each chunk: 16 grants authorized and approved (untimed); 16 polls that get tokens (timed); the
    // token families revoked again (untimed) so the family table never fills.
    fn prepare(f: &mut Fixture, n: u64) -> Vec<DeviceCode> {
        f.expire_codes();
        (0..n).map(|_| f.approved()).collect()
    }
    fn cleanup(f: &mut Fixture, issued: &mut Vec<heapless::String<50>>) {
        for access in issued.drain(..) {
            let q = TokenQuery { client: public(), token: &access };
            f.provider.revoke(f.now, &q).expect("revoke");
        }
        assert_eq!(f.provider.live_families(f.now), 0);
    }

    let mut f = Fixture::new();
    {
        let code = f.approved();
        let poll = TokenRequest { client: public(), grant: Grant::DeviceCode { device_code: &code } };
        let t = f.provider.token(f.now, &poll).expect("tokens");
        assert!(t.refresh_token.is_some());
        let mut issued = vec![t.access_token];
        cleanup(&mut f, &mut issued);
    }
    for with_json in [false, true] {
        let mut issued = Vec::with_capacity(CHUNK as usize);
        let mut json = [0u8; 512];
        let name = if with_json { "typed+json" } else { "typed" };
        g.bench_function(name, |b| {
            b.iter_custom(|iters| {
                let issued = std::cell::RefCell::new(&mut issued);
                chunked(
                    &mut f,
                    iters,
                    prepare,
                    |f, code| {
                        let poll = TokenRequest { client: public(), grant: Grant::DeviceCode { device_code: code } };
                        if let Ok(t) = f.provider.token(black_box(f.now), black_box(&poll)) {
                            if with_json {
                                black_box(t.write_json(f.provider.scopes(), &mut json)).ok();
                            }
                            issued.borrow_mut().push(black_box(t).access_token);
                        }
                    },
                    |f| cleanup(f, &mut issued.borrow_mut()),
                )
            })
        });
    }

    // Refresh-token rotation (RFC 6749 §6): one family, rotated at every iteration.
    let mut f = Fixture::new();
    let code = f.approved();
    let poll = TokenRequest { client: public(), grant: Grant::DeviceCode { device_code: &code } };
    let mut refresh = f.provider.token(f.now, &poll).expect("tokens").refresh_token.expect("refresh token");
    g.bench_function("refresh_rotation", |b| {
        b.iter(|| {
            let req =
                TokenRequest { client: public(), grant: Grant::RefreshToken { refresh_token: &refresh, scope: None } };
            let t = f.provider.token(black_box(f.now), black_box(&req)).expect("rotation");
            refresh = t.refresh_token.expect("refresh token");
        })
    });
    g.finish();
}

fn approve(c: &mut Criterion) {
    let mut g = c.benchmark_group("approve");
    // Each chunk: 16 grants authorized (untimed), then approved with the code as displayed (timed); the
    // clock then moves past their expiry so their slots are reclaimed.
    let mut f = Fixture::new();
    let profile = f.profile();
    {
        let code = f.authorize().user_code.display();
        assert!(f.provider.approve(f.now, &code, SOURCE, USER, profile).is_ok());
    }
    g.bench_function("user_code", |b| {
        b.iter_custom(|iters| {
            chunked(
                &mut f,
                iters,
                |f, n| {
                    f.expire_codes();
                    (0..n).map(|_| f.authorize().user_code.display()).collect()
                },
                |f, code| {
                    let r = f.provider.approve(black_box(f.now), black_box(code), SOURCE, USER, profile);
                    black_box(r).ok();
                },
                |_| {},
            )
        })
    });
    g.finish();
}

fn bearer_check(c: &mut Criterion) {
    let mut g = c.benchmark_group("bearer_check");
    let mut f = Fixture::new();
    let header = f.bearer_header();
    let profile = f.profile();
    let now = f.now + 1;
    assert_eq!(f.provider.check_bearer(now, Some(&header), profile).map(|i| i.user), Ok(USER));
    g.bench_function("check_bearer", |b| {
        b.iter(|| f.provider.check_bearer(black_box(now), black_box(Some(header.as_str())), black_box(profile)))
    });
    // Its parts: the header parsed, then the token verified (decode, MAC, expiry, family look-up).
    g.bench_function("parse_bearer", |b| b.iter(|| parse_bearer(black_box(Some(header.as_str())))));
    let token = parse_bearer(Some(&header)).expect("bearer");
    g.bench_function("verify_access_token", |b| {
        b.iter(|| f.provider.verify_access_token(black_box(now), black_box(token)))
    });
    g.finish();
}

/// The claims of a JWT carrying what an access token of this crate carries.
#[derive(Debug, Serialize, Deserialize)]
struct JwtClaims {
    sub: String,
    client_id: String,
    scope: String,
    exp: u64,
    /// Token-family slot.
    fam: u16,
    /// Grant serial.
    serial: u32,
}

fn reference(c: &mut Criterion) {
    let mut g = c.benchmark_group("reference");

    // This crate's own access-token format, signed and verified without the provider around it.
    let f = Fixture::new();
    let ring = f.provider.keys();
    let claims = AccessClaims {
        key_id: 1,
        client: 0,
        family_slot: 3,
        serial: 0x0102_0304,
        user: USER,
        scopes: f.profile(),
        expires_at: 1_000_000,
    };
    let token = claims.encode(ring.current().expect("initialised"), CLIENT_ID);
    assert_eq!(AccessClaims::verify(&token, ring, CLIENT_ID), Some(claims));
    g.bench_function("access_token_sign", |b| {
        b.iter(|| black_box(&claims).encode(ring.current().expect("initialised"), CLIENT_ID))
    });
    // One base64url decode of the 50 characters and the field reads, no MAC: what each extra decode costs.
    g.bench_function("access_token_peek", |b| b.iter(|| AccessClaims::peek(black_box(&token))));
    g.bench_function("access_token_verify", |b| {
        b.iter(|| AccessClaims::verify(black_box(&token), ring, black_box(CLIENT_ID)))
    });

    // jsonwebtoken HS256 with the same content (JSON names, a string `sub` and `scope`).
    let exp = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).expect("clock").as_secs() + 3600;
    let jwt_claims = JwtClaims {
        sub: USER.to_string(),
        client_id: CLIENT_ID.into(),
        scope: "profile".into(),
        exp,
        fam: 3,
        serial: 0x0102_0304,
    };
    let header = Header::new(Algorithm::HS256);
    let enc = EncodingKey::from_secret(&KEY).expect("HS256 key");
    let dec = DecodingKey::from_secret(&KEY).expect("HS256 key");
    let validation = Validation::new(Algorithm::HS256);
    let jwt = jsonwebtoken::encode(&header, &jwt_claims, &enc).expect("jwt");
    let back = jsonwebtoken::decode::<JwtClaims>(&jwt, &dec, &validation).expect("jwt verifies");
    assert_eq!(back.claims.serial, jwt_claims.serial);
    g.bench_function("jsonwebtoken_hs256_sign", |b| {
        b.iter(|| jsonwebtoken::encode(black_box(&header), black_box(&jwt_claims), &enc))
    });
    g.bench_function("jsonwebtoken_hs256_verify", |b| {
        b.iter(|| jsonwebtoken::decode::<JwtClaims>(black_box(&jwt), &dec, &validation))
    });

    // The floor: HMAC-SHA256 over exactly what the access-token MAC covers (domain byte, 21-byte body,
    // client_id), from a pre-keyed state as the library does, and keyed from scratch as a JWT library does.
    let mut msg = vec![b'A', b'A'];
    msg.extend_from_slice(&[0x5a; 20]);
    msg.extend_from_slice(CLIENT_ID.as_bytes());
    assert_eq!(msg.len(), 1 + 21 + CLIENT_ID.len());
    let keyed = Hmac::<Sha256>::new_from_slice(&KEY).expect("key");
    g.bench_function("hmac_sha256_prekeyed", |b| {
        b.iter(|| {
            let mut m = keyed.clone();
            m.update(black_box(&msg));
            m.finalize().into_bytes()
        })
    });
    g.bench_function("hmac_sha256_keyed_per_call", |b| {
        b.iter(|| {
            let mut m = Hmac::<Sha256>::new_from_slice(black_box(&KEY)).expect("key");
            m.update(black_box(&msg));
            m.finalize().into_bytes()
        })
    });
    g.finish();
}

/// The application around the server in the HTTP benches: one signed-in user on the verification
/// page, and one protected route (`GET /api/sensors`, scope `profile`) answering a small JSON document.
struct BenchApp;

impl Application for BenchApp {
    fn user(&mut self, _req: &Request<'_>) -> Option<User> {
        Some(User::new(USER, "Alice"))
    }

    fn protected(&self, _method: &str, path: &str, scopes: &ScopeRegistry) -> Option<ScopeSet> {
        (path == "/api/sensors").then(|| scopes.lookup("profile")).flatten()
    }

    fn resource(&mut self, _req: &Request<'_>, _auth: &Authorized<'_>, res: &mut Response<'_>) {
        res.header("Content-Type", "application/json").body(b"{\"temperature\":21.5}");
    }
}

/// The bytes of one request as a client sends them.
fn request(method: &str, target: &str, headers: &str, body: &str) -> Vec<u8> {
    let mut r = format!("{method} {target} HTTP/1.1\r\nHost: gw.local\r\nUser-Agent: bench/1.0\r\n{headers}");
    if method == "POST" {
        r += &format!("Content-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n", body.len());
    }
    r += "\r\n";
    r += body;
    r.into_bytes()
}

fn poll_request(device_code: &str) -> Vec<u8> {
    let body = format!(
        "grant_type=urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Adevice_code&device_code={device_code}&client_id={CLIENT_ID}"
    );
    request("POST", "/oauth/token", "", &body)
}

/// One HTTP server: its configuration, application and buffers (as a driver would own them).
struct Server {
    cfg: HttpConfig<'static>,
    app: BenchApp,
    input: Vec<u8>,
    output: Vec<u8>,
}

impl Server {
    fn new() -> Self {
        let cfg = HttpConfig::new("http://gw.local");
        Self { input: vec![0; cfg.input_buffer_len()], output: vec![0; http::MIN_OUTPUT_LEN], cfg, app: BenchApp }
    }

    /// Bytes in (copied into the input buffer, as a read would), bytes out; returns the status.
    fn serve(&mut self, f: &mut Fixture, now: u64, bytes: &[u8]) -> u16 {
        let mut output = std::mem::take(&mut self.output);
        let status = self.serve_into(f, now, bytes, &mut output);
        self.output = output;
        status
    }

    /// [`Server::serve`] with the response going to `output`.
    fn serve_into(&mut self, f: &mut Fixture, now: u64, bytes: &[u8], output: &mut [u8]) -> u16 {
        let input = &mut self.input[..bytes.len()];
        input.copy_from_slice(bytes);
        let mut cx = Context { provider: &mut f.provider, app: &mut self.app, rng: &mut f.rng, now, peer: None };
        match http::handle(&self.cfg, &mut cx, input, output) {
            Outcome::Respond(served) => {
                debug_assert_eq!(served.consumed, bytes.len());
                black_box(&output[served.range()]);
                served.status
            }
            Outcome::NeedMore => 0,
        }
    }
}

/// Revokes the token family of the access token in an HTTP token response, if it holds one.
fn revoke_issued(f: &mut Fixture, response: &[u8]) {
    const KEY: &[u8] = b"\"access_token\":\"";
    let Some(at) = response.windows(KEY.len()).position(|w| w == KEY) else { return };
    let rest = &response[at + KEY.len()..];
    let token = std::str::from_utf8(&rest[..rest.iter().position(|&b| b == b'"').unwrap_or(0)]).expect("ascii");
    f.provider.revoke(f.now, &TokenQuery { client: public(), token }).expect("revoke");
}

/// base64url without padding (RFC 4648 §5), for the page's anti-CSRF field.
fn base64url(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let n = chunk.iter().enumerate().fold(0u32, |acc, (i, &b)| acc | u32::from(b) << (16 - 8 * i));
        for i in 0..=chunk.len() {
            out.push(char::from(ALPHABET[(n >> (18 - 6 * i) & 63) as usize]));
        }
    }
    out
}

/// A whole HTTP request handled from bytes in to bytes out, for each endpoint, through
/// `oauth2_devices::http::handle` (the sans-IO core every driver calls).
fn http(c: &mut Criterion) {
    let mut g = c.benchmark_group("http");
    let mut server = Server::new();

    // POST /oauth/device
    let mut f = Fixture::new();
    let device = request("POST", "/oauth/device", "", &format!("client_id={CLIENT_ID}&scope=profile"));
    let now = f.now;
    assert_eq!(server.serve(&mut f, now, &device), 200);
    g.bench_function("device_authorization", |b| {
        b.iter_custom(|iters| {
            chunked(
                &mut f,
                iters,
                |f, n| {
                    f.expire_codes();
                    vec![(); n as usize]
                },
                |f, ()| {
                    black_box(server.serve(f, f.now, black_box(&device)));
                },
                |_| {},
            )
        })
    });

    // POST /oauth/token, authorization_pending (400), with the polling schedule of token_poll_pending.
    const ROUNDS: u64 = 36;
    let fresh = |f: &mut Fixture| {
        f.expire_codes();
        let polls: Vec<Vec<u8>> = (0..CHUNK).map(|_| poll_request(&f.authorize().device_code)).collect();
        (polls, f.now, 0u64)
    };
    let mut f = Fixture::new();
    let (polls, start, _) = fresh(&mut f);
    for i in 0..CHUNK * ROUNDS {
        assert_eq!(server.serve(&mut f, start + 1 + i, &polls[(i % CHUNK) as usize]), 400, "poll {i}");
    }
    let mut state = fresh(&mut f);
    g.bench_function("token_poll_pending", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            let mut left = iters;
            while left > 0 {
                if state.2 == CHUNK * ROUNDS {
                    state = fresh(&mut f);
                }
                let (polls, start, done) = &mut state;
                let n = left.min(CHUNK * ROUNDS - *done);
                let t = Instant::now();
                for i in *done..*done + n {
                    black_box(server.serve(&mut f, *start + 1 + i, black_box(&polls[(i % CHUNK) as usize])));
                }
                total += t.elapsed();
                *done += n;
                left -= n;
            }
            total
        })
    });

    // POST /oauth/token, exchange (200 with access and refresh tokens). Each response of a chunk goes to
    // its own output buffer, from which the access token is read afterwards to revoke its family
    // (untimed), so the family table never fills.
    let mut f = Fixture::new();
    let first = poll_request(&f.approved());
    let now = f.now;
    let mut out = vec![0u8; http::MIN_OUTPUT_LEN];
    assert_eq!(server.serve_into(&mut f, now, &first, &mut out), 200);
    revoke_issued(&mut f, &out);
    assert_eq!(f.provider.live_families(now), 0);
    let server_cell = std::cell::RefCell::new(&mut server);
    let mut outputs = vec![vec![0u8; http::MIN_OUTPUT_LEN]; CHUNK as usize];
    let outputs_cell = std::cell::RefCell::new(&mut outputs);
    g.bench_function("token_exchange", |b| {
        b.iter_custom(|iters| {
            let next = std::cell::Cell::new(0);
            chunked(
                &mut f,
                iters,
                |f, n| {
                    f.expire_codes();
                    next.set(0);
                    (0..n).map(|_| poll_request(&f.approved())).collect()
                },
                |f, bytes| {
                    let mut server = server_cell.borrow_mut();
                    let mut outputs = outputs_cell.borrow_mut();
                    black_box(server.serve_into(f, f.now, black_box(bytes), &mut outputs[next.get()]));
                    next.set(next.get() + 1);
                },
                |f| {
                    for out in outputs_cell.borrow().iter() {
                        revoke_issued(f, out);
                    }
                    assert_eq!(f.provider.live_families(f.now), 0);
                },
            )
        })
    });

    // POST /activate: the signed-in user approves a typed code (200, "Device approved").
    let mut f = Fixture::new();
    let csrf = {
        let tag = f.provider.csrf_tag(format!("user:{USER}").as_bytes());
        base64url(&tag)
    };
    let approve =
        |code: &str| request("POST", "/activate", "", &format!("user_code={code}&csrf={csrf}&action=approve"));
    let first = approve(&f.authorize().user_code.display());
    let now = f.now;
    assert_eq!(server.serve(&mut f, now, &first), 200);
    g.bench_function("activate_approve", |b| {
        b.iter_custom(|iters| {
            chunked(
                &mut f,
                iters,
                |f, n| {
                    f.expire_codes();
                    (0..n).map(|_| approve(&f.authorize().user_code.display())).collect()
                },
                |f, bytes| {
                    black_box(server.serve(f, f.now, black_box(bytes)));
                },
                |_| {},
            )
        })
    });

    // GET /activate?user_code=… : the confirmation page (HTML) for a pending code.
    let mut f = Fixture::new();
    let code = f.authorize().user_code.display();
    let page = request("GET", &format!("/activate?user_code={code}"), "", "");
    let now = f.now;
    assert_eq!(server.serve(&mut f, now, &page), 200);
    g.bench_function("activate_page", |b| b.iter(|| server.serve(&mut f, now, black_box(&page))));

    // GET /api/sensors with a valid bearer token (200 from the application).
    let mut f = Fixture::new();
    let header = f.bearer_header();
    let resource = request("GET", "/api/sensors", &format!("Authorization: {header}\r\n"), "");
    let now = f.now + 1;
    assert_eq!(server.serve(&mut f, now, &resource), 200);
    g.bench_function("protected_resource", |b| b.iter(|| server.serve(&mut f, now, black_box(&resource))));

    // GET /.well-known/oauth-authorization-server
    let mut f = Fixture::new();
    let metadata = request("GET", "/.well-known/oauth-authorization-server", "", "");
    assert_eq!(server.serve(&mut f, now, &metadata), 200);
    g.bench_function("metadata", |b| b.iter(|| server.serve(&mut f, now, black_box(&metadata))));
    g.finish();
}

criterion_group!(
    benches,
    device_authorization,
    token_poll_pending,
    token_exchange,
    approve,
    bearer_check,
    reference,
    http
);
criterion_main!(benches);
