//! OIDC login against an in-process issuer (axum on 127.0.0.1:0 serving discovery, JWKS,
//! authorize, token and user info; ID tokens signed with jsonwebtoken): the full flow, a key
//! rotation at the issuer, an issuer outage through a FaultProxy, bad state and nonce, config
//! validation and reload of providers.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use base64::Engine as _;
use jsonwebtoken::jwk::{Jwk, JwkSet};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use modular_auth::Auth;
use modular_core::health::{HealthAggregator, HealthReport, HealthStatus};
use modular_core::{Application, ReloadStatus};
use modular_testkit::FaultProxy;
use serde_json::{Value, json};
use sha2::Digest as _;
use support::*;

const CLIENT_ID: &str = "modular-app";
const CLIENT_SECRET: &str = "oidc-client-secret-never-echoed-0123";
const ROTATED_SECRET: &str = "oidc-rotated-client-secret-4567";

struct SigningKey {
    kid: String,
    alg: Algorithm,
    key: EncodingKey,
}

fn signing_key(kid: &str, alg: Algorithm, pem: &str) -> (SigningKey, Jwk) {
    let bytes = std::fs::read(fixture(pem)).unwrap();
    let key = match alg {
        Algorithm::ES256 => EncodingKey::from_ec_pem(&bytes).unwrap(),
        _ => EncodingKey::from_rsa_pem(&bytes).unwrap(),
    };
    let mut jwk = Jwk::from_encoding_key(&key, alg).unwrap();
    jwk.common.key_id = Some(kid.to_owned());
    (
        SigningKey {
            kid: kid.to_owned(),
            alg,
            key,
        },
        jwk,
    )
}

struct Code {
    nonce: String,
    challenge: String,
    redirect_uri: String,
}

struct IssuerState {
    issuer: String,
    jwks_uri: String,
    signing: Mutex<SigningKey>,
    published: Mutex<Vec<Jwk>>,
    codes: Mutex<HashMap<String, Code>>,
    secret: Mutex<String>,
    wrong_nonce: AtomicBool,
    /// Merged into the ID token's claims.
    patch: Mutex<Value>,
    jwks_fetches: AtomicUsize,
    discovery_fetches: AtomicUsize,
    /// The JWKS path discovery names (`/jwks`); the other path answers 404.
    jwks_path: Mutex<String>,
    /// How the client authenticated at the last code exchange (`client_secret_basic` or
    /// `client_secret_post`).
    client_auth: Mutex<String>,
    /// The client's public keys, as registered at a real provider for `private_key_jwt`.
    client_jwks: Mutex<Vec<Jwk>>,
    /// Every client assertion `jti` seen (each must be fresh).
    assertion_ids: Mutex<Vec<String>>,
}

/// The in-process issuer; its JWKS is served through `proxy` (cut it for an outage).
struct Issuer {
    state: Arc<IssuerState>,
    proxy: FaultProxy,
    _server: tokio::task::JoinHandle<()>,
}

impl Issuer {
    async fn start() -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let proxy = FaultProxy::start(addr).await.unwrap();
        let (key, jwk) = signing_key("k1", Algorithm::ES256, "ec.pem");
        let state = Arc::new(IssuerState {
            issuer: format!("http://{addr}"),
            jwks_uri: format!("http://{}", proxy.addr()),
            signing: Mutex::new(key),
            published: Mutex::new(vec![jwk]),
            codes: Mutex::new(HashMap::new()),
            secret: Mutex::new(CLIENT_SECRET.to_owned()),
            wrong_nonce: AtomicBool::new(false),
            patch: Mutex::new(json!({})),
            jwks_fetches: AtomicUsize::new(0),
            discovery_fetches: AtomicUsize::new(0),
            jwks_path: Mutex::new("/jwks".to_owned()),
            client_auth: Mutex::new(String::new()),
            client_jwks: Mutex::new(Vec::new()),
            assertion_ids: Mutex::new(Vec::new()),
        });
        let app = axum::Router::new()
            .route(
                "/.well-known/openid-configuration",
                axum::routing::get(discovery),
            )
            .route("/jwks", axum::routing::get(jwks))
            .route("/jwks-moved", axum::routing::get(jwks))
            .route("/authorize", axum::routing::get(authorize))
            .route("/token", axum::routing::post(token))
            .route("/userinfo", axum::routing::get(userinfo))
            .with_state(Arc::clone(&state));
        let server = tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        });
        Self {
            state,
            proxy,
            _server: server,
        }
    }

    /// Rotates to an RS256 key `k2`; the JWKS publishes only `k2` afterwards.
    fn rotate(&self) {
        let (key, jwk) = signing_key("k2", Algorithm::RS256, "rsa.pem");
        *self.state.signing.lock().unwrap() = key;
        *self.state.published.lock().unwrap() = vec![jwk];
    }

    fn fetches(&self) -> usize {
        self.state.jwks_fetches.load(Ordering::SeqCst)
    }

    fn discoveries(&self) -> usize {
        self.state.discovery_fetches.load(Ordering::SeqCst)
    }

    fn client_auth(&self) -> String {
        self.state.client_auth.lock().unwrap().clone()
    }
}

async fn discovery(State(s): State<Arc<IssuerState>>) -> Response {
    s.discovery_fetches.fetch_add(1, Ordering::SeqCst);
    let jwks_uri = format!("{}{}", s.jwks_uri, s.jwks_path.lock().unwrap());
    axum::Json(json!({
        "issuer": s.issuer,
        "authorization_endpoint": format!("{}/authorize", s.issuer),
        "token_endpoint": format!("{}/token", s.issuer),
        "userinfo_endpoint": format!("{}/userinfo", s.issuer),
        "jwks_uri": jwks_uri,
        "response_types_supported": ["code"],
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": ["ES256", "RS256"],
    }))
    .into_response()
}

async fn jwks(State(s): State<Arc<IssuerState>>, uri: axum::http::Uri) -> Response {
    if uri.path() != *s.jwks_path.lock().unwrap() {
        return StatusCode::NOT_FOUND.into_response();
    }
    s.jwks_fetches.fetch_add(1, Ordering::SeqCst);
    axum::Json(JwkSet {
        keys: s.published.lock().unwrap().clone(),
    })
    .into_response()
}

