//! The `oauth2` crate (v5), a real third-party client, runs the device flow against the host gateway
//! over loopback: success, denial, expiry, refresh, and the bearer-protected resource.

use std::future::Future;
use std::pin::Pin;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use oauth2::basic::BasicClient;
use oauth2::{
    AsyncHttpClient, ClientId, ClientSecret, DeviceAuthorizationUrl, DeviceCodeErrorResponse,
    DeviceCodeErrorResponseType, HttpClientError, HttpRequest, HttpResponse, RequestTokenError, Scope,
    StandardDeviceAuthorizationResponse, TokenResponse, TokenUrl,
};
use oauth2_devices_e2e::{decide, http as http_raw, Gateway};
use tokio::sync::Notify;

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

/// The client's polling budget: `request_async`'s timeout, after which the `oauth2` crate stops by
/// itself and reports `expired_token` as if the server had said so.
const CLIENT_TIMEOUT: Duration = Duration::from_secs(30);

async fn start(c: &Client, http: &reqwest::Client, scope: &str) -> StandardDeviceAuthorizationResponse {
    c.exchange_device_code()
        .add_scope(Scope::new(scope.into()))
        .request_async(http)
        .await
        .expect("device authorization")
}

/// The `oauth2` client's HTTP client: reqwest, keeping every answer it hands to the client, so a test
/// can tell what the server said from what the client made up; it signals the first
/// `authorization_pending`, when the device is known to be polling.
struct Recorder {
    http: reqwest::Client,
    answers: Mutex<Vec<(u16, serde_json::Value)>>,
    polling: Notify,
}

impl Recorder {
    fn new() -> Self {
        Self { http: http_client(), answers: Mutex::new(Vec::new()), polling: Notify::new() }
    }

    /// The token endpoint's answers so far: status and JSON body.
    fn answers(&self) -> Vec<(u16, serde_json::Value)> {
        self.answers.lock().unwrap().clone()
    }

    /// The `error` of each answer (`""` for a success).
    fn errors(&self) -> Vec<String> {
        self.answers().iter().map(|(_, v)| v["error"].as_str().unwrap_or("").to_string()).collect()
    }
}

impl<'c> AsyncHttpClient<'c> for Recorder {
    type Error = HttpClientError<reqwest::Error>;
    type Future = Pin<Box<dyn Future<Output = Result<HttpResponse, Self::Error>> + 'c>>;

    fn call(&'c self, request: HttpRequest) -> Self::Future {
        Box::pin(async move {
            let response = self.http.call(request).await?;
            let body: serde_json::Value = serde_json::from_slice(response.body()).unwrap_or_default();
            if body["error"] == "authorization_pending" {
                self.polling.notify_one();
            }
            self.answers.lock().unwrap().push((response.status().as_u16(), body));
            Ok(response)
        })
    }
}

type PollError = RequestTokenError<HttpClientError<reqwest::Error>, DeviceCodeErrorResponse>;

