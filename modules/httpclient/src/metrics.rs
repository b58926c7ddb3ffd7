//! The client's series (DESIGN.md §3.8), through the `metrics` facade:
//!
//! | series | type | labels |
//! |---|---|---|
//! | `modular_httpclient_requests_total` | counter | `client`, `method`, `status_class` |
//! | `modular_httpclient_retries_total` | counter | `client` |
//! | `modular_httpclient_request_duration_seconds` | histogram | `client` |
//!
//! A request counts once, with its final outcome, and its duration runs from the first attempt
//! to the final answer's head (retries and their delays included). `method` is one of the nine
//! standard methods or `other`; `status_class` is `1xx` to `5xx`, or `error` when no answer
//! came (connect error, timeout, reset). URLs are never labels. `client` is `default` for the
//! section's own client and the name of each named client (`httpclient.clients.<name>`), a set
//! the configuration bounds.
//!
//! Handles are registered once, when the client is built; without a recorder (metrics off)
//! they are no-ops.

use std::time::Duration;

use metrics::{Counter, Histogram};
use reqwest::{Method, StatusCode};

/// The label of the section's own client.
pub(crate) const DEFAULT_CLIENT: &str = "default";

const METHODS: [&str; 10] = [
    "GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "TRACE", "CONNECT", "other",
];

const CLASSES: [&str; 6] = ["1xx", "2xx", "3xx", "4xx", "5xx", "error"];

/// One client's series handles.
#[derive(Clone)]
pub(crate) struct ClientSeries {
    /// Indexed by `method * CLASSES.len() + class`; empty when metrics are off.
    requests: Vec<Counter>,
    retries: Counter,
    duration: Histogram,
}

impl ClientSeries {
    pub(crate) fn new(client: &str) -> Self {
        if !modular_core::metrics::is_recording() {
            return Self {
                requests: Vec::new(),
                retries: Counter::noop(),
                duration: Histogram::noop(),
            };
        }
        let requests = METHODS
            .iter()
            .flat_map(|method| {
                CLASSES.iter().map(move |class| {
                    metrics::counter!(
                        "modular_httpclient_requests_total",
                        "client" => client.to_owned(),
                        "method" => *method,
                        "status_class" => *class,
                    )
                })
            })
            .collect();
        Self {
            requests,
            retries: metrics::counter!(
                "modular_httpclient_retries_total",
                "client" => client.to_owned(),
            ),
            duration: metrics::histogram!(
                "modular_httpclient_request_duration_seconds",
                "client" => client.to_owned(),
            ),
        }
    }

    /// Records one request's final outcome (`None`: no answer) and its duration.
    pub(crate) fn request(&self, method: &Method, status: Option<StatusCode>, took: Duration) {
        if self.requests.is_empty() {
            return;
        }
        let m = METHODS
            .iter()
            .position(|name| *name == method.as_str())
            .unwrap_or(METHODS.len() - 1);
        let class = match status.map(|s| s.as_u16() / 100) {
            Some(digit @ 1..=5) => usize::from(digit) - 1,
            _ => CLASSES.len() - 1,
        };
        if let Some(counter) = self.requests.get(m * CLASSES.len() + class) {
            counter.increment(1);
        }
        self.duration.record(took.as_secs_f64());
    }

    pub(crate) fn retried(&self) {
        self.retries.increment(1);
    }
}
