//! Metrics benchmarks: the cost core's series add where they are recorded, with the process's
//! Prometheus recorder installed (`metrics.enabled: true`):
//! - `metrics/health_forced_10_providers`: `health/forced_10_providers` again, now recording
//!   each report's duration and status and the folded probes (compare with the row without).
//! - `metrics/render`: `GET /metrics`'s body for those series.
//!
//! A separate bench binary, because the recorder is process-wide: installing it in the health
//! benches would change their numbers.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::hint::black_box;
use std::sync::Arc;

use criterion::{Criterion, criterion_group, criterion_main};
use modular_core::events::EventBus;
use modular_core::health::{
    HealthAggregator, HealthContext, HealthError, HealthOptions, HealthProvider, HealthReport,
    ProviderOptions,
};
use modular_core::metrics::MetricsExporter;
use tokio::runtime::Runtime;

struct Ready {
    module: String,
}

#[async_trait::async_trait]
impl HealthProvider for Ready {
    async fn health_check(&self, _ctx: &HealthContext) -> Result<Vec<HealthReport>, HealthError> {
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

fn recording(c: &mut Criterion) {
    let exporter = MetricsExporter::install().expect("the recorder installs");
    let rt = runtime();
    let aggregator = HealthAggregator::new(HealthOptions::default(), EventBus::new());
    for i in 0..10 {
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
    rt.block_on(aggregator.force_refresh());
    assert!(
        exporter
            .render()
            .contains("modular_health_status{module=\"module0000\""),
        "the health series are recorded"
    );
    c.bench_function("metrics/health_forced_10_providers", |b| {
        b.to_async(&rt)
            .iter(|| async { black_box(aggregator.force_refresh().await) });
    });
    c.bench_function("metrics/render", |b| {
        b.iter(|| black_box(exporter.render()))
    });
}

criterion_group!(benches, recording);
criterion_main!(benches);
