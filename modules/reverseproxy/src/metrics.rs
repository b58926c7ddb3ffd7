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
