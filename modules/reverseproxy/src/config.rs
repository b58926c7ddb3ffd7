//! [`ReverseProxyConfig`]: the `reverseproxy` section; every field reloads at runtime.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use modular_core::{DynamicConfig, FieldError};
use serde::{Deserialize, Serialize};

/// The `reverseproxy` configuration section. Every field but `listen` is dynamic: a reload
/// builds the new routing table (routes, pools, backends, balancers, checkers) aside and
/// swaps it in whole; a request already running finishes on the backend it started on.
///
/// | field | dynamic | what |
/// |---|---|---|
/// | `routes` | yes | matched in order of the longest prefix, then host, then methods |
/// | `pools` | yes | named pools of backends with a balancing mode, checks, outlier and breaker settings |
/// | `retry_budget` | yes | retries allowed as a fraction of recent requests (default `0.2`) |
/// | `health.optional` | yes | whether the module's health leaves readiness alone |
/// | `watch_tls_files` | yes | reload a pool's TLS client when its files change |
/// | `listen` | no | the module's own HTTP/1.1 listener (`host:port`), beside httpserver's routes |
///
/// ```yaml
/// reverseproxy:
///   routes:
///     - match: { prefix: /api/, host: api.test, methods: [GET, POST] }
///       pool: api
///       strip_prefix: true
///       timeout: 5s
///       add_headers: { x-gateway: modular }
///       remove_headers: [x-internal]
///   pools:
///     api:
///       balance: round_robin      # weighted, least_outstanding, consistent_hash
///       backends:
///         - { url: "http://127.0.0.1:9001", weight: 2 }
///         - { url: "http://127.0.0.1:9002" }
///       health_check: { path: /health, interval: 5s, timeout: 1s }
/// ```
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, DynamicConfig)]
#[serde(deny_unknown_fields, default)]
#[config(validate = "Self::validate_config")]
pub struct ReverseProxyConfig {
    /// The routes.
    #[config(dynamic)]
    pub routes: Vec<RouteConfig>,
    /// The pools, by name.
    #[config(dynamic)]
    pub pools: BTreeMap<String, PoolConfig>,
    /// At most this fraction of the requests of the last 10 s may be retries (at least 3
    /// retries are always allowed), so retries cannot multiply an outage.
    #[config(dynamic)]
    pub retry_budget: f64,
    /// Health registration.
    #[config(nested)]
    pub health: ReverseProxyHealthConfig,
    /// Whether the pools' TLS files (`ca_file`, `client_cert_file`, `client_key_file`) are
    /// watched: a rotated file gives its pool a new client with no config reload (built
    /// aside, swapped in; a file that does not load keeps the running client).
    #[config(dynamic)]
    pub watch_tls_files: bool,
    /// The module's own listener (`host:port`, e.g. `0.0.0.0:8080`): the same routes served
    /// by a lean HTTP/1.1 forwarder, for a service that is a proxy first (see
    /// docs/reverseproxy.md, "The module's own listener"). Unset: routes are served only
    /// through httpserver. A change needs a restart.
    pub listen: Option<String>,
}

impl Default for ReverseProxyConfig {
    fn default() -> Self {
        Self {
            routes: Vec::new(),
            pools: BTreeMap::new(),
            retry_budget: 0.2,
            health: ReverseProxyHealthConfig::default(),
            watch_tls_files: true,
            listen: None,
        }
    }
}

/// `reverseproxy.health`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, DynamicConfig)]
#[serde(deny_unknown_fields, default)]
#[config(dynamic)]
pub struct ReverseProxyHealthConfig {
    /// Whether an unhealthy proxy leaves readiness alone.
    pub optional: bool,
}

