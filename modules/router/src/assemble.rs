//! Building the application's router: contributions plus the built-in endpoints, route
//! toggles, and the tower-http middleware stack. A build is a pure function of its inputs, so
//! a reload builds aside and the caller swaps the result in (or keeps the old one on error).

use std::any::Any;
use std::collections::HashMap;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::{DefaultBodyLimit, MatchedPath, Request, State};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use http::{HeaderName, HeaderValue, Method, StatusCode};
use modular_core::http::RouteContribution;
use tower::ServiceBuilder;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::compression::CompressionLayer;
use tower_http::compression::predicate::{DefaultPredicate, Predicate};
use tower_http::cors::{AllowHeaders, AllowMethods, AllowOrigin, CorsLayer, ExposeHeaders};
use tower_http::limit::RequestBodyLimitLayer;
use tower_http::request_id::{
    MakeRequestId, PropagateRequestIdLayer, RequestId, SetRequestIdLayer,
};
use tower_http::timeout::TimeoutLayer;
use tower_http::trace::TraceLayer;

use crate::config::{CorsConfig, RouterConfig};
use crate::endpoints::{self, Endpoints};
use crate::error::RouterError;
use crate::limits::{self, Limits};
use crate::route_metrics::{AnswerLayer, RouteMetrics};
use crate::security_headers;
use crate::trace::ProbeAwareClassifier;

/// What one build produced, besides the router: what the health check reports.
#[derive(Clone, Debug, Default)]
pub(crate) struct BuildSummary {
    /// Known route paths (recorded contributions and built-in endpoints), sorted.
    pub(crate) paths: Vec<String>,
    /// Disabled paths and the status they answer.
    pub(crate) disabled: Vec<(String, u16)>,
    /// Owners of contributions whose paths are unknown.
    pub(crate) opaque_owners: Vec<String>,
    /// Every contributing module, sorted and deduplicated.
    pub(crate) owners: Vec<String>,
    /// Whether `/health*` and the probes are mounted.
    pub(crate) health_endpoints: bool,
}

/// Builds the whole router for `config`.
pub(crate) fn build(
    config: &RouterConfig,
    contributions: &[RouteContribution],
    documents: &[(String, utoipa::openapi::OpenApi)],
    endpoints: &Arc<Endpoints>,
) -> Result<(Router, BuildSummary), RouterError> {
    let mut summary = BuildSummary::default();
    for contribution in contributions {
        summary.owners.push(contribution.owner().to_owned());
        if contribution.paths().is_empty() {
            summary.opaque_owners.push(contribution.owner().to_owned());
        }
        summary.paths.extend(contribution.paths().iter().cloned());
    }
    summary
        .paths
        .extend(endpoints.paths().into_iter().map(str::to_owned));
    summary.paths.sort();
    summary.paths.dedup();
    summary.owners.sort();
    summary.owners.dedup();
    summary.opaque_owners.sort();
    summary.opaque_owners.dedup();

    for (path, toggle) in &config.routes {
        if summary.paths.binary_search(path).is_err() {
            return Err(RouterError::UnknownRoute {
                path: path.clone(),
                known: summary.paths.join(", "),
            });
        }
        if !toggle.enabled {
            summary
                .disabled
                .push((path.clone(), toggle.disabled_status));
        }
    }

    // Limits bound contributed routes only, so their keys must name one of those.
    let mut contributed: Vec<&str> = contributions
        .iter()
        .filter(|c| !c.is_admin())
        .flat_map(|c| c.paths().iter().map(String::as_str))
        .collect();
    contributed.sort_unstable();
    for path in config.limits.routes.keys() {
        if contributed.binary_search(&path.as_str()).is_err() {
            return Err(RouterError::UnknownLimitRoute {
                path: path.clone(),
                known: contributed.join(", "),
            });
        }
    }
    let limits = Limits::new(&config.limits);

    let health = endpoints::health::routes(endpoints);
    summary.health_endpoints = health.is_some();
    let admin_contributions: Vec<(Router, bool)> = contributions
        .iter()
        .filter(|c| c.is_admin())
        .map(|c| (c.router().clone(), c.is_guarded()))
        .collect();
    let metrics = endpoints::metrics::routes(endpoints.metrics_exporter());
    let spec = Arc::new(crate::openapi::ServedSpec::new(
        Arc::clone(endpoints),
        documents.to_vec(),
    ));
    let owners = summary.owners.join(", ");
    let timeout = (!config.request_timeout.is_zero()).then(|| {
        TimeoutLayer::with_status_code(StatusCode::SERVICE_UNAVAILABLE, config.request_timeout)
    });
    // axum panics on overlapping routes or two fallbacks; a conflict must fail this build
    // (and leave the running router alone), not the process.
    let merged = catch(&owners, || {
        let mut router = Router::new();
        for contribution in contributions.iter().filter(|c| !c.is_admin()) {
            router = router.merge(contribution.router().clone());
        }
        // Inside `catch`: an admin contribution that overlaps a built-in endpoint panics.
        let admin = endpoints::admin::routes(endpoints, admin_contributions, spec);
        // The request timeout bounds the contributed (application) routes only: a cache-miss
        // probe may wait for the providers' own timeouts and an admin reload may rebuild pools,
        // and neither may be cut into a bare 503.
        if let Some(timeout) = timeout {
            router = router.layer(timeout);
        }
        // Outside the timeout: a refused request is answered at once. Likewise for the
        // contributed routes only: an overload must not fail a probe or lock out the operator.
        if let Some(limits) = limits {
            router = router.layer(middleware::from_fn_with_state(limits, limits::limit));
        }
        if let Some(health) = health {
            router = router.merge(health);
        }
        if let Some(metrics) = metrics {
            router = router.merge(metrics);
        }
        router.merge(admin)
    })?;

    let merged = if summary.disabled.is_empty() || !merged.has_routes() {
        merged
    } else {
        let toggles: Arc<HashMap<String, StatusCode>> = Arc::new(
            summary
                .disabled
                .iter()
                .map(|(path, code)| {
                    (
                        path.clone(),
                        StatusCode::from_u16(*code).unwrap_or(StatusCode::NOT_FOUND),
                    )
                })
                .collect(),
        );
        merged.route_layer(middleware::from_fn_with_state(toggles, toggle))
    };
    Ok((
        with_stack(merged, config, &endpoints.route_metrics)?,
        summary,
    ))
}

