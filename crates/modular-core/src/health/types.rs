//! The values of health aggregation: statuses, reports, errors, probes and the aggregated answer.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::fold::{Flags, fold};
use super::options::Probes;
use crate::error::BoxError;

/// The status of a component or of a probe.
///
/// Ordered from best to worst: `Healthy < Degraded < Unhealthy < Unknown`. When statuses are
/// folded into a probe answer ([`HealthStatus::fold`]) `Unknown` counts as `Unhealthy`, so a
/// folded status is never `Unknown`.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HealthStatus {
    /// Working normally.
    Healthy,
    /// Working, but impaired (slow, a fallback in use, an optional dependency missing).
    Degraded,
    /// Not working.
    Unhealthy,
    /// The status could not be determined; folds as `Unhealthy`.
    Unknown,
}

impl HealthStatus {
    /// The snake_case name (`"healthy"`, `"degraded"`, `"unhealthy"`, `"unknown"`).
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Healthy => "healthy",
            Self::Degraded => "degraded",
            Self::Unhealthy => "unhealthy",
            Self::Unknown => "unknown",
        }
    }

    /// Whether this status fails a probe: `Unhealthy` or `Unknown`.
    pub const fn is_failing(self) -> bool {
        matches!(self, Self::Unhealthy | Self::Unknown)
    }

    /// The HTTP status code of an answer with this status: 503 when failing, otherwise 200.
    pub const fn http_status_code(self) -> u16 {
        if self.is_failing() { 503 } else { 200 }
    }

    /// The IETF `application/health+json` status: `pass`, `warn` or `fail`.
    pub const fn ietf_status(self) -> &'static str {
        match self {
            Self::Healthy => "pass",
            Self::Degraded => "warn",
            Self::Unhealthy | Self::Unknown => "fail",
        }
    }

    /// The worse of two statuses, with `Unknown` counted as `Unhealthy`.
    #[must_use]
    pub fn worst(self, other: Self) -> Self {
        self.folded().max(other.folded())
    }

    /// The worst of `statuses` (`Unknown` counted as `Unhealthy`); `Healthy` when empty.
    pub fn fold<I: IntoIterator<Item = Self>>(statuses: I) -> Self {
        statuses.into_iter().fold(Self::Healthy, Self::worst)
    }

    const fn folded(self) -> Self {
        match self {
            Self::Unknown => Self::Unhealthy,
            other => other,
        }
    }
}

impl fmt::Display for HealthStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One of the answers the aggregator folds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Probe {
    /// Overall health: the worst of every report, optional ones included.
    Health,
    /// Readiness: may this instance receive traffic.
    Readiness,
    /// Liveness: should this instance be restarted.
    Liveness,
    /// Startup: has this instance finished starting.
    Startup,
}

impl Probe {
    /// Every probe, in a fixed order.
    pub const ALL: [Self; 4] = [Self::Health, Self::Readiness, Self::Liveness, Self::Startup];

    /// The snake_case name (`"health"`, `"readiness"`, `"liveness"`, `"startup"`).
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Health => "health",
            Self::Readiness => "readiness",
            Self::Liveness => "liveness",
            Self::Startup => "startup",
        }
    }

    /// The kube-apiserver endpoint name (`healthz`, `readyz`, `livez`, `startupz`).
    pub const fn kube_name(self) -> &'static str {
        match self {
            Self::Health => "healthz",
            Self::Readiness => "readyz",
            Self::Liveness => "livez",
            Self::Startup => "startupz",
        }
    }
}

