//! Bad config is rejected at build (and on reload) with its path; secrets never echoed.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use serde_json::json;
use support::*;

#[tokio::test]
async fn an_hmac_key_too_short_for_its_algorithm_is_rejected_without_echoing_it() {
    let short = "short-secret-0123456789";
    let error = build_error(builder(section(json!({ "auth": {
        "keys": { "k1": { "algorithm": "HS256", "secret": short } } } }))))
    .await;
    assert!(error.contains("auth.keys.k1.secret"), "{error}");
    assert!(
        error.contains("too short for HS256: 23 bytes, needs at least 32"),
        "{error}"
    );
    assert!(!error.contains(short), "{error}");
    let error = build_error(builder(section(json!({ "auth": {
        "keys": { "k1": { "algorithm": "HS512", "secret": "0123456789abcdef0123456789abcdef0123456789abcdef" } } } }))))
    .await;
    assert!(error.contains("needs at least 64"), "{error}");
    assert!(!error.contains("0123456789abcdef"), "{error}");
}

#[tokio::test]
async fn a_malformed_pem_is_rejected_with_its_path_and_file() {
    let file = fixture("malformed.pem");
    let error = build_error(builder(section(json!({ "auth": {
        "signing_key": "ec",
        "keys": { "ec": { "algorithm": "ES256", "private_key_file": file } } } }))))
    .await;
    assert!(error.contains("auth.keys.ec.private_key_file"), "{error}");
    assert!(
        error.contains("malformed.pem: not a ES256 PEM key"),
        "{error}"
    );
    let error = build_error(builder(section(json!({ "auth": {
        "keys": { "rsa": { "algorithm": "RS256", "public_key_file": "/definitely/not/here.pem" } } } }))))
    .await;
    assert!(
        error.contains("auth.keys.rsa.public_key_file: cannot read /definitely/not/here.pem"),
        "{error}"
    );
}

#[tokio::test]
async fn a_key_of_the_wrong_kind_for_its_algorithm_is_rejected() {
    // An EC key where RS256 is configured.
    let error = build_error(builder(section(json!({ "auth": {
        "signing_key": "k",
        "keys": { "k": { "algorithm": "RS256", "private_key_file": fixture("ec.pem") } } } }))))
    .await;
    assert!(error.contains("auth.keys.k.private_key_file"), "{error}");
    let error = build_error(builder(section(json!({ "auth": {
        "keys": { "k1": { "algorithm": "RS256", "secret": SECRET } } } }))))
    .await;
    assert!(
        error.contains("auth.keys.k1.secret: RS256 is not an HMAC algorithm"),
        "{error}"
    );
    assert!(!error.contains(SECRET), "{error}");
}

#[tokio::test]
async fn an_unknown_algorithm_is_rejected_with_the_choices() {
    let error = build_error(builder(section(json!({ "auth": {
        "keys": { "k1": { "algorithm": "none", "secret": SECRET } } } }))))
    .await;
    assert!(
        error.contains("auth.keys.k1.algorithm: unknown algorithm \"none\", expected one of HS256, HS384, HS512, RS256, ES256, EdDSA"),
        "{error}"
    );
    assert!(!error.contains(SECRET), "{error}");
}

#[tokio::test]
async fn a_signing_key_that_is_missing_retired_or_public_only_is_rejected() {
    let error = build_error(builder(section(json!({ "auth": { "signing_key": "k9" } })))).await;
    assert!(
        error.contains("auth.signing_key: no key \"k9\" in keys (have: k1)"),
        "{error}"
    );
    let error = build_error(builder(section(json!({ "auth": {
        "keys": { "k1": { "retired": true } } } }))))
    .await;
    assert!(
        error.contains("auth.signing_key: key \"k1\" is retired"),
        "{error}"
    );
    let error = build_error(builder(section(json!({ "auth": {
        "signing_key": "pub",
        "keys": { "pub": { "algorithm": "ES256", "public_key_file": fixture("ec.pub.pem") } } } }))))
    .await;
    assert!(
        error.contains("auth.keys.pub.private_key_file: the signing key needs a private key"),
        "{error}"
    );
}

#[tokio::test]
async fn other_bad_values_are_rejected_with_their_paths() {
    for (extra, expected) in [
        (
            json!({ "leeway": "10m" }),
            "auth.leeway: must be at most 5m",
        ),
        (json!({ "audience": [] }), "auth.audience"),
        (
            json!({ "passwords": { "min_classes": 5 } }),
            "auth.passwords.min_classes",
        ),
        (
            json!({ "passwords": { "memory_kib": 1 } }),
            "auth.passwords",
        ),
        (
            json!({ "throttle": { "max_failures_per_account": 0 } }),
            "auth.throttle.max_failures_per_account",
        ),
        (
            json!({ "sessions": { "cookie": { "same_site": "none", "secure": false } } }),
            "auth.sessions.cookie.same_site",
        ),
        (
            json!({ "sessions": { "absolute_lifetime": "1m", "idle_timeout": "5m" } }),
            "auth.sessions.absolute_lifetime",
        ),
        (json!({ "issuer": 5 }), "auth.issuer"),
        (json!({ "surprise": true }), "surprise"),
    ] {
        let error = build_error(builder(section(json!({ "auth": extra })))).await;
        assert!(error.contains(expected), "{expected}: {error}");
    }
}

#[tokio::test]
async fn a_reload_with_a_bad_key_is_rejected_and_the_running_keys_stay() {
    let (mut app, auth) = started(section(json!({}))).await;
    let token = auth.issue_access("ada", &[], &[]).unwrap();
    let outcome = app
        .set_override("auth.keys.k1.secret", json!("too-short"))
        .await
        .unwrap();
    assert_eq!(
        outcome.status,
        modular_core::ReloadStatus::Rejected,
        "{outcome:?}"
    );
    let text = serde_json::to_string(&outcome).unwrap();
    assert!(text.contains("auth.keys.k1.secret"), "{text}");
    assert!(!text.contains("too-short"), "{text}");
    assert_eq!(auth.verify(&token).unwrap().sub, "ada");
    app.stop().await.unwrap();
}
