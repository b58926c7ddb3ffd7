//! Balancing modes spread requests as configured, and only over healthy backends.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::collections::HashMap;
use std::time::Duration;

use serde_json::json;
use support::{Upstream, eventually, pool};

async fn three() -> (Upstream, Upstream, Upstream) {
    (
        Upstream::start("a").await,
        Upstream::start("b").await,
        Upstream::start("c").await,
    )
}

async fn counts(
    app: &support::App,
    n: usize,
    header: Option<(&str, String)>,
) -> HashMap<String, usize> {
    let mut counts = HashMap::new();
    for i in 0..n {
        let mut request = app.http.get(app.url(&format!("/r{i}")));
        if let Some((name, value)) = &header {
            request = request.header(*name, value.clone());
        }
        let body: serde_json::Value = request.send().await.unwrap().json().await.unwrap();
        *counts
            .entry(body["backend"].as_str().unwrap().to_owned())
            .or_default() += 1;
    }
    counts
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn round_robin_gives_each_backend_its_turn() {
    let (a, b, c) = three().await;
    let app = support::start(json!({
        "routes": [{ "match": { "prefix": "/" }, "pool": "p" }],
        "pools": { "p": pool(&[&a, &b, &c], "round_robin") },
    }))
    .await
    .unwrap();
    let counts = counts(&app, 300, None).await;
    for name in ["a", "b", "c"] {
        assert_eq!(counts[name], 100, "{counts:?}");
    }
    app.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn weighted_follows_the_weights() {
    let (a, b, _c) = three().await;
    let app = support::start(json!({
        "routes": [{ "match": { "prefix": "/" }, "pool": "p" }],
        "pools": { "p": {
            "balance": "weighted",
            "backends": [{ "url": a.url(), "weight": 3 }, { "url": b.url(), "weight": 1 }],
        } },
    }))
    .await
    .unwrap();
    let counts = counts(&app, 400, None).await;
    // Smooth weighted round robin is exact over whole cycles.
    assert_eq!(counts["a"], 300, "{counts:?}");
    assert_eq!(counts["b"], 100, "{counts:?}");
    app.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn least_outstanding_sends_less_to_a_slow_backend() {
    let (fast, slow, _c) = three().await;
    let cut = modular_testkit::FaultProxy::start(slow.addr).await.unwrap();
    cut.set_latency(Duration::from_millis(40));
    let app = support::start(json!({
        "routes": [{ "match": { "prefix": "/" }, "pool": "p" }],
        "pools": { "p": {
            "balance": "least_outstanding",
            "backends": [{ "url": fast.url() }, { "url": format!("http://{}", cut.addr()) }],
        } },
    }))
    .await
    .unwrap();
    let app = std::sync::Arc::new(app);
    let mut clients = Vec::new();
    for _ in 0..8 {
        let app = std::sync::Arc::clone(&app);
        clients.push(tokio::spawn(async move {
            for i in 0..25 {
                let (status, _) = app.get(&format!("/x{i}")).await;
                assert_eq!(status, 200);
            }
        }));
    }
    for client in clients {
        client.await.unwrap();
    }
    let (fast_hits, slow_hits) = (fast.hits(), slow.hits());
    assert_eq!(fast_hits + slow_hits, 200);
    assert!(
        slow_hits * 4 < fast_hits,
        "the slow backend got {slow_hits}, the fast one {fast_hits}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn consistent_hash_keeps_a_key_on_one_backend_and_spreads_keys() {
    let (a, b, c) = three().await;
    let mut header_pool = pool(&[&a, &b, &c], "consistent_hash");
    header_pool["hash_header"] = json!("x-user");
    let mut cookie_pool = pool(&[&a, &b, &c], "consistent_hash");
    cookie_pool["hash_cookie"] = json!("session");
    let app = support::start(json!({
        "routes": [
            { "match": { "prefix": "/h" }, "pool": "by_header" },
            { "match": { "prefix": "/" }, "pool": "by_cookie" },
        ],
        "pools": { "by_header": header_pool, "by_cookie": cookie_pool },
    }))
    .await
    .unwrap();
    for user in ["alice", "bob", "carol"] {
        let mut seen = std::collections::HashSet::new();
        for i in 0..10 {
            let body: serde_json::Value = app
                .http
                .get(app.url(&format!("/h/{i}")))
                .header("x-user", user)
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            seen.insert(body["backend"].as_str().unwrap().to_owned());
        }
        assert_eq!(seen.len(), 1, "{user} moved: {seen:?}");
    }
    let counts = counts(&app, 1, Some(("cookie", "a=1; session=s-42".to_owned()))).await;
    let first = counts.keys().next().unwrap().clone();
    let again = counts_for_cookie(&app, "theme=dark; session=s-42").await;
    assert_eq!(
        first, again,
        "the cookie's value decides, not the other cookies"
    );

    let mut spread: HashMap<String, usize> = HashMap::new();
    for key in 0..300 {
        let body: serde_json::Value = app
            .http
            .get(app.url("/h/spread"))
            .header("x-user", format!("user-{key}"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        *spread
            .entry(body["backend"].as_str().unwrap().to_owned())
            .or_default() += 1;
    }
    for name in ["a", "b", "c"] {
        let share = spread.get(name).copied().unwrap_or(0);
        assert!((50..=150).contains(&share), "{spread:?}");
    }
    app.finish().await;
}

async fn counts_for_cookie(app: &support::App, cookie: &str) -> String {
    let body: serde_json::Value = app
        .http
        .get(app.url("/c"))
        .header("cookie", cookie)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    body["backend"].as_str().unwrap().to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_healthy_backends_are_chosen_and_none_answers_503_with_retry_after() {
    let (a, b, _c) = three().await;
    let mut section = pool(&[&a, &b], "round_robin");
    section["health_check"] = json!({
        "path": "/health", "interval": "20ms", "timeout": "500ms",
        "unhealthy_threshold": 1, "healthy_threshold": 1,
    });
    let app = support::start(json!({
        "routes": [{ "match": { "prefix": "/" }, "pool": "p" }],
        "pools": { "p": section },
    }))
    .await
    .unwrap();
    b.healthy.store(false, std::sync::atomic::Ordering::SeqCst);
    let proxy = app.proxy();
    assert!(
        eventually(Duration::from_secs(5), || async {
            proxy.table().backends().any(|x| !x.is_up())
        })
        .await
    );
    let before = b.hits();
    let counts = counts(&app, 20, None).await;
    assert_eq!(counts["a"], 20, "{counts:?}");
    assert_eq!(b.hits(), before, "the down backend got no request");

    a.healthy.store(false, std::sync::atomic::Ordering::SeqCst);
    assert!(
        eventually(Duration::from_secs(5), || async {
            proxy.table().backends().all(|x| !x.is_up())
        })
        .await
    );
    let response = app.http.get(app.url("/x")).send().await.unwrap();
    assert_eq!(response.status(), 503);
    let retry_after: u64 = response.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(retry_after >= 1);
    app.finish().await;
}