/// The device polls with the `oauth2` client while the user, once the device has been told
/// `authorization_pending`, approves or denies on the verification page. Both run in this task; the
/// user's wait is bounded by the client's own.
async fn poll_while_the_user_decides(
    c: &Client,
    gw: &Gateway,
    details: &StandardDeviceAuthorizationResponse,
    action: &'static str,
    rec: &Recorder,
) -> Result<oauth2::basic::BasicTokenResponse, PollError> {
    let device = c.exchange_device_access_token(details).request_async(rec, tokio::time::sleep, Some(CLIENT_TIMEOUT));
    let user = async {
        tokio::time::timeout(CLIENT_TIMEOUT, rec.polling.notified())
            .await
            .unwrap_or_else(|_| panic!("the device was never told authorization_pending: {:?}", rec.answers()));
        let (addr, code) = (gw.addr.clone(), details.user_code().secret().clone());
        let r = tokio::task::spawn_blocking(move || decide(&addr, &code, action)).await.unwrap();
        assert_eq!(r.status, 200, "{}", r.text());
    };
    let (result, ()) = tokio::join!(device, user);
    // The user decided while the device was polling: pending first, then the answer.
    let errors = rec.errors();
    assert_eq!(errors.first().map(String::as_str), Some("authorization_pending"), "{errors:?}");
    result
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
    let rec = Recorder::new();
    let token = poll_while_the_user_decides(&c, &gw, &details, "approve", &rec).await.expect("token after approval");
    assert_eq!(rec.answers().last().map(|(status, _)| *status), Some(200));
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
    let rec = Recorder::new();
    let token = poll_while_the_user_decides(&c, &gw, &details, "approve", &rec).await.expect("token");
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
    let rec = Recorder::new();
    let err = poll_while_the_user_decides(&c, &gw, &details, "deny", &rec).await.unwrap_err();
    match err {
        RequestTokenError::ServerResponse(e) => assert_eq!(e.error(), &DeviceCodeErrorResponseType::AccessDenied),
        other => panic!("expected access_denied, got {other:?}"),
    }
    // Said by the server, not made up by the client.
    let (status, body) = rec.answers().last().cloned().expect("an answer");
    assert_eq!((status, body["error"].as_str()), (400, Some("access_denied")), "{body}");
}

/// The server itself says `expired_token` once the code's lifetime is over: the `oauth2` client would
/// report the same error after `CLIENT_TIMEOUT` of its own, whether the server said pending for ever or
/// was not there at all, so the test reads what the server answered and how soon.
#[tokio::test]
async fn expiry_is_expired_token() {
    const LIFETIME: u64 = 3;
    let gw = Gateway::start(&["--interval", "1", "--device-code-lifetime", &LIFETIME.to_string()]);
    let http = http_client();
    let c = client(&gw, "tv-demo", None);
    let issued = Instant::now();
    let details = start(&c, &http, "profile").await;
    assert_eq!(details.expires_in(), Duration::from_secs(LIFETIME));
    // Half the client's budget, ten lifetimes: far more than the server needs, far less than the time
    // after which the client would give up and make the error up itself.
    let bound = CLIENT_TIMEOUT / 2;
    assert!(bound >= Duration::from_secs(5 * LIFETIME));
    let rec = Recorder::new();
    let polling =
        c.exchange_device_access_token(&details).request_async(&rec, tokio::time::sleep, Some(CLIENT_TIMEOUT));
    let err = tokio::time::timeout(bound, polling)
        .await
        .unwrap_or_else(|_| panic!("no answer within {bound:?}; the server said {:?}", rec.answers()))
        .unwrap_err();
    let elapsed = issued.elapsed();
    match err {
        RequestTokenError::ServerResponse(e) => assert_eq!(e.error(), &DeviceCodeErrorResponseType::ExpiredToken),
        other => panic!("expected expired_token, got {other:?}"),
    }
    // The last answer is the server's own expired_token, after pending ones: the code was live before.
    let answers = rec.answers();
    let (status, body) = answers.last().cloned().expect("the client polled");
    assert_eq!((status, body["error"].as_str()), (400, Some("expired_token")), "{answers:?}");
    let errors = rec.errors();
    assert!(errors[..errors.len() - 1].iter().all(|e| e == "authorization_pending"), "{errors:?}");
    assert!(errors.len() >= 2, "{errors:?}");
    // Not before the lifetime (the server counts whole seconds), and long before the client's timeout.
    assert!(elapsed >= Duration::from_secs(LIFETIME - 1), "expired after {elapsed:?}");
    assert!(elapsed < bound, "expired after {elapsed:?}");
    // And the server keeps saying so to a poll of its own.
    let body = format!(
        "client_id=tv-demo&grant_type=urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Adevice_code&device_code={}",
        details.device_code().secret()
    );
    let r = http_raw(&gw.addr, "POST", "/oauth/token", &[], &body);
    assert_eq!((r.status, r.json()["error"].as_str()), (400, Some("expired_token")), "{}", r.text());
}
