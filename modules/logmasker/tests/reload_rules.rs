//! The module loads its section into the masker, reloads every dynamic field live, and a rule
//! set that fails to compile fails the reload while the running rules keep masking.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use modular_core::ReloadStatus;
use modular_core::health::HealthStatus;
use modular_logmasker::Masker;
use serde_json::json;

#[tokio::test]
async fn the_module_loads_its_rules_into_the_masker_at_start() -> anyhow::Result<()> {
    let masker = Masker::new();
    let h = support::start(
        json!({ "rules": [{ "field": "customer", "strategy": "hash" }] }),
        &masker,
    )
    .await?;
    let output = h.log(|| tracing::info!(customer = "ACME", password = "pw", "order"));
    assert!(output.contains("customer=[HASH:"), "{output}");
    assert!(
        output.contains("password=[REDACTED]"),
        "defaults stay on: {output}"
    );
    assert!(h.app.services().get::<Masker>().is_some());
    h.finish().await
}

#[tokio::test]
async fn a_rules_reload_switches_the_strategy_of_the_next_line() -> anyhow::Result<()> {
    let masker = Masker::new();
    let mut h = support::start(
        json!({ "rules": [{ "field": "customer", "strategy": "redact" }] }),
        &masker,
    )
    .await?;
    let before = h.log(|| tracing::info!(customer = "ACME-CORP", "order"));
    assert!(before.contains("customer=[REDACTED]"), "{before}");
    let outcome = h
        .app
        .set_override(
            "logmasker.rules",
            json!([{ "field": "customer", "strategy": "partial", "keep_first": 2, "keep_last": 2 }]),
        )
        .await?;
    assert_eq!(outcome.status, ReloadStatus::Applied, "{outcome:?}");
    let after = h.log(|| tracing::info!(customer = "ACME-CORP", "order"));
    assert!(after.contains("customer=\"AC*****RP\""), "{after}");
    let reloaded = h.events_of("rules.reloaded");
    assert_eq!(reloaded.len(), 1, "{reloaded:?}");
    assert_eq!(reloaded[0]["version"], json!(outcome.version));
    assert_eq!(reloaded[0]["enabled"], json!(true));
    h.finish().await
}

#[tokio::test]
async fn an_enabled_reload_turns_masking_off_and_on() -> anyhow::Result<()> {
    let masker = Masker::new();
    let h = support::start(json!({}), &masker).await?;
    let outcome = h
        .app
        .set_override("logmasker.enabled", json!(false))
        .await?;
    assert_eq!(outcome.status, ReloadStatus::Applied, "{outcome:?}");
    let off = h.log(|| tracing::info!(password = "hunter2", "mail bob@example.com"));
    assert!(
        off.contains("hunter2") && off.contains("bob@example.com"),
        "{off}"
    );
    let outcome = h.app.set_override("logmasker.enabled", json!(true)).await?;
    assert_eq!(outcome.status, ReloadStatus::Applied, "{outcome:?}");
    let on = h.log(|| tracing::info!(password = "hunter2", "mail bob@example.com"));
    assert!(
        !on.contains("hunter2") && !on.contains("bob@example.com"),
        "{on}"
    );
    h.finish().await
}

#[tokio::test]
async fn a_defaults_reload_drops_the_default_rules() -> anyhow::Result<()> {
    let masker = Masker::new();
    let h = support::start(json!({ "rules": [{ "field": "customer" }] }), &masker).await?;
    let outcome = h
        .app
        .set_override("logmasker.defaults", json!(false))
        .await?;
    assert_eq!(outcome.status, ReloadStatus::Applied, "{outcome:?}");
    let output = h.log(|| tracing::info!(customer = "ACME", password = "pw1", "order"));
    assert!(output.contains("customer=[REDACTED]"), "{output}");
    assert!(output.contains("password=\"pw1\""), "{output}");
    h.finish().await
}

#[tokio::test]
async fn a_health_optional_reload_replaces_the_registration() -> anyhow::Result<()> {
    let masker = Masker::new();
    let h = support::start(json!({}), &masker).await?;
    assert!(h.health().await.optional);
    let outcome = h
        .app
        .set_override("logmasker.health.optional", json!(false))
        .await?;
    assert_eq!(outcome.status, ReloadStatus::Applied, "{outcome:?}");
    assert!(!h.health().await.optional);
    h.finish().await
}

