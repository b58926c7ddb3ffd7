//! `/admin/*`: reload, dry run, the running configuration, its history and rollback, behind
//! `Authorization: Bearer <admin.token>`.
//!
//! | answer | when |
//! |---|---|
//! | `404`, empty, like any unknown path | no `admin.token` is configured (the endpoints are not mounted) |
//! | `401` with `WWW-Authenticate: Bearer` | no bearer token in the request |
//! | `403` | a bearer token that is not `admin.token` |
//!
//! A reload (or rollback, or a change of the runtime overrides) answers its `ReloadOutcome` as
//! JSON with a status code from its `status`: `applied` and `noop` 200, `rejected` 422,
//! `failed` 500, `circuit_open` 503 with `Retry-After`. A dry run answers the same way (never
//! `circuit_open`), with `planned` (200) where a reload would apply.
//!
//! Runtime overrides (`/admin/config/overrides`): `GET` answers them as a JSON map of dotted
//! keys to values, sensitive and secret fields redacted; `PUT` merges a YAML or JSON map of
//! dotted keys to values into them (keys not given stay); `DELETE` removes them all, and
//! `DELETE /admin/config/overrides/{key}` one (404 if it is not set). Each change reloads
//! through the pipeline (trigger `admin`); a change whose reload is neither applied nor a noop
//! leaves the overrides as they were.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, Request, State};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use http::header::{CONTENT_TYPE, RETRY_AFTER, WWW_AUTHENTICATE};
use http::{HeaderMap, HeaderValue, StatusCode};
use modular_core::config::TextFormat;
use modular_core::reload::ReloadOrchestrator;
use modular_core::{ReloadOutcome, ReloadStatus, ReloadTrigger};
use serde_json::{Value, json};

use super::schemas::{ConfigAnswer, ErrorBody, HistoryAnswer, OverridesAnswer, Unavailable};
use super::{Endpoints, json, json_of};
use modular_core::http::Right;

use crate::auth::Access;

/// The built-in admin endpoints' OpenAPI description (`/admin/openapi.json` is described with
/// the served spec, in [`crate::openapi`]).
#[derive(utoipa::OpenApi)]
#[openapi(
    paths(
        reload,
        plan,
        config,
        history,
        rollback,
        overrides,
        put_overrides,
        clear_overrides,
        remove_override,
    ),
    components(schemas(
        ReloadOutcome,
        ConfigAnswer,
        HistoryAnswer,
        OverridesAnswer,
        ErrorBody,
        Unavailable,
    ))
)]
pub(crate) struct AdminApi;

/// The admin paths.
pub(crate) const PATHS: &[&str] = &[
    "/admin/reload",
    "/admin/reload/plan",
    "/admin/config",
    "/admin/config/history",
    "/admin/config/rollback/{version}",
    "/admin/config/overrides",
    "/admin/config/overrides/{key}",
    crate::openapi::PATH,
];

/// The admin routes, each behind the token check.
/// The built-in admin endpoints plus the modules' admin contributions
/// ([`RouteRegistry::admin_route`](modular_core::http::RouteRegistry::admin_route)), all
/// behind the same guard.
pub(crate) fn routes(
    endpoints: &Arc<Endpoints>,
    contributed: Vec<(Router, bool)>,
    spec: Arc<crate::openapi::ServedSpec>,
) -> Router {
    let (mut guarded, mut open) = (Router::new(), Router::new());
    for (router, is_guarded) in contributed {
        if is_guarded {
            guarded = guarded.merge(router);
        } else {
            open = open.merge(router);
        }
    }
    let guarded = if guarded.has_routes() {
        guarded.route_layer(middleware::from_fn_with_state(
            Arc::clone(endpoints),
            require_token,
        ))
    } else {
        guarded
    };
    let open = if open.has_routes() {
        open.route_layer(middleware::from_fn_with_state(
            Arc::clone(endpoints),
            require_admin_enabled,
        ))
    } else {
        open
    };
    builtin(endpoints, spec).merge(guarded).merge(open)
}

