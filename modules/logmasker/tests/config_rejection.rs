//! Bad config is refused with its key path, at start-up and on reload, and the running rules
//! stay.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use modular_core::ReloadStatus;
use modular_logmasker::Masker;
use serde_json::{Value, json};

async fn build_error(section: Value) -> String {
    match support::build(section, &Masker::new(), false).await {
        Ok(mut app) => {
            let _ = app.stop().await;
            panic!("the section was accepted")
        }
        Err(error) => error.to_string(),
    }
}

#[tokio::test]
async fn an_invalid_regex_is_refused_with_its_path_and_the_regex_error() {
    let error = build_error(json!({ "rules": [{ "field": "a" }, { "regex": "ORD-(\\d+" }] })).await;
    assert!(error.contains("logmasker.rules.1.regex"), "{error}");
    assert!(error.contains("invalid regex"), "{error}");
    assert!(
        error.contains("unclosed group"),
        "the regex crate's words: {error}"
    );
}

#[tokio::test]
async fn an_unknown_strategy_is_refused_with_its_path() {
    let error = build_error(json!({ "rules": [{ "field": "a", "strategy": "scramble" }] })).await;
    assert!(error.contains("logmasker.rules.0.strategy"), "{error}");
    assert!(error.contains("unknown strategy `scramble`"), "{error}");
}

#[tokio::test]
async fn partial_keeping_more_than_it_masks_is_refused_with_its_path() {
    let error = build_error(json!({
        "rules": [{ "builtin": "credit_card", "strategy": "partial", "keep_first": 6, "keep_last": 4 }]
    }))
    .await;
    assert!(error.contains("logmasker.rules.0.keep_last"), "{error}");
    assert!(error.contains("more characters than it masks"), "{error}");
}

#[tokio::test]
async fn partial_keeping_nothing_is_refused() {
    let error = build_error(json!({
        "rules": [{ "field": "a", "strategy": "partial", "keep_first": 0, "keep_last": 0 }]
    }))
    .await;
    assert!(error.contains("logmasker.rules.0.keep_last"), "{error}");
}

#[tokio::test]
async fn drop_on_a_value_pattern_is_refused() {
    let error = build_error(json!({ "rules": [{ "builtin": "email", "strategy": "drop" }] })).await;
    assert!(error.contains("logmasker.rules.0.strategy"), "{error}");
}

#[tokio::test]
async fn an_unknown_builtin_is_refused_with_the_known_ones() {
    let error = build_error(json!({ "rules": [{ "builtin": "ssn" }] })).await;
    assert!(error.contains("logmasker.rules.0.builtin"), "{error}");
    assert!(error.contains("credit_card"), "{error}");
}

#[tokio::test]
async fn a_rule_with_two_kinds_is_refused() {
    let error = build_error(json!({ "rules": [{ "field": "a", "regex": "b" }] })).await;
    assert!(error.contains("logmasker.rules.0"), "{error}");
    assert!(error.contains("exactly one of"), "{error}");
}

#[tokio::test]
async fn an_unknown_key_is_refused() {
    let error = build_error(json!({ "rules": [{ "feild": "a" }] })).await;
    assert!(error.contains("feild"), "{error}");
    let error = build_error(json!({ "enabeld": true })).await;
    assert!(error.contains("enabeld"), "{error}");
}

#[tokio::test]
async fn a_bad_regex_reload_is_rejected_and_the_running_rules_stay() -> anyhow::Result<()> {
    let masker = Masker::new();
    let h = support::start(json!({ "rules": [{ "field": "customer" }] }), &masker).await?;
    let outcome = h
        .app
        .set_override(
            "logmasker.rules",
            json!([{ "field": "customer", "strategy": "hash" }, { "regex": "[a-" }]),
        )
        .await?;
    assert_eq!(outcome.status, ReloadStatus::Rejected, "{outcome:?}");
    assert!(
        outcome
            .errors
            .iter()
            .any(|e| e.path.contains("logmasker.rules.1.regex")
                && e.message.contains("invalid regex")),
        "{:?}",
        outcome.errors
    );
    let output = h.log(|| tracing::info!(customer = "ACME", "order"));
    assert!(output.contains("customer=[REDACTED]"), "{output}");
    h.finish().await
}

#[tokio::test]
async fn a_pattern_too_big_for_compiled_size_limit_is_refused_with_its_path_and_fits_a_larger_one()
-> anyhow::Result<()> {
    // A bounded repetition of a Unicode class: small to write, large once compiled.
    let big = json!([{ "regex": "\\w{200}" }]);
    let error = build_error(json!({ "compiled_size_limit": 64 << 10, "rules": big.clone() })).await;
    assert!(error.contains("logmasker.rules.0.regex"), "{error}");
    assert!(error.contains("compiled_size_limit"), "{error}");

    // Under the default limit the same rule compiles, and masks.
    let masker = Masker::new();
    let h = support::start(json!({ "rules": big }), &masker).await?;
    let long = "x".repeat(200);
    let output = h.log(|| tracing::info!("id {long}"));
    assert!(output.contains("id [REDACTED]"), "{output}");
    h.finish().await
}
