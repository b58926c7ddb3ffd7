//! Requests reach the route's pool with the path rewritten, headers changed and forwarding
//! headers added; hop-by-hop headers stay on their hop.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use serde_json::json;
use support::{Upstream, pool};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn routes_match_prefix_host_and_method_and_rewrite_the_path() {
    let api = Upstream::start("api").await;
    let web = Upstream::start("web").await;
    let admin = Upstream::start("admin").await;
    let app = support::start(json!({
        "routes": [
            { "match": { "prefix": "/api/" }, "pool": "api", "strip_prefix": true },
            { "match": { "prefix": "/api/", "host": "admin.test" }, "pool": "admin" },
            { "match": { "prefix": "/v1", "methods": ["POST"] }, "pool": "admin", "rewrite": "/v2/" },
            { "match": { "prefix": "/" }, "pool": "web" },
        ],
        "pools": {
            "api": pool(&[&api], "round_robin"),
            "web": pool(&[&web], "round_robin"),
            "admin": pool(&[&admin], "round_robin"),
        },
    }))
    .await
    .unwrap();

    let (status, body) = app.get("/api/users?limit=2").await;
    assert_eq!(status, 200);
    assert_eq!(body["backend"], "api");
    assert_eq!(body["path"], "/users?limit=2");

    let body: serde_json::Value = app
        .http
        .get(app.url("/api/users"))
        .header("host", "admin.test:8080")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(body["backend"], "admin", "the host route wins");
    assert_eq!(body["path"], "/api/users", "no strip_prefix on that route");

    let body: serde_json::Value = app
        .http
        .post(app.url("/v1/orders"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(body["backend"], "admin");
    assert_eq!(body["path"], "/v2/orders");
    assert_eq!(app.backend("/v1/orders").await, "web", "GET is not POST");
    assert_eq!(
        app.backend("/apis").await,
        "web",
        "prefixes match whole segments"
    );
    app.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn headers_are_added_removed_forwarded_and_hop_by_hop_ones_dropped() {
    let api = Upstream::start("api").await;
    let app = support::start(json!({
        "routes": [{
            "match": { "prefix": "/" }, "pool": "api",
            "add_headers": { "x-gateway": "modular" },
            "remove_headers": ["x-internal"],
        }],
        "pools": { "api": pool(&[&api], "round_robin") },
    }))
    .await
    .unwrap();
    let body: serde_json::Value = app
        .http
        .get(app.url("/thing"))
        .header("x-internal", "secret-route")
        .header("x-kept", "yes")
        .header("connection", "x-hop")
        .header("x-hop", "only-this-hop")
        .header("x-forwarded-for", "203.0.113.9")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let headers = &body["headers"];
    assert_eq!(headers["x-gateway"], "modular");
    assert_eq!(headers["x-kept"], "yes");
    assert!(headers.get("x-internal").is_none(), "{headers}");
    assert!(
        headers.get("x-hop").is_none(),
        "named by Connection: {headers}"
    );
    assert_eq!(headers["x-forwarded-proto"], "http");
    assert_eq!(
        headers["x-forwarded-host"],
        format!("127.0.0.1:{}", app.port)
    );
    assert!(
        headers["x-forwarded-for"]
            .as_str()
            .unwrap()
            .starts_with("203.0.113.9"),
        "{headers}"
    );
    let forwarded = headers["forwarded"].as_str().unwrap();
    assert!(forwarded.contains("proto=http"), "{forwarded}");
    assert!(
        forwarded.contains(&format!("host=\"127.0.0.1:{}\"", app.port)),
        "{forwarded}"
    );
    app.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_body_streams_to_the_backend_and_back() {
    let api = Upstream::start("api").await;
    let app = support::start(json!({
        "routes": [{ "match": { "prefix": "/" }, "pool": "api" }],
        "pools": { "api": pool(&[&api], "round_robin") },
    }))
    .await
    .unwrap();
    let payload = "modular ".repeat(100_000);
    let echoed = app
        .http
        .post(app.url("/echo"))
        .body(payload.clone())
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(echoed.len(), payload.len());
    assert_eq!(echoed, payload);
    app.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn h2c_pools_speak_http2_to_the_backend() {
    let api = Upstream::start("api").await;
    let mut section = pool(&[&api], "round_robin");
    section["protocol"] = json!("h2c");
    let app = support::start(json!({
        "routes": [{ "match": { "prefix": "/" }, "pool": "api" }],
        "pools": { "api": section },
    }))
    .await
    .unwrap();
    let (status, body) = app.get("/over-h2").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["backend"], "api");
    assert_eq!(body["version"], "HTTP/2.0");
    app.finish().await;
}

/// The HTTP server gives each request the client's address; the proxy appends it to
/// `X-Forwarded-For` and names it in `Forwarded: for=`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_client_address_is_forwarded_in_x_forwarded_for_and_forwarded() {
    let api = Upstream::start("api").await;
    let app = support::start(json!({
        "routes": [{ "match": { "prefix": "/" }, "pool": "api" }],
        "pools": { "api": pool(&[&api], "round_robin") },
    }))
    .await
    .unwrap();
    let (status, body) = app.get("/who").await;
    assert_eq!(status, 200, "{body}");
    let headers = &body["headers"];
    assert_eq!(headers["x-forwarded-for"], "127.0.0.1", "{headers}");
    assert_eq!(
        headers["forwarded"],
        format!("for=127.0.0.1;proto=http;host=\"127.0.0.1:{}\"", app.port),
        "{headers}"
    );

    // A chain from an earlier proxy is kept, the client appended.
    let body: serde_json::Value = app
        .http
        .get(app.url("/who"))
        .header("x-forwarded-for", "203.0.113.9, 198.51.100.2")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        body["headers"]["x-forwarded-for"],
        "203.0.113.9, 198.51.100.2, 127.0.0.1"
    );
    app.finish().await;
}