async fn authorize(
    State(s): State<Arc<IssuerState>>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    assert_eq!(q["response_type"], "code");
    assert_eq!(q["client_id"], CLIENT_ID);
    assert_eq!(q["code_challenge_method"], "S256");
    assert!(q["scope"].split(' ').any(|s| s == "openid"), "{q:?}");
    let code = uuid::Uuid::new_v4().simple().to_string();
    s.codes.lock().unwrap().insert(
        code.clone(),
        Code {
            nonce: q["nonce"].clone(),
            challenge: q["code_challenge"].clone(),
            redirect_uri: q["redirect_uri"].clone(),
        },
    );
    Redirect::to(&format!(
        "{}?code={code}&state={}",
        q["redirect_uri"], q["state"]
    ))
    .into_response()
}

fn form_pairs(text: &str) -> HashMap<String, String> {
    reqwest::Url::parse(&format!("http://form/?{text}"))
        .unwrap()
        .query_pairs()
        .into_owned()
        .collect()
}

/// The client's credentials as the token endpoint sees them: HTTP Basic (RFC 6749 §2.3.1:
/// each part form-encoded) or the form body; and which of the two.
fn client_credentials(
    headers: &HeaderMap,
    form: &HashMap<String, String>,
) -> (Option<String>, Option<String>, &'static str) {
    if let Some(basic) = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Basic "))
    {
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(basic)
            .unwrap();
        let decoded = String::from_utf8(decoded).unwrap();
        let (id, secret) = decoded.split_once(':').unwrap();
        let decode = |part: &str| {
            form_pairs(&format!("v={part}"))
                .remove("v")
                .unwrap_or_default()
        };
        assert!(
            !form.contains_key("client_secret"),
            "one authentication method only"
        );
        return (
            Some(decode(id)),
            Some(decode(secret)),
            "client_secret_basic",
        );
    }
    let method = if form.contains_key("client_secret") {
        "client_secret_post"
    } else {
        "none"
    };
    (
        form.get("client_id").cloned(),
        form.get("client_secret").cloned(),
        method,
    )
}

/// Verifies a client assertion (RFC 7523) the way a provider does: HS256 with the client
/// secret, or the registered public key by `kid`; `iss` = `sub` = the client, `aud` = this
/// token endpoint, `exp`, a fresh `jti`. Answers the method.
fn verify_assertion(s: &IssuerState, f: &HashMap<String, String>) -> Option<&'static str> {
    assert_eq!(
        f.get("client_assertion_type").map(String::as_str),
        Some("urn:ietf:params:oauth:client-assertion-type:jwt-bearer")
    );
    let assertion = f.get("client_assertion")?;
    let header = jsonwebtoken::decode_header(assertion).ok()?;
    let (key, method) = if header.alg == Algorithm::HS256 {
        let secret = s.secret.lock().unwrap().clone();
        (
            jsonwebtoken::DecodingKey::from_secret(secret.as_bytes()),
            "client_secret_jwt",
        )
    } else {
        let jwks = s.client_jwks.lock().unwrap();
        let jwk = jwks.iter().find(|k| k.common.key_id == header.kid)?;
        (
            jsonwebtoken::DecodingKey::from_jwk(jwk).ok()?,
            "private_key_jwt",
        )
    };
    let mut validation = jsonwebtoken::Validation::new(header.alg);
    validation.set_audience(&[format!("{}/token", s.issuer)]);
    validation.set_issuer(&[CLIENT_ID]);
    validation.sub = Some(CLIENT_ID.to_owned());
    validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
    let claims = jsonwebtoken::decode::<Value>(assertion, &key, &validation)
        .ok()?
        .claims;
    let jti = claims["jti"].as_str()?.to_owned();
    let mut seen = s.assertion_ids.lock().unwrap();
    if seen.contains(&jti) {
        return None;
    }
    seen.push(jti);
    Some(method)
}

async fn token(State(s): State<Arc<IssuerState>>, headers: HeaderMap, body: String) -> Response {
    let f = form_pairs(&body);
    let bad = |error: &str| {
        (
            StatusCode::BAD_REQUEST,
            axum::Json(json!({ "error": error })),
        )
            .into_response()
    };
    let authenticated = if f.contains_key("client_assertion") {
        let method = verify_assertion(&s, &f);
        *s.client_auth.lock().unwrap() = method.unwrap_or("bad assertion").to_owned();
        method.is_some() && f.get("client_id").map(String::as_str) == Some(CLIENT_ID)
    } else {
        let (client_id, client_secret, method) = client_credentials(&headers, &f);
        *s.client_auth.lock().unwrap() = method.to_owned();
        // An empty issuer secret: a public client, which must send none.
        client_id.as_deref() == Some(CLIENT_ID)
            && client_secret.as_deref().unwrap_or("") == *s.secret.lock().unwrap()
    };
    if !authenticated {
        return (
            StatusCode::UNAUTHORIZED,
            axum::Json(json!({ "error": "invalid_client" })),
        )
            .into_response();
    }
    let Some(code) = f
        .get("code")
        .and_then(|c| s.codes.lock().unwrap().remove(c))
    else {
        return bad("invalid_grant");
    };
    let verifier = f.get("code_verifier").cloned().unwrap_or_default();
    let challenge = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .encode(sha2::Sha256::digest(verifier.as_bytes()));
    if challenge != code.challenge || f.get("redirect_uri") != Some(&code.redirect_uri) {
        return bad("invalid_grant");
    }
    let nonce = if s.wrong_nonce.load(Ordering::SeqCst) {
        "not-the-login-nonce".to_owned()
    } else {
        code.nonce
    };
    let now = jsonwebtoken::get_current_timestamp();
    let mut claims = json!({
        "iss": s.issuer, "sub": "alice", "aud": CLIENT_ID,
        "iat": now, "exp": now + 300, "nonce": nonce, "email": "alice@example.test",
    });
    merge(&mut claims, s.patch.lock().unwrap().clone());
    let signing = s.signing.lock().unwrap();
    let mut header = Header::new(signing.alg);
    header.kid = Some(signing.kid.clone());
    let id_token = jsonwebtoken::encode(&header, &claims, &signing.key).unwrap();
    axum::Json(json!({
        "access_token": "access-alice", "token_type": "Bearer", "expires_in": 300,
        "id_token": id_token,
    }))
    .into_response()
}

async fn userinfo(headers: HeaderMap) -> Response {
    if headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        != Some("Bearer access-alice")
    {
        return StatusCode::UNAUTHORIZED.into_response();
    }
    axum::Json(json!({
        "sub": "alice", "email": "alice@example.test", "name": "Alice",
        "org": { "department": "sre" },
    }))
    .into_response()
}

/// The app side: the module's OIDC routes served on their own listener.
struct Site {
    base: String,
    client: reqwest::Client,
}

async fn site_listener() -> (tokio::net::TcpListener, SocketAddr) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    (listener, addr)
}

