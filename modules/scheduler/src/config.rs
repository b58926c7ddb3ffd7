//! [`SchedulerConfig`]: the `scheduler` section: the worker pool, persistence, health
//! thresholds and the cron jobs.

use std::collections::BTreeMap;
use std::time::Duration;

use modular_core::health::ProviderConfig;
use modular_core::{DynamicConfig, FieldError};
use serde::{Deserialize, Serialize};

use crate::cron;

/// The `scheduler` configuration section.
///
/// | field | dynamic | what |
/// |---|---|---|
/// | `workers` | yes | the size of the worker pool: runs that execute at once, over all jobs (default 4, > 0) |
/// | `queue_capacity` | yes | due runs that may wait for a worker; beyond it a run is missed (`queue_full`) and health is degraded (default 1024, > 0) |
/// | `failure_threshold` | yes | consecutive failed runs of one job that turn health degraded (default 3, > 0) |
/// | `persistence.connection` | no | the database module's connection name whose pool stores job state, history and leases; absent: in memory only |
/// | `persistence.instance` | no | this instance's name in lease rows (default: a random UUID) |
/// | `persistence.history` | yes | run rows kept per job (default 50) |
/// | `persistence.lease` | yes | how long a claimed run is held without renewal before another instance may take it over (default 30s) |
/// | `jobs.<name>.*` | yes | a job's schedule and policy (see [`JobConfig`]); adding or removing a job is dynamic too |
/// | `health.timeout`, `health.optional` | yes | the health registration's options |
///
/// `persistence.connection` is static: switching the store under running leases would break
/// the once-per-fleet guarantee.
///
/// ```yaml
/// scheduler:
///   workers: 4
///   persistence:
///     connection: default
///   jobs:
///     cleanup:
///       cron: "0 */5 * * * *"
///       timezone: Europe/Berlin
///       timeout: 30s
///       max_concurrent: 1
///       retry: { max_attempts: 3, initial_backoff: 1s, max_backoff: 1m }
///       misfire: run_once
/// ```
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, DynamicConfig)]
#[serde(deny_unknown_fields, default)]
#[config(validate = "Self::validate_config")]
pub struct SchedulerConfig {
    /// Runs that execute at once.
    #[config(dynamic)]
    pub workers: usize,
    /// Due runs that may wait for a worker.
    #[config(dynamic)]
    pub queue_capacity: usize,
    /// Consecutive failures of one job that turn health degraded.
    #[config(dynamic)]
    pub failure_threshold: u32,
    /// Where job state lives.
    #[config(nested)]
    pub persistence: PersistenceConfig,
    /// The cron jobs, by the name their handler is registered under.
    #[config(dynamic, nested)]
    pub jobs: BTreeMap<String, JobConfig>,
    /// Health registration.
    #[config(nested)]
    pub health: ProviderConfig,
}

impl Default for SchedulerConfig {
    fn default() -> Self {
        Self {
            workers: 4,
            queue_capacity: 1024,
            failure_threshold: 3,
            persistence: PersistenceConfig::default(),
            jobs: BTreeMap::new(),
            health: ProviderConfig::default(),
        }
    }
}

/// `scheduler.persistence`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, DynamicConfig)]
#[serde(deny_unknown_fields, default)]
pub struct PersistenceConfig {
    /// The database module's connection name; `None`: state in memory only.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub connection: Option<String>,
    /// This instance's name in lease rows.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub instance: Option<String>,
    /// Run rows kept per job.
    #[config(dynamic)]
    pub history: u32,
    /// How long a claim holds without renewal.
    #[config(dynamic)]
    #[serde(with = "modular_core::humantime_serde")]
    pub lease: Duration,
}

impl Default for PersistenceConfig {
    fn default() -> Self {
        Self {
            connection: None,
            instance: None,
            history: 50,
            lease: Duration::from_secs(30),
        }
    }
}

/// One cron job: `scheduler.jobs.<name>`. Every field is dynamic: a reload recomputes the
/// next occurrence; a run already going finishes under the settings it started with.
///
/// | field | default | what |
/// |---|---|---|
/// | `cron` | (required) | croner syntax, 5 fields or 6 with seconds first; `L`, `W`, `#`, `@daily` |
/// | `timezone` | `UTC` | an IANA zone name; occurrences follow its DST changes |
/// | `enabled` | `true` | a disabled job is not scheduled (a manual trigger still runs it) |
/// | `timeout` | `30s` | a run still going then is dropped and recorded as timed out |
/// | `max_concurrent` | `1` | runs of this job at once; an occurrence beyond it is missed |
/// | `retry` | no retry | attempts and exponential backoff of a failed run |
/// | `misfire` | `run_once` | what happens to occurrences missed while down or late: `skip`, `run_once`, `run_all` |
/// | `misfire_cap` | `10` | the most missed occurrences `run_all` runs |
/// | `tolerance` | `1m` | lateness beyond which an occurrence counts as missed, and health reports the job overdue |
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, DynamicConfig)]
#[serde(deny_unknown_fields, default)]
#[config(dynamic)]
pub struct JobConfig {
    /// The cron expression.
    pub cron: String,
    /// The IANA time zone the expression is read in.
    pub timezone: String,
    /// Whether the job is scheduled.
    pub enabled: bool,
    /// Per-run deadline.
    #[serde(with = "modular_core::humantime_serde")]
    pub timeout: Duration,
    /// Runs of this job at once.
    pub max_concurrent: u32,
    /// Retries.
    #[config(nested)]
    pub retry: RetryConfig,
    /// Missed occurrences.
    pub misfire: MisfirePolicy,
    /// The most missed occurrences `run_all` runs.
    pub misfire_cap: u32,
    /// Lateness that counts as missed.
    #[serde(with = "modular_core::humantime_serde")]
    pub tolerance: Duration,
}

