//! The memory engine: the shared behaviour suite, plus its bound and health details.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use modular_cache::CacheEngine;
use modular_core::health::HealthStatus;
use serde_json::{Value, json};
use support::Harness;

async fn start(_test: &str, patch: Value) -> anyhow::Result<Option<Harness>> {
    Ok(Some(support::memory(patch).await?))
}

behaviour_suite!(start);

#[tokio::test]
async fn the_cache_never_holds_more_than_max_items_and_keeps_accepting_writes() -> anyhow::Result<()>
{
    let h = support::memory(json!({ "max_items": 100 })).await?;
    for i in 0..1000 {
        // Writes never fail for being over the bound: TinyLFU decides what stays.
        h.cache.set(&format!("key:{i}"), b"x", None).await?;
    }
    let stats = h.service.stats().await;
    assert_eq!(stats.engine, CacheEngine::Memory);
    assert_eq!(stats.max_items, Some(100));
    let entries = stats.entries.unwrap_or_default();
    assert!(entries > 0 && entries <= 100, "entries {entries}");
    h.finish().await
}

#[tokio::test]
async fn health_reports_entries_against_capacity() -> anyhow::Result<()> {
    let h = support::memory(json!({ "max_items": 200 })).await?;
    for i in 0..50 {
        h.cache.set(&format!("key:{i}"), b"x", None).await?;
    }
    let report = h.cache_report().await;
    assert_eq!(
        (report.module.as_str(), report.component.as_str()),
        ("cache", "memory")
    );
    assert_eq!(report.status, HealthStatus::Healthy);
    assert_eq!(
        report.details.get("entries"),
        Some(&json!(50)),
        "{report:?}"
    );
    assert_eq!(
        report.details.get("max_items"),
        Some(&json!(200)),
        "{report:?}"
    );
    assert_eq!(
        report.details.get("fill_ratio"),
        Some(&json!(0.25)),
        "{report:?}"
    );
    assert_eq!(report.message, "50 of 200 entries");
    h.finish().await
}

#[tokio::test]
async fn evictions_of_the_memory_engine_are_counted_as_metrics() -> anyhow::Result<()> {
    let exporter = modular_core::metrics::MetricsExporter::install()?;
    let h = support::memory(json!({ "max_items": 10 })).await?;
    for i in 0..200 {
        h.cache.set(&format!("key:{i}"), b"x", None).await?;
    }
    // moka applies evictions in its maintenance; the stats call runs it.
    let _ = h.service.stats().await;
    let text = exporter.render();
    let evicted: f64 = text
        .lines()
        .find(|l| l.starts_with("modular_cache_evictions_total{engine=\"memory\"}"))
        .and_then(|l| l.rsplit(' ').next()?.parse().ok())
        .unwrap_or(0.0);
    assert!(evicted >= 100.0, "evictions counted: {evicted}\n{text}");
    h.finish().await
}
