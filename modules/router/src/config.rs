//! The sections the router reads: `router` (its own), `admin` and `health`.

use std::collections::BTreeMap;
use std::time::Duration;

use http::{HeaderName, HeaderValue, Method};
use modular_core::health::{DEFAULT_PROVIDER_TIMEOUT, DetailsPolicy, ProviderConfig};
use modular_core::{DynamicConfig, FieldError, Secret};
use serde::{Deserialize, Serialize};

/// The `router` configuration section.
///
/// Every field is dynamic: a reload builds a whole new router (routes, toggles and middleware)
/// aside and swaps it in at once, so nothing the router owns needs a restart. Requests already
/// running finish on the router they started on.
///
/// | field | what it does |
/// |---|---|
/// | `request_timeout` | a request to a contributed route that has not answered by then gets `503 Service Unavailable` (the built-in health and admin endpoints are exempt); `0s` turns the timeout off |
/// | `body_limit` | the largest request body in bytes (`413 Payload Too Large` beyond it); unset leaves only the HTTP server's `max_body_size` |
/// | `compression` | gzip, brotli or zstd responses, as the client's `Accept-Encoding` prefers |
/// | `request_id_header` | the header that carries the request id (set when absent, echoed in the response) |
/// | `cors` | allowed origins, methods and headers; no origins means no CORS headers at all |
/// | `security_headers` | `X-Content-Type-Options: nosniff`, `X-Frame-Options`, `Referrer-Policy` on every answer (a header the handler set is kept), and `Strict-Transport-Security` when `hsts.enabled` |
/// | `limits` | concurrency and rate limits of the contributed routes (`global`, and `routes` by route path as registered): over the rate a request is answered `429`, over the concurrency `503`, both with `Retry-After`; health and admin endpoints are exempt |
/// | `routes` | toggles by route path as registered (`/orders/{id}`): a disabled route answers `disabled_status` |
/// | `health.timeout`, `health.optional` | the router's own health registration (component `router:routes`), replaced at the reload commit; not the top-level `health` section, which configures the aggregator and its endpoints |
///
/// ```yaml
/// router:
///   request_timeout: 30s
///   body_limit: 1048576
///   compression: true
///   request_id_header: x-request-id
///   cors:
///     allowed_origins: ["https://app.example.com"]
///     allowed_methods: [GET, POST]
///     allowed_headers: [content-type, authorization]
///     allow_credentials: false
///     max_age: 10m
///   security_headers:
///     enabled: true
///     frame_options: deny            # deny | sameorigin | off
///     referrer_policy: no-referrer   # "" leaves the header out
///     hsts:
///       enabled: false               # set it when the app is served over TLS
///       max_age: 365days
///       include_subdomains: true
///   limits:
///     global:
///       concurrency: 100              # requests in flight at once; more answer 503
///       rate: {requests: 50, per: 1s} # more answer 429
///     routes:
///       /orders/{id}:
///         rate: {requests: 5, per: 1s}
///   routes:
///     /orders/{id}:
///       enabled: false
///       disabled_status: 503
///   health:
///     timeout: 200ms     # the router check's deadline (default 200ms); > 0s, at most 60s
///     optional: false
/// ```
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, DynamicConfig)]
#[serde(deny_unknown_fields, default)]
#[config(validate = "Self::validate_config")]
pub struct RouterConfig {
    /// How long a request to a contributed route may take before it is answered `503` (health
    /// and admin endpoints are exempt); `0s` means no limit.
    #[config(dynamic)]
    #[serde(with = "humantime_serde")]
    pub request_timeout: Duration,
    /// The largest request body in bytes; unset leaves the HTTP server's limit alone.
    #[config(dynamic)]
    pub body_limit: Option<u64>,
    /// Whether responses are compressed (gzip, brotli or zstd, by the client's
    /// `Accept-Encoding`).
    #[config(dynamic)]
    pub compression: bool,
    /// The request id header.
    #[config(dynamic)]
    pub request_id_header: String,
    /// Cross-origin resource sharing.
    #[config(nested)]
    pub cors: CorsConfig,
    /// Security headers added to every answer.
    #[config(nested)]
    pub security_headers: SecurityHeadersConfig,
    /// Rate and concurrency limits of the contributed routes, global and per route.
    #[config(nested)]
    pub limits: LimitsConfig,
    /// Route toggles, keyed by route path as registered.
    #[config(nested, dynamic)]
    pub routes: BTreeMap<String, RouteToggle>,
    /// The router's health registration: the check's deadline (default
    /// [`DEFAULT_HEALTH_TIMEOUT`]) and whether a degraded or unbuilt router leaves readiness
    /// alone. Dynamic.
    #[config(nested)]
    pub health: ProviderConfig,
}

