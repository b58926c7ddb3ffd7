//! Reverse proxy benchmark (DESIGN.md §6): `GET /` on a static axum upstream, directly and
//! through the reverseproxy module (router + httpserver in front, one pool of one backend),
//! in one run on the same upstream.
//!
//! Each iteration sends 64 requests over 8 keep-alive HTTP/1.1 connections (8 requests per
//! connection in sequence), so criterion's throughput is requests per second. Compare
//! `reverseproxy/proxy` with `reverseproxy/direct`. The nginx comparison at 64 connections
//! with wrk is `cargo xtask bench-proxy` (docs/PERFORMANCE.md).
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::net::SocketAddr;
use std::sync::Arc;

use axum::body::Body;
use axum::routing::get;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use modular_core::Application;
use modular_httpserver::{HttpServerHandle, HttpServerModule};
use modular_reverseproxy::ReverseProxyModule;
use modular_router::RouterModule;
use tokio::sync::Mutex;

const CONNECTIONS: usize = 8;
const REQUESTS_PER_CONNECTION: usize = 8;

type Connections = Vec<Arc<Mutex<SendRequest<Body>>>>;

struct Fixture {
    _app: Application,
    direct: Connections,
    proxied: Connections,
}

async fn upstream() -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let app = axum::Router::new().fallback(get(|| async { "ok" }));
    tokio::spawn(async move { axum::serve(listener, app).await });
    addr
}

async fn connect(addr: SocketAddr) -> Connections {
    let mut connections = Vec::new();
    for _ in 0..CONNECTIONS {
        let stream = tokio::net::TcpStream::connect(addr).await.unwrap();
        stream.set_nodelay(true).unwrap();
        let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .unwrap();
        tokio::spawn(connection);
        connections.push(Arc::new(Mutex::new(sender)));
    }
    connections
}

async fn fixture() -> Fixture {
    let upstream = upstream().await;
    let mut app = Application::builder()
        .env_prefix(None)
        .config_defaults(serde_json::json!({
            "httpserver": { "host": "127.0.0.1", "port": 0, "drain_delay": "0s" },
            "reverseproxy": {
                "routes": [{ "match": { "prefix": "/" }, "pool": "bench" }],
                "pools": { "bench": { "backends": [{ "url": format!("http://{upstream}") }] } },
            },
        }))
        .module(ReverseProxyModule::new())
        .module(RouterModule::new())
        .module(HttpServerModule::new())
        .with_health_aggregator()
        .handle_signals(false)
        .build()
        .await
        .unwrap();
    app.start().await.unwrap();
    let proxy = app
        .services()
        .require::<HttpServerHandle>()
        .unwrap()
        .local_addr()
        .unwrap();
    let fixture = Fixture {
        _app: app,
        direct: connect(upstream).await,
        proxied: connect(proxy).await,
    };
    for connections in [&fixture.direct, &fixture.proxied] {
        let (status, body) = request(&connections[0]).await;
        assert_eq!((status, body.as_slice()), (200, &b"ok"[..]));
    }
    fixture
}

async fn request(connection: &Mutex<SendRequest<Body>>) -> (u16, Vec<u8>) {
    let mut sender = connection.lock().await;
    sender.ready().await.unwrap();
    let request = axum::http::Request::get("/bench")
        .header(axum::http::header::HOST, "127.0.0.1")
        .body(Body::empty())
        .unwrap();
    let response = sender.send_request(request).await.unwrap();
    let status = response.status().as_u16();
    let body = axum::body::to_bytes(Body::new(response.into_body()), 1024)
        .await
        .unwrap();
    (status, body.to_vec())
}

async fn round(connections: &Connections) {
    let tasks: Vec<_> = connections
        .iter()
        .map(|connection| {
            let connection = Arc::clone(connection);
            tokio::spawn(async move {
                for _ in 0..REQUESTS_PER_CONNECTION {
                    let (status, _) = request(&connection).await;
                    assert_eq!(status, 200);
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap();
    }
}

fn reverseproxy(c: &mut Criterion) {
    modular_core::install_default_crypto_provider();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let fixture = runtime.block_on(fixture());
    let mut group = c.benchmark_group("reverseproxy");
    group.throughput(Throughput::Elements(
        (CONNECTIONS * REQUESTS_PER_CONNECTION) as u64,
    ));
    group.bench_function("direct", |b| {
        b.to_async(&runtime).iter(|| round(&fixture.direct))
    });
    group.bench_function("proxy", |b| {
        b.to_async(&runtime).iter(|| round(&fixture.proxied))
    });
    group.finish();
    drop(fixture);
}

criterion_group!(benches, reverseproxy);
criterion_main!(benches);
