//! A real HTTP server for the tests: axum on a free loopback port, in the test's runtime.
#![allow(dead_code, unreachable_pub, clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashMap;
use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU16, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::extract::{ConnectInfo, Path, Query, State};
use axum::http::{HeaderMap, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::any;
use modular_core::Application;
use modular_core::config::TextFormat;
use modular_core::reload::ReloadOptions;
use modular_httpclient::HttpClientModule;
use tokio::sync::Notify;
use tokio::time::Instant;

/// One request the server received.
#[derive(Clone, Debug)]
pub struct Hit {
    pub method: Method,
    pub path: String,
    pub headers: HeaderMap,
    pub at: Instant,
}

#[derive(Default)]
pub struct ServerState {
    hits: Mutex<Vec<Hit>>,
    /// Failures still to serve, per key, on `/flaky/{key}`.
    failures: Mutex<HashMap<String, u32>>,
    /// What `/health` answers.
    pub health_status: AtomicU16,
    /// Notified when a request reaches `/slow`.
    pub slow_arrived: Notify,
}

/// The test server. Tasks live in the test's runtime and end with it.
pub struct TestServer {
    pub addr: SocketAddr,
    pub state: Arc<ServerState>,
}

impl TestServer {
    pub async fn start() -> TestServer {
        let state = Arc::new(ServerState::default());
        state.health_status.store(200, Ordering::SeqCst);
        let app = Router::new()
            .route("/flaky/{key}", any(flaky))
            .route("/status/{code}", any(status))
            .route("/retry-after/{key}", any(retry_after))
            .route("/slow/{millis}", any(slow))
            .route("/health", any(health))
            .route("/echo", any(echo))
            .route("/big", any(big))
            .route("/peer", any(peer))
            .route("/redirect/{n}", any(redirect))
            .route(
                "/compressed",
                any(compressed).layer(tower_http::compression::CompressionLayer::new()),
            )
            .with_state(Arc::clone(&state));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            let app = app.into_make_service_with_connect_info::<SocketAddr>();
            axum::serve(listener, app).await.unwrap();
        });
        TestServer { addr, state }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// Makes `/flaky/{key}` answer 503 `n` times, then 200.
    pub fn fail_next(&self, key: &str, n: u32) {
        self.state
            .failures
            .lock()
            .unwrap()
            .insert(key.to_owned(), n);
    }

    pub fn set_health(&self, status: u16) {
        self.state.health_status.store(status, Ordering::SeqCst);
    }

    /// Requests received on `path` so far.
    pub fn hits(&self, path: &str) -> Vec<Hit> {
        self.state
            .hits
            .lock()
            .unwrap()
            .iter()
            .filter(|h| h.path == path)
            .cloned()
            .collect()
    }

    /// The time between consecutive hits on `path`.
    pub fn gaps(&self, path: &str) -> Vec<Duration> {
        let hits = self.hits(path);
        hits.windows(2).map(|w| w[1].at - w[0].at).collect()
    }
}

fn record(state: &ServerState, method: &Method, path: String, headers: &HeaderMap) {
    state.hits.lock().unwrap().push(Hit {
        method: method.clone(),
        path,
        headers: headers.clone(),
        at: Instant::now(),
    });
}

async fn flaky(
    State(state): State<Arc<ServerState>>,
    Path(key): Path<String>,
    method: Method,
    headers: HeaderMap,
) -> Response {
    record(&state, &method, format!("/flaky/{key}"), &headers);
    let mut failures = state.failures.lock().unwrap();
    match failures.get_mut(&key) {
        Some(n) if *n > 0 => {
            *n -= 1;
            (StatusCode::SERVICE_UNAVAILABLE, "try later").into_response()
        }
        _ => (StatusCode::OK, "ok").into_response(),
    }
}

async fn status(
    State(state): State<Arc<ServerState>>,
    Path(code): Path<u16>,
    method: Method,
    headers: HeaderMap,
) -> Response {
    record(&state, &method, format!("/status/{code}"), &headers);
    StatusCode::from_u16(code).unwrap().into_response()
}

/// The first request answers 429 with `Retry-After` from the query (`?after=2` or
/// `?date=<http date>`), every later one 200.
async fn retry_after(
    State(state): State<Arc<ServerState>>,
    Path(key): Path<String>,
    Query(query): Query<HashMap<String, String>>,
    method: Method,
    headers: HeaderMap,
) -> Response {
    let path = format!("/retry-after/{key}");
    record(&state, &method, path.clone(), &headers);
    let seen = state
        .hits
        .lock()
        .unwrap()
        .iter()
        .filter(|h| h.path == path)
        .count();
    if seen > 1 {
        return (StatusCode::OK, "ok").into_response();
    }
    let value = query
        .get("after")
        .or_else(|| query.get("date"))
        .cloned()
        .unwrap_or_default();
    (
        StatusCode::TOO_MANY_REQUESTS,
        [("retry-after", value)],
        "slow down",
    )
        .into_response()
}

async fn slow(
    State(state): State<Arc<ServerState>>,
    Path(millis): Path<u64>,
    method: Method,
    headers: HeaderMap,
) -> Response {
    record(&state, &method, format!("/slow/{millis}"), &headers);
    state.slow_arrived.notify_one();
    tokio::time::sleep(Duration::from_millis(millis)).await;
    (StatusCode::OK, "finally").into_response()
}

async fn health(
    State(state): State<Arc<ServerState>>,
    method: Method,
    headers: HeaderMap,
) -> Response {
    record(&state, &method, "/health".to_owned(), &headers);
    StatusCode::from_u16(state.health_status.load(Ordering::SeqCst))
        .unwrap()
        .into_response()
}

