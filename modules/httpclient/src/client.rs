//! [`HttpClient`]: the shared client service, its snapshots, and the request pipeline
//! (modifiers, verbose logging, retries).

use std::collections::BTreeMap;
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, SystemTime};

use arc_swap::ArcSwap;
use modular_core::{DynamicConfig as _, ModuleContext};
use reqwest::header::{HeaderMap, HeaderName, HeaderValue, USER_AGENT};
use reqwest::{Method, Request, Response, StatusCode, Url};
use serde_json::json;
use tokio::time::Instant;

use crate::config::HttpClientConfig;
use crate::error::{HttpClientError, chain};
use crate::metrics::{ClientSeries, DEFAULT_CLIENT};
use crate::modifier::{Modifiers, RequestModifier};
use crate::retry;
use crate::tls;
use crate::verbose::{VERBOSE_TARGET, Verbose, display_url, event_url};

/// The shared HTTP client: a `reqwest::Client` and its settings, with retries, request
/// modifiers and verbose logging on every request sent through it.
///
/// Cheap to clone (clones share everything). The httpclient module registers one in the
/// service registry as `Arc<HttpClient>`; it can also be built on its own with
/// [`HttpClient::new`].
///
/// Each request takes a snapshot of the current client and settings when it is sent and keeps
/// it through all its retries, so a reload never changes a request half-way: requests already
/// running finish on the old client, with the old timeouts and retry policy, while new ones use
/// the new client.
///
/// ```no_run
/// # async fn demo(client: &modular_httpclient::HttpClient) -> Result<(), modular_httpclient::HttpClientError> {
/// let response = client.get("http://127.0.0.1:8080/orders").query(&[("page", "2")]).send().await?;
/// println!("{}", response.status());
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct HttpClient {
    shared: Arc<Shared>,
    /// `None`: the section's own client; `Some`: the named client `clients.<name>`.
    name: Option<Arc<str>>,
}

/// A request being described; [`RequestBuilder::send`] sends it through the [`HttpClient`]
/// (modifiers, logging, retries). Methods mirror `reqwest::RequestBuilder`, and
/// [`RequestBuilder::with`] reaches the rest.
#[must_use = "a request does nothing until it is sent"]
pub struct RequestBuilder {
    client: HttpClient,
    inner: reqwest::RequestBuilder,
    /// A problem found when the request was started (a path with no base URL, a named client
    /// a reload removed), reported by `build` and `send`.
    deferred: Option<HttpClientError>,
}

struct Shared {
    state: ArcSwap<ClientSet>,
    modifiers: Modifiers,
    events: Option<ModuleContext>,
    /// Serialises rebuilds, so two reconfigurations cannot both build from the same generation.
    rebuild: Mutex<()>,
    requests: AtomicU64,
    retries: AtomicU64,
}

/// One generation of every client: the section's own and the named ones, swapped together.
pub(crate) struct ClientSet {
    pub(crate) default: Arc<ClientState>,
    pub(crate) named: BTreeMap<String, Arc<ClientState>>,
}

impl ClientSet {
    fn generation(&self) -> u64 {
        self.default.generation
    }
}

/// A client generation built aside by a reload, not yet sending: owned, so the commit numbers
/// it before anything can share it.
pub(crate) struct PreparedClient {
    default: ClientState,
    named: BTreeMap<String, ClientState>,
}

impl PreparedClient {
    fn build(settings: Arc<HttpClientConfig>, generation: u64) -> Result<Self, HttpClientError> {
        // Named clients take the section's `tls`: its files are read once for all of them.
        let tls = tls::load(&settings.tls)?;
        let mut named = BTreeMap::new();
        for name in settings.clients.keys() {
            let Some(own) = settings.named(name) else {
                continue;
            };
            let base = settings.clients[name]
                .base_url
                .as_deref()
                .map(Url::parse)
                .transpose()
                .map_err(|e| HttpClientError::InvalidConfig {
                    errors: vec![modular_core::FieldError::new(
                        format!("clients.{name}.base_url"),
                        e.to_string(),
                    )],
                })?;
            let state = ClientState::build(Arc::new(own), &tls, name, base, generation)?;
            named.insert(name.clone(), state);
        }
        let default = ClientState::build(settings, &tls, DEFAULT_CLIENT, None, generation)?;
        Ok(Self { default, named })
    }

