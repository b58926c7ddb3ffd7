//! Shared fixtures: real axum upstreams on port 0, and an application running the proxy
//! behind the router and the HTTP server.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::{Path, Request, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get};
use modular_core::Application;
use modular_core::events::EventStream;
use modular_reverseproxy::{Proxy, ReverseProxyModule};
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

/// One upstream: answers `{"backend": name, "path": .., "headers": {..}}` on every path,
/// plus `/health` (200 while `healthy`), `/status/{code}`, `/echo` (streams the request
/// body back), `/bytes/{n}` (streams n bytes), `/sleep/{ms}` (answers after ms) and
/// `/upgrade` (101, then echoes bytes).
#[derive(Clone)]
pub struct Upstream {
    pub name: String,
    pub addr: SocketAddr,
    pub hits: Arc<AtomicU64>,
    pub healthy: Arc<AtomicBool>,
    stop: CancellationToken,
    handshakes: Arc<AtomicU64>,
}

/// TLS connections handshaken aside, for `axum::serve`.
struct TlsListener {
    rx: tokio::sync::mpsc::Receiver<(
        tokio_rustls::server::TlsStream<tokio::net::TcpStream>,
        SocketAddr,
    )>,
    addr: SocketAddr,
}

impl axum::serve::Listener for TlsListener {
    type Io = tokio_rustls::server::TlsStream<tokio::net::TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        match self.rx.recv().await {
            Some(accepted) => accepted,
            None => std::future::pending().await,
        }
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        Ok(self.addr)
    }
}

#[allow(unused_imports)]
pub use modular_testkit::TestCa as Ca;

#[derive(Clone)]
struct UpState {
    name: String,
    hits: Arc<AtomicU64>,
    healthy: Arc<AtomicBool>,
}

async fn describe(State(s): State<UpState>, headers: HeaderMap, request: Request) -> Response {
    s.hits.fetch_add(1, Ordering::SeqCst);
    let mut seen = serde_json::Map::new();
    for (name, value) in &headers {
        seen.insert(
            name.as_str().to_owned(),
            json!(value.to_str().unwrap_or("")),
        );
    }
    axum::Json(json!({
        "backend": s.name,
        "method": request.method().as_str(),
        "version": format!("{:?}", request.version()),
        "path": request.uri().path_and_query().map(|p| p.as_str()).unwrap_or("/"),
        "headers": seen,
    }))
    .into_response()
}

async fn health(State(s): State<UpState>) -> StatusCode {
    if s.healthy.load(Ordering::SeqCst) {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    }
}

async fn status(State(s): State<UpState>, Path(code): Path<u16>) -> StatusCode {
    s.hits.fetch_add(1, Ordering::SeqCst);
    StatusCode::from_u16(code).unwrap()
}

async fn sleep(State(s): State<UpState>, Path(ms): Path<u64>) -> Response {
    s.hits.fetch_add(1, Ordering::SeqCst);
    tokio::time::sleep(Duration::from_millis(ms)).await;
    axum::Json(json!({ "backend": s.name, "slept_ms": ms })).into_response()
}

async fn echo(request: Request) -> Response {
    Response::new(Body::new(request.into_body()))
}

async fn bytes(Path(n): Path<u64>) -> Response {
    let chunk = axum::body::Bytes::from(vec![b'x'; 64 * 1024]);
    let chunks = n.div_ceil(64 * 1024);
    let stream = futures::stream::iter((0..chunks).map(move |i| {
        let len = if i + 1 == chunks {
            (n - i * 64 * 1024) as usize
        } else {
            64 * 1024
        };
        Ok::<_, std::io::Error>(chunk.slice(..len))
    }));
    Response::new(Body::from_stream(stream))
}

async fn upgrade(mut request: Request) -> Response {
    let on = hyper::upgrade::on(&mut request);
    tokio::spawn(async move {
        if let Ok(upgraded) = on.await {
            let mut io = hyper_util::rt::TokioIo::new(upgraded);
            let (mut r, mut w) = tokio::io::split(&mut io);
            let _ = tokio::io::copy(&mut r, &mut w).await;
        }
    });
    Response::builder()
        .status(StatusCode::SWITCHING_PROTOCOLS)
        .header("connection", "upgrade")
        .header("upgrade", "websocket")
        .header("sec-websocket-accept", "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=")
        .body(Body::empty())
        .unwrap()
}

fn routes(state: UpState) -> Router {
    Router::new()
        .route("/health", get(health))
        .route("/status/{code}", any(status))
        .route("/echo", any(echo))
        .route("/sleep/{ms}", get(sleep))
        .route("/bytes/{n}", get(bytes))
        .route("/upgrade", get(upgrade))
        .fallback(describe)
        .with_state(state)
}