/// The guard of [`RouteRegistry::admin_public_route`](modular_core::http::RouteRegistry::admin_public_route)
/// endpoints: no credentials, but not mounted (404) while admin access is off.
async fn require_admin_enabled(
    State(ep): State<Arc<Endpoints>>,
    request: Request,
    next: Next,
) -> Response {
    if ep.admin_enabled() {
        next.run(request).await
    } else {
        StatusCode::NOT_FOUND.into_response()
    }
}

fn builtin(endpoints: &Arc<Endpoints>, spec: Arc<crate::openapi::ServedSpec>) -> Router {
    let spec = Router::new()
        .route(crate::openapi::PATH, get(crate::openapi::serve))
        .with_state(spec);
    Router::new()
        .route("/admin/reload", post(reload))
        .route("/admin/reload/plan", post(plan))
        .route("/admin/config", get(config))
        .route("/admin/config/history", get(history))
        .route("/admin/config/rollback/{version}", post(rollback))
        .route(
            "/admin/config/overrides",
            get(overrides).put(put_overrides).delete(clear_overrides),
        )
        .route("/admin/config/overrides/{key}", delete(remove_override))
        .with_state(Arc::clone(endpoints))
        .merge(spec)
        .route_layer(middleware::from_fn_with_state(
            Arc::clone(endpoints),
            require_token,
        ))
}

async fn require_token(State(ep): State<Arc<Endpoints>>, request: Request, next: Next) -> Response {
    if !ep.admin_enabled() {
        return StatusCode::NOT_FOUND.into_response();
    }
    let access = ep.access(Right::Admin, request.headers());
    match access {
        // Exactly what an unknown path answers, so the endpoints' existence does not show.
        Access::Disabled => StatusCode::NOT_FOUND.into_response(),
        Access::Missing => {
            let mut response = json(
                StatusCode::UNAUTHORIZED,
                &json!({ "error": "missing bearer token: send Authorization: Bearer <admin.token>" }),
            );
            response.headers_mut().insert(
                WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"modular-admin\""),
            );
            response
        }
        Access::Denied => {
            Rejection::new(StatusCode::FORBIDDEN, "invalid bearer token").into_response()
        }
        Access::Granted => next.run(request).await,
    }
}

/// A request the admin API cannot serve: a status and a lowercase message, answered as
/// `{"error": message}`.
#[derive(Debug)]
struct Rejection {
    status: StatusCode,
    message: String,
}

impl Rejection {
    fn new(status: StatusCode, message: impl Into<String>) -> Self {
        Self {
            status,
            message: message.into(),
        }
    }
}

impl IntoResponse for Rejection {
    fn into_response(self) -> Response {
        json_of(
            self.status,
            &ErrorBody {
                error: self.message,
            },
        )
    }
}

fn orchestrator(ep: &Endpoints) -> Result<Arc<ReloadOrchestrator>, Rejection> {
    ep.services.get::<ReloadOrchestrator>().ok_or_else(|| {
        Rejection::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "dynamic reload is not enabled in this application",
        )
    })
}

#[utoipa::path(
    post,
    path = "/admin/reload",
    tag = "admin",
    summary = "Reload now",
    description = "Runs a reload through the pipeline (trigger `admin`) and answers its outcome.",
    security(("admin_token" = [])),
    responses(
        (status = 200, description = "applied or noop", body = ReloadOutcome),
        (status = 422, description = "rejected: invalid, or a static change", body = ReloadOutcome),
        (status = 500, description = "failed: a module could not prepare", body = ReloadOutcome),
        (status = 503, description = "circuit_open (with `Retry-After`), or dynamic reload is not enabled", body = Unavailable),
    ),
)]
async fn reload(State(ep): State<Arc<Endpoints>>) -> Result<Response, Rejection> {
    let orchestrator = orchestrator(&ep)?;
    Ok(outcome_response(
        &orchestrator.reload(ReloadTrigger::Admin).await,
    ))
}