    /// The set to install, every client numbered `generation`.
    fn into_set(self, generation: u64) -> ClientSet {
        let number = |mut state: ClientState| {
            state.generation = generation;
            Arc::new(state)
        };
        ClientSet {
            default: number(self.default),
            named: self
                .named
                .into_iter()
                .map(|(name, state)| (name, number(state)))
                .collect(),
        }
    }
}

impl std::fmt::Debug for PreparedClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PreparedClient")
            .field("generation", &self.default.generation)
            .field("named", &self.named.keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

/// One generation of the client: what a request runs on from start to finish.
pub(crate) struct ClientState {
    pub(crate) client: reqwest::Client,
    pub(crate) settings: Arc<HttpClientConfig>,
    /// The headers the client adds to every request (default headers and `User-Agent`), kept
    /// to show them in verbose logs.
    pub(crate) defaults: HeaderMap,
    pub(crate) verbose: Verbose,
    pub(crate) generation: u64,
    /// Where path-only requests go (named clients with a `base_url`).
    pub(crate) base_url: Option<Url>,
    pub(crate) series: ClientSeries,
}

/// Why a client was rebuilt, for the `client.rebuilt` event.
pub(crate) struct Rebuild {
    pub(crate) trigger: &'static str,
    pub(crate) changes: Vec<String>,
}

impl HttpClient {
    /// A client with `config`, validated first. No events are emitted by a client built this
    /// way; the module's client emits `client.rebuilt` and `request.retried`.
    pub fn new(config: HttpClientConfig) -> Result<Self, HttpClientError> {
        config
            .validate_config()
            .map_err(|errors| HttpClientError::InvalidConfig { errors })?;
        Self::build(Arc::new(config), None)
    }

    /// A client with an already validated config, emitting events through `events`.
    pub(crate) fn build(
        config: Arc<HttpClientConfig>,
        events: Option<ModuleContext>,
    ) -> Result<Self, HttpClientError> {
        let set = PreparedClient::build(config, 1)?.into_set(1);
        Ok(Self {
            shared: Arc::new(Shared {
                state: ArcSwap::from_pointee(set),
                modifiers: Modifiers::default(),
                events,
                rebuild: Mutex::new(()),
                requests: AtomicU64::new(0),
                retries: AtomicU64::new(0),
            }),
            name: None,
        })
    }

    /// The named client `clients.<name>`, or `None` when the configuration has none of that
    /// name. It shares the modifiers, events and counters of this client and follows every
    /// reload; if a later reload removes the name, its requests fail with
    /// [`HttpClientError::UnknownClient`].
    pub fn named(&self, name: &str) -> Option<HttpClient> {
        let set = self.shared.state.load();
        let (name, _) = set.named.get_key_value(name)?;
        Some(Self {
            shared: Arc::clone(&self.shared),
            name: Some(Arc::from(name.as_str())),
        })
    }

    /// The client's name: `None` for the section's own client.
    pub fn name(&self) -> Option<&str> {
        self.name.as_deref()
    }

    /// The names of the configured named clients.
    pub fn client_names(&self) -> Vec<String> {
        self.shared.state.load().named.keys().cloned().collect()
    }

    /// This client's current generation: the section's own, or the named one.
    fn current(&self) -> Result<Arc<ClientState>, HttpClientError> {
        let set = self.shared.state.load();
        match &self.name {
            None => Ok(Arc::clone(&set.default)),
            Some(name) => {
                set.named
                    .get(&**name)
                    .cloned()
                    .ok_or_else(|| HttpClientError::UnknownClient {
                        name: name.to_string(),
                    })
            }
        }
    }

    /// Starts a request with `method` to `url`: an absolute URL, or for a named client with a
    /// `base_url`, a path resolved against it (`/v1/orders`, `orders?page=2`).
    pub fn request<U: IntoRequestUrl>(&self, method: Method, url: U) -> RequestBuilder {
        // Any generation's client can describe a request: the one that sends it is chosen at
        // send time.
        let state = self.current();
        let base = state.as_ref().ok().and_then(|s| s.base_url.as_ref());
        let resolved = url.into_request_url(base);
        let describing = match &state {
            Ok(state) => state.client.clone(),
            Err(_) => self.shared.state.load().default.client.clone(),
        };
        let (inner, deferred) = match (resolved, state) {
            (Ok(url), state) => (describing.request(method, url), state.err()),
            // Never sent: `deferred` is reported first. A removed client is the first problem.
            (Err(reason), state) => (
                describing.request(method, "http://invalid.invalid/"),
                Some(
                    state
                        .err()
                        .unwrap_or(HttpClientError::InvalidUrl { reason }),
                ),
            ),
        };
        RequestBuilder {
            client: self.clone(),
            inner,
            deferred,
        }
    }

    /// Starts a `GET` request.
    pub fn get<U: IntoRequestUrl>(&self, url: U) -> RequestBuilder {
        self.request(Method::GET, url)
    }

    /// Starts a `POST` request (never retried).
    pub fn post<U: IntoRequestUrl>(&self, url: U) -> RequestBuilder {
        self.request(Method::POST, url)
    }

    /// Starts a `PUT` request.
    pub fn put<U: IntoRequestUrl>(&self, url: U) -> RequestBuilder {
        self.request(Method::PUT, url)
    }

    /// Starts a `PATCH` request (never retried).
    pub fn patch<U: IntoRequestUrl>(&self, url: U) -> RequestBuilder {
        self.request(Method::PATCH, url)
    }

    /// Starts a `DELETE` request.
    pub fn delete<U: IntoRequestUrl>(&self, url: U) -> RequestBuilder {
        self.request(Method::DELETE, url)
    }

    /// Starts a `HEAD` request.
    pub fn head<U: IntoRequestUrl>(&self, url: U) -> RequestBuilder {
        self.request(Method::HEAD, url)
    }

    /// Sends `request`: runs the modifiers, then sends it on the current client, retrying per
    /// the retry policy, logging each attempt when verbose logging is on.
    ///
    /// A request whose body is a stream cannot be copied, so it is sent once.
    pub async fn execute(&self, request: Request) -> Result<Response, HttpClientError> {
        let state = self.current()?;
        let method = request.method().clone();
        let started = Instant::now();
        let outcome = self.send_with_retries(&state, request, started).await;
        let status = outcome.as_ref().ok().map(Response::status);
        state.series.request(&method, status, started.elapsed());
        outcome
    }

    async fn send_with_retries(
        &self,
        state: &ClientState,
        mut request: Request,
        first_sent: Instant,
    ) -> Result<Response, HttpClientError> {
        self.shared.modifiers.apply(&mut request);
        self.shared.requests.fetch_add(1, Ordering::Relaxed);
        let method = request.method().clone();
        let policy = &state.settings.retry;
        let may_retry = retry::is_idempotent(&method);
        let mut attempt: u32 = 1;
        loop {
            let spare = if may_retry && attempt <= policy.max_retries {
                request.try_clone()
            } else {
                None
            };
            let url = request.url().clone();
            if state.verbose.enabled {
                state
                    .verbose
                    .log_request(&request, &state.defaults, attempt);
            }
            let started = Instant::now();
            // reqwest's own message repeats the URL, query string included.
            let mut outcome = state
                .client
                .execute(request)
                .await
                .map_err(reqwest::Error::without_url);
            if state.verbose.enabled {
                outcome = match outcome {
                    Ok(response) => Ok(state.verbose.log_response(
                        &method,
                        response,
                        started.elapsed(),
                        attempt,
                    )),
                    Err(error) => {
                        tracing::info!(
                            target: VERBOSE_TARGET,
                            method = %method,
                            url = %display_url(&url),
                            attempt,
                            elapsed_ms = started.elapsed().as_millis() as u64,
                            error = %chain(&error),
                            "http request failed"
                        );
                        Err(error)
                    }
                };
            }
            let next = match spare {
                Some(spare) => why_retry(&outcome).map(|reason| (spare, reason)),
                None => None,
            };
            let Some((spare, reason)) = next else {
                return outcome.map_err(|source| HttpClientError::Request {
                    method,
                    url: display_url(&url),
                    attempts: attempt,
                    source: source.without_url(),
                });
            };
            let asked = match &outcome {
                Ok(response) => retry::retry_after(response.headers(), SystemTime::now()),
                Err(_) => None,
            };
            let delay =
                asked.unwrap_or_else(|| retry::backoff(policy, attempt - 1, rand::random::<f64>()));
            // Waiting less than the server asked only earns another refusal, and a retry that
            // would start past the deadline is not made: the caller gets this answer instead.
            let too_long = asked.is_some_and(|asked| asked > policy.max_retry_after);
            let past_deadline = first_sent.elapsed().saturating_add(delay) > policy.max_elapsed;
            if too_long || past_deadline {
                tracing::debug!(
                    module = "httpclient",
                    method = %method,
                    url = %event_url(&url),
                    attempt,
                    delay_ms = delay.as_millis() as u64,
                    reason = %reason,
                    past_deadline,
                    "not retrying http request"
                );
                return outcome.map_err(|source| HttpClientError::Request {
                    method,
                    url: display_url(&url),
                    attempts: attempt,
                    source: source.without_url(),
                });
            }
            // The failed answer is dropped unread; its connection is closed rather than reused.
            drop(outcome);
            state.series.retried();
            self.retried(&method, &url, attempt, delay, &reason, policy.max_retries);
            tokio::time::sleep(delay).await;
            request = spare;
            attempt += 1;
        }
    }

    /// The settings new requests run with: for a named client, the section's with its own
    /// values over them (the section's alone once a reload removed the name).
    pub fn settings(&self) -> Arc<HttpClientConfig> {
        match self.current() {
            Ok(state) => Arc::clone(&state.settings),
            Err(_) => Arc::clone(&self.shared.state.load().default.settings),
        }
    }

    /// The generation of the current clients: 1 at start, +1 per rebuild (named clients are
    /// rebuilt with the section's own, so they share it).
    pub fn generation(&self) -> u64 {
        self.shared.state.load().generation()
    }

    /// The current `reqwest::Client`, for libraries that need one (the section's own once a
    /// reload removed this named client). Requests sent on it directly bypass the modifiers,
    /// retries and verbose logging, and keep using this generation after a reload; prefer
    /// asking for it again per use.
    pub fn reqwest_client(&self) -> reqwest::Client {
        match self.current() {
            Ok(state) => state.client.clone(),
            Err(_) => self.shared.state.load().default.client.clone(),
        }
    }

    /// Adds a request modifier under `name`, replacing and returning an earlier one of that
    /// name. It applies to requests sent from now on, and to health probes.
    pub fn add_modifier(
        &self,
        name: &str,
        modifier: impl RequestModifier,
    ) -> Option<Arc<dyn RequestModifier>> {
        self.add_shared_modifier(name, Arc::new(modifier))
    }

    /// Like [`HttpClient::add_modifier`] with a modifier that is already shared.
    pub fn add_shared_modifier(
        &self,
        name: &str,
        modifier: Arc<dyn RequestModifier>,
    ) -> Option<Arc<dyn RequestModifier>> {
        let previous = self.shared.modifiers.add(name, modifier);
        tracing::debug!(
            module = "httpclient",
            modifier = name,
            replaced = previous.is_some(),
            "request modifier added"
        );
        previous
    }

    /// Removes the modifier named `name`; whether there was one.
    pub fn remove_modifier(&self, name: &str) -> bool {
        let removed = self.shared.modifiers.remove(name);
        tracing::debug!(
            module = "httpclient",
            modifier = name,
            removed,
            "request modifier removed"
        );
        removed
    }

    /// The modifiers' names, in the order they run.
    pub fn modifier_names(&self) -> Vec<String> {
        self.shared.modifiers.names()
    }

    /// Validates `config`, builds a new client from it aside and swaps it in; requests already
    /// running finish on the old one. Returns the new generation. On error nothing changes.
    ///
    /// Meant for clients built by hand. The module's client follows the configuration: its next
    /// reload with changes in the section rebuilds it from the configured values again.
    pub fn reconfigure(&self, config: HttpClientConfig) -> Result<u64, HttpClientError> {
        config
            .validate_config()
            .map_err(|errors| HttpClientError::InvalidConfig { errors })?;
        let changes = self
            .settings()
            .diff(&config)
            .into_iter()
            .map(|c| c.field_path.into_owned())
            .collect();
        let cause = Rebuild {
            trigger: "api",
            changes,
        };
        let next = self.prepare(Arc::new(config))?;
        Ok(self.commit(next, cause))
    }

    /// Builds a client from `settings` (already validated) aside: nothing sends on it until
    /// [`HttpClient::commit`]. Dropping it instead leaves the running client as it was.
    pub(crate) fn prepare(
        &self,
        settings: Arc<HttpClientConfig>,
    ) -> Result<PreparedClient, HttpClientError> {
        let previous = self.shared.state.load().generation();
        PreparedClient::build(settings, previous + 1)
    }

    /// Makes a prepared client current (one swap; requests already running finish on the old
    /// one) and announces it. Returns the new generation. Cannot fail.
    pub(crate) fn commit(&self, next: PreparedClient, cause: Rebuild) -> u64 {
        let _serial = self
            .shared
            .rebuild
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let previous = self.shared.state.load().generation();
        let generation = previous + 1;
        self.shared.state.store(Arc::new(next.into_set(generation)));
        tracing::info!(
            module = "httpclient",
            generation,
            trigger = cause.trigger,
            changes = ?cause.changes,
            "http client rebuilt"
        );
        self.emit(
            "client.rebuilt",
            json!({
                "generation": generation,
                "previous_generation": previous,
                "trigger": cause.trigger,
                "changes": cause.changes,
            }),
        );
        generation
    }

    /// The section's own client's current generation, whole.
    pub(crate) fn snapshot(&self) -> Arc<ClientState> {
        Arc::clone(&self.shared.state.load().default)
    }

    pub(crate) fn apply_modifiers(&self, request: &mut Request) {
        self.shared.modifiers.apply(request);
    }

    pub(crate) fn modifier_count(&self) -> usize {
        self.shared.modifiers.len()
    }

    /// Requests sent and retries made since the client was created.
    pub(crate) fn counters(&self) -> (u64, u64) {
        (
            self.shared.requests.load(Ordering::Relaxed),
            self.shared.retries.load(Ordering::Relaxed),
        )
    }

    fn retried(
        &self,
        method: &Method,
        url: &Url,
        attempt: u32,
        delay: Duration,
        reason: &RetryReason,
        max_retries: u32,
    ) {
        self.shared.retries.fetch_add(1, Ordering::Relaxed);
        // The event carries the path only: queries often hold tokens.
        let url = event_url(url);
        let delay_ms = delay.as_millis() as u64;
        tracing::info!(
            module = "httpclient",
            method = %method,
            url = %url,
            attempt,
            delay_ms,
            reason = %reason,
            "retrying http request"
        );
        let status = match reason {
            RetryReason::Status(status) => json!(status.as_u16()),
            RetryReason::Transport { .. } => serde_json::Value::Null,
        };
        self.emit(
            "request.retried",
            json!({
                "method": method.as_str(),
                "url": url,
                "attempt": attempt,
                "next_attempt": attempt + 1,
                "max_retries": max_retries,
                "delay_ms": delay_ms,
                "reason": reason.to_string(),
                "status": status,
            }),
        );
    }

    fn emit(&self, noun_verb: &str, data: serde_json::Value) {
        if let Some(events) = &self.shared.events {
            events.emit(noun_verb, data);
        }
    }
}

impl fmt::Debug for HttpClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HttpClient")
            .field("name", &self.name)
            .field("generation", &self.generation())
            .field("settings", &self.settings())
            .field("modifiers", &self.shared.modifiers)
            .finish()
    }
}