impl fmt::Display for Probe {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Where a report came from; decides what a recomposition keeps.
#[derive(Clone, Debug, Default)]
pub(crate) enum Origin {
    /// Built outside an aggregator.
    #[default]
    External,
    /// Returned by (or synthesised for) the provider registered under this name.
    Provider(Arc<str>),
    /// A component set with `HealthAggregator::set_component`.
    Synthetic,
    /// The built-in runtime stall check.
    Runtime,
}

/// The health of one component of one module.
///
/// Providers build reports with the constructors ([`HealthReport::healthy`] and friends) and the
/// `with_*` methods. The aggregator owns `checked_at`, `observed_since`, `duration` and `probes`
/// (it overwrites them) and ORs `optional` with the registration's optionality.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[non_exhaustive]
pub struct HealthReport {
    /// The module the component belongs to.
    pub module: String,
    /// The component (for example `pool`, `primary`, `redis`).
    pub component: String,
    /// Its status.
    pub status: HealthStatus,
    /// Whether a failure of this component leaves every probe passing (it still counts for
    /// overall health).
    #[serde(default)]
    pub optional: bool,
    /// A short human-readable explanation (may be empty).
    #[serde(default)]
    pub message: String,
    /// When the check finished.
    #[serde(default, with = "timestamp")]
    pub checked_at: DateTime<Utc>,
    /// When the component entered its current status, as tracked by the aggregator.
    #[serde(default, with = "timestamp")]
    pub observed_since: DateTime<Utc>,
    /// How long the provider took to answer.
    #[serde(default, rename = "duration_ms", with = "duration_ms")]
    pub duration: Duration,
    /// Structured details (pool sizes, latencies, versions).
    #[serde(default)]
    pub details: Map<String, Value>,
    /// Which probes the component counts for (set from the registration).
    #[serde(skip)]
    pub probes: Probes,
    #[serde(skip)]
    pub(crate) origin: Origin,
}

impl PartialEq for HealthReport {
    fn eq(&self, other: &Self) -> bool {
        self.module == other.module
            && self.component == other.component
            && self.status == other.status
            && self.optional == other.optional
            && self.message == other.message
            && self.checked_at == other.checked_at
            && self.observed_since == other.observed_since
            && self.duration == other.duration
            && self.details == other.details
            && self.probes == other.probes
    }
}

impl HealthReport {
    /// A report with `status`, checked now, with no message or details.
    pub fn new(
        module: impl Into<String>,
        component: impl Into<String>,
        status: HealthStatus,
    ) -> Self {
        let now = Utc::now();
        Self {
            module: module.into(),
            component: component.into(),
            status,
            optional: false,
            message: String::new(),
            checked_at: now,
            observed_since: now,
            duration: Duration::ZERO,
            details: Map::new(),
            probes: Probes::default(),
            origin: Origin::External,
        }
    }

    /// A healthy report.
    pub fn healthy(module: impl Into<String>, component: impl Into<String>) -> Self {
        Self::new(module, component, HealthStatus::Healthy)
    }

    /// A degraded report.
    pub fn degraded(module: impl Into<String>, component: impl Into<String>) -> Self {
        Self::new(module, component, HealthStatus::Degraded)
    }

    /// An unhealthy report.
    pub fn unhealthy(module: impl Into<String>, component: impl Into<String>) -> Self {
        Self::new(module, component, HealthStatus::Unhealthy)
    }

    /// A report whose status could not be determined.
    pub fn unknown(module: impl Into<String>, component: impl Into<String>) -> Self {
        Self::new(module, component, HealthStatus::Unknown)
    }

    /// Sets the status.
    #[must_use]
    pub fn with_status(mut self, status: HealthStatus) -> Self {
        self.status = status;
        self
    }

    /// Sets the message.
    #[must_use]
    pub fn with_message(mut self, message: impl Into<String>) -> Self {
        self.message = message.into();
        self
    }

    /// Adds one detail.
    #[must_use]
    pub fn with_detail(mut self, key: impl Into<String>, value: impl Into<Value>) -> Self {
        self.details.insert(key.into(), value.into());
        self
    }

    /// Replaces the details.
    #[must_use]
    pub fn with_details(mut self, details: Map<String, Value>) -> Self {
        self.details = details;
        self
    }

    /// Marks the component optional (or not).
    #[must_use]
    pub fn with_optional(mut self, optional: bool) -> Self {
        self.optional = optional;
        self
    }

    /// Sets which probes the component counts for (the aggregator sets this from the
    /// registration; useful for reports built by hand).
    #[must_use]
    pub fn with_probes(mut self, probes: Probes) -> Self {
        self.probes = probes;
        self
    }

    /// Sets `checked_at` (and `observed_since`, which never precedes it on a fresh report).
    #[must_use]
    pub fn with_checked_at(mut self, at: DateTime<Utc>) -> Self {
        self.checked_at = at;
        self.observed_since = at;
        self
    }

    /// Sets `observed_since`.
    #[must_use]
    pub fn with_observed_since(mut self, since: DateTime<Utc>) -> Self {
        self.observed_since = since;
        self
    }

    /// Sets the check duration.
    #[must_use]
    pub fn with_duration(mut self, duration: Duration) -> Self {
        self.duration = duration;
        self
    }

    /// The check's name, `module:component`, as used by the IETF and kube renderers.
    pub fn key(&self) -> String {
        format!("{}:{}", self.module, self.component)
    }

