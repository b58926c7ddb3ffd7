//! Health aggregation benchmarks (DESIGN.md §6):
//! - `health/forced_10_providers`: a forced evaluation of 10 ready providers (target ≤ 10 µs).
//! - `health/cached_read`: `check()` answered from the cache (target ≤ 60 ns);
//!   `health/cached_read_sync` is the same through the synchronous `cached()`.
//! - `health/forced_1000_providers`: a forced evaluation of 1000 ready providers (≤ 1 ms).
//! - `health/forced_100_providers_sleeping_20ms`: 100 providers each sleeping 20 ms (≤ 22 ms,
//!   which only parallel checks can reach; sequential would take 2 s).
//!
//! Every aggregator runs with its defaults, the built-in runtime check included.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::hint::black_box;
use std::sync::Arc;
use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use modular_core::events::EventBus;
use modular_core::health::{
    HealthAggregator, HealthContext, HealthError, HealthOptions, HealthProvider, HealthReport,
    HealthStatus, ProviderOptions,
};
use tokio::runtime::Runtime;

/// A provider that answers at once with one healthy report, like a cheap in-memory check.
struct Ready {
    module: String,
}

#[async_trait::async_trait]
impl HealthProvider for Ready {
    async fn health_check(&self, _ctx: &HealthContext) -> Result<Vec<HealthReport>, HealthError> {
        Ok(vec![HealthReport::healthy(self.module.as_str(), "main")])
    }
}

/// A provider that waits `delay` (a network round trip) before answering.
struct Sleeping {
    module: String,
    delay: Duration,
}

#[async_trait::async_trait]
impl HealthProvider for Sleeping {
    async fn health_check(&self, _ctx: &HealthContext) -> Result<Vec<HealthReport>, HealthError> {
        tokio::time::sleep(self.delay).await;
        Ok(vec![HealthReport::healthy(self.module.as_str(), "main")])
    }
}

fn runtime() -> Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

fn with_ready(count: usize) -> Arc<HealthAggregator> {
    let aggregator = HealthAggregator::new(HealthOptions::default(), EventBus::new());
    for i in 0..count {
        let name = format!("module{i:04}");
        aggregator.register_health_provider(
            &name,
            Arc::new(Ready {
                module: name.clone(),
            }),
            ProviderOptions::default(),
        );
    }
    aggregator.set_started(true);
    aggregator
}

fn forced_10(c: &mut Criterion) {
    let rt = runtime();
    let aggregator = with_ready(10);
    let health = rt.block_on(aggregator.force_refresh());
    assert_eq!(health.reports.len(), 11);
    assert_eq!(health.health, HealthStatus::Healthy);
    c.bench_function("health/forced_10_providers", |b| {
        b.to_async(&rt)
            .iter(|| async { black_box(aggregator.force_refresh().await) });
    });
}

fn cached_read(c: &mut Criterion) {
    let rt = runtime();
    let options = HealthOptions::default().with_cache_ttl(Duration::from_secs(3600));
    let aggregator = HealthAggregator::new(options, EventBus::new());
    for i in 0..10 {
        let name = format!("module{i}");
        aggregator.register_health_provider(
            &name,
            Arc::new(Ready {
                module: name.clone(),
            }),
            ProviderOptions::default(),
        );
    }
    let first = rt.block_on(aggregator.check());
    c.bench_function("health/cached_read", |b| {
        b.to_async(&rt)
            .iter(|| async { black_box(aggregator.check().await) });
    });
    c.bench_function("health/cached_read_sync", |b| {
        b.iter(|| black_box(aggregator.cached()));
    });
    assert_eq!(aggregator.evaluations(), 1, "the cached read evaluated");
    assert!(Arc::ptr_eq(&first, &rt.block_on(aggregator.check())));
}

fn forced_1000(c: &mut Criterion) {
    let rt = runtime();
    let aggregator = with_ready(1000);
    assert_eq!(rt.block_on(aggregator.force_refresh()).reports.len(), 1001);
    c.bench_function("health/forced_1000_providers", |b| {
        b.to_async(&rt)
            .iter(|| async { black_box(aggregator.force_refresh().await) });
    });
}

fn forced_100_sleeping(c: &mut Criterion) {
    let rt = runtime();
    let aggregator = HealthAggregator::new(HealthOptions::default(), EventBus::new());
    for i in 0..100 {
        let name = format!("module{i:03}");
        let provider = Sleeping {
            module: name.clone(),
            delay: Duration::from_millis(20),
        };
        aggregator.register_health_provider(&name, Arc::new(provider), ProviderOptions::default());
    }
    let health = rt.block_on(aggregator.force_refresh());
    assert_eq!(
        health.health,
        HealthStatus::Healthy,
        "a sleeping provider timed out"
    );
    let mut group = c.benchmark_group("health");
    group.sample_size(20);
    group.bench_function("forced_100_providers_sleeping_20ms", |b| {
        b.to_async(&rt)
            .iter(|| async { black_box(aggregator.force_refresh().await) });
    });
    group.finish();
}

criterion_group!(
    benches,
    forced_10,
    cached_read,
    forced_1000,
    forced_100_sleeping
);
criterion_main!(benches);