/// One route.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RouteConfig {
    /// The route's name in metrics; defaults to its prefix.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// What requests it takes.
    #[serde(rename = "match", default)]
    pub matches: RouteMatch,
    /// The pool it forwards to (empty for a `composite` route).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub pool: String,
    /// Remove the prefix from the forwarded path (`/api/users` goes out as `/users`).
    #[serde(default)]
    pub strip_prefix: bool,
    /// Replace the prefix by this path (`/v2/`), instead of stripping it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rewrite: Option<String>,
    /// Until the backend's response headers arrive, retries included.
    #[serde(default = "default_timeout", with = "modular_core::humantime_serde")]
    pub timeout: Duration,
    /// Headers set on the forwarded request.
    #[serde(default)]
    pub add_headers: BTreeMap<String, String>,
    /// Headers removed from the forwarded request.
    #[serde(default)]
    pub remove_headers: Vec<String>,
    /// Extra attempts for an idempotent request without a body (to another backend).
    #[serde(default = "default_retries")]
    pub retries: u32,
    /// Backend statuses that are retried (connect errors always are).
    #[serde(default = "default_retry_on")]
    pub retry_on: Vec<u16>,
    /// Mirror a share of the route's requests to a second pool.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shadow: Option<ShadowConfig>,
    /// Fan the request out to several pools instead of forwarding it to `pool`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub composite: Option<CompositeConfig>,
}

/// `routes[].composite`: the request (without a body) is sent to every part's pool at once;
/// the client gets the first success (`first_success`) or one JSON object with each part's
/// JSON body under its name (`merge`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CompositeConfig {
    /// `merge` (default) or `first_success`.
    #[serde(default)]
    pub mode: CompositeMode,
    /// The parts, by name (the key in the merged document).
    pub parts: BTreeMap<String, CompositePart>,
    /// `merge`: what a failed part (no answer, a non-2xx status, a body that is not JSON or
    /// is above `max_part_bytes`, its timeout) does: `fail` (default) the whole answer,
    /// `omit` its key, or `null` its value.
    #[serde(default)]
    pub on_part_failure: PartPolicy,
    /// `merge`: what a part answering 2xx with an empty body does (default `null`).
    #[serde(default = "default_on_empty")]
    pub on_empty: PartPolicy,
    /// `merge`: the largest body read from one part.
    #[serde(default = "default_max_part_bytes")]
    pub max_part_bytes: usize,
    /// The largest request body taken (read whole, then sent to every part); above it the
    /// request is answered `413`.
    #[serde(default = "default_max_request_bytes")]
    pub max_request_bytes: usize,
}

/// `routes[].composite.parts.<name>`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CompositePart {
    /// The pool the part goes to.
    pub pool: String,
    /// The path (and query) sent; default: the route's upstream path with the request's
    /// query.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// Until the part's answer is complete (its body read, for `merge`); default: the
    /// route's `timeout`.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "modular_core::humantime_serde::option"
    )]
    pub timeout: Option<Duration>,
    /// Further attempts, each on another backend of the pool, after a connect error (nothing
    /// reached the backend, so any method may go again), within the part's timeout and the
    /// retry budget.
    #[serde(default = "default_part_retries")]
    pub retries: u32,
}

fn default_part_retries() -> u32 {
    1
}

/// How a composite route answers.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CompositeMode {
    /// One JSON object: each part's JSON body under its name.
    #[default]
    Merge,
    /// The first part answering 2xx, streamed; the others are cancelled.
    FirstSuccess,
}

/// What a failed or empty part does to a merged answer.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PartPolicy {
    /// The whole answer fails (`502`, or `504` when the part timed out).
    #[default]
    Fail,
    /// The part's key is left out.
    Omit,
    /// The part's value is `null`.
    Null,
}

fn default_on_empty() -> PartPolicy {
    PartPolicy::Null
}

fn default_max_part_bytes() -> usize {
    1024 * 1024
}

fn default_max_request_bytes() -> usize {
    64 * 1024
}

