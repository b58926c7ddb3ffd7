//! HTTP benchmark (DESIGN.md §6): `GET /readyz` (the health aggregator's cached answer,
//! default 250 ms TTL) against a static route, on the same server, in one run.
//!
//! One application (router + httpserver on a loopback port) serves both routes through the
//! full middleware stack. Each iteration sends 64 requests over 8 keep-alive HTTP/1.1
//! connections (8 concurrent connections, 8 requests each, in sequence), so the throughput
//! criterion reports is requests per second; compare `http/readyz` with `http/static`
//! (target: readyz >= 0.9x static).
//!
//! Criterion measures the two one after the other, so load from other processes that changes
//! in between skews their ratio. The bench therefore also runs them interleaved (alternating
//! blocks of rounds) and prints both medians and the ratio from that run.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::sync::Arc;

use axum::body::Body;
use axum::routing::get;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use modular_core::Application;
use modular_core::http::RouteRegistry;
use modular_httpserver::{HttpServerHandle, HttpServerModule};
use modular_router::RouterModule;
use tokio::sync::Mutex;

const CONNECTIONS: usize = 8;
const REQUESTS_PER_CONNECTION: usize = 8;

struct Fixture {
    _app: Application,
    _dir: tempfile::TempDir,
    connections: Vec<Arc<Mutex<SendRequest<Body>>>>,
}

async fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("config.yaml");
    // Port 0: the server picks a free port; the handle reports it.
    std::fs::write(
        &path,
        "httpserver:\n  host: 127.0.0.1\n  port: 0\n  drain_delay: 0s\n",
    )
    .unwrap();
    let mut app = Application::builder()
        .config_file(&path)
        .env_prefix(None)
        .module(RouterModule::new())
        .module(HttpServerModule::new())
        .with_health_aggregator()
        .handle_signals(false)
        .build()
        .await
        .unwrap();
    RouteRegistry::shared(app.services()).route("bench", "/static", get(|| async { "ok" }));
    app.start().await.unwrap();
    let addr = app
        .services()
        .require::<HttpServerHandle>()
        .unwrap()
        .local_addr()
        .unwrap();
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
    let fixture = Fixture {
        _app: app,
        _dir: dir,
        connections,
    };
    // Both routes answer 200 "ok" before anything is measured.
    for path in ["/readyz", "/static"] {
        let (status, body) = request(&fixture.connections[0], path).await;
        assert_eq!((status, body.as_slice()), (200, &b"ok"[..]), "{path}");
    }
    fixture
}

async fn request(connection: &Mutex<SendRequest<Body>>, path: &'static str) -> (u16, Vec<u8>) {
    let mut sender = connection.lock().await;
    sender.ready().await.unwrap();
    let request = axum::http::Request::get(path)
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

async fn round(fixture: &Fixture, path: &'static str) {
    let tasks: Vec<_> = fixture
        .connections
        .iter()
        .map(|connection| {
            let connection = Arc::clone(connection);
            tokio::spawn(async move {
                for _ in 0..REQUESTS_PER_CONNECTION {
                    let (status, _) = request(&connection, path).await;
                    assert_eq!(status, 200);
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap();
    }
}

fn http(c: &mut Criterion) {
    modular_core::install_default_crypto_provider();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let fixture = runtime.block_on(fixture());
    let mut group = c.benchmark_group("http");
    group.throughput(Throughput::Elements(
        (CONNECTIONS * REQUESTS_PER_CONNECTION) as u64,
    ));
    for path in ["/static", "/readyz"] {
        let name = path.trim_start_matches('/');
        group.bench_function(name, |b| {
            b.to_async(&runtime).iter(|| round(&fixture, path))
        });
    }
    group.finish();
    if !std::env::args().any(|arg| arg == "--test" || arg == "--list") {
        runtime.block_on(interleaved(&fixture));
    }
    drop(fixture);
}

/// Alternates blocks of `/static` and `/readyz` rounds and prints the median round time of
/// each and the throughput ratio.
async fn interleaved(fixture: &Fixture) {
    const CYCLES: usize = 40;
    const ROUNDS_PER_BLOCK: usize = 25;
    let mut times: [Vec<f64>; 2] = [Vec::new(), Vec::new()];
    for _ in 0..CYCLES {
        for (i, path) in ["/static", "/readyz"].into_iter().enumerate() {
            for _ in 0..ROUNDS_PER_BLOCK {
                let started = std::time::Instant::now();
                round(fixture, path).await;
                times[i].push(started.elapsed().as_secs_f64());
            }
        }
    }
    let requests = (CONNECTIONS * REQUESTS_PER_CONNECTION) as f64;
    let [static_median, readyz_median] = times.map(|mut t| {
        t.sort_by(f64::total_cmp);
        t[t.len() / 2]
    });
    println!(
        "http/interleaved: static median {:.1} us/round ({:.0} req/s), readyz median {:.1} us/round ({:.0} req/s), readyz/static throughput {:.3}x",
        static_median * 1e6,
        requests / static_median,
        readyz_median * 1e6,
        requests / readyz_median,
        static_median / readyz_median,
    );
}

criterion_group!(benches, http);
criterion_main!(benches);
