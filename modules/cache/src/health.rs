//! The cache's health check: a timed Redis `PING`, or the memory cache's fill level.

use modular_core::health::{
    HealthContext, HealthError, HealthProvider, HealthReport, HealthStatus,
};
use serde_json::{Map, Value, json};

use crate::config::CacheEngine;
use crate::service::{CacheService, Store};

/// The module name reports carry.
const MODULE: &str = "cache";

/// One report per check, component `memory` or `redis`.
///
/// - **memory**: always `healthy` (an in-process cache has nothing to lose); details carry
///   `entries` against `max_items`, `hits`, `misses` and `hit_ratio`.
/// - **redis**: `PING` under `health.timeout` (default 150 ms). `healthy` when it answers
///   within `health.latency_threshold` (default 50 ms), `degraded` when slower, `unhealthy`
///   when it fails or times out. Details carry `latency_ms`, `latency_threshold_ms`,
///   `address`, `key_prefix`, `hits`, `misses` and `hit_ratio`. A check also drives the
///   `connected` / `disconnected` events, and, since it sends a command, makes the connection
///   manager reconnect after an outage.
#[async_trait::async_trait]
impl HealthProvider for CacheService {
    async fn health_check(&self, _ctx: &HealthContext) -> Result<Vec<HealthReport>, HealthError> {
        let engine = self.engine.load_full();
        let (hits, misses) = self.counters();
        let mut details = Map::new();
        details.insert("engine".to_owned(), json!(self.engine().as_str()));
        details.insert("hits".to_owned(), json!(hits));
        details.insert("misses".to_owned(), json!(misses));
        details.insert("hit_ratio".to_owned(), ratio(hits, hits + misses));
        let report = match &engine.store {
            Store::Memory(memory) => {
                let entries = memory.entry_count().await;
                let max_items = memory.max_items();
                details.insert("entries".to_owned(), json!(entries));
                details.insert("max_items".to_owned(), json!(max_items));
                details.insert("fill_ratio".to_owned(), ratio(entries, max_items));
                report(
                    CacheEngine::Memory,
                    HealthStatus::Healthy,
                    format!("{entries} of {max_items} entries"),
                    details,
                )
            }
            #[cfg(feature = "redis")]
            Store::Redis(redis) => {
                let started = std::time::Instant::now();
                let result = redis.ping(engine.health_timeout).await;
                let latency = started.elapsed();
                self.observe(redis, &result);
                let threshold = engine.latency_threshold;
                details.insert("address".to_owned(), json!(redis.address()));
                details.insert("key_prefix".to_owned(), json!(redis.key_prefix()));
                details.insert("latency_threshold_ms".to_owned(), json!(millis(threshold)));
                let (status, message) = match result {
                    Ok(()) => {
                        details.insert("latency_ms".to_owned(), json!(millis(latency)));
                        if latency > threshold {
                            (
                                HealthStatus::Degraded,
                                format!(
                                    "ping took {latency:.1?}, above the {threshold:?} threshold"
                                ),
                            )
                        } else {
                            (HealthStatus::Healthy, format!("ping took {latency:.1?}"))
                        }
                    }
                    Err(error) => (HealthStatus::Unhealthy, error.to_string()),
                };
                report(CacheEngine::Redis, status, message, details)
            }
        };
        Ok(vec![report])
    }
}

fn report(
    engine: CacheEngine,
    status: HealthStatus,
    message: String,
    details: Map<String, Value>,
) -> HealthReport {
    HealthReport::new(MODULE, engine.as_str(), status)
        .with_message(message)
        .with_details(details)
}

fn ratio(part: u64, whole: u64) -> Value {
    if whole == 0 {
        return Value::Null;
    }
    json!(part as f64 / whole as f64)
}

#[cfg(feature = "redis")]
fn millis(duration: std::time::Duration) -> f64 {
    duration.as_secs_f64() * 1000.0
}