fn catch(owners: &str, f: impl FnOnce() -> Router) -> Result<Router, RouterError> {
    std::panic::catch_unwind(AssertUnwindSafe(f)).map_err(|panic| RouterError::RouteConflict {
        owners: if owners.is_empty() {
            "the built-in endpoints".to_owned()
        } else {
            owners.to_owned()
        },
        message: modular_core::panic_message(&*panic),
    })
}

/// Answers a disabled route with its configured status (the route's handler never runs).
async fn toggle(
    State(disabled): State<Arc<HashMap<String, StatusCode>>>,
    request: Request,
    next: Next,
) -> Response {
    let status = request
        .extensions()
        .get::<MatchedPath>()
        .and_then(|matched| disabled.get(matched.as_str()));
    match status {
        Some(&StatusCode::NOT_FOUND) => StatusCode::NOT_FOUND.into_response(),
        Some(&status) => (status, "route disabled").into_response(),
        None => next.run(request).await,
    }
}

/// Wraps `router` in the middleware stack, outermost first: request id, trace, metrics,
/// request id propagation, security headers, CORS, compression, body limit, catch-panic. (The request timeout is not part of
/// it: [`build`] puts it on the contributed routes only.)
fn with_stack(
    router: Router,
    config: &RouterConfig,
    metrics: &Arc<RouteMetrics>,
) -> Result<Router, RouterError> {
    let request_id = HeaderName::from_bytes(config.request_id_header.as_bytes()).map_err(|e| {
        RouterError::InvalidValue {
            path: "request_id_header".to_owned(),
            message: e.to_string(),
        }
    })?;
    let cors = cors_layer(&config.cors)?;
    let security = security_headers::headers(&config.security_headers)?;
    let compress = config.compression;
    // A predicate rather than an optional layer keeps one response type either way.
    let compression = CompressionLayer::new().compress_when(DefaultPredicate::new().and(
        move |_: StatusCode, _: http::Version, _: &http::HeaderMap, _: &http::Extensions| compress,
    ));
    let body_limit = config
        .body_limit
        .map(|limit| usize::try_from(limit).unwrap_or(usize::MAX))
        .unwrap_or(usize::MAX);
    let span_header = request_id.clone();
    let trace = TraceLayer::new(ProbeAwareClassifier).make_span_with(move |request: &Request| {
        let id = request
            .headers()
            .get(&span_header)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        tracing::info_span!(
            "http",
            method = %request.method(),
            uri = %SpanUri(request.uri()),
            request_id = id,
        )
    });

    let stack = ServiceBuilder::new()
        .layer(SetRequestIdLayer::new(request_id.clone(), MakeRequestUuid))
        .layer(trace)
        // The route's series and the security headers, in one layer (adding the headers
        // before or after the request id's makes no difference to either).
        .layer(AnswerLayer::new(Arc::clone(metrics), security))
        .layer(PropagateRequestIdLayer::new(request_id))
        .option_layer(cors)
        .layer(compression)
        .layer(RequestBodyLimitLayer::new(body_limit))
        .layer(CatchPanicLayer::custom(panic_response))
        // Innermost, in the same layer: each `Router::layer` wraps every route in one more
        // boxed service, cloned and boxed again per request.
        .layer(match config.body_limit {
            // Extractors (`Json`, `Bytes`) read up to the same limit.
            Some(_) => DefaultBodyLimit::max(body_limit),
            // The HTTP server's `max_body_size` is the only limit.
            None => DefaultBodyLimit::disable(),
        });
    // Layers check their settings when applied (tower-http's CORS asserts); whatever a layer
    // panics on fails this build with the section's name, never start or a reload.
    //
    // `with_state(())` first turns every handler into a finished route, once per build:
    // without it axum keeps handlers boxed and, for each request, clones the handler and
    // applies every layer above it again (dozens of allocations per request).
    catch_stack(move || router.with_state(()).layer(stack))
}

