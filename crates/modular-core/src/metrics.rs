//! Metrics (DESIGN.md §3.8): the framework records through the [`metrics`] facade,
//! and the application installs one Prometheus recorder for the process when the `metrics:`
//! section says `enabled: true`. The router serves its text exposition at `GET /metrics`.
//!
//! ```yaml
//! metrics:
//!   enabled: true   # static: the recorder is process-wide and installed once, at build
//! ```
//!
//! Names are `modular_<area>_<what>_<unit>`; labels are bounded (module, component, status,
//! trigger, observer), never ids, URLs or raw paths. Core records the series in [`names`];
//! every module records its own through the same facade.
//!
//! Without an installed exporter core records nothing (not even into the facade's no-op
//! recorder), so an application without metrics pays nothing on its health and reload paths.
//! An application that installs its own recorder calls [`record_into_installed_recorder`], and
//! core's series go to that recorder; `GET /metrics` then answers 404 because there is no
//! exporter to render.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::time::Duration;

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

use crate::health::{AggregatedHealth, HealthStatus};
use crate::reload::ReloadOutcome;

/// The series core records.
pub mod names {
    /// Counter: reloads by `status` (`applied`, `noop`, `rejected`, `failed`, `circuit_open`,
    /// and `planned` for dry runs) and `trigger`.
    pub const RELOADS_TOTAL: &str = "modular_config_reloads_total";
    /// Histogram: how long a reload took, by `status`.
    pub const RELOAD_DURATION: &str = "modular_config_reload_duration_seconds";
    /// Histogram: how long each module's prepare took, by `module`.
    pub const PREPARE_DURATION: &str = "modular_config_prepare_duration_seconds";
    /// Gauge: the running configuration version.
    pub const CONFIG_VERSION: &str = "modular_config_version";
    /// Gauge: the reload circuit breaker, 0 closed, 1 half-open, 2 open.
    pub const BREAKER_STATE: &str = "modular_config_breaker_state";
    /// Histogram: how long a health check took, by `module` (the provider).
    pub const HEALTH_CHECK_DURATION: &str = "modular_health_check_duration_seconds";
    /// Gauge (state set): 1 for the current `status` of each `module` / `component`, 0 for
    /// the other statuses.
    pub const HEALTH_STATUS: &str = "modular_health_status";
    /// Gauge: the folded overall status, readiness and liveness (`probe` label), encoded like
    /// [`super::status_value`].
    pub const HEALTH_PROBE: &str = "modular_health_probe_status";
    /// Counter: events an observer lost because its queue was full, by `observer`.
    pub const EVENTS_DROPPED: &str = "modular_events_dropped_total";
}

/// Buckets for every `_seconds` histogram: 100 µs to 30 s.
const SECONDS_BUCKETS: &[f64] = &[
    0.0001, 0.0005, 0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];

/// The `metrics:` section.
#[derive(
    Clone, Debug, Default, PartialEq, serde::Serialize, serde::Deserialize, crate::DynamicConfig,
)]
#[serde(default, deny_unknown_fields)]
pub struct MetricsConfig {
    /// Install the process's Prometheus recorder and serve `GET /metrics`. Static: a recorder
    /// is installed once per process.
    pub enabled: bool,
}

/// Renders the process's Prometheus recorder: what the router serves at `GET /metrics`.
///
/// Registered in the service registry by the application when `metrics.enabled`.
#[derive(Clone)]
pub struct MetricsExporter {
    handle: PrometheusHandle,
}

impl std::fmt::Debug for MetricsExporter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MetricsExporter").finish_non_exhaustive()
    }
}

/// Whether core records its series: set once an exporter is installed, or by the application.
static RECORDING: AtomicBool = AtomicBool::new(false);

/// Makes core record its series into whatever recorder the application installed itself
/// (instead of [`MetricsExporter::install`]'s).
pub fn record_into_installed_recorder() {
    RECORDING.store(true, Ordering::Release);
}

#[inline]
fn recording() -> bool {
    RECORDING.load(Ordering::Relaxed)
}

/// Whether the framework records metrics in this process (an exporter is installed, or the
/// application opted in). Modules check it once when they build their series handles, and
/// use no-op handles otherwise, so an application without metrics pays nothing per operation.
#[inline]
pub fn is_recording() -> bool {
    recording()
}

/// The one recorder of this process (or why there is none).
static INSTALLED: OnceLock<Result<PrometheusHandle, String>> = OnceLock::new();

impl MetricsExporter {
    /// The process's exporter, installing the recorder on first use. Every later call (a
    /// second application in the same process, as in tests) shares it.
    ///
    /// Fails when another recorder was installed first.
    pub fn install() -> Result<Arc<Self>, MetricsUnavailable> {
        let installed = INSTALLED.get_or_init(|| {
            let builder = PrometheusBuilder::new()
                .set_buckets_for_metric(Matcher::Suffix("_seconds".to_owned()), SECONDS_BUCKETS)
                .map_err(|e| e.to_string())?;
            builder.install_recorder().map_err(|e| e.to_string())
        });
        match installed {
            Ok(handle) => {
                RECORDING.store(true, Ordering::Release);
                Ok(Arc::new(Self {
                    handle: handle.clone(),
                }))
            }
            Err(reason) => {
                tracing::warn!(%reason, "metrics exporter not installed");
                Err(MetricsUnavailable {
                    reason: reason.clone(),
                })
            }
        }
    }

    /// The Prometheus text exposition of every series recorded so far.
    pub fn render(&self) -> String {
        self.handle.run_upkeep();
        self.handle.render()
    }
}

