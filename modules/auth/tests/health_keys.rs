//! Health: the keys component follows key expiry and recovers by reload; the sessions
//! component follows the store.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use modular_core::Application;
use modular_core::health::{HealthAggregator, HealthReport, HealthStatus};
use serde_json::json;
use support::*;

async fn report(app: &Application, component: &str) -> HealthReport {
    let health = app.services().require::<HealthAggregator>().unwrap();
    health
        .force_refresh()
        .await
        .reports
        .iter()
        .find(|r| r.module == "auth" && r.component == component)
        .cloned()
        .unwrap()
}

fn now() -> u64 {
    jsonwebtoken::get_current_timestamp()
}

#[tokio::test]
async fn an_expired_signing_key_is_unhealthy_until_a_reload_rotates_it() {
    let (mut app, _auth) = started(section(json!({ "auth": { "keys": {
        "k1": { "not_after": now() - 1 },
        "k2": { "algorithm": "EdDSA", "private_key_file": fixture("ed.pem") },
    } } })))
    .await;
    let keys = report(&app, "keys").await;
    assert_eq!(keys.status, HealthStatus::Unhealthy, "{keys:?}");
    assert!(
        keys.message.contains("the signing key k1 has expired"),
        "{}",
        keys.message
    );
    app.set_overrides(
        [
            ("auth.signing_key".to_owned(), json!("k2")),
            ("auth.keys.k1.retired".to_owned(), json!(true)),
        ]
        .into(),
    )
    .await
    .unwrap();
    let keys = report(&app, "keys").await;
    // k1 is still past not_after (and still verifying in its overlap): degraded, not failing.
    assert_eq!(keys.status, HealthStatus::Degraded, "{keys:?}");
    assert_eq!(keys.details["signing_kid"], "k2");
    assert_eq!(keys.details["retired"], json!(["k1"]));
    app.set_override("auth.keys.k1.not_after", json!(now() + 365 * 24 * 3600))
        .await
        .unwrap();
    let keys = report(&app, "keys").await;
    assert_eq!(keys.status, HealthStatus::Healthy, "{keys:?}");
    app.stop().await.unwrap();
}

#[tokio::test]
async fn a_signing_key_expiring_within_a_week_is_degraded() {
    let (mut app, _auth) = started(section(json!({ "auth": { "keys": {
        "k1": { "not_after": now() + 3600 } } } })))
    .await;
    let keys = report(&app, "keys").await;
    assert_eq!(keys.status, HealthStatus::Degraded, "{keys:?}");
    assert!(keys.message.contains("expires within 7 days"));
    assert!(!format!("{keys:?}").contains(SECRET));
    let sessions = report(&app, "sessions").await;
    assert_eq!(sessions.status, HealthStatus::Healthy);
    assert_eq!(sessions.details["store"], "memory");
    app.stop().await.unwrap();
}
