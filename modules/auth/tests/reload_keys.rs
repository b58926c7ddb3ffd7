//! Key rotation and every other dynamic field, by config reload, observed on live tokens.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::path::Path;
use std::time::Duration;

use modular_auth::{Auth, LoginAttempt, TokenError};
use modular_core::{Application, ReloadStatus};
use serde_json::{Value, json};
use support::*;

fn write_config(path: &Path, config: &Value) {
    let aside = path.with_extension("tmp");
    std::fs::write(&aside, serde_json::to_vec_pretty(config).unwrap()).unwrap();
    std::fs::rename(aside, path).unwrap();
}

async fn from_file(config: &Value) -> (tempfile::TempDir, std::path::PathBuf, Application, Auth) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("config.json");
    write_config(&path, config);
    let mut app = modular_testkit::test_builder()
        .config_file(&path)
        .module(modular_auth::AuthModule::new())
        .build()
        .await
        .unwrap();
    app.start().await.unwrap();
    let auth = (*app.services().require::<Auth>().unwrap()).clone();
    (dir, path, app, auth)
}

fn kid(token: &str) -> String {
    jsonwebtoken::decode_header(token).unwrap().kid.unwrap()
}

#[tokio::test(start_paused = true)]
async fn a_rotation_signs_with_the_new_key_and_the_retired_one_verifies_until_the_overlap_ends() {
    let mut config = section(json!({ "auth": { "rotation_overlap": "10m" } }));
    let (_dir, path, mut app, auth) = from_file(&config).await;
    let mut events = subscribe(&app);
    let old = auth.issue_access("ada", &[], &[]).unwrap();
    assert_eq!(kid(&old), "k1");

    merge(
        &mut config,
        json!({ "auth": {
        "signing_key": "k2",
        "keys": {
            "k1": { "retired": true },
            "k2": { "algorithm": "ES256", "private_key_file": fixture("ec.pem") },
        } } }),
    );
    write_config(&path, &config);
    let outcome = app.reload().await.unwrap();
    assert_eq!(outcome.status, ReloadStatus::Applied, "{outcome:?}");
    let rotated = next_event(&mut events, "com.modular.auth.key.rotated").await;
    assert_eq!(rotated, json!({ "previous_kid": "k1", "kid": "k2" }));

    let new = auth.issue_access("ada", &[], &[]).unwrap();
    assert_eq!(kid(&new), "k2");
    assert_eq!(auth.verify(&new).unwrap().sub, "ada");
    assert_eq!(
        auth.verify(&old).unwrap().sub,
        "ada",
        "the retired key verifies in the overlap"
    );
    let published: Vec<_> = auth
        .jwks()
        .keys
        .iter()
        .filter_map(|k| k.common.key_id.clone())
        .collect();
    assert_eq!(published, ["k2"]);

    // An unrelated reload does not restart the overlap.
    tokio::time::advance(Duration::from_secs(6 * 60)).await;
    merge(&mut config, json!({ "auth": { "leeway": "20s" } }));
    write_config(&path, &config);
    assert_eq!(app.reload().await.unwrap().status, ReloadStatus::Applied);
    assert!(auth.verify(&old).is_ok());
    tokio::time::advance(Duration::from_secs(5 * 60)).await;
    assert_eq!(auth.verify(&old), Err(TokenError::RetiredKey));
    assert!(auth.verify(&new).is_ok());
    app.stop().await.unwrap();
}

#[tokio::test]
async fn a_removed_key_stops_verifying_at_once() {
    let mut config = section(
        json!({ "auth": { "keys": { "k2": { "algorithm": "HS256", "secret": SECRET2 } } } }),
    );
    let (_dir, path, mut app, auth) = from_file(&config).await;
    let old = auth.issue_access("ada", &[], &[]).unwrap();
    config["auth"]["signing_key"] = json!("k2");
    config["auth"]["keys"].as_object_mut().unwrap().remove("k1");
    write_config(&path, &config);
    assert_eq!(app.reload().await.unwrap().status, ReloadStatus::Applied);
    assert_eq!(auth.verify(&old), Err(TokenError::UnknownKey));
    assert_eq!(kid(&auth.issue_access("ada", &[], &[]).unwrap()), "k2");
    app.stop().await.unwrap();
}

#[tokio::test]
async fn a_changed_secret_invalidates_tokens_signed_with_the_old_one() {
    let (mut app, auth) = started(section(json!({}))).await;
    let old = auth.issue_access("ada", &[], &[]).unwrap();
    let outcome = app
        .set_override("auth.keys.k1.secret", json!(SECRET2))
        .await
        .unwrap();
    assert_eq!(outcome.status, ReloadStatus::Applied, "{outcome:?}");
    assert!(!serde_json::to_string(&outcome).unwrap().contains(SECRET2));
    assert_eq!(auth.verify(&old), Err(TokenError::BadSignature));
    assert!(
        auth.verify(&auth.issue_access("ada", &[], &[]).unwrap())
            .is_ok()
    );
    app.stop().await.unwrap();
}