fn serve(listener: tokio::net::TcpListener, auth: &Auth) -> Site {
    let base = format!("http://{}", listener.local_addr().unwrap());
    let router = auth.oidc_router();
    tokio::spawn(async move {
        axum::serve(listener, router).await.unwrap();
    });
    Site {
        base,
        client: reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap(),
    }
}

fn provider_json(issuer: &Issuer, site: SocketAddr, secret: &str) -> Value {
    json!({
        "issuer": issuer.state.issuer,
        "client_id": CLIENT_ID,
        "client_secret": secret,
        "redirect_url": format!("http://{site}/auth/oidc/test/callback"),
        "scopes": ["email"],
        "jwks_max_age": "0s",
    })
}

fn oidc_section(issuer: &Issuer, site: SocketAddr) -> Value {
    section(json!({ "auth": {
        "sessions": { "cookie": { "secure": false } },
        "oidc": { "providers": { "test": provider_json(issuer, site, CLIENT_SECRET) } },
    } }))
}

/// The browser's two steps: the login redirect (303 + state cookie) and the provider's
/// authorize redirect back; answers the callback URL and the state cookie.
async fn authorize_at(site: &Site, provider: &str) -> (String, String) {
    let login = site
        .client
        .get(format!("{}/auth/oidc/{provider}/login", site.base))
        .send()
        .await
        .unwrap();
    assert_eq!(login.status(), StatusCode::SEE_OTHER);
    let cookie = login.headers()[header::SET_COOKIE]
        .to_str()
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_owned();
    assert!(
        cookie.starts_with("modular_session_oidc_state="),
        "{cookie}"
    );
    let authorize = login.headers()[header::LOCATION]
        .to_str()
        .unwrap()
        .to_owned();
    let back = site.client.get(&authorize).send().await.unwrap();
    assert_eq!(back.status(), StatusCode::SEE_OTHER, "{authorize}");
    let callback = back.headers()[header::LOCATION]
        .to_str()
        .unwrap()
        .to_owned();
    (callback, cookie)
}

async fn callback(site: &Site, url: &str, cookie: &str) -> (StatusCode, Value, Vec<String>) {
    let response = site
        .client
        .get(url)
        .header(header::COOKIE, cookie)
        .send()
        .await
        .unwrap();
    let status = response.status();
    let cookies = response
        .headers()
        .get_all(header::SET_COOKIE)
        .iter()
        .map(|v| v.to_str().unwrap().to_owned())
        .collect();
    (status, response.json().await.unwrap(), cookies)
}

async fn full_login(site: &Site) -> (StatusCode, Value, Vec<String>) {
    let (url, cookie) = authorize_at(site, "test").await;
    callback(site, &url, &cookie).await
}

async fn report(app: &Application, component: &str) -> HealthReport {
    let health = app.services().require::<HealthAggregator>().unwrap();
    health
        .force_refresh()
        .await
        .reports
        .iter()
        .find(|r| r.module == "auth" && r.component == component)
        .cloned()
        .unwrap_or_else(|| panic!("no auth component {component}"))
}

async fn setup() -> (Issuer, Application, Auth, Site) {
    modular_testkit::install_crypto_provider();
    let issuer = Issuer::start().await;
    let (listener, addr) = site_listener().await;
    let (app, auth) = started(oidc_section(&issuer, addr)).await;
    let site = serve(listener, &auth);
    (issuer, app, auth, site)
}

#[tokio::test]
async fn the_full_login_flow_creates_a_session_from_a_verified_id_token() {
    let (_issuer, mut app, auth, site) = setup().await;
    assert_eq!(auth.oidc_providers(), vec!["test".to_owned()]);
    let mut events = subscribe(&app);
    let (status, body, cookies) = full_login(&site).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["subject"], "test:alice");
    assert_eq!(body["claims"]["email"], "alice@example.test");
    assert_eq!(body["userinfo"]["name"], "Alice");
    let session_cookie = cookies
        .iter()
        .find(|c| c.starts_with("modular_session="))
        .expect("a session cookie");
    let id = session_cookie
        .trim_start_matches("modular_session=")
        .split(';')
        .next()
        .unwrap();
    let session = auth.session(id).await.unwrap().expect("the session exists");
    assert_eq!(session.subject, "test:alice");
    // The state cookie is cleared.
    assert!(
        cookies
            .iter()
            .any(|c| c.starts_with("modular_session_oidc_state=;") && c.contains("Max-Age=0")),
        "{cookies:?}"
    );
    let event = next_event(&mut events, "com.modular.auth.login.succeeded").await;
    assert_eq!(
        event,
        json!({ "account": "test:alice", "method": "oidc", "provider": "test" })
    );
    let health = report(&app, "oidc.test").await;
    assert_eq!(health.status, HealthStatus::Healthy, "{health:?}");
    app.stop().await.unwrap();
}

#[tokio::test]
async fn an_unknown_or_reused_or_foreign_state_is_rejected() {
    let (_issuer, mut app, _auth, site) = setup().await;
    // A state never issued.
    let (url, cookie) = authorize_at(&site, "test").await;
    let forged = url.split("&state=").next().unwrap().to_owned() + "&state=forged";
    let (status, body, _) = callback(&site, &forged, "modular_session_oidc_state=forged").await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert!(body["error"].as_str().unwrap().contains("state"), "{body}");
    // The right state without this browser's cookie (a callback replayed elsewhere).
    let (status, body, _) = callback(&site, &url, "other=1").await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    // The real one works once ...
    let (status, body, _) = callback(&site, &url, &cookie).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    // ... and never again.
    let (status, body, _) = callback(&site, &url, &cookie).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert!(
        body["error"].as_str().unwrap().contains("already used"),
        "{body}"
    );
    app.stop().await.unwrap();
}

#[tokio::test]
async fn an_id_token_with_another_nonce_is_rejected() {
    let (issuer, mut app, _auth, site) = setup().await;
    issuer.state.wrong_nonce.store(true, Ordering::SeqCst);
    let (status, body, cookies) = full_login(&site).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(
        body["error"],
        "the ID token's nonce does not match the login"
    );
    assert!(!cookies.iter().any(|c| c.starts_with("modular_session=")));
    app.stop().await.unwrap();
}

