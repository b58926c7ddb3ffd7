//! Reloads on paused time: a cron change takes effect at the next occurrence, an invalid one
//! is rejected while the old schedule keeps running, and every dynamic field changes the
//! running scheduler.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::time::Duration;

use serde_json::{Value, json};
use support::{Recorder, advance, fixture, section, utc};

fn errors(outcome: &Value) -> Vec<(String, String)> {
    outcome["errors"]
        .as_array()
        .map(|errors| {
            errors
                .iter()
                .map(|e| {
                    (
                        e["path"].as_str().unwrap_or_default().to_owned(),
                        e["message"].as_str().unwrap_or_default().to_owned(),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

#[tokio::test(start_paused = true)]
async fn a_cron_change_takes_effect_at_the_next_occurrence() {
    let jobs = Recorder::default();
    let f = fixture(
        section(json!({ "report": { "cron": "0 * * * * *" } })),
        utc("2026-01-01T00:00:30Z"),
        |m| m.job("report", jobs.ok()),
    )
    .await;
    advance(Duration::from_secs(40)).await; // 00:01:10, ran at 00:01:00
    let outcome = f
        .reload(&section(json!({ "report": { "cron": "*/10 * * * * *" } })))
        .await;
    assert_eq!(outcome["status"], json!("applied"), "{outcome}");
    assert_eq!(
        f.scheduler.status("report").unwrap().next_run,
        Some(utc("2026-01-01T00:01:20Z"))
    );
    advance(Duration::from_secs(30)).await; // 00:01:40
    assert_eq!(
        jobs.scheduled(),
        [
            utc("2026-01-01T00:01:00Z"),
            utc("2026-01-01T00:01:20Z"),
            utc("2026-01-01T00:01:30Z"),
            utc("2026-01-01T00:01:40Z"),
        ]
    );
}

#[tokio::test(start_paused = true)]
async fn an_invalid_cron_is_rejected_with_its_position_and_the_old_schedule_keeps_running() {
    let jobs = Recorder::default();
    let f = fixture(
        section(json!({ "report": { "cron": "*/10 * * * * *" } })),
        utc("2026-01-01T00:00:05Z"),
        |m| m.job("report", jobs.ok()),
    )
    .await;
    let outcome = f
        .reload(&section(json!({ "report": { "cron": "*/10 * 25 * * *" } })))
        .await;
    assert_eq!(outcome["status"], json!("rejected"), "{outcome}");
    let errors = errors(&outcome);
    assert_eq!(errors[0].0, "scheduler.jobs.report.cron", "{errors:?}");
    assert!(
        errors[0].1.contains("position 8 (hour field)"),
        "{errors:?}"
    );
    advance(Duration::from_secs(20)).await;
    assert_eq!(
        jobs.scheduled(),
        [utc("2026-01-01T00:00:10Z"), utc("2026-01-01T00:00:20Z")]
    );
}

#[tokio::test(start_paused = true)]
async fn adding_a_job_without_a_handler_is_rejected_with_its_path() {
    let jobs = Recorder::default();
    let f = fixture(
        section(json!({ "report": { "cron": "0 * * * * *" } })),
        utc("2026-01-01T00:00:05Z"),
        |m| m.job("report", jobs.ok()),
    )
    .await;
    let outcome = f
        .reload(&section(json!({
            "report": { "cron": "0 * * * * *" },
            "ghost": { "cron": "0 * * * * *" },
        })))
        .await;
    assert_eq!(outcome["status"], json!("rejected"), "{outcome}");
    let errors = errors(&outcome);
    assert_eq!(errors[0].0, "scheduler.jobs.ghost", "{errors:?}");
    assert!(errors[0].1.contains("no job handler"), "{errors:?}");
    assert!(f.scheduler.status("ghost").is_none());
}

#[tokio::test(start_paused = true)]
async fn a_reload_changes_the_worker_count_live() {
    let a = Recorder::default();
    let b = Recorder::default();
    let config = |workers: u32| {
        json!({ "scheduler": { "workers": workers, "jobs": {
            "a": { "cron": "0 * * * * *", "timeout": "1h" },
            "b": { "cron": "0 * * * * *", "timeout": "1h" },
        } } })
    };
    let f = fixture(config(1), utc("2026-01-01T00:00:59Z"), |m| {
        m.job("a", a.sleeping(Duration::from_secs(30)))
            .job("b", b.sleeping(Duration::from_secs(30)))
    })
    .await;
    advance(Duration::from_secs(2)).await;
    assert_eq!((f.scheduler.running(), f.scheduler.queue_depth()), (1, 1));
    let outcome = f.reload(&config(2)).await;
    assert_eq!(outcome["status"], json!("applied"), "{outcome}");
    advance(Duration::from_millis(10)).await;
    assert_eq!((f.scheduler.running(), f.scheduler.queue_depth()), (2, 0));
    assert_eq!(f.scheduler.workers(), 2);
}

#[tokio::test(start_paused = true)]
async fn a_reload_changes_timeout_retry_enabled_and_max_concurrent_of_the_next_run() {
    let jobs = Recorder::default();
    let mut f = fixture(
        section(json!({ "job": { "cron": "0 * * * * *" } })),
        utc("2026-01-01T00:00:30Z"),
        |m| m.job("job", jobs.with(|_| Err("always".into()))),
    )
    .await;
    advance(Duration::from_secs(31)).await;
    assert_eq!(jobs.count(), 1, "no retry by default");
    let outcome = f
        .reload(&section(json!({ "job": {
            "cron": "0 * * * * *",
            "retry": { "max_attempts": 2, "initial_backoff": "1s" },
        } })))
        .await;
    assert_eq!(outcome["status"], json!("applied"), "{outcome}");
    advance(Duration::from_secs(60)).await;
    assert_eq!(jobs.count(), 3, "the next run retried once");
    f.reload(&section(
        json!({ "job": { "cron": "0 * * * * *", "enabled": false } }),
    ))
    .await;
    advance(Duration::from_secs(120)).await;
    assert_eq!(jobs.count(), 3, "disabled");
    assert!(!f.scheduler.status("job").unwrap().enabled);
    let failed = f.drain("job.failed");
    assert!(!failed.is_empty());
}