/// The router's health registration deadline when `router.health.timeout` is unset: the
/// aggregator's default; the check only reads the last build's summary.
pub const DEFAULT_HEALTH_TIMEOUT: std::time::Duration = DEFAULT_PROVIDER_TIMEOUT;

impl Default for RouterConfig {
    fn default() -> Self {
        Self {
            request_timeout: Duration::from_secs(30),
            body_limit: None,
            compression: true,
            request_id_header: "x-request-id".to_owned(),
            cors: CorsConfig::default(),
            security_headers: SecurityHeadersConfig::default(),
            limits: LimitsConfig::default(),
            routes: BTreeMap::new(),
            health: ProviderConfig::default(),
        }
    }
}

impl RouterConfig {
    fn validate_config(&self) -> Result<(), Vec<FieldError>> {
        let mut errors = Vec::new();
        if HeaderName::from_bytes(self.request_id_header.as_bytes()).is_err() {
            errors.push(FieldError::new(
                "request_id_header",
                format!(
                    "must be a valid header name, got {:?}",
                    self.request_id_header
                ),
            ));
        }
        if self.body_limit == Some(0) {
            errors.push(FieldError::new("body_limit", "must be > 0, got 0"));
        }
        for path in self.limits.routes.keys() {
            if !path.starts_with('/') {
                errors.push(FieldError::new(
                    format!("limits.routes.{path}"),
                    format!("must be a route path starting with '/', got {path:?}"),
                ));
            }
        }
        for path in self.routes.keys() {
            if !path.starts_with('/') {
                errors.push(FieldError::new(
                    format!("routes.{path}"),
                    format!("must be a route path starting with '/', got {path:?}"),
                ));
            }
        }
        FieldError::collect(errors)
    }

    /// Whether `path` is disabled, and the status it then answers.
    pub fn disabled_status(&self, path: &str) -> Option<u16> {
        self.routes
            .get(path)
            .filter(|toggle| !toggle.enabled)
            .map(|toggle| toggle.disabled_status)
    }
}

/// `router.cors`: which cross-origin requests browsers may make. All fields dynamic.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, DynamicConfig)]
#[serde(deny_unknown_fields, default)]
#[config(validate = "Self::validate_config")]
pub struct CorsConfig {
    /// Exact origins (`https://app.example.com`), or `["*"]` for any. Empty turns CORS off.
    #[config(dynamic)]
    pub allowed_origins: Vec<String>,
    /// Methods allowed in cross-origin requests (`["*"]` for any, not with credentials).
    #[config(dynamic)]
    pub allowed_methods: Vec<String>,
    /// Request headers allowed in cross-origin requests (`["*"]` for any, not with
    /// credentials).
    #[config(dynamic)]
    pub allowed_headers: Vec<String>,
    /// Response headers scripts may read (`["*"]` for any, not with credentials).
    #[config(dynamic)]
    pub exposed_headers: Vec<String>,
    /// Whether cookies and credentials may be sent (not with a `*` origin, method or header
    /// list).
    #[config(dynamic)]
    pub allow_credentials: bool,
    /// How long browsers may cache a preflight answer.
    #[config(dynamic)]
    #[serde(with = "humantime_serde")]
    pub max_age: Option<Duration>,
}

impl Default for CorsConfig {
    fn default() -> Self {
        Self {
            allowed_origins: Vec::new(),
            allowed_methods: vec!["GET".to_owned(), "HEAD".to_owned(), "POST".to_owned()],
            allowed_headers: Vec::new(),
            exposed_headers: Vec::new(),
            allow_credentials: false,
            max_age: None,
        }
    }
}

