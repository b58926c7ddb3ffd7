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
    settled(&db, 18).await?;
    let report = support::report(&app, "primary").await?;
    assert_eq!(report.status, HealthStatus::Healthy, "{report:?}");

    // 19 of 20 = 95%: degraded, and the ping still ran on the last free connection. The
    // previous check's ping connection goes back to the pool in a task of its own: wait until
    // it is back, or this check would count it as in use and see 20 of 20.
    held.push(support::acquire_within(&pool, BOUND).await??);
    settled(&db, 19).await?;
    let report = support::report(&app, "primary").await?;
    assert_eq!(report.status, HealthStatus::Degraded, "{report:?}");
    assert!(report.message.contains("19 of 20"), "{report:?}");
    assert!(report.details.contains_key("latency_ms"), "{report:?}");
    drop(held);
    app.stop().await?;
    Ok(())
}

/// Waits until exactly `in_use` connections of `primary` are checked out: a connection
/// dropped by a health check or by start-up returns to the pool in a task of its own.
async fn settled(db: &modular_database::DatabaseService, in_use: u32) -> anyhow::Result<()> {
    tokio::time::timeout(BOUND, async {
        while db.stats("primary").map(|s| s.in_use) != Some(in_use) {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await?;
    Ok(())
}

/// The value of the series `name` whose labels include every `labels` pair, in Prometheus
/// text exposition.
fn sample(rendered: &str, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    rendered.lines().find_map(|line| {
        let (series, value) = line.rsplit_once(' ')?;
        let (series_name, series_labels) = series.split_once('{').unwrap_or((series, ""));
        (series_name == name
            && labels
                .iter()
                .all(|(k, v)| series_labels.contains(&format!("{k}=\"{v}\""))))
        .then(|| value.parse().ok())?
    })
}

/// Pool metrics per connection through the `metrics` facade, written at every health check:
/// `modular_database_pool_connections{connection, state=idle|in_use}` and
/// `modular_database_pool_size{connection}`. The recorder is process-wide, so this binary's
/// other tests record too; the connection's name is this test's own.
#[tokio::test]
async fn postgres_pool_metrics_follow_the_connections_in_use() -> anyhow::Result<()> {
    let Some(f) = Fixture::new(Backend::Postgres) else {
        return Ok(());
    };
    let exporter = modular_core::metrics::MetricsExporter::install()?;
    f.write_config(json!({
        "default": "metered",
        "connections": { "metered": f.connection(&f.url, json!({ "max_connections": 4 })) },
    }));
    let mut app = f.start().await?;
    let db = support::service(&app);
    let pool = db.default_pool().expect("pool");

    let first = support::acquire_within(&pool, BOUND).await??;
    let second = support::acquire_within(&pool, BOUND).await??;
    let stats = pool.stats();
    support::report(&app, "metered").await?;
    let rendered = exporter.render();
    let connection = ("connection", "metered");
    assert_eq!(
        sample(
            &rendered,
            "modular_database_pool_connections",
            &[connection, ("state", "in_use")]
        ),
        Some(2.0),
        "{rendered}"
    );
    assert_eq!(
        sample(
            &rendered,
            "modular_database_pool_connections",
            &[connection, ("state", "idle")]
        ),
        Some(f64::from(stats.idle)),
        "{rendered}"
    );
    assert_eq!(
        sample(&rendered, "modular_database_pool_size", &[connection]),
        Some(f64::from(stats.size)),
        "{rendered}"
    );

    // Returned connections go back to the pool in a task of sqlx's, a moment later: the
    // next checks see them idle.
    drop((first, second));
    let idle_again = tokio::time::timeout(BOUND, async {
        loop {
            support::report(&app, "metered").await?;
            let rendered = exporter.render();
            let in_use = sample(
                &rendered,
                "modular_database_pool_connections",
                &[connection, ("state", "in_use")],
            );
            let idle = sample(
                &rendered,
                "modular_database_pool_connections",
                &[connection, ("state", "idle")],
            );
            if in_use == Some(0.0) && idle.is_some_and(|n| n >= 2.0) {
                return anyhow::Ok(());
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    })
    .await;
    assert!(
        matches!(idle_again, Ok(Ok(()))),
        "{idle_again:?}: {}",
        exporter.render()
    );
    app.stop().await?;
    Ok(())
}
