//! The cache's series (DESIGN.md §3.8), through the `metrics` facade:
//!
//! | series | type | labels |
//! |---|---|---|
//! | `modular_cache_hits_total` | counter | `engine` |
//! | `modular_cache_misses_total` | counter | `engine` |
//! | `modular_cache_evictions_total` | counter | `engine` (memory: entries evicted for size) |
//! | `modular_cache_redis_command_duration_seconds` | histogram | `operation` |
//!
//! Handles are registered once, when the service is built; without a recorder (metrics off)
//! they are no-ops, so a hit costs nothing extra.

use metrics::{Counter, Histogram};

/// The Redis operations timed, in a fixed order (a linear scan of a few short names is cheaper
/// than hashing one).
const OPERATIONS: [&str; 9] = [
    "get",
    "set",
    "delete",
    "get_many",
    "set_many",
    "clear",
    "ping",
    "increment",
    "get_or_load",
];

/// One cache's series handles.
#[derive(Clone)]
pub(crate) struct CacheSeries {
    pub(crate) hits: Counter,
    pub(crate) misses: Counter,
    /// `None` without a recorder: the memory engine then installs no eviction listener, whose
    /// cost moka pays on every write (a per-key lock to order notifications).
    pub(crate) evictions: Option<Counter>,
    #[cfg_attr(not(feature = "redis"), allow(dead_code))]
    redis: Vec<Histogram>,
}

impl CacheSeries {
    pub(crate) fn new(engine: &'static str) -> Self {
        if !modular_core::metrics::is_recording() {
            return Self {
                hits: Counter::noop(),
                misses: Counter::noop(),
                evictions: None,
                redis: Vec::new(),
            };
        }
        Self {
            hits: metrics::counter!("modular_cache_hits_total", "engine" => engine),
            misses: metrics::counter!("modular_cache_misses_total", "engine" => engine),
            evictions: Some(metrics::counter!("modular_cache_evictions_total", "engine" => engine)),
            redis: OPERATIONS
                .iter()
                .map(|op| {
                    metrics::histogram!(
                        "modular_cache_redis_command_duration_seconds",
                        "operation" => *op,
                    )
                })
                .collect(),
        }
    }

    /// Records one Redis command's round trip.
    #[cfg_attr(not(feature = "redis"), allow(dead_code))]
    pub(crate) fn redis_command(&self, operation: &str, took: std::time::Duration) {
        if let Some(i) = OPERATIONS.iter().position(|op| *op == operation)
            && let Some(histogram) = self.redis.get(i)
        {
            histogram.record(took.as_secs_f64());
        }
    }
}
