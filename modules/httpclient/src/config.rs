//! [`HttpClientConfig`]: the `httpclient` section, its defaults and its validation.
//!
//! Every field is dynamic: a reload builds a new `reqwest::Client` from the new section and swaps
//! it in, so nothing here needs a restart. Each one is observed live by a test: the client's
//! settings (timeouts, pool, `user_agent`, `decompression`, `redirects`) by a request on the new
//! client (`tests/reload_request_timeout.rs`), the retry policy by the next request's retries.

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use modular_core::FieldError;
use modular_core::config::REDACTED;
use modular_core::health::ProviderConfig;
use reqwest::Method;
use reqwest::header::{HeaderName, HeaderValue};
use serde::{Deserialize, Serialize};

/// The most retries one request may make (`retry.max_retries`).
///
/// Beyond this a client hammers an upstream that is already failing; a higher value in the
/// config is a mistake, so it is rejected rather than clamped.
pub const MAX_RETRIES_CAP: u32 = 10;

/// The longest timeout a health probe may have (`health_probe[].timeout`).
///
/// The health provider is registered with this bound plus a margin
/// ([`DEFAULT_HEALTH_TIMEOUT`]), so every probe finishes (or times out on its own terms) before
/// the aggregator gives up on the provider.
pub const MAX_PROBE_TIMEOUT: Duration = Duration::from_secs(10);

/// The health registration's deadline when `health.timeout` is unset: [`MAX_PROBE_TIMEOUT`]
/// plus 500 ms.
pub const DEFAULT_HEALTH_TIMEOUT: Duration =
    MAX_PROBE_TIMEOUT.saturating_add(Duration::from_millis(500));

/// The most redirects one request may follow (`redirects.max`).
pub const MAX_REDIRECTS_CAP: usize = 50;

/// The largest body prefix verbose logging may print (`verbose.max_body_bytes`).
pub const MAX_LOGGED_BODY_BYTES: usize = 1024 * 1024;

/// The `httpclient` configuration section.
///
/// Every field is dynamic (the whole struct is marked `#[config(dynamic)]`): a change builds a
/// new client aside and swaps it in; requests already running finish on the client, timeouts
/// and retry policy they started with.
///
/// `default_headers` is sensitive (it often carries API keys), so its values are redacted in
/// diffs, reload events, `GET /admin/config` and this type's `Debug`. So is `health_probe`:
/// probe URLs may carry credentials (`https://user:pw@host/health?token=..`), and the derive
/// compares a list as a whole, so the whole list is redacted there (its `Debug` hides only the
/// URLs).
#[derive(Clone, PartialEq, Serialize, Deserialize, modular_core::DynamicConfig)]
#[serde(deny_unknown_fields, default)]
#[config(dynamic, validate = "Self::validate_config")]
pub struct HttpClientConfig {
    /// Total time one attempt may take, from sending the request to the end of the response
    /// body. A request overriding it with `RequestBuilder::timeout` keeps its own value.
    #[serde(with = "humantime_serde")]
    pub request_timeout: Duration,
    /// Time to establish a TCP (and TLS) connection.
    #[serde(with = "humantime_serde")]
    pub connect_timeout: Duration,
    /// How long an idle pooled connection is kept.
    #[serde(with = "humantime_serde")]
    pub pool_idle_timeout: Duration,
    /// Idle connections kept per host (0 turns pooling off).
    pub pool_max_idle_per_host: usize,
    /// The `User-Agent` header of every request.
    pub user_agent: String,
    /// Headers added to every request that does not set them itself.
    #[config(sensitive)]
    pub default_headers: BTreeMap<String, String>,
    /// Sends `Accept-Encoding: gzip, br, zstd` and decompresses answers in those encodings
    /// (the body then arrives decoded, without `Content-Encoding` and `Content-Length`).
    /// `false` leaves bodies as the server sent them. A request that sets `Accept-Encoding`
    /// itself keeps its value, and answers are still decoded when this is on.
    pub decompression: bool,
    /// Redirect policy.
    #[config(nested)]
    pub redirects: RedirectConfig,
    /// An HTTP proxy for every request (`proxy.url` is sensitive: it may carry credentials).
    #[config(nested)]
    pub proxy: ProxyConfig,
    /// Which servers are trusted (extra CA files) and the client certificate presented.
    #[config(nested)]
    pub tls: ClientTlsConfig,
    /// Retry policy for idempotent requests.
    #[config(nested)]
    pub retry: RetryConfig,
    /// Request and response logging.
    #[config(nested)]
    pub verbose: VerboseConfig,
    /// Named clients (`clients.payments`), each with its own base URL, headers, timeouts and
    /// retry policy over the settings above; see [`NamedClientConfig`].
    #[config(nested)]
    pub clients: BTreeMap<String, NamedClientConfig>,
    /// Upstream URLs the health check requests (sensitive: URLs may carry credentials).
    #[config(sensitive)]
    pub health_probe: Vec<HealthProbeConfig>,
    /// The health registration: the aggregator's deadline for the whole check (default
    /// [`DEFAULT_HEALTH_TIMEOUT`]; probes are cut to what remains of it) and whether a failing
    /// client leaves readiness alone. Replaced at the reload commit.
    #[config(nested)]
    pub health: ProviderConfig,
}