/// `routes[].shadow`: a share of the route's requests is also sent to `pool`, after the
/// client's answer has its status and without delaying it; the mirror's answer is compared
/// with the client's on status (and body, with `compare_body`), counted, and dropped. A
/// request body streams to the primary and is copied for the mirror up to `max_body_bytes`
/// (a larger one is not mirrored, counted `too_large`). At most [`SHADOW_IN_FLIGHT`]
/// mirrored requests run at once; beyond that a mirror is skipped.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ShadowConfig {
    /// The pool the mirror goes to.
    pub pool: String,
    /// The share of requests mirrored, in percent (0–100).
    #[serde(default = "default_shadow_percent")]
    pub percent: f64,
    /// The largest request body copied for the mirror (0: requests with a body are not
    /// mirrored).
    #[serde(default = "default_shadow_max_body")]
    pub max_body_bytes: usize,
    /// Compare the mirror's response body with the client's (SHA-256 of each, hashed as
    /// they stream); a difference counts `body_mismatch`.
    #[serde(default)]
    pub compare_body: bool,
}

fn default_shadow_max_body() -> usize {
    64 * 1024
}

/// Mirrored requests in flight at most, per proxy.
pub const SHADOW_IN_FLIGHT: usize = 64;

fn default_shadow_percent() -> f64 {
    100.0
}

fn default_timeout() -> Duration {
    Duration::from_secs(30)
}

fn default_retries() -> u32 {
    2
}

fn default_retry_on() -> Vec<u16> {
    vec![502, 503, 504]
}

/// `routes[].match`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RouteMatch {
    /// A path prefix on segment boundaries: `/api` takes `/api` and `/api/...`, not `/apis`.
    pub prefix: String,
    /// The `Host` (port ignored), exact and case-insensitive; none takes every host.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
    /// The methods taken; empty takes every method.
    pub methods: Vec<String>,
}

impl Default for RouteMatch {
    fn default() -> Self {
        Self {
            prefix: "/".to_owned(),
            host: None,
            methods: Vec::new(),
        }
    }
}

/// One pool.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PoolConfig {
    /// The backends.
    pub backends: Vec<BackendConfig>,
    /// How a backend is chosen.
    #[serde(default)]
    pub balance: Balance,
    /// `consistent_hash`: the header whose value is hashed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hash_header: Option<String>,
    /// `consistent_hash`: the cookie whose value is hashed (when no header is given).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hash_cookie: Option<String>,
    /// `http1` (default), `h2c` (HTTP/2 with prior knowledge) or `h2` (HTTP/2, by ALPN over
    /// TLS).
    #[serde(default)]
    pub protocol: Protocol,
    /// How `https://` backends are verified and reached.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<PoolTlsConfig>,
    /// Active health checks; none means backends are up unless ejected or open.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub health_check: Option<HealthCheckConfig>,
    /// Passive outlier detection.
    #[serde(default)]
    pub outlier: OutlierConfig,
    /// The per-backend circuit breaker.
    #[serde(default)]
    pub breaker: BreakerConfig,
    /// An optional pool's trouble makes the module degraded at worst.
    #[serde(default)]
    pub optional: bool,
}

/// `pools.<name>.tls`: the pool's TLS client for its `https://` backends. The files are read
/// when the table is built (at start and in every reload's prepare step): a reload of the
/// section with changed file contents (a rotated CA) or other settings builds a new client
/// aside; with nothing changed the running client and its connections are kept.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PoolTlsConfig {
    /// PEM bundle of the CAs trusted for the backends' certificates; none: the platform's
    /// roots (`/etc/ssl/certs`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ca_file: Option<std::path::PathBuf>,
    /// The name the backends' certificates are verified against and sent as SNI (default:
    /// each backend URL's host).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub server_name: Option<String>,
    /// PEM certificate chain presented to the backends (with `client_key_file`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_cert_file: Option<std::path::PathBuf>,
    /// PEM private key of `client_cert_file`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_key_file: Option<std::path::PathBuf>,
}

/// `pools.<name>.backends[]`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BackendConfig {
    /// `http://host:port` or `https://host:port` (a path is ignored).
    pub url: String,
    /// Share under `weighted` (and `consistent_hash`); must be > 0.
    #[serde(default = "default_weight")]
    pub weight: u32,
}

fn default_weight() -> u32 {
    1
}

