//! The module's series (DESIGN.md §3.8), through the `metrics` facade while core records
//! ([`modular_core::metrics::is_recording`]):
//!
//! | series | type | labels |
//! |---|---|---|
//! | `modular_auth_logins_total` | counter | `outcome` (`succeeded`, `failed`, `throttled`) |
//! | `modular_auth_token_verifications_total` | counter | `outcome` (`valid` or a [`TokenError`](crate::TokenError) name: `expired`, `bad_signature`, ...) |
//! | `modular_auth_throttled_total` | counter | `scope` (`account`, `client`) |
//!
//! Every label is bounded. Without a recorder nothing is registered and verification pays
//! one relaxed load.

use metrics::Counter;

/// The series names.
pub mod names {
    /// Counter: logins by `outcome`.
    pub const LOGINS_TOTAL: &str = "modular_auth_logins_total";
    /// Counter: token verifications by `outcome`.
    pub const TOKEN_VERIFICATIONS_TOTAL: &str = "modular_auth_token_verifications_total";
    /// Counter: throttled login attempts by `scope`.
    pub const THROTTLED_TOTAL: &str = "modular_auth_throttled_total";
}

/// Handles registered once (the valid-token counter is on the hot path).
#[derive(Debug)]
pub(crate) struct Series {
    recording: bool,
    valid: Counter,
}

impl Series {
    pub(crate) fn new() -> Self {
        let recording = modular_core::metrics::is_recording();
        Self {
            recording,
            valid: if recording {
                metrics::counter!(names::TOKEN_VERIFICATIONS_TOTAL, "outcome" => "valid")
            } else {
                Counter::noop()
            },
        }
    }

    #[inline]
    pub(crate) fn verified<T>(&self, outcome: &Result<T, crate::TokenError>) {
        if !self.recording {
            return;
        }
        match outcome {
            Ok(_) => self.valid.increment(1),
            Err(e) => metrics::counter!(names::TOKEN_VERIFICATIONS_TOTAL, "outcome" => e.as_str())
                .increment(1),
        }
    }

    pub(crate) fn login(&self, outcome: &'static str) {
        if self.recording {
            metrics::counter!(names::LOGINS_TOTAL, "outcome" => outcome).increment(1);
        }
    }

    pub(crate) fn throttled(&self, scope: &'static str) {
        if self.recording {
            metrics::counter!(names::THROTTLED_TOTAL, "scope" => scope).increment(1);
        }
    }
}
