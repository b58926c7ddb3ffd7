//! Redis health through the aggregator, with the testkit's fault proxy between the cache and the
//! real server: cut, restore, and slow links.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::time::Duration;

use modular_core::ReloadStatus;
use modular_core::health::HealthStatus;
use modular_testkit::Service;
use serde_json::json;

#[tokio::test]
async fn health_goes_unhealthy_when_redis_is_cut_and_healthy_again_when_it_is_back()
-> anyhow::Result<()> {
    let Some(url) = modular_testkit::service(Service::Redis) else {
        return Ok(());
    };
    let (proxy, proxied) = support::redis_proxy(&url).await?;
    let (section, prefix) = support::redis_section("cut_restore", &proxied, json!({}));
    let mut h = support::start(section).await?;
    h.prefix = prefix;
    let address = proxy.addr().to_string();
    h.wait_for_event("engine.connected", Duration::from_secs(1), |d| {
        d["reason"] == "start"
    })
    .await;
    h.cache.set("k", b"v", None).await?;
    let report = h.cache_report().await;
    assert_eq!(report.status, HealthStatus::Healthy, "{report:?}");

    proxy.cut();
    let report = h
        .wait_for_health(HealthStatus::Unhealthy, Duration::from_secs(10))
        .await;
    assert!(!report.message.is_empty(), "{report:?}");
    let health = h.app.health().unwrap().force_refresh().await;
    assert_eq!(
        health.readiness,
        HealthStatus::Unhealthy,
        "a required cache fails readiness"
    );
    let disconnected = h
        .wait_for_event("engine.disconnected", Duration::from_secs(1), |_| true)
        .await;
    assert_eq!(disconnected["address"], json!(address));
    let error = h.cache.get("k").await.expect_err("redis is unreachable");
    assert!(error.is_connection_error(), "{error:?}");

    // No restart: the connection manager reconnects by itself.
    proxy.restore();
    h.wait_for_health(HealthStatus::Healthy, Duration::from_secs(20))
        .await;
    h.wait_for_event("engine.connected", Duration::from_secs(1), |d| {
        d["reason"] == "recovered"
    })
    .await;
    assert_eq!(h.cache.get("k").await?.as_deref(), Some(&b"v"[..]));
    h.cache.set("k2", b"v2", None).await?;
    let health = h.app.health().unwrap().force_refresh().await;
    assert_eq!(health.readiness, HealthStatus::Healthy);
    h.finish().await
}

#[tokio::test]
async fn a_slow_redis_is_degraded_until_the_threshold_is_reloaded_above_its_latency()
-> anyhow::Result<()> {
    let Some(url) = modular_testkit::service(Service::Redis) else {
        return Ok(());
    };
    let (proxy, proxied) = support::redis_proxy(&url).await?;
    let (section, prefix) = support::redis_section(
        "slow",
        &proxied,
        json!({ "health": { "latency_threshold": "50ms", "timeout": "5s" }, "redis": { "command_timeout": "5s" } }),
    );
    let mut h = support::start(section).await?;
    h.prefix = prefix;

    // 50 ms each way: a PING takes at least 100 ms.
    proxy.set_latency(Duration::from_millis(50));
    let report = h.cache_report().await;
    assert_eq!(report.status, HealthStatus::Degraded, "{report:?}");
    assert!(
        report.message.contains("above the 50ms threshold"),
        "{}",
        report.message
    );
    let latency = report
        .details
        .get("latency_ms")
        .and_then(serde_json::Value::as_f64)
        .unwrap_or_default();
    assert!(latency >= 100.0, "latency_ms {latency}");
    let health = h.app.health().unwrap().force_refresh().await;
    assert_eq!(
        health.readiness,
        HealthStatus::Degraded,
        "degraded does not fail readiness"
    );

    let outcome = h
        .app
        .set_override("cache.health.latency_threshold", json!("1h"))
        .await?;
    assert_eq!(outcome.status, ReloadStatus::Applied, "{outcome:?}");
    let report = h.cache_report().await;
    assert_eq!(report.status, HealthStatus::Healthy, "{report:?}");
    proxy.set_latency(Duration::ZERO);
    h.finish().await
}

#[tokio::test]
async fn a_ping_slower_than_the_health_timeout_is_unhealthy() -> anyhow::Result<()> {
    let Some(url) = modular_testkit::service(Service::Redis) else {
        return Ok(());
    };
    let (proxy, proxied) = support::redis_proxy(&url).await?;
    let (section, prefix) = support::redis_section(
        "ping_timeout",
        &proxied,
        json!({ "health": { "timeout": "100ms" }, "redis": { "command_timeout": "5s" } }),
    );
    let mut h = support::start(section).await?;
    h.prefix = prefix;
    proxy.set_latency(Duration::from_millis(200));
    let report = h.cache_report().await;
    assert_eq!(report.status, HealthStatus::Unhealthy, "{report:?}");
    assert_eq!(report.message, "cache ping timed out after 100ms");
    proxy.set_latency(Duration::ZERO);
    h.finish().await
}