impl fmt::Debug for HttpClientConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let headers = redacted_values(&self.default_headers);
        f.debug_struct("HttpClientConfig")
            .field("request_timeout", &self.request_timeout)
            .field("connect_timeout", &self.connect_timeout)
            .field("pool_idle_timeout", &self.pool_idle_timeout)
            .field("pool_max_idle_per_host", &self.pool_max_idle_per_host)
            .field("user_agent", &self.user_agent)
            .field("default_headers", &headers)
            .field("decompression", &self.decompression)
            .field("redirects", &self.redirects)
            .field("proxy", &self.proxy)
            .field("tls", &self.tls)
            .field("retry", &self.retry)
            .field("verbose", &self.verbose)
            .field("clients", &self.clients)
            .field("health_probe", &self.health_probe)
            .field("health", &self.health)
            .finish()
    }
}

impl Default for HttpClientConfig {
    fn default() -> Self {
        Self {
            request_timeout: Duration::from_secs(30),
            connect_timeout: Duration::from_secs(10),
            pool_idle_timeout: Duration::from_secs(90),
            pool_max_idle_per_host: 32,
            user_agent: concat!("modular-httpclient/", env!("CARGO_PKG_VERSION")).to_owned(),
            default_headers: BTreeMap::new(),
            decompression: true,
            redirects: RedirectConfig::default(),
            proxy: ProxyConfig::default(),
            tls: ClientTlsConfig::default(),
            retry: RetryConfig::default(),
            verbose: VerboseConfig::default(),
            clients: BTreeMap::new(),
            health_probe: Vec::new(),
            health: ProviderConfig::default(),
        }
    }
}

/// `httpclient.clients.<name>`: a named client, for one upstream.
///
/// A named client starts from every setting of the `httpclient` section and replaces those it
/// sets: `request_timeout`, `connect_timeout`, `user_agent` and `retry` replace the section's
/// values, and `default_headers` are added to the section's (a name in both takes this
/// client's value). `base_url` lets requests name a path only (`client.get("/v1/orders")`). Each
/// named client has its own connection pool, and is rebuilt with the others on every reload
/// that changes the section; a handle from [`HttpClient::named`](crate::HttpClient::named)
/// follows those rebuilds. The name is the `client` label of its metrics (`default` is the
/// section's own client, so it cannot name one).
///
/// ```yaml
/// httpclient:
///   request_timeout: 30s
///   clients:
///     payments:
///       base_url: https://payments.internal/api/
///       request_timeout: 5s
///       default_headers: { x-api-key: "..." }   # sensitive
///       retry: { max_retries: 0 }
/// ```
#[derive(Clone, Default, PartialEq, Serialize, Deserialize, modular_core::DynamicConfig)]
#[serde(deny_unknown_fields, default)]
pub struct NamedClientConfig {
    /// The URL a path-only request is resolved against: an absolute `http` or `https` URL
    /// without credentials or query (put those in `default_headers`). A path starting with `/`
    /// replaces the base's path; one without keeps the base's path up to its last `/`.
    pub base_url: Option<String>,
    /// Headers added to every request of this client, over the section's (sensitive).
    #[config(sensitive)]
    pub default_headers: BTreeMap<String, String>,
    /// Replaces the section's `request_timeout`.
    #[serde(with = "humantime_serde")]
    pub request_timeout: Option<Duration>,
    /// Replaces the section's `connect_timeout`.
    #[serde(with = "humantime_serde")]
    pub connect_timeout: Option<Duration>,
    /// Replaces the section's `user_agent`.
    pub user_agent: Option<String>,
    /// Replaces the section's whole `retry` policy.
    pub retry: Option<RetryConfig>,
}