/// Why there is no exporter: another recorder was installed in this process first.
#[derive(Debug, thiserror::Error)]
#[error("no metrics exporter: {reason}")]
pub struct MetricsUnavailable {
    reason: String,
}

/// The encoding of a [`HealthStatus`] in single-value gauges: 0 healthy, 1 degraded,
/// 2 unhealthy, 3 unknown (higher is worse).
pub fn status_value(status: HealthStatus) -> f64 {
    match status {
        HealthStatus::Healthy => 0.0,
        HealthStatus::Degraded => 1.0,
        HealthStatus::Unhealthy => 2.0,
        HealthStatus::Unknown => 3.0,
    }
}

const STATUSES: [HealthStatus; 4] = [
    HealthStatus::Healthy,
    HealthStatus::Degraded,
    HealthStatus::Unhealthy,
    HealthStatus::Unknown,
];

/// Records one finished reload (or dry run).
pub(crate) fn record_reload(outcome: &ReloadOutcome) {
    if !recording() {
        return;
    }
    let status = if outcome.dry_run {
        "planned"
    } else {
        outcome.status.as_str()
    };
    let trigger = outcome.trigger.as_str();
    ::metrics::counter!(names::RELOADS_TOTAL, "status" => status, "trigger" => trigger)
        .increment(1);
    ::metrics::histogram!(names::RELOAD_DURATION, "status" => status)
        .record(outcome.duration_ms / 1000.0);
}

/// Records the running config version.
pub(crate) fn record_version(version: u64) {
    if !recording() {
        return;
    }
    ::metrics::gauge!(names::CONFIG_VERSION).set(version as f64);
}

/// Records one module's prepare time.
pub(crate) fn record_prepare(module: &str, took: Duration) {
    if !recording() {
        return;
    }
    ::metrics::histogram!(names::PREPARE_DURATION, "module" => module.to_owned())
        .record(took.as_secs_f64());
}

/// Records the breaker state: 0 closed, 1 half-open, 2 open.
pub(crate) fn record_breaker(state: crate::reload::BreakerState) {
    if !recording() {
        return;
    }
    let value = match state {
        crate::reload::BreakerState::Closed => 0.0,
        crate::reload::BreakerState::HalfOpen => 1.0,
        crate::reload::BreakerState::Open { .. } => 2.0,
    };
    ::metrics::gauge!(names::BREAKER_STATE).set(value);
}

/// One health component's series, registered once and kept: a re-registration per answer
/// costs a label-hashing lookup in the recorder for each of the five series.
struct ComponentSeries {
    duration: ::metrics::Histogram,
    status: [::metrics::Gauge; 4],
    last: Option<HealthStatus>,
}

/// Health series by module, then component.
type HealthSeries = HashMap<String, HashMap<String, ComponentSeries>>;

static HEALTH_SERIES: OnceLock<Mutex<HealthSeries>> = OnceLock::new();
static PROBE_SERIES: OnceLock<[::metrics::Gauge; 4]> = OnceLock::new();

const PROBES: [&str; 4] = ["overall", "readiness", "liveness", "startup"];

/// Records one evaluated health answer: each report's status (as a state set, written when
/// it changes) and duration, and the folded probes.
pub(crate) fn record_health(health: &AggregatedHealth) {
    if !recording() {
        return;
    }
    let mut series = HEALTH_SERIES
        .get_or_init(|| Mutex::new(HashMap::new()))
        .lock()
        .unwrap_or_else(PoisonError::into_inner);
    for report in &health.reports {
        let by_component = match series.get_mut(report.module.as_str()) {
            Some(map) => map,
            None => series.entry(report.module.clone()).or_default(),
        };
        let component = match by_component.get_mut(report.component.as_str()) {
            Some(component) => component,
            None => by_component
                .entry(report.component.clone())
                .or_insert_with(|| ComponentSeries {
                    duration: ::metrics::histogram!(
                        names::HEALTH_CHECK_DURATION,
                        "module" => report.module.clone(),
                    ),
                    status: STATUSES.map(|status| {
                        ::metrics::gauge!(
                            names::HEALTH_STATUS,
                            "module" => report.module.clone(),
                            "component" => report.component.clone(),
                            "status" => status.as_str(),
                        )
                    }),
                    last: None,
                }),
        };
        component.duration.record(report.duration.as_secs_f64());
        if component.last != Some(report.status) {
            for (gauge, status) in component.status.iter().zip(STATUSES) {
                gauge.set(if status == report.status { 1.0 } else { 0.0 });
            }
            component.last = Some(report.status);
        }
    }
    drop(series);
    let probes = PROBE_SERIES.get_or_init(|| {
        PROBES.map(|probe| ::metrics::gauge!(names::HEALTH_PROBE, "probe" => probe))
    });
    for (gauge, status) in probes.iter().zip([
        health.health,
        health.readiness,
        health.liveness,
        health.startup,
    ]) {
        gauge.set(status_value(status));
    }
}

/// Counts one event an observer lost.
pub(crate) fn record_dropped_event(observer: &str) {
    if !recording() {
        return;
    }
    ::metrics::counter!(names::EVENTS_DROPPED, "observer" => observer.to_owned()).increment(1);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_status_encoding_is_ordered_worst_last() {
        let values: Vec<f64> = STATUSES.iter().map(|s| status_value(*s)).collect();
        assert!(values.windows(2).all(|w| w[0] < w[1]), "{values:?}");
    }
}