impl Upstream {
    /// An HTTPS upstream on port 0 serving the same routes with `cert`/`key` (PEM files),
    /// ALPN `h2` and `http/1.1`; with `client_ca` it requires a client certificate signed
    /// by that CA. A failed handshake is dropped (the client sees the TLS error).
    pub async fn start_tls(
        name: &str,
        cert: &std::path::Path,
        key: &std::path::Path,
        client_ca: Option<&std::path::Path>,
    ) -> Self {
        use rustls::pki_types::pem::PemObject as _;
        use rustls::pki_types::{CertificateDer, PrivateKeyDer};
        modular_testkit::install_crypto_provider();
        let chain = CertificateDer::pem_file_iter(cert)
            .unwrap()
            .collect::<Result<Vec<_>, _>>()
            .unwrap();
        let key = PrivateKeyDer::from_pem_file(key).unwrap();
        let builder = rustls::ServerConfig::builder();
        let mut config = match client_ca {
            None => builder.with_no_client_auth(),
            Some(ca) => {
                let mut roots = rustls::RootCertStore::empty();
                for cert in CertificateDer::pem_file_iter(ca).unwrap() {
                    roots.add(cert.unwrap()).unwrap();
                }
                let verifier = rustls::server::WebPkiClientVerifier::builder(Arc::new(roots))
                    .build()
                    .unwrap();
                builder.with_client_cert_verifier(verifier)
            }
        }
        .with_single_cert(chain, key)
        .unwrap();
        config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
        let tcp = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = tcp.local_addr().unwrap();
        let (tx, rx) = tokio::sync::mpsc::channel(64);
        let handshakes = Arc::new(AtomicU64::new(0));
        let counted = Arc::clone(&handshakes);
        tokio::spawn(async move {
            while let Ok((stream, peer)) = tcp.accept().await {
                let (acceptor, tx) = (acceptor.clone(), tx.clone());
                let counted = Arc::clone(&counted);
                tokio::spawn(async move {
                    if let Ok(tls) = acceptor.accept(stream).await {
                        counted.fetch_add(1, Ordering::SeqCst);
                        let _ = tx.send((tls, peer)).await;
                    }
                });
            }
        });
        Self::spawn(name, TlsListener { rx, addr }, addr, handshakes)
    }

    /// `https://127.0.0.1:port`.
    pub fn https_url(&self) -> String {
        format!("https://{}", self.addr)
    }

    /// TLS handshakes completed (an HTTPS upstream).
    pub fn handshakes(&self) -> u64 {
        self.handshakes.load(Ordering::SeqCst)
    }

    pub async fn start(name: &str) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        Self::serve(name, listener).await
    }

    /// An upstream that speaks only HTTP/2 over cleartext (prior knowledge): an HTTP/1.1
    /// request on it fails at the connection.
    pub async fn start_h2c_only(name: &str) -> Self {
        use tower::ServiceExt as _;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        Self::spawn_serving(name, addr, Arc::default(), move |app, token| async move {
            loop {
                let (stream, _) = tokio::select! {
                    () = token.cancelled() => return,
                    accepted = listener.accept() => match accepted {
                        Ok(accepted) => accepted,
                        Err(_) => continue,
                    },
                };
                let app = app.clone();
                let service =
                    hyper::service::service_fn(move |request: Request<hyper::body::Incoming>| {
                        app.clone().oneshot(request.map(Body::new))
                    });
                tokio::spawn(
                    hyper_util::server::conn::auto::Builder::new(
                        hyper_util::rt::TokioExecutor::new(),
                    )
                    .http2_only()
                    .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                    .into_owned(),
                );
            }
        })
    }

    /// Serves on `listener` (for an upstream that comes back on the same port).
    pub async fn serve(name: &str, listener: tokio::net::TcpListener) -> Self {
        let addr = listener.local_addr().unwrap();
        Self::spawn(name, listener, addr, Arc::default())
    }

    /// Serves the upstream's routes on `listener` with `axum::serve` until stopped.
    fn spawn<L: axum::serve::Listener>(
        name: &str,
        listener: L,
        addr: SocketAddr,
        handshakes: Arc<AtomicU64>,
    ) -> Self
    where
        L::Addr: std::fmt::Debug,
    {
        Self::spawn_serving(name, addr, handshakes, move |app, token| async move {
            let _ = axum::serve(listener, app)
                .with_graceful_shutdown(async move { token.cancelled().await })
                .await;
        })
    }

    /// Runs `serve` over the upstream's routes as a task until the token is cancelled.
    fn spawn_serving<F, Fut>(
        name: &str,
        addr: SocketAddr,
        handshakes: Arc<AtomicU64>,
        serve: F,
    ) -> Self
    where
        F: FnOnce(Router, CancellationToken) -> Fut,
        Fut: std::future::Future<Output = ()> + Send + 'static,
    {
        let state = UpState {
            name: name.to_owned(),
            hits: Arc::new(AtomicU64::new(0)),
            healthy: Arc::new(AtomicBool::new(true)),
        };
        let stop = CancellationToken::new();
        tokio::spawn(serve(routes(state.clone()), stop.clone()));
        Self {
            name: name.to_owned(),
            addr,
            hits: state.hits,
            healthy: state.healthy,
            stop,
            handshakes,
        }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn hits(&self) -> u64 {
        self.hits.load(Ordering::SeqCst)
    }

    pub fn stop(&self) {
        self.stop.cancel();
    }
}

/// A running application: proxy, router and HTTP server.
pub struct App {
    pub app: Application,
    pub port: u16,
    pub http: reqwest::Client,
    pub events: EventStream,
}