impl fmt::Debug for NamedClientConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let headers = redacted_values(&self.default_headers);
        f.debug_struct("NamedClientConfig")
            .field("base_url", &self.base_url)
            .field("default_headers", &headers)
            .field("request_timeout", &self.request_timeout)
            .field("connect_timeout", &self.connect_timeout)
            .field("user_agent", &self.user_agent)
            .field("retry", &self.retry)
            .finish()
    }
}

impl HttpClientConfig {
    /// The settings the named client `name` runs with: this section with that client's values
    /// over it, without named clients or health probes of its own. `None` when no client has
    /// that name.
    pub fn named(&self, name: &str) -> Option<HttpClientConfig> {
        let named = self.clients.get(name)?;
        let mut settings = self.clone();
        settings.clients = BTreeMap::new();
        settings.health_probe = Vec::new();
        settings.default_headers.extend(
            named
                .default_headers
                .iter()
                .map(|(k, v)| (k.clone(), v.clone())),
        );
        if let Some(timeout) = named.request_timeout {
            settings.request_timeout = timeout;
        }
        if let Some(timeout) = named.connect_timeout {
            settings.connect_timeout = timeout;
        }
        if let Some(agent) = &named.user_agent {
            settings.user_agent.clone_from(agent);
        }
        if let Some(retry) = &named.retry {
            settings.retry = retry.clone();
        }
        Some(settings)
    }

    fn check_named_clients(&self, errors: &mut Vec<FieldError>) {
        for (name, named) in &self.clients {
            let at = |field: &str| format!("clients.{name}.{field}");
            if name.trim().is_empty() || name == crate::metrics::DEFAULT_CLIENT {
                errors.push(FieldError::new(
                    format!("clients.{name}"),
                    format!(
                        "`{name}` cannot name a client (empty, or `{}`, the section's own)",
                        crate::metrics::DEFAULT_CLIENT
                    ),
                ));
            }
            if let Some(base) = &named.base_url {
                match probe_url(base) {
                    Err(message) => errors.push(FieldError::new(at("base_url"), message)),
                    Ok(url) if !url.username().is_empty() || url.password().is_some() => {
                        errors.push(FieldError::new(
                            at("base_url"),
                            "must not carry credentials; put them in `default_headers`",
                        ));
                    }
                    Ok(url) if url.query().is_some() || url.fragment().is_some() => {
                        errors.push(FieldError::new(
                            at("base_url"),
                            "must not carry a query or a fragment",
                        ));
                    }
                    Ok(_) => {}
                }
            }
            // The effective settings are validated whole; a problem in a field this client
            // sets is reported under its own path (the others are the section's, reported
            // there already).
            let Some(settings) = self.named(name) else {
                continue;
            };
            let own = |path: &str| {
                let top = path.split('.').next().unwrap_or(path);
                match top {
                    "request_timeout" => named.request_timeout.is_some(),
                    "connect_timeout" => named.connect_timeout.is_some(),
                    "user_agent" => named.user_agent.is_some(),
                    "retry" => named.retry.is_some(),
                    "default_headers" => path
                        .strip_prefix("default_headers.")
                        .is_some_and(|header| named.default_headers.contains_key(header)),
                    _ => false,
                }
            };
            if let Err(found) = settings.validate_own_fields() {
                errors.extend(
                    found
                        .into_iter()
                        .filter(|e| own(&e.path))
                        .map(|e| FieldError::new(at(&e.path), e.message)),
                );
            }
        }
    }
}

/// `httpclient.retry`: which requests are retried and how long to wait between attempts.
///
/// Only idempotent methods (GET, HEAD, OPTIONS, PUT, DELETE, TRACE) are retried, and only after a
/// connect error, a timeout, a connection reset or closed before the answer was complete, or a
/// 429, 502, 503 or 504 answer. Attempt `n` (from 0) waits `min(max_delay, base_delay * 2^n)`,
/// minus up to `jitter` of it at random. A `Retry-After` header (seconds or an HTTP date)
/// replaces the computed delay and is honoured in full up to `max_retry_after` (even beyond
/// `max_delay`); an answer asking for longer is returned as it is, since retrying earlier than
/// the server asked would only earn another refusal. No retry starts when its delay would end
/// more than `max_elapsed` after the first attempt was sent: the last answer or error is
/// returned instead. An attempt already running is bounded by `request_timeout` only.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, modular_core::DynamicConfig)]
#[serde(deny_unknown_fields, default)]
pub struct RetryConfig {
    /// Retries after the first attempt (0 turns retries off), at most [`MAX_RETRIES_CAP`].
    pub max_retries: u32,
    /// The delay before the first retry.
    #[serde(with = "humantime_serde")]
    pub base_delay: Duration,
    /// The longest computed delay between two attempts.
    #[serde(with = "humantime_serde")]
    pub max_delay: Duration,
    /// The longest `Retry-After` waited for; at least `max_delay`. A longer one ends the
    /// retries and the answer is returned.
    #[serde(with = "humantime_serde")]
    pub max_retry_after: Duration,
    /// The total time a request may spend in retries, counted from its first attempt: a retry
    /// whose delay would end later is not made.
    #[serde(with = "humantime_serde")]
    pub max_elapsed: Duration,
    /// The fraction of each computed delay that is randomised, from 0 (none) to 1: the delay is
    /// drawn from `[delay * (1 - jitter), delay]`, so clients that failed together spread out.
    pub jitter: f64,
}

