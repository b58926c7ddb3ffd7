//! [`HttpClientHealth`]: the client's settings, and a probe of every configured upstream.

use std::time::Duration;

use modular_core::health::{
    HealthContext, HealthError, HealthProvider, HealthReport, HealthStatus,
};
use reqwest::{Method, Request};
use serde_json::{Map, Value, json};
use tokio::time::Instant;

use crate::client::{ClientState, HttpClient};
use crate::config::{HealthProbeConfig, probe_method, probe_url, show};
use crate::error::chain;
use crate::module::MODULE_NAME;
use crate::verbose::event_url;

/// The module's health provider.
///
/// Reports component `client` (always healthy, with the running settings in its details) and
/// one component `probe.<name>` per configured probe, checked in parallel on the current
/// client (modifiers applied, no retries, the probe's own timeout):
///
/// | outcome | required probe | optional probe |
/// |---|---|---|
/// | an expected status (any 2xx by default) | healthy | healthy |
/// | another status | unhealthy | degraded |
/// | no answer within `timeout` | unhealthy | degraded |
/// | connection refused, DNS or TLS failure | unhealthy | degraded |
#[derive(Clone, Debug)]
pub struct HttpClientHealth {
    client: HttpClient,
}

impl HttpClientHealth {
    /// A provider for `client`.
    pub fn new(client: HttpClient) -> Self {
        Self { client }
    }
}

#[modular_core::async_trait]
impl HealthProvider for HttpClientHealth {
    async fn health_check(&self, ctx: &HealthContext) -> Result<Vec<HealthReport>, HealthError> {
        let state = self.client.snapshot();
        let probes = &state.settings.health_probe;
        let mut reports = Vec::with_capacity(1 + probes.len());
        reports.push(client_report(&self.client, &state));
        // A probe never outlives the aggregator's deadline: it reports its own timeout instead
        // of the whole provider being cut off.
        let remaining = ctx.remaining();
        let checks = probes
            .iter()
            .map(|probe| check(&self.client, &state, probe, remaining));
        reports.extend(futures::future::join_all(checks).await);
        Ok(reports)
    }
}

fn client_report(client: &HttpClient, state: &ClientState) -> HealthReport {
    let settings = &state.settings;
    let (requests, retries) = client.counters();
    let details = json!({
        "generation": state.generation,
        "request_timeout_ms": millis(settings.request_timeout),
        "connect_timeout_ms": millis(settings.connect_timeout),
        "pool_idle_timeout_ms": millis(settings.pool_idle_timeout),
        "pool_max_idle_per_host": settings.pool_max_idle_per_host,
        "user_agent": settings.user_agent,
        "decompression": settings.decompression,
        "max_redirects": settings.redirects.max,
        // Names only: default header values often carry credentials.
        "default_headers": settings.default_headers.keys().collect::<Vec<_>>(),
        "retry": {
            "max_retries": settings.retry.max_retries,
            "base_delay_ms": millis(settings.retry.base_delay),
            "max_delay_ms": millis(settings.retry.max_delay),
            "max_retry_after_ms": millis(settings.retry.max_retry_after),
            "max_elapsed_ms": millis(settings.retry.max_elapsed),
            "jitter": settings.retry.jitter,
        },
        "verbose": settings.verbose.enabled,
        "probes": settings.health_probe.len(),
        "modifiers": client.modifier_count(),
        "requests": requests,
        "retries": retries,
    });
    let message = format!(
        "client generation {} ready (request timeout {}, {} retries max)",
        state.generation,
        show(settings.request_timeout),
        settings.retry.max_retries
    );
    report(
        "client",
        HealthStatus::Healthy,
        message,
        false,
        details,
        Duration::ZERO,
    )
}

async fn check(
    client: &HttpClient,
    state: &ClientState,
    probe: &HealthProbeConfig,
    remaining: Duration,
) -> HealthReport {
    let timeout = probe.timeout.min(remaining);
    let component = format!("probe.{}", probe.name);
    let failed = if probe.optional {
        HealthStatus::Degraded
    } else {
        HealthStatus::Unhealthy
    };
    let mut details = json!({
        "method": probe.method.to_ascii_uppercase(),
        "expected_status": probe.expected_status,
        "timeout_ms": millis(timeout),
    });
    let url = match probe_url(&probe.url) {
        Ok(url) => url,
        // Validation rejects such a URL before it is ever running; kept for clients built by hand.
        Err(message) => {
            return report(
                &component,
                failed,
                message,
                probe.optional,
                details,
                Duration::ZERO,
            );
        }
    };
    details["url"] = json!(event_url(&url));
    let mut request = Request::new(probe_method(&probe.method).unwrap_or(Method::GET), url);
    *request.timeout_mut() = Some(timeout);
    client.apply_modifiers(&mut request);
    let started = Instant::now();
    let outcome = state.client.execute(request).await;
    let elapsed = started.elapsed();
    details["elapsed_ms"] = json!(millis(elapsed));
    let (status, message) = match outcome {
        Ok(response) => {
            let status = response.status();
            details["status"] = json!(status.as_u16());
            if probe.accepts(status.as_u16()) {
                (
                    HealthStatus::Healthy,
                    format!("{status} in {}", show_ms(elapsed)),
                )
            } else {
                let expected = if probe.expected_status.is_empty() {
                    "any 2xx".to_owned()
                } else {
                    format!("one of {:?}", probe.expected_status)
                };
                (
                    failed,
                    format!("unexpected status {status}, expected {expected}"),
                )
            }
        }
        Err(error) if error.is_timeout() => (failed, format!("no answer within {}", show(timeout))),
        Err(error) if error.is_connect() => (
            failed,
            format!("unreachable: {}", chain(&error.without_url())),
        ),
        Err(error) => (
            failed,
            format!("request failed: {}", chain(&error.without_url())),
        ),
    };
    report(
        &component,
        status,
        message,
        probe.optional,
        details,
        elapsed,
    )
}

fn report(
    component: &str,
    status: HealthStatus,
    message: String,
    optional: bool,
    details: Value,
    duration: Duration,
) -> HealthReport {
    let details = match details {
        Value::Object(map) => map,
        _ => Map::new(),
    };
    HealthReport::new(MODULE_NAME, component, status)
        .with_message(message)
        .with_optional(optional)
        .with_details(details)
        .with_duration(duration)
}

fn millis(value: Duration) -> u64 {
    u64::try_from(value.as_millis()).unwrap_or(u64::MAX)
}

fn show_ms(value: Duration) -> String {
    format!("{}ms", millis(value))
}