/// Why an attempt is worth repeating.
enum RetryReason {
    Status(StatusCode),
    /// No answer: `kind` is `connect error`, `timeout` or `connection reset`.
    Transport {
        kind: &'static str,
        error: String,
    },
}

impl fmt::Display for RetryReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Status(status) => write!(f, "status {}", status.as_u16()),
            Self::Transport { kind, error } => write!(f, "{kind}: {error}"),
        }
    }
}

fn why_retry(outcome: &Result<Response, reqwest::Error>) -> Option<RetryReason> {
    match outcome {
        Ok(response) if retry::is_retryable_status(response.status()) => {
            Some(RetryReason::Status(response.status()))
        }
        Err(error) => retry::retryable_error(error).map(|kind| RetryReason::Transport {
            kind,
            error: chain(error),
        }),
        Ok(_) => None,
    }
}

impl ClientState {
    fn build(
        settings: Arc<HttpClientConfig>,
        tls: &tls::TlsMaterial,
        label: &str,
        base_url: Option<Url>,
        generation: u64,
    ) -> Result<Self, HttpClientError> {
        modular_core::install_default_crypto_provider();
        let mut headers = HeaderMap::with_capacity(settings.default_headers.len());
        for (name, value) in &settings.default_headers {
            let invalid = |reason: String| HttpClientError::InvalidHeader {
                field: "default_headers",
                name: name.clone(),
                reason,
            };
            let header =
                HeaderName::from_bytes(name.as_bytes()).map_err(|e| invalid(e.to_string()))?;
            let mut value = HeaderValue::from_str(value).map_err(|e| invalid(e.to_string()))?;
            // Default headers often carry credentials; keep them out of HTTP/2 header tables.
            value.set_sensitive(true);
            headers.insert(header, value);
        }
        let user_agent = HeaderValue::from_str(&settings.user_agent).map_err(|e| {
            HttpClientError::InvalidHeader {
                field: "user_agent",
                name: USER_AGENT.to_string(),
                reason: e.to_string(),
            }
        })?;
        let verbose = Verbose::new(&settings.verbose)?;
        let mut builder = reqwest::Client::builder();
        if let Some(url) = &settings.proxy.url {
            let no_proxy = reqwest::NoProxy::from_string(&settings.proxy.no_proxy.join(","));
            let proxy = reqwest::Proxy::all(url)
                .map_err(|source| HttpClientError::Build {
                    source: source.without_url(),
                })?
                .no_proxy(no_proxy);
            builder = builder.proxy(proxy);
        }
        builder = tls.apply(builder);
        let client = builder
            .timeout(settings.request_timeout)
            .connect_timeout(settings.connect_timeout)
            .pool_idle_timeout(settings.pool_idle_timeout)
            .pool_max_idle_per_host(settings.pool_max_idle_per_host)
            .user_agent(user_agent.clone())
            .default_headers(headers.clone())
            .gzip(settings.decompression)
            .brotli(settings.decompression)
            .zstd(settings.decompression)
            .redirect(match settings.redirects.max {
                0 => reqwest::redirect::Policy::none(),
                max => reqwest::redirect::Policy::limited(max),
            })
            .build()
            .map_err(|source| HttpClientError::Build { source })?;
        headers.insert(USER_AGENT, user_agent);
        Ok(Self {
            client,
            settings,
            defaults: headers,
            verbose,
            generation,
            base_url,
            series: ClientSeries::new(label),
        })
    }
}

