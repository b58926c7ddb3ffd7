//! `GET /admin/fleet`: every live instance's latest ACK or NACK, read from the bucket.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use modular_core::ServiceRegistry;
use modular_core::http::RouteRegistry;
use serde_json::json;

use crate::module::{NAME, Shared, fleet_statuses};

/// The path.
pub const FLEET_PATH: &str = "/admin/fleet";

pub(crate) fn register(services: &ServiceRegistry, shared: Arc<Shared>) {
    let routes = RouteRegistry::shared(services);
    routes.admin_route(NAME, FLEET_PATH, get(fleet).with_state(shared));
    routes.document(NAME, <FleetApi as utoipa::OpenApi>::openapi());
}

/// The fleet endpoint's OpenAPI description, merged into `GET /admin/openapi.json`.
#[derive(utoipa::OpenApi)]
#[openapi(paths(fleet))]
struct FleetApi;

#[utoipa::path(
    get,
    path = "/admin/fleet",
    tag = "admin",
    summary = "The fleet's reload acknowledgements",
    description = "Every live instance's latest ACK or NACK of the key-value bucket's revision: \
        `{service, instance, revision, acks, nacks, revisions, instances}`.",
    security(("admin_token" = [])),
    responses(
        (status = 200, description = "the fleet", body = Object),
        (status = 503, description = "the key-value store is unreachable: `{service, error}`", body = Object),
    ),
)]
async fn fleet(State(shared): State<Arc<Shared>>) -> Response {
    answer(&shared).await
}

async fn answer(shared: &Shared) -> Response {
    let service = shared.source.options().service.clone();
    let Some(store) = shared.source.store() else {
        return unavailable(&service, "the key-value store is unreachable");
    };
    let ttl = shared.config.get().ttl;
    match fleet_statuses(&store, &service, ttl).await {
        Ok(instances) => {
            let mut revisions: BTreeMap<String, usize> = BTreeMap::new();
            for status in &instances {
                if let Some(revision) = &status.revision {
                    *revisions.entry(revision.clone()).or_default() += 1;
                }
            }
            let acks = instances.iter().filter(|s| s.status == "ack").count();
            Json(json!({
                "service": service,
                "instance": shared.instance,
                "revision": shared.source.revision(),
                "acks": acks,
                "nacks": instances.len() - acks,
                "revisions": revisions,
                "instances": instances,
            }))
            .into_response()
        }
        Err(error) => unavailable(
            &service,
            &crate::source::scrub(&error, &shared.source.options().url),
        ),
    }
}

fn unavailable(service: &str, error: &str) -> Response {
    (
        StatusCode::SERVICE_UNAVAILABLE,
        Json(json!({ "service": service, "error": error })),
    )
        .into_response()
}