    /// Whether this report fails `probe`: it counts for the probe, is failing, and is not
    /// optional (for [`Probe::Health`] every failing report counts).
    pub fn fails(&self, probe: Probe) -> bool {
        self.status.is_failing() && self.counts_for(probe)
    }

    /// Whether this report is folded into `probe`.
    pub fn counts_for(&self, probe: Probe) -> bool {
        match probe {
            Probe::Health => true,
            other => !self.optional && self.probes.includes(other),
        }
    }

    pub(crate) fn is_synthetic(&self) -> bool {
        matches!(self.origin, Origin::Synthetic)
    }

    pub(crate) fn provider_name(&self) -> Option<&str> {
        match &self.origin {
            Origin::Provider(name) => Some(name),
            _ => None,
        }
    }
}

/// Why a health check failed. `Temporary` reports `degraded`, every other kind `unhealthy`.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum HealthError {
    /// A transient problem expected to clear by itself (reported `degraded`).
    #[error("temporary: {0}")]
    Temporary(String),
    /// The check failed (reported `unhealthy`).
    #[error("{0}")]
    Failed(String),
    /// The check failed with an underlying error (reported `unhealthy`).
    #[error("{context}: {source}")]
    Source {
        /// What was being checked (`ping primary`).
        context: String,
        /// The underlying error.
        #[source]
        source: BoxError,
    },
}

impl HealthError {
    /// A transient failure, reported `degraded`.
    pub fn temporary(message: impl fmt::Display) -> Self {
        Self::Temporary(message.to_string())
    }

    /// A failure, reported `unhealthy`.
    pub fn failed(message: impl fmt::Display) -> Self {
        Self::Failed(message.to_string())
    }

    /// A failure caused by `source`, reported `unhealthy` as `<context>: <source>`.
    pub fn source(context: impl Into<String>, source: impl Into<BoxError>) -> Self {
        Self::Source {
            context: context.into(),
            source: source.into(),
        }
    }

    /// Whether the failure is temporary.
    pub fn is_temporary(&self) -> bool {
        matches!(self, Self::Temporary(_))
    }

    /// The status a report of this error carries.
    pub fn status(&self) -> HealthStatus {
        if self.is_temporary() {
            HealthStatus::Degraded
        } else {
            HealthStatus::Unhealthy
        }
    }
}

impl From<BoxError> for HealthError {
    fn from(source: BoxError) -> Self {
        Self::Failed(source.to_string())
    }
}

/// The aggregated answer: overall health, the three probes and every report.
///
/// Serializes as the native JSON body of `GET /health` with full details
/// (`status`, `readiness`, `liveness`, `startup`, `config_version`, `generated_at`, `checks`);
/// the [`render`](super::render) functions apply the details policy.
#[derive(Clone, Debug, Serialize)]
#[non_exhaustive]
pub struct AggregatedHealth {
    /// Worst of every report (optional ones included).
    #[serde(rename = "status")]
    pub health: HealthStatus,
    /// Worst of the non-optional readiness reports; unhealthy while shutting down.
    pub readiness: HealthStatus,
    /// Worst of the non-optional liveness reports, the built-in `runtime` check included.
    pub liveness: HealthStatus,
    /// Unhealthy until the application has started, then the worst of the non-optional
    /// startup reports.
    pub startup: HealthStatus,
    /// The configuration version the answer was produced under.
    pub config_version: u64,
    /// When the answer was produced.
    #[serde(with = "timestamp")]
    pub generated_at: DateTime<Utc>,
    /// Every report, sorted by module then component.
    #[serde(rename = "checks")]
    pub reports: Vec<HealthReport>,
    /// How long the evaluation took.
    #[serde(skip)]
    pub duration: Duration,
    /// Whether the application had started.
    #[serde(skip)]
    pub started: bool,
    /// Whether the application was shutting down.
    #[serde(skip)]
    pub shutting_down: bool,
    /// The evaluation's sequence number (1 for the first; a recomposition after a
    /// `set_*` call keeps its evaluation's number).
    #[serde(skip)]
    pub evaluation: u64,
}

impl AggregatedHealth {
    /// Folds hand-made reports into an answer: sorted, an application that has started and is
    /// not shutting down, config version 0. Useful to test renderers and routers.
    pub fn from_reports(reports: Vec<HealthReport>) -> Self {
        let flags = Flags {
            started: true,
            shutting_down: false,
            config_version: 0,
        };
        fold(reports, None, &flags, Utc::now(), Duration::ZERO, 0).0
    }

