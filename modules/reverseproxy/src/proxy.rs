//! [`Proxy`]: forwards a request to a backend of its route's pool and streams the answer
//! back; retries, the retry budget, forwarding headers and upgrades live here.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use arc_swap::ArcSwap;
use axum::body::Body;
use axum::response::{IntoResponse, Response};
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::uri::PathAndQuery;
use http::{Method, Request, StatusCode};
use hyper::body::Body as HttpBody;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::time::Instant;

use crate::backend::{Backend, Outcome, Transition};
use crate::metrics as m;
use crate::table::{Pool, Route, Table};
use crate::upstream;

/// Emits a module event (`noun.verb`, data).
pub type Emit = Arc<dyn Fn(&str, serde_json::Value) + Send + Sync>;

/// The live proxy: the current table and the clients, shared by every request.
pub struct Proxy {
    pub(crate) table: ArcSwap<Table>,
    pub(crate) http1: Client<HttpConnector, Body>,
    pub(crate) h2c: Client<HttpConnector, Body>,
    pub(crate) budget: crate::budget::RetryBudget,
    pub(crate) emit: Emit,
    pub(crate) shadow_slots: Arc<tokio::sync::Semaphore>,
    pub(crate) shadow_stats: crate::shadow::ShadowStats,
    /// Where the module's own listener listens, once it does.
    pub(crate) listen_addr: std::sync::OnceLock<std::net::SocketAddr>,
    pub(crate) listener_stats: ListenerStats,
}

/// What the module's own listener did with the requests and connections it took.
#[derive(Debug, Default)]
pub struct ListenerStats {
    pub(crate) forwarded: std::sync::atomic::AtomicU64,
    pub(crate) handed_off: std::sync::atomic::AtomicU64,
}

impl ListenerStats {
    /// Requests it forwarded itself.
    pub fn forwarded(&self) -> u64 {
        self.forwarded.load(Ordering::Relaxed)
    }

    /// Connections it handed to hyper and the hot path (see `reverseproxy.listen`).
    pub fn handed_off(&self) -> u64 {
        self.handed_off.load(Ordering::Relaxed)
    }
}

impl std::fmt::Debug for Proxy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Proxy")
            .field("table", &self.table.load())
            .finish_non_exhaustive()
    }
}

/// Headers that belong to one connection (RFC 9110 §7.6.1), never forwarded.
const HOP_BY_HOP: [HeaderName; 8] = [
    header::CONNECTION,
    HeaderName::from_static("keep-alive"),
    HeaderName::from_static("proxy-connection"),
    header::PROXY_AUTHENTICATE,
    header::PROXY_AUTHORIZATION,
    header::TE,
    header::TRAILER,
    header::TRANSFER_ENCODING,
];

