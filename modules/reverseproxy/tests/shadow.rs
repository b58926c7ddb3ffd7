//! Shadow traffic: a route mirrors its requests to a second pool; the mirror's answers are
//! compared on status (and body) and counted, never returned; request bodies are copied for
//! the mirror up to a bound; a reload turns mirroring off and on.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::sync::atomic::Ordering;
use std::time::Duration;

use modular_core::ReloadStatus;
use serde_json::json;
use support::{Upstream, eventually, pool};

fn section(primary: &Upstream, mirror: &Upstream, shadow: serde_json::Value) -> serde_json::Value {
    let mut route = json!({ "match": { "prefix": "/" }, "pool": "live" });
    if !shadow.is_null() {
        route["shadow"] = shadow;
    }
    json!({
        "routes": [route],
        "pools": { "live": pool(&[primary], "round_robin"), "next": pool(&[mirror], "round_robin") },
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mirrored_requests_are_compared_never_returned_and_reload_live() {
    let live = Upstream::start("live").await;
    let next = Upstream::start("next").await;
    let app = support::start(section(&live, &next, json!({ "pool": "next" })))
        .await
        .unwrap();
    let proxy = app.proxy();
    for _ in 0..20 {
        assert_eq!(
            app.backend("/thing").await,
            "live",
            "the client gets the primary"
        );
    }
    assert!(
        eventually(Duration::from_secs(10), || async {
            proxy.shadow_stats().matched() == 20
        })
        .await,
        "matched {}",
        proxy.shadow_stats().matched()
    );
    assert_eq!(next.hits(), 20, "every request mirrored once");

    // The mirror answers differently: counted as a mismatch, the client still gets 200.
    // (`next` answers 503 on /health while unhealthy; the router serves the app's own
    // /health, so the path goes through a rewrite.)
    next.healthy.store(false, Ordering::SeqCst);
    let mut overrides = std::collections::BTreeMap::new();
    overrides.insert(
        "reverseproxy.routes".to_owned(),
        json!([
            { "match": { "prefix": "/" }, "pool": "live", "shadow": { "pool": "next" } },
            { "match": { "prefix": "/probe" }, "pool": "live", "rewrite": "/health",
              "shadow": { "pool": "next" } },
        ]),
    );
    let outcome = app.app.set_overrides(overrides).await.unwrap();
    assert_eq!(outcome.status, ReloadStatus::Applied, "{:?}", outcome.error);
    assert!(
        eventually(Duration::from_secs(5), || async {
            app.get("/probe").await.0 == 200
        })
        .await
    );
    assert!(
        eventually(Duration::from_secs(10), || async {
            proxy.shadow_stats().mismatched() >= 1
        })
        .await
    );

    // A mirror that does not answer never delays the client.
    let (status, body) = app.get("/sleep/0").await;
    assert_eq!((status, body["backend"].as_str()), (200, Some("live")));

    // A request with a small body is mirrored with a copy of it (see below): once the mirrors
    // before it have settled, it is compared exactly once more.
    assert!(
        eventually(Duration::from_secs(10), || async {
            proxy.shadows_in_flight() == 0
        })
        .await
    );
    let compared = proxy.shadow_stats().matched() + proxy.shadow_stats().mismatched();
    let response = app
        .http
        .post(app.url("/echo"))
        .body("payload")
        .send()
        .await
        .unwrap();
    assert_eq!(response.text().await.unwrap(), "payload");
    assert!(
        eventually(Duration::from_secs(10), || async {
            proxy.shadow_stats().matched() + proxy.shadow_stats().mismatched() == compared + 1
        })
        .await,
        "the POST with a body was mirrored and compared"
    );

    // Reload: mirroring off, then back on at 0 %.
    let mut overrides = std::collections::BTreeMap::new();
    overrides.insert(
        "reverseproxy.routes".to_owned(),
        json!([{ "match": { "prefix": "/" }, "pool": "live" }]),
    );
    let outcome = app.app.set_overrides(overrides.clone()).await.unwrap();
    assert_eq!(outcome.status, ReloadStatus::Applied, "{:?}", outcome.error);
    assert!(
        eventually(Duration::from_secs(10), || async {
            proxy.shadows_in_flight() == 0
        })
        .await
    );
    let before = proxy.shadow_stats().matched() + proxy.shadow_stats().mismatched();
    let hits_after_reload = next.hits();
    for _ in 0..10 {
        assert_eq!(app.backend("/thing").await, "live");
    }
    overrides.insert(
        "reverseproxy.routes".to_owned(),
        json!([{ "match": { "prefix": "/" }, "pool": "live",
                 "shadow": { "pool": "next", "percent": 0 } }]),
    );
    let outcome = app.app.set_overrides(overrides).await.unwrap();
    assert_eq!(outcome.status, ReloadStatus::Applied, "{:?}", outcome.error);
    for _ in 0..10 {
        assert_eq!(app.backend("/thing").await, "live");
    }
    assert_eq!(next.hits(), hits_after_reload, "no mirror after the reload");
    assert_eq!(
        proxy.shadow_stats().matched() + proxy.shadow_stats().mismatched(),
        before
    );
    app.finish().await;
}

#[tokio::test]
async fn a_shadow_to_an_unknown_pool_is_refused_with_its_path() {
    let live = Upstream::start("live").await;
    let next = Upstream::start("next").await;
    let error = support::build(section(&live, &next, json!({ "pool": "nope" })))
        .await
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
    assert!(error.contains("routes.0.shadow.pool"), "{error}");
    let error = support::build(section(
        &live,
        &next,
        json!({ "pool": "next", "percent": 150 }),
    ))
    .await
    .err()
    .map(|e| e.to_string())
    .unwrap_or_default();
    assert!(error.contains("routes.0.shadow.percent"), "{error}");
}

fn overrides(route: serde_json::Value) -> std::collections::BTreeMap<String, serde_json::Value> {
    [("reverseproxy.routes".to_owned(), json!([route]))]
        .into_iter()
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_bodies_are_copied_for_the_mirror_up_to_the_bound() {
    let live = Upstream::start("live").await;
    let next = Upstream::start("next").await;
    let app = support::start(section(
        &live,
        &next,
        json!({ "pool": "next", "max_body_bytes": 1024, "compare_body": true }),
    ))
    .await
    .unwrap();
    let proxy = app.proxy();
    let stats = || {
        let s = proxy.shadow_stats();
        (s.matched(), s.body_mismatched(), s.too_large(), s.failed())
    };

    // Both pools echo: the mirror got the very body (its echo hashes like the client's).
    let response = app
        .http
        .post(app.url("/echo"))
        .body("payload for both")
        .send()
        .await
        .unwrap();
    assert_eq!(response.text().await.unwrap(), "payload for both");
    assert!(
        eventually(Duration::from_secs(10), || async {
            stats() == (1, 0, 0, 0)
        })
        .await,
        "{:?}",
        stats()
    );

    // A chunked body (no length) under the bound is copied too.
    let chunks = futures::stream::iter(
        ["one ", "two ", "three"].map(|c| Ok::<_, std::io::Error>(c.to_owned())),
    );
    let response = app
        .http
        .put(app.url("/echo"))
        .body(reqwest::Body::wrap_stream(chunks))
        .send()
        .await
        .unwrap();
    assert_eq!(response.text().await.unwrap(), "one two three");
    assert!(
        eventually(Duration::from_secs(10), || async {
            stats() == (2, 0, 0, 0)
        })
        .await,
        "{:?}",
        stats()
    );

    // Above the bound, declared by its length: streamed to the primary, not mirrored.
    let big = vec![b'b'; 64 * 1024];
    let response = app
        .http
        .post(app.url("/echo"))
        .body(big.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(response.bytes().await.unwrap().len(), big.len());
    assert_eq!(stats(), (2, 0, 1, 0));

    // Above the bound, found while streaming (chunked): the copy stops, not mirrored.
    let chunks = futures::stream::iter((0..64).map(|_| Ok::<_, std::io::Error>(vec![b'c'; 1024])));
    let response = app
        .http
        .post(app.url("/echo"))
        .body(reqwest::Body::wrap_stream(chunks))
        .send()
        .await
        .unwrap();
    assert_eq!(response.bytes().await.unwrap().len(), 64 * 1024);
    assert!(
        eventually(Duration::from_secs(10), || async {
            stats() == (2, 0, 2, 0)
        })
        .await,
        "{:?}",
        stats()
    );
    assert!(
        eventually(Duration::from_secs(10), || async {
            proxy.shadows_in_flight() == 0
        })
        .await
    );
    app.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compare_body_records_mismatches_and_reloads_live() {
    let live = Upstream::start("live").await;
    let next = Upstream::start("next").await;
    let app = support::start(section(
        &live,
        &next,
        json!({ "pool": "next", "compare_body": true }),
    ))
    .await
    .unwrap();
    let proxy = app.proxy();
    // Same status, other body (each names its backend): a body mismatch; the client gets
    // the primary's.
    assert_eq!(app.backend("/thing").await, "live");
    assert!(
        eventually(Duration::from_secs(10), || async {
            proxy.shadow_stats().body_mismatched() == 1
        })
        .await
    );
    // The same bytes from both (streamed in 64 KiB chunks): a match.
    let response = app.http.get(app.url("/bytes/300000")).send().await.unwrap();
    assert_eq!(response.bytes().await.unwrap().len(), 300_000);
    assert!(
        eventually(Duration::from_secs(10), || async {
            proxy.shadow_stats().matched() == 1
        })
        .await
    );

    // Reload: compare_body off, the same request is a status match.
    let outcome = app
        .app
        .set_overrides(overrides(
            json!({ "match": { "prefix": "/" }, "pool": "live",
                                          "shadow": { "pool": "next" } }),
        ))
        .await
        .unwrap();
    assert_eq!(outcome.status, ReloadStatus::Applied, "{:?}", outcome.error);
    assert_eq!(app.backend("/thing").await, "live");
    assert!(
        eventually(Duration::from_secs(10), || async {
            proxy.shadow_stats().matched() == 2
        })
        .await
    );
    assert_eq!(proxy.shadow_stats().body_mismatched(), 1);
    app.finish().await;
}