/// The balancing mode.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(from = "String", into = "String")]
#[non_exhaustive]
pub enum Balance {
    /// Each healthy backend in turn.
    #[default]
    RoundRobin,
    /// Smooth weighted round robin (nginx's algorithm).
    Weighted,
    /// The healthy backend with the fewest requests in flight (ties in turn).
    LeastOutstanding,
    /// A hash ring over `hash_header` or `hash_cookie`; requests without the key go round robin.
    ConsistentHash,
    /// Not a mode; validation rejects it with its path.
    Unknown(String),
}

impl Balance {
    /// The mode's name as written in YAML.
    pub fn as_str(&self) -> &str {
        match self {
            Self::RoundRobin => "round_robin",
            Self::Weighted => "weighted",
            Self::LeastOutstanding => "least_outstanding",
            Self::ConsistentHash => "consistent_hash",
            Self::Unknown(name) => name,
        }
    }
}

impl From<String> for Balance {
    fn from(name: String) -> Self {
        match name.as_str() {
            "round_robin" => Self::RoundRobin,
            "weighted" => Self::Weighted,
            "least_outstanding" | "least_outstanding_requests" => Self::LeastOutstanding,
            "consistent_hash" => Self::ConsistentHash,
            _ => Self::Unknown(name),
        }
    }
}

impl From<Balance> for String {
    fn from(balance: Balance) -> Self {
        balance.as_str().to_owned()
    }
}

/// The protocol spoken to a pool's backends.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Protocol {
    /// HTTP/1.1 with keep-alive.
    #[default]
    Http1,
    /// HTTP/2 over plain TCP (prior knowledge); `http://` backends only.
    H2c,
    /// HTTP/2: negotiated by ALPN (`h2`) with `https://` backends, prior knowledge with
    /// `http://` ones.
    H2,
}

/// `pools.<name>.health_check`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HealthCheckConfig {
    /// The path requested with `GET`.
    pub path: String,
    /// Between two checks of a backend.
    #[serde(with = "modular_core::humantime_serde")]
    pub interval: Duration,
    /// A random extra delay up to this, so checkers do not beat in step.
    #[serde(with = "modular_core::humantime_serde")]
    pub jitter: Duration,
    /// One check's deadline.
    #[serde(with = "modular_core::humantime_serde")]
    pub timeout: Duration,
    /// Statuses that pass; empty means any 2xx.
    pub expected_statuses: Vec<u16>,
    /// Consecutive failed checks that mark an up backend down.
    pub unhealthy_threshold: u32,
    /// Consecutive passed checks that mark a down backend up.
    pub healthy_threshold: u32,
}

impl Default for HealthCheckConfig {
    fn default() -> Self {
        Self {
            path: "/health".to_owned(),
            interval: Duration::from_secs(5),
            jitter: Duration::ZERO,
            timeout: Duration::from_secs(1),
            expected_statuses: Vec::new(),
            unhealthy_threshold: 3,
            healthy_threshold: 2,
        }
    }
}

/// `pools.<name>.outlier`: consecutive 5xx answers or connect errors eject a backend for
/// `base_ejection`, doubling per further ejection up to `max_ejection`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct OutlierConfig {
    /// Consecutive failures that eject; 0 turns outlier detection off.
    pub consecutive_failures: u32,
    /// The first ejection's length.
    #[serde(with = "modular_core::humantime_serde")]
    pub base_ejection: Duration,
    /// The longest ejection.
    #[serde(with = "modular_core::humantime_serde")]
    pub max_ejection: Duration,
}

impl Default for OutlierConfig {
    fn default() -> Self {
        Self {
            consecutive_failures: 5,
            base_ejection: Duration::from_secs(10),
            max_ejection: Duration::from_secs(300),
        }
    }
}

/// `pools.<name>.breaker`: consecutive connect errors or timeouts open it; after `open_for`
/// one trial request goes through (half-open): success closes it, failure re-opens it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BreakerConfig {
    /// Consecutive failures that open it; 0 turns the breaker off.
    pub failures: u32,
    /// How long it stays open before a trial.
    #[serde(with = "modular_core::humantime_serde")]
    pub open_for: Duration,
}

