//! Health of every named connection: a `SELECT 1` under the connection's own `ping_timeout`,
//! plus the pool's utilisation.

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::future::join_all;
use modular_core::health::{
    HealthContext, HealthError, HealthProvider, HealthReport, HealthStatus,
};

use crate::MODULE_NAME;
use crate::metrics::PoolMetrics;
use crate::service::{Connection, DatabaseService};

/// Above this share of `max_connections` in use, a connection is degraded.
pub const DEGRADED_UTILIZATION: f64 = 0.9;

/// The health provider the module registers: one report per connection.
#[derive(Debug)]
pub(crate) struct DatabaseHealth {
    pub(crate) service: Arc<DatabaseService>,
}

#[modular_core::async_trait]
impl HealthProvider for DatabaseHealth {
    async fn health_check(&self, _ctx: &HealthContext) -> Result<Vec<HealthReport>, HealthError> {
        Ok(self.service.health_reports().await)
    }
}

impl DatabaseService {
    /// Checks every connection now, concurrently, and reports each as component
    /// `<connection name>` of module `database`:
    ///
    /// - **unhealthy** when `SELECT 1` fails or does not answer within `ping_timeout`;
    /// - **degraded** when more than 90% of `max_connections` are in use. At 100% a pooled
    ///   ping would only queue behind the application's own work, so the server is checked
    ///   instead on one fresh connection opened outside the pool (connect and `SELECT 1`
    ///   within `ping_timeout`, then closed): unhealthy if that fails, degraded if it answers;
    /// - **healthy** otherwise.
    ///
    /// Details: `driver`, `size`, `idle`, `in_use`, `max`, `generation`, and `latency_ms` of
    /// the pooled ping when it ran, or `probe_latency_ms` of the separate connection's check. The aggregator calls this through the registered provider; it is
    /// public so applications and tests can run the same check directly.
    pub async fn health_reports(&self) -> Vec<HealthReport> {
        let state = self.snapshot();
        let reports = join_all(state.connections.values().map(|c| self.check_current(c))).await;
        reports.into_iter().flatten().collect()
    }

    /// Checks `connection`; if a reload swapped its pool out (and so closed it) during the
    /// check, checks the pool that replaced it instead, so a swap never shows as an outage.
    /// `None` when a reload removed the connection meanwhile.
    async fn check_current(&self, connection: &Arc<Connection>) -> Option<HealthReport> {
        let report = check(connection, &self.metrics).await;
        if !connection.pool.is_closed() {
            return Some(report);
        }
        let current = self.snapshot().connections.get(&connection.name).cloned()?;
        if Arc::ptr_eq(&current, connection) {
            return Some(report);
        }
        Some(check(&current, &self.metrics).await)
    }
}

async fn check(connection: &Connection, metrics: &PoolMetrics) -> HealthReport {
    let report = check_pool(connection, metrics).await;
    connection.usable.store(
        report.status != HealthStatus::Unhealthy,
        std::sync::atomic::Ordering::Relaxed,
    );
    report
}