impl Default for RetryConfig {
    fn default() -> Self {
        Self {
            max_retries: 2,
            base_delay: Duration::from_millis(100),
            max_delay: Duration::from_secs(10),
            max_retry_after: Duration::from_secs(60),
            max_elapsed: Duration::from_secs(120),
            jitter: 0.2,
        }
    }
}

/// `httpclient.redirects`: which redirects are followed.
///
/// Up to `max` redirects are followed (0 follows none: the 3xx answer is returned as it is);
/// one more is an error (`too many redirects`). A redirect to another host drops the
/// `Authorization`, `Cookie` and `Proxy-Authorization` headers (reqwest's rule).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, modular_core::DynamicConfig)]
#[serde(deny_unknown_fields, default)]
pub struct RedirectConfig {
    /// The most redirects followed per request, at most [`MAX_REDIRECTS_CAP`].
    pub max: usize,
}

impl Default for RedirectConfig {
    fn default() -> Self {
        Self { max: 10 }
    }
}

/// `httpclient.proxy`: send requests through an HTTP proxy.
///
/// With `url` set, every request (health probes included) goes through that proxy, except those
/// to a host matched by `no_proxy`; `https` targets are tunnelled with `CONNECT`. Userinfo in
/// the URL (`http://user:pw@proxy:3128`) becomes the `Proxy-Authorization` header. Unset (the
/// default), reqwest's environment rule applies: `HTTP_PROXY`, `HTTPS_PROXY`, `ALL_PROXY` and
/// `NO_PROXY`.
#[derive(Clone, Default, PartialEq, Serialize, Deserialize, modular_core::DynamicConfig)]
#[serde(deny_unknown_fields, default)]
pub struct ProxyConfig {
    /// An absolute `http` or `https` proxy URL (sensitive).
    #[config(sensitive)]
    pub url: Option<String>,
    /// Hosts reached directly when `url` is set: a host name (`internal.example`, matching its subdomains too),
    /// `.example` for subdomains only, an IP address or a CIDR range (`10.0.0.0/8`), `*` for
    /// every host.
    pub no_proxy: Vec<String>,
}

impl fmt::Debug for ProxyConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ProxyConfig")
            .field("url", &self.url.as_ref().map(|_| REDACTED))
            .field("no_proxy", &self.no_proxy)
            .finish()
    }
}

/// `httpclient.tls`: the certificate authorities the client trusts and the certificate it
/// presents to servers that ask for one (mutual TLS).
///
/// By default the platform's roots are trusted (the operating system's store, through
/// rustls-platform-verifier). `ca_files` adds PEM bundles of private CAs to them, or replaces
/// them with `ca_only: true`. `client_cert_file` (a PEM chain, leaf first) and
/// `client_key_file` (its PEM private key: PKCS#8, PKCS#1 or SEC1) are set together. The files
/// are read when the client is built, at start and on each reload that changes this section or
/// any other client setting: replacing the files on disk takes effect with the next reload. A
/// file that cannot be read or parsed fails the build or the reload with its key path; the
/// running client is kept.
///
/// ```yaml
/// httpclient:
///   tls:
///     ca_files: [/etc/modular/internal-ca.pem]
///     client_cert_file: /etc/modular/client.crt
///     client_key_file: /etc/modular/client.key
/// ```
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, modular_core::DynamicConfig)]
#[serde(deny_unknown_fields, default)]
pub struct ClientTlsConfig {
    /// PEM files of CA certificates trusted besides (or, with `ca_only`, instead of) the
    /// platform's roots.
    pub ca_files: Vec<PathBuf>,
    /// Trust only `ca_files`, not the platform's roots.
    pub ca_only: bool,
    /// The client certificate chain (PEM), presented when a server asks for one.
    pub client_cert_file: Option<PathBuf>,
    /// The client certificate's private key (PEM).
    pub client_key_file: Option<PathBuf>,
}