#[utoipa::path(
    post,
    path = "/admin/reload/plan",
    tag = "admin",
    summary = "Dry run",
    description = "Plans a reload without applying it: of the sources as they are, or of the candidate in the body. `planned` (200) where a reload would apply.",
    security(("admin_token" = [])),
    request_body(
        description = "A YAML or JSON document (`Content-Type` `application/yaml`, the default, \
            or `application/json`; `application/toml` too where it applies)",
        content(
            (Object = "application/json"),
            (Object = "application/yaml"),
        ),
    ),
    responses(
        (status = 200, description = "planned or noop", body = ReloadOutcome),
        (status = 400, description = "the body is not utf-8", body = ErrorBody),
        (status = 415, description = "an unsupported content type", body = ErrorBody),
        (status = 422, description = "rejected", body = ReloadOutcome),
        (status = 500, description = "failed", body = ReloadOutcome),
        (status = 503, description = "dynamic reload is not enabled", body = Unavailable),
    ),
)]
async fn plan(
    State(ep): State<Arc<Endpoints>>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, Rejection> {
    let orchestrator = orchestrator(&ep)?;
    let candidate = candidate(&headers, &body)?;
    Ok(outcome_response(
        &orchestrator.plan(ReloadTrigger::Admin, candidate).await,
    ))
}

/// The runtime overrides, redacted.
#[utoipa::path(
    get,
    path = "/admin/config/overrides",
    tag = "admin",
    summary = "Runtime overrides",
    description = "The runtime overrides: dotted keys to values, sensitive and secret ones redacted.",
    security(("admin_token" = [])),
    responses(
        (status = 200, description = "the overrides", body = OverridesAnswer),
    ),
)]
async fn overrides(State(ep): State<Arc<Endpoints>>) -> Response {
    json_of(
        StatusCode::OK,
        &OverridesAnswer(ep.store.redacted_overrides()),
    )
}

#[utoipa::path(
    put,
    path = "/admin/config/overrides",
    tag = "admin",
    summary = "Set runtime overrides",
    description = "Merges a map of dotted keys to values into the overrides and reloads (trigger `admin`); a change whose reload is neither applied nor a noop leaves them as they were.",
    security(("admin_token" = [])),
    request_body(
        description = "A map of dotted keys to values, JSON or YAML (the default)",
        content(
            (OverridesAnswer = "application/json"),
            (OverridesAnswer = "application/yaml"),
        ),
    ),
    responses(
        (status = 400, description = "not a map of dotted keys to values", body = ErrorBody),
        (status = 415, description = "an unsupported content type", body = ErrorBody),
        (status = 200, description = "applied or noop", body = ReloadOutcome),
        (status = 422, description = "rejected: invalid, or a static change", body = ReloadOutcome),
        (status = 500, description = "failed: a module could not prepare", body = ReloadOutcome),
        (status = 503, description = "circuit_open (with `Retry-After`), or dynamic reload is not enabled", body = Unavailable),
    ),
)]
async fn put_overrides(
    State(ep): State<Arc<Endpoints>>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, Rejection> {
    let orchestrator = orchestrator(&ep)?;
    let Some((format, text)) = candidate(&headers, &body)? else {
        return Err(Rejection::new(
            StatusCode::BAD_REQUEST,
            "send a map of dotted keys to values, e.g. {\"cache.default_ttl\": \"5s\"}",
        ));
    };
    let parsed: Result<BTreeMap<String, Value>, String> = match format {
        TextFormat::Json => serde_json::from_str(&text).map_err(|e| e.to_string()),
        TextFormat::Yaml => serde_saphyr::from_str(&text).map_err(|e| e.to_string()),
        TextFormat::Toml => Err("toml is not accepted here: send yaml or json".to_owned()),
        _ => Err("unsupported format".to_owned()),
    };
    let overrides = parsed.map_err(|e| {
        Rejection::new(
            StatusCode::BAD_REQUEST,
            format!("the body is not a map of dotted keys to values: {e}"),
        )
    })?;
    if overrides.is_empty() {
        return Err(Rejection::new(StatusCode::BAD_REQUEST, "no override given"));
    }
    if let Some(key) = overrides
        .keys()
        .find(|k| k.is_empty() || k.split('.').any(str::is_empty))
    {
        return Err(Rejection::new(
            StatusCode::BAD_REQUEST,
            format!("invalid override key {key:?}: dotted segments must not be empty"),
        ));
    }
    Ok(outcome_response(
        &orchestrator
            .set_overrides(ReloadTrigger::Admin, overrides)
            .await,
    ))
}

#[utoipa::path(
    delete,
    path = "/admin/config/overrides",
    tag = "admin",
    summary = "Clear runtime overrides",
    description = "Removes every override and reloads.",
    security(("admin_token" = [])),
    responses(
        (status = 200, description = "applied or noop", body = ReloadOutcome),
        (status = 422, description = "rejected: invalid, or a static change", body = ReloadOutcome),
        (status = 500, description = "failed: a module could not prepare", body = ReloadOutcome),
        (status = 503, description = "circuit_open (with `Retry-After`), or dynamic reload is not enabled", body = Unavailable),
    ),
)]
async fn clear_overrides(State(ep): State<Arc<Endpoints>>) -> Result<Response, Rejection> {
    let orchestrator = orchestrator(&ep)?;
    Ok(outcome_response(
        &orchestrator.clear_overrides(ReloadTrigger::Admin).await,
    ))
}

