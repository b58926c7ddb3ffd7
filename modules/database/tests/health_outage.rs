//! Health through an outage: connected through the testkit's fault-injecting proxy to the real
//! PostgreSQL and MariaDB, a connection turns unhealthy when the link is cut and healthy again
//! when it is restored, and its pool serves again without a restart. A reload of
//! `database.health.timeout` / `database.health.optional` changes the live registration.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::net::SocketAddr;
use std::time::Duration;

use modular_core::ReloadStatus;
use modular_core::health::HealthStatus;
use modular_database::DEFAULT_HEALTH_TIMEOUT;
use modular_testkit::FaultProxy;
use serde_json::json;
use support::{Backend, Fixture};

/// A bound on each wait; the checks themselves answer within `ping_timeout` (1 s).
const WITHIN: Duration = Duration::from_secs(20);

async fn health_follows_the_server_through_an_outage(backend: Backend) -> anyhow::Result<()> {
    let Some(f) = Fixture::new(backend) else {
        return Ok(());
    };
    let proxy = FaultProxy::start(support::server_addr(&f.url)?).await?;
    let url = support::with_addr(&f.url, proxy.addr())?;
    f.write_config(json!({
        "connections": { "primary": f.connection(&url, json!({ "min_connections": 1, "ping_timeout": "1s" })) },
    }));
    let mut app = f.start().await?;
    let db = support::service(&app);

    let report = support::report(&app, "primary").await?;
    assert_eq!(report.status, HealthStatus::Healthy, "{report:?}");

    proxy.cut();
    let (went_down, last) =
        support::wait_for_status(&app, "primary", HealthStatus::Unhealthy, WITHIN).await;
    assert!(went_down, "still not unhealthy with the link cut: {last:?}");
    let report = last.expect("a report");
    assert!(report.message.starts_with("ping"), "{report:?}");
    let answer = app.health().expect("health").force_refresh().await;
    assert_eq!(answer.readiness, HealthStatus::Unhealthy);

    proxy.restore();
    let (came_back, last) =
        support::wait_for_status(&app, "primary", HealthStatus::Healthy, WITHIN).await;
    assert!(
        came_back,
        "not healthy again after the link was restored: {last:?}"
    );

    // The same pool recovered by itself: no reload, no restart.
    assert_eq!(db.generation("primary"), Some(1));
    let pool = db.default_pool().expect("pool");
    assert!(pool.ping().await.is_ok());
    let table = support::unique_table("outage");
    let rows = support::round_trip(&pool, &table).await;
    support::drop_table(&pool, &table).await;
    assert_eq!(rows?, 2);

    app.stop().await?;
    proxy.shutdown().await;
    Ok(())
}

/// The application holds every connection (as queries stuck on a cut socket would), so a
/// pooled ping could only queue behind them: health must still see the server go away.
async fn a_saturated_pool_turns_unhealthy_in_an_outage(backend: Backend) -> anyhow::Result<()> {
    let Some(f) = Fixture::new(backend) else {
        return Ok(());
    };
    let proxy = FaultProxy::start(support::server_addr(&f.url)?).await?;
    let url = support::with_addr(&f.url, proxy.addr())?;
    f.write_config(json!({
        "connections": { "primary": f.connection(&url, json!({ "max_connections": 2, "ping_timeout": "1s" })) },
    }));
    let mut app = f.start().await?;
    let db = support::service(&app);
    let pool = db.default_pool().expect("pool");

    let first = support::acquire_within(&pool, WITHIN).await??;
    let second = support::acquire_within(&pool, WITHIN).await??;
    let report = support::report(&app, "primary").await?;
    assert_eq!(report.status, HealthStatus::Degraded, "{report:?}");
    assert!(
        report.message.contains("2 of 2 connections in use"),
        "{report:?}"
    );

    proxy.cut();
    let (went_down, last) =
        support::wait_for_status(&app, "primary", HealthStatus::Unhealthy, WITHIN).await;
    assert!(
        went_down,
        "still not unhealthy with the link cut and the pool saturated: {last:?}"
    );
    let report = last.expect("a report");
    assert!(report.message.starts_with("ping"), "{report:?}");
    assert_eq!(report.details["in_use"], 2, "{report:?}");
    let answer = app.health().expect("health").force_refresh().await;
    assert_eq!(answer.readiness, HealthStatus::Unhealthy);

    // The server is back while the application still holds both (now dead) connections:
    // saturated, but reachable.
    proxy.restore();
    let (reachable, last) =
        support::wait_for_status(&app, "primary", HealthStatus::Degraded, WITHIN).await;
    assert!(
        reachable,
        "not degraded again after the link was restored: {last:?}"
    );

    drop((first, second));
    let (came_back, last) =
        support::wait_for_status(&app, "primary", HealthStatus::Healthy, WITHIN).await;
    assert!(
        came_back,
        "not healthy again with every connection returned: {last:?}"
    );
    assert!(db.default_pool().expect("pool").ping().await.is_ok());

    app.stop().await?;
    proxy.shutdown().await;
    Ok(())
}