impl Proxy {
    /// A proxy over `table`, emitting events through `emit`.
    pub fn new(table: Table, emit: Emit) -> Self {
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        connector.set_connect_timeout(Some(Duration::from_secs(5)));
        let http1 = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(60))
            .pool_max_idle_per_host(256)
            .build(connector.clone());
        let h2c = Client::builder(TokioExecutor::new())
            .http2_only(true)
            .build(connector);
        Self {
            table: ArcSwap::from_pointee(table),
            http1,
            h2c,
            budget: crate::budget::RetryBudget::new(),
            emit,
            shadow_slots: Arc::new(tokio::sync::Semaphore::new(crate::SHADOW_IN_FLIGHT)),
            shadow_stats: crate::shadow::ShadowStats::default(),
            listen_addr: std::sync::OnceLock::new(),
            listener_stats: ListenerStats::default(),
        }
    }

    /// Mirrored requests so far.
    pub fn shadow_stats(&self) -> &crate::shadow::ShadowStats {
        &self.shadow_stats
    }

    /// Mirrored requests in flight now.
    pub fn shadows_in_flight(&self) -> usize {
        crate::SHADOW_IN_FLIGHT.saturating_sub(self.shadow_slots.available_permits())
    }

    /// The address of the module's own listener (`reverseproxy.listen`), once it listens.
    pub fn listen_addr(&self) -> Option<std::net::SocketAddr> {
        self.listen_addr.get().copied()
    }

    /// What the module's own listener did so far.
    pub fn listener_stats(&self) -> &ListenerStats {
        &self.listener_stats
    }

    /// The table requests are routed with now.
    pub fn table(&self) -> Arc<Table> {
        self.table.load_full()
    }

    /// Forwards one request.
    pub async fn handle(self: Arc<Self>, mut request: Request<Body>) -> Response {
        let table = self.table.load_full();
        // A `HeaderValue` clone shares its bytes: no copy of the host per request.
        let host_header = request.headers().get(header::HOST).cloned();
        let authority = request.uri().authority().cloned();
        let host = host_header
            .as_ref()
            .and_then(|h| h.to_str().ok())
            .or_else(|| authority.as_ref().map(http::uri::Authority::as_str));
        let Some(route) = table.route(request.method(), host, request.uri().path()) else {
            return (StatusCode::NOT_FOUND, "no route\n").into_response();
        };
        if let Some(composite) = &route.composite {
            return crate::composite::serve(&self, &table, route, composite, host, request).await;
        }
        let started = Instant::now();
        self.budget.record_request(started);
        let upgrade = is_upgrade(request.headers());
        let client_upgrade = upgrade.then(|| hyper::upgrade::on(&mut request));
        let (mut parts, body) = request.into_parts();
        let path_and_query = match route.upstream_path(parts.uri.path()) {
            // Unchanged: the request's own (shared bytes, no copy).
            std::borrow::Cow::Borrowed(_) => parts
                .uri
                .path_and_query()
                .cloned()
                .unwrap_or_else(|| PathAndQuery::from_static("/")),
            std::borrow::Cow::Owned(path) => {
                let joined = match parts.uri.query() {
                    Some(q) => format!("{path}?{q}"),
                    None => path,
                };
                match PathAndQuery::try_from(joined) {
                    Ok(pq) => pq,
                    Err(error) => {
                        return (StatusCode::BAD_REQUEST, format!("bad path: {error}\n"))
                            .into_response();
                    }
                }
            }
        };
        let peer = parts
            .extensions
            .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
            .map(|c| c.0.ip());
        prepare_headers(
            &mut parts.headers,
            route,
            host,
            host_header.as_ref(),
            upgrade,
            peer,
        );
        let replayable = is_idempotent(&parts.method) && body.is_end_stream() && !upgrade;
        let attempts = if replayable { 1 + route.retries } else { 1 };
        let (body, mut mirror) =
            crate::shadow::decide(&self, route, &parts.method, &parts.headers, body, upgrade);
        let pool = &route.pool;
        let mut body = Some(body);
        let mut tried = Tried::default();
        let deadline = started + route.timeout;
        let mut last_error = String::new();
        // A retry on a status takes its budget before the answer is let go (a refused one
        // returns that answer); a retry after a failure takes it at the top of the loop.
        let mut granted = false;
        for attempt in 0..attempts {
            if attempt > 0 && !std::mem::take(&mut granted) && !self.retry(route, &table) {
                break;
            }
            let now = Instant::now();
            let Some(index) = pool.choose(&parts.headers, tried.as_slice(), now) else {
                break;
            };
            tried.push(index);
            let backend = &pool.backends[index];
            let mut upstream = Request::new(body.take().unwrap_or_else(Body::empty));
            *upstream.method_mut() = parts.method.clone();
            // The last possible attempt takes the headers; an earlier one copies them.
            *upstream.headers_mut() = if attempt + 1 < attempts {
                parts.headers.clone()
            } else {
                std::mem::take(&mut parts.headers)
            };
            let guard = Outstanding::new(backend);
            backend.requests.fetch_add(1, Ordering::Relaxed);
            let sent = tokio::time::timeout_at(
                deadline,
                crate::exchange::dispatch(&self, pool, backend, upstream, &path_and_query, upgrade),
            )
            .await;
            let now = Instant::now();
            pool.upstream_seconds
                .record(now.duration_since(started).as_secs_f64());
            match sent {
                Ok(Ok((mut response, conn))) => {
                    let status = response.status();
                    self.record(pool, backend, Outcome::of(status), now);
                    if attempt + 1 < attempts
                        && route.retry_on.contains(&status.as_u16())
                        && self.retry(route, &table)
                    {
                        granted = true;
                        last_error = format!("backend {} answered {status}", backend.label());
                        continue;
                    }
                    route.series[index].count(m::class_index(status));
                    if status == StatusCode::SWITCHING_PROTOCOLS
                        && let Some(client_upgrade) = client_upgrade
                    {
                        let upstream_upgrade = hyper::upgrade::on(&mut response);
                        tokio::spawn(splice(client_upgrade, upstream_upgrade));
                        let (mut parts, _) = response.into_parts();
                        strip_response_headers(&mut parts.headers, true);
                        return Response::from_parts(parts, Body::empty());
                    }
                    let (mut parts, incoming) = response.into_parts();
                    strip_response_headers(&mut parts.headers, false);
                    let mut body = Body::new(upstream::Streamed::new(incoming, conn, guard));
                    if let Some(mirror) = mirror.take() {
                        let path = path_and_query.clone();
                        body = crate::shadow::mirror(&self, route, mirror, path, status, body);
                    }
                    return Response::from_parts(parts, body);
                }
                Ok(Err(error)) => {
                    self.record(pool, backend, Outcome::Failure, now);
                    last_error = format!("backend {} failed: {error}", backend.label());
                    tracing::debug!(module = "reverseproxy", pool = %pool.name, backend = %backend.label(), %error, "upstream request failed");
                    if !error.is_connect() && !replayable {
                        break;
                    }
                }
                Err(_) => {
                    self.record(pool, backend, Outcome::Failure, now);
                    route.series[index].count(m::TIMEOUT);
                    return (StatusCode::GATEWAY_TIMEOUT, route.timed_out(backend)).into_response();
                }
            }
        }
        route.unanswered.count(4);
        if tried.as_slice().is_empty() {
            let (message, retry_after) = pool.unavailable(Instant::now());
            let mut response = (StatusCode::SERVICE_UNAVAILABLE, message).into_response();
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(retry_after));
            return response;
        }
        (StatusCode::BAD_GATEWAY, format!("{last_error}\n")).into_response()
    }

    /// Takes a retry from the budget, counting it either way.
    pub(crate) fn retry(&self, route: &Route, table: &Table) -> bool {
        if self.budget.try_retry(Instant::now(), table.retry_budget) {
            route.retries_series.increment(1);
            true
        } else {
            route.retries_denied_series.increment(1);
            false
        }
    }

    pub(crate) fn record(&self, pool: &Pool, backend: &Backend, outcome: Outcome, now: Instant) {
        let transition = backend.record(outcome, &pool.outlier, &pool.breaker, now);
        match transition {
            Some(Transition::Ejected(length)) => {
                tracing::warn!(module = "reverseproxy", pool = %pool.name, backend = %backend.label(), seconds = length.as_secs_f64(), "backend ejected");
                (self.emit)(
                    "backend.ejected",
                    serde_json::json!({
                        "pool": pool.name,
                        "backend": backend.label(),
                        "ejected_ms": u64::try_from(length.as_millis()).unwrap_or(u64::MAX),
                    }),
                );
            }
            Some(Transition::BreakerOpened) => {
                tracing::warn!(module = "reverseproxy", pool = %pool.name, backend = %backend.label(), "backend breaker opened");
            }
            _ => {}
        }
        backend.breaker_series.set(backend.breaker_gauge());
    }
}

