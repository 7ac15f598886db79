//! The HTTP side of the probe: an application (one signed-in user, one protected route), request bytes
//! as a client sends them, and one call of `oauth2_devices::http::handle` per request.

use core::fmt::Write as _;

use oauth2_devices::heapless;
use oauth2_devices::http::{self, Application, Authorized, Context, HttpConfig, Outcome, Request, Response, User};
use oauth2_devices::prelude::*;
use rand_core::CryptoRng;

use crate::requests::Probe;

/// The verification page's user and a protected `GET /api/sensors` (scope `profile`).
pub struct ProbeApp {
    /// Whether a user is signed in.
    pub signed_in: bool,
}

impl Application for ProbeApp {
    fn user(&mut self, _req: &Request<'_>) -> Option<User> {
        self.signed_in.then(|| User::new(42, "Alice"))
    }

    fn protected(&self, _method: &str, path: &str, scopes: &ScopeRegistry) -> Option<ScopeSet> {
        (path == "/api/sensors").then(|| scopes.lookup("profile")).flatten()
    }

    fn resource(&mut self, _req: &Request<'_>, _auth: &Authorized<'_>, res: &mut Response<'_>) {
        res.header("Content-Type", "application/json").body(b"{\"temperature\":21.5}");
    }
}

/// The probe's HTTP configuration.
pub const CONFIG: HttpConfig<'static> = HttpConfig::new("http://gw.local");

/// Request bytes.
pub type Bytes = heapless::String<1024>;

/// `method target HTTP/1.1` with a Host, the extra header lines, and a form body for POST.
pub fn request(method: &str, target: &str, headers: &str, body: &str) -> Bytes {
    let mut r = Bytes::new();
    let _ = write!(r, "{method} {target} HTTP/1.1\r\nHost: gw.local\r\nUser-Agent: probe/1.0\r\n{headers}");
    if method == "POST" {
        let _ = write!(r, "Content-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n", body.len());
    }
    let _ = write!(r, "\r\n{body}");
    r
}

/// Handles the request in `input[..len]`; returns the status (0 if the bytes were not a whole request).
#[allow(clippy::too_many_arguments)]
pub fn serve<R: CryptoRng>(
    p: &mut Probe,
    app: &mut ProbeApp,
    rng: &mut R,
    now: u64,
    input: &mut [u8],
    output: &mut [u8],
) -> u16 {
    let mut cx = Context { provider: p, app, rng, now, peer: None };
    match http::handle(&CONFIG, &mut cx, input, output) {
        Outcome::Respond(served) => served.status,
        Outcome::NeedMore => 0,
    }
}