#[utoipa::path(
    delete,
    path = "/admin/config/overrides/{key}",
    tag = "admin",
    summary = "Remove one override",
    description = "Removes one override and reloads.",
    security(("admin_token" = [])),
    params(("key" = String, Path, description = "the dotted key")),
    responses(
        (status = 404, description = "no override is set for the key", body = ErrorBody),
        (status = 200, description = "applied or noop", body = ReloadOutcome),
        (status = 422, description = "rejected: invalid, or a static change", body = ReloadOutcome),
        (status = 500, description = "failed: a module could not prepare", body = ReloadOutcome),
        (status = 503, description = "circuit_open (with `Retry-After`), or dynamic reload is not enabled", body = Unavailable),
    ),
)]
async fn remove_override(
    State(ep): State<Arc<Endpoints>>,
    Path(key): Path<String>,
) -> Result<Response, Rejection> {
    let orchestrator = orchestrator(&ep)?;
    if !ep.store.overrides().contains_key(&key) {
        return Err(Rejection::new(
            StatusCode::NOT_FOUND,
            format!("no override is set for {key:?}"),
        ));
    }
    Ok(outcome_response(
        &orchestrator
            .remove_override(ReloadTrigger::Admin, &key)
            .await,
    ))
}

/// The optional candidate configuration of a dry run, by content type (YAML when unstated).
fn candidate(headers: &HeaderMap, body: &Bytes) -> Result<Option<(TextFormat, String)>, Rejection> {
    if body.trim_ascii().is_empty() {
        return Ok(None);
    }
    let content_type = headers
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(|v| {
            v.split(';')
                .next()
                .unwrap_or("")
                .trim()
                .to_ascii_lowercase()
        });
    let format = match content_type.as_deref() {
        None | Some("application/yaml" | "application/x-yaml" | "text/yaml" | "text/x-yaml") => {
            TextFormat::Yaml
        }
        Some("application/json") => TextFormat::Json,
        Some("application/toml" | "text/toml") => TextFormat::Toml,
        Some(other) => {
            return Err(Rejection::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                format!(
                    "unsupported content type {other:?}: send application/yaml, application/json or application/toml"
                ),
            ));
        }
    };
    match String::from_utf8(body.to_vec()) {
        Ok(text) => Ok(Some((format, text))),
        Err(_) => Err(Rejection::new(
            StatusCode::BAD_REQUEST,
            "the candidate configuration is not utf-8",
        )),
    }
}

