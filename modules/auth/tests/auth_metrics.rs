//! Metrics (own test binary: one recorder per process): verifications, logins and throttled
//! attempts by outcome.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use modular_auth::{LoginAttempt, TokenError};
use serde_json::json;
use support::*;

fn series(text: &str, parts: &[&str]) -> f64 {
    text.lines()
        .filter(|l| !l.starts_with('#') && parts.iter().all(|p| l.contains(p)))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

#[tokio::test]
async fn verifications_logins_and_throttling_are_counted_by_outcome() {
    let exporter = modular_core::metrics::MetricsExporter::install().unwrap();
    let (mut app, auth) = started(section(
        json!({ "auth": { "throttle": { "max_failures_per_account": 1 } } }),
    ))
    .await;
    let token = auth.issue_access("ada", &[], &[]).unwrap();
    assert!(auth.verify(&token).is_ok());
    assert!(auth.verify(&token).is_ok());
    assert_eq!(auth.verify("x.y.z"), Err(TokenError::Malformed));
    let hash = auth.hash_password("Correct-Horse-42").await.unwrap();
    let attempt = |password: &'static str| LoginAttempt {
        account: "ada",
        password,
        stored_hash: Some(&hash),
        client: None,
    };
    auth.login(attempt("Correct-Horse-42")).await.unwrap();
    assert!(auth.login(attempt("wrong")).await.is_err());
    assert!(auth.login(attempt("Correct-Horse-42")).await.is_err());
    let text = exporter.render();
    let verifications = "modular_auth_token_verifications_total";
    assert_eq!(
        series(&text, &[verifications, "outcome=\"valid\""]),
        2.0,
        "{text}"
    );
    assert_eq!(
        series(&text, &[verifications, "outcome=\"malformed\""]),
        1.0,
        "{text}"
    );
    let logins = "modular_auth_logins_total";
    assert_eq!(
        series(&text, &[logins, "outcome=\"succeeded\""]),
        1.0,
        "{text}"
    );
    assert_eq!(
        series(&text, &[logins, "outcome=\"failed\""]),
        1.0,
        "{text}"
    );
    assert_eq!(
        series(&text, &[logins, "outcome=\"throttled\""]),
        1.0,
        "{text}"
    );
    assert_eq!(
        series(
            &text,
            &["modular_auth_throttled_total", "scope=\"account\""]
        ),
        1.0,
        "{text}"
    );
    assert!(!text.contains(SECRET) && !text.contains("Correct-Horse"));
    app.stop().await.unwrap();
}