impl ClientTlsConfig {
    fn check(&self, errors: &mut Vec<FieldError>) {
        if self.ca_only && self.ca_files.is_empty() {
            errors.push(FieldError::new(
                "tls.ca_only",
                "trusting only `tls.ca_files` needs at least one file there",
            ));
        }
        match (&self.client_cert_file, &self.client_key_file) {
            (Some(_), None) => errors.push(FieldError::new(
                "tls.client_key_file",
                "a client certificate needs its key: set `tls.client_key_file` too",
            )),
            (None, Some(_)) => errors.push(FieldError::new(
                "tls.client_cert_file",
                "a client key needs its certificate: set `tls.client_cert_file` too",
            )),
            _ => {}
        }
    }
}

/// `httpclient.verbose`: log every request and response.
///
/// Events are emitted at `INFO` with target `modular_httpclient::verbose`. Header values of
/// `authorization`, `proxy-authorization`, `cookie`, `set-cookie` and every name in
/// `redact_headers` are replaced by `[REDACTED]`; bodies are cut after `max_body_bytes`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, modular_core::DynamicConfig)]
#[serde(deny_unknown_fields, default)]
pub struct VerboseConfig {
    /// Turns logging on.
    pub enabled: bool,
    /// More header names whose values are never logged (case-insensitive).
    pub redact_headers: Vec<String>,
    /// The longest body prefix printed (0 prints no body), at most [`MAX_LOGGED_BODY_BYTES`].
    pub max_body_bytes: usize,
}

impl Default for VerboseConfig {
    fn default() -> Self {
        Self {
            enabled: false,
            redact_headers: Vec::new(),
            max_body_bytes: 1024,
        }
    }
}

/// One upstream the health check requests (`httpclient.health_probe[]`).
///
/// Healthy when the answer's status is expected; unhealthy when the upstream cannot be reached,
/// does not answer within `timeout`, or answers another status. An `optional` probe reports
/// degraded instead of unhealthy, so it never fails readiness.
///
/// `url` is sensitive (it may carry a password or a token in its query): it is redacted in this
/// type's `Debug` and `redact_json`, and validation messages never repeat it.
#[derive(Clone, PartialEq, Serialize, Deserialize, modular_core::DynamicConfig)]
#[serde(deny_unknown_fields)]
#[config(dynamic)]
pub struct HealthProbeConfig {
    /// The component name in health reports (`probe.<name>`); unique among probes.
    pub name: String,
    /// An absolute `http` or `https` URL.
    #[config(sensitive)]
    pub url: String,
    /// `GET` (default) or `HEAD`.
    #[serde(default = "default_probe_method")]
    pub method: String,
    /// Statuses that count as healthy; empty (the default) means any 2xx.
    #[serde(default)]
    pub expected_status: Vec<u16>,
    /// How long the probe may take (default 1 s), at most [`MAX_PROBE_TIMEOUT`].
    #[serde(default = "default_probe_timeout", with = "humantime_serde")]
    pub timeout: Duration,
    /// A failing optional probe reports degraded, not unhealthy.
    #[serde(default)]
    pub optional: bool,
}

impl fmt::Debug for HealthProbeConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HealthProbeConfig")
            .field("name", &self.name)
            .field("url", &REDACTED)
            .field("method", &self.method)
            .field("expected_status", &self.expected_status)
            .field("timeout", &self.timeout)
            .field("optional", &self.optional)
            .finish()
    }
}

fn default_probe_method() -> String {
    "GET".to_owned()
}

fn default_probe_timeout() -> Duration {
    Duration::from_secs(1)
}

impl HealthProbeConfig {
    /// A required `GET` probe of `url` that expects any 2xx within one second.
    pub fn new(name: impl Into<String>, url: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            url: url.into(),
            method: default_probe_method(),
            expected_status: Vec::new(),
            timeout: default_probe_timeout(),
            optional: false,
        }
    }

    /// Whether `status` counts as healthy.
    pub fn accepts(&self, status: u16) -> bool {
        if self.expected_status.is_empty() {
            (200..300).contains(&status)
        } else {
            self.expected_status.contains(&status)
        }
    }
}

