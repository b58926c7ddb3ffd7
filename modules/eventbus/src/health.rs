//! The event bus's health check: one report per engine.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Instant;

use modular_core::health::{
    HealthContext, HealthError, HealthProvider, HealthReport, HealthStatus,
};
use serde_json::{Map, json};

use crate::service::{EngineSlot, MessageBus};

/// One report per engine, module `eventbus`, component the engine's name:
///
/// - `unhealthy` when the publish → read round trip on `health.topic` fails or misses
///   `health.timeout` (the broker is unreachable, or does not accept events);
/// - `degraded` when a subscription's lag (events the broker holds for its group, not yet
///   delivered) passes `health.max_lag`, or more than `health.max_dropped` events were dropped
///   (memory queues full) since the previous check;
/// - `healthy` otherwise.
///
/// Details carry `type`, `address`, `round_trip_ms`, `dropped` (total), `dropped_since_last`,
/// `lag` (the largest), `pending` (delivered, unacknowledged; summed) and per-subscription
/// `subscriptions` (`pattern`, `group`, `lag`, `pending`).
#[async_trait::async_trait]
impl HealthProvider for MessageBus {
    async fn health_check(&self, _ctx: &HealthContext) -> Result<Vec<HealthReport>, HealthError> {
        let state = self.state();
        let health = state.config.health.clone();
        let checks = state
            .engines
            .values()
            .map(|slot| self.check_engine(Arc::clone(slot), health.clone()));
        Ok(futures::future::join_all(checks).await)
    }
}

impl MessageBus {
    async fn check_engine(
        &self,
        slot: Arc<EngineSlot>,
        health: crate::config::EventbusHealthConfig,
    ) -> HealthReport {
        let started = Instant::now();
        let probe = slot.engine.probe(&health.topic, health.timeout).await;
        let round_trip = started.elapsed();
        self.observe(&slot, &probe);
        let mut details = Map::new();
        details.insert("type".to_owned(), json!(slot.engine.kind().as_str()));
        details.insert("address".to_owned(), json!(slot.engine.address()));
        if let Err(error) = probe {
            details.insert("connected".to_owned(), json!(false));
            return HealthReport::new("eventbus", slot.name.as_str(), HealthStatus::Unhealthy)
                .with_message(format!("round trip on `{}` failed: {error}", health.topic))
                .with_details(details);
        }
        details.insert("connected".to_owned(), json!(true));
        details.insert(
            "round_trip_ms".to_owned(),
            json!(round_trip.as_secs_f64() * 1000.0),
        );
        let stats = slot.engine.stats().await;
        let before = slot.dropped_seen.swap(stats.dropped, Ordering::Relaxed);
        let dropped_since = stats.dropped.saturating_sub(before);
        let lag = stats.subscriptions.iter().map(|s| s.lag).max().unwrap_or(0);
        let pending: u64 = stats.subscriptions.iter().map(|s| s.pending).sum();
        for sub in &stats.subscriptions {
            let group = if sub.group.starts_with("fanout-") {
                "fanout"
            } else {
                sub.group.as_str()
            };
            crate::metrics::Series::new().lag(&slot.name, &sub.pattern, group, sub.lag);
        }
        if let Some(size) = stats.queue_size {
            details.insert("queue_size".to_owned(), json!(size));
        }
        details.insert("dropped".to_owned(), json!(stats.dropped));
        details.insert("dropped_since_last".to_owned(), json!(dropped_since));
        details.insert("lag".to_owned(), json!(lag));
        details.insert("pending".to_owned(), json!(pending));
        details.insert("subscriptions".to_owned(), json!(stats.subscriptions));
        let (status, message) = if lag > health.max_lag {
            (
                HealthStatus::Degraded,
                format!(
                    "a subscription lags by {lag} events (max_lag {})",
                    health.max_lag
                ),
            )
        } else if dropped_since > health.max_dropped {
            (
                HealthStatus::Degraded,
                format!(
                    "{dropped_since} events dropped since the last check (max_dropped {})",
                    health.max_dropped
                ),
            )
        } else {
            (
                HealthStatus::Healthy,
                format!("round trip in {round_trip:.1?}"),
            )
        };
        HealthReport::new("eventbus", slot.name.as_str(), status)
            .with_message(message)
            .with_details(details)
    }
}
