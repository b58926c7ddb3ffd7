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

#[tokio::test(start_paused = true)]
async fn a_run_going_during_a_reload_finishes_under_its_old_timeout_and_the_next_uses_the_new() {
    let jobs = Recorder::default();
    let config =
        |timeout: &str| section(json!({ "slow": { "cron": "0 * * * * *", "timeout": timeout } }));
    let mut f = fixture(config("10s"), utc("2026-01-01T00:00:59Z"), |m| {
        m.job("slow", jobs.sleeping(Duration::from_secs(5)))
    })
    .await;
    advance(Duration::from_secs(2)).await; // 00:01:01: the 00:01:00 run is going
    assert_eq!(f.scheduler.running(), 1);
    let outcome = f.reload(&config("1s")).await;
    assert_eq!(outcome["status"], json!("applied"), "{outcome}");
    assert_eq!(
        f.scheduler.status("slow").unwrap().timeout,
        Duration::from_secs(1)
    );
    advance(Duration::from_secs(10)).await; // 00:01:11
    let status = f.scheduler.status("slow").unwrap();
    assert_eq!(
        status.runs.get("completed"),
        Some(&1),
        "the going run kept its 10 s timeout: {status:?}"
    );
    assert_eq!(status.runs.get("timed_out"), None, "{status:?}");
    advance(Duration::from_secs(60)).await; // 00:02:11: the 00:02:00 run ran under 1 s
    let status = f.scheduler.status("slow").unwrap();
    assert_eq!(status.runs.get("timed_out"), Some(&1), "{status:?}");
    let failed = f.drain("job.failed");
    assert_eq!(failed.len(), 1, "{failed:?}");
    assert_eq!(failed[0]["error"], json!("timed out after 1s"));
    assert_eq!(jobs.count(), 2);
}

#[tokio::test(start_paused = true)]
async fn a_reload_of_max_concurrent_lets_overlapping_runs_through() {
    let jobs = Recorder::default();
    let config = |max: u32| {
        section(
            json!({ "long": { "cron": "* * * * * *", "max_concurrent": max, "timeout": "1m" } }),
        )
    };
    let mut f = fixture(config(1), utc("2026-01-01T00:00:00Z"), |m| {
        m.job("long", jobs.sleeping(Duration::from_millis(2500)))
    })
    .await;
    advance(Duration::from_millis(3200)).await; // 00:03.2: 00:01 runs; 00:02, 00:03 missed
    assert_eq!(jobs.count(), 1);
    assert_eq!(f.drain("job.missed").len(), 2);
    let outcome = f.reload(&config(3)).await;
    assert_eq!(outcome["status"], json!("applied"), "{outcome}");
    advance(Duration::from_secs(3)).await; // 00:06.2: 00:04, 00:05, 00:06 all run
    assert_eq!(jobs.count(), 4, "{:?}", jobs.scheduled());
    assert!(f.drain("job.missed").is_empty());
    assert_eq!(f.scheduler.status("long").unwrap().active, 3);
}

#[tokio::test(start_paused = true)]
async fn a_reload_of_the_misfire_policy_applies_to_the_next_stall() {
    let jobs = Recorder::default();
    let config = |misfire: &str| {
        section(json!({ "tick": {
            "cron": "* * * * * *", "tolerance": "1s", "misfire": misfire, "misfire_cap": 2,
            "max_concurrent": 10,
        } }))
    };
    let mut f = fixture(config("skip"), utc("2026-01-01T00:00:00.500Z"), |m| {
        m.job("tick", jobs.ok())
    })
    .await;
    let outcome = f.reload(&config("run_all")).await;
    assert_eq!(outcome["status"], json!("applied"), "{outcome}");
    support::settle().await;
    // A stall: the clock jumps to 00:00:06.1 before the timer gets to run.
    tokio::time::advance(Duration::from_millis(5600)).await;
    support::settle().await;
    tokio::time::sleep(Duration::from_millis(1)).await;
    support::settle().await;
    let mut scheduled = jobs.scheduled();
    scheduled.sort();
    // run_all with cap 2 (skip would have run only 00:06): the two oldest late ones and the
    // one on time.
    assert_eq!(
        scheduled,
        [
            utc("2026-01-01T00:00:01Z"),
            utc("2026-01-01T00:00:02Z"),
            utc("2026-01-01T00:00:06Z")
        ]
    );
    assert_eq!(f.drain("job.missed").len(), 3);
}
