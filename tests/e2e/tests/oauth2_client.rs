//! The `oauth2` crate (v5), a real third-party client, runs the device flow against the host gateway
//! over loopback: success, denial, expiry, refresh, and the bearer-protected resource.

use std::time::Duration;

use oauth2::basic::BasicClient;
use oauth2::{
    ClientId, ClientSecret, DeviceAuthorizationUrl, DeviceCodeErrorResponseType, RequestTokenError, Scope,
    StandardDeviceAuthorizationResponse, TokenResponse, TokenUrl,
};
use oauth2_devices_e2e::{decide, Gateway};

type Client = oauth2::Client<
    oauth2::basic::BasicErrorResponse,
    oauth2::basic::BasicTokenResponse,
    oauth2::basic::BasicTokenIntrospectionResponse,
    oauth2::StandardRevocableToken,
    oauth2::basic::BasicRevocationErrorResponse,
    oauth2::EndpointNotSet,
    oauth2::EndpointSet,
    oauth2::EndpointNotSet,
    oauth2::EndpointNotSet,
    oauth2::EndpointSet,
>;

fn client(gw: &Gateway, id: &str, secret: Option<&str>) -> Client {
    let c = BasicClient::new(ClientId::new(id.into()))
        .set_device_authorization_url(DeviceAuthorizationUrl::new(format!("{}/oauth/device", gw.base)).unwrap())
        .set_token_uri(TokenUrl::new(format!("{}/oauth/token", gw.base)).unwrap());
    match secret {
        Some(s) => c.set_client_secret(ClientSecret::new(s.into())),
        None => c,
    }
}

fn http_client() -> reqwest::Client {
    reqwest::ClientBuilder::new().redirect(reqwest::redirect::Policy::none()).build().unwrap()
}

async fn start(c: &Client, http: &reqwest::Client, scope: &str) -> StandardDeviceAuthorizationResponse {
    c.exchange_device_code()
        .add_scope(Scope::new(scope.into()))
        .request_async(http)
        .await
        .expect("device authorization")
}

/// Approves or denies in the background after the device has started polling.
fn user_decides_later(gw: &Gateway, details: &StandardDeviceAuthorizationResponse, action: &'static str) {
    let addr = gw.addr.clone();
    let code = details.user_code().secret().clone();
    std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(1500));
        let r = decide(&addr, &code, action);
        assert_eq!(r.status, 200, "{}", r.body);
    });
}

async fn get_me(gw: &Gateway, http: &reqwest::Client, token: &str) -> (u16, String) {
    let r = http.get(format!("{}/api/me", gw.base)).bearer_auth(token).send().await.unwrap();
    (r.status().as_u16(), r.text().await.unwrap())
}

#[tokio::test]
async fn public_client_success_refresh_and_protected_resource() {
    let gw = Gateway::start(&["--interval", "1"]);
    let http = http_client();
    let c = client(&gw, "tv-demo", None);
    let details = start(&c, &http, "profile").await;
    assert_eq!(details.interval(), Duration::from_secs(1));
    assert!(details.verification_uri_complete().is_some());
    user_decides_later(&gw, &details, "approve");
    let token = c
        .exchange_device_access_token(&details)
        .request_async(&http, tokio::time::sleep, Some(Duration::from_secs(30)))
        .await
        .expect("token after approval");
    assert_eq!(token.token_type(), &oauth2::basic::BasicTokenType::Bearer);
    assert_eq!(token.scopes().map(|s| s[0].to_string()), Some("profile".to_string()));
    let (status, body) = get_me(&gw, &http, token.access_token().secret()).await;
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("alice"), "{body}");

    // Without a token, and with a mangled one.
    let r = http.get(format!("{}/api/me", gw.base)).send().await.unwrap();
    assert_eq!(r.status(), 401);
    assert!(r.headers()["www-authenticate"].to_str().unwrap().starts_with("Bearer"));
    let (status, _) = get_me(&gw, &http, "bogus").await;
    assert_eq!(status, 401);

    // Refresh: a new access token that works; the old refresh token is then a replay.
    let refresh = token.refresh_token().expect("refresh token").clone();
    let t2 = c.exchange_refresh_token(&refresh).request_async(&http).await.expect("refresh");
    let (status, _) = get_me(&gw, &http, t2.access_token().secret()).await;
    assert_eq!(status, 200);
    let replay = c.exchange_refresh_token(&refresh).request_async(&http).await.unwrap_err();
    match replay {
        RequestTokenError::ServerResponse(e) => assert_eq!(e.error().to_string(), "invalid_grant"),
        other => panic!("expected invalid_grant, got {other:?}"),
    }
    // The replay revoked the family: the rotated access token is dead too.
    let (status, _) = get_me(&gw, &http, t2.access_token().secret()).await;
    assert_eq!(status, 401);
}

#[tokio::test]
async fn confidential_client_with_basic_auth() {
    let gw = Gateway::start(&["--interval", "1"]);
    let http = http_client();
    let c = client(&gw, "printer-demo", Some("printer-secret"));
    let details = start(&c, &http, "profile").await;
    user_decides_later(&gw, &details, "approve");
    let token = c
        .exchange_device_access_token(&details)
        .request_async(&http, tokio::time::sleep, Some(Duration::from_secs(30)))
        .await
        .expect("token");
    let (status, _) = get_me(&gw, &http, token.access_token().secret()).await;
    assert_eq!(status, 200);
    // A wrong secret is invalid_client.
    let bad = client(&gw, "printer-demo", Some("wrong"));
    let err = bad
        .exchange_device_code()
        .request_async::<_, oauth2::EmptyExtraDeviceAuthorizationFields>(&http)
        .await
        .unwrap_err();
    match err {
        RequestTokenError::ServerResponse(e) => assert_eq!(e.error().to_string(), "invalid_client"),
        other => panic!("expected invalid_client, got {other:?}"),
    }
}

#[tokio::test]
async fn denial_is_access_denied() {
    let gw = Gateway::start(&["--interval", "1"]);
    let http = http_client();
    let c = client(&gw, "tv-demo", None);
    let details = start(&c, &http, "profile").await;
    user_decides_later(&gw, &details, "deny");
    let err = c
        .exchange_device_access_token(&details)
        .request_async(&http, tokio::time::sleep, Some(Duration::from_secs(30)))
        .await
        .unwrap_err();
    match err {
        RequestTokenError::ServerResponse(e) => assert_eq!(e.error(), &DeviceCodeErrorResponseType::AccessDenied),
        other => panic!("expected access_denied, got {other:?}"),
    }
}

#[tokio::test]
async fn expiry_is_expired_token() {
    let gw = Gateway::start(&["--interval", "1", "--device-code-lifetime", "3"]);
    let http = http_client();
    let c = client(&gw, "tv-demo", None);
    let details = start(&c, &http, "profile").await;
    assert_eq!(details.expires_in(), Duration::from_secs(3));
    let err = c
        .exchange_device_access_token(&details)
        .request_async(&http, tokio::time::sleep, Some(Duration::from_secs(30)))
        .await
        .unwrap_err();
    match err {
        RequestTokenError::ServerResponse(e) => assert_eq!(e.error(), &DeviceCodeErrorResponseType::ExpiredToken),
        // The client may stop by itself once `expires_in` has passed.
        RequestTokenError::Other(msg) => {
            assert!(msg.to_lowercase().contains("expire") || msg.contains("timed out"), "{msg}")
        }
        other => panic!("expected expired_token, got {other:?}"),
    }
}
