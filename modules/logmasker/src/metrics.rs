//! The masker's series (DESIGN.md §3.8), through the `metrics` facade while core records
//! ([`modular_core::metrics::is_recording`]):
//!
//! | series | type | labels |
//! |---|---|---|
//! | `modular_logmasker_lines_masked_total` | counter | (none): lines in which at least one value was masked |
//! | `modular_logmasker_values_masked_total` | counter | `rule`: the rule's `name`, field glob, built-in name or `regex_<index>` |
//! | `modular_logmasker_dropped_lines_total` | counter | (none): lines the writer failed to write |
//!
//! The `rule` label is bounded by the configuration. Handles are registered when a rule set is
//! compiled (values) or once per masker (lines); without a recorder they are no-ops.

use metrics::Counter;

/// The series names.
pub mod names {
    /// Counter: lines in which at least one value was masked.
    pub const LINES_MASKED_TOTAL: &str = "modular_logmasker_lines_masked_total";
    /// Counter: values masked, by `rule`.
    pub const VALUES_MASKED_TOTAL: &str = "modular_logmasker_values_masked_total";
    /// Counter: lines the writer failed to write.
    pub const DROPPED_LINES_TOTAL: &str = "modular_logmasker_dropped_lines_total";
}

/// The per-rule counter of masked values.
pub(crate) fn values_masked(rule: String) -> Counter {
    if !modular_core::metrics::is_recording() {
        return Counter::noop();
    }
    metrics::counter!(names::VALUES_MASKED_TOTAL, "rule" => rule)
}

/// The masker-wide counters.
#[derive(Clone)]
pub(crate) struct MaskerSeries {
    pub(crate) lines_masked: Counter,
    pub(crate) dropped_lines: Counter,
}

impl MaskerSeries {
    pub(crate) fn new() -> Self {
        if !modular_core::metrics::is_recording() {
            return Self {
                lines_masked: Counter::noop(),
                dropped_lines: Counter::noop(),
            };
        }
        Self {
            lines_masked: metrics::counter!(names::LINES_MASKED_TOTAL),
            dropped_lines: metrics::counter!(names::DROPPED_LINES_TOTAL),
        }
    }
}
