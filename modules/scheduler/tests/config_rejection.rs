//! Bad config is refused by `build()` (or `start()`, for handler names) with its key path.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use modular_scheduler::SchedulerModule;
use serde_json::{Value, json};
use support::{ConfigFile, Recorder, build_error, builder};

async fn rejected(config: Value) -> String {
    let file = ConfigFile::new(&config);
    let jobs = Recorder::default();
    build_error(builder(
        &file,
        SchedulerModule::new().job("report", jobs.ok()),
    ))
    .await
}

#[tokio::test]
async fn an_invalid_cron_names_the_path_and_the_position() {
    let error =
        rejected(json!({ "scheduler": { "jobs": { "report": { "cron": "61 0 * * *" } } } })).await;
    assert!(error.contains("scheduler.jobs.report.cron"), "{error}");
    assert!(error.contains("position 1 (minute field)"), "{error}");
}

#[tokio::test]
async fn a_cron_with_too_many_fields_is_rejected() {
    let error =
        rejected(json!({ "scheduler": { "jobs": { "report": { "cron": "* * * * * * * *" } } } }))
            .await;
    assert!(error.contains("scheduler.jobs.report.cron"), "{error}");
    assert!(error.contains("got 8"), "{error}");
}

#[tokio::test]
async fn an_unknown_time_zone_is_rejected() {
    let error = rejected(json!({ "scheduler": { "jobs": { "report": {
        "cron": "0 * * * *", "timezone": "Europe/Atlantis",
    } } } }))
    .await;
    assert!(error.contains("scheduler.jobs.report.timezone"), "{error}");
    assert!(
        error.contains("unknown time zone \"Europe/Atlantis\""),
        "{error}"
    );
}

#[tokio::test]
async fn zero_workers_are_rejected() {
    let error = rejected(json!({ "scheduler": { "workers": 0 } })).await;
    assert!(error.contains("scheduler.workers"), "{error}");
    assert!(error.contains("must be > 0, got 0"), "{error}");
}

#[tokio::test]
async fn a_job_without_a_handler_is_rejected_at_build() {
    let error =
        rejected(json!({ "scheduler": { "jobs": { "nightly": { "cron": "0 0 * * *" } } } })).await;
    assert!(error.contains("scheduler.jobs.nightly"), "{error}");
    assert!(
        error.contains("no job handler registered under \"nightly\""),
        "{error}"
    );
}

#[tokio::test]
async fn an_unknown_field_and_a_bad_misfire_policy_are_rejected() {
    let error = rejected(json!({ "scheduler": { "jobs": { "report": {
        "cron": "0 * * * *", "misfire": "sometimes",
    } } } }))
    .await;
    assert!(error.contains("scheduler.jobs.report.misfire"), "{error}");
    let error = rejected(json!({ "scheduler": { "wokers": 2 } })).await;
    assert!(error.contains("wokers"), "{error}");
}

#[tokio::test]
async fn a_persistence_connection_without_a_pool_fails_start() {
    let error =
        rejected(json!({ "scheduler": { "persistence": { "connection": "missing" } } })).await;
    assert!(
        error.contains("scheduler.persistence.connection"),
        "{error}"
    );
    assert!(error.contains("\"missing\""), "{error}");
}