impl HttpClientConfig {
    /// Every problem of this section, each with its path relative to the section.
    pub fn validate_config(&self) -> Result<(), Vec<FieldError>> {
        let mut errors = match self.validate_own_fields() {
            Ok(()) => Vec::new(),
            Err(errors) => errors,
        };
        self.check_named_clients(&mut errors);
        if errors.is_empty() {
            Ok(())
        } else {
            Err(errors)
        }
    }

    /// Every check but the named clients'.
    fn validate_own_fields(&self) -> Result<(), Vec<FieldError>> {
        let mut errors = Vec::new();
        positive(&mut errors, "request_timeout", self.request_timeout);
        positive(&mut errors, "connect_timeout", self.connect_timeout);
        positive(&mut errors, "pool_idle_timeout", self.pool_idle_timeout);
        if let Err(error) = HeaderValue::from_str(&self.user_agent) {
            errors.push(FieldError::new(
                "user_agent",
                format!("is not a valid header value: {error}"),
            ));
        }
        for (name, value) in &self.default_headers {
            let path = format!("default_headers.{name}");
            if let Err(error) = HeaderName::from_bytes(name.as_bytes()) {
                errors.push(FieldError::new(
                    path.clone(),
                    format!("`{name}` is not a valid header name: {error}"),
                ));
            }
            // The value is not echoed: default headers often carry credentials.
            if HeaderValue::from_str(value).is_err() {
                errors.push(FieldError::new(path, "is not a valid header value"));
            }
        }
        if self.redirects.max > MAX_REDIRECTS_CAP {
            errors.push(FieldError::new(
                "redirects.max",
                format!(
                    "must be at most {MAX_REDIRECTS_CAP}, got {}",
                    self.redirects.max
                ),
            ));
        }
        if let Some(url) = &self.proxy.url
            && let Err(message) = probe_url(url)
        {
            errors.push(FieldError::new("proxy.url", message));
        }
        for (i, host) in self.proxy.no_proxy.iter().enumerate() {
            if host.trim().is_empty() || (host.contains([',', ' ', '/']) && !is_cidr(host)) {
                errors.push(FieldError::new(
                    format!("proxy.no_proxy.{i}"),
                    format!("must be a host, an ip address or a cidr range, got `{host}`"),
                ));
            }
        }
        self.tls.check(&mut errors);
        self.retry.check(&mut errors);
        self.verbose.check(&mut errors);
        check_probes(&self.health_probe, &mut errors);
        FieldError::collect(errors)
    }
}

impl RetryConfig {
    fn check(&self, errors: &mut Vec<FieldError>) {
        if self.max_retries > MAX_RETRIES_CAP {
            errors.push(FieldError::new(
                "retry.max_retries",
                format!(
                    "must be at most {MAX_RETRIES_CAP}, got {}",
                    self.max_retries
                ),
            ));
        }
        positive(errors, "retry.base_delay", self.base_delay);
        positive(errors, "retry.max_delay", self.max_delay);
        if self.max_delay < self.base_delay {
            errors.push(FieldError::new(
                "retry.max_delay",
                format!(
                    "must be at least retry.base_delay ({}), got {}",
                    show(self.base_delay),
                    show(self.max_delay)
                ),
            ));
        }
        if self.max_retry_after < self.max_delay {
            errors.push(FieldError::new(
                "retry.max_retry_after",
                format!(
                    "must be at least retry.max_delay ({}), got {}",
                    show(self.max_delay),
                    show(self.max_retry_after)
                ),
            ));
        }
        positive(errors, "retry.max_elapsed", self.max_elapsed);
        if !(0.0..=1.0).contains(&self.jitter) {
            errors.push(FieldError::new(
                "retry.jitter",
                format!("must be between 0 and 1, got {}", self.jitter),
            ));
        }
    }
}

impl VerboseConfig {
    fn check(&self, errors: &mut Vec<FieldError>) {
        for (i, name) in self.redact_headers.iter().enumerate() {
            if HeaderName::from_bytes(name.as_bytes()).is_err() {
                errors.push(FieldError::new(
                    format!("verbose.redact_headers.{i}"),
                    format!("`{name}` is not a valid header name"),
                ));
            }
        }
        if self.max_body_bytes > MAX_LOGGED_BODY_BYTES {
            errors.push(FieldError::new(
                "verbose.max_body_bytes",
                format!(
                    "must be at most {MAX_LOGGED_BODY_BYTES}, got {}",
                    self.max_body_bytes
                ),
            ));
        }
    }
}

