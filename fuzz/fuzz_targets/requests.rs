//! Everything between the wire and the provider: `parse_basic`, `Form` + `TokenRequest`,
//! `DeviceAuthorizationRequest` and `TokenQuery::from_form`, `parse_bearer` and `ScopeRegistry::parse`,
//! each checked against the rules of its module docs, plus a Basic-credentials round trip.
#![no_main]

use base64ct::{Base64, Encoding};
use libfuzzer_sys::fuzz_target;
use oauth2_devices::form::Form;
use oauth2_devices::fuzzing::SCOPES;
use oauth2_devices::prelude::*;
use oauth2_devices::provider::{parse_bearer, BearerError};
use oauth2_devices::request::{parse_basic, BasicCredentials, DEVICE_CODE_GRANT, REFRESH_TOKEN_GRANT};

/// The input, as fields separated by 0xFF (a byte that is never UTF-8), so seeds and dictionary entries
/// are plain text: `authorization 0xFF body 0xFF scope 0xFF basic_id 0xFF basic_secret 0xFF escape-bits`.
/// A first field of a single 0x00 (or none at all) means no `Authorization` header.
#[derive(Debug)]
struct Input<'a> {
    authorization: Option<&'a str>,
    body: &'a [u8],
    scope: String,
    basic_id: String,
    basic_secret: String,
    escape: Vec<bool>,
}

impl<'a> Input<'a> {
    fn split(data: &'a [u8]) -> Option<Self> {
        let mut fields = data.split(|&b| b == 0xff);
        let authorization = match fields.next() {
            None | Some([0]) => None,
            Some(h) => Some(std::str::from_utf8(h).ok()?),
        };
        let body = fields.next().unwrap_or_default();
        let mut text = || String::from_utf8_lossy(fields.next().unwrap_or_default()).into_owned();
        let (scope, basic_id, basic_secret) = (text(), text(), text());
        let escape =
            fields.next().unwrap_or_default().iter().flat_map(|b| (0..8).map(move |i| b >> i & 1 == 1)).collect();
        Some(Self { authorization, body, scope, basic_id, basic_secret, escape })
    }
}

/// The credentials `from_request` must produce (or the error code), per RFC 6749 §2.3 as `request.rs`
/// words it: exactly one method.
fn expected_credentials<'a>(
    basic: Option<BasicCredentials<'a>>,
    form: &Form<'a, 16>,
) -> Result<ClientCredentials<'a>, ErrorCode> {
    let id = form.get("client_id");
    let secret = form.get("client_secret");
    match basic {
        Some(_) if secret.is_some() => Err(ErrorCode::InvalidRequest),
        Some(b) if id.is_some_and(|id| id != b.client_id) => Err(ErrorCode::InvalidRequest),
        Some(b) => Ok(ClientCredentials::new(b.client_id, b.secret)),
        None => match (id, secret) {
            (None, _) => Err(ErrorCode::InvalidClient),
            (Some(client_id), None) => Ok(ClientCredentials::new(client_id, None)),
            (Some(client_id), Some(s)) => Ok(ClientCredentials::new(client_id, Some(s))),
        },
    }
}

fn check_requests<'a>(form: &Form<'a, 16>, basic: Option<BasicCredentials<'a>>) {
    let creds = expected_credentials(basic, form);

    let got = DeviceAuthorizationRequest::from_form(form, basic).map_err(|e| e.code);
    assert_eq!(got, creds.map(|client| DeviceAuthorizationRequest { client, scope: form.get("scope") }));

    let grant = match form.get("grant_type") {
        None => Err(ErrorCode::InvalidRequest),
        Some(DEVICE_CODE_GRANT) => form
            .get("device_code")
            .map(|device_code| Grant::DeviceCode { device_code })
            .ok_or(ErrorCode::InvalidRequest),
        Some(REFRESH_TOKEN_GRANT) => form
            .get("refresh_token")
            .map(|refresh_token| Grant::RefreshToken { refresh_token, scope: form.get("scope") })
            .ok_or(ErrorCode::InvalidRequest),
        Some(_) => Err(ErrorCode::UnsupportedGrantType),
    };
    let got = TokenRequest::from_form(form, basic).map_err(|e| e.code);
    assert_eq!(got, grant.and_then(|grant| creds.map(|client| TokenRequest { client, grant })));

    let got = TokenQuery::from_form(form, basic).map_err(|e| e.code);
    let want = form
        .get("token")
        .ok_or(ErrorCode::InvalidRequest)
        .and_then(|token| creds.map(|client| TokenQuery { client, token }));
    assert_eq!(got, want);
}

