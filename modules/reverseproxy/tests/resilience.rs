//! End to end, against real upstreams: per-route timeouts, the circuit breaker (open,
//! half-open trial, re-open, close) and the retry budget.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::time::Duration;

use modular_reverseproxy::{Availability, Breaker};
use modular_testkit::FaultProxy;
use serde_json::json;
use support::{Upstream, eventually, pool};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_route_has_its_own_timeout() {
    let api = Upstream::start("api").await;
    let app = support::start(json!({
        "routes": [
            { "match": { "prefix": "/fast" }, "pool": "api", "strip_prefix": true,
              "timeout": "200ms" },
            { "match": { "prefix": "/" }, "pool": "api", "timeout": "10s" },
        ],
        "pools": { "api": pool(&[&api], "round_robin") },
    }))
    .await
    .unwrap();
    let response = app
        .http
        .get(app.url("/fast/sleep/3000"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 504);
    let text = response.text().await.unwrap();
    assert!(text.contains("did not answer within 200ms"), "{text}");
    // The same backend, a route with a longer timeout: answered.
    let (status, body) = app.get("/sleep/400").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["slept_ms"], 400);
    app.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_breaker_opens_half_opens_for_one_trial_reopens_and_closes() {
    let api = Upstream::start("api").await;
    let cut = FaultProxy::start(api.addr).await.unwrap();
    let app = support::start(json!({
        "routes": [{ "match": { "prefix": "/" }, "pool": "api" }],
        "pools": { "api": {
            "backends": [{ "url": format!("http://{}", cut.addr()) }],
            "breaker": { "failures": 2, "open_for": "300ms" },
            "outlier": { "consecutive_failures": 0 },
        } },
    }))
    .await
    .unwrap();
    let proxy = app.proxy();
    let backend = || proxy.table().backends().next().cloned().unwrap();
    assert_eq!(app.get("/x").await.0, 200);

    cut.cut();
    assert_eq!(app.get("/x").await.0, 502);
    assert_eq!(backend().breaker(), Breaker::Closed, "one failure of two");
    assert_eq!(app.get("/x").await.0, 502);
    assert!(matches!(backend().breaker(), Breaker::Open(_)));
    // Open: answered at once, the backend not tried.
    let response = app.http.get(app.url("/x")).send().await.unwrap();
    assert_eq!(response.status(), 503);
    assert!(response.headers().contains_key("retry-after"));
    let requests = backend().requests();
    assert_eq!(app.get("/x").await.0, 503);
    assert_eq!(
        backend().requests(),
        requests,
        "no request reaches an open breaker"
    );

    // Its trial is due: one request goes through, fails, and re-opens it at once.
    assert!(
        eventually(Duration::from_secs(10), || async {
            backend().availability(tokio::time::Instant::now()) == Availability::Trial
        })
        .await
    );
    assert_eq!(app.get("/x").await.0, 502, "the trial");
    assert!(matches!(backend().breaker(), Breaker::Open(_)), "re-opened");
    assert_eq!(app.get("/x").await.0, 503);

    // Back: the next trial succeeds and closes it.
    cut.restore();
    assert!(
        eventually(Duration::from_secs(10), || async {
            app.get("/x").await.0 == 200
        })
        .await
    );
    assert_eq!(backend().breaker(), Breaker::Closed);
    assert_eq!(app.get("/x").await.0, 200);
    app.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_retry_budget_keeps_retries_to_its_share_of_requests() {
    let a = Upstream::start("a").await;
    let b = Upstream::start("b").await;
    let mut api = pool(&[&a, &b], "round_robin");
    api["outlier"] = json!({ "consecutive_failures": 0 });
    let app = support::start(json!({
        "retry_budget": 0.1,
        "routes": [{ "match": { "prefix": "/" }, "pool": "api",
                    "retries": 1, "retry_on": [503] }],
        "pools": { "api": api },
    }))
    .await
    .unwrap();
    let requests = 200;
    for _ in 0..requests {
        assert_eq!(app.get("/status/503").await.0, 503);
    }
    // Every request is tried once; a retry each would double the load on a failing pool,
    // the budget allows a tenth (and at least 3).
    let hits = a.hits() + b.hits();
    let retries = hits - requests;
    assert!(
        (3..=requests / 10).contains(&retries),
        "{retries} retries for {requests} requests"
    );
    app.finish().await;
}