    /// The status of one probe.
    pub fn status(&self, probe: Probe) -> HealthStatus {
        match probe {
            Probe::Health => self.health,
            Probe::Readiness => self.readiness,
            Probe::Liveness => self.liveness,
            Probe::Startup => self.startup,
        }
    }

    /// The HTTP status code for `probe`: 503 when it is unhealthy or unknown, otherwise 200.
    pub fn status_code(&self, probe: Probe) -> u16 {
        self.status(probe).http_status_code()
    }

    /// One report.
    pub fn report(&self, module: &str, component: &str) -> Option<&HealthReport> {
        self.reports
            .iter()
            .find(|r| r.module == module && r.component == component)
    }

    /// The reports of one module, in component order.
    pub fn module_reports<'a>(
        &'a self,
        module: &'a str,
    ) -> impl Iterator<Item = &'a HealthReport> + 'a {
        self.reports.iter().filter(move |r| r.module == module)
    }
}

/// RFC 3339 timestamps with millisecond precision and a `Z` suffix.
pub(crate) mod timestamp {
    use chrono::{DateTime, SecondsFormat, Utc};
    use serde::{Deserialize, Deserializer, Serializer};

    pub(crate) fn format(at: &DateTime<Utc>) -> String {
        at.to_rfc3339_opts(SecondsFormat::Millis, true)
    }

    pub(crate) fn serialize<S: Serializer>(
        at: &DateTime<Utc>,
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&format(at))
    }

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<DateTime<Utc>, D::Error> {
        DateTime::<Utc>::deserialize(deserializer)
    }
}

/// Durations as fractional milliseconds (microsecond precision).
pub(crate) mod duration_ms {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    pub(crate) fn millis(duration: Duration) -> f64 {
        // u128 -> f64 loses precision only beyond 2^53 µs (285 years).
        duration.as_micros() as f64 / 1000.0
    }

    pub(crate) fn serialize<S: Serializer>(
        duration: &Duration,
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        serializer.serialize_f64(millis(*duration))
    }

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<Duration, D::Error> {
        let millis = f64::deserialize(deserializer)?;
        Duration::try_from_secs_f64(millis / 1000.0).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fold_counts_unknown_as_unhealthy_and_empty_as_healthy() {
        assert_eq!(HealthStatus::fold([]), HealthStatus::Healthy);
        assert_eq!(
            HealthStatus::fold([HealthStatus::Healthy, HealthStatus::Unknown]),
            HealthStatus::Unhealthy
        );
        assert_eq!(
            HealthStatus::fold([HealthStatus::Degraded, HealthStatus::Healthy]),
            HealthStatus::Degraded
        );
    }

    #[test]
    fn worse_statuses_compare_greater() {
        assert!(HealthStatus::Healthy < HealthStatus::Degraded);
        assert!(HealthStatus::Degraded < HealthStatus::Unhealthy);
        assert!(HealthStatus::Unhealthy < HealthStatus::Unknown);
    }

    #[test]
    fn only_failing_statuses_answer_503() {
        assert_eq!(HealthStatus::Healthy.http_status_code(), 200);
        assert_eq!(HealthStatus::Degraded.http_status_code(), 200);
        assert_eq!(HealthStatus::Unhealthy.http_status_code(), 503);
        assert_eq!(HealthStatus::Unknown.http_status_code(), 503);
    }

    #[test]
    fn temporary_errors_degrade_and_others_fail() {
        assert_eq!(
            HealthError::temporary("busy").status(),
            HealthStatus::Degraded
        );
        assert_eq!(
            HealthError::failed("down").status(),
            HealthStatus::Unhealthy
        );
        let io = std::io::Error::other("refused");
        let error = HealthError::source("ping primary", io);
        assert_eq!(error.status(), HealthStatus::Unhealthy);
        assert_eq!(error.to_string(), "ping primary: refused");
    }

    #[test]
    fn report_serializes_duration_as_fractional_milliseconds() {
        let report =
            HealthReport::healthy("db", "pool").with_duration(Duration::from_micros(1_250));
        let value = serde_json::to_value(&report).unwrap_or_default();
        assert_eq!(value["duration_ms"], serde_json::json!(1.25));
        assert_eq!(value["status"], "healthy");
        let back: HealthReport =
            serde_json::from_value(value).unwrap_or_else(|_| HealthReport::unknown("", ""));
        assert_eq!(back.duration, Duration::from_micros(1_250));
        assert_eq!(back.module, "db");
    }
}
