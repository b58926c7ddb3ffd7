//! Pool metrics per connection, through the `metrics` facade (DESIGN.md §3.8), written at
//! every health check and only while core records (`modular_core::metrics::is_recording`).

use std::collections::BTreeMap;
use std::sync::{Mutex, PoisonError};

use crate::pool::PoolStats;

/// The series the database module records. Labels: `connection` (a configured name), and
/// `state` on [`POOL_CONNECTIONS`](names::POOL_CONNECTIONS).
///
/// There is no acquire-wait series: sqlx 0.9 offers no hook around `Pool::acquire` (its
/// `before_acquire` runs on an idle connection already taken, not while waiting), and the
/// application calls its typed pools directly, so a timed wrapper would count only the callers
/// that remember to use it. Waiting shows instead as `in_use` equal to `max_connections` in
/// these gauges, and as the health check's `degraded` "pool saturated" report.
pub mod names {
    /// Gauge: open connections of each connection's pool by `state`, `idle` or `in_use`.
    pub const POOL_CONNECTIONS: &str = "modular_database_pool_connections";
    /// Gauge: open connections of each connection's pool, idle or in use.
    pub const POOL_SIZE: &str = "modular_database_pool_size";
}

/// One connection's gauges, registered once and kept.
struct Series {
    idle: ::metrics::Gauge,
    in_use: ::metrics::Gauge,
    size: ::metrics::Gauge,
}

impl Series {
    fn new(connection: &str) -> Self {
        let gauge = |state: &'static str| ::metrics::gauge!(names::POOL_CONNECTIONS, "connection" => connection.to_owned(), "state" => state);
        Self {
            idle: gauge("idle"),
            in_use: gauge("in_use"),
            size: ::metrics::gauge!(names::POOL_SIZE, "connection" => connection.to_owned()),
        }
    }

    fn set(&self, stats: &PoolStats) {
        self.idle.set(f64::from(stats.idle));
        self.in_use.set(f64::from(stats.in_use));
        self.size.set(f64::from(stats.size));
    }
}

/// The gauges of one application's connections.
#[derive(Default)]
pub(crate) struct PoolMetrics {
    series: Mutex<BTreeMap<String, Series>>,
}

impl std::fmt::Debug for PoolMetrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PoolMetrics").finish_non_exhaustive()
    }
}

impl PoolMetrics {
    /// Writes connection `name`'s utilisation.
    pub(crate) fn record(&self, name: &str, stats: &PoolStats) {
        if !modular_core::metrics::is_recording() {
            return;
        }
        let mut series = self.series.lock().unwrap_or_else(PoisonError::into_inner);
        match series.get(name) {
            Some(s) => s.set(stats),
            None => series
                .entry(name.to_owned())
                .or_insert_with(|| Series::new(name))
                .set(stats),
        }
    }

    /// Zeroes the gauges of connections a reload removed (the facade cannot unregister a
    /// series), so a dashboard does not keep showing their last pool.
    pub(crate) fn retain(&self, configured: impl Fn(&str) -> bool) {
        if !modular_core::metrics::is_recording() {
            return;
        }
        let mut series = self.series.lock().unwrap_or_else(PoisonError::into_inner);
        series.retain(|name, s| {
            let keep = configured(name);
            if !keep {
                s.set(&PoolStats {
                    size: 0,
                    idle: 0,
                    in_use: 0,
                    max: 0,
                });
            }
            keep
        });
    }
}