/// A random (version 4) UUID per request, like tower-http's `MakeRequestUuid`, drawn from
/// the thread's userspace CSPRNG (`rand`'s `ThreadRng`, seeded from the OS) instead of one
/// `getrandom` system call per request.
#[derive(Clone, Copy, Debug, Default)]
struct MakeRequestUuid;

impl MakeRequestId for MakeRequestUuid {
    fn make_request_id<B>(&mut self, _request: &Request<B>) -> Option<RequestId> {
        let id = uuid::Builder::from_random_bytes(rand::random()).into_uuid();
        let mut buffer = uuid::Uuid::encode_buffer();
        let text = id.hyphenated().encode_lower(&mut buffer);
        HeaderValue::from_str(text).ok().map(RequestId::new)
    }
}

/// Runs `apply`, turning a panic into [`RouterError::StackPanicked`].
fn catch_stack(apply: impl FnOnce() -> Router) -> Result<Router, RouterError> {
    std::panic::catch_unwind(AssertUnwindSafe(apply)).map_err(|panic| RouterError::StackPanicked {
        message: modular_core::panic_message(&*panic),
    })
}

fn panic_response(panic: Box<dyn Any + Send + 'static>) -> Response<Body> {
    tracing::error!(panic = %modular_core::panic_message(&*panic), "request handler panicked; answered 500");
    let mut response = Response::new(Body::from(r#"{"error":"internal server error"}"#));
    *response.status_mut() = StatusCode::INTERNAL_SERVER_ERROR;
    response.headers_mut().insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}

fn cors_layer(cors: &CorsConfig) -> Result<Option<CorsLayer>, RouterError> {
    if cors.allowed_origins.is_empty() {
        return Ok(None);
    }
    let invalid = |path: &str, message: String| RouterError::InvalidValue {
        path: format!("cors.{path}"),
        message,
    };
    // tower-http asserts on these when the layer is applied; config validation refuses them
    // first, and this keeps a build from panicking should a config reach it unvalidated.
    if cors.allow_credentials {
        for (field, list) in [
            ("allowed_origins", &cors.allowed_origins),
            ("allowed_methods", &cors.allowed_methods),
            ("allowed_headers", &cors.allowed_headers),
            ("exposed_headers", &cors.exposed_headers),
        ] {
            if list.iter().any(|v| v == "*") {
                return Err(invalid(
                    field,
                    "must not be [\"*\"] when allow_credentials is true".to_owned(),
                ));
            }
        }
    }
    let origin = if cors.allowed_origins.iter().any(|o| o == "*") {
        AllowOrigin::any()
    } else {
        let origins = cors
            .allowed_origins
            .iter()
            .map(|o| {
                HeaderValue::from_str(o)
                    .map_err(|e| invalid("allowed_origins", format!("{o:?}: {e}")))
            })
            .collect::<Result<Vec<_>, _>>()?;
        AllowOrigin::list(origins)
    };
    let methods = if cors.allowed_methods.iter().any(|m| m == "*") {
        AllowMethods::any()
    } else {
        let methods = cors
            .allowed_methods
            .iter()
            .map(|m| {
                Method::from_bytes(m.as_bytes())
                    .map_err(|e| invalid("allowed_methods", format!("{m:?}: {e}")))
            })
            .collect::<Result<Vec<_>, _>>()?;
        AllowMethods::list(methods)
    };
    let headers = if cors.allowed_headers.iter().any(|h| h == "*") {
        AllowHeaders::any()
    } else {
        AllowHeaders::list(
            header_names(&cors.allowed_headers).map_err(|m| invalid("allowed_headers", m))?,
        )
    };
    let exposed = if cors.exposed_headers.iter().any(|h| h == "*") {
        ExposeHeaders::any()
    } else {
        ExposeHeaders::list(
            header_names(&cors.exposed_headers).map_err(|m| invalid("exposed_headers", m))?,
        )
    };
    let mut layer = CorsLayer::new()
        .allow_origin(origin)
        .allow_methods(methods)
        .allow_headers(headers)
        .expose_headers(exposed)
        .allow_credentials(cors.allow_credentials);
    if let Some(max_age) = cors.max_age {
        layer = layer.max_age(max_age.min(Duration::from_secs(u32::MAX.into())));
    }
    Ok(Some(layer))
}

fn header_names(names: &[String]) -> Result<Vec<HeaderName>, String> {
    names
        .iter()
        .map(|n| HeaderName::from_bytes(n.as_bytes()).map_err(|e| format!("{n:?}: {e}")))
        .collect()
}

/// A request's path and query for its span, the query's values redacted (they often carry
/// tokens); written only when the span is recorded.
struct SpanUri<'a>(&'a http::Uri);

impl std::fmt::Display for SpanUri<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.0.path())?;
        match self.0.query() {
            Some(query) => write!(f, "?{}", modular_core::config::RedactedQuery(query)),
            None => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_ids_are_distinct_version_4_uuids() {
        let request = Request::new(());
        let mut make = MakeRequestUuid;
        let ids: Vec<uuid::Uuid> = (0..64)
            .filter_map(|_| make.make_request_id(&request))
            .filter_map(|id| id.header_value().to_str().ok().map(str::to_owned))
            .filter_map(|text| uuid::Uuid::parse_str(&text).ok())
            .collect();
        assert_eq!(ids.len(), 64);
        assert!(
            ids.iter()
                .all(|id| id.get_version_num() == 4 && id.get_variant() == uuid::Variant::RFC4122)
        );
        let mut unique = ids.clone();
        unique.sort_unstable();
        unique.dedup();
        assert_eq!(unique.len(), ids.len());
    }

    #[test]
    fn a_layer_that_panics_while_applied_fails_the_build_naming_the_section() {
        let error = catch_stack(|| panic!("layer exploded"))
            .err()
            .map(|e| e.to_string());
        assert_eq!(
            error.as_deref(),
            Some("router: building the middleware stack panicked: layer exploded")
        );
    }

    fn with_cors(cors: CorsConfig) -> Result<Router, RouterError> {
        let config = RouterConfig {
            cors,
            ..RouterConfig::default()
        };
        with_stack(
            Router::new().route("/", axum::routing::get(|| async { "ok" })),
            &config,
            &Arc::default(),
        )
    }

    /// Validation rejects these before a build; the build refuses them too, rather than let
    /// tower-http's assertion panic into start or reload.
    #[test]
    fn a_stack_tower_http_would_panic_on_is_an_error_naming_the_key() {
        for field in ["allowed_methods", "allowed_headers", "exposed_headers"] {
            let mut cors = CorsConfig {
                allowed_origins: vec!["https://a.example".to_owned()],
                allow_credentials: true,
                ..CorsConfig::default()
            };
            match field {
                "allowed_methods" => cors.allowed_methods = vec!["*".to_owned()],
                "allowed_headers" => cors.allowed_headers = vec!["*".to_owned()],
                _ => cors.exposed_headers = vec!["*".to_owned()],
            }
            let error = with_cors(cors).err().map(|e| e.to_string());
            assert!(
                error
                    .as_deref()
                    .is_some_and(|e| e.starts_with(&format!("router.cors.{field}:"))),
                "{field}: {error:?}"
            );
        }
    }
}