#[tokio::test]
async fn id_tokens_with_another_audience_or_issuer_or_expired_are_rejected() {
    let (issuer, mut app, _auth, site) = setup().await;
    let now = jsonwebtoken::get_current_timestamp();
    for (patch, expected) in [
        (json!({ "aud": "someone-else" }), "InvalidAudience"),
        (json!({ "iss": "http://evil.test" }), "InvalidIssuer"),
        (json!({ "exp": now - 3600 }), "ExpiredSignature"),
    ] {
        *issuer.state.patch.lock().unwrap() = patch.clone();
        let (status, body, cookies) = full_login(&site).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{patch}: {body}");
        let error = body["error"].as_str().unwrap();
        assert!(
            error.starts_with("the ID token is invalid"),
            "{patch}: {error}"
        );
        assert!(error.contains(expected), "{patch}: {error}");
        assert!(!cookies.iter().any(|c| c.starts_with("modular_session=")));
    }
    *issuer.state.patch.lock().unwrap() = json!({});
    assert_eq!(full_login(&site).await.0, StatusCode::OK);
    app.stop().await.unwrap();
}

#[tokio::test]
async fn a_provider_error_and_an_unknown_provider_are_refused() {
    let (_issuer, mut app, _auth, site) = setup().await;
    let r = site
        .client
        .get(format!("{}/auth/oidc/nope/login", site.base))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    let (status, body, _) = callback(
        &site,
        &format!(
            "{}/auth/oidc/test/callback?error=access_denied&state=x",
            site.base
        ),
        "",
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(body["error"].as_str().unwrap().contains("access_denied"));
    app.stop().await.unwrap();
}

#[tokio::test]
async fn a_key_rotation_at_the_issuer_refreshes_the_jwks_on_the_unknown_kid() {
    let (issuer, mut app, _auth, site) = setup().await;
    let (status, body, _) = full_login(&site).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let fetches = issuer.fetches();
    // A second login with the same key uses the cache.
    assert_eq!(full_login(&site).await.0, StatusCode::OK);
    assert_eq!(issuer.fetches(), fetches, "the cached JWKS was used");
    issuer.rotate();
    let (status, body, _) = full_login(&site).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(issuer.fetches(), fetches + 1, "one refresh for the new kid");
    let health = report(&app, "oidc.test").await;
    assert_eq!(health.status, HealthStatus::Healthy, "{health:?}");
    assert_eq!(health.details["kids"], json!(["k2"]));
    app.stop().await.unwrap();
}

#[tokio::test]
async fn an_issuer_outage_degrades_health_and_logins_with_cached_keys_still_verify() {
    let (issuer, mut app, _auth, site) = setup().await;
    assert_eq!(full_login(&site).await.0, StatusCode::OK);
    assert_eq!(
        report(&app, "oidc.test").await.status,
        HealthStatus::Healthy
    );

    issuer.proxy.cut();
    let health = report(&app, "oidc.test").await;
    assert_eq!(health.status, HealthStatus::Degraded, "{health:?}");
    assert!(
        health.message.contains("cached keys in use"),
        "{}",
        health.message
    );
    assert!(!health.message.contains(CLIENT_SECRET));
    // The ID token's kid is cached: the login verifies without the JWKS endpoint.
    let (status, body, _) = full_login(&site).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    // A rotated key cannot be fetched while the JWKS is cut: refused, not accepted.
    issuer.rotate();
    let (status, body, _) = full_login(&site).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert!(body["error"].as_str().unwrap().contains("kid"), "{body}");

    issuer.proxy.restore();
    let health = report(&app, "oidc.test").await;
    assert_eq!(health.status, HealthStatus::Healthy, "{health:?}");
    assert_eq!(full_login(&site).await.0, StatusCode::OK);
    app.stop().await.unwrap();
}

#[tokio::test]
async fn the_health_check_refreshes_the_jwks_only_when_older_than_jwks_max_age() {
    modular_testkit::install_crypto_provider();
    let issuer = Issuer::start().await;
    let (listener, addr) = site_listener().await;
    let mut config = oidc_section(&issuer, addr);
    config["auth"]["oidc"]["providers"]["test"]["jwks_max_age"] = json!("5m");
    let (mut app, auth) = started(config).await;
    let site = serve(listener, &auth);
    assert_eq!(full_login(&site).await.0, StatusCode::OK);
    let fetches = issuer.fetches();
    assert_eq!(
        report(&app, "oidc.test").await.status,
        HealthStatus::Healthy
    );
    assert_eq!(issuer.fetches(), fetches, "fresh: no refresh");
    // Past jwks_max_age (paused clock moved, then running again for the real sockets).
    tokio::time::pause();
    tokio::time::advance(std::time::Duration::from_secs(301)).await;
    tokio::time::resume();
    let health = report(&app, "oidc.test").await;
    assert_eq!(health.status, HealthStatus::Healthy, "{health:?}");
    assert_eq!(issuer.fetches(), fetches + 1, "stale: refreshed once");
    assert_eq!(
        report(&app, "oidc.test").await.status,
        HealthStatus::Healthy
    );
    assert_eq!(issuer.fetches(), fetches + 1, "fresh again");
    app.stop().await.unwrap();
}

#[tokio::test]
async fn a_provider_whose_issuer_is_down_from_the_start_is_unhealthy() {
    modular_testkit::install_crypto_provider();
    let down = modular_testkit::RefusedPort::new();
    let (mut app, _auth) = started(section(
        json!({ "auth": { "oidc": { "providers": { "down": {
        "issuer": format!("http://{}", down.addr()),
        "client_id": CLIENT_ID,
        "redirect_url": "http://127.0.0.1:1/auth/oidc/down/callback",
    } } } } }),
    ))
    .await;
    let health = report(&app, "oidc.down").await;
    assert_eq!(health.status, HealthStatus::Unhealthy, "{health:?}");
    assert!(
        health.message.contains("no usable JWKS keys"),
        "{}",
        health.message
    );
    app.stop().await.unwrap();
}

#[tokio::test]
async fn a_provider_without_client_id_is_rejected_with_its_path_and_secrets_are_not_echoed() {
    let error = build_error(builder(section(
        json!({ "auth": { "oidc": { "providers": { "corp": {
        "issuer": "https://login.example.com",
        "client_secret": CLIENT_SECRET,
        "redirect_url": "not a url",
    } } } } }),
    )))
    .await;
    assert!(
        error.contains("auth.oidc.providers.corp.client_id"),
        "{error}"
    );
    assert!(
        error.contains("auth.oidc.providers.corp.redirect_url"),
        "{error}"
    );
    assert!(!error.contains(CLIENT_SECRET), "{error}");

    let config: modular_auth::OidcProviderConfig = serde_json::from_value(json!({
        "issuer": "https://login.example.com", "client_id": "x", "client_secret": CLIENT_SECRET,
        "redirect_url": "https://app.example.com/cb",
    }))
    .unwrap();
    assert!(!format!("{config:?}").contains(CLIENT_SECRET));
    assert!(
        !serde_json::to_string(&config)
            .unwrap()
            .contains(CLIENT_SECRET)
    );
}

fn write_config(path: &Path, config: &Value) {
    let aside = path.with_extension("tmp");
    std::fs::write(&aside, serde_json::to_vec_pretty(config).unwrap()).unwrap();
    std::fs::rename(aside, path).unwrap();
}

#[tokio::test]
async fn providers_are_added_changed_and_removed_by_reload() {
    modular_testkit::install_crypto_provider();
    let issuer = Issuer::start().await;
    let (listener, addr) = site_listener().await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("config.json");
    let mut config = section(json!({ "auth": { "sessions": { "cookie": { "secure": false } } } }));
    write_config(&path, &config);
    let mut app = modular_testkit::test_builder()
        .config_file(&path)
        .module(modular_auth::AuthModule::new())
        .build()
        .await
        .unwrap();
    app.start().await.unwrap();
    let auth = (*app.services().require::<Auth>().unwrap()).clone();
    let site = serve(listener, &auth);
    assert!(auth.oidc_providers().is_empty());

    // Added.
    merge(
        &mut config,
        json!({ "auth": { "oidc": { "providers": { "test": provider_json(&issuer, addr, CLIENT_SECRET) } } } }),
    );
    write_config(&path, &config);
    assert_eq!(app.reload().await.unwrap().status, ReloadStatus::Applied);
    assert_eq!(full_login(&site).await.0, StatusCode::OK);
    let fetches = issuer.fetches();

    // The issuer rotates the client secret: logins fail until the reload carries it.
    *issuer.state.secret.lock().unwrap() = ROTATED_SECRET.to_owned();
    let (status, body, _) = full_login(&site).await;
    assert_eq!(status, StatusCode::BAD_GATEWAY, "{body}");
    assert!(
        body["error"].as_str().unwrap().contains("invalid_client"),
        "{body}"
    );
    assert!(!body.to_string().contains(CLIENT_SECRET));
    config["auth"]["oidc"]["providers"]["test"]["client_secret"] = json!(ROTATED_SECRET);
    write_config(&path, &config);
    let outcome = app.reload().await.unwrap();
    assert_eq!(outcome.status, ReloadStatus::Applied);
    assert!(
        !serde_json::to_string(&outcome)
            .unwrap()
            .contains(ROTATED_SECRET)
    );
    assert_eq!(full_login(&site).await.0, StatusCode::OK);
    assert_eq!(
        issuer.fetches(),
        fetches,
        "the JWKS cache survived the secret rotation"
    );

    // token_auth, roles_claim, role_map, discovery_max_age and issue_tokens are dynamic too.
    assert_eq!(issuer.client_auth(), "client_secret_basic");
    *issuer.state.patch.lock().unwrap() = json!({ "groups": ["corp-admins"] });
    let (_, _, cookies) = full_login(&site).await;
    let roles = auth
        .session(&session_id(&cookies))
        .await
        .unwrap()
        .unwrap()
        .roles;
    assert!(roles.is_empty(), "{roles:?}");
    let discoveries = issuer.discoveries();
    merge(
        &mut config,
        json!({ "auth": { "oidc": { "providers": { "test": {
            "token_auth": "client_secret_post",
            "roles_claim": "groups",
            "role_map": { "corp-admins": ["ops"] },
            "discovery_max_age": "0s",
            "issue_tokens": true,
        } } } } }),
    );
    write_config(&path, &config);
    assert_eq!(app.reload().await.unwrap().status, ReloadStatus::Applied);
    let (status, body, cookies) = full_login(&site).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(issuer.client_auth(), "client_secret_post");
    assert_eq!(
        auth.verify(body["access_token"].as_str().unwrap())
            .unwrap()
            .roles,
        vec!["ops".to_owned()]
    );
    let roles = auth
        .session(&session_id(&cookies))
        .await
        .unwrap()
        .unwrap()
        .roles;
    assert_eq!(roles, vec!["ops".to_owned()]);
    // discovery_max_age 0s: discovery at the login and again at the callback.
    assert_eq!(issuer.discoveries(), discoveries + 2);
    *issuer.state.patch.lock().unwrap() = json!({});

    // A provider without client id is refused by reload; the running one stays.
    config["auth"]["oidc"]["providers"]["test"]["client_id"] = json!("");
    write_config(&path, &config);
    let outcome = app.reload().await.unwrap();
    assert_eq!(outcome.status, ReloadStatus::Rejected, "{outcome:?}");
    assert!(
        serde_json::to_string(&outcome)
            .unwrap()
            .contains("auth.oidc.providers.test.client_id")
    );
    assert_eq!(full_login(&site).await.0, StatusCode::OK);

    // Removed.
    config["auth"]["oidc"] = json!({ "providers": {} });
    write_config(&path, &config);
    assert_eq!(app.reload().await.unwrap().status, ReloadStatus::Applied);
    assert!(auth.oidc_providers().is_empty());
    let r = site
        .client
        .get(format!("{}/auth/oidc/test/login", site.base))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    app.stop().await.unwrap();
}

#[tokio::test]
async fn the_module_serves_the_login_routes_through_the_router_and_http_server() {
    modular_testkit::install_crypto_provider();
    let issuer = Issuer::start().await;
    let mut provider = provider_json(&issuer, "127.0.0.1:1".parse().unwrap(), CLIENT_SECRET);
    // The server's port is known only after start: the browser's redirect is re-pointed.
    provider["redirect_url"] = json!("http://app.test/auth/oidc/test/callback");
    let mut app = builder(section(json!({ "auth": {
        "sessions": { "cookie": { "secure": false } },
        "oidc": { "providers": { "test": provider } },
    }, "httpserver": { "host": "127.0.0.1", "port": 0, "drain_delay": "0s" } })))
    .module(modular_router::RouterModule::new())
    .module(modular_httpserver::HttpServerModule::new())
    .build()
    .await
    .unwrap();
    app.start().await.unwrap();
    let addr = app
        .services()
        .require::<modular_httpserver::HttpServerHandle>()
        .unwrap()
        .local_addr()
        .unwrap();
    let site = Site {
        base: format!("http://{addr}"),
        client: reqwest::Client::builder()
            .no_proxy()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap(),
    };
    let (url, cookie) = authorize_at(&site, "test").await;
    assert!(
        url.starts_with("http://app.test/auth/oidc/test/callback?code="),
        "{url}"
    );
    let url = url.replace("http://app.test", &site.base);
    let (status, body, cookies) = callback(&site, &url, &cookie).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["subject"], "test:alice");
    assert!(cookies.iter().any(|c| c.starts_with("modular_session=")));
    app.stop().await.unwrap();
}

