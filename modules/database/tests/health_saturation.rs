//! Pool utilisation in health: degraded above 90% of `max_connections` in use (the ping is
//! skipped at 100%), healthy again once connections are returned.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::time::Duration;

use modular_core::health::HealthStatus;
use serde_json::json;
use support::{Backend, Fixture};

const BOUND: Duration = Duration::from_secs(15);

async fn a_saturated_pool_is_degraded(backend: Backend) -> anyhow::Result<()> {
    let Some(f) = Fixture::new(backend) else {
        return Ok(());
    };
    f.write_config(f.single(json!({ "max_connections": 2 })));
    let mut app = f.start().await?;
    let db = support::service(&app);
    let pool = db.default_pool().expect("pool");

    let first = support::acquire_within(&pool, BOUND).await??;
    let second = support::acquire_within(&pool, BOUND).await??;
    let report = support::report(&app, "primary").await?;
    assert_eq!(report.status, HealthStatus::Degraded, "{report:?}");
    assert!(
        report.message.contains("2 of 2 connections in use"),
        "{report:?}"
    );
    assert_eq!(report.details["in_use"], 2);
    assert_eq!(report.details["max"], 2);
    assert_eq!(report.details["idle"], 0);
    let answer = app.health().expect("health").force_refresh().await;
    assert_eq!(answer.readiness, HealthStatus::Degraded);

    // Dropped connections go back to the pool in a task of sqlx's, a moment later.
    drop((first, second));
    let (recovered, last) =
        support::wait_for_status(&app, "primary", HealthStatus::Healthy, BOUND).await;
    assert!(
        recovered,
        "still not healthy with every connection returned: {last:?}"
    );
    app.stop().await?;
    Ok(())
}

#[tokio::test]
async fn postgres_a_saturated_pool_is_degraded() -> anyhow::Result<()> {
    a_saturated_pool_is_degraded(Backend::Postgres).await
}

#[tokio::test]
async fn mariadb_a_saturated_pool_is_degraded() -> anyhow::Result<()> {
    a_saturated_pool_is_degraded(Backend::MariaDb).await
}

#[tokio::test]
async fn sqlite_a_saturated_pool_is_degraded() -> anyhow::Result<()> {
    a_saturated_pool_is_degraded(Backend::Sqlite).await
}

#[tokio::test]
async fn the_degraded_threshold_is_above_ninety_percent_in_use() -> anyhow::Result<()> {
    let Some(f) = Fixture::new(Backend::Sqlite) else {
        return Ok(());
    };
    f.write_config(f.single(json!({ "max_connections": 20 })));
    let mut app = f.start().await?;
    let db = support::service(&app);
    let pool = db.default_pool().expect("pool");

    let mut held = Vec::new();
    for _ in 0..18 {
        held.push(support::acquire_within(&pool, BOUND).await??);
    }
    // 18 of 20 = 90%: not above the threshold.
    let report = support::report(&app, "primary").await?;
    assert_eq!(report.status, HealthStatus::Healthy, "{report:?}");

    // 19 of 20 = 95%: degraded, and the ping still ran on the last free connection.
    held.push(support::acquire_within(&pool, BOUND).await??);
    let report = support::report(&app, "primary").await?;
    assert_eq!(report.status, HealthStatus::Degraded, "{report:?}");
    assert!(report.message.contains("19 of 20"), "{report:?}");
    assert!(report.details.contains_key("latency_ms"), "{report:?}");
    drop(held);
    app.stop().await?;
    Ok(())
}