impl CorsConfig {
    fn validate_config(&self) -> Result<(), Vec<FieldError>> {
        let mut errors = Vec::new();
        let any_origin = self.allowed_origins.iter().any(|o| o == "*");
        for (i, origin) in self.allowed_origins.iter().enumerate() {
            let valid = origin == "*"
                || ((origin.starts_with("http://") || origin.starts_with("https://"))
                    && !origin.ends_with('/')
                    && HeaderValue::from_str(origin).is_ok());
            if !valid {
                errors.push(FieldError::new(
                    format!("allowed_origins.{i}"),
                    format!("must be \"*\" or scheme://host[:port] without a trailing slash, got {origin:?}"),
                ));
            }
        }
        if any_origin && self.allowed_origins.len() > 1 {
            errors.push(FieldError::new(
                "allowed_origins",
                "\"*\" must be the only origin when present",
            ));
        }
        if any_origin && self.allow_credentials {
            errors.push(FieldError::new(
                "allow_credentials",
                "must be false when allowed_origins is \"*\" (browsers refuse credentials for any origin)",
            ));
        }
        // Browsers refuse credentials with any wildcard answer, and tower-http asserts on the
        // combination; each list is named so the user sees which one to spell out.
        if self.allow_credentials {
            for (field, list) in [
                ("allowed_methods", &self.allowed_methods),
                ("allowed_headers", &self.allowed_headers),
                ("exposed_headers", &self.exposed_headers),
            ] {
                if list.iter().any(|v| v == "*") {
                    errors.push(FieldError::new(
                        field,
                        "must not be [\"*\"] when allow_credentials is true (browsers refuse credentials with a wildcard); list the values",
                    ));
                }
            }
        }
        for (i, method) in self.allowed_methods.iter().enumerate() {
            if method != "*" && Method::from_bytes(method.as_bytes()).is_err() {
                errors.push(FieldError::new(
                    format!("allowed_methods.{i}"),
                    format!("must be an HTTP method, got {method:?}"),
                ));
            }
        }
        for (field, list) in [
            ("allowed_headers", &self.allowed_headers),
            ("exposed_headers", &self.exposed_headers),
        ] {
            for (i, name) in list.iter().enumerate() {
                if name != "*" && HeaderName::from_bytes(name.as_bytes()).is_err() {
                    errors.push(FieldError::new(
                        format!("{field}.{i}"),
                        format!("must be a header name, got {name:?}"),
                    ));
                }
            }
        }
        FieldError::collect(errors)
    }
}

/// `router.security_headers`: headers added to every answer the router gives (a header the
/// handler set itself is left alone). All fields dynamic: they are part of the middleware stack
/// a reload rebuilds.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, DynamicConfig)]
#[serde(deny_unknown_fields, default)]
#[config(validate = "Self::validate_config")]
pub struct SecurityHeadersConfig {
    /// Whether any of them is added. On by default.
    #[config(dynamic)]
    pub enabled: bool,
    /// `X-Frame-Options`: `deny` (the default), `sameorigin`, or `off` (no header).
    #[config(dynamic)]
    pub frame_options: FrameOptions,
    /// `Referrer-Policy` (default `no-referrer`); empty leaves the header out.
    #[config(dynamic)]
    pub referrer_policy: String,
    /// `Strict-Transport-Security`.
    #[config(nested)]
    pub hsts: HstsConfig,
}

impl Default for SecurityHeadersConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            frame_options: FrameOptions::Deny,
            referrer_policy: "no-referrer".to_owned(),
            hsts: HstsConfig::default(),
        }
    }
}

impl SecurityHeadersConfig {
    fn validate_config(&self) -> Result<(), Vec<FieldError>> {
        if HeaderValue::from_str(&self.referrer_policy).is_err() {
            return Err(vec![FieldError::new(
                "referrer_policy",
                format!(
                    "must be a valid header value, got {:?}",
                    self.referrer_policy
                ),
            )]);
        }
        Ok(())
    }
}

/// `X-Frame-Options`: who may put the answers in a frame.
///
/// Written `deny`, `sameorigin` or `off` (any case); YAML reads a bare `off` as `false`, so
/// `false` means `off` too.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum FrameOptions {
    /// `DENY`: nobody.
    #[default]
    Deny,
    /// `SAMEORIGIN`: pages of the same origin.
    Sameorigin,
    /// No header.
    Off,
}

impl<'de> Deserialize<'de> for FrameOptions {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Written {
            Flag(bool),
            Name(String),
        }
        match Written::deserialize(deserializer)? {
            Written::Flag(false) => Ok(Self::Off),
            Written::Flag(true) => Ok(Self::Deny),
            Written::Name(name) => match name.to_ascii_lowercase().as_str() {
                "deny" => Ok(Self::Deny),
                "sameorigin" => Ok(Self::Sameorigin),
                "off" => Ok(Self::Off),
                _ => Err(serde::de::Error::custom(format!(
                    "expected deny, sameorigin or off, got {name:?}"
                ))),
            },
        }
    }
}