/// `setup` with `patch` merged into the provider's config.
async fn setup_with(patch: Value) -> (Issuer, Application, Auth, Site) {
    modular_testkit::install_crypto_provider();
    let issuer = Issuer::start().await;
    let (listener, addr) = site_listener().await;
    let mut config = oidc_section(&issuer, addr);
    merge(
        &mut config,
        json!({ "auth": { "oidc": { "providers": { "test": patch } } } }),
    );
    let (app, auth) = started(config).await;
    let site = serve(listener, &auth);
    (issuer, app, auth, site)
}

fn session_id(cookies: &[String]) -> String {
    cookies
        .iter()
        .find_map(|c| c.strip_prefix("modular_session="))
        .expect("a session cookie")
        .split(';')
        .next()
        .unwrap()
        .to_owned()
}

#[tokio::test]
async fn the_client_authenticates_with_http_basic_by_default_and_in_the_form_when_configured() {
    // A secret with characters RFC 6749 §2.3.1 form-encodes before Basic.
    let secret = "s3cr:t+/ with%space-0123456789";
    modular_testkit::install_crypto_provider();
    let issuer = Issuer::start().await;
    *issuer.state.secret.lock().unwrap() = secret.to_owned();
    let (listener, addr) = site_listener().await;
    let mut config = oidc_section(&issuer, addr);
    config["auth"]["oidc"]["providers"]["test"]["client_secret"] = json!(secret);
    let (mut app, auth) = started(config.clone()).await;
    let site = serve(listener, &auth);
    let (status, body, _) = full_login(&site).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(issuer.client_auth(), "client_secret_basic");
    app.stop().await.unwrap();

    let (listener, addr) = site_listener().await;
    let mut post = config;
    post["auth"]["oidc"]["providers"]["test"]["redirect_url"] =
        json!(format!("http://{addr}/auth/oidc/test/callback"));
    post["auth"]["oidc"]["providers"]["test"]["token_auth"] = json!("client_secret_post");
    let (mut app, auth) = started(post).await;
    let site = serve(listener, &auth);
    let (status, body, _) = full_login(&site).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(issuer.client_auth(), "client_secret_post");
    app.stop().await.unwrap();
}

