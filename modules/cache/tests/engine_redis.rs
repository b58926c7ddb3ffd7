//! The Redis engine against the real server: the shared behaviour suite, the key namespace,
//! and TTLs as Redis sees them.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::time::Duration;

use modular_cache::CacheEngine;
use modular_core::health::HealthStatus;
use modular_testkit::Service;
use redis::AsyncCommands as _;
use serde_json::{Value, json};
use support::Harness;

async fn start(test: &str, patch: Value) -> anyhow::Result<Option<Harness>> {
    support::redis(test, patch).await
}

behaviour_suite!(start);

#[tokio::test]
async fn keys_are_stored_under_the_prefix() -> anyhow::Result<()> {
    let Some(h) = support::redis("keys_are_stored_under_the_prefix", json!({})).await? else {
        return Ok(());
    };
    let url = modular_testkit::service_url(Service::Redis).unwrap();
    let mut raw = support::raw_redis(&url).await?;
    h.cache.set("k", b"v", None).await?;
    let stored: Option<Vec<u8>> = raw.get(format!("{}k", h.prefix)).await?;
    assert_eq!(stored.as_deref(), Some(&b"v"[..]));
    let bare: Option<Vec<u8>> = raw.get("k").await?;
    assert_eq!(bare, None);
    h.finish().await
}

#[tokio::test]
async fn clear_never_touches_keys_outside_the_prefix_even_with_glob_characters()
-> anyhow::Result<()> {
    let Some(url) = modular_testkit::service(Service::Redis) else {
        return Ok(());
    };
    // `[1]` and `*` would match more than the prefix if `clear` did not escape them.
    let unique = support::unique_prefix("glob");
    let prefix = format!("{unique}app[1]*:");
    let (mut section, _) = support::redis_section("glob", &url, json!({}));
    support::merge(&mut section, json!({ "redis": { "key_prefix": prefix } }));
    let h = support::start(section).await?;
    let mut raw = support::raw_redis(&url).await?;
    let outside = [
        format!("{unique}app1X:k"),
        format!("{unique}other:k"),
        format!("{unique}app[1]k"),
    ];
    for key in &outside {
        let _: () = raw.set_ex(key, "keep", 60).await?;
    }
    for i in 0..2500 {
        h.cache.set(&format!("k{i}"), b"x", None).await?;
    }
    h.cache.clear().await?;
    let left: Vec<Vec<u8>> = redis::cmd("KEYS")
        .arg(format!("{unique}*"))
        .query_async(&mut raw)
        .await?;
    let mut left: Vec<String> = left
        .into_iter()
        .map(|k| String::from_utf8_lossy(&k).into_owned())
        .collect();
    left.sort();
    let mut expected = outside.to_vec();
    expected.sort();
    assert_eq!(
        left, expected,
        "clear removed keys outside its prefix, or left some inside"
    );
    let _: () = raw.del(&outside[..]).await?;
    h.finish().await
}

#[tokio::test]
async fn redis_holds_the_ttl_each_write_asked_for() -> anyhow::Result<()> {
    let Some(h) = support::redis("redis_holds_the_ttl", json!({ "default_ttl": "1h" })).await?
    else {
        return Ok(());
    };
    let url = modular_testkit::service_url(Service::Redis).unwrap();
    let mut raw = support::raw_redis(&url).await?;
    h.cache.set("defaulted", b"1", None).await?;
    h.cache
        .set("explicit", b"2", Some(Duration::from_secs(30)))
        .await?;
    h.cache.set("forever", b"3", Some(Duration::ZERO)).await?;
    h.cache
        .set_many(&[("many", b"4")], Some(Duration::from_secs(10)))
        .await?;
    let pttl = |key: &str| redis::cmd("PTTL").arg(format!("{}{key}", h.prefix)).clone();
    let defaulted: i64 = pttl("defaulted").query_async(&mut raw).await?;
    let explicit: i64 = pttl("explicit").query_async(&mut raw).await?;
    let forever: i64 = pttl("forever").query_async(&mut raw).await?;
    let many: i64 = pttl("many").query_async(&mut raw).await?;
    assert!(
        (3_500_000..=3_600_000).contains(&defaulted),
        "defaulted pttl {defaulted}"
    );
    assert!(
        (25_000..=30_000).contains(&explicit),
        "explicit pttl {explicit}"
    );
    assert_eq!(forever, -1, "a zero ttl never expires");
    assert!((5_000..=10_000).contains(&many), "set_many pttl {many}");
    h.finish().await
}

#[tokio::test]
async fn health_reports_ping_latency_and_the_namespace() -> anyhow::Result<()> {
    let Some(h) = support::redis(
        "health_reports_ping",
        json!({ "health": { "latency_threshold": "1s" } }),
    )
    .await?
    else {
        return Ok(());
    };
    let report = h.cache_report().await;
    assert_eq!(
        (report.module.as_str(), report.component.as_str()),
        ("cache", "redis")
    );
    assert_eq!(report.status, HealthStatus::Healthy, "{report:?}");
    assert!(
        report
            .details
            .get("latency_ms")
            .and_then(Value::as_f64)
            .is_some(),
        "{report:?}"
    );
    assert_eq!(
        report.details.get("latency_threshold_ms"),
        Some(&json!(1000.0))
    );
    assert_eq!(report.details.get("key_prefix"), Some(&json!(h.prefix)));
    assert_eq!(h.service.engine(), CacheEngine::Redis);
    h.finish().await
}

#[tokio::test]
async fn hits_misses_and_redis_command_latency_are_recorded_as_metrics() -> anyhow::Result<()> {
    // The process's recorder, before the application builds (as `metrics.enabled` does).
    let exporter = modular_core::metrics::MetricsExporter::install()?;
    let Some(h) = support::redis(
        "hits_misses_and_redis_command_latency_are_recorded_as_metrics",
        json!({}),
    )
    .await?
    else {
        return Ok(());
    };
    h.cache.set("m", b"1", None).await?;
    assert!(h.cache.get("m").await?.is_some());
    assert!(h.cache.get("absent").await?.is_none());
    let text = exporter.render();
    for series in [
        "modular_cache_hits_total{engine=\"redis\"}",
        "modular_cache_misses_total{engine=\"redis\"}",
        "modular_cache_redis_command_duration_seconds_bucket{operation=\"get\"",
        "modular_cache_redis_command_duration_seconds_bucket{operation=\"set\"",
    ] {
        assert!(text.contains(series), "{series} missing from:\n{text}");
    }
    assert!(!text.contains("absent"), "a key reached a label");
    h.finish().await
}