async fn check_pool(connection: &Connection, metrics: &PoolMetrics) -> HealthReport {
    let started = Instant::now();
    let stats = connection.pool.stats();
    metrics.record(&connection.name, &stats);
    let base = HealthReport::healthy(MODULE_NAME, connection.name.as_str())
        .with_detail("driver", connection.pool.driver().as_str())
        .with_detail("size", stats.size)
        .with_detail("idle", stats.idle)
        .with_detail("in_use", stats.in_use)
        .with_detail("max", stats.max)
        .with_detail("generation", connection.generation)
        .with_optional(connection.config.optional);
    let base = match &connection.config.replica_of {
        Some(primary) => base.with_detail("replica_of", primary.as_str()),
        None => base,
    };
    let timeout = connection.config.ping_timeout;
    // A closed pool falls through to the pooled ping, which reports it.
    if stats.in_use >= stats.max && !connection.pool.is_closed() {
        let report = match tokio::time::timeout(timeout, connection.pool.probe()).await {
            Ok(Ok(latency)) => base
                .with_detail("probe_latency_ms", millis(latency))
                .with_status(HealthStatus::Degraded)
                .with_message(format!(
                    "pool saturated: {} of {} connections in use (server answered on a separate connection)",
                    stats.in_use, stats.max
                )),
            Ok(Err(error)) => base
                .with_status(HealthStatus::Unhealthy)
                .with_message(format!(
                    "ping failed on a separate connection (pool saturated: {} of {} in use): {error}",
                    stats.in_use, stats.max
                )),
            Err(_) => base
                .with_status(HealthStatus::Unhealthy)
                .with_message(format!(
                    "ping timed out after {} on a separate connection (pool saturated: {} of {} in use)",
                    humantime_serde::re::humantime::format_duration(timeout),
                    stats.in_use,
                    stats.max
                )),
        };
        return report.with_duration(started.elapsed());
    }
    let report = match tokio::time::timeout(timeout, connection.pool.ping()).await {
        Ok(Ok(latency)) => {
            let base = base.with_detail("latency_ms", millis(latency));
            if stats.utilization() > DEGRADED_UTILIZATION {
                base.with_status(HealthStatus::Degraded)
                    .with_message(format!(
                        "pool nearly saturated: {} of {} connections in use",
                        stats.in_use, stats.max
                    ))
            } else {
                base.with_message("ok")
            }
        }
        Ok(Err(error)) => base
            .with_status(HealthStatus::Unhealthy)
            .with_message(format!("ping failed: {error}")),
        Err(_) => base
            .with_status(HealthStatus::Unhealthy)
            .with_message(format!(
                "ping timed out after {}",
                humantime_serde::re::humantime::format_duration(timeout)
            )),
    };
    report.with_duration(started.elapsed())
}

fn millis(d: Duration) -> f64 {
    (d.as_secs_f64() * 1_000_000.0).round() / 1000.0
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::config::ConnectionConfig;
    use crate::service::State;

    async fn connection(generation: u64) -> Arc<Connection> {
        let config = ConnectionConfig::new("sqlite::memory:");
        let pool = crate::pool::connect("primary", &config).await.unwrap();
        Arc::new(Connection::new("primary", pool, config, generation))
    }

    fn install(service: &DatabaseService, connection: &Arc<Connection>) {
        service.install(State {
            default: "primary".to_owned(),
            connections: BTreeMap::from([("primary".to_owned(), Arc::clone(connection))]),
        });
    }

    #[tokio::test]
    async fn a_pool_swapped_out_during_a_check_is_reported_through_its_replacement() {
        let service = DatabaseService::new();
        let old = connection(1).await;
        install(&service, &old);
        let new = connection(2).await;
        install(&service, &new);
        old.pool.close().await;

        let report = service.check_current(&old).await.unwrap();
        assert_eq!(report.status, HealthStatus::Healthy, "{report:?}");
        assert_eq!(report.details["generation"], 2);
    }

    #[tokio::test]
    async fn a_closed_pool_still_in_service_is_unhealthy() {
        let service = DatabaseService::new();
        let only = connection(1).await;
        install(&service, &only);
        only.pool.close().await;

        let reports = service.health_reports().await;
        assert_eq!(reports.len(), 1);
        assert_eq!(
            reports[0].status,
            HealthStatus::Unhealthy,
            "{:?}",
            reports[0]
        );
        assert!(
            reports[0].message.starts_with("ping failed"),
            "{:?}",
            reports[0]
        );
    }

    #[tokio::test]
    async fn a_connection_removed_during_a_check_is_not_reported() {
        let service = DatabaseService::new();
        let old = connection(1).await;
        install(&service, &old);
        service.install(State::default());
        old.pool.close().await;

        assert!(service.check_current(&old).await.is_none());
    }
}