#[tokio::test]
async fn a_rule_set_that_fails_to_compile_fails_the_reload_and_the_running_rules_keep_masking()
-> anyhow::Result<()> {
    let masker = Masker::new();
    let mut h = support::start(json!({ "rules": [{ "field": "customer" }] }), &masker).await?;
    assert_eq!(h.health().await.status, HealthStatus::Healthy);
    // Each pattern is valid alone; together they do not fit in 2 KB of compiled program.
    let outcome = h
        .app
        .set_override(
            "logmasker",
            json!({ "compiled_size_limit": 2048, "rules": [{ "field": "customer", "strategy": "hash" }] }),
        )
        .await?;
    assert_eq!(outcome.status, ReloadStatus::Failed, "{outcome:?}");
    assert_eq!(outcome.failed_module.as_deref(), Some("logmasker"));
    let error = outcome.error.clone().unwrap_or_default();
    assert!(error.contains("compiled_size_limit"), "{error}");
    let rejected = h.events_of("rules.rejected");
    assert_eq!(rejected.len(), 1, "{rejected:?}");
    assert!(
        rejected[0]["error"]
            .as_str()
            .unwrap()
            .contains("compiled_size_limit"),
        "{rejected:?}"
    );
    // The running set still masks, under its old strategy.
    let output = h.log(|| tracing::info!(customer = "ACME", "mail bob@example.com"));
    assert!(output.contains("customer=[REDACTED]"), "{output}");
    assert!(!output.contains("bob@example.com"), "{output}");
    // The running set is current, so the status stays; the details record the rejection.
    let report = h.health().await;
    assert_eq!(report.status, HealthStatus::Healthy, "{report:?}");
    assert!(
        report.details["last_rejection"]
            .as_str()
            .unwrap()
            .contains("compiled_size_limit")
    );
    assert_eq!(report.details["rejected_reloads"], json!(1));

    h.app.clear_overrides().await?;
    assert_eq!(h.health().await.status, HealthStatus::Healthy);
    // A set that compiles clears it.
    let outcome = h
        .app
        .set_override(
            "logmasker.rules",
            json!([{ "field": "customer", "strategy": "hash" }]),
        )
        .await?;
    assert_eq!(outcome.status, ReloadStatus::Applied, "{outcome:?}");
    assert_eq!(h.health().await.status, HealthStatus::Healthy);
    let output = h.log(|| tracing::info!(customer = "ACME", "order"));
    assert!(output.contains("customer=[HASH:"), "{output}");
    h.finish().await
}

#[tokio::test]
async fn a_reload_aborted_by_another_module_leaves_the_running_rules() -> anyhow::Result<()> {
    let masker = Masker::new();
    let h =
        support::start_with(json!({ "rules": [{ "field": "customer" }] }), &masker, true).await?;
    let outcome = h
        .app
        .set_overrides(
            [
                (
                    "logmasker.rules".to_owned(),
                    json!([{ "field": "customer", "strategy": "hash" }]),
                ),
                ("conformance_tripwire.fail".to_owned(), json!(true)),
            ]
            .into(),
        )
        .await?;
    assert_eq!(outcome.status, ReloadStatus::Failed, "{outcome:?}");
    assert!(
        outcome.aborted.contains(&"logmasker".to_owned()),
        "{outcome:?}"
    );
    let output = h.log(|| tracing::info!(customer = "ACME", "order"));
    assert!(output.contains("customer=[REDACTED]"), "{output}");
    h.finish().await
}

#[tokio::test]
async fn health_is_degraded_while_the_writer_drops_lines_and_recovers_after() -> anyhow::Result<()>
{
    let masker = Masker::new();
    let h = support::start(json!({}), &masker).await?;
    let capture = support::Capture::default();
    let dispatch = tracing::Dispatch::new({
        use tracing_subscriber::layer::SubscriberExt as _;
        tracing_subscriber::registry().with(masker.layer(capture.clone()))
    });
    capture.set_failing(true);
    tracing::dispatcher::with_default(&dispatch, || {
        for i in 0..3 {
            tracing::info!(i, "lost");
        }
    });
    let report = h.health().await;
    assert_eq!(report.status, HealthStatus::Degraded, "{report:?}");
    assert_eq!(report.details["dropped_since_last_check"], json!(3));
    assert_eq!(report.details["dropped_lines"], json!(3));
    capture.set_failing(false);
    tracing::dispatcher::with_default(&dispatch, || tracing::info!("written"));
    let report = h.health().await;
    assert_eq!(report.status, HealthStatus::Healthy, "{report:?}");
    assert_eq!(report.details["dropped_lines"], json!(3));
    assert!(capture.text().contains("written"));
    h.finish().await
}

#[tokio::test]
async fn a_tracked_drop_counter_degrades_health() -> anyhow::Result<()> {
    let masker = Masker::new();
    let h = support::start(json!({}), &masker).await?;
    let dropped = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
    let source = std::sync::Arc::clone(&dropped);
    masker.track_dropped(move || source.load(std::sync::atomic::Ordering::Relaxed));
    assert_eq!(h.health().await.status, HealthStatus::Healthy);
    dropped.store(7, std::sync::atomic::Ordering::Relaxed);
    let report = h.health().await;
    assert_eq!(report.status, HealthStatus::Degraded, "{report:?}");
    assert_eq!(report.details["dropped_since_last_check"], json!(7));
    assert_eq!(h.health().await.status, HealthStatus::Healthy);
    h.finish().await
}