impl Default for BreakerConfig {
    fn default() -> Self {
        Self {
            failures: 3,
            open_for: Duration::from_secs(5),
        }
    }
}

impl RouteConfig {
    /// The route's metric label.
    pub fn label(&self) -> &str {
        self.name.as_deref().unwrap_or(&self.matches.prefix)
    }
}

/// A backend URL's scheme and `host:port`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct BackendUrl {
    /// `https://`: reached through the pool's TLS client.
    pub(crate) https: bool,
    pub(crate) authority: http::uri::Authority,
}

/// `scheme://host:port` of a backend URL, or why it is not one.
pub(crate) fn parse_backend_url(raw: &str) -> Result<BackendUrl, String> {
    // Never echo credentials: a URL with userinfo is shown without it.
    let url = match raw.rsplit_once('@') {
        Some((before, after)) => match before.split_once("://") {
            Some((scheme, _)) => format!("{scheme}://[REDACTED]@{after}"),
            None => format!("[REDACTED]@{after}"),
        },
        None => raw.to_owned(),
    };
    let uri: http::Uri = raw.parse().map_err(|_| format!("`{url}` is not a URL"))?;
    let https = match uri.scheme_str() {
        Some("http") => false,
        Some("https") => true,
        Some(other) => {
            return Err(format!(
                "`{url}`: scheme `{other}` is not supported, expected http or https"
            ));
        }
        None => return Err(format!("`{url}` has no scheme, expected http://host:port")),
    };
    let authority = uri
        .authority()
        .cloned()
        .ok_or_else(|| format!("`{url}` has no host"))?;
    if authority.host().is_empty() {
        return Err(format!("`{url}` has no host"));
    }
    if authority.as_str().contains('@') {
        return Err(format!(
            "a backend URL must not carry credentials (backend {})",
            authority.host()
        ));
    }
    Ok(BackendUrl { https, authority })
}