impl RequestBuilder {
    /// Adds a header.
    pub fn header<K, V>(self, key: K, value: V) -> Self
    where
        HeaderName: TryFrom<K>,
        <HeaderName as TryFrom<K>>::Error: Into<http::Error>,
        HeaderValue: TryFrom<V>,
        <HeaderValue as TryFrom<V>>::Error: Into<http::Error>,
    {
        self.with(|b| b.header(key, value))
    }

    /// Adds headers.
    pub fn headers(self, headers: HeaderMap) -> Self {
        self.with(|b| b.headers(headers))
    }

    /// Sets `Authorization: Bearer <token>` (marked sensitive).
    pub fn bearer_auth<T: fmt::Display>(self, token: T) -> Self {
        self.with(|b| b.bearer_auth(token))
    }

    /// Sets HTTP basic authentication (marked sensitive).
    pub fn basic_auth<U: fmt::Display, P: fmt::Display>(
        self,
        username: U,
        password: Option<P>,
    ) -> Self {
        self.with(|b| b.basic_auth(username, password))
    }

    /// Sets the body.
    pub fn body<T: Into<reqwest::Body>>(self, body: T) -> Self {
        self.with(|b| b.body(body))
    }

    /// Sets a JSON body and `Content-Type: application/json`.
    pub fn json<T: serde::Serialize + ?Sized>(self, json: &T) -> Self {
        self.with(|b| b.json(json))
    }

