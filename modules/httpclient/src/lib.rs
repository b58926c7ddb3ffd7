//! The httpclient module of modular: one shared, reloadable, health-checked HTTP client.
//!
//! [`HttpClientModule`] reads the `httpclient` configuration section and registers an
//! `Arc<`[`HttpClient`]`>` in the service registry. Everything sent through it gets:
//!
//! - **retries** with exponential backoff and jitter, for idempotent methods only (GET, HEAD,
//!   OPTIONS, PUT, DELETE, TRACE), after connect errors, timeouts, connection resets and
//!   429 / 502 / 503 / 504 answers, within a total deadline (`retry.max_elapsed`), honouring
//!   `Retry-After` (seconds or an HTTP date) up to `retry.max_retry_after`;
//! - **response decompression** (gzip, brotli, zstd) and a **redirect limit**;
//! - **metrics**: requests by method and status class, retries, latency;
//! - **request modifiers**: named hooks ([`RequestModifier`], or any
//!   `Fn(&mut reqwest::Request)`) added and removed at runtime, that add headers or rewrite
//!   requests;
//! - **verbose logging** through `tracing`, with sensitive headers redacted and bodies cut;
//! - **live reconfiguration**: a reload builds a new `reqwest::Client` aside and swaps it in;
//!   requests already running finish on the client, timeouts and retry policy they started with.
//!
//! ```
//! use std::time::Duration;
//!
//! use modular_core::Application;
//! use modular_core::config::TextFormat;
//! use modular_httpclient::{HttpClient, HttpClientModule};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let yaml = "httpclient:\n  request_timeout: 5s\n  retry:\n    max_retries: 3\n";
//! let mut app = Application::builder()
//!     .config_text("app.yaml", TextFormat::Yaml, yaml)
//!     .module(HttpClientModule::new())
//!     .handle_signals(false)
//!     .build()
//!     .await?;
//! app.start().await?;
//!
//! let http = app.services().require::<HttpClient>()?;
//! http.add_modifier("tenant", |request: &mut reqwest::Request| {
//!     request.headers_mut().insert("x-tenant", reqwest::header::HeaderValue::from_static("acme"));
//! });
//! assert_eq!(http.settings().request_timeout, Duration::from_secs(5));
//! // let orders = http.get("https://orders.internal/v1/orders").send().await?.json::<Orders>().await?;
//!
//! app.stop().await?;
//! # Ok(())
//! # }
//! ```
//!
//! # Configuration
//!
//! Every key is optional; the values shown are the defaults, except for the example probe.
//!
//! ```yaml
//! httpclient:
//!   request_timeout: 30s        # one attempt, from sending to the end of the body; > 0
//!   connect_timeout: 10s        # > 0
//!   pool_idle_timeout: 90s      # > 0
//!   pool_max_idle_per_host: 32  # 0 turns pooling off
//!   user_agent: modular-httpclient/0.1.0
//!   default_headers: {}         # name: value, added unless a request sets it (sensitive)
//!   decompression: true         # offer and decode gzip, br, zstd; false: bodies as sent
//!   redirects:
//!     max: 10                   # redirects followed per request, at most 50; 0: none
//!   retry:
//!     max_retries: 2            # at most 10; 0 turns retries off
//!     base_delay: 100ms         # the first retry's delay, doubling per retry
//!     max_delay: 10s            # caps every computed delay
//!     max_retry_after: 60s      # >= max_delay: a longer Retry-After ends the retries
//!     max_elapsed: 120s         # > 0: no retry starts later than this after the first attempt
//!     jitter: 0.2               # 0..=1: each delay is drawn from [d * (1 - jitter), d]
//!   proxy:
//!     url: ~                    # http(s)://[user:pw@]proxy:3128 (sensitive); unset: HTTP(S)_PROXY env
//!     no_proxy: []              # hosts, .suffixes, IPs or CIDR ranges reached directly
//!   tls:
//!     ca_files: []              # PEM bundles of private CAs, trusted besides the platform's roots
//!     ca_only: false            # true: trust only ca_files
//!     client_cert_file: ~       # PEM chain presented to servers that ask (mutual TLS)
//!     client_key_file: ~        # its PEM key; set both or neither
//!   clients:                    # named clients over these settings: HttpClient::named("payments")
//!     payments:
//!       base_url: https://payments.internal/api/   # paths resolve against it; no credentials
//!       request_timeout: 5s     # each of these replaces the section's value when set
//!       connect_timeout: 2s
//!       user_agent: shop/1.0
//!       default_headers: { x-api-key: "..." }      # added to the section's (sensitive)
//!       retry: { max_retries: 0 }                  # replaces the whole retry policy
//!   verbose:
//!     enabled: false
//!     redact_headers: []        # besides authorization, proxy-authorization, cookie, set-cookie
//!     max_body_bytes: 1024      # at most 1 MiB; 0 logs body sizes only
//!   health_probe:
//!     - name: billing           # component `probe.billing`; unique
//!       url: https://billing.internal/healthz
//!       method: GET             # or HEAD
//!       expected_status: [200]  # empty (the default): any 2xx
//!       timeout: 1s             # > 0, at most 10s
//!       optional: false         # true: a failure reports degraded, never failing readiness
//!   health:                     # the health registration
//!     timeout: 10500ms          # unset (the default): MAX_PROBE_TIMEOUT + 500ms; > 0, at most 60s
//!     optional: false           # true: no failure of the client's check fails readiness
//! ```
//!
//! Validation rejects zero (and, at parse time, negative) durations, `max_retries` above
//! [`MAX_RETRIES_CAP`], `max_delay` below `base_delay`, `max_retry_after` below `max_delay`,
//! `redirects.max` above [`MAX_REDIRECTS_CAP`], a `jitter` outside 0..=1, invalid
//! header names or values, and probes with a malformed or non-http(s) URL, a duplicate name, a
//! method other than GET/HEAD, a status outside 100..=599 or a timeout above
//! [`MAX_PROBE_TIMEOUT`]. Each error carries its path (`httpclient.retry.max_retries`,
//! `httpclient.health_probe.1.url`) and the source that set it. A named client is checked with
//! the same rules, its errors under its own path (`httpclient.clients.payments.base_url`); it
//! cannot be named `default` (the section's own client's metrics label). A TLS file that
//! cannot be read or parsed fails the build or the reload with its path
//! (`tls.ca_files.0`), never quoting its contents.
//!
//! # Dynamic fields
//!
//! **Every field is dynamic.** A reload with changes in this section prepares a new
//! `reqwest::Client` from the whole new section (a new connection pool included) aside, and
//! the commit swaps it in atomically once every module of the reload has prepared. A request takes its snapshot of client and settings when it is sent and keeps
//! it through all its retries, so in-flight requests finish on the old client with their old
//! timeouts, and the old pool is dropped once the last of them is done. A failure to build
//! changes nothing, and when another module fails to prepare the new client is dropped
//! unused: the running one never changed. Request
//! modifiers are not configuration: they are added and removed in code, and survive reloads.
//! `health.timeout` and `health.optional` are applied by the commit too: it replaces the health
//! registration's options (`HealthAggregator::set_provider_options`), so the next check runs
//! under them.
//!
//! `default_headers` is marked sensitive: its values show as `[REDACTED]` in diffs, reload
//! outcomes and events, and only header names appear in health details. `health_probe` is
//! sensitive too, as probe URLs may carry credentials or tokens: the list shows as
//! `[REDACTED]` in `GET /admin/config`, diffs, reload outcomes and events, validation messages
//! never repeat a URL, and health details show a probe URL without userinfo or query.
//! Request URLs in errors and log lines never carry userinfo, and every query value shows as
//! `[REDACTED]` (the keys stay: `?access_token=[REDACTED]&page=[REDACTED]`); reqwest's own
//! error messages, which repeat the URL, are stripped of it.
//!
//! # Retries
//!
//! Only idempotent methods are retried, after a connect error, a timeout (`request_timeout`
//! or a request's own), a connection reset or closed before the answer was complete, or a
//! 429, 502, 503 or 504 answer. A `Retry-After` replaces the backoff and is waited for in full
//! up to `retry.max_retry_after`, even beyond `max_delay`; a longer one returns the answer at
//! once (its `Retry-After` intact) instead of retrying too early. No retry starts when its delay
//! would end more than `retry.max_elapsed` after the first attempt; the last answer or error
//! is returned. A request whose body is a stream is sent once.
//!
//! # Health
//!
//! [`HttpClientHealth`] is registered under the module's name, counting for readiness, with a
//! provider timeout of `health.timeout` (default [`DEFAULT_HEALTH_TIMEOUT`],
//! [`MAX_PROBE_TIMEOUT`] + 500 ms), required unless `health.optional: true` (then a failing
//! probe counts for overall health only). It reports:
//!
//! - `httpclient:client`: always healthy; its details are the running settings (generation,
//!   timeouts, pool, user agent, header names, retry policy, verbose, probe and modifier counts,
//!   requests and retries so far). With no probes configured this is the whole answer.
//! - `httpclient:probe.<name>`, one per probe, all checked in parallel on the current client
//!   (modifiers applied, no retries) with the probe's own timeout (cut to the aggregator's
//!   remaining time): **healthy** when the status is expected (any 2xx by default);
//!   **unhealthy** when it is another status, the upstream does not answer within the timeout,
//!   or cannot be reached (connection refused or reset, DNS or TLS failure). An `optional` probe
//!   reports **degraded** instead of unhealthy and is marked optional, so it never fails
//!   readiness. Details: url (scheme, host and path only), method, expected statuses, timeout,
//!   elapsed time and status.
//!
//! # Events
//!
//! From source `/modular/modules/httpclient`:
//!
//! | type | when | data |
//! |---|---|---|
//! | `com.modular.httpclient.client.rebuilt` | a reload committed a new client | `generation`, `previous_generation`, `trigger`, `changes` (field paths) |
//! | `com.modular.httpclient.request.retried` | a request is about to be retried | `method`, `url` (no userinfo, no query: scheme, host and path), `attempt` (the one that failed, from 1), `next_attempt`, `max_retries`, `delay_ms`, `reason`, `status` (or null after a connect error) |
//!
//! A client built by hand with [`HttpClient::new`] has no event bus and emits nothing.
//!
//! # Metrics
//!
//! Recorded through the `metrics` facade when the application records metrics
//! (`metrics.enabled`, or `modular_core::metrics::is_recording()` when the client is built);
//! otherwise the handles are no-ops:
//!
//! | series | type | labels |
//! |---|---|---|
//! | `modular_httpclient_requests_total` | counter | `client`, `method`, `status_class` |
//! | `modular_httpclient_retries_total` | counter | `client` |
//! | `modular_httpclient_request_duration_seconds` | histogram | `client` |
//!
//! A request counts once, with its final outcome; its duration runs from the first attempt to
//! the final answer's head, retries and their delays included. `method` is a standard method or
//! `other`; `status_class` is `1xx`..`5xx`, or `error` when no answer came. `client` is
//! `default` for the section's own client and the name of each named client
//! (`httpclient.clients.<name>`). URLs, hosts and paths are never labels.
//!
//! # Verbose logging
//!
//! With `verbose.enabled`, each attempt logs at `INFO`, target [`VERBOSE_TARGET`]:
//! `http request` (method, URL, attempt, headers including the client's defaults, body
//! prefix), `http response` (status, version, elapsed time, headers) and, once the body has
//! been read or dropped, `http response body` (byte count, whether it was read to the end, its
//! prefix), or `http request failed` with the error. Response bodies are never buffered: the
//! prefix is collected as the body streams through. Header values of `authorization`,
//! `proxy-authorization`, `cookie`, `set-cookie` and every `redact_headers` name are logged as
//! [`REDACTED`]; URL userinfo (user name and password) is dropped. Body text is not masked: use the logmasker module
//! for secrets inside bodies.
//!
//! # Feature flags
//!
//! This crate has none. TLS is rustls with the aws-lc-rs provider, installed on first use
//! through `modular_core::install_default_crypto_provider`.

mod client;
mod config;
mod error;
mod health;
mod metrics;
mod modifier;
mod module;
mod retry;
mod tls;
mod verbose;

pub use client::{HttpClient, IntoRequestUrl, RequestBuilder};
pub use config::{
    ClientTlsConfig, DEFAULT_HEALTH_TIMEOUT, HealthProbeConfig, HttpClientConfig,
    MAX_LOGGED_BODY_BYTES, MAX_PROBE_TIMEOUT, MAX_REDIRECTS_CAP, MAX_RETRIES_CAP,
    NamedClientConfig, ProxyConfig, RedirectConfig, RetryConfig, VerboseConfig,
};
pub use error::HttpClientError;
pub use health::HttpClientHealth;
pub use modifier::RequestModifier;
pub use module::{HttpClientModule, MODULE_NAME};
pub use verbose::{REDACTED, VERBOSE_TARGET};
