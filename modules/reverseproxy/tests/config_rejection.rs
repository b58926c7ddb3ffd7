//! Bad config is refused with its key path, at start-up and on reload, and the running
//! table stays.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use modular_core::ReloadStatus;
use serde_json::{Value, json};
use support::{Upstream, pool};

async fn build_error(section: Value) -> String {
    match support::build(section).await {
        Ok(mut app) => {
            let _ = app.stop().await;
            panic!("the section was accepted")
        }
        Err(error) => error.to_string(),
    }
}

fn one_pool(backends: Value) -> Value {
    json!({
        "routes": [{ "match": { "prefix": "/" }, "pool": "p" }],
        "pools": { "p": { "backends": backends } },
    })
}

#[tokio::test]
async fn a_backend_url_without_scheme_is_refused_with_its_path() {
    let error = build_error(one_pool(json!([{ "url": "127.0.0.1:9001" }]))).await;
    assert!(
        error.contains("reverseproxy.pools.p.backends.0.url"),
        "{error}"
    );
    assert!(error.contains("no scheme"), "{error}");
}

#[tokio::test]
async fn a_backend_url_without_host_is_refused_with_its_path() {
    let error = build_error(one_pool(json!([{ "url": "http://" }]))).await;
    assert!(
        error.contains("reverseproxy.pools.p.backends.0.url"),
        "{error}"
    );
}

#[tokio::test]
async fn a_weight_of_zero_is_refused_with_its_path() {
    let error = build_error(one_pool(json!([
        { "url": "http://127.0.0.1:9001" },
        { "url": "http://127.0.0.1:9002", "weight": 0 },
    ])))
    .await;
    assert!(
        error.contains("reverseproxy.pools.p.backends.1.weight"),
        "{error}"
    );
    assert!(error.contains("must be > 0"), "{error}");
}

#[tokio::test]
async fn duplicate_route_matches_are_refused_with_the_later_path() {
    let error = build_error(json!({
        "routes": [
            { "match": { "prefix": "/api/" }, "pool": "p" },
            { "match": { "prefix": "/api" }, "pool": "p" },
        ],
        "pools": { "p": { "backends": [{ "url": "http://127.0.0.1:9001" }] } },
    }))
    .await;
    assert!(error.contains("reverseproxy.routes.1.match"), "{error}");
    assert!(error.contains("duplicates"), "{error}");
}

#[tokio::test]
async fn an_unknown_balancing_mode_is_refused_with_its_path() {
    let error = build_error(json!({
        "routes": [],
        "pools": { "p": { "balance": "random_walk", "backends": [{ "url": "http://127.0.0.1:9001" }] } },
    }))
    .await;
    assert!(error.contains("reverseproxy.pools.p.balance"), "{error}");
    assert!(
        error.contains("unknown balancing mode `random_walk`"),
        "{error}"
    );
}

#[tokio::test]
async fn a_route_to_an_unknown_pool_is_refused_with_its_path() {
    let error = build_error(json!({
        "routes": [{ "match": { "prefix": "/" }, "pool": "nope" }],
        "pools": {},
    }))
    .await;
    assert!(error.contains("reverseproxy.routes.0.pool"), "{error}");
    assert!(error.contains("unknown pool `nope`"), "{error}");
}

#[tokio::test]
async fn an_unknown_field_is_refused() {
    let error = build_error(json!({ "routez": [] })).await;
    assert!(error.contains("routez"), "{error}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reload_to_an_unknown_pool_is_rejected_and_the_table_stays() {
    let api = Upstream::start("api").await;
    let app = support::start(json!({
        "routes": [{ "match": { "prefix": "/" }, "pool": "api" }],
        "pools": { "api": pool(&[&api], "round_robin") },
    }))
    .await
    .unwrap();
    let outcome = app
        .app
        .set_override(
            "reverseproxy.routes",
            json!([{ "match": { "prefix": "/" }, "pool": "ghost" }]),
        )
        .await
        .unwrap();
    assert_eq!(outcome.status, ReloadStatus::Rejected);
    let paths: Vec<String> = outcome.errors.iter().map(|e| e.path.clone()).collect();
    assert!(
        paths
            .iter()
            .any(|p| p.contains("reverseproxy.routes.0.pool")),
        "{paths:?}"
    );
    assert_eq!(app.backend("/still").await, "api");
    app.finish().await;
}

#[tokio::test]
async fn a_listen_address_that_is_not_host_port_is_refused_with_its_path() {
    let mut section = one_pool(json!([{ "url": "http://127.0.0.1:9001" }]));
    section["listen"] = json!("localhost");
    let error = build_error(section).await;
    assert!(error.contains("reverseproxy.listen"), "{error}");
    assert!(error.contains("host:port"), "{error}");
}

#[tokio::test]
async fn a_route_that_would_set_or_drop_the_framing_is_refused_with_its_path() {
    let section = json!({
        "routes": [{
            "match": { "prefix": "/" }, "pool": "p",
            "add_headers": { "transfer-encoding": "chunked" },
            "remove_headers": ["x-ok", "Content-Length"],
        }],
        "pools": { "p": { "backends": [{ "url": "http://127.0.0.1:9001" }] } },
    });
    let error = build_error(section).await;
    assert!(
        error.contains("reverseproxy.routes.0.add_headers.transfer-encoding"),
        "{error}"
    );
    assert!(
        error.contains("reverseproxy.routes.0.remove_headers.1"),
        "{error}"
    );
    assert!(error.contains("frames the message"), "{error}");
}