fn check_probes(probes: &[HealthProbeConfig], errors: &mut Vec<FieldError>) {
    for (i, probe) in probes.iter().enumerate() {
        let at = |field: &str| format!("health_probe.{i}.{field}");
        if probe.name.trim().is_empty() {
            errors.push(FieldError::new(at("name"), "must not be empty"));
        } else if probes[..i].iter().any(|p| p.name == probe.name) {
            errors.push(FieldError::new(
                at("name"),
                format!("`{}` is used by an earlier probe", probe.name),
            ));
        }
        if let Err(message) = probe_url(&probe.url) {
            errors.push(FieldError::new(at("url"), message));
        }
        match probe_method(&probe.method) {
            Some(_) => {}
            None => errors.push(FieldError::new(
                at("method"),
                format!("must be GET or HEAD, got `{}`", probe.method),
            )),
        }
        for status in &probe.expected_status {
            if !(100..=599).contains(status) {
                errors.push(FieldError::new(
                    at("expected_status"),
                    format!("must hold HTTP statuses between 100 and 599, got {status}"),
                ));
            }
        }
        positive(errors, &at("timeout"), probe.timeout);
        if probe.timeout > MAX_PROBE_TIMEOUT {
            errors.push(FieldError::new(
                at("timeout"),
                format!(
                    "must be at most {}, got {}",
                    show(MAX_PROBE_TIMEOUT),
                    show(probe.timeout)
                ),
            ));
        }
    }
}

/// Parses a probe URL: absolute, `http` or `https`, with a host.
///
/// The messages describe the problem only: the URL may carry credentials, and these messages
/// reach reload outcomes, events and logs.
pub(crate) fn probe_url(url: &str) -> Result<reqwest::Url, String> {
    let parsed = reqwest::Url::parse(url).map_err(|error| {
        // `url::ParseError` names the problem, never the input.
        format!("must be an absolute http or https url ({error})")
    })?;
    if !matches!(parsed.scheme(), "http" | "https") {
        return Err("must be an absolute http or https url (unsupported scheme)".to_owned());
    }
    if parsed.host_str().is_none_or(str::is_empty) {
        return Err("must be an absolute http or https url with a host".to_owned());
    }
    Ok(parsed)
}

/// Header names with every value shown as [`REDACTED`], for `Debug`.
fn redacted_values(headers: &BTreeMap<String, String>) -> BTreeMap<&str, &str> {
    headers
        .keys()
        .map(|name| (name.as_str(), REDACTED))
        .collect()
}

/// `10.0.0.0/8`, `::1/128`: an address, a slash, a prefix length.
fn is_cidr(value: &str) -> bool {
    value.split_once('/').is_some_and(|(address, prefix)| {
        address.parse::<std::net::IpAddr>().is_ok() && prefix.parse::<u8>().is_ok()
    })
}

/// The method of a probe: `GET` or `HEAD`, case-insensitive.
pub(crate) fn probe_method(method: &str) -> Option<Method> {
    if method.eq_ignore_ascii_case("GET") {
        Some(Method::GET)
    } else if method.eq_ignore_ascii_case("HEAD") {
        Some(Method::HEAD)
    } else {
        None
    }
}

fn positive(errors: &mut Vec<FieldError>, path: &str, value: Duration) {
    if value.is_zero() {
        errors.push(FieldError::new(
            path,
            format!("must be > 0, got {}", show(value)),
        ));
    }
}

