//! Metric names (§3.8 of the design): labels are bounded (route label, pool, backend
//! `host:port`, status class).

/// Counter: requests by `route`, `pool`, `backend` and `status` (`2xx`, `5xx`, `timeout`).
pub const REQUESTS: &str = "modular_reverseproxy_requests_total";
/// Histogram: time to the backend's response headers, by `pool`.
pub const UPSTREAM_SECONDS: &str = "modular_reverseproxy_upstream_duration_seconds";
/// Counter: retries by `route`.
pub const RETRIES: &str = "modular_reverseproxy_retries_total";
/// Counter: retries refused by the retry budget, by `route`.
pub const RETRIES_DENIED: &str = "modular_reverseproxy_retries_denied_total";
/// Gauge: breaker state by `pool` and `backend` (0 closed, 1 open, 2 half-open).
pub const BREAKER_STATE: &str = "modular_reverseproxy_breaker_state";
/// Gauge: requests in flight by `pool` and `backend` (set at each health check).
pub const ACTIVE_REQUESTS: &str = "modular_reverseproxy_active_requests";
/// Gauge: 1 when a backend is up by `pool` and `backend`.
pub const BACKEND_UP: &str = "modular_reverseproxy_backend_up";
/// Counter: mirrored requests by `route` and `result` (`match`, `mismatch`, `failed`,
/// `skipped`, `too_large`, `body_mismatch`: the mirror's answer equals the client's,
/// its status differs, the mirror got no answer, too many mirrors were in flight, the
/// request body was above `max_body_bytes`, or the status matched and the body differed
/// under `compare_body`).
pub const SHADOW: &str = "modular_reverseproxy_shadow_total";

/// The [`SHADOW`] counters of a route, in [`crate::shadow::RESULTS`] order.
pub(crate) fn shadow_series(route: &str) -> [metrics::Counter; 6] {
    crate::shadow::RESULTS.map(|result| {
        if modular_core::metrics::is_recording() {
            metrics::counter!(SHADOW, "route" => route.to_owned(), "result" => result)
        } else {
            metrics::Counter::noop()
        }
    })
}

use metrics::{Counter, Gauge, Histogram};

/// Status classes of [`REQUESTS`], in [`RequestSeries`] order.
const CLASSES: [&str; 6] = ["1xx", "2xx", "3xx", "4xx", "5xx", "timeout"];

/// The `status` index of a timed-out attempt in [`RequestSeries`].
pub(crate) const TIMEOUT: usize = 5;

/// The [`CLASSES`] index of `status`.
pub(crate) fn class_index(status: http::StatusCode) -> usize {
    match status.as_u16() {
        100..=199 => 0,
        200..=299 => 1,
        300..=399 => 2,
        400..=499 => 3,
        _ => 4,
    }
}

/// [`REQUESTS`] of one route and one backend (or `none`), one counter per status class,
/// registered once when the table is built: a registration per request hashes the labels
/// and allocates them.
#[derive(Debug, Clone)]
pub(crate) struct RequestSeries([Counter; 6]);

impl RequestSeries {
    pub(crate) fn new(route: &str, pool: &str, backend: &str) -> Self {
        Self(CLASSES.map(|class| {
            if !modular_core::metrics::is_recording() {
                return Counter::noop();
            }
            metrics::counter!(
                REQUESTS,
                "route" => route.to_owned(),
                "pool" => pool.to_owned(),
                "backend" => backend.to_owned(),
                "status" => class,
            )
        }))
    }

    pub(crate) fn count(&self, class: usize) {
        self.0[class].increment(1);
    }
}

/// A counter labelled by `route`, or a no-op when the framework does not record.
pub(crate) fn route_counter(name: &'static str, route: &str) -> Counter {
    if modular_core::metrics::is_recording() {
        metrics::counter!(name, "route" => route.to_owned())
    } else {
        Counter::noop()
    }
}

/// [`UPSTREAM_SECONDS`] of a pool.
pub(crate) fn upstream_seconds(pool: &str) -> Histogram {
    if modular_core::metrics::is_recording() {
        metrics::histogram!(UPSTREAM_SECONDS, "pool" => pool.to_owned())
    } else {
        Histogram::noop()
    }
}

/// A gauge labelled by `pool` and `backend`.
pub(crate) fn backend_gauge(name: &'static str, pool: &str, backend: &str) -> Gauge {
    if modular_core::metrics::is_recording() {
        metrics::gauge!(name, "pool" => pool.to_owned(), "backend" => backend.to_owned())
    } else {
        Gauge::noop()
    }
}
