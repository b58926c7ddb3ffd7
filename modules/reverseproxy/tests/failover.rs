//! A backend killed mid-traffic: no idempotent request fails, the backend is marked down by
//! its checks and back up after M passed checks, with events and health following.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use modular_core::health::HealthStatus;
use modular_testkit::FaultProxy;
use serde_json::json;
use support::{Upstream, eventually};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backend_killed_mid_traffic_fails_no_request_and_comes_back_after_m_checks() {
    let a = Upstream::start("a").await;
    let b = Upstream::start("b").await;
    let cut = FaultProxy::start(b.addr).await.unwrap();
    let interval = Duration::from_millis(100);
    let mut app = support::start(json!({
        "routes": [{ "match": { "prefix": "/" }, "pool": "p", "retries": 2 }],
        "pools": { "p": {
            "backends": [{ "url": a.url() }, { "url": format!("http://{}", cut.addr()) }],
            "health_check": {
                "path": "/health", "interval": "100ms", "timeout": "200ms",
                "unhealthy_threshold": 2, "healthy_threshold": 3,
            },
        } },
    }))
    .await
    .unwrap();
    let proxy = app.proxy();
    let app_ref = Arc::new(app.http.clone());
    let url = app.url("/work");
    let stop = Arc::new(AtomicBool::new(false));
    let (ok, failed) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let mut clients = Vec::new();
    for _ in 0..4 {
        let (http, url, stop) = (Arc::clone(&app_ref), url.clone(), Arc::clone(&stop));
        let (ok, failed) = (Arc::clone(&ok), Arc::clone(&failed));
        clients.push(tokio::spawn(async move {
            while !stop.load(Ordering::SeqCst) {
                match http.get(&url).send().await {
                    Ok(r) if r.status() == 200 => {
                        ok.fetch_add(1, Ordering::SeqCst);
                    }
                    other => {
                        eprintln!("failed: {:?}", other.map(|r| r.status()));
                        failed.fetch_add(1, Ordering::SeqCst);
                    }
                }
            }
        }));
    }
    assert!(eventually(Duration::from_secs(5), || async { b.hits() > 20 }).await);

    cut.cut();
    let cut_at = tokio::time::Instant::now();
    let backend_b = || {
        proxy
            .table()
            .backends()
            .find(|x| x.label() == cut.addr().to_string())
            .cloned()
            .unwrap()
    };
    assert!(eventually(Duration::from_secs(5), || async { !backend_b().is_up() }).await);
    let marked_down = cut_at.elapsed();
    // Two failed checks, each within one interval plus its timeout.
    assert!(
        marked_down < (interval + Duration::from_millis(200)) * 3,
        "marked down after {marked_down:?}"
    );
    let statuses: Vec<HealthStatus> = app.reports().await.iter().map(|r| r.status).collect();
    assert_eq!(statuses, [HealthStatus::Degraded]);
    let ok_while_down = ok.load(Ordering::SeqCst);
    assert!(
        eventually(Duration::from_secs(5), || async {
            ok.load(Ordering::SeqCst) > ok_while_down + 50
        })
        .await
    );

    cut.restore();
    let restored_at = tokio::time::Instant::now();
    assert!(eventually(Duration::from_secs(5), || async { backend_b().is_up() }).await);
    assert!(
        restored_at.elapsed() >= interval * 2,
        "three passed checks take at least two intervals"
    );
    let hits = b.hits();
    assert!(eventually(Duration::from_secs(5), || async { b.hits() > hits + 10 }).await);
    stop.store(true, Ordering::SeqCst);
    for client in clients {
        client.await.unwrap();
    }
    assert_eq!(failed.load(Ordering::SeqCst), 0, "no request failed");
    assert!(ok.load(Ordering::SeqCst) > 100);

    let statuses: Vec<HealthStatus> = app.reports().await.iter().map(|r| r.status).collect();
    assert_eq!(statuses, [HealthStatus::Healthy]);
    let events: Vec<String> = app.events().into_iter().map(|(ty, _)| ty).collect();
    assert!(
        events.contains(&"com.modular.reverseproxy.backend.down".to_owned()),
        "{events:?}"
    );
    assert!(
        events.contains(&"com.modular.reverseproxy.backend.up".to_owned()),
        "{events:?}"
    );
    app.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pool_without_reachable_backends_is_unhealthy_and_recovers() {
    let a = Upstream::start("a").await;
    let mut app = support::start(json!({
        "routes": [{ "match": { "prefix": "/" }, "pool": "p" }],
        "pools": { "p": {
            "backends": [{ "url": a.url() }],
            "health_check": { "path": "/health", "interval": "20ms", "unhealthy_threshold": 1, "healthy_threshold": 1 },
        } },
    }))
    .await
    .unwrap();
    a.healthy.store(false, Ordering::SeqCst);
    let unhealthy = eventually(Duration::from_secs(5), || async {
        app.reports().await[0].status == HealthStatus::Unhealthy
    })
    .await;
    assert!(unhealthy);
    let report = app.reports().await.remove(0);
    assert_eq!(report.component, "pool.p");
    let backend = &report.details["backends"][a.addr.to_string()];
    assert_eq!(backend["state"], "down", "{backend}");
    assert!(
        backend["last_error"].as_str().unwrap().contains("503"),
        "{backend}"
    );
    a.healthy.store(true, Ordering::SeqCst);
    let healthy = eventually(Duration::from_secs(5), || async {
        app.reports().await[0].status == HealthStatus::Healthy
    })
    .await;
    assert!(healthy);
    let _ = app.events();
    app.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn consecutive_5xx_eject_a_backend_with_an_event() {
    let a = Upstream::start("a").await;
    let b = Upstream::start("b").await;
    let mut app = support::start(json!({
        "routes": [{ "match": { "prefix": "/" }, "pool": "p", "retries": 0 }],
        "pools": { "p": {
            "backends": [{ "url": a.url() }, { "url": b.url() }],
            "outlier": { "consecutive_failures": 2, "base_ejection": "30s" },
        } },
    }))
    .await
    .unwrap();
    // Round robin alternates; a's share of /status/500 answers ejects it.
    for _ in 0..4 {
        let _ = app.get("/status/500").await;
    }
    let events = app.events();
    let ejected: Vec<_> = events
        .iter()
        .filter(|(ty, _)| ty == "com.modular.reverseproxy.backend.ejected")
        .collect();
    assert!(!ejected.is_empty(), "{events:?}");
    assert_eq!(ejected[0].1["ejected_ms"], 30_000);
    // Both answered 500 twice, so both are ejected: the pool is unavailable.
    let response = app.http.get(app.url("/x")).send().await.unwrap();
    assert_eq!(response.status(), 503);
    assert!(response.headers().contains_key("retry-after"));
    app.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retries_skip_the_backend_that_answered_a_retryable_status() {
    let a = Upstream::start("a").await;
    let b = Upstream::start("b").await;
    let app = support::start(json!({
        "routes": [{ "match": { "prefix": "/" }, "pool": "p", "retries": 1, "retry_on": [404] }],
        "pools": { "p": { "backends": [{ "url": a.url() }, { "url": b.url() }],
                          "outlier": { "consecutive_failures": 0 } } },
    }))
    .await
    .unwrap();
    // Every backend answers 404 on /status/404: one retry, to the other backend.
    let (status, _) = app.get("/status/404").await;
    assert_eq!(status, 404);
    assert_eq!((a.hits(), b.hits()), (1, 1));
    // A POST is not idempotent: no retry.
    let response = app.http.post(app.url("/status/404")).send().await.unwrap();
    assert_eq!(response.status(), 404);
    assert_eq!(a.hits() + b.hits(), 3);
    app.finish().await;
}

/// An h2c pool's checks speak HTTP/2 too: a backend that speaks only h2c is checked (its
/// `/health` answer, not a refused HTTP/1.1 connection, decides), fails and recovers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_h2c_pool_is_checked_over_http2() {
    let a = Upstream::start_h2c_only("a").await;
    let mut app = support::start(json!({
        "routes": [{ "match": { "prefix": "/" }, "pool": "p" }],
        "pools": { "p": {
            "protocol": "h2c",
            "backends": [{ "url": a.url() }],
            "health_check": { "path": "/health", "interval": "20ms", "unhealthy_threshold": 1, "healthy_threshold": 1 },
        } },
    }))
    .await
    .unwrap();
    let key = a.addr.to_string();
    let checked = eventually(Duration::from_secs(5), || async {
        let report = app.reports().await.remove(0);
        !report.details["backends"][&key]["last_check"].is_null()
    })
    .await;
    assert!(checked);
    let report = app.reports().await.remove(0);
    assert_eq!(report.status, HealthStatus::Healthy, "{:?}", report.details);
    let (status, body) = app.get("/over-h2").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["version"], "HTTP/2.0");

    a.healthy.store(false, Ordering::SeqCst);
    let down = eventually(Duration::from_secs(5), || async {
        app.reports().await[0].status == HealthStatus::Unhealthy
    })
    .await;
    assert!(down);
    let report = app.reports().await.remove(0);
    let backend = &report.details["backends"][&key];
    // The check reached the backend's handler: its 503, not a connection error.
    assert!(
        backend["last_error"].as_str().unwrap().contains("503"),
        "{backend}"
    );
    a.healthy.store(true, Ordering::SeqCst);
    let up = eventually(Duration::from_secs(5), || async {
        app.reports().await[0].status == HealthStatus::Healthy
    })
    .await;
    assert!(up);
    let _ = app.events();
    app.finish().await;
}
