//! Sessions (sliding expiry, absolute lifetime, rotation, revocation, cookie) and failed-login
//! throttling, in memory with paused time and in the real Redis through the cache module.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

use modular_auth::{Auth, AuthError, LoginAttempt};
use modular_cache::CacheModule;
use modular_core::Application;
use modular_testkit::Service;
use serde_json::{Value, json};
use support::*;

const PASSWORD: &str = "Correct-Horse-42";

async fn login(
    auth: &Auth,
    account: &str,
    password: &str,
    hash: &str,
    client: u8,
) -> Result<(), AuthError> {
    auth.login(LoginAttempt {
        account,
        password,
        stored_hash: Some(hash),
        client: Some(IpAddr::V4(Ipv4Addr::new(10, 0, 0, client))),
    })
    .await
    .map(|_| ())
}

#[tokio::test(start_paused = true)]
async fn a_session_slides_with_use_and_ends_at_its_absolute_lifetime() {
    let (mut app, auth) = started(section(json!({ "auth": { "sessions": {
        "idle_timeout": "10m", "absolute_lifetime": "25m" } } })))
    .await;
    let session = auth
        .create_session("ada", &["ops".to_owned()], None)
        .await
        .unwrap();
    for _ in 0..2 {
        tokio::time::advance(Duration::from_secs(9 * 60)).await;
        assert!(
            auth.session(&session.id).await.unwrap().is_some(),
            "used within the idle timeout"
        );
    }
    // 18 minutes in: used recently, but the absolute lifetime caps the TTL at 7 minutes
    // (past them, not on the boundary).
    tokio::time::advance(Duration::from_secs(7 * 60 + 1)).await;
    assert!(auth.session(&session.id).await.unwrap().is_none());
    app.stop().await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn an_idle_session_expires() {
    let (mut app, auth) = started(section(
        json!({ "auth": { "sessions": { "idle_timeout": "5m" } } }),
    ))
    .await;
    let session = auth.create_session("ada", &[], None).await.unwrap();
    tokio::time::advance(Duration::from_secs(5 * 60 + 1)).await;
    assert!(auth.session(&session.id).await.unwrap().is_none());
    // A reload of the idle timeout applies to sessions from then on.
    app.set_override("auth.sessions.idle_timeout", json!("1h"))
        .await
        .unwrap();
    let session = auth.create_session("ada", &[], None).await.unwrap();
    tokio::time::advance(Duration::from_secs(30 * 60)).await;
    assert!(auth.session(&session.id).await.unwrap().is_some());
    app.set_override("auth.sessions.absolute_lifetime", json!("1h"))
        .await
        .unwrap();
    tokio::time::advance(Duration::from_secs(31 * 60)).await;
    assert!(
        auth.session(&session.id).await.unwrap().is_none(),
        "past the reloaded absolute lifetime"
    );
    app.stop().await.unwrap();
}

#[tokio::test]
async fn the_cookie_carries_the_configured_attributes_and_follows_a_reload() {
    let (mut app, auth) = started(section(json!({}))).await;
    let session = auth.create_session("ada", &[], None).await.unwrap();
    let cookie = auth.session_cookie(&session);
    assert_eq!(
        cookie,
        format!(
            "modular_session={}; Path=/; Max-Age=43200; Secure; HttpOnly; SameSite=Lax",
            session.id
        )
    );
    app.set_overrides(
        [
            ("auth.sessions.cookie.name".to_owned(), json!("sid")),
            ("auth.sessions.cookie.same_site".to_owned(), json!("strict")),
            (
                "auth.sessions.cookie.domain".to_owned(),
                json!("example.com"),
            ),
            ("auth.sessions.cookie.path".to_owned(), json!("/app")),
            ("auth.sessions.cookie.secure".to_owned(), json!(false)),
            ("auth.sessions.cookie.http_only".to_owned(), json!(false)),
        ]
        .into(),
    )
    .await
    .unwrap();
    let cookie = auth.session_cookie(&session);
    assert_eq!(
        cookie,
        format!(
            "sid={}; Path=/app; Max-Age=43200; Domain=example.com; SameSite=Strict",
            session.id
        )
    );
    assert_eq!(
        auth.session_id_from_cookies(&format!("a=b; sid={}", session.id)),
        Some(session.id.clone())
    );
    assert_eq!(auth.clear_session_cookie(), "sid=; Path=/app; Max-Age=0");
    assert!(!format!("{session:?}").contains(&session.id));
    app.stop().await.unwrap();
}

async fn exercise_sessions(auth: &Auth, app: &Application) {
    let mut events = subscribe(app);
    let anonymous = auth.create_session("anonymous", &[], None).await.unwrap();
    // Logging in rotates: the pre-login id is revoked.
    let session = auth
        .create_session("ada", &["ops".to_owned()], Some(&anonymous.id))
        .await
        .unwrap();
    assert_ne!(session.id, anonymous.id);
    assert!(auth.session(&anonymous.id).await.unwrap().is_none());
    let read = auth.session(&session.id).await.unwrap().unwrap();
    assert_eq!(
        (read.subject.as_str(), read.roles.clone()),
        ("ada", vec!["ops".to_owned()])
    );
    let rotated = auth.rotate_session(&session.id).await.unwrap().unwrap();
    assert!(auth.session(&session.id).await.unwrap().is_none());
    assert_eq!(
        auth.session(&rotated.id)
            .await
            .unwrap()
            .unwrap()
            .created_at_ms,
        session.created_at_ms
    );
    assert!(auth.revoke_session(&rotated.id).await.unwrap());
    assert!(auth.session(&rotated.id).await.unwrap().is_none());
    assert!(!auth.revoke_session(&rotated.id).await.unwrap());
    next_event(&mut events, "com.modular.auth.session.revoked").await;
}

#[tokio::test]
async fn sessions_rotate_on_login_and_are_revoked_in_memory() {
    let (mut app, auth) = started(section(json!({}))).await;
    exercise_sessions(&auth, &app).await;
    app.stop().await.unwrap();
}

#[tokio::test]
async fn failed_logins_are_throttled_per_account_and_per_client() {
    let (mut app, auth) = started(section(json!({ "auth": { "throttle": {
        "max_failures_per_account": 3, "max_failures_per_client": 5, "window": "1m" } } })))
    .await;
    let mut events = subscribe(&app);
    let hash = auth.hash_password(PASSWORD).await.unwrap();
    for _ in 0..3 {
        assert!(matches!(
            login(&auth, "ada", "wrong", &hash, 1).await,
            Err(AuthError::InvalidCredentials)
        ));
    }
    let failed = next_event(&mut events, "com.modular.auth.login.failed").await;
    assert_eq!(failed["account"], "ada");
    assert!(!failed.to_string().contains("wrong"));
    // The account is throttled, even with the right password and from another address.
    assert!(matches!(
        login(&auth, "ada", PASSWORD, &hash, 2).await,
        Err(AuthError::Throttled { scope: "account" })
    ));
    let throttled = next_event(&mut events, "com.modular.auth.login.throttled").await;
    assert_eq!(throttled["scope"], "account");
    // The client that failed 3 times fails twice more on other accounts: now it is throttled.
    for account in ["bob", "eve"] {
        assert!(login(&auth, account, "wrong", &hash, 1).await.is_err());
    }
    assert!(matches!(
        login(&auth, "carol", PASSWORD, &hash, 1).await,
        Err(AuthError::Throttled { scope: "client" })
    ));
    // Another client logs carol in; success clears nothing for ada.
    login(&auth, "carol", PASSWORD, &hash, 3).await.unwrap();
    let ok = next_event(&mut events, "com.modular.auth.login.succeeded").await;
    assert_eq!(ok["account"], "carol");
    // Raising the limit by reload lets ada try again.
    app.set_override("auth.throttle.max_failures_per_account", json!(10))
        .await
        .unwrap();
    login(&auth, "ada", PASSWORD, &hash, 4).await.unwrap();
    app.stop().await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn throttling_ends_with_its_window() {
    let (mut app, auth) = started(section(json!({ "auth": { "throttle": {
        "max_failures_per_account": 2, "window": "1m" } } })))
    .await;
    let hash = auth.hash_password(PASSWORD).await.unwrap();
    for _ in 0..2 {
        assert!(login(&auth, "ada", "wrong", &hash, 1).await.is_err());
    }
    assert!(matches!(
        login(&auth, "ada", PASSWORD, &hash, 1).await,
        Err(AuthError::Throttled { .. })
    ));
    tokio::time::advance(Duration::from_secs(61)).await;
    login(&auth, "ada", PASSWORD, &hash, 1).await.unwrap();
    // The window is reloadable.
    app.set_override("auth.throttle.window", json!("10m"))
        .await
        .unwrap();
    for _ in 0..2 {
        assert!(login(&auth, "ada", "wrong", &hash, 1).await.is_err());
    }
    tokio::time::advance(Duration::from_secs(61)).await;
    assert!(matches!(
        login(&auth, "ada", PASSWORD, &hash, 1).await,
        Err(AuthError::Throttled { .. })
    ));
    app.stop().await.unwrap();
}

#[tokio::test]
async fn an_unknown_account_fails_like_a_wrong_password() {
    let (mut app, auth) = started(section(json!({}))).await;
    let error = auth
        .login(LoginAttempt {
            account: "ghost",
            password: PASSWORD,
            stored_hash: None,
            client: None,
        })
        .await
        .unwrap_err();
    assert!(matches!(error, AuthError::InvalidCredentials));
    app.stop().await.unwrap();
}

fn redis_config(url: &str, test: &str) -> Value {
    section(json!({
        "cache": { "engine": "redis", "redis": { "url": url, "key_prefix": format!("auth-test:{test}:{}:", uuid::Uuid::new_v4()) } },
        "auth": { "sessions": { "store": "shared" }, "throttle": { "max_failures_per_account": 2 } },
    }))
}

async fn redis_app(config: Value) -> (Application, Auth) {
    let mut app = modular_testkit::test_builder()
        .config_defaults(config)
        .module(CacheModule::new())
        .module(modular_auth::AuthModule::new())
        .build()
        .await
        .unwrap();
    app.start().await.unwrap();
    let auth = (*app.services().require::<Auth>().unwrap()).clone();
    (app, auth)
}

#[tokio::test]
async fn sessions_refresh_tokens_and_throttling_live_in_the_real_redis_shared_by_instances() {
    let Some(url) = modular_testkit::service(Service::Redis) else {
        return;
    };
    let config = redis_config(&url, "shared");
    let (mut one, a) = redis_app(config.clone()).await;
    let (mut two, b) = redis_app(config).await;
    exercise_sessions(&a, &one).await;
    // A session made by one instance is read (and revoked) by the other.
    let session = a.create_session("ada", &[], None).await.unwrap();
    assert_eq!(
        b.session(&session.id).await.unwrap().unwrap().subject,
        "ada"
    );
    assert!(b.revoke_session(&session.id).await.unwrap());
    assert!(a.session(&session.id).await.unwrap().is_none());
    // A refresh token used on one instance is reuse when replayed on the other.
    let pair = a.issue("ada", &[], &[]).unwrap();
    a.refresh(&pair.refresh_token).await.unwrap();
    assert!(matches!(
        b.refresh(&pair.refresh_token).await,
        Err(AuthError::Token(modular_auth::TokenError::RefreshReused))
    ));
    // Failures counted on one instance throttle the account on the other.
    let hash = a.hash_password(PASSWORD).await.unwrap();
    for _ in 0..2 {
        assert!(login(&a, "ada", "wrong", &hash, 1).await.is_err());
    }
    assert!(matches!(
        login(&b, "ada", PASSWORD, &hash, 2).await,
        Err(AuthError::Throttled { scope: "account" })
    ));
    let report = one
        .services()
        .require::<modular_core::health::HealthAggregator>()
        .unwrap()
        .force_refresh()
        .await;
    let sessions = report
        .reports
        .iter()
        .find(|r| r.module == "auth" && r.component == "sessions")
        .unwrap();
    assert_eq!(
        sessions.status,
        modular_core::health::HealthStatus::Healthy,
        "{sessions:?}"
    );
    assert_eq!(sessions.details["store"], "shared");
    one.stop().await.unwrap();
    two.stop().await.unwrap();
}

#[tokio::test]
async fn a_refresh_reuse_emits_an_event_without_the_token() {
    let (mut app, auth) = started(section(json!({}))).await;
    let mut events = subscribe(&app);
    let pair = auth.issue("ada", &[], &[]).unwrap();
    auth.refresh(&pair.refresh_token).await.unwrap();
    assert!(auth.refresh(&pair.refresh_token).await.is_err());
    let event = next_event(&mut events, "com.modular.auth.refresh.reuse_detected").await;
    assert_eq!(event["subject"], "ada");
    assert!(!event.to_string().contains(&pair.refresh_token));
    app.stop().await.unwrap();
}
