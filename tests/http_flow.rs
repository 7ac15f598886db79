//! The device flow end to end over the sans-IO HTTP handler: metadata, device authorization, polling,
//! the verification page, tokens, a protected route, refresh, revocation and introspection.

mod http_common;

use http_common::*;

fn form_value(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

fn assert_no_store(r: &Resp) {
    assert_eq!(r.header("cache-control"), Some("no-store"), "{r:?}");
    assert_eq!(r.header("pragma"), Some("no-cache"), "{r:?}");
}

fn assert_page_headers(r: &Resp) {
    assert_eq!(r.header("content-type"), Some("text/html; charset=utf-8"));
    assert_eq!(r.header("x-frame-options"), Some("DENY"));
    assert_eq!(r.header("content-security-policy"), Some(CSP));
    assert_eq!(r.header("cache-control"), Some("no-store"));
}

struct Device {
    device_code: String,
    user_code: String,
}

fn start(s: &mut Server, client: &str, scope: &str) -> Device {
    let r = s.request(&post_form("/oauth/device", &format!("client_id={client}&scope={}", form_value(scope))));
    assert_eq!(r.status, 200, "{}", r.text());
    assert_no_store(&r);
    let j = r.json();
    Device {
        device_code: j["device_code"].as_str().unwrap().into(),
        user_code: j["user_code"].as_str().unwrap().into(),
    }
}

fn poll(s: &mut Server, client: &str, device_code: &str) -> Resp {
    s.request(&post_form(
        "/oauth/token",
        &format!("grant_type={DEVICE_GRANT}&device_code={device_code}&client_id={client}"),
    ))
}

fn page(s: &mut Server, user_code: &str, auth: &str) -> Resp {
    s.request(&get(&format!("/activate?user_code={}", form_value(user_code)), &[("Authorization", auth)]))
}

fn decide(s: &mut Server, user_code: &str, csrf: &str, action: &str, auth: &str) -> Resp {
    let body = format!("user_code={}&csrf={csrf}&action={action}", form_value(user_code));
    s.request(&post_form_with("/activate", &[("Authorization", auth)], &body))
}

fn alice() -> String {
    basic("alice", "wonderland")
}

#[test]
fn metadata_document() {
    let mut s = Server::new();
    let r = s.request(&get("/.well-known/oauth-authorization-server", &[]));
    assert_eq!(r.status, 200);
    let j = r.json();
    assert_eq!(j["issuer"], "http://gw.test");
    assert_eq!(j["device_authorization_endpoint"], "http://gw.test/oauth/device");
    assert_eq!(j["token_endpoint"], "http://gw.test/oauth/token");
    assert_eq!(j["introspection_endpoint"], "http://gw.test/oauth/introspect");
    assert_eq!(j["revocation_endpoint"], "http://gw.test/oauth/revoke");
    assert_eq!(
        j["grant_types_supported"],
        serde_json::json!(["urn:ietf:params:oauth:grant-type:device_code", "refresh_token"])
    );
    assert_eq!(j["response_types_supported"], serde_json::json!([]));
    let all = serde_json::json!(["none", "client_secret_basic", "client_secret_post"]);
    assert_eq!(j["token_endpoint_auth_methods_supported"], all);
    assert_eq!(j["revocation_endpoint_auth_methods_supported"], all);
    assert_eq!(
        j["introspection_endpoint_auth_methods_supported"],
        serde_json::json!(["client_secret_basic", "client_secret_post"])
    );
    assert_eq!(j["scopes_supported"], serde_json::json!(["profile", "email", "sensors:read"]));
}

#[test]
fn full_device_flow() {
    let mut s = Server::new();
    let t0 = s.now;

    // Device authorization (RFC 8628 §3.1-3.2).
    let r = s.request(&post_form("/oauth/device", "client_id=tv-demo&scope=profile+email"));
    assert_eq!(r.status, 200);
    assert_no_store(&r);
    let j = r.json();
    assert_eq!(j["verification_uri"], "http://gw.test/activate");
    assert_eq!(j["expires_in"], 600);
    assert_eq!(j["interval"], 5);
    let device_code = j["device_code"].as_str().unwrap().to_owned();
    let user_code = j["user_code"].as_str().unwrap().to_owned();
    assert_eq!(j["verification_uri_complete"], format!("http://gw.test/activate?user_code={user_code}"));

    // Polling: pending, then too fast.
    let r = poll(&mut s, "tv-demo", &device_code);
    assert_eq!((r.status, r.error().as_str()), (400, "authorization_pending"));
    assert_no_store(&r);
    s.now = t0 + 2;
    let r = poll(&mut s, "tv-demo", &device_code);
    assert_eq!((r.status, r.error().as_str()), (400, "slow_down"));

    // The page: sign-in required, then the request details for the code typed in lower case.
    let typed = user_code.replace('-', "").to_lowercase();
    let r = s.request(&get(&format!("/activate?user_code={typed}"), &[]));
    assert_eq!(r.status, 401);
    assert_eq!(r.header("www-authenticate"), Some("Basic realm=\"oauth2-devices\""));
    assert_page_headers(&r);
    let r = page(&mut s, &typed, &alice());
    assert_eq!(r.status, 200, "{}", r.text());
    assert_page_headers(&r);
    let html = r.text();
    assert!(html.contains("<b id=\"client\">Demo TV</b>"), "{html}");
    assert!(html.contains("<ul id=\"scopes\"><li>profile</li><li>email</li></ul>"), "{html}");
    assert!(html.contains("id=\"approve\"") && html.contains("id=\"deny\""));
    assert!(html.contains("Signed in as <b id=\"user\">alice</b>"));
    assert_eq!(r.input_value("user_code"), Some(user_code.as_str()), "only the normalised code is echoed");
    assert!(!html.contains(&typed));
    let csrf = r.input_value("csrf").unwrap().to_owned();
    assert_eq!(csrf.len(), 22);

    // CSRF: a wrong tag, and alice's tag used by another user, are refused.
    let r = decide(&mut s, &user_code, "AAAAAAAAAAAAAAAAAAAAAA", "approve", &alice());
    assert_eq!(r.status, 403);
    let r = decide(&mut s, &user_code, &csrf, "approve", &basic("mallory", "x"));
    assert_eq!(r.status, 403);
    let body = format!("user_code={user_code}&action=approve");
    let r = s.request(&post_form_with("/activate", &[("Authorization", &alice())], &body));
    assert_eq!(r.status, 403);

    // Approve (with a charset parameter on the form).
    let body = format!("user_code={user_code}&csrf={csrf}&action=approve");
    let r = s.request(&request(
        "POST",
        "/activate",
        &[("Content-Type", "application/x-www-form-urlencoded; charset=UTF-8"), ("Authorization", &alice())],
        &body,
    ));
    assert_eq!(r.status, 200, "{}", r.text());
    assert_page_headers(&r);
    assert_eq!(r.message(), Some("Device approved"));
    assert!(r.text().contains("<b id=\"client\">Demo TV</b>"));
    let r = decide(&mut s, &user_code, &csrf, "deny", &alice());
    assert_eq!((r.status, r.message()), (400, Some("Code already used")));
    let r = page(&mut s, &user_code, &alice());
    assert_eq!(r.message(), Some("Code already used"));

    // Tokens.
    s.now = t0 + 20;
    let r = poll(&mut s, "tv-demo", &device_code);
    assert_eq!(r.status, 200, "{}", r.text());
    assert_no_store(&r);
    let j = r.json();
    assert_eq!(j["token_type"], "Bearer");
    assert_eq!(j["scope"], "profile email");
    assert_eq!(j["expires_in"], 3600);
    let access = j["access_token"].as_str().unwrap().to_owned();
    let refresh = j["refresh_token"].as_str().unwrap().to_owned();

    // The protected route (RFC 6750).
    let bearer = format!("Bearer {access}");
    let r = s.request(&get("/api/me", &[("Authorization", &bearer)]));
    assert_eq!(r.status, 200);
    assert_eq!(r.json(), serde_json::json!({"sub": "1", "name": "alice", "client_id": "tv-demo"}));
    let r = s.request(&get("/api/me", &[]));
    assert_eq!(r.status, 401);
    assert_eq!(r.header("www-authenticate"), Some("Bearer realm=\"oauth2-devices\""));
    let r = s.request(&get("/api/me", &[("Authorization", "Bearer not-a-token")]));
    assert_eq!((r.status, r.error().as_str()), (401, "invalid_token"));
    assert!(r
        .header("www-authenticate")
        .unwrap()
        .starts_with("Bearer realm=\"oauth2-devices\", error=\"invalid_token\""));
    let r = s.request(&get("/api/me", &[("Authorization", "Bearer a b")]));
    assert_eq!((r.status, r.error().as_str()), (400, "invalid_request"));
    let r = s.request(&get("/api/sensors", &[("Authorization", &bearer)]));
    assert_eq!((r.status, r.error().as_str()), (403, "insufficient_scope"));
    assert!(r.header("www-authenticate").unwrap().ends_with("scope=\"sensors:read\""), "{r:?}");
    let r = s.request(&get("/api/me", &[("Authorization", &bearer), ("Authorization", &bearer)]));
    assert_eq!(r.status, 400);

    // Refresh (rotation).
    s.now = t0 + 100;
    let r = s.request(&post_form(
        "/oauth/token",
        &format!("grant_type=refresh_token&refresh_token={refresh}&client_id=tv-demo"),
    ));
    assert_eq!(r.status, 200, "{}", r.text());
    assert_no_store(&r);
    let j = r.json();
    let access2 = j["access_token"].as_str().unwrap().to_owned();
    let refresh2 = j["refresh_token"].as_str().unwrap().to_owned();
    assert_ne!(refresh2, refresh);

    // Introspection needs a confidential client (Basic or body).
    let printer = basic("printer-demo", "printer-secret");
    let r =
        s.request(&post_form_with("/oauth/introspect", &[("Authorization", &printer)], &format!("token={access2}")));
    assert_eq!(r.status, 200, "{}", r.text());
    assert_no_store(&r);
    let j = r.json();
    assert_eq!(j["active"], true);
    assert_eq!(j["client_id"], "tv-demo");
    assert_eq!(j["sub"], "1");
    assert_eq!(j["scope"], "profile email");
    assert_eq!(j["token_type"], "Bearer");
    let body = format!("token={refresh2}&client_id=printer-demo&client_secret=printer-secret");
    let r = s.request(&post_form("/oauth/introspect", &body));
    assert_eq!(r.json()["active"], true);
    let r = s.request(&post_form("/oauth/introspect", &format!("token={access2}&client_id=tv-demo")));
    assert_eq!((r.status, r.error().as_str()), (401, "invalid_client"));
    assert_eq!(r.header("www-authenticate"), Some("Basic realm=\"oauth2-devices\""));
    let wrong = basic("printer-demo", "wrong");
    let r = s.request(&post_form_with("/oauth/introspect", &[("Authorization", &wrong)], &format!("token={access2}")));
    assert_eq!((r.status, r.error().as_str()), (401, "invalid_client"));
    assert_eq!(r.header("www-authenticate"), Some("Basic realm=\"oauth2-devices\""));

    // Revocation (RFC 7009): 200 and an empty body; the family is gone.
    let r = s.request(&post_form(
        "/oauth/revoke",
        &format!("token={refresh2}&token_type_hint=refresh_token&client_id=tv-demo"),
    ));
    assert_eq!(r.status, 200);
    assert!(r.body.is_empty());
    assert_eq!(r.header("content-length"), Some("0"));
    let r =
        s.request(&post_form_with("/oauth/introspect", &[("Authorization", &printer)], &format!("token={access2}")));
    assert_eq!(r.json(), serde_json::json!({"active": false}));
    let r = s.request(&get("/api/me", &[("Authorization", &format!("Bearer {access2}"))]));
    assert_eq!((r.status, r.error().as_str()), (401, "invalid_token"));
    // Revoking garbage is still 200 (RFC 7009 §2.2).
    let r = s.request(&post_form("/oauth/revoke", "token=garbage&client_id=tv-demo"));
    assert_eq!(r.status, 200);

    // The access log saw every request, with paths but no queries.
    assert!(s.app.log.iter().any(|(m, p, st)| m == "GET" && p == "/activate" && *st == 200));
    assert!(s.app.log.iter().all(|(_, p, _)| !p.contains('?')));
}

#[test]
fn denial_and_entry_form() {
    let mut s = Server::new();
    let d = start(&mut s, "tv-demo", "sensors:read");
    // The bare page asks for the code.
    let r = s.request(&get("/activate", &[("Authorization", &alice())]));
    assert_eq!(r.status, 200);
    assert!(r.text().contains("<input id=\"user_code\" name=\"user_code\""));
    assert!(r.text().contains("id=\"continue\""));
    assert_eq!(r.message(), None);
    let r = page(&mut s, &d.user_code, &alice());
    let csrf = r.input_value("csrf").unwrap().to_owned();
    let r = decide(&mut s, &d.user_code, &csrf, "deny", &alice());
    assert_eq!((r.status, r.message()), (200, Some("Request denied")));
    let r = poll(&mut s, "tv-demo", &d.device_code);
    assert_eq!((r.status, r.error().as_str()), (400, "access_denied"));
    // An unknown action is refused.
    let d = start(&mut s, "tv-demo", "profile");
    let r = decide(&mut s, &d.user_code, &csrf, "maybe", &alice());
    assert_eq!(r.status, 400);
}

#[test]
fn page_messages_for_bad_codes() {
    let mut s = Server::new();
    let d = start(&mut s, "tv-demo", "profile");

    let r = page(&mut s, "BBBB-BBBB", &alice());
    assert_eq!((r.status, r.message()), (400, Some("Invalid code")));
    // Raw input is never echoed.
    let r = s.request(&get("/activate?user_code=%3Cscript%3Ex%3C%2Fscript%3E", &[("Authorization", &alice())]));
    assert_eq!(r.message(), Some("Invalid code"));
    assert!(!r.text().contains("<script>x"));
    let r = s.request(&get("/activate?user_code=%zz", &[("Authorization", &alice())]));
    assert_eq!((r.status, r.message()), (400, Some("Invalid code")));

    // Expired, on the page and for the device.
    s.now += 601;
    let r = page(&mut s, &d.user_code, &alice());
    assert_eq!((r.status, r.message()), (400, Some("Code expired")));
    let r = poll(&mut s, "tv-demo", &d.device_code);
    assert_eq!(r.error(), "expired_token");

    // Rate limiting: five wrong codes for free, then a graduated back-off (1 s, 2 s, ...), not a
    // lock-out: after the wait, alice's own right code is accepted.
    for _ in 0..5 {
        assert_eq!(page(&mut s, "CCCC-CCCC", &alice()).status, 400);
    }
    let own = start(&mut s, "tv-demo", "profile");
    let r = page(&mut s, &own.user_code, &alice());
    assert_eq!((r.status, r.message()), (429, Some("Too many attempts")));
    assert_eq!(r.header("retry-after"), Some("1"));
    s.now += 1;
    assert_eq!(page(&mut s, &own.user_code, &alice()).status, 200, "the back-off is short");
    assert_eq!(page(&mut s, "CCCC-CCCC", &alice()).status, 400);
    let r = page(&mut s, "CCCC-CCCC", &alice());
    assert_eq!((r.status, r.header("retry-after")), (429, Some("2")), "and grows");
    // Another user is not blocked by alice's budget.
    let d2 = start(&mut s, "tv-demo", "profile");
    let r = page(&mut s, &d2.user_code, &basic("mallory", "x"));
    assert_eq!(r.status, 200);
}

#[test]
fn everything_shown_is_escaped() {
    let mut s = Server::new();
    let d = start(&mut s, "evil", "profile");
    let r = page(&mut s, &d.user_code, &basic("mallory", "x"));
    assert_eq!(r.status, 200);
    let html = r.text();
    assert!(html.contains("<b id=\"client\">&lt;script&gt;alert(1)&lt;/script&gt; &amp; &quot;Co&quot;</b>"), "{html}");
    assert!(html.contains("<b id=\"user\">&lt;b&gt;mallory&lt;/b&gt;</b>"));
    assert!(!html.contains("<script>"));
}

#[test]
fn client_authentication_at_the_endpoints() {
    let mut s = Server::new();
    let printer = basic("printer-demo", "printer-secret");
    let r = s.request(&post_form_with("/oauth/device", &[("Authorization", &printer)], "scope=sensors%3Aread"));
    assert_eq!(r.status, 200, "{}", r.text());
    let r = s.request(&post_form("/oauth/device", "client_id=printer-demo&client_secret=printer-secret"));
    assert_eq!(r.status, 200);
    // A confidential client without its secret, an unknown client, a broken Basic header.
    for (headers, body) in [
        (vec![], "client_id=printer-demo"),
        (vec![], "client_id=nobody"),
        (vec![("Authorization", "Basic !!!")], "scope=profile"),
        (vec![], "scope=profile"),
    ] {
        let r = s.request(&post_form_with("/oauth/device", &headers, body));
        assert_eq!((r.status, r.error().as_str()), (401, "invalid_client"), "{body}");
        assert_eq!(r.header("www-authenticate"), Some("Basic realm=\"oauth2-devices\""));
    }
    // Two methods at once.
    let r = s.request(&post_form_with("/oauth/device", &[("Authorization", &printer)], "client_secret=printer-secret"));
    assert_eq!((r.status, r.error().as_str()), (400, "invalid_request"));
    // Unknown scope, unsupported grant.
    let r = s.request(&post_form("/oauth/device", "client_id=tv-demo&scope=admin"));
    assert_eq!((r.status, r.error().as_str()), (400, "invalid_scope"));
    let r = s.request(&post_form("/oauth/token", "client_id=tv-demo&grant_type=password"));
    assert_eq!((r.status, r.error().as_str()), (400, "unsupported_grant_type"));
    let r = poll(&mut s, "tv-demo", "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA");
    assert_eq!((r.status, r.error().as_str()), (400, "invalid_grant"));
}

#[test]
fn full_tables_are_503() {
    let mut s = Server::new();
    for _ in 0..16 {
        start(&mut s, "tv-demo", "profile");
    }
    let r = s.request(&post_form("/oauth/device", "client_id=tv-demo"));
    assert_eq!((r.status, r.error().as_str()), (503, "temporarily_unavailable"));
    // The earliest a slot frees up: these devices never polled, so when they count as abandoned.
    assert_eq!(r.header("retry-after"), Some("120"));
    assert_no_store(&r);
    assert!(r.keep_alive);
}

#[test]
fn application_routes() {
    let mut s = Server::new();
    let r = s.request(&request("POST", "/hello", &[], "abc"));
    assert_eq!((r.status, r.text()), (200, "hello 3"));
    let r = s.request(&get("/nowhere", &[]));
    assert_eq!((r.status, r.text()), (404, "nope"));
}

#[test]
fn pages_carry_the_configured_notice_and_hsts_only_when_asked() {
    let mut s = Server::new();
    let alice = basic("alice", "wonderland");
    let plain = s.request(&get("/activate", &[("Authorization", &alice)]));
    assert_eq!(plain.status, 200);
    assert!(plain.header("strict-transport-security").is_none(), "HSTS by default");
    assert!(!plain.text().contains("id=\"notice\""));

    s.cfg.notice = Some("This connection is <not> encrypted");
    s.cfg.hsts_max_age = Some(31_536_000);
    for path in ["/activate", "/devices"] {
        let r = s.request(&get(path, &[("Authorization", &alice)]));
        assert_eq!(r.status, 200, "{path}");
        assert_eq!(r.header("strict-transport-security"), Some("max-age=31536000"), "{path}");
        assert!(r.text().contains("<footer id=\"notice\" class=\"notice\" role=\"note\">This connection is &lt;not&gt; encrypted</footer>"), "{path}: {}", r.text());
    }
    // The JSON endpoints are not pages: no footer there.
    let r = s.request(&get("/.well-known/oauth-authorization-server", &[]));
    assert!(!r.text().contains("notice"));
}