/// `router.security_headers.hsts`: `Strict-Transport-Security`. All fields dynamic.
///
/// Opt-in: the header is only meaningful over TLS, and the router cannot tell per request
/// whether it was (the HTTP server marks no request as TLS, and a TLS-terminating proxy in
/// front is invisible to it). Enable it when the application is reached over HTTPS only.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, DynamicConfig)]
#[serde(deny_unknown_fields, default)]
#[config(validate = "Self::validate_config")]
pub struct HstsConfig {
    /// Whether the header is sent. Off by default.
    #[config(dynamic)]
    pub enabled: bool,
    /// How long browsers remember to use HTTPS only (default 365 days); whole seconds.
    #[config(dynamic)]
    #[serde(with = "humantime_serde")]
    pub max_age: Duration,
    /// Whether subdomains are covered (`includeSubDomains`). On by default.
    #[config(dynamic)]
    pub include_subdomains: bool,
}

impl Default for HstsConfig {
    fn default() -> Self {
        Self {
            enabled: false,
            max_age: Duration::from_secs(365 * 24 * 60 * 60),
            include_subdomains: true,
        }
    }
}

impl HstsConfig {
    fn validate_config(&self) -> Result<(), Vec<FieldError>> {
        if self.enabled && self.max_age.as_secs() == 0 {
            return Err(vec![FieldError::new(
                "max_age",
                "must be at least 1s when hsts is enabled, got 0s",
            )]);
        }
        Ok(())
    }

    /// The header's value, when enabled.
    pub fn header_value(&self) -> Option<String> {
        self.enabled.then(|| {
            let mut value = format!("max-age={}", self.max_age.as_secs());
            if self.include_subdomains {
                value.push_str("; includeSubDomains");
            }
            value
        })
    }
}

/// `router.limits`: the contributed routes' limits. All fields dynamic: the limiters are part
/// of the router a reload rebuilds (their counts start afresh with the new router; requests in
/// flight keep the permits of the old one).
///
/// The built-in health, metrics and admin endpoints are never limited: an overload must not
/// fail a liveness probe or lock the operator out.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, DynamicConfig)]
#[serde(deny_unknown_fields, default)]
pub struct LimitsConfig {
    /// Limits shared by every contributed route.
    #[config(nested)]
    pub global: LimitConfig,
    /// Limits of one route each, keyed by route path as registered (`/orders/{id}`).
    #[config(nested, dynamic)]
    pub routes: BTreeMap<String, LimitConfig>,
}

/// One set of limits (`router.limits.global`, `router.limits.routes.<path>`). All fields
/// dynamic.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, DynamicConfig)]
#[serde(deny_unknown_fields, default)]
#[config(validate = "Self::validate_config")]
pub struct LimitConfig {
    /// Requests handled at once; one more is answered `503` with `Retry-After: 1` (load
    /// shedding: it is refused at once, never queued). Unset: no limit.
    #[config(dynamic)]
    pub concurrency: Option<u32>,
    /// Requests per period (a token bucket holding `requests`, refilled evenly over `per`);
    /// one more is answered `429` with `Retry-After` (seconds until a token is back). Unset:
    /// no limit.
    #[config(dynamic)]
    pub rate: Option<RateConfig>,
}

impl LimitConfig {
    fn validate_config(&self) -> Result<(), Vec<FieldError>> {
        let mut errors = Vec::new();
        if self.concurrency == Some(0) {
            errors.push(FieldError::new("concurrency", "must be > 0, got 0"));
        }
        if let Some(rate) = &self.rate {
            if rate.requests == 0 {
                errors.push(FieldError::new("rate.requests", "must be > 0, got 0"));
            }
            if rate.per.is_zero() {
                errors.push(FieldError::new("rate.per", "must be > 0s, got 0s"));
            }
        }
        FieldError::collect(errors)
    }

    /// Whether any limit is set.
    pub fn is_limited(&self) -> bool {
        self.concurrency.is_some() || self.rate.is_some()
    }
}

/// A rate: `requests` per `per`.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RateConfig {
    /// How many requests, which is also the burst allowed after a quiet period.
    pub requests: u32,
    /// Over how long.
    #[serde(with = "humantime_serde")]
    pub per: Duration,
}

/// `router.routes.<path>`: one route's toggle. All fields dynamic.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, DynamicConfig)]
#[serde(deny_unknown_fields, default)]
#[config(validate = "Self::validate_config")]
pub struct RouteToggle {
    /// Whether the route answers normally.
    #[config(dynamic)]
    pub enabled: bool,
    /// What a disabled route answers: `404` (as if absent) or `503` (temporarily off).
    #[config(dynamic)]
    pub disabled_status: u16,
}