/// The backends a request tried, in order: inline for the first few (no allocation per
/// request), then on the heap.
#[derive(Default)]
pub(crate) struct Tried {
    inline: [usize; 4],
    len: usize,
    spilled: Vec<usize>,
}

impl Tried {
    pub(crate) fn push(&mut self, index: usize) {
        if self.spilled.is_empty() && self.len < self.inline.len() {
            self.inline[self.len] = index;
            self.len += 1;
        } else {
            if self.spilled.is_empty() {
                self.spilled.extend_from_slice(&self.inline[..self.len]);
            }
            self.spilled.push(index);
        }
    }

    pub(crate) fn as_slice(&self) -> &[usize] {
        if self.spilled.is_empty() {
            &self.inline[..self.len]
        } else {
            &self.spilled
        }
    }
}

pub(crate) fn is_idempotent(method: &Method) -> bool {
    matches!(
        *method,
        Method::GET | Method::HEAD | Method::OPTIONS | Method::PUT | Method::DELETE | Method::TRACE
    )
}

fn is_upgrade(headers: &HeaderMap) -> bool {
    headers.contains_key(header::UPGRADE)
        && headers
            .get_all(header::CONNECTION)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .any(|t| t.trim().eq_ignore_ascii_case("upgrade"))
}

/// Removes hop-by-hop headers (and those `Connection` names), applies the route's header
/// changes, and adds `X-Forwarded-*` and `Forwarded`.
///
/// `host_header` is the request's `Host` (when `host` came from it, its bytes are shared, not
/// copied); each value built here is written once into the buffer the header then owns.
pub(crate) fn prepare_headers(
    headers: &mut HeaderMap,
    route: &Route,
    host: Option<&str>,
    host_header: Option<&HeaderValue>,
    upgrade: bool,
    peer: Option<std::net::IpAddr>,
) {
    use std::fmt::Write as _;
    remove_hop_by_hop(headers);
    if !upgrade {
        headers.remove(header::UPGRADE);
    } else {
        headers.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
    }
    for name in &route.remove_headers {
        headers.remove(name);
    }
    for (name, value) in &route.add_headers {
        headers.insert(name.clone(), value.clone());
    }
    if let Some(host) = host {
        let value = match host_header {
            Some(value) if value.to_str().ok() == Some(host) => Ok(value.clone()),
            _ => HeaderValue::from_str(host),
        };
        if let Ok(value) = value {
            headers.insert(HeaderName::from_static("x-forwarded-host"), value);
        }
    }
    headers.insert(
        HeaderName::from_static("x-forwarded-proto"),
        HeaderValue::from_static("http"),
    );
    let xff = HeaderName::from_static("x-forwarded-for");
    let mut forwarded = String::with_capacity(64 + host.map_or(0, str::len));
    if let Some(peer) = peer {
        let mut chain = String::with_capacity(48);
        if let Some(before) = headers.get(&xff).and_then(|v| v.to_str().ok()) {
            chain.push_str(before);
            chain.push_str(", ");
        }
        let _ = write!(chain, "{peer}");
        if let Ok(value) = HeaderValue::from_maybe_shared(axum::body::Bytes::from(chain)) {
            headers.insert(xff, value);
        }
        let _ = match peer {
            std::net::IpAddr::V4(ip) => write!(forwarded, "for={ip};"),
            std::net::IpAddr::V6(ip) => write!(forwarded, "for=\"[{ip}]\";"),
        };
    }
    forwarded.push_str("proto=http");
    if let Some(host) = host {
        let _ = write!(forwarded, ";host=\"{host}\"");
    }
    if let Ok(value) = HeaderValue::from_maybe_shared(axum::body::Bytes::from(forwarded)) {
        headers.append(header::FORWARDED, value);
    }
}

