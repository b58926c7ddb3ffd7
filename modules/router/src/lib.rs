//! The router module of modular: it owns the application's [`axum::Router`], built from the
//! routes other modules contribute, wrapped in a reloadable tower-http middleware stack, and it
//! mounts the health and admin endpoints.
//!
//! # A guided tour
//!
//! **Contributing routes.** A module never depends on this crate: it asks the service registry
//! for core's [`RouteRegistry`](modular_core::http::RouteRegistry) (feature `http` of
//! `modular-core`) and adds routes, in `init` or later:
//!
//! ```
//! use axum::routing::get;
//! use modular_core::http::RouteRegistry;
//! use modular_core::{BoxError, InitContext, Module};
//!
//! struct Orders;
//!
//! #[modular_core::async_trait]
//! impl Module for Orders {
//!     fn name(&self) -> &str { "orders" }
//!     async fn init(&mut self, ctx: &mut InitContext<'_>) -> Result<(), BoxError> {
//!         let routes = RouteRegistry::shared(ctx.services());
//!         routes.route("orders", "/orders", get(|| async { "[]" }));
//!         Ok(())
//!     }
//! }
//! ```
//!
//! **Building and serving.** At `start` the router merges every contribution with the built-in
//! endpoints, applies route toggles, wraps the result in the middleware stack and publishes it
//! as core's [`ServedRouter`](modular_core::http::ServedRouter), which the `httpserver` module
//! serves. When the configuration changes, or a module contributes routes after start, a whole
//! new router is built aside and swapped in atomically: requests in flight finish on the router
//! they started on, the next request sees the new one. A build that fails (an unknown toggle,
//! two modules claiming one path, a layer that panics while applied) changes nothing: a
//! panic while building is caught and becomes the build's error.
//!
//! **Middleware**, outermost first: request id (`x-request-id`, a random UUID v4 generated
//! when absent, echoed in the response), trace (a `tracing` span per request with method, URI
//! and request id; a server error is logged at ERROR, except a health endpoint's `503`, which
//! is an answer during an outage and logged with every other response at DEBUG), metrics and
//! security headers (one layer), CORS, compression (gzip, brotli or zstd, by
//! `Accept-Encoding`), body limit (`413`), catch-panic (a
//! panicking handler answers `500 {"error":"internal server error"}` and the server keeps
//! serving), then, on the contributed routes only, the limits (`429`/`503`) and the request
//! timeout (`503`). The request timeout (`router.request_timeout`) wraps contributed routes
//! only, never the built-in health and admin endpoints: a probe that waits for its providers'
//! own timeouts still answers its normal body with `Cache-Control: no-store`, and an admin
//! reload that takes longer than the timeout still answers its `ReloadOutcome`.
//!
//! # Endpoints (DESIGN.md §3.7)
//!
//! | path | answer |
//! |---|---|
//! | `GET /health` | native JSON (`status`, `readiness`, `liveness`, `startup`, `config_version`, `generated_at`, `checks`); 503 when `status` is unhealthy |
//! | `GET /health/ready`, `/health/live` | the same JSON; status code from readiness / liveness |
//! | `GET /health/checks/{module}` | one module's checks; 404 when it has none |
//! | `GET /readyz`, `/livez`, `/startupz` | `ok` or 503; `?verbose`, `?exclude=module[:component]` |
//! | any of them with `Accept: application/health+json` | the IETF format (`pass`/`warn`/`fail`, checks keyed `module:component`) |
//! | `POST /admin/reload` | runs a reload, answers the `ReloadOutcome` |
//! | `POST /admin/reload/plan` | dry run; optional body is a candidate config (`Content-Type` YAML, JSON or TOML; YAML when absent) |
//! | `GET /admin/config` | `{"version", "config", "pending_restart", "last_rejected"}`, secrets redacted |
//! | `GET /admin/config/history` | `{"version", "history": [...]}` |
//! | `POST /admin/config/rollback/{version}` | returns to that version through the reload pipeline; 404 when not in the history |
//! | `GET/PUT/DELETE /admin/config/overrides`, `DELETE /admin/config/overrides/{key}` | the runtime overrides |
//! | `GET /admin/openapi.json` | the OpenAPI 3.1 description of every endpoint served, modules' fragments ([`RouteRegistry::document`](modular_core::http::RouteRegistry::document)) merged in |
//!
//! Health endpoints are mounted when the application has a health aggregator. They read its
//! cached answer, so probes never run checks more often than the cache TTL. Unauthorized
//! callers see each check's `module`, `component` and `status` only; messages and details
//! follow `health.show_details` (`never`, `when_authorized` — the default — or `always`),
//! where a caller is authorized by `Authorization: Bearer <admin.token>`.
//!
//! Admin endpoints require `Authorization: Bearer <admin.token>`, compared in constant time.
//! Without a configured token they do not exist: `/admin/*` answers `404` like any unknown
//! path. No bearer token: `401` with `WWW-Authenticate: Bearer`. A wrong token: `403`.
//! Reload answers map the outcome's status: `applied`/`noop` 200, `rejected` 422, `failed` 500,
//! `circuit_open` 503 with `Retry-After`. Health and admin answers carry
//! `Cache-Control: no-store`.
//!
//! # Configuration
//!
//! ```yaml
//! router:
//!   request_timeout: 30s        # contributed routes only (not health/admin); 0s: no timeout
//!   body_limit: 1048576         # bytes; unset: only httpserver.max_body_size applies
//!   compression: true
//!   request_id_header: x-request-id
//!   cors:
//!     allowed_origins: ["https://app.example.com"]   # empty: no CORS headers; ["*"]: any
//!     allowed_methods: [GET, POST]
//!     allowed_headers: [content-type]
//!     exposed_headers: []
//!     allow_credentials: false  # true: no "*" in origins, methods or headers (rejected)
//!     max_age: 10m
//!   limits:                     # contributed routes only; health/metrics/admin are exempt
//!     global:                   # shared by every contributed route
//!       concurrency: 100        # in flight at once; one more: 503 + Retry-After: 1
//!       rate: {requests: 50, per: 1s}   # token bucket; one more: 429 + Retry-After
//!     routes:                   # by route path as registered; must be a contributed route
//!       /orders/{id}:
//!         rate: {requests: 5, per: 1s}
//!   security_headers:           # added to every answer that lacks them
//!     enabled: true             # false: none of them
//!     frame_options: deny       # X-Frame-Options: deny | sameorigin | off
//!     referrer_policy: no-referrer   # "": no Referrer-Policy header
//!     hsts:                     # Strict-Transport-Security, opt-in (see below)
//!       enabled: false
//!       max_age: 365days
//!       include_subdomains: true
//!   routes:                     # toggles, by route path as registered
//!     /orders/{id}:
//!       enabled: false
//!       disabled_status: 503    # 404 (as if absent, the default) or 503
//!   health:                     # the router's own health registration (router:routes)
//!     timeout: 200ms            # the check's deadline; > 0s, at most 60s
//!     optional: false           # true: the router's check never fails readiness
//! admin:
//!   token: "a-long-random-admin-token"   # >= 16 bytes; unset: /admin is not mounted
//! health:                               # the aggregator's section, read by the endpoints
//!   show_details: when_authorized        # never | when_authorized | always
//! ```
//!
//! **Limits** (`router.limits`): a global and per-route concurrency limit (load shedding: over
//! it a request is answered `503` with `Retry-After: 1` at once, never queued) and rate (a
//! token bucket of `requests` refilled evenly over `per`: over it, `429` with `Retry-After` in
//! whole seconds until a token is back). A concurrency permit is held until the response head
//! is produced, not while its body streams. A request must pass the global limits, then its
//! route's, matched by route template (`/orders/{id}` counts every id together). They wrap
//! the contributed routes only, outside the request timeout; requests that match no route
//! are not counted. A reload builds new limiters with the new router: counts start afresh,
//! and requests in flight release the old router's permits.
//!
//! **Security headers** (`router.security_headers`, on by default): `X-Content-Type-Options:
//! nosniff`, `X-Frame-Options: DENY` and `Referrer-Policy: no-referrer` on every answer, unless
//! the handler set the header itself. `Strict-Transport-Security: max-age=...;
//! includeSubDomains` is opt-in (`hsts.enabled`): it only means something over TLS, and the
//! router cannot tell per request whether the connection was TLS (the HTTP server marks no
//! request, and a TLS-terminating proxy in front is invisible), so enable it when the
//! application is reached over HTTPS only.
//!
//! # Dynamic fields
//!
//! Every `router` field is dynamic: a reload rebuilds the router and its middleware aside and
//! swaps it in, so nothing needs a restart. A toggle that names a path no module registered
//! fails the reload (and rolls back the modules applied before it). `admin.token` and
//! `health.show_details` are read per request, so they apply to the next request — adding a
//! token mounts `/admin`, removing it unmounts it. `router.health.timeout` and
//! `router.health.optional` (the router's own registration, not the top-level `health`
//! section) are applied at the commit, which replaces the registration's options.
//!
//! # Health
//!
//! One component, `router:routes` (readiness, registered with `router.health.timeout`, default
//! 200 ms, and required unless `router.health.optional: true`):
//! - `unhealthy` until the router has been built (the module has not started);
//! - `degraded` when routes contributed after start could not be merged (two modules claim one
//!   path); the previous router keeps serving;
//! - `healthy` otherwise. Details: `route_count` (known paths, built-in endpoints included;
//!   the admin endpoints only while a token is set), `disabled` (path and status), `owners`,
//!   `opaque_owners` (contributions added as whole routers, whose paths cannot be counted or
//!   toggled), `health_endpoints`, `admin_endpoints`, `generation`.
//!
//! # Events
//!
//! | type | when | data |
//! |---|---|---|
//! | `com.modular.router.routes.rebuilt` | a new router was swapped in | `trigger` (`start`, `reload`, `contribution`), `route_count`, `disabled`, `generation` |
//! | `com.modular.router.routes.rebuild_failed` | a build failed; the previous router keeps serving | `trigger`, `error` |
//!
//! The reloads it takes part in are announced by core (`com.modular.config.reload.*`).
//!
//! # Metrics
//!
//! Recorded through the `metrics` facade while core records (`metrics.enabled: true`, or an
//! application recorder with `modular_core::metrics::record_into_installed_recorder`), and
//! served at `GET /metrics`:
//!
//! | series | type | labels |
//! |---|---|---|
//! | `modular_router_requests_total` | counter | `route`, `method`, `status_class` (`2xx` ... `5xx`) |
//! | `modular_router_request_duration_seconds` | histogram (time to the response head) | `route` |
//! | `modular_router_limit_rejections_total` | counter | `route`, `limit` (`rate`, `concurrency`) |
//!
//! `route` is the matched route template (`/orders/{id}`), or `unmatched` when no route
//! matched; never the raw path. Methods outside the standard set are `other`.
//!
//! # Feature flags
//!
//! None.

mod assemble;
mod auth;
mod config;
mod endpoints;
mod error;
mod limits;
mod module;
mod openapi;
mod route_metrics;
mod security_headers;
mod trace;

pub use config::{
    AdminConfig, CorsConfig, DEFAULT_HEALTH_TIMEOUT, FrameOptions, HealthEndpointsConfig,
    HstsConfig, LimitConfig, LimitsConfig, MIN_ADMIN_TOKEN_LEN, RateConfig, RouteToggle,
    RouterConfig, SecurityHeadersConfig,
};
pub use error::RouterError;
pub use module::{MODULE_NAME, RouterModule};
pub use openapi::SECURITY_SCHEME;

/// Guides from `docs/`, compiled and run as doc tests so they cannot drift from the code.
///
/// They live here because they need the router and the HTTP server together (this crate's
/// doc tests see `modular-httpserver` as a dev-dependency); core cannot depend on modules.
pub mod guide {
    #[doc = include_str!("../../../docs/your-own-app.md")]
    pub mod your_own_app {}
}