#[utoipa::path(
    get,
    path = "/admin/config",
    tag = "admin",
    summary = "Running configuration",
    description = "The running configuration, secrets redacted, with what waits for a restart and the last rejected reload.",
    security(("admin_token" = [])),
    responses(
        (status = 200, description = "the running configuration", body = ConfigAnswer),
    ),
)]
async fn config(State(ep): State<Arc<Endpoints>>) -> Response {
    let orchestrator = ep.services.get::<ReloadOrchestrator>();
    let pending_restart = orchestrator
        .as_ref()
        .map(|o| o.pending_restart())
        .unwrap_or_default();
    let last_rejected = orchestrator.as_ref().and_then(|o| o.last_rejected());
    let last_reverted = orchestrator.as_ref().and_then(|o| o.last_reverted());
    let sources_differ = last_reverted.as_ref().is_some_and(|r| r.sources_differ);
    // Version and values from one config epoch.
    let (version, config) = ep.store.redacted_versioned();
    json_of(
        StatusCode::OK,
        &ConfigAnswer {
            version,
            config,
            pending_restart,
            last_rejected,
            last_reverted,
            sources_differ,
        },
    )
}

#[utoipa::path(
    get,
    path = "/admin/config/history",
    tag = "admin",
    summary = "Configuration history",
    description = "The bounded history of committed versions, changes redacted.",
    security(("admin_token" = [])),
    responses(
        (status = 200, description = "the history", body = HistoryAnswer),
        (status = 503, description = "dynamic reload is not enabled", body = ErrorBody),
    ),
)]
async fn history(State(ep): State<Arc<Endpoints>>) -> Result<Response, Rejection> {
    let orchestrator = orchestrator(&ep)?;
    Ok(json_of(
        StatusCode::OK,
        &HistoryAnswer {
            version: orchestrator.version(),
            history: orchestrator.history(),
        },
    ))
}

#[utoipa::path(
    post,
    path = "/admin/config/rollback/{version}",
    tag = "admin",
    summary = "Roll back",
    description = "Returns to an earlier version of the history through the reload pipeline.",
    security(("admin_token" = [])),
    params(("version" = u64, Path, description = "a version in the history")),
    responses(
        (status = 400, description = "the version is not a number", content_type = "text/plain", body = String),
        (status = 404, description = "the version is not in the history", body = ErrorBody),
        (status = 200, description = "applied or noop", body = ReloadOutcome),
        (status = 422, description = "rejected: invalid, or a static change", body = ReloadOutcome),
        (status = 500, description = "failed: a module could not prepare", body = ReloadOutcome),
        (status = 503, description = "circuit_open (with `Retry-After`), or dynamic reload is not enabled", body = Unavailable),
    ),
)]
async fn rollback(
    State(ep): State<Arc<Endpoints>>,
    Path(version): Path<u64>,
) -> Result<Response, Rejection> {
    let orchestrator = orchestrator(&ep)?;
    let known: Vec<u64> = orchestrator.history().iter().map(|e| e.version).collect();
    if !known.contains(&version) {
        return Err(Rejection::new(
            StatusCode::NOT_FOUND,
            format!("version {version} is not in the history (kept: {known:?})"),
        ));
    }
    Ok(outcome_response(&orchestrator.rollback(version).await))
}

/// The outcome as JSON, with the status code of its `status`.
fn outcome_response(outcome: &ReloadOutcome) -> Response {
    let status = match outcome.status {
        ReloadStatus::Applied | ReloadStatus::Noop | ReloadStatus::Planned => StatusCode::OK,
        ReloadStatus::Rejected => StatusCode::UNPROCESSABLE_ENTITY,
        ReloadStatus::Failed => StatusCode::INTERNAL_SERVER_ERROR,
        ReloadStatus::CircuitOpen => StatusCode::SERVICE_UNAVAILABLE,
    };
    let body = serde_json::to_value(outcome).unwrap_or_else(|e| json!({ "error": e.to_string() }));
    let mut response = json(status, &body);
    if let Some(ms) = outcome.retry_after_ms {
        let seconds = ms.div_ceil(1000).max(1);
        if let Ok(value) = HeaderValue::from_str(&seconds.to_string()) {
            response.headers_mut().insert(RETRY_AFTER, value);
        }
    }
    response
}