#[tokio::test]
async fn a_public_client_sends_only_its_client_id_and_a_bad_token_auth_is_rejected_with_its_path() {
    // A public client: no secret configured, the issuer expects none (PKCE alone).
    modular_testkit::install_crypto_provider();
    let issuer = Issuer::start().await;
    issuer.state.secret.lock().unwrap().clear();
    let (listener, addr) = site_listener().await;
    let mut config = oidc_section(&issuer, addr);
    config["auth"]["oidc"]["providers"]["test"]
        .as_object_mut()
        .unwrap()
        .remove("client_secret");
    let (mut app, auth) = started(config).await;
    let site = serve(listener, &auth);
    let (status, body, _) = full_login(&site).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(issuer.client_auth(), "none");
    app.stop().await.unwrap();

    let error = build_error(builder(section(
        json!({ "auth": { "oidc": { "providers": { "corp": {
        "issuer": "https://login.example.com",
        "client_id": CLIENT_ID,
        "client_secret": CLIENT_SECRET,
        "token_auth": "tls_client_auth",
        "redirect_url": "https://app.example.com/auth/oidc/corp/callback",
        "role_map": { "admins": ["ops"] },
    } } } } }),
    )))
    .await;
    assert!(
        error.contains("auth.oidc.providers.corp.token_auth"),
        "{error}"
    );
    assert!(error.contains("tls_client_auth"), "{error}");
    assert!(
        error.contains("auth.oidc.providers.corp.role_map"),
        "{error}"
    );
    assert!(!error.contains(CLIENT_SECRET), "{error}");
}

#[tokio::test]
async fn azp_is_required_for_several_audiences_and_must_be_this_client() {
    let (issuer, mut app, _auth, site) = setup().await;
    for (patch, ok, expected) in [
        (
            json!({ "aud": [CLIENT_ID, "other-client"] }),
            false,
            "no `azp`",
        ),
        (
            json!({ "aud": [CLIENT_ID, "other-client"], "azp": "other-client" }),
            false,
            "`azp` claim is not this client",
        ),
        (
            json!({ "azp": "other-client" }),
            false,
            "`azp` claim is not this client",
        ),
        (
            json!({ "aud": [CLIENT_ID, "other-client"], "azp": CLIENT_ID }),
            true,
            "",
        ),
        (json!({ "aud": [CLIENT_ID] }), true, ""),
    ] {
        *issuer.state.patch.lock().unwrap() = patch.clone();
        let (status, body, cookies) = full_login(&site).await;
        if ok {
            assert_eq!(status, StatusCode::OK, "{patch}: {body}");
        } else {
            assert_eq!(status, StatusCode::BAD_REQUEST, "{patch}: {body}");
            assert!(
                body["error"].as_str().unwrap().contains(expected),
                "{patch}: {body}"
            );
            assert!(!cookies.iter().any(|c| c.starts_with("modular_session=")));
        }
    }
    app.stop().await.unwrap();
}

#[tokio::test]
async fn an_at_hash_that_does_not_match_the_access_token_is_rejected() {
    let (issuer, mut app, _auth, site) = setup().await;
    // ES256: the left half of SHA-256 of the access token, base64url.
    let digest = sha2::Sha256::digest(b"access-alice");
    let good = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(&digest[..16]);
    *issuer.state.patch.lock().unwrap() = json!({ "at_hash": good });
    let (status, body, _) = full_login(&site).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let other = sha2::Sha256::digest(b"another-access-token");
    let bad = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(&other[..16]);
    *issuer.state.patch.lock().unwrap() = json!({ "at_hash": bad });
    let (status, body, cookies) = full_login(&site).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert!(
        body["error"].as_str().unwrap().contains("at_hash"),
        "{body}"
    );
    assert!(!cookies.iter().any(|c| c.starts_with("modular_session=")));
    // RS256 after a rotation: still SHA-256; a hash of the wrong length is refused too.
    issuer.rotate();
    *issuer.state.patch.lock().unwrap() = json!({ "at_hash": good });
    assert_eq!(full_login(&site).await.0, StatusCode::OK);
    *issuer.state.patch.lock().unwrap() = json!({ "at_hash": b64url_full(&digest) });
    assert_eq!(full_login(&site).await.0, StatusCode::BAD_REQUEST);
    app.stop().await.unwrap();
}