/// RFC 6750 §2.1: `Bearer 1*SP b64token`, where b64token = 1*( ALPHA / DIGIT / "-" / "." / "_" / "~" /
/// "+" / "/" ) *"="; the scheme is case-insensitive and, as `parse_bearer` documents, spaces around the
/// token are tolerated. Another scheme (or no header) is "missing".
fn reference_bearer(header: Option<&str>) -> Result<&str, BearerError> {
    let header = header.ok_or(BearerError::Missing)?;
    let (scheme, rest) = match header.find(' ') {
        Some(i) => (&header[..i], &header[i + 1..]),
        None => (header, ""),
    };
    if !scheme.eq_ignore_ascii_case("bearer") {
        return Err(BearerError::Missing);
    }
    let token = rest.trim_matches(' ');
    let chars = token.len() - token.bytes().rev().take_while(|&b| b == b'=').count();
    let b64 = |b: u8| b.is_ascii_alphanumeric() || b"-._~+/".contains(&b);
    if chars > 0 && token.bytes().take(chars).all(b64) {
        Ok(token)
    } else {
        Err(BearerError::Malformed)
    }
}

/// RFC 6749 §3.3 over the registry: space-delimited registered names; the empty string is no scope.
fn reference_scope(scope: &str) -> Result<u32, ErrorCode> {
    if scope.is_empty() {
        return Ok(0);
    }
    scope.split(' ').try_fold(0u32, |bits, name| {
        SCOPES.iter().position(|s| *s == name).map(|i| bits | 1 << i).ok_or(ErrorCode::InvalidScope)
    })
}

fn urlencode(s: &str, escape: &mut impl Iterator<Item = bool>) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() && !escape.next().unwrap_or(false) {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn run(input: Input<'_>) {
    // Basic credentials from an arbitrary header.
    let mut scratch = [0u8; 256];
    let basic = match input.authorization {
        Some(h) => {
            let first = h.trim_matches(' ').split(' ').next().unwrap_or("");
            let parsed = parse_basic(h, &mut scratch);
            if !first.eq_ignore_ascii_case("basic") {
                assert_eq!(parsed, Ok(None), "{h:?} is not Basic");
            }
            match parsed {
                Ok(Some(b)) => {
                    assert!(!b.client_id.is_empty());
                    assert!(b.secret.is_none_or(|s| !s.is_empty()));
                    Some(b)
                }
                Ok(None) => None,
                Err(e) => {
                    assert_eq!(e.code, ErrorCode::InvalidClient);
                    return;
                }
            }
        }
        None => None,
    };

    // The body, then every request type over it.
    let mut body = input.body.to_vec();
    if let Ok(form) = Form::<16>::parse(&mut body) {
        check_requests(&form, basic);
        check_requests(&form, None);
    }

    // Bearer headers.
    assert_eq!(parse_bearer(input.authorization), reference_bearer(input.authorization));

    // Scope strings.
    let registry = ScopeRegistry::new(SCOPES).expect("valid names");
    let parsed = registry.parse(&input.scope).map(|s| s.bits()).map_err(|e| e.code);
    assert_eq!(parsed, reference_scope(&input.scope), "scope {:?}", input.scope);
    if let Ok(bits) = parsed {
        let text: oauth2_devices::heapless::String<64> = registry.to_string(ScopeSet::from_bits(bits)).expect("fits");
        assert_eq!(registry.parse(&text).map(|s| s.bits()), Ok(bits), "{text:?}");
    }

    // Basic round trip: urlencode(id) ":" urlencode(secret), base64, any case of the scheme.
    let mut escape = input.escape.iter().copied();
    let plain = format!("{}:{}", urlencode(&input.basic_id, &mut escape), urlencode(&input.basic_secret, &mut escape));
    let mut b64 = vec![0u8; plain.len() * 4 / 3 + 4];
    let encoded = Base64::encode(plain.as_bytes(), &mut b64).expect("sized");
    let header = format!("{} {encoded}", if escape.next().unwrap_or(false) { "bAsIc" } else { "Basic" });
    let mut scratch = vec![0u8; plain.len()];
    let got = parse_basic(&header, &mut scratch);
    if input.basic_id.is_empty() {
        assert!(got.is_err(), "{header:?}");
    } else {
        let secret = (!input.basic_secret.is_empty()).then_some(input.basic_secret.as_str());
        assert_eq!(got, Ok(Some(BasicCredentials { client_id: &input.basic_id, secret })), "{header:?}");
    }
}

fuzz_target!(|data: &[u8]| {
    if let Some(input) = Input::split(data) {
        run(input);
    }
});