impl Default for JobConfig {
    fn default() -> Self {
        Self {
            cron: String::new(),
            timezone: "UTC".to_owned(),
            enabled: true,
            timeout: Duration::from_secs(30),
            max_concurrent: 1,
            retry: RetryConfig::default(),
            misfire: MisfirePolicy::RunOnce,
            misfire_cap: 10,
            tolerance: Duration::from_secs(60),
        }
    }
}

/// `retry`: a failed attempt (error, panic or timeout) is retried after
/// `initial_backoff * multiplier^(attempt-1)`, at most `max_backoff`, until `max_attempts`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, DynamicConfig)]
#[serde(deny_unknown_fields, default)]
#[config(dynamic)]
pub struct RetryConfig {
    /// Attempts in all (1: no retry).
    pub max_attempts: u32,
    /// The wait before the second attempt.
    #[serde(with = "modular_core::humantime_serde")]
    pub initial_backoff: Duration,
    /// The longest wait.
    #[serde(with = "modular_core::humantime_serde")]
    pub max_backoff: Duration,
    /// The growth per attempt.
    pub multiplier: f64,
}

impl Default for RetryConfig {
    fn default() -> Self {
        Self {
            max_attempts: 1,
            initial_backoff: Duration::from_secs(1),
            max_backoff: Duration::from_secs(60),
            multiplier: 2.0,
        }
    }
}

impl RetryConfig {
    /// The wait after failed attempt `attempt` (1-based).
    pub fn backoff(&self, attempt: u32) -> Duration {
        let factor = self
            .multiplier
            .powi(i32::try_from(attempt.saturating_sub(1)).unwrap_or(i32::MAX));
        let secs = self.initial_backoff.as_secs_f64() * factor;
        if !secs.is_finite() || secs >= self.max_backoff.as_secs_f64() {
            return self.max_backoff;
        }
        Duration::from_secs_f64(secs.max(0.0))
    }
}

/// What happens to occurrences that passed while the scheduler was down (or more than
/// `tolerance` late).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum MisfirePolicy {
    /// None runs; each is reported `missed`.
    Skip,
    /// The latest runs once; the others are reported `missed`.
    RunOnce,
    /// Each runs, oldest first, up to `misfire_cap`; the rest are reported `missed`.
    RunAll,
}

impl MisfirePolicy {
    /// The snake_case name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Skip => "skip",
            Self::RunOnce => "run_once",
            Self::RunAll => "run_all",
        }
    }
}

impl SchedulerConfig {
    fn validate_config(&self) -> Result<(), Vec<FieldError>> {
        let mut errors = Vec::new();
        if self.workers == 0 {
            errors.push(FieldError::new("workers", "must be > 0, got 0"));
        }
        if self.queue_capacity == 0 {
            errors.push(FieldError::new("queue_capacity", "must be > 0, got 0"));
        }
        if self.failure_threshold == 0 {
            errors.push(FieldError::new("failure_threshold", "must be > 0, got 0"));
        }
        if self.persistence.lease < Duration::from_millis(100) {
            errors.push(FieldError::new(
                "persistence.lease",
                format!("must be at least 100ms, got {:?}", self.persistence.lease),
            ));
        }
        if self.persistence.history == 0 {
            errors.push(FieldError::new("persistence.history", "must be > 0, got 0"));
        }
        if let Some(connection) = &self.persistence.connection
            && connection.is_empty()
        {
            errors.push(FieldError::new(
                "persistence.connection",
                "must name a database connection, got an empty string",
            ));
        }
        for (name, job) in &self.jobs {
            job.check(&format!("jobs.{name}"), &mut errors);
        }
        FieldError::collect(errors)
    }
}

impl JobConfig {
    fn check(&self, at: &str, errors: &mut Vec<FieldError>) {
        if let Err(e) = cron::parse(&self.cron) {
            errors.push(FieldError::new(format!("{at}.cron"), e.to_string()));
        }
        if cron::zone(&self.timezone).is_none() {
            errors.push(FieldError::new(
                format!("{at}.timezone"),
                format!("unknown time zone \"{}\"", self.timezone),
            ));
        }
        if self.timeout.is_zero() {
            errors.push(FieldError::new(
                format!("{at}.timeout"),
                "must be > 0s, got 0s",
            ));
        }
        if self.max_concurrent == 0 {
            errors.push(FieldError::new(
                format!("{at}.max_concurrent"),
                "must be > 0, got 0",
            ));
        }
        if self.retry.max_attempts == 0 {
            errors.push(FieldError::new(
                format!("{at}.retry.max_attempts"),
                "must be > 0, got 0",
            ));
        }
        if !(self.retry.multiplier >= 1.0 && self.retry.multiplier.is_finite()) {
            errors.push(FieldError::new(
                format!("{at}.retry.multiplier"),
                format!(
                    "must be a finite number >= 1, got {}",
                    self.retry.multiplier
                ),
            ));
        }
        if self.misfire_cap == 0 {
            errors.push(FieldError::new(
                format!("{at}.misfire_cap"),
                "must be > 0, got 0",
            ));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_the_cap() {
        let retry = RetryConfig {
            max_attempts: 5,
            initial_backoff: Duration::from_secs(1),
            max_backoff: Duration::from_secs(5),
            multiplier: 2.0,
        };
        let waits: Vec<u64> = (1..=4).map(|a| retry.backoff(a).as_secs()).collect();
        assert_eq!(waits, [1, 2, 4, 5]);
    }
}