#[tokio::test]
async fn issuer_audience_and_ttl_reloads_change_issued_and_accepted_tokens() {
    let (mut app, auth) = started(section(json!({}))).await;
    let before = auth.issue_access("ada", &[], &[]).unwrap();
    let outcome = app
        .set_overrides(
            [
                ("auth.issuer".to_owned(), json!("https://new.test")),
                ("auth.audience".to_owned(), json!(["api2", "api"])),
                ("auth.access_ttl".to_owned(), json!("2m")),
            ]
            .into(),
        )
        .await
        .unwrap();
    assert_eq!(outcome.status, ReloadStatus::Applied, "{outcome:?}");
    assert_eq!(auth.verify(&before), Err(TokenError::WrongIssuer));
    let after = auth
        .verify(&auth.issue_access("ada", &[], &[]).unwrap())
        .unwrap();
    assert_eq!(
        (after.iss.as_str(), after.aud.clone()),
        ("https://new.test", vec!["api2".to_owned()])
    );
    assert_eq!(after.exp - after.iat, 120);
    app.stop().await.unwrap();
}

#[tokio::test]
async fn refresh_ttl_and_leeway_reloads_apply_to_new_tokens() {
    let (mut app, auth) = started(section(json!({}))).await;
    app.set_overrides(
        [
            ("auth.refresh_ttl".to_owned(), json!("1h")),
            ("auth.leeway".to_owned(), json!("0s")),
        ]
        .into(),
    )
    .await
    .unwrap();
    let pair = auth.issue("ada", &[], &[]).unwrap();
    let claims =
        jsonwebtoken::dangerous::insecure_decode::<modular_auth::Claims>(&pair.refresh_token)
            .unwrap()
            .claims;
    assert_eq!(claims.exp - claims.iat, 3600);
    // Leeway 0: a token that expired 10 s ago (within the default 30 s) is now refused.
    let now = jsonwebtoken::get_current_timestamp();
    let mut c: modular_auth::Claims = serde_json::from_value(support::claims("ada")).unwrap();
    c.exp = now - 10;
    assert_eq!(
        auth.verify(&auth.sign(&c).unwrap()),
        Err(TokenError::Expired)
    );
    app.stop().await.unwrap();
}

#[tokio::test]
async fn a_password_parameter_reload_rehashes_on_the_next_login() {
    let (mut app, auth) = started(section(json!({}))).await;
    let stored = auth.hash_password("Correct-Horse-42").await.unwrap();
    assert!(stored.contains("m=256,t=1,p=1"), "{stored}");
    let attempt = |hash: &str| {
        let hash = hash.to_owned();
        let auth = auth.clone();
        async move {
            auth.login(LoginAttempt {
                account: "ada",
                password: "Correct-Horse-42",
                stored_hash: Some(&hash),
                client: None,
            })
            .await
            .unwrap()
        }
    };
    assert_eq!(attempt(&stored).await.check.rehash, None);
    let outcome = app
        .set_override("auth.passwords.iterations", json!(2))
        .await
        .unwrap();
    assert_eq!(outcome.status, ReloadStatus::Applied, "{outcome:?}");
    let success = attempt(&stored).await;
    let upgraded = success
        .check
        .rehash
        .expect("a rehash after the parameters changed");
    assert!(upgraded.contains("m=256,t=2,p=1"), "{upgraded}");
    assert_eq!(attempt(&upgraded).await.check.rehash, None);
    app.stop().await.unwrap();
}

#[tokio::test]
async fn a_password_policy_reload_changes_what_is_accepted() {
    let (mut app, auth) = started(section(json!({}))).await;
    assert!(auth.hash_password("lowercaseonly-long").await.is_ok());
    app.set_override("auth.passwords.min_classes", json!(3))
        .await
        .unwrap();
    let error = auth.hash_password("lowercaseonly-long").await.unwrap_err();
    assert!(error.to_string().contains("at least 3 of"), "{error}");
    app.set_overrides(
        [
            ("auth.passwords.min_length".to_owned(), json!(20)),
            ("auth.passwords.max_length".to_owned(), json!(30)),
        ]
        .into(),
    )
    .await
    .unwrap();
    assert!(
        auth.password_policy_violations("Short-Pass-1")
            .iter()
            .any(|p| p.contains("at least 20"))
    );
    assert!(
        auth.password_policy_violations(&"Aa1-".repeat(10))
            .iter()
            .any(|p| p.contains("at most 30"))
    );
    assert!(
        auth.password_policy_violations("Password")
            .iter()
            .any(|p| p.contains("common"))
    );
    app.set_overrides(
        [
            ("auth.passwords.reject_common".to_owned(), json!(false)),
            ("auth.passwords.min_length".to_owned(), json!(4)),
            ("auth.passwords.min_classes".to_owned(), json!(1)),
        ]
        .into(),
    )
    .await
    .unwrap();
    assert!(auth.password_policy_violations("Password").is_empty());
    app.stop().await.unwrap();
}

#[tokio::test]
async fn a_static_store_change_is_refused_as_restart_required() {
    let (mut app, _auth) = started(section(json!({}))).await;
    let outcome = app
        .set_override("auth.sessions.store", json!("shared"))
        .await
        .unwrap();
    assert_eq!(outcome.status, ReloadStatus::Rejected);
    assert!(
        outcome
            .error
            .unwrap_or_default()
            .contains("restart required: auth.sessions.store")
    );
    app.stop().await.unwrap();
}