impl Default for RouteToggle {
    fn default() -> Self {
        Self {
            enabled: true,
            disabled_status: 404,
        }
    }
}

impl RouteToggle {
    fn validate_config(&self) -> Result<(), Vec<FieldError>> {
        if matches!(self.disabled_status, 404 | 503) {
            Ok(())
        } else {
            Err(vec![FieldError::new(
                "disabled_status",
                format!("must be 404 or 503, got {}", self.disabled_status),
            )])
        }
    }
}

/// The shortest admin token accepted: 16 bytes keeps a guessed token out of reach.
pub const MIN_ADMIN_TOKEN_LEN: usize = 16;

/// The top-level `admin` section: the bearer token of `/admin/*`.
///
/// `token` is dynamic and read per request, so a rotated token takes effect with the next
/// request, and setting or clearing it mounts or unmounts `/admin` without a restart.
///
/// ```yaml
/// admin:
///   token: ${ADMIN_TOKEN}   # at least 16 bytes; or MODULAR_ADMIN__TOKEN in the environment
/// ```
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, DynamicConfig)]
#[serde(deny_unknown_fields, default)]
#[config(validate = "Self::validate_config")]
pub struct AdminConfig {
    /// The bearer token; empty means `/admin` is not mounted.
    #[config(dynamic)]
    pub token: Secret<String>,
}

impl AdminConfig {
    fn validate_config(&self) -> Result<(), Vec<FieldError>> {
        let len = self.token.expose().len();
        if len != 0 && len < MIN_ADMIN_TOKEN_LEN {
            return Err(vec![FieldError::new(
                "token",
                format!("must be at least {MIN_ADMIN_TOKEN_LEN} bytes, got {len}"),
            )]);
        }
        Ok(())
    }

    /// Whether a token is configured.
    pub fn is_enabled(&self) -> bool {
        !self.token.expose().is_empty()
    }
}

/// The top-level `health` section as the HTTP endpoints read it.
///
/// `show_details` is dynamic and read per request. Unset, the health aggregator's own option
/// applies (`when_authorized` unless the application was built otherwise).
///
/// ```yaml
/// health:
///   show_details: when_authorized   # never | when_authorized | always
/// ```
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, DynamicConfig)]
#[serde(deny_unknown_fields, default)]
pub struct HealthEndpointsConfig {
    /// Who sees check messages and details.
    #[config(dynamic)]
    pub show_details: Option<DetailsPolicy>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid() {
        assert!(RouterConfig::default().validate().is_ok());
        assert!(AdminConfig::default().validate().is_ok());
    }

    #[test]
    fn cors_rejects_trailing_slashes_and_credentials_with_any_origin() {
        let cors = CorsConfig {
            allowed_origins: vec!["*".to_owned()],
            allow_credentials: true,
            ..CorsConfig::default()
        };
        let errors = cors.validate().unwrap_err();
        assert_eq!(errors[0].path, "allow_credentials");
        let cors = CorsConfig {
            allowed_origins: vec!["https://a.example/".to_owned()],
            ..CorsConfig::default()
        };
        assert_eq!(cors.validate().unwrap_err()[0].path, "allowed_origins.0");
    }

    #[test]
    fn cors_rejects_credentials_with_any_wildcard_list() {
        for field in ["allowed_methods", "allowed_headers", "exposed_headers"] {
            let mut cors = CorsConfig {
                allowed_origins: vec!["https://a.example".to_owned()],
                allow_credentials: true,
                ..CorsConfig::default()
            };
            let list = match field {
                "allowed_methods" => &mut cors.allowed_methods,
                "allowed_headers" => &mut cors.allowed_headers,
                _ => &mut cors.exposed_headers,
            };
            *list = vec!["*".to_owned()];
            let errors = cors.validate().unwrap_err();
            assert_eq!(errors.len(), 1, "{errors:?}");
            assert_eq!(errors[0].path, field);
        }
    }

    #[test]
    fn toggles_answer_only_404_or_503() {
        let toggle = RouteToggle {
            enabled: false,
            disabled_status: 500,
        };
        let errors = toggle.validate().unwrap_err();
        assert_eq!(errors[0].message, "must be 404 or 503, got 500");
    }

    #[test]
    fn short_admin_tokens_are_rejected() {
        let admin = AdminConfig {
            token: Secret::new("short".to_owned()),
        };
        assert_eq!(
            admin.validate().unwrap_err()[0].message,
            "must be at least 16 bytes, got 5"
        );
    }
}