fn b64url_full(bytes: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

#[tokio::test]
async fn a_configured_claim_gives_the_session_its_roles_mapped_when_a_role_map_is_set() {
    // Mapped: only listed group names grant roles.
    let (issuer, mut app, auth, site) = setup_with(json!({
        "roles_claim": "groups",
        "role_map": { "corp-admins": ["ops", "sre"], "corp-devs": ["dev"] },
    }))
    .await;
    *issuer.state.patch.lock().unwrap() = json!({ "groups": ["corp-admins", "staff"] });
    let (status, body, cookies) = full_login(&site).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let session = auth.session(&session_id(&cookies)).await.unwrap().unwrap();
    assert_eq!(session.roles, vec!["ops".to_owned(), "sre".to_owned()]);
    assert_eq!(body["roles"], json!(["ops", "sre"]));

    // The roles guard routes: the session cookie of that login passes `ops`, not `billing`.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let guarded = format!("http://{}", listener.local_addr().unwrap());
    let router = axum::Router::new()
        .route(
            "/ops",
            axum::routing::get(|| async { "ops" }).layer(auth.require_role("ops")),
        )
        .route(
            "/billing",
            axum::routing::get(|| async { "billing" }).layer(auth.require_role("billing")),
        );
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    let cookie = format!("modular_session={}", session.id);
    let get = |path: &str| {
        site.client
            .get(format!("{guarded}{path}"))
            .header(header::COOKIE, cookie.clone())
            .send()
    };
    assert_eq!(get("/ops").await.unwrap().status(), StatusCode::OK);
    assert_eq!(
        get("/billing").await.unwrap().status(),
        StatusCode::FORBIDDEN
    );

    // A user in no mapped group gets no role.
    *issuer.state.patch.lock().unwrap() = json!({ "groups": "staff" });
    let (_, _, cookies) = full_login(&site).await;
    let session = auth.session(&session_id(&cookies)).await.unwrap().unwrap();
    assert!(session.roles.is_empty(), "{:?}", session.roles);
    app.stop().await.unwrap();

    // Unmapped: a nested claim's values are the roles as they are.
    let (issuer, mut app, auth, site) =
        setup_with(json!({ "roles_claim": "realm_access.roles" })).await;
    *issuer.state.patch.lock().unwrap() = json!({ "realm_access": { "roles": ["ops", 7, "dev"] } });
    let (_, _, cookies) = full_login(&site).await;
    let session = auth.session(&session_id(&cookies)).await.unwrap().unwrap();
    assert_eq!(session.roles, vec!["ops".to_owned(), "dev".to_owned()]);
    app.stop().await.unwrap();

    // A claim the ID token lacks is read from the user info.
    let (_issuer, mut app, auth, site) =
        setup_with(json!({ "roles_claim": "org.department" })).await;
    let (_, _, cookies) = full_login(&site).await;
    let session = auth.session(&session_id(&cookies)).await.unwrap().unwrap();
    assert_eq!(session.roles, vec!["sre".to_owned()]);
    app.stop().await.unwrap();
}

#[tokio::test]
async fn the_discovery_document_is_fetched_again_when_old_and_when_the_jwks_moved() {
    let (issuer, mut app, _auth, site) = setup_with(json!({ "discovery_max_age": "1h" })).await;
    assert_eq!(full_login(&site).await.0, StatusCode::OK);
    let discoveries = issuer.discoveries();
    assert_eq!(full_login(&site).await.0, StatusCode::OK);
    assert_eq!(issuer.discoveries(), discoveries, "cached while young");

    // Past discovery_max_age (paused clock moved, then running again for the sockets).
    tokio::time::pause();
    tokio::time::advance(std::time::Duration::from_secs(3601)).await;
    tokio::time::resume();
    assert_eq!(full_login(&site).await.0, StatusCode::OK);
    assert_eq!(issuer.discoveries(), discoveries + 1, "old: fetched again");

    // The issuer moves its JWKS and rotates: the unknown kid's refresh finds the old URI
    // gone, discovers again and fetches the new one, within the same login.
    *issuer.state.jwks_path.lock().unwrap() = "/jwks-moved".to_owned();
    issuer.rotate();
    let (status, body, _) = full_login(&site).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(issuer.discoveries(), discoveries + 2);
    let health = report(&app, "oidc.test").await;
    assert_eq!(health.status, HealthStatus::Healthy, "{health:?}");
    assert_eq!(health.details["kids"], json!(["k2"]));
    app.stop().await.unwrap();
}

/// A `MakeWriter` keeping every log line in memory.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for Captured {
    type Writer = Captured;
    fn make_writer(&'a self) -> Self::Writer {
        self.clone()
    }
}

#[tokio::test]
async fn no_secret_password_code_or_token_reaches_the_logs_at_trace_level() {
    let logs = Captured::default();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(logs.clone())
        .with_max_level(tracing::Level::TRACE)
        .with_ansi(false)
        .finish();
    // The test runtime is single-threaded: every task of the test logs through this.
    let _guard = tracing::subscriber::set_default(subscriber);

    let (issuer, mut app, auth, site) = setup().await;
    // OIDC: a login, a failed exchange (the issuer's secret rotated), an outage.
    let (url, cookie) = authorize_at(&site, "test").await;
    let code = url
        .split("code=")
        .nth(1)
        .unwrap()
        .split('&')
        .next()
        .unwrap()
        .to_owned();
    let (status, _, cookies) = callback(&site, &url, &cookie).await;
    assert_eq!(status, StatusCode::OK);
    let session = session_id(&cookies);
    *issuer.state.secret.lock().unwrap() = ROTATED_SECRET.to_owned();
    assert_eq!(full_login(&site).await.0, StatusCode::BAD_GATEWAY);
    issuer.proxy.cut();
    let _ = report(&app, "oidc.test").await;
    issuer.proxy.restore();

    // Passwords and tokens: a failed and a good login, a refresh and its reuse.
    let password = "Correct-Horse-42";
    let hash = auth.hash_password(password).await.unwrap();
    for (attempt, ok) in [("Wrong-Horse-43", false), (password, true)] {
        let outcome = auth
            .login(modular_auth::LoginAttempt {
                account: "ada",
                password: attempt,
                stored_hash: Some(&hash),
                client: None,
            })
            .await;
        assert_eq!(outcome.is_ok(), ok);
    }
    let pair = auth.issue("ada", &["ops".to_owned()], &[]).unwrap();
    auth.refresh(&pair.refresh_token).await.unwrap();
    assert!(auth.refresh(&pair.refresh_token).await.is_err());
    app.stop().await.unwrap();

    let text = String::from_utf8(logs.0.lock().unwrap().clone()).unwrap();
    assert!(
        text.contains("refresh token reuse detected"),
        "the capture works: {text}"
    );
    let basic =
        base64::engine::general_purpose::STANDARD.encode(format!("{CLIENT_ID}:{CLIENT_SECRET}"));
    for secret in [
        SECRET,
        CLIENT_SECRET,
        basic.as_str(),
        ROTATED_SECRET,
        password,
        "Wrong-Horse-43",
        hash.as_str(),
        code.as_str(),
        session.as_str(),
        pair.access_token.as_str(),
        pair.refresh_token.as_str(),
        "access-alice",
    ] {
        assert!(!text.contains(secret), "{secret} in the logs:\n{text}");
    }
}

