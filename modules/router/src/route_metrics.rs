//! The router's series (DESIGN.md §3.8), recorded through the `metrics` facade while core
//! records ([`modular_core::metrics::recording`]): requests by route template, method and
//! status class, their duration by route, and limit rejections.
//!
//! The route label is the matched route template (`/orders/{id}`), or `unmatched` for a
//! request no route matched, never the raw path; methods outside the standard set are
//! `other`. So every label is bounded by what the application registered.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use axum::extract::{MatchedPath, Request, State};
use axum::middleware::Next;
use axum::response::Response;
use http::Method;
use metrics::{Counter, Histogram};
use tokio::time::Instant;

use crate::limits::Rejection;

/// The series names.
pub mod names {
    /// Counter: answered requests by `route`, `method` and `status_class` (`2xx` ... `5xx`).
    pub const REQUESTS_TOTAL: &str = "modular_router_requests_total";
    /// Histogram: time to the response head, by `route`.
    pub const REQUEST_DURATION: &str = "modular_router_request_duration_seconds";
    /// Counter: requests refused by a limit, by `route` and `limit` (`rate`, `concurrency`).
    pub const LIMIT_REJECTIONS_TOTAL: &str = "modular_router_limit_rejections_total";
}

/// The `route` label of a request that matched no route.
const UNMATCHED: &str = "unmatched";

/// Series handles, registered once per label set and kept (a registration per request costs a
/// label-hashing lookup in the recorder). Shared by every router build: the handles stay valid
/// across reloads.
#[derive(Debug, Default)]
pub(crate) struct RouteMetrics {
    requests: Mutex<HashMap<(String, &'static str, &'static str), Counter>>,
    durations: Mutex<HashMap<String, Histogram>>,
}

impl RouteMetrics {
    fn record(&self, route: &str, method: &'static str, class: &'static str, seconds: f64) {
        let counter = {
            let mut requests = self.requests.lock().unwrap_or_else(PoisonError::into_inner);
            let key = (route.to_owned(), method, class);
            match requests.get(&key) {
                Some(counter) => counter.clone(),
                None => requests
                    .entry(key)
                    .or_insert_with(|| {
                        metrics::counter!(
                            names::REQUESTS_TOTAL,
                            "route" => route.to_owned(),
                            "method" => method,
                            "status_class" => class,
                        )
                    })
                    .clone(),
            }
        };
        counter.increment(1);
        let histogram = {
            let mut durations = self
                .durations
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            match durations.get(route) {
                Some(histogram) => histogram.clone(),
                None => durations
                    .entry(route.to_owned())
                    .or_insert_with(|| {
                        metrics::histogram!(names::REQUEST_DURATION, "route" => route.to_owned())
                    })
                    .clone(),
            }
        };
        histogram.record(seconds);
    }
}

/// Counts one limit rejection (rare, so registered per call).
pub(crate) fn record_rejection(route: &str, rejection: Rejection) {
    if !modular_core::metrics::is_recording() {
        return;
    }
    let limit = match rejection {
        Rejection::Rate => "rate",
        Rejection::Concurrency => "concurrency",
    };
    metrics::counter!(
        names::LIMIT_REJECTIONS_TOTAL,
        "route" => route.to_owned(),
        "limit" => limit,
    )
    .increment(1);
}

/// Records the request's answer when core records.
pub(crate) async fn record(
    State(metrics): State<Arc<RouteMetrics>>,
    request: Request,
    next: Next,
) -> Response {
    if !modular_core::metrics::is_recording() {
        return next.run(request).await;
    }
    let started = Instant::now();
    let method = method_label(request.method());
    let route = request.extensions().get::<MatchedPath>().cloned();
    let response = next.run(request).await;
    let route = route.as_ref().map_or(UNMATCHED, MatchedPath::as_str);
    metrics.record(
        route,
        method,
        status_class(response.status().as_u16()),
        started.elapsed().as_secs_f64(),
    );
    response
}

fn method_label(method: &Method) -> &'static str {
    match *method {
        Method::GET => "GET",
        Method::HEAD => "HEAD",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::DELETE => "DELETE",
        Method::PATCH => "PATCH",
        Method::OPTIONS => "OPTIONS",
        Method::CONNECT => "CONNECT",
        Method::TRACE => "TRACE",
        _ => "other",
    }
}

fn status_class(status: u16) -> &'static str {
    match status {
        100..=199 => "1xx",
        200..=299 => "2xx",
        300..=399 => "3xx",
        400..=499 => "4xx",
        _ => "5xx",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_are_bounded() {
        assert_eq!(
            method_label(&Method::from_bytes(b"BREW").unwrap_or_default()),
            "other"
        );
        assert_eq!(status_class(429), "4xx");
        assert_eq!(status_class(503), "5xx");
    }
}