    /// Sets a form body and `Content-Type: application/x-www-form-urlencoded`.
    pub fn form<T: serde::Serialize + ?Sized>(self, form: &T) -> Self {
        self.with(|b| b.form(form))
    }

    /// Appends query parameters.
    pub fn query<T: serde::Serialize + ?Sized>(self, query: &T) -> Self {
        self.with(|b| b.query(query))
    }

    /// Overrides `request_timeout` for this request (each attempt).
    pub fn timeout(self, timeout: Duration) -> Self {
        self.with(|b| b.timeout(timeout))
    }

    /// Sets the HTTP version.
    pub fn version(self, version: reqwest::Version) -> Self {
        self.with(|b| b.version(version))
    }

    /// Applies any other `reqwest::RequestBuilder` method (multipart bodies, extensions).
    pub fn with(self, f: impl FnOnce(reqwest::RequestBuilder) -> reqwest::RequestBuilder) -> Self {
        Self {
            client: self.client,
            inner: f(self.inner),
            deferred: self.deferred,
        }
    }

    /// The request as described, without sending it.
    pub fn build(self) -> Result<Request, HttpClientError> {
        if let Some(error) = self.deferred {
            return Err(error);
        }
        self.inner
            .build()
            .map_err(|source| HttpClientError::InvalidRequest {
                source: source.without_url(),
            })
    }

