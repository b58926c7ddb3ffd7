//! The server's series (DESIGN.md §3.8), through the `metrics` facade:
//!
//! | series | type | labels |
//! |---|---|---|
//! | `modular_httpserver_connections` | gauge | — (open connections) |
//! | `modular_httpserver_requests_in_flight` | gauge | — (requests whose response headers are not out yet) |
//! | `modular_httpserver_tls_reloads_total` | counter | `outcome` (`success`, `failure`): certificate rotations and client CA reloads, by config or by the file watcher |
//!
//! Handles are registered once, when the server is built; without a recorder (metrics off)
//! they are no-ops, so an accept or a request costs nothing extra.

use metrics::{Counter, Gauge};

/// The series names.
pub mod names {
    /// Gauge: open connections.
    pub const CONNECTIONS: &str = "modular_httpserver_connections";
    /// Gauge: requests whose response headers are not out yet.
    pub const REQUESTS_IN_FLIGHT: &str = "modular_httpserver_requests_in_flight";
    /// Counter: TLS reloads (certificate rotations and client CA swaps) by `outcome`,
    /// `success` or `failure`.
    pub const TLS_RELOADS: &str = "modular_httpserver_tls_reloads_total";
}

/// One server's series handles.
#[derive(Clone)]
pub(crate) struct ServerSeries {
    pub(crate) connections: Gauge,
    pub(crate) in_flight: Gauge,
    tls_reloaded: Counter,
    tls_failed: Counter,
}

impl std::fmt::Debug for ServerSeries {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerSeries").finish_non_exhaustive()
    }
}

impl Default for ServerSeries {
    fn default() -> Self {
        if !modular_core::metrics::is_recording() {
            return Self {
                connections: Gauge::noop(),
                in_flight: Gauge::noop(),
                tls_reloaded: Counter::noop(),
                tls_failed: Counter::noop(),
            };
        }
        Self {
            connections: metrics::gauge!(names::CONNECTIONS),
            in_flight: metrics::gauge!(names::REQUESTS_IN_FLIGHT),
            tls_reloaded: metrics::counter!(names::TLS_RELOADS, "outcome" => "success"),
            tls_failed: metrics::counter!(names::TLS_RELOADS, "outcome" => "failure"),
        }
    }
}

impl ServerSeries {
    /// Counts one TLS reload.
    pub(crate) fn tls_reload(&self, succeeded: bool) {
        if succeeded {
            self.tls_reloaded.increment(1);
        } else {
            self.tls_failed.increment(1);
        }
    }
}
