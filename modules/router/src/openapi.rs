//! `GET /admin/openapi.json`: the OpenAPI 3.1 description of the application's HTTP surface,
//! built with the router from the same inputs — the built-in endpoints that are mounted and
//! every fragment modules added with
//! [`RouteRegistry::document`](modular_core::http::RouteRegistry::document) — so it describes
//! exactly what the router serves.
//!
//! The built-in paths are declared next to their handlers (`#[utoipa::path]` in
//! `endpoints/`), their schemas derived from the types the handlers answer. Admin operations
//! require the [`SECURITY_SCHEME`] (`Authorization: Bearer <admin.token>`); health and metrics
//! are public.

use axum::extract::State;
use axum::response::Response;
use http::StatusCode;
use std::sync::{Arc, OnceLock};
use utoipa::OpenApi as _;
use utoipa::openapi::path::Operation;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityRequirement, SecurityScheme};
use utoipa::openapi::{
    ComponentsBuilder, ContentBuilder, InfoBuilder, OpenApi, OpenApiBuilder, Ref, RefOr,
    ResponseBuilder,
};

use crate::endpoints::schemas::ErrorBody;
use crate::endpoints::{self, Endpoints, no_store};

/// Where the spec is served.
pub(crate) const PATH: &str = "/admin/openapi.json";

/// The name of the bearer security scheme admin operations declare (`security:
/// [{"admin_token": []}]`); modules' admin fragments name it too.
pub const SECURITY_SCHEME: &str = "admin_token";

/// The spec for the endpoints `endpoints` mounts and the modules' `documents`, merged in
/// owner order (stable whatever order modules initialised in); paths, schemas and their
/// properties are sorted, so the same application always renders the same JSON.
pub(crate) fn spec(endpoints: &Endpoints, documents: &[(String, OpenApi)]) -> OpenApi {
    let mut spec = OpenApiBuilder::new()
        .info(
            InfoBuilder::new()
                .title("modular application")
                .version(env!("CARGO_PKG_VERSION"))
                .description(Some(
                    "The framework's health, metrics and admin endpoints and every module's \
                     routes, as served by the router.",
                ))
                .build(),
        )
        .components(Some(
            ComponentsBuilder::new()
                .security_scheme(
                    SECURITY_SCHEME,
                    SecurityScheme::Http(
                        HttpBuilder::new()
                            .scheme(HttpAuthScheme::Bearer)
                            .description(Some("`Authorization: Bearer <admin.token>`"))
                            .build(),
                    ),
                )
                .build(),
        ))
        .build();
    if endpoints.health.is_some() {
        spec.merge(endpoints::health::HealthApi::openapi());
    }
    if endpoints.metrics_exporter().is_some() {
        spec.merge(endpoints::metrics::MetricsApi::openapi());
    }
    spec.merge(endpoints::admin::AdminApi::openapi());
    spec.merge(SpecApi::openapi());
    let mut documents: Vec<&(String, OpenApi)> = documents.iter().collect();
    // Stable: one owner's fragments keep the order they were added in.
    documents.sort_by(|a, b| a.0.cmp(&b.0));
    for (_, fragment) in documents {
        spec.merge(fragment.clone());
    }
    if let Some(tags) = &mut spec.tags {
        tags.sort_by(|a, b| a.name.cmp(&b.name));
    }
    describe_the_guard(&mut spec);
    spec
}

/// Adds the admin guard's own answers (401 without a token, 403 with one that grants no admin
/// access) to every operation that declares the [`SECURITY_SCHEME`]: one guard serves every
/// admin route, so its answers are described here once, not by each handler.
fn describe_the_guard(spec: &mut OpenApi) {
    let admin = SecurityRequirement::new(SECURITY_SCHEME, Vec::<String>::new());
    let answer = |description: &str| {
        RefOr::T(
            ResponseBuilder::new()
                .description(description)
                .content(
                    "application/json",
                    ContentBuilder::new()
                        .schema(Some(Ref::from_schema_name("ErrorBody")))
                        .build(),
                )
                .build(),
        )
    };
    for item in spec.paths.paths.values_mut() {
        let operations = [
            &mut item.get,
            &mut item.put,
            &mut item.post,
            &mut item.delete,
            &mut item.patch,
        ];
        for operation in operations.into_iter().flatten() {
            if guarded(operation, &admin) {
                let responses = &mut operation.responses.responses;
                responses
                    .entry("401".to_owned())
                    .or_insert_with(|| answer("no bearer token"));
                responses
                    .entry("403".to_owned())
                    .or_insert_with(|| answer("a bearer token that grants no admin access"));
            }
        }
    }
}

fn guarded(operation: &Operation, admin: &SecurityRequirement) -> bool {
    operation
        .security
        .as_ref()
        .is_some_and(|requirements| requirements.contains(admin))
}

/// The spec as served: pretty JSON.
pub(crate) fn render(spec: &OpenApi) -> String {
    // Serializing plain maps and strings cannot fail; an error still answers valid JSON.
    spec.to_pretty_json()
        .unwrap_or_else(|error| serde_json::json!({ "error": error.to_string() }).to_string())
}

/// What one router build serves at [`PATH`]: its inputs, rendered on the first request (a
/// dry run or a reload builds routers that may never be asked for their spec).
pub(crate) struct ServedSpec {
    endpoints: Arc<Endpoints>,
    documents: Vec<(String, OpenApi)>,
    rendered: OnceLock<String>,
}

impl ServedSpec {
    pub(crate) fn new(endpoints: Arc<Endpoints>, documents: Vec<(String, OpenApi)>) -> Self {
        Self {
            endpoints,
            documents,
            rendered: OnceLock::new(),
        }
    }

    fn rendered(&self) -> &str {
        self.rendered
            .get_or_init(|| render(&spec(&self.endpoints, &self.documents)))
    }
}

#[derive(utoipa::OpenApi)]
#[openapi(paths(serve), components(schemas(ErrorBody)))]
struct SpecApi;

/// Answers the rendered spec.
#[utoipa::path(
    get,
    path = "/admin/openapi.json",
    tag = "admin",
    summary = "This description",
    description = "The OpenAPI 3.1 description of every endpoint the router serves, the \
        modules' included.",
    security(("admin_token" = [])),
    responses(
        (status = 200, description = "the spec", body = Object),
    ),
)]
pub(crate) async fn serve(State(spec): State<Arc<ServedSpec>>) -> Response {
    no_store(
        StatusCode::OK,
        "application/json",
        spec.rendered().to_owned(),
    )
}