/// Through a slow link (each chunk delayed 300 ms, so a ping takes well over 200 ms but stays
/// inside its 5 s `ping_timeout`): a reload of `health.timeout` to 200 ms makes the aggregator
/// cut the check short, and a reload of `health.optional` takes the failure out of readiness.
async fn a_reload_of_health_options_changes_the_live_registration(
    backend: Backend,
) -> anyhow::Result<()> {
    let Some(f) = Fixture::new(backend) else {
        return Ok(());
    };
    let proxy = FaultProxy::start(support::server_addr(&f.url)?).await?;
    let url = support::with_addr(&f.url, proxy.addr())?;
    f.write_config(json!({
        "connections": { "primary": f.connection(&url, json!({ "min_connections": 1, "ping_timeout": "5s" })) },
    }));
    let mut app = f.start().await?;
    let health = app.health().expect("health").clone();
    let before = health.provider_options("database").expect("registered");
    assert_eq!(before.timeout, DEFAULT_HEALTH_TIMEOUT);
    assert!(!before.optional);

    proxy.set_latency(Duration::from_millis(300));
    let report = support::report(&app, "primary").await?;
    assert_eq!(
        report.status,
        HealthStatus::Healthy,
        "slow, not failing: {report:?}"
    );

    let outcome = app
        .set_override("database.health.timeout", json!("200ms"))
        .await?;
    assert_eq!(outcome.status, ReloadStatus::Applied, "{outcome:?}");
    let report = support::report(&app, "primary").await?;
    assert_eq!(report.status, HealthStatus::Unhealthy, "{report:?}");
    assert_eq!(report.message, "timed out after 200ms", "{report:?}");
    let answer = health.force_refresh().await;
    assert_eq!(answer.readiness, HealthStatus::Unhealthy);

    let outcome = app
        .set_override("database.health.optional", json!(true))
        .await?;
    assert_eq!(outcome.status, ReloadStatus::Applied, "{outcome:?}");
    let answer = health.force_refresh().await;
    assert_eq!(
        answer.health,
        HealthStatus::Unhealthy,
        "still counted: {answer:?}"
    );
    assert_eq!(answer.readiness, HealthStatus::Healthy, "{answer:?}");
    let after = health.provider_options("database").expect("registered");
    assert_eq!(after.timeout, Duration::from_millis(200));
    assert!(after.optional);

    proxy.set_latency(Duration::ZERO);
    app.stop().await?;
    proxy.shutdown().await;
    Ok(())
}

/// A connection marked `optional: true` (a replica the service can run without) reports
/// optional: its outage shows in overall health but never fails readiness, while the other
/// connection still counts. Dynamic: a reload to `optional: false` makes the same outage fail
/// readiness, on the same pool.
async fn an_optional_connection_never_fails_readiness(backend: Backend) -> anyhow::Result<()> {
    let Some(f) = Fixture::new(backend) else {
        return Ok(());
    };
    let proxy = FaultProxy::start(support::server_addr(&f.url)?).await?;
    let replica_url = support::with_addr(&f.url, proxy.addr())?;
    f.write_config(json!({
        "connections": {
            "primary": f.connection(&f.url, json!({})),
            "replica": f.connection(&replica_url, json!({ "optional": true, "min_connections": 1 })),
        },
    }));
    let mut app = f.start().await?;
    let db = support::service(&app);
    let health = app.health().expect("health").clone();

    let report = support::report(&app, "replica").await?;
    assert_eq!(report.status, HealthStatus::Healthy, "{report:?}");
    assert!(report.optional, "{report:?}");
    assert!(!support::report(&app, "primary").await?.optional);

    proxy.cut();
    let (went_down, last) =
        support::wait_for_status(&app, "replica", HealthStatus::Unhealthy, WITHIN).await;
    assert!(
        went_down,
        "replica not unhealthy with the link cut: {last:?}"
    );
    let answer = health.force_refresh().await;
    assert_eq!(answer.health, HealthStatus::Unhealthy, "{answer:?}");
    assert_eq!(answer.readiness, HealthStatus::Healthy, "{answer:?}");

    let outcome = app
        .set_override("database.connections.replica.optional", json!(false))
        .await?;
    assert_eq!(outcome.status, ReloadStatus::Applied, "{outcome:?}");
    assert_eq!(
        db.generation("replica"),
        Some(1),
        "no new pool for a health option"
    );
    let report = support::report(&app, "replica").await?;
    assert_eq!(report.status, HealthStatus::Unhealthy, "{report:?}");
    assert!(!report.optional, "{report:?}");
    let answer = health.force_refresh().await;
    assert_eq!(answer.readiness, HealthStatus::Unhealthy, "{answer:?}");

    proxy.restore();
    app.stop().await?;
    proxy.shutdown().await;
    Ok(())
}