    /// Sends the request through the client (see [`HttpClient::execute`]).
    pub async fn send(self) -> Result<Response, HttpClientError> {
        let Self {
            client,
            inner,
            deferred,
        } = self;
        if let Some(error) = deferred {
            return Err(error);
        }
        let request = inner
            .build()
            .map_err(|source| HttpClientError::InvalidRequest {
                source: source.without_url(),
            })?;
        client.execute(request).await
    }
}

impl fmt::Debug for RequestBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RequestBuilder")
            .field("inner", &self.inner)
            .finish()
    }
}

/// What a request can be sent to: an absolute URL, or a path a named client's `base_url`
/// resolves. Implemented for `&str`, `String`, `&String`, `Url` and `&Url`.
pub trait IntoRequestUrl {
    /// The absolute URL, resolving a relative one against `base`; the error says why not
    /// (never quoting the input: it may hold a token).
    fn into_request_url(self, base: Option<&Url>) -> Result<Url, String>;
}

impl IntoRequestUrl for &str {
    fn into_request_url(self, base: Option<&Url>) -> Result<Url, String> {
        match (Url::parse(self), base) {
            (Ok(url), _) => Ok(url),
            (Err(_), Some(base)) => base
                .join(self)
                .map_err(|e| format!("cannot resolve it against base_url: {e}")),
            (Err(e), None) => Err(format!(
                "not an absolute url ({e}); a path needs a named client with a `base_url`"
            )),
        }
    }
}

impl IntoRequestUrl for String {
    fn into_request_url(self, base: Option<&Url>) -> Result<Url, String> {
        self.as_str().into_request_url(base)
    }
}

impl IntoRequestUrl for &String {
    fn into_request_url(self, base: Option<&Url>) -> Result<Url, String> {
        self.as_str().into_request_url(base)
    }
}

impl IntoRequestUrl for Url {
    fn into_request_url(self, _base: Option<&Url>) -> Result<Url, String> {
        Ok(self)
    }
}

impl IntoRequestUrl for &Url {
    fn into_request_url(self, _base: Option<&Url>) -> Result<Url, String> {
        Ok(self.clone())
    }
}
