//! The built-in endpoints of DESIGN.md §3.7: health (`/health*`, `/readyz`, `/livez`,
//! `/startupz`) and admin (`/admin/*`).

pub(crate) mod admin;
pub(crate) mod health;

use std::sync::Arc;

use axum::body::Body;
use axum::response::Response;
use http::header::{CACHE_CONTROL, CONTENT_TYPE};
use http::{HeaderMap, HeaderValue, StatusCode};
use modular_core::ServiceRegistry;
use modular_core::config::{ConfigHandle, ConfigStore};
use modular_core::health::HealthAggregator;
use modular_core::health::render::DetailsPolicy;

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

    /// Whether the request carries the admin token.
    pub(crate) fn is_authorized(&self, headers: &HeaderMap) -> bool {
        auth::check(headers, &self.admin.load().token) == Access::Granted
    }

    /// The paths the built-in endpoints serve with this state.
    pub(crate) fn paths(&self) -> Vec<&'static str> {
        let mut paths = Vec::new();
        if self.health.is_some() {
            paths.extend_from_slice(health::PATHS);
        }
        paths.extend_from_slice(admin::PATHS);
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

/// A JSON response with `Cache-Control: no-store`.
pub(crate) fn json(status: StatusCode, value: &serde_json::Value) -> Response {
    no_store(status, "application/json", value.to_string())
}
