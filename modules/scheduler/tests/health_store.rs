//! Health on the real PostgreSQL behind a fault proxy (real time): with the persistence
//! database cut off the scheduler reports `unhealthy` (not merely degraded), a due run that
//! cannot be claimed is reported missed (`store_unavailable`), the error never shows the
//! password, and health turns healthy again once the database is back.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::time::Duration;

use modular_core::health::{HealthReport, HealthStatus};
use modular_testkit::{FaultProxy, Service};
use serde_json::json;
use support::{Recorder, drain_of, persisted_app, wait_until};

const PASSWORD: &str = "scheduler-health-pw-7f3a";

async fn report(app: &modular_core::Application) -> HealthReport {
    let answer = app.health().unwrap().force_refresh().await;
    answer
        .reports
        .iter()
        .find(|r| r.module == "scheduler")
        .cloned()
        .expect("a scheduler report")
}

/// Polls the scheduler's report until `want` holds, for at most `within`.
async fn report_until(
    app: &modular_core::Application,
    within: Duration,
    want: impl Fn(&HealthReport) -> bool,
) -> HealthReport {
    let deadline = tokio::time::Instant::now() + within;
    loop {
        let report = report(app).await;
        if want(&report) || tokio::time::Instant::now() >= deadline {
            return report;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_database_makes_health_unhealthy_until_it_is_back() {
    let Some(pg) = modular_testkit::service(Service::Postgres) else {
        return;
    };
    let rest = pg.split_once("://").unwrap().1;
    let (user, rest) = rest.split_once('@').unwrap();
    let user = user.split(':').next().unwrap();
    let (host, database) = rest.split_once('/').unwrap();
    let proxy = FaultProxy::start(host.parse().unwrap()).await.unwrap();
    // Trust auth ignores the password: it stands for the credential a real URL carries.
    let url = format!("postgres://{user}:{PASSWORD}@{}/{database}", proxy.addr());
    let job = format!(
        "health_{}_{}",
        std::process::id(),
        chrono::Utc::now().timestamp_millis()
    );
    let jobs = Recorder::default();
    let (mut app, _scheduler, mut events, _file) = persisted_app(
        &url,
        json!({ "jobs": { job.clone(): { "cron": "* * * * * *" } } }),
        |m| m.job(job.clone(), jobs.ok()),
    )
    .await;
    assert!(wait_until(Duration::from_secs(10), || jobs.count() >= 1).await);
    let healthy = report_until(&app, Duration::from_secs(10), |r| {
        r.status == HealthStatus::Healthy
    })
    .await;
    assert_eq!(healthy.status, HealthStatus::Healthy, "{healthy:?}");
    assert_eq!(
        json!(healthy.details)["persistence"]["driver"],
        json!("postgres")
    );

    proxy.cut();
    let cut = report_until(&app, Duration::from_secs(20), |r| {
        r.status != HealthStatus::Healthy
    })
    .await;
    assert_eq!(cut.status, HealthStatus::Unhealthy, "{cut:?}");
    assert!(
        cut.message
            .contains("the persistence database is unreachable"),
        "{cut:?}"
    );
    let error = json!(cut.details)["persistence"]["error"].clone();
    assert!(error.is_string(), "the error is in the details: {cut:?}");
    let shown = format!("{cut:?}");
    assert!(!shown.contains(PASSWORD), "{shown}");
    // A due occurrence that cannot be claimed is reported missed, not run unclaimed.
    let mut missed = Vec::new();
    let seen = wait_until(Duration::from_secs(20), || {
        missed.extend(drain_of(&mut events, "job.missed"));
        missed
            .iter()
            .any(|m| m["reason"] == json!("store_unavailable"))
    })
    .await;
    assert!(seen, "no store_unavailable miss: {missed:?}");

    proxy.restore();
    let back = report_until(&app, Duration::from_secs(20), |r| {
        r.status == HealthStatus::Healthy
    })
    .await;
    assert_eq!(back.status, HealthStatus::Healthy, "{back:?}");
    // Runs are claimed and run again.
    let before = jobs.count();
    assert!(
        wait_until(Duration::from_secs(10), || jobs.count() > before).await,
        "no run after the database came back"
    );
    app.stop().await.unwrap();
}