fn remove_hop_by_hop(headers: &mut HeaderMap) {
    let named: Vec<HeaderName> = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|t| HeaderName::from_bytes(t.trim().as_bytes()).ok())
        .filter(|n| n != header::UPGRADE)
        .collect();
    for name in named {
        headers.remove(name);
    }
    for name in &HOP_BY_HOP {
        headers.remove(name);
    }
}

pub(crate) fn strip_response_headers(headers: &mut HeaderMap, upgrade: bool) {
    let keep_connection = upgrade.then(|| headers.get(header::CONNECTION).cloned());
    remove_hop_by_hop(headers);
    if let Some(Some(connection)) = keep_connection {
        headers.insert(header::CONNECTION, connection);
    } else if !upgrade {
        headers.remove(header::UPGRADE);
    }
}

async fn splice(client: hyper::upgrade::OnUpgrade, upstream: hyper::upgrade::OnUpgrade) {
    let (Ok(client), Ok(upstream)) = (client.await, upstream.await) else {
        return;
    };
    let mut client = TokioIo::new(client);
    let mut upstream = TokioIo::new(upstream);
    let _ = tokio::io::copy_bidirectional(&mut client, &mut upstream).await;
}

/// Counts a request in flight on its backend until its response body is gone.
pub(crate) struct Outstanding(pub(crate) Arc<Backend>);

impl Outstanding {
    pub(crate) fn new(backend: &Arc<Backend>) -> Self {
        backend.outstanding.fetch_add(1, Ordering::Relaxed);
        Self(Arc::clone(backend))
    }
}

impl Drop for Outstanding {
    fn drop(&mut self) {
        self.0.outstanding.fetch_sub(1, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tried_backends_keep_their_order_inline_and_past_it() {
        let mut tried = Tried::default();
        assert!(tried.as_slice().is_empty());
        for index in [3, 1, 4, 1, 5, 9] {
            tried.push(index);
        }
        assert_eq!(tried.as_slice(), &[3, 1, 4, 1, 5, 9]);
    }
}