impl ReverseProxyConfig {
    /// Every problem the section has, each with its path (`pools.api.backends.0.url`, ...).
    pub fn validate_config(&self) -> Result<(), Vec<FieldError>> {
        let mut errors = Vec::new();
        if !(0.0..=1.0).contains(&self.retry_budget) {
            errors.push(FieldError::new(
                "retry_budget",
                format!("must be within 0..=1, got {}", self.retry_budget),
            ));
        }
        if let Some(listen) = &self.listen
            && let Err(error) = listen.parse::<std::net::SocketAddr>()
        {
            errors.push(FieldError::new(
                "listen",
                format!("must be `host:port` with an IP address, got `{listen}`: {error}"),
            ));
        }
        let mut seen = BTreeSet::new();
        for (index, route) in self.routes.iter().enumerate() {
            let path = |key: &str| format!("routes.{index}.{key}");
            let prefix = &route.matches.prefix;
            if !prefix.starts_with('/') {
                errors.push(FieldError::new(
                    path("match.prefix"),
                    format!("must start with `/`, got `{prefix}`"),
                ));
            }
            if let Some(rewrite) = &route.rewrite
                && !rewrite.starts_with('/')
            {
                errors.push(FieldError::new(
                    path("rewrite"),
                    format!("must start with `/`, got `{rewrite}`"),
                ));
            }
            for (m, method) in route.matches.methods.iter().enumerate() {
                if http::Method::from_bytes(method.to_ascii_uppercase().as_bytes()).is_err() {
                    errors.push(FieldError::new(
                        path(&format!("match.methods.{m}")),
                        format!("`{method}` is not an HTTP method"),
                    ));
                }
            }
            let mut methods: Vec<String> = route
                .matches
                .methods
                .iter()
                .map(|m| m.to_ascii_uppercase())
                .collect();
            methods.sort();
            let key = (
                normalize_prefix(prefix),
                route.matches.host.as_ref().map(|h| h.to_ascii_lowercase()),
                methods,
            );
            if !seen.insert(key) {
                errors.push(FieldError::new(
                    path("match"),
                    "duplicates the match of an earlier route",
                ));
            }
            if let Some(composite) = &route.composite {
                validate_composite(composite, route, &self.pools, &path, &mut errors);
            } else if route.pool.is_empty() {
                errors.push(FieldError::new(
                    path("pool"),
                    "a route needs a pool (or a composite)",
                ));
            } else if !self.pools.contains_key(&route.pool) {
                errors.push(FieldError::new(
                    path("pool"),
                    format!("unknown pool `{}`", route.pool),
                ));
            }
            if let Some(shadow) = &route.shadow {
                if !self.pools.contains_key(&shadow.pool) {
                    errors.push(FieldError::new(
                        path("shadow.pool"),
                        format!("unknown pool `{}`", shadow.pool),
                    ));
                }
                if !(0.0..=100.0).contains(&shadow.percent) {
                    errors.push(FieldError::new(
                        path("shadow.percent"),
                        format!("must be within 0..=100, got {}", shadow.percent),
                    ));
                }
            }
            if route.timeout.is_zero() {
                errors.push(FieldError::new(path("timeout"), "must be > 0, got 0s"));
            }
            for (h, name) in route.add_headers.keys().enumerate() {
                if http::HeaderName::from_bytes(name.as_bytes()).is_err() {
                    errors.push(FieldError::new(
                        path(&format!("add_headers.{name}")),
                        format!("`{name}` is not a header name (entry {h})"),
                    ));
                }
            }
            for (name, value) in &route.add_headers {
                if http::HeaderValue::from_str(value).is_err() {
                    errors.push(FieldError::new(
                        path(&format!("add_headers.{name}")),
                        "is not a valid header value",
                    ));
                }
            }
            for (h, name) in route.remove_headers.iter().enumerate() {
                if http::HeaderName::from_bytes(name.as_bytes()).is_err() {
                    errors.push(FieldError::new(
                        path(&format!("remove_headers.{h}")),
                        format!("`{name}` is not a header name"),
                    ));
                }
            }
            // The proxy frames each message itself: a route cannot set or drop its framing.
            let framing = |name: &str| {
                [
                    "content-length",
                    "transfer-encoding",
                    "connection",
                    "upgrade",
                ]
                .iter()
                .any(|f| name.eq_ignore_ascii_case(f))
            };
            for name in route.add_headers.keys().filter(|n| framing(n)) {
                errors.push(FieldError::new(
                    path(&format!("add_headers.{name}")),
                    format!("`{name}` frames the message; the proxy sets it"),
                ));
            }
            for (h, name) in route.remove_headers.iter().enumerate() {
                if framing(name) {
                    errors.push(FieldError::new(
                        path(&format!("remove_headers.{h}")),
                        format!("`{name}` frames the message; the proxy sets it"),
                    ));
                }
            }
        }
        for (name, pool) in &self.pools {
            validate_pool(name, pool, &mut errors);
        }
        FieldError::collect(errors)
    }
}

fn validate_composite(
    composite: &CompositeConfig,
    route: &RouteConfig,
    pools: &BTreeMap<String, PoolConfig>,
    path: &dyn Fn(&str) -> String,
    errors: &mut Vec<FieldError>,
) {
    if !route.pool.is_empty() {
        errors.push(FieldError::new(
            path("pool"),
            "a composite route takes its pools from composite.parts",
        ));
    }
    if route.shadow.is_some() {
        errors.push(FieldError::new(
            path("shadow"),
            "a composite route cannot be mirrored",
        ));
    }
    if composite.parts.is_empty() {
        errors.push(FieldError::new(
            path("composite.parts"),
            "needs at least one part",
        ));
    }
    if composite.max_part_bytes == 0 {
        errors.push(FieldError::new(
            path("composite.max_part_bytes"),
            "must be > 0, got 0",
        ));
    }
    for (name, part) in &composite.parts {
        let at = |key: &str| path(&format!("composite.parts.{name}.{key}"));
        if !pools.contains_key(&part.pool) {
            errors.push(FieldError::new(
                at("pool"),
                format!("unknown pool `{}`", part.pool),
            ));
        }
        if let Some(p) = &part.path
            && (!p.starts_with('/') || http::uri::PathAndQuery::try_from(p.as_str()).is_err())
        {
            errors.push(FieldError::new(
                at("path"),
                format!("must be a path starting with `/`, got `{p}`"),
            ));
        }
        if part.timeout.is_some_and(|t| t.is_zero()) {
            errors.push(FieldError::new(at("timeout"), "must be > 0, got 0s"));
        }
    }
}

