//! `GET /metrics`: the Prometheus text exposition of the process's recorder (DESIGN.md §3.8),
//! mounted when the application installed one (`metrics.enabled: true`).
//!
//! Unauthenticated, like most scrape targets: no label or value the framework records carries
//! a secret, an id or a raw path. Answers carry `Cache-Control: no-store`.

use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::response::Response;
use axum::routing::get;
use http::StatusCode;
use modular_core::metrics::MetricsExporter;

use super::no_store;

/// The metrics path.
pub(crate) const PATH: &str = "/metrics";

/// The Prometheus text format's content type.
const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// The metrics route; `None` when the application has no exporter.
pub(crate) fn routes(exporter: Option<Arc<MetricsExporter>>) -> Option<Router> {
    let exporter = exporter?;
    Some(Router::new().route(PATH, get(render)).with_state(exporter))
}

/// The metrics endpoint's OpenAPI description.
#[derive(utoipa::OpenApi)]
#[openapi(paths(render))]
pub(crate) struct MetricsApi;

#[utoipa::path(
    get,
    path = "/metrics",
    tag = "metrics",
    summary = "Prometheus metrics",
    description = "The text exposition of every series the process records.",
    responses(
        (status = 200, description = "the series", content_type = "text/plain; version=0.0.4; charset=utf-8", body = String),
        (status = 500, description = "rendering failed", content_type = "text/plain", body = String),
    ),
)]
async fn render(State(exporter): State<Arc<MetricsExporter>>) -> Response {
    // Rendering walks every series under the recorder's locks: keep it off the async workers.
    let body = tokio::task::spawn_blocking(move || exporter.render()).await;
    match body {
        Ok(text) => no_store(StatusCode::OK, CONTENT_TYPE, text),
        Err(_) => no_store(
            StatusCode::INTERNAL_SERVER_ERROR,
            "text/plain",
            "metrics rendering failed",
        ),
    }
}
