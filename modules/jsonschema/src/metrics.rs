//! The module's series (DESIGN.md §3.8), through the `metrics` facade while core records
//! ([`modular_core::metrics::is_recording`]):
//!
//! | series | type | labels |
//! |---|---|---|
//! | `modular_jsonschema_validations_total` | counter | `schema`, `outcome` (`valid`, `invalid`) |
//! | `modular_jsonschema_validation_duration_seconds` | histogram | `schema` |
//! | `modular_jsonschema_compilations_total` | counter | `outcome` (`applied`, `rejected`) |
//!
//! `schema` is bounded by the configured schema names. Handles are registered once per
//! compiled schema; without a recorder they are no-ops and validation is not timed.

use metrics::{Counter, Histogram};

/// The series names.
pub mod names {
    /// Counter: validations, by `schema` and `outcome`.
    pub const VALIDATIONS_TOTAL: &str = "modular_jsonschema_validations_total";
    /// Histogram: validation time in seconds, by `schema`.
    pub const VALIDATION_DURATION_SECONDS: &str = "modular_jsonschema_validation_duration_seconds";
    /// Counter: schema set compilations, by `outcome`.
    pub const COMPILATIONS_TOTAL: &str = "modular_jsonschema_compilations_total";
}

/// One schema's handles.
#[derive(Clone, Debug)]
pub(crate) struct SchemaSeries {
    pub(crate) recording: bool,
    pub(crate) valid: Counter,
    pub(crate) invalid: Counter,
    pub(crate) duration: Histogram,
}

impl SchemaSeries {
    pub(crate) fn new(schema: &str) -> Self {
        if !modular_core::metrics::is_recording() {
            return Self {
                recording: false,
                valid: Counter::noop(),
                invalid: Counter::noop(),
                duration: Histogram::noop(),
            };
        }
        let schema = schema.to_owned();
        Self {
            recording: true,
            valid: metrics::counter!(names::VALIDATIONS_TOTAL, "schema" => schema.clone(), "outcome" => "valid"),
            invalid: metrics::counter!(names::VALIDATIONS_TOTAL, "schema" => schema.clone(), "outcome" => "invalid"),
            duration: metrics::histogram!(names::VALIDATION_DURATION_SECONDS, "schema" => schema),
        }
    }
}

/// Counts one compilation of the whole set.
pub(crate) fn compiled(applied: bool) {
    if modular_core::metrics::is_recording() {
        let outcome = if applied { "applied" } else { "rejected" };
        metrics::counter!(names::COMPILATIONS_TOTAL, "outcome" => outcome).increment(1);
    }
}