/// `/api/` and `/api` match the same requests.
pub(crate) fn normalize_prefix(prefix: &str) -> String {
    let trimmed = prefix.trim_end_matches('/');
    if trimmed.is_empty() {
        "/".to_owned()
    } else {
        trimmed.to_owned()
    }
}

fn validate_pool(name: &str, pool: &PoolConfig, errors: &mut Vec<FieldError>) {
    let path = |key: &str| format!("pools.{name}.{key}");
    if pool.backends.is_empty() {
        errors.push(FieldError::new(
            path("backends"),
            "needs at least one backend",
        ));
    }
    let mut urls = BTreeSet::new();
    for (index, backend) in pool.backends.iter().enumerate() {
        match parse_backend_url(&backend.url) {
            Ok(BackendUrl { https, authority }) => {
                if https && pool.protocol == Protocol::H2c {
                    errors.push(FieldError::new(
                        path("protocol"),
                        format!(
                            "h2c is cleartext HTTP/2 but backend {index} is https://; use h2 (ALPN)"
                        ),
                    ));
                }
                if !urls.insert(authority.to_string()) {
                    errors.push(FieldError::new(
                        path(&format!("backends.{index}.url")),
                        format!("duplicates backend {authority}"),
                    ));
                }
            }
            Err(message) => errors.push(FieldError::new(
                path(&format!("backends.{index}.url")),
                message,
            )),
        }
        if backend.weight == 0 {
            errors.push(FieldError::new(
                path(&format!("backends.{index}.weight")),
                "must be > 0, got 0",
            ));
        }
    }
    match &pool.balance {
        Balance::Unknown(mode) => errors.push(FieldError::new(
            path("balance"),
            format!(
                "unknown balancing mode `{mode}`, expected round_robin, weighted, least_outstanding or consistent_hash"
            ),
        )),
        Balance::ConsistentHash if pool.hash_header.is_none() && pool.hash_cookie.is_none() => {
            errors.push(FieldError::new(
                path("hash_header"),
                "consistent_hash needs hash_header or hash_cookie",
            ))
        }
        _ => {}
    }
    if let Some(tls) = &pool.tls {
        crate::tls::validate(tls, &path, errors);
    }
    if let Some(check) = &pool.health_check {
        if !check.path.starts_with('/') {
            errors.push(FieldError::new(
                path("health_check.path"),
                format!("must start with `/`, got `{}`", check.path),
            ));
        }
        if check.interval.is_zero() {
            errors.push(FieldError::new(
                path("health_check.interval"),
                "must be > 0, got 0s",
            ));
        }
        if check.timeout.is_zero() {
            errors.push(FieldError::new(
                path("health_check.timeout"),
                "must be > 0, got 0s",
            ));
        }
        if check.unhealthy_threshold == 0 {
            errors.push(FieldError::new(
                path("health_check.unhealthy_threshold"),
                "must be > 0, got 0",
            ));
        }
        if check.healthy_threshold == 0 {
            errors.push(FieldError::new(
                path("health_check.healthy_threshold"),
                "must be > 0, got 0",
            ));
        }
        for (index, status) in check.expected_statuses.iter().enumerate() {
            if !(100..=599).contains(status) {
                errors.push(FieldError::new(
                    path(&format!("health_check.expected_statuses.{index}")),
                    format!("`{status}` is not an HTTP status"),
                ));
            }
        }
    }
}
