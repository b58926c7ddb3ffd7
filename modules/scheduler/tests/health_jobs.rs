//! Health on paused time: consecutive failures, a saturated queue and an overdue job turn
//! it degraded, and it recovers; details name the jobs.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use modular_core::health::HealthStatus;
use serde_json::json;
use support::{Recorder, advance, fixture, utc};

#[tokio::test(start_paused = true)]
async fn n_consecutive_failures_degrade_health_until_a_run_succeeds() {
    let failing = Arc::new(AtomicBool::new(true));
    let jobs = Recorder::default();
    let flag = Arc::clone(&failing);
    let f = fixture(
        json!({ "scheduler": { "failure_threshold": 2, "jobs": { "sync": { "cron": "* * * * * *" } } } }),
        utc("2026-01-01T00:00:00Z"),
        move |m| {
            m.job(
                "sync",
                jobs.with(move |_| if flag.load(Ordering::SeqCst) { Err("upstream down".into()) } else { Ok(()) }),
            )
        },
    )
    .await;
    advance(Duration::from_millis(1100)).await;
    assert_eq!(
        f.health().await.status,
        HealthStatus::Healthy,
        "one failure is below the threshold"
    );
    advance(Duration::from_secs(1)).await;
    let report = f.health().await;
    assert_eq!(report.status, HealthStatus::Degraded);
    assert_eq!(json!(report.details)["failing"]["sync"], json!(2));
    assert!(report.message.contains("sync"));
    failing.store(false, Ordering::SeqCst);
    advance(Duration::from_secs(1)).await;
    assert_eq!(f.health().await.status, HealthStatus::Healthy);
}

#[tokio::test(start_paused = true)]
async fn a_full_queue_degrades_health_until_it_drains() {
    let jobs = Recorder::default();
    let mut f = fixture(
        json!({ "scheduler": { "workers": 1, "queue_capacity": 1, "jobs": {
            "a": { "cron": "0 * * * * *", "timeout": "1h" },
            "b": { "cron": "0 * * * * *", "timeout": "1h" },
            "c": { "cron": "0 * * * * *", "timeout": "1h" },
        } } }),
        utc("2026-01-01T00:00:59Z"),
        |m| {
            m.job("a", jobs.sleeping(Duration::from_secs(5)))
                .job("b", jobs.sleeping(Duration::from_secs(5)))
                .job("c", jobs.sleeping(Duration::from_secs(5)))
        },
    )
    .await;
    advance(Duration::from_millis(1100)).await;
    let report = f.health().await;
    assert_eq!(report.status, HealthStatus::Degraded, "{report:?}");
    assert!(report.message.contains("saturated"));
    let missed = f.drain("job.missed");
    assert_eq!(missed.len(), 1);
    assert_eq!(missed[0]["reason"], json!("queue_full"));
    advance(Duration::from_secs(11)).await;
    assert_eq!(f.health().await.status, HealthStatus::Healthy);
}

#[tokio::test(start_paused = true)]
async fn a_job_waiting_past_its_tolerance_is_overdue() {
    let jobs = Recorder::default();
    let f = fixture(
        json!({ "scheduler": { "workers": 1, "jobs": {
            "long": { "cron": "0 0 * * * *", "timeout": "1h" },
            "quick": { "cron": "1 0 * * * *", "tolerance": "5s" },
        } } }),
        utc("2026-01-01T00:59:59Z"),
        |m| {
            m.job("long", jobs.sleeping(Duration::from_secs(60)))
                .job("quick", jobs.ok())
        },
    )
    .await;
    advance(Duration::from_secs(4)).await; // 01:00:03: quick waits, 2 s late
    assert_eq!(f.health().await.status, HealthStatus::Healthy);
    advance(Duration::from_secs(5)).await; // 01:00:08: 7 s late
    let report = f.health().await;
    assert_eq!(report.status, HealthStatus::Degraded, "{report:?}");
    assert!(report.message.contains("quick"), "{report:?}");
    assert!(json!(report.details)["overdue"]["quick"].as_u64().unwrap() >= 5000);
    advance(Duration::from_secs(60)).await;
    assert_eq!(jobs.count(), 2);
    assert_eq!(f.health().await.status, HealthStatus::Healthy);
}