pub async fn start(section: Value) -> anyhow::Result<App> {
    start_with(section, json!({})).await
}

/// As [`start`], with `httpserver` settings merged over the test defaults.
pub async fn start_with(section: Value, server: Value) -> anyhow::Result<App> {
    modular_testkit::install_crypto_provider();
    let mut app = build_with(section, server).await?;
    app.start().await?;
    let port = app
        .services()
        .require::<modular_httpserver::HttpServerHandle>()?
        .local_addr()
        .ok_or_else(|| anyhow::anyhow!("not listening"))?
        .port();
    modular_testkit::wait_for_tcp(("127.0.0.1", port), Duration::from_secs(5)).await?;
    let events = app
        .events()
        .subscribe(modular_core::events::EventFilter::prefix(
            "com.modular.reverseproxy.",
        ));
    Ok(App {
        app,
        port,
        http: reqwest::Client::builder()
            .no_proxy()
            .pool_max_idle_per_host(64)
            .build()?,
        events,
    })
}

pub async fn build(section: Value) -> Result<Application, modular_core::Error> {
    build_with(section, json!({})).await
}

pub async fn build_with(section: Value, server: Value) -> Result<Application, modular_core::Error> {
    let mut httpserver = json!({ "host": "127.0.0.1", "port": 0, "drain_delay": "0s" });
    if let (Some(base), Some(extra)) = (httpserver.as_object_mut(), server.as_object()) {
        base.extend(extra.clone());
    }
    modular_testkit::test_builder()
        .config_defaults(json!({
            "httpserver": httpserver,
            "reverseproxy": section,
        }))
        .module(ReverseProxyModule::new())
        .module(modular_router::RouterModule::new())
        .module(modular_httpserver::HttpServerModule::new())
        .with_health_options(
            modular_core::health::HealthOptions::default().with_cache_ttl(Duration::ZERO),
        )
        .build()
        .await
}

/// A pool section over `upstreams` with `balance`.
pub fn pool(upstreams: &[&Upstream], balance: &str) -> Value {
    json!({
        "balance": balance,
        "backends": upstreams.iter().map(|u| json!({ "url": u.url() })).collect::<Vec<_>>(),
    })
}

impl App {
    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    /// `path` on the module's own listener (`reverseproxy.listen`).
    pub fn listener_url(&self, path: &str) -> String {
        let addr = self
            .proxy()
            .listen_addr()
            .expect("reverseproxy.listen is set");
        format!("http://{addr}{path}")
    }

    /// GET `path` on the module's own listener.
    pub async fn get_on_listener(&self, path: &str) -> reqwest::Response {
        self.http.get(self.listener_url(path)).send().await.unwrap()
    }

    pub fn proxy(&self) -> Arc<Proxy> {
        self.app
            .services()
            .get::<Proxy>()
            .expect("the proxy service")
    }

    /// GET `path`, answering status and JSON (Null when not JSON).
    pub async fn get(&self, path: &str) -> (u16, Value) {
        let response = self.http.get(self.url(path)).send().await.unwrap();
        let status = response.status().as_u16();
        let text = response.text().await.unwrap();
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    /// The backend name that answered `path`.
    pub async fn backend(&self, path: &str) -> String {
        let (status, body) = self.get(path).await;
        assert_eq!(status, 200, "{body}");
        body["backend"].as_str().unwrap().to_owned()
    }

    /// The module's health reports, freshly checked.
    pub async fn reports(&self) -> Vec<modular_core::health::HealthReport> {
        let health = self.app.health().expect("aggregator");
        health
            .force_refresh()
            .await
            .reports
            .iter()
            .filter(|r| r.module == "reverseproxy")
            .cloned()
            .collect()
    }

    /// The event types received so far, with their data.
    pub fn events(&mut self) -> Vec<(String, Value)> {
        use cloudevents::AttributesReader as _;
        self.events
            .drain()
            .iter()
            .map(|e| {
                (
                    e.ty().to_owned(),
                    modular_core::events::event_data(e)
                        .cloned()
                        .unwrap_or(Value::Null),
                )
            })
            .collect()
    }

    pub async fn finish(mut self) {
        let _ = self.app.stop().await;
    }
}

/// Polls `condition` every 10 ms until it holds, or fails after `within`.
pub async fn eventually<F, Fut>(within: Duration, mut condition: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + within;
    loop {
        if condition().await {
            return true;
        }
        if tokio::time::Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Opens a connection to `addr` and asks for a WebSocket upgrade of `/upgrade` (the
/// upstreams echo the bytes that follow), answering the stream and the answer's head
/// (lower case) once it is read.
pub async fn websocket_handshake(addr: SocketAddr) -> (tokio::net::TcpStream, String) {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    stream
        .write_all(
            b"GET /upgrade HTTP/1.1\r\nHost: ws.test\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\
Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n",
        )
        .await
        .unwrap();
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        stream.read_exact(&mut byte).await.unwrap();
        head.push(byte[0]);
    }
    (
        stream,
        String::from_utf8(head).unwrap().to_ascii_lowercase(),
    )
}
