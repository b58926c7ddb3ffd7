//! `/health`, `/health/ready`, `/health/live`, `/health/checks/{module}`, `/readyz`, `/livez`,
//! `/startupz`: the health aggregator's answer, rendered by core's renderers.
//!
//! Every endpoint reads the aggregator's cached answer (`check()`), so probes never run the
//! providers more often than the cache TTL allows. `Accept: application/health+json` switches
//! any of them to the IETF format; check messages and details follow the details policy.

use std::sync::Arc;

use axum::Router;
use axum::extract::{Path, RawQuery, State};
use axum::response::Response;
use axum::routing::get;
use http::header::ACCEPT;
use http::{HeaderMap, StatusCode};
use modular_core::health::render::{self, KubeQuery, RenderedHealth};
use modular_core::health::{AggregatedHealth, HealthAggregator, Probe};

use super::schemas::{ErrorBody, HealthAnswer, IetfHealth, ModuleHealth};
use super::{Endpoints, no_store};

/// The health endpoints' OpenAPI description.
#[derive(utoipa::OpenApi)]
#[openapi(
    paths(health, ready, live, module_checks, readyz, livez, startupz),
    components(schemas(HealthAnswer, ModuleHealth, IetfHealth, ErrorBody))
)]
pub(crate) struct HealthApi;

/// The kube-style probes' query.
#[derive(utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)] // Parameters only: `KubeQuery::parse` reads the raw query.
struct KubeParams {
    /// List every check, also when the probe passes (any value but `false` or `0`).
    verbose: Option<bool>,
    /// Checks to skip: `module:component`, a module, `shutdown` or `started` (repeatable).
    exclude: Option<Vec<String>>,
}

/// The health paths.
pub(crate) const PATHS: &[&str] = &[
    "/health",
    "/health/ready",
    "/health/live",
    "/health/checks/{module}",
    "/readyz",
    "/livez",
    "/startupz",
];

/// The health routes; `None` without a health aggregator.
pub(crate) fn routes(endpoints: &Arc<Endpoints>) -> Option<Router> {
    let state = Arc::new(HealthState {
        aggregator: Arc::clone(endpoints.health.as_ref()?),
        endpoints: Arc::clone(endpoints),
    });
    Some(
        Router::new()
            .route("/health", get(health))
            .route("/health/ready", get(ready))
            .route("/health/live", get(live))
            .route("/health/checks/{module}", get(module_checks))
            .route("/readyz", get(readyz))
            .route("/livez", get(livez))
            .route("/startupz", get(startupz))
            .with_state(state),
    )
}

struct HealthState {
    aggregator: Arc<HealthAggregator>,
    endpoints: Arc<Endpoints>,
}

type St = State<Arc<HealthState>>;

#[utoipa::path(
    get,
    path = "/health",
    tag = "health",
    summary = "Overall health",
    description = "The aggregator's cached answer; the status code from the overall status. \
        Check messages and details follow `health.show_details` (the admin bearer token \
        authorizes them).",
    params((
        "Accept" = Option<String>,
        Header,
        description = "`application/health+json` selects the IETF format"
    )),
    responses(
        (status = 200, description = "the overall status passes (healthy or degraded)", content(
            (HealthAnswer = "application/json"),
            (IetfHealth = "application/health+json"),
        )),
        (status = 503, description = "the overall status fails (unhealthy)", content(
            (HealthAnswer = "application/json"),
            (IetfHealth = "application/health+json"),
        )),
    ),
)]
async fn health(State(st): St, headers: HeaderMap) -> Response {
    json_probe(&st, &headers, Probe::Health).await
}

#[utoipa::path(
    get,
    path = "/health/ready",
    tag = "health",
    summary = "Readiness",
    description = "The aggregator's cached answer; the status code from readiness. \
        Check messages and details follow `health.show_details` (the admin bearer token \
        authorizes them).",
    params((
        "Accept" = Option<String>,
        Header,
        description = "`application/health+json` selects the IETF format"
    )),
    responses(
        (status = 200, description = "readiness passes (healthy or degraded)", content(
            (HealthAnswer = "application/json"),
            (IetfHealth = "application/health+json"),
        )),
        (status = 503, description = "readiness fails (unhealthy)", content(
            (HealthAnswer = "application/json"),
            (IetfHealth = "application/health+json"),
        )),
    ),
)]
async fn ready(State(st): St, headers: HeaderMap) -> Response {
    json_probe(&st, &headers, Probe::Readiness).await
}

#[utoipa::path(
    get,
    path = "/health/live",
    tag = "health",
    summary = "Liveness",
    description = "The aggregator's cached answer; the status code from liveness. \
        Check messages and details follow `health.show_details` (the admin bearer token \
        authorizes them).",
    params((
        "Accept" = Option<String>,
        Header,
        description = "`application/health+json` selects the IETF format"
    )),
    responses(
        (status = 200, description = "liveness passes (healthy or degraded)", content(
            (HealthAnswer = "application/json"),
            (IetfHealth = "application/health+json"),
        )),
        (status = 503, description = "liveness fails (unhealthy)", content(
            (HealthAnswer = "application/json"),
            (IetfHealth = "application/health+json"),
        )),
    ),
)]
async fn live(State(st): St, headers: HeaderMap) -> Response {
    json_probe(&st, &headers, Probe::Liveness).await
}