#[tokio::test]
async fn the_client_authenticates_with_a_signed_assertion_private_key_jwt_or_client_secret_jwt() {
    // private_key_jwt: an ES256 key of auth.keys signs; the issuer knows its public key
    // from the module's JWKS, as a provider registered with it would.
    modular_testkit::install_crypto_provider();
    let issuer = Issuer::start().await;
    let (listener, addr) = site_listener().await;
    let mut config = oidc_section(&issuer, addr);
    merge(
        &mut config,
        json!({ "auth": {
            "keys": { "client": { "algorithm": "ES256", "private_key_file": fixture("ec.pem") } },
            "oidc": { "providers": { "test": { "token_auth": "private_key_jwt", "client_key": "client" } } },
        } }),
    );
    config["auth"]["oidc"]["providers"]["test"]
        .as_object_mut()
        .unwrap()
        .remove("client_secret");
    let (mut app, auth) = started(config).await;
    let published = auth.jwks().keys;
    assert!(
        published
            .iter()
            .any(|k| k.common.key_id.as_deref() == Some("client")),
        "the client key is in the module's JWKS"
    );
    *issuer.state.client_jwks.lock().unwrap() = published;
    let site = serve(listener, &auth);
    for _ in 0..2 {
        let (status, body, _) = full_login(&site).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(issuer.client_auth(), "private_key_jwt");
    }
    assert_eq!(
        issuer.state.assertion_ids.lock().unwrap().len(),
        2,
        "a fresh jti each time"
    );
    // client_key is dynamic: a reload points it at another key (an RSA one, added in the
    // same reload), and the assertion is signed with it.
    let store = app.config();
    let mut overrides = store.overrides();
    overrides.insert(
        "auth.keys.client2".to_owned(),
        json!({ "algorithm": "RS256", "private_key_file": fixture("rsa.pem") }),
    );
    overrides.insert(
        "auth.oidc.providers.test.client_key".to_owned(),
        json!("client2"),
    );
    store.set_overrides(overrides);
    assert_eq!(app.reload().await.unwrap().status, ReloadStatus::Applied);
    *issuer.state.client_jwks.lock().unwrap() = auth
        .jwks()
        .keys
        .into_iter()
        .filter(|k| k.common.key_id.as_deref() == Some("client2"))
        .collect();
    let (status, body, _) = full_login(&site).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(issuer.client_auth(), "private_key_jwt");
    // The provider no longer trusts that key: the exchange is refused.
    issuer.state.client_jwks.lock().unwrap().clear();
    let (status, body, _) = full_login(&site).await;
    assert_eq!(status, StatusCode::BAD_GATEWAY, "{body}");
    assert!(
        body["error"].as_str().unwrap().contains("invalid_client"),
        "{body}"
    );
    app.stop().await.unwrap();

    // client_secret_jwt: HS256 keyed by the client secret.
    let (issuer, mut app, _auth, site) =
        setup_with(json!({ "token_auth": "client_secret_jwt" })).await;
    let (status, body, _) = full_login(&site).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(issuer.client_auth(), "client_secret_jwt");
    *issuer.state.secret.lock().unwrap() = ROTATED_SECRET.to_owned();
    assert_eq!(full_login(&site).await.0, StatusCode::BAD_GATEWAY);
    app.stop().await.unwrap();
}

#[tokio::test]
async fn an_assertion_method_without_its_key_or_secret_is_rejected_with_its_path() {
    let provider = |extra: Value| {
        let mut p = json!({
            "issuer": "https://login.example.com",
            "client_id": CLIENT_ID,
            "redirect_url": "https://app.example.com/auth/oidc/corp/callback",
        });
        merge(&mut p, extra);
        section(json!({ "auth": { "oidc": { "providers": { "corp": p } } } }))
    };
    let error = build_error(builder(provider(
        json!({ "token_auth": "private_key_jwt", "client_key": "nope" }),
    )))
    .await;
    assert!(
        error.contains("auth.oidc.providers.corp.client_key"),
        "{error}"
    );
    // k1 is an HMAC key: no private half to sign an assertion with.
    let error = build_error(builder(provider(
        json!({ "token_auth": "private_key_jwt", "client_key": "k1" }),
    )))
    .await;
    assert!(error.contains("has no private_key_file"), "{error}");
    assert!(!error.contains(SECRET), "{error}");
    let error = build_error(builder(provider(
        json!({ "token_auth": "client_secret_jwt", "client_secret": "short-secret" }),
    )))
    .await;
    assert!(
        error.contains("auth.oidc.providers.corp.client_secret"),
        "{error}"
    );
    assert!(error.contains("at least 32 bytes"), "{error}");
    assert!(!error.contains("short-secret"), "{error}");
}

#[tokio::test]
async fn with_issue_tokens_the_callback_also_answers_module_tokens_with_the_sessions_roles() {
    let (_issuer, mut app, _auth, site) = setup().await;
    let (status, body, _) = full_login(&site).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(body.get("access_token").is_none(), "off by default: {body}");
    app.stop().await.unwrap();

    let (issuer, mut app, auth, site) = setup_with(json!({
        "issue_tokens": true,
        "roles_claim": "groups",
    }))
    .await;
    *issuer.state.patch.lock().unwrap() = json!({ "groups": ["ops"] });
    let response = {
        let (url, cookie) = authorize_at(&site, "test").await;
        site.client
            .get(url)
            .header(header::COOKIE, cookie)
            .send()
            .await
            .unwrap()
    };
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()[header::CACHE_CONTROL], "no-store");
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["token_type"], "Bearer");
    let claims = auth.verify(body["access_token"].as_str().unwrap()).unwrap();
    assert_eq!(claims.sub, "test:alice");
    assert_eq!(claims.roles, vec!["ops".to_owned()]);
    let next = auth
        .refresh(body["refresh_token"].as_str().unwrap())
        .await
        .unwrap();
    assert_eq!(auth.verify(&next.access_token).unwrap().sub, "test:alice");
    app.stop().await.unwrap();
}
