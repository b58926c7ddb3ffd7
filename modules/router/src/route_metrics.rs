//! The router's series (DESIGN.md §3.8), recorded through the `metrics` facade while core
//! records ([`modular_core::metrics::recording`]): requests by route template, method and
//! status class, their duration by route, and limit rejections.
//!
//! The route label is the matched route template (`/orders/{id}`), or `unmatched` for a
//! request no route matched, never the raw path; methods outside the standard set are
//! `other`. So every label is bounded by what the application registered.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};

use axum::extract::MatchedPath;
use http::{Method, Request, Response};
use metrics::{Counter, Histogram};
use tokio::time::Instant;
use tower::{Layer, Service};

use crate::limits::Rejection;
use crate::security_headers::Headers;

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
    /// Per route template: its counters by method and status class, and its histogram. Looked
    /// up by the template as `&str` (no key allocated per request), under one lock.
    routes: Mutex<HashMap<String, RouteSeries>>,
}

/// One route's series.
#[derive(Debug)]
struct RouteSeries {
    /// By [`method_index`], then status class (`1xx` ... `5xx`); registered on first use.
    requests: [[Option<Counter>; 5]; METHODS.len()],
    duration: Histogram,
}

impl RouteMetrics {
    fn record(&self, route: &str, method: usize, class: usize, seconds: f64) {
        let (counter, histogram) = {
            let mut routes = self.routes.lock().unwrap_or_else(PoisonError::into_inner);
            let series = match routes.get_mut(route) {
                Some(series) => series,
                None => routes
                    .entry(route.to_owned())
                    .or_insert_with(|| RouteSeries {
                        requests: Default::default(),
                        duration: metrics::histogram!(
                            names::REQUEST_DURATION,
                            "route" => route.to_owned()
                        ),
                    }),
            };
            let counter = series.requests[method][class].get_or_insert_with(|| {
                metrics::counter!(
                    names::REQUESTS_TOTAL,
                    "route" => route.to_owned(),
                    "method" => METHODS[method],
                    "status_class" => CLASSES[class],
                )
            });
            (counter.clone(), series.duration.clone())
        };
        counter.increment(1);
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

/// The answer's layer: records the request's series (when core records) and adds the
/// security headers the answer lacks.
///
/// A concrete tower layer rather than two `axum::middleware::from_fn`s: each of those boxes
/// its future, boxes its inner service again and clones it per request.
#[derive(Clone, Debug)]
pub(crate) struct AnswerLayer {
    metrics: Arc<RouteMetrics>,
    security: Headers,
}

impl AnswerLayer {
    pub(crate) fn new(metrics: Arc<RouteMetrics>, security: Headers) -> Self {
        Self { metrics, security }
    }
}

impl<S> Layer<S> for AnswerLayer {
    type Service = Answer<S>;

    fn layer(&self, inner: S) -> Answer<S> {
        Answer {
            inner,
            layer: self.clone(),
        }
    }
}

/// See [`AnswerLayer`].
#[derive(Clone, Debug)]
pub(crate) struct Answer<S> {
    inner: S,
    layer: AnswerLayer,
}

impl<S, B, ResBody> Service<Request<B>> for Answer<S>
where
    S: Service<Request<B>, Response = Response<ResBody>>,
    S::Future: Unpin,
{
    type Response = Response<ResBody>;
    type Error = S::Error;
    type Future = AnswerFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<B>) -> Self::Future {
        let record = modular_core::metrics::is_recording().then(|| Record {
            started: Instant::now(),
            method: method_index(request.method()),
            route: request.extensions().get::<MatchedPath>().cloned(),
            metrics: Arc::clone(&self.layer.metrics),
        });
        AnswerFuture {
            inner: self.inner.call(request),
            record,
            security: Arc::clone(&self.layer.security),
        }
    }
}

/// What the series need from the request.
struct Record {
    started: Instant,
    method: usize,
    route: Option<MatchedPath>,
    metrics: Arc<RouteMetrics>,
}

/// [`Answer`]'s future.
pub(crate) struct AnswerFuture<F> {
    inner: F,
    record: Option<Record>,
    security: Headers,
}

impl<F, E, ResBody> Future for AnswerFuture<F>
where
    F: Future<Output = Result<Response<ResBody>, E>> + Unpin,
{
    type Output = Result<Response<ResBody>, E>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = &mut *self;
        let Poll::Ready(answered) = Pin::new(&mut this.inner).poll(cx) else {
            return Poll::Pending;
        };
        let Ok(mut response) = answered else {
            return Poll::Ready(answered);
        };
        crate::security_headers::add_to(&this.security, response.headers_mut());
        if let Some(record) = this.record.take() {
            let route = record.route.as_ref().map_or(UNMATCHED, MatchedPath::as_str);
            record.metrics.record(
                route,
                record.method,
                status_class(response.status().as_u16()),
                record.started.elapsed().as_secs_f64(),
            );
        }
        Poll::Ready(Ok(response))
    }
}

/// The `method` label values, by [`method_index`].
const METHODS: [&str; 10] = [
    "GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "CONNECT", "TRACE", "other",
];

/// The `status_class` label values, by [`status_class`].
const CLASSES: [&str; 5] = ["1xx", "2xx", "3xx", "4xx", "5xx"];

fn method_index(method: &Method) -> usize {
    match *method {
        Method::GET => 0,
        Method::HEAD => 1,
        Method::POST => 2,
        Method::PUT => 3,
        Method::DELETE => 4,
        Method::PATCH => 5,
        Method::OPTIONS => 6,
        Method::CONNECT => 7,
        Method::TRACE => 8,
        _ => 9,
    }
}

fn status_class(status: u16) -> usize {
    match status {
        100..=199 => 0,
        200..=299 => 1,
        300..=399 => 2,
        400..=499 => 3,
        _ => 4,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_are_bounded() {
        assert_eq!(
            METHODS[method_index(&Method::from_bytes(b"BREW").unwrap_or_default())],
            "other"
        );
        assert_eq!(METHODS[method_index(&Method::PATCH)], "PATCH");
        assert_eq!(CLASSES[status_class(429)], "4xx");
        assert_eq!(CLASSES[status_class(503)], "5xx");
    }
}