#[utoipa::path(
    get,
    path = "/readyz",
    tag = "health",
    summary = "Readiness probe",
    description = "kube-apiserver style: `ok`, or the failing checks; `?verbose` lists every \
        check (`[+]name ok`, `[-]name failed: reason`), `?exclude=module[:component]` skips one.",
    params(KubeParams, (
        "Accept" = Option<String>,
        Header,
        description = "`application/health+json` selects the IETF format"
    )),
    responses(
        (status = 200, description = "the probe passes", content(
            (String = "text/plain"),
            (IetfHealth = "application/health+json"),
        )),
        (status = 503, description = "the probe fails", content(
            (String = "text/plain"),
            (IetfHealth = "application/health+json"),
        )),
    ),
)]
async fn readyz(State(st): St, RawQuery(query): RawQuery, headers: HeaderMap) -> Response {
    kube_probe(&st, query.as_deref(), &headers, Probe::Readiness).await
}

#[utoipa::path(
    get,
    path = "/livez",
    tag = "health",
    summary = "Liveness probe",
    description = "kube-apiserver style: `ok`, or the failing checks; `?verbose` lists every \
        check (`[+]name ok`, `[-]name failed: reason`), `?exclude=module[:component]` skips one.",
    params(KubeParams, (
        "Accept" = Option<String>,
        Header,
        description = "`application/health+json` selects the IETF format"
    )),
    responses(
        (status = 200, description = "the probe passes", content(
            (String = "text/plain"),
            (IetfHealth = "application/health+json"),
        )),
        (status = 503, description = "the probe fails", content(
            (String = "text/plain"),
            (IetfHealth = "application/health+json"),
        )),
    ),
)]
async fn livez(State(st): St, RawQuery(query): RawQuery, headers: HeaderMap) -> Response {
    kube_probe(&st, query.as_deref(), &headers, Probe::Liveness).await
}

#[utoipa::path(
    get,
    path = "/startupz",
    tag = "health",
    summary = "Startup probe",
    description = "kube-apiserver style: `ok`, or the failing checks; `?verbose` lists every \
        check (`[+]name ok`, `[-]name failed: reason`), `?exclude=module[:component]` skips one.",
    params(KubeParams, (
        "Accept" = Option<String>,
        Header,
        description = "`application/health+json` selects the IETF format"
    )),
    responses(
        (status = 200, description = "the probe passes", content(
            (String = "text/plain"),
            (IetfHealth = "application/health+json"),
        )),
        (status = 503, description = "the probe fails", content(
            (String = "text/plain"),
            (IetfHealth = "application/health+json"),
        )),
    ),
)]
async fn startupz(State(st): St, RawQuery(query): RawQuery, headers: HeaderMap) -> Response {
    kube_probe(&st, query.as_deref(), &headers, Probe::Startup).await
}

#[utoipa::path(
    get,
    path = "/health/checks/{module}",
    tag = "health",
    summary = "One module's checks",
    description = "The module's reports; the status code from the worst of them.",
    params(("module" = String, Path, description = "the module name"), (
        "Accept" = Option<String>,
        Header,
        description = "`application/health+json` selects the IETF format"
    )),
    responses(
        (status = 200, description = "the module's checks pass", content(
            (ModuleHealth = "application/json"),
            (IetfHealth = "application/health+json"),
        )),
        (status = 503, description = "one of the module's checks fails", content(
            (ModuleHealth = "application/json"),
            (IetfHealth = "application/health+json"),
        )),
        (status = 404, description = "the module has no health reports", body = ErrorBody),
    ),
)]
async fn module_checks(State(st): St, Path(module): Path<String>, headers: HeaderMap) -> Response {
    let answer = st.aggregator.check().await;
    let details = st.endpoints.shows_details(&headers);
    let rendered = if wants_ietf(&headers) {
        // The IETF format of this module's reports only: an answer folded from them alone,
        // whose overall status is the worst of its reports, like the native answer's.
        let reports: Vec<_> = answer.module_reports(&module).cloned().collect();
        (!reports.is_empty()).then(|| {
            render::render_ietf(
                &AggregatedHealth::from_reports(reports),
                Probe::Health,
                details,
            )
        })
    } else {
        render::render_module(&answer, &module, details)
    };
    match rendered {
        Some(rendered) => respond(rendered),
        None => super::json(
            StatusCode::NOT_FOUND,
            &serde_json::json!({ "error": format!("no health reports for module {module:?}") }),
        ),
    }
}

async fn json_probe(st: &HealthState, headers: &HeaderMap, probe: Probe) -> Response {
    let answer = st.aggregator.check().await;
    let details = st.endpoints.shows_details(headers);
    if wants_ietf(headers) {
        respond(render::render_ietf(&answer, probe, details))
    } else {
        respond(render::render_native(&answer, probe, details))
    }
}

async fn kube_probe(
    st: &HealthState,
    query: Option<&str>,
    headers: &HeaderMap,
    probe: Probe,
) -> Response {
    let answer = st.aggregator.check().await;
    if wants_ietf(headers) {
        return respond(render::render_ietf(
            &answer,
            probe,
            st.endpoints.shows_details(headers),
        ));
    }
    let query = query.map(KubeQuery::parse).unwrap_or_default();
    // A passing, non-verbose probe answers a bare `ok` that shows nothing: skip the token check.
    let details = if !answer.status(probe).is_failing() && !query.verbose {
        false
    } else {
        st.endpoints.shows_details(headers)
    };
    respond(render::render_kube(&answer, probe, &query, details))
}

fn wants_ietf(headers: &HeaderMap) -> bool {
    headers
        .get(ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(render::accepts_health_json)
}

fn respond(rendered: RenderedHealth) -> Response {
    let status =
        StatusCode::from_u16(rendered.status_code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    no_store(status, rendered.content_type, rendered.body)
}