/// Answers the request body back, with a `set-cookie` and an `x-trace` header. The request's
/// headers are in [`TestServer::hits`].
async fn echo(
    State(state): State<Arc<ServerState>>,
    method: Method,
    headers: HeaderMap,
    body: String,
) -> Response {
    record(&state, &method, "/echo".to_owned(), &headers);
    (
        StatusCode::OK,
        [
            ("set-cookie", "session=server-secret"),
            ("x-trace", "visible"),
        ],
        body,
    )
        .into_response()
}

/// A 4 KiB text body.
async fn big(
    State(state): State<Arc<ServerState>>,
    method: Method,
    headers: HeaderMap,
) -> Response {
    record(&state, &method, "/big".to_owned(), &headers);
    "0123456789abcdef".repeat(256).into_response()
}

/// The 4 KiB body of `/big`, compressed as the request's `Accept-Encoding` asks.
async fn compressed(
    State(state): State<Arc<ServerState>>,
    method: Method,
    headers: HeaderMap,
) -> Response {
    record(&state, &method, "/compressed".to_owned(), &headers);
    "0123456789abcdef".repeat(256).into_response()
}

/// Answers the caller's address (`127.0.0.1:<port>`): one port per connection.
async fn peer(
    State(state): State<Arc<ServerState>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    method: Method,
    headers: HeaderMap,
) -> Response {
    record(&state, &method, "/peer".to_owned(), &headers);
    peer.to_string().into_response()
}

/// `/redirect/{n}` answers 302 to `/redirect/{n - 1}`; `/redirect/0` answers 200 `landed`.
async fn redirect(
    State(state): State<Arc<ServerState>>,
    Path(n): Path<u32>,
    method: Method,
    headers: HeaderMap,
) -> Response {
    record(&state, &method, format!("/redirect/{n}"), &headers);
    match n.checked_sub(1) {
        Some(next) => (
            StatusCode::FOUND,
            [("location", format!("/redirect/{next}"))],
        )
            .into_response(),
        None => "landed".into_response(),
    }
}

/// A raw TCP server whose first `resets` connections are reset (RST) once the request arrives;
/// later ones get `200 ok`.
pub struct ResetServer {
    pub addr: SocketAddr,
    pub connections: Arc<std::sync::atomic::AtomicU32>,
}

impl ResetServer {
    pub async fn start(resets: u32) -> ResetServer {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let connections = Arc::new(std::sync::atomic::AtomicU32::new(0));
        let seen = Arc::clone(&connections);
        tokio::spawn(async move {
            loop {
                let (mut stream, _) = listener.accept().await.unwrap();
                let n = seen.fetch_add(1, Ordering::SeqCst);
                let mut buf = [0u8; 4096];
                let _ = stream.read(&mut buf).await;
                if n < resets {
                    stream.set_zero_linger().unwrap();
                    drop(stream);
                } else {
                    let _ = stream
                        .write_all(
                            b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok",
                        )
                        .await;
                }
            }
        });
        ResetServer { addr, connections }
    }

    pub fn url(&self) -> String {
        format!("http://{}/", self.addr)
    }
}

/// A listener that never accepts, its accept queue already full: Linux drops the SYNs of
/// further connects, so they hang until the client's connect timeout. Keep the value alive.
pub struct BlackHole {
    pub addr: SocketAddr,
    _listener: tokio::net::TcpListener,
    _fillers: Vec<std::net::TcpStream>,
}

impl BlackHole {
    pub fn start() -> BlackHole {
        let socket = tokio::net::TcpSocket::new_v4().unwrap();
        socket.bind("127.0.0.1:0".parse().unwrap()).unwrap();
        let addr = socket.local_addr().unwrap();
        let listener = socket.listen(0).unwrap();
        let mut fillers = Vec::new();
        // Blocking connects on the real clock (the test's clock may be paused): the first
        // ones fill the queue, the one that times out proves it is full.
        for _ in 0..16 {
            match std::net::TcpStream::connect_timeout(&addr, Duration::from_millis(200)) {
                Ok(stream) => fillers.push(stream),
                Err(_) => break,
            }
        }
        BlackHole {
            addr,
            _listener: listener,
            _fillers: fillers,
        }
    }

    pub fn url(&self) -> String {
        format!("http://{}/", self.addr)
    }
}

/// An application with only the httpclient module, configured by `yaml`, with reloads that
/// neither watch files nor wait for a health gate.
pub async fn app_with(yaml: &str) -> Result<Application, modular_core::Error> {
    app_builder(yaml).build().await
}

pub fn app_builder(yaml: &str) -> modular_core::ApplicationBuilder {
    Application::builder()
        .config_text("test.yaml", TextFormat::Yaml, yaml)
        .env_prefix(None)
        .module(HttpClientModule::new())
        .with_reload_options(quiet_reloads())
        .handle_signals(false)
}

pub fn quiet_reloads() -> ReloadOptions {
    ReloadOptions {
        watch_files: false,
        health_gate: false,
        ..ReloadOptions::default()
    }
}

/// A `tracing` writer that keeps everything written to it.
#[derive(Clone, Default)]
pub struct Captured(Arc<Mutex<Vec<u8>>>);

impl Captured {
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}

impl io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Captures `tracing` output at INFO and above on this thread until the guard drops.
pub fn capture_logs() -> (Captured, tracing::subscriber::DefaultGuard) {
    let captured = Captured::default();
    let writer = captured.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .with_max_level(tracing::Level::INFO)
        .finish();
    let guard = tracing::subscriber::set_default(subscriber);
    (captured, guard)
}