/// A duration as a user writes it (`1s 500ms`).
pub(crate) fn show(value: Duration) -> String {
    humantime_serde::re::humantime::format_duration(value).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn paths(config: &HttpClientConfig) -> Vec<String> {
        match config.validate_config() {
            Ok(()) => Vec::new(),
            Err(errors) => errors.into_iter().map(|e| e.path).collect(),
        }
    }

    #[test]
    fn defaults_are_valid() {
        assert_eq!(paths(&HttpClientConfig::default()), Vec::<String>::new());
    }

    #[test]
    fn zero_timeouts_are_rejected_with_their_paths() {
        let config = HttpClientConfig {
            request_timeout: Duration::ZERO,
            connect_timeout: Duration::ZERO,
            pool_idle_timeout: Duration::ZERO,
            ..HttpClientConfig::default()
        };
        let errors = config.validate_config().err().unwrap_or_default();
        let shown: Vec<String> = errors.iter().map(ToString::to_string).collect();
        assert_eq!(
            shown,
            [
                "request_timeout: must be > 0, got 0s",
                "connect_timeout: must be > 0, got 0s",
                "pool_idle_timeout: must be > 0, got 0s",
            ]
        );
    }

    #[test]
    fn retry_limits_are_enforced() {
        let mut config = HttpClientConfig::default();
        config.retry.max_retries = MAX_RETRIES_CAP + 1;
        config.retry.base_delay = Duration::from_secs(5);
        config.retry.max_delay = Duration::from_secs(1);
        config.retry.jitter = 1.5;
        assert_eq!(
            paths(&config),
            ["retry.max_retries", "retry.max_delay", "retry.jitter"]
        );
        config.retry = RetryConfig {
            max_delay: Duration::from_secs(30),
            max_retry_after: Duration::from_secs(20),
            max_elapsed: Duration::ZERO,
            ..RetryConfig::default()
        };
        config.redirects.max = MAX_REDIRECTS_CAP + 1;
        config.proxy = ProxyConfig {
            url: Some("socks5://user:pw@proxy:1080".to_owned()),
            no_proxy: vec!["10.0.0.0/8".to_owned(), "a,b".to_owned()],
        };
        assert_eq!(
            paths(&config),
            [
                "redirects.max",
                "proxy.url",
                "proxy.no_proxy.1",
                "retry.max_retry_after",
                "retry.max_elapsed"
            ]
        );
        config.redirects.max = 0;
        config.proxy = ProxyConfig::default();
        config.retry = RetryConfig {
            max_retries: MAX_RETRIES_CAP,
            ..RetryConfig::default()
        };
        assert_eq!(paths(&config), Vec::<String>::new());
    }

    #[test]
    fn probes_are_checked_one_by_one() {
        let mut bad = HealthProbeConfig::new("api", "ftp://example.com/");
        bad.method = "POST".to_owned();
        bad.expected_status = vec![200, 700];
        bad.timeout = Duration::from_secs(60);
        let config = HttpClientConfig {
            health_probe: vec![
                HealthProbeConfig::new("ok", "http://127.0.0.1:8080/healthz"),
                bad,
                HealthProbeConfig::new("ok", "not a url"),
            ],
            ..HttpClientConfig::default()
        };
        assert_eq!(
            paths(&config),
            [
                "health_probe.1.url",
                "health_probe.1.method",
                "health_probe.1.expected_status",
                "health_probe.1.timeout",
                "health_probe.2.name",
                "health_probe.2.url",
            ]
        );
    }

    #[test]
    fn invalid_header_names_and_values_are_rejected() {
        let mut config = HttpClientConfig::default();
        config
            .default_headers
            .insert("bad header".to_owned(), "x".to_owned());
        config
            .default_headers
            .insert("x-token".to_owned(), "line\nbreak".to_owned());
        config.verbose.redact_headers = vec!["x-ok".to_owned(), "no good".to_owned()];
        config.user_agent = "agent\u{7f}".to_owned();
        let errors = config.validate_config().err().unwrap_or_default();
        let shown: Vec<String> = errors.iter().map(ToString::to_string).collect();
        assert_eq!(shown.len(), 4, "{shown:?}");
        assert!(
            shown[0].starts_with("user_agent: is not a valid header value"),
            "{shown:?}"
        );
        assert!(
            shown[1]
                .starts_with("default_headers.bad header: `bad header` is not a valid header name")
        );
        assert_eq!(
            shown[2],
            "default_headers.x-token: is not a valid header value"
        );
        assert_eq!(
            shown[3],
            "verbose.redact_headers.1: `no good` is not a valid header name"
        );
    }

    #[test]
    fn debug_output_names_default_headers_but_never_shows_their_values() {
        let mut config = HttpClientConfig::default();
        config
            .default_headers
            .insert("x-api-key".to_owned(), "k-secret".to_owned());
        let shown = format!("{config:?}");
        assert!(
            shown.contains(r#"default_headers: {"x-api-key": "[REDACTED]"}"#),
            "{shown}"
        );
        assert!(!shown.contains("k-secret"), "{shown}");
    }

    #[test]
    fn an_empty_expected_status_list_accepts_any_2xx() {
        let mut probe = HealthProbeConfig::new("api", "http://127.0.0.1/");
        assert!(probe.accepts(204));
        assert!(!probe.accepts(301));
        probe.expected_status = vec![401];
        assert!(probe.accepts(401));
        assert!(!probe.accepts(200));
    }
}