/// Through a slow link (300 ms a chunk): healthy under a 5 s `ping_timeout`; a reload to
/// 100 ms makes the next check report the ping's own timeout, on the same pool.
#[tokio::test]
async fn postgres_a_reloaded_ping_timeout_bounds_the_next_check() -> anyhow::Result<()> {
    let Some(f) = Fixture::new(Backend::Postgres) else {
        return Ok(());
    };
    let proxy = FaultProxy::start(support::server_addr(&f.url)?).await?;
    let url = support::with_addr(&f.url, proxy.addr())?;
    f.write_config(json!({
        "connections": { "primary": f.connection(&url, json!({ "min_connections": 1, "ping_timeout": "5s" })) },
    }));
    let mut app = f.start().await?;
    let db = support::service(&app);
    proxy.set_latency(Duration::from_millis(300));
    let report = support::report(&app, "primary").await?;
    assert_eq!(report.status, HealthStatus::Healthy, "{report:?}");

    let outcome = app
        .set_override("database.connections.primary.ping_timeout", json!("100ms"))
        .await?;
    assert_eq!(outcome.status, ReloadStatus::Applied, "{outcome:?}");
    assert_eq!(db.generation("primary"), Some(1));
    let report = support::report(&app, "primary").await?;
    assert_eq!(report.status, HealthStatus::Unhealthy, "{report:?}");
    assert_eq!(report.message, "ping timed out after 100ms", "{report:?}");

    proxy.set_latency(Duration::ZERO);
    app.stop().await?;
    proxy.shutdown().await;
    Ok(())
}

#[tokio::test]
async fn postgres_an_optional_connection_never_fails_readiness() -> anyhow::Result<()> {
    an_optional_connection_never_fails_readiness(Backend::Postgres).await
}

#[tokio::test]
async fn mariadb_an_optional_connection_never_fails_readiness() -> anyhow::Result<()> {
    an_optional_connection_never_fails_readiness(Backend::MariaDb).await
}

#[tokio::test]
async fn postgres_a_reload_of_health_options_changes_the_live_registration() -> anyhow::Result<()> {
    a_reload_of_health_options_changes_the_live_registration(Backend::Postgres).await
}

#[tokio::test]
async fn postgres_a_saturated_pool_turns_unhealthy_in_an_outage() -> anyhow::Result<()> {
    a_saturated_pool_turns_unhealthy_in_an_outage(Backend::Postgres).await
}

#[tokio::test]
async fn mariadb_a_saturated_pool_turns_unhealthy_in_an_outage() -> anyhow::Result<()> {
    a_saturated_pool_turns_unhealthy_in_an_outage(Backend::MariaDb).await
}

#[tokio::test]
async fn postgres_health_follows_the_server_through_an_outage() -> anyhow::Result<()> {
    health_follows_the_server_through_an_outage(Backend::Postgres).await
}

#[tokio::test]
async fn mariadb_health_follows_the_server_through_an_outage() -> anyhow::Result<()> {
    health_follows_the_server_through_an_outage(Backend::MariaDb).await
}

#[test]
fn urls_are_pointed_at_the_proxy() {
    let addr: SocketAddr = "127.0.0.1:4000".parse().unwrap();
    assert_eq!(
        support::with_addr("postgres://postgres@127.0.0.1:5432/test", addr).unwrap(),
        "postgres://postgres@127.0.0.1:4000/test"
    );
    assert_eq!(
        support::with_addr("mysql://root:pw@localhost/test?ssl-mode=disabled", addr).unwrap(),
        "mysql://root:pw@127.0.0.1:4000/test?ssl-mode=disabled"
    );
    assert_eq!(
        support::server_addr("postgres://postgres@127.0.0.1:5432/test").unwrap(),
        "127.0.0.1:5432".parse::<SocketAddr>().unwrap()
    );
}
