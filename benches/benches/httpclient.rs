//! httpclient benchmark (issue 15): one `GET` through `modular_httpclient::HttpClient` beside
//! the same `GET` on a plain `reqwest::Client`, to the same local axum server, in one run.
//!
//! - `httpclient/modular_get`: `HttpClient::get(url).send()`, then the body read (default
//!   config: modifiers, retry bookkeeping for an idempotent method, metrics handles).
//! - `httpclient/reqwest_get`: `reqwest::Client::get(url).send()`, then the body read, on a
//!   client built with the same timeouts and pool settings as the module's defaults.
//!
//! The server is axum on `127.0.0.1:0` (port read back), answering `GET /` with a 2-byte body;
//! both clients keep one HTTP/1.1 keep-alive connection, so each iteration is one request on a
//! warm connection. The server runs on its own multi-thread runtime, the clients on a
//! current-thread one, as a service calling another would.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use axum::routing::get;
use criterion::{Criterion, criterion_group, criterion_main};
use modular_benches::interleaved;
use modular_httpclient::{HttpClient, HttpClientConfig};

fn server() -> (tokio::runtime::Runtime, String) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let addr = rt.block_on(async {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let app = axum::Router::new().route("/", get(|| async { "ok" }));
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        addr
    });
    (rt, format!("http://{addr}/"))
}

fn get_vs_reqwest(c: &mut Criterion) {
    let (_server, url) = server();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let config = HttpClientConfig::default();
    let raw = reqwest::Client::builder()
        .timeout(config.request_timeout)
        .connect_timeout(config.connect_timeout)
        .pool_idle_timeout(config.pool_idle_timeout)
        .pool_max_idle_per_host(config.pool_max_idle_per_host)
        .build()
        .unwrap();
    let modular = {
        let _guard = rt.enter();
        HttpClient::new(config).unwrap()
    };
    // Both answer 200 "ok" (and have their connection open) before anything is measured.
    rt.block_on(async {
        let body = modular
            .get(&url)
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        assert_eq!(body, "ok");
        let body = raw.get(&url).send().await.unwrap().text().await.unwrap();
        assert_eq!(body, "ok");
    });

    let mut group = c.benchmark_group("httpclient");
    group.bench_function("modular_get", |b| {
        b.to_async(&rt).iter(|| async {
            let response = modular.get(&url).send().await.unwrap();
            std::hint::black_box(response.bytes().await.unwrap())
        });
    });
    group.bench_function("reqwest_get", |b| {
        b.to_async(&rt).iter(|| async {
            let response = raw.get(&url).send().await.unwrap();
            std::hint::black_box(response.bytes().await.unwrap())
        });
    });
    group.finish();

    rt.block_on(interleaved(
        "httpclient/get",
        (
            "modular",
            Box::new(|| {
                Box::pin(async {
                    let response = modular.get(&url).send().await.unwrap();
                    std::hint::black_box(response.bytes().await.unwrap());
                })
            }),
        ),
        (
            "reqwest",
            Box::new(|| {
                Box::pin(async {
                    let response = raw.get(&url).send().await.unwrap();
                    std::hint::black_box(response.bytes().await.unwrap());
                })
            }),
        ),
        40,
        100,
    ));
}

criterion_group!(benches, get_vs_reqwest);
criterion_main!(benches);
