//! Reloads swap the table under traffic: nothing fails, in-flight requests finish where
//! they started, removed backends drain and get no new request.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use modular_core::ReloadStatus;
use serde_json::json;
use support::{Upstream, eventually, pool};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replacing_every_backend_under_keep_alive_load_fails_no_request() {
    let (old1, old2) = (Upstream::start("old1").await, Upstream::start("old2").await);
    let (new1, new2) = (Upstream::start("new1").await, Upstream::start("new2").await);
    let app = support::start(json!({
        "listen": "127.0.0.1:0",
        "routes": [{ "match": { "prefix": "/" }, "pool": "p" }],
        "pools": { "p": pool(&[&old1, &old2], "round_robin") },
    }))
    .await
    .unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let (ok, failed) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let mut clients = Vec::new();
    // Half the clients through httpserver, half through the module's own listener.
    for client in 0..4 {
        let url = if client % 2 == 0 {
            app.url("/load")
        } else {
            app.listener_url("/load")
        };
        let (http, stop) = (app.http.clone(), Arc::clone(&stop));
        let (ok, failed) = (Arc::clone(&ok), Arc::clone(&failed));
        clients.push(tokio::spawn(async move {
            while !stop.load(Ordering::SeqCst) {
                let passed = match http.get(&url).send().await {
                    Ok(r) => r.status() == 200 && r.text().await.is_ok(),
                    Err(_) => false,
                };
                if passed {
                    ok.fetch_add(1, Ordering::SeqCst);
                } else {
                    failed.fetch_add(1, Ordering::SeqCst);
                }
            }
        }));
    }
    assert!(
        eventually(Duration::from_secs(5), || async {
            old1.hits() + old2.hits() > 100
        })
        .await
    );
    let old_backends: Vec<_> = app.proxy().table().backends().cloned().collect();

    let outcome = app
        .app
        .set_override(
            "reverseproxy.pools.p.backends",
            json!([{ "url": new1.url() }, { "url": new2.url() }]),
        )
        .await
        .unwrap();
    assert_eq!(outcome.status, ReloadStatus::Applied, "{:?}", outcome.error);
    // Requests dispatched before the swap finish on the old backends (drain) ...
    assert!(
        eventually(Duration::from_secs(5), || async {
            old_backends.iter().all(|b| b.outstanding() == 0)
        })
        .await
    );
    let old_after_swap = old1.hits() + old2.hits();
    let sent_to_old: u64 = old_backends.iter().map(|b| b.requests()).sum();
    let new_before = new1.hits() + new2.hits();
    assert!(
        eventually(Duration::from_secs(10), || async {
            new1.hits() + new2.hits() > new_before + 200
        })
        .await
    );
    stop.store(true, Ordering::SeqCst);
    for client in clients {
        client.await.unwrap();
    }
    // ... and none arrives there after it.
    assert_eq!(old1.hits() + old2.hits(), old_after_swap);
    assert_eq!(
        old_backends.iter().map(|b| b.requests()).sum::<u64>(),
        sent_to_old
    );
    assert_eq!(failed.load(Ordering::SeqCst), 0);
    assert!(ok.load(Ordering::SeqCst) > 300);
    assert!(new1.hits() > 50 && new2.hits() > 50);
    assert!(app.proxy().listener_stats().forwarded() > 100);
    app.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_in_flight_request_finishes_on_the_backend_it_started_on() {
    let old = Upstream::start("old").await;
    let new = Upstream::start("new").await;
    let slow = modular_testkit::FaultProxy::start(old.addr).await.unwrap();
    slow.set_latency(Duration::from_millis(300));
    let app = support::start(json!({
        "routes": [{ "match": { "prefix": "/" }, "pool": "p" }],
        "pools": { "p": { "backends": [{ "url": format!("http://{}", slow.addr()) }] } },
    }))
    .await
    .unwrap();
    let url = app.url("/slow-one");
    let http = app.http.clone();
    let in_flight = tokio::spawn(async move {
        let response = http.get(&url).send().await.unwrap();
        let status = response.status().as_u16();
        let body: serde_json::Value = response.json().await.unwrap();
        (status, body["backend"].as_str().unwrap().to_owned())
    });
    let proxy = app.proxy();
    assert!(
        eventually(Duration::from_secs(5), || async {
            proxy.table().backends().any(|b| b.outstanding() == 1)
        })
        .await
    );
    let outcome = app
        .app
        .set_override(
            "reverseproxy.pools.p.backends",
            json!([{ "url": new.url() }]),
        )
        .await
        .unwrap();
    assert_eq!(outcome.status, ReloadStatus::Applied);
    assert_eq!(app.backend("/after").await, "new");
    assert_eq!(in_flight.await.unwrap(), (200, "old".to_owned()));
    app.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn routes_weights_and_balancing_change_live() {
    let a = Upstream::start("a").await;
    let b = Upstream::start("b").await;
    let app = support::start(json!({
        "routes": [{ "match": { "prefix": "/one" }, "pool": "p" }],
        "pools": { "p": pool(&[&a, &b], "round_robin") },
    }))
    .await
    .unwrap();
    assert_eq!(app.get("/two").await.0, 404);

    let mut overrides = std::collections::BTreeMap::new();
    overrides.insert(
        "reverseproxy.routes".to_owned(),
        json!([{ "match": { "prefix": "/two" }, "pool": "p" }]),
    );
    overrides.insert(
        "reverseproxy.pools.p".to_owned(),
        json!({ "balance": "weighted", "backends": [
            { "url": a.url(), "weight": 3 }, { "url": b.url(), "weight": 1 },
        ] }),
    );
    let outcome = app.app.set_overrides(overrides).await.unwrap();
    assert_eq!(outcome.status, ReloadStatus::Applied, "{:?}", outcome.error);
    // The router rebuilds from the registry: wait for the new prefix to be served.
    assert!(
        eventually(Duration::from_secs(5), || async {
            app.get("/two").await.0 == 200
        })
        .await
    );
    assert!(
        eventually(Duration::from_secs(5), || async {
            app.get("/one").await.0 == 404
        })
        .await
    );
    let mut a_count = 0;
    for _ in 0..40 {
        if app.backend("/two/x").await == "a" {
            a_count += 1;
        }
    }
    assert_eq!(a_count, 30, "3:1 weights");
    app.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_check_settings_change_live() {
    let a = Upstream::start("a").await;
    let app = support::start(json!({
        "routes": [{ "match": { "prefix": "/" }, "pool": "p" }],
        "pools": { "p": { "backends": [{ "url": a.url() }] } },
    }))
    .await
    .unwrap();
    a.healthy.store(false, Ordering::SeqCst);
    let proxy = app.proxy();
    // No checks configured: the failing /health is not looked at.
    assert!(proxy.table().backends().all(|b| b.is_up()));
    let outcome = app
        .app
        .set_override(
            "reverseproxy.pools.p.health_check",
            json!({ "path": "/health", "interval": "20ms", "unhealthy_threshold": 1 }),
        )
        .await
        .unwrap();
    assert_eq!(outcome.status, ReloadStatus::Applied, "{:?}", outcome.error);
    assert!(
        eventually(Duration::from_secs(5), || async {
            proxy.table().backends().all(|b| !b.is_up())
        })
        .await
    );
    app.finish().await;
}
