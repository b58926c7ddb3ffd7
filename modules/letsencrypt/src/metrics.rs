//! The module's series (DESIGN.md §3.8), through the `metrics` facade while core records
//! ([`modular_core::metrics::is_recording`]):
//!
//! | series | type | labels |
//! |---|---|---|
//! | `modular_letsencrypt_certificate_expiry_days` | gauge | `certificate` |
//! | `modular_letsencrypt_issuances_total` | counter | `certificate`, `outcome` (`issued`, `renewed`, `failed`) |
//!
//! `certificate` is bounded by the configured certificate names. The gauge is set at every
//! health check and every issuance.

use chrono::Utc;

use crate::certificate::Issued;

/// The series names.
pub mod names {
    /// Gauge: days until the served certificate expires (negative once expired).
    pub const CERTIFICATE_EXPIRY_DAYS: &str = "modular_letsencrypt_certificate_expiry_days";
    /// Counter: orders, by `certificate` and `outcome`.
    pub const ISSUANCES_TOTAL: &str = "modular_letsencrypt_issuances_total";
}

pub(crate) fn days_left(issued: &Issued) -> f64 {
    (issued.not_after - Utc::now()).num_seconds() as f64 / 86_400.0
}

pub(crate) fn expiry(certificate: &str, issued: &Issued) {
    if modular_core::metrics::is_recording() {
        metrics::gauge!(names::CERTIFICATE_EXPIRY_DAYS, "certificate" => certificate.to_owned())
            .set(days_left(issued));
    }
}

pub(crate) fn issued(certificate: &str, renewal: bool, issued: &Issued) {
    if modular_core::metrics::is_recording() {
        let outcome = if renewal { "renewed" } else { "issued" };
        metrics::counter!(names::ISSUANCES_TOTAL, "certificate" => certificate.to_owned(), "outcome" => outcome)
            .increment(1);
    }
    expiry(certificate, issued);
}

pub(crate) fn failed(certificate: &str) {
    if modular_core::metrics::is_recording() {
        metrics::counter!(names::ISSUANCES_TOTAL, "certificate" => certificate.to_owned(), "outcome" => "failed")
            .increment(1);
    }
}
