//! The built-in endpoints of DESIGN.md §3.7: health (`/health*`, `/readyz`, `/livez`,
//! `/startupz`) and admin (`/admin/*`).

pub(crate) mod admin;
pub(crate) mod health;
pub(crate) mod metrics;
pub(crate) mod schemas;

use std::sync::Arc;

use axum::body::Body;
use axum::response::Response;
use http::header::{CACHE_CONTROL, CONTENT_TYPE};
use http::{HeaderMap, HeaderValue, StatusCode};
use modular_core::ServiceRegistry;
use modular_core::config::{ConfigHandle, ConfigStore};
use modular_core::health::HealthAggregator;
use modular_core::health::render::DetailsPolicy;
use modular_core::http::{AccessPolicy, Decision, Right};

use crate::auth::{self, Access};
use crate::config::{AdminConfig, HealthEndpointsConfig};

/// Every health and admin answer carries this, so no proxy or browser caches a probe or a
/// configuration.
pub(crate) const NO_STORE: HeaderValue = HeaderValue::from_static("no-store");

/// What the built-in endpoints read: services (the reload orchestrator is looked up per
/// request, since it is registered after every module's `init`), the configuration store, the
/// health aggregator, and the `admin` and `health` sections.
#[derive(Clone)]
pub(crate) struct Endpoints {
    pub(crate) services: Arc<ServiceRegistry>,
    pub(crate) store: Arc<ConfigStore>,
    pub(crate) health: Option<Arc<HealthAggregator>>,
    pub(crate) admin: ConfigHandle<AdminConfig>,
    pub(crate) health_config: ConfigHandle<HealthEndpointsConfig>,
    /// The router's series handles, kept across builds.
    pub(crate) route_metrics: Arc<crate::route_metrics::RouteMetrics>,
}

impl Endpoints {
    /// The details policy in force: the `health` section's, else the aggregator's.
    pub(crate) fn details_policy(&self) -> DetailsPolicy {
        match self.health_config.load().show_details {
            Some(policy) => policy,
            None => self
                .health
                .as_ref()
                .map(|h| h.options().show_details)
                .unwrap_or_default(),
        }
    }

    /// Whether the request may see check messages and details.
    pub(crate) fn shows_details(&self, headers: &HeaderMap) -> bool {
        match self.details_policy() {
            DetailsPolicy::Never => false,
            DetailsPolicy::Always => true,
            policy => policy.shows_details(self.is_authorized(headers)),
        }
    }

    /// Whether the request may see health details.
    pub(crate) fn is_authorized(&self, headers: &HeaderMap) -> bool {
        self.access(Right::HealthDetails, headers) == Access::Granted
    }

    /// What the request's credentials amount to for `right`: the admin token first, then the
    /// access policy in the registry (the auth module's roles), if one is registered.
    pub(crate) fn access(&self, right: Right, headers: &HeaderMap) -> Access {
        let by_token = auth::check(headers, &self.admin.load().token);
        if by_token == Access::Granted {
            return by_token;
        }
        let Some(policy) = self.services.get::<dyn AccessPolicy>() else {
            return by_token;
        };
        match policy.decide(right, headers) {
            Decision::Granted => Access::Granted,
            Decision::Forbidden => Access::Denied,
            // A wrong admin token stays a 403, whatever the policy did not recognise.
            Decision::Unauthenticated | Decision::Abstain if by_token == Access::Denied => {
                Access::Denied
            }
            _ => Access::Missing,
        }
    }

    /// The process's metrics exporter, when the application installed one.
    pub(crate) fn metrics_exporter(&self) -> Option<Arc<modular_core::metrics::MetricsExporter>> {
        self.services
            .get::<modular_core::metrics::MetricsExporter>()
    }

    /// Whether the admin endpoints exist: a token is configured or an access policy is
    /// registered.
    pub(crate) fn admin_enabled(&self) -> bool {
        self.admin.load().is_enabled() || self.services.get::<dyn AccessPolicy>().is_some()
    }

    /// The paths the built-in endpoints serve with this state.
    pub(crate) fn paths(&self) -> Vec<&'static str> {
        let mut paths = Vec::new();
        if self.health.is_some() {
            paths.extend_from_slice(health::PATHS);
        }
        paths.extend_from_slice(admin::PATHS);
        if self.metrics_exporter().is_some() {
            paths.push(metrics::PATH);
        }
        paths
    }
}

/// A response with a body, its content type and `Cache-Control: no-store`.
pub(crate) fn no_store(
    status: StatusCode,
    content_type: &'static str,
    body: impl Into<Body>,
) -> Response {
    let mut response = Response::new(body.into());
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    headers.insert(CACHE_CONTROL, NO_STORE);
    response
}

/// `value` as a JSON response with `Cache-Control: no-store`.
pub(crate) fn json_of<T: serde::Serialize>(status: StatusCode, value: &T) -> Response {
    match serde_json::to_string(value) {
        Ok(body) => no_store(status, "application/json", body),
        Err(error) => json(
            StatusCode::INTERNAL_SERVER_ERROR,
            &serde_json::json!({ "error": error.to_string() }),
        ),
    }
}

/// A JSON response with `Cache-Control: no-store`.
pub(crate) fn json(status: StatusCode, value: &serde_json::Value) -> Response {
    no_store(status, "application/json", value.to_string())
}
