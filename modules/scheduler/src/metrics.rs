//! The module's series (DESIGN.md §3.8), through the `metrics` facade while core records
//! ([`modular_core::metrics::is_recording`]):
//!
//! | series | type | labels |
//! |---|---|---|
//! | `modular_scheduler_runs_total` | counter | `job`, `outcome` (`completed`, `failed`, `panicked`, `timed_out`, `retried`) |
//! | `modular_scheduler_run_duration_seconds` | histogram | `job` |
//! | `modular_scheduler_lateness_seconds` | histogram | `job` (start time minus scheduled time) |
//! | `modular_scheduler_missed_total` | counter | `job`, `reason` (`misfire`, `max_concurrent`, `queue_full`, `store_unavailable`) |
//! | `modular_scheduler_queue_depth` | gauge | (none): runs waiting for a worker |
//!
//! `job` is bounded by the registered handler names.

use std::time::Duration;

/// The series names.
pub mod names {
    /// Counter: runs by `job` and `outcome`.
    pub const RUNS_TOTAL: &str = "modular_scheduler_runs_total";
    /// Histogram: attempt duration in seconds, by `job`.
    pub const RUN_DURATION_SECONDS: &str = "modular_scheduler_run_duration_seconds";
    /// Histogram: start minus scheduled time in seconds, by `job`.
    pub const LATENESS_SECONDS: &str = "modular_scheduler_lateness_seconds";
    /// Counter: missed occurrences by `job` and `reason`.
    pub const MISSED_TOTAL: &str = "modular_scheduler_missed_total";
    /// Gauge: runs waiting for a worker.
    pub const QUEUE_DEPTH: &str = "modular_scheduler_queue_depth";
}

pub(crate) fn run(job: &str, outcome: &'static str) {
    if modular_core::metrics::is_recording() {
        metrics::counter!(names::RUNS_TOTAL, "job" => job.to_owned(), "outcome" => outcome)
            .increment(1);
    }
}

pub(crate) fn duration(job: &str, took: Duration) {
    if modular_core::metrics::is_recording() {
        metrics::histogram!(names::RUN_DURATION_SECONDS, "job" => job.to_owned())
            .record(took.as_secs_f64());
    }
}

pub(crate) fn lateness(job: &str, late: Duration) {
    if modular_core::metrics::is_recording() {
        metrics::histogram!(names::LATENESS_SECONDS, "job" => job.to_owned())
            .record(late.as_secs_f64());
    }
}

pub(crate) fn missed(job: &str, reason: &'static str) {
    if modular_core::metrics::is_recording() {
        metrics::counter!(names::MISSED_TOTAL, "job" => job.to_owned(), "reason" => reason)
            .increment(1);
    }
}

pub(crate) fn queue_depth(depth: usize) {
    if modular_core::metrics::is_recording() {
        #[allow(clippy::cast_precision_loss)] // a queue depth is far below 2^52
        metrics::gauge!(names::QUEUE_DEPTH).set(depth as f64);
    }
}
