//! Composite routes against real upstreams: `merge` (one JSON document keyed by part name)
//! with each failure policy, empty parts and a part timeout; `first_success`; live reload
//! of the mode and the parts; bad composite config refused with its key path.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use modular_core::ReloadStatus;
use serde_json::{Value, json};
use support::{Upstream, pool};

struct Upstreams {
    users: Upstream,
    orders: Upstream,
    flaky: Upstream,
}

async fn upstreams() -> Upstreams {
    Upstreams {
        users: Upstream::start("users").await,
        orders: Upstream::start("orders").await,
        flaky: Upstream::start("flaky").await,
    }
}

fn pools(u: &Upstreams) -> Value {
    // The flaky pool answers 5xx on purpose: no outlier ejection there.
    let mut flaky = pool(&[&u.flaky], "round_robin");
    flaky["outlier"] = json!({ "consecutive_failures": 0 });
    json!({
        "users": pool(&[&u.users], "round_robin"),
        "orders": pool(&[&u.orders], "round_robin"),
        "flaky": flaky,
    })
}

fn route(composite: Value) -> Value {
    json!({ "name": "dash", "match": { "prefix": "/dash" }, "strip_prefix": true,
            "composite": composite })
}

fn merge(policy: &str, extra: Value) -> Value {
    let mut parts = json!({
        "user": { "pool": "users", "path": "/profile" },
        "orders": { "pool": "orders" },
    });
    if let (Some(parts), Some(extra)) = (parts.as_object_mut(), extra.as_object()) {
        parts.extend(extra.clone());
    }
    route(json!({ "mode": "merge", "on_part_failure": policy, "parts": parts }))
}

async fn set_routes(app: &support::App, routes: Value) {
    let outcome = app
        .app
        .set_override("reverseproxy.routes", routes)
        .await
        .unwrap();
    assert_eq!(outcome.status, ReloadStatus::Applied, "{:?}", outcome.error);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn merge_answers_one_document_and_applies_each_failure_policy() {
    let u = upstreams().await;
    let app = support::start(json!({ "routes": [merge("fail", json!({}))], "pools": pools(&u) }))
        .await
        .unwrap();

    let (status, body) = app.get("/dash/list?page=2").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["user"]["backend"], "users");
    assert_eq!(body["user"]["path"], "/profile", "the part's own path");
    assert_eq!(body["orders"]["backend"], "orders");
    assert_eq!(
        body["orders"]["path"], "/list?page=2",
        "the route's upstream path and the query"
    );
    assert_eq!(body["orders"]["headers"]["x-forwarded-proto"], "http");
    assert_eq!(body.as_object().unwrap().len(), 2);
    assert_eq!((u.users.hits(), u.orders.hits()), (1, 1));

    // A failing part (500) under each policy.
    let broken = json!({ "broken": { "pool": "flaky", "path": "/status/500" } });
    set_routes(&app, json!([merge("fail", broken.clone())])).await;
    let (status, body) = app.get("/dash").await;
    assert_eq!(status, 502, "{body}");
    assert_eq!(body["part"], "broken");
    assert!(body["error"].as_str().unwrap().contains("500"), "{body}");

    set_routes(&app, json!([merge("omit", broken.clone())])).await;
    let (status, body) = app.get("/dash").await;
    assert_eq!(status, 200, "{body}");
    assert!(body.get("broken").is_none(), "{body}");
    assert_eq!(body["user"]["backend"], "users");

    set_routes(&app, json!([merge("null", broken)])).await;
    let (status, body) = app.get("/dash").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["broken"], Value::Null);
    assert_eq!(body["orders"]["backend"], "orders");

    // An empty part (204) is null by default, left out with on_empty: omit.
    let empty = json!({ "nothing": { "pool": "flaky", "path": "/status/204" } });
    set_routes(&app, json!([merge("fail", empty.clone())])).await;
    let (status, body) = app.get("/dash").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["nothing"], Value::Null);
    let mut omit_empty = merge("fail", empty);
    omit_empty["composite"]["on_empty"] = json!("omit");
    set_routes(&app, json!([omit_empty])).await;
    let (status, body) = app.get("/dash").await;
    assert_eq!(status, 200);
    assert!(body.get("nothing").is_none(), "{body}");

    // A part above max_part_bytes fails like any failed part.
    let mut limited = merge("fail", json!({}));
    limited["composite"]["max_part_bytes"] = json!(16);
    set_routes(&app, json!([limited])).await;
    let (status, body) = app.get("/dash").await;
    assert_eq!(status, 502, "{body}");
    assert!(
        body["error"].as_str().unwrap().contains("max_part_bytes"),
        "{body}"
    );

    app.finish().await;
}

/// A request body is read (up to `max_request_bytes`) and sent to every part; a part whose
/// backend refuses the connection goes to another backend of its pool (`retries`, default
/// 1), and with `retries: 0` it fails.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_body_goes_to_every_part_and_a_refused_part_tries_another_backend() {
    let u = upstreams().await;
    // Refuses every connection: bound, never listening (so its port is never reused).
    let refusing = tokio::net::TcpSocket::new_v4().unwrap();
    refusing.bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let dead = refusing.local_addr().unwrap();
    let mut pools = pools(&u);
    pools["spare"] = json!({
        "balance": "round_robin",
        "backends": [{ "url": format!("http://{dead}") }, { "url": u.orders.url() }],
        // Counted, never ejected: every request can meet the refusing backend.
        "outlier": { "consecutive_failures": 0 },
        "breaker": { "failures": 0 },
    });
    let composite = |retries: u32| {
        route(json!({ "mode": "merge", "max_request_bytes": 64, "parts": {
            "a": { "pool": "users", "path": "/echo" },
            "b": { "pool": "spare", "path": "/echo", "retries": retries },
        } }))
    };
    let app = support::start(json!({ "routes": [composite(1)], "pools": pools }))
        .await
        .unwrap();
    let post = |body: String| {
        let request = app
            .http
            .post(app.url("/dash"))
            .header("content-type", "application/json")
            .body(body);
        async move {
            let response = request.send().await.unwrap();
            let status = response.status().as_u16();
            let text = response.text().await.unwrap();
            (
                status,
                serde_json::from_str::<Value>(&text).unwrap_or(Value::Null),
            )
        }
    };
    // Two requests: the retry budget allows 3 retries in a quiet window.
    for n in 0..2 {
        let (status, body) = post(format!("{{\"n\":{n}}}")).await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(body, json!({ "a": { "n": n }, "b": { "n": n } }));
    }
    let proxy = app.proxy();
    let requests_to = |addr: std::net::SocketAddr| {
        proxy
            .table()
            .backends()
            .find(|b| b.label() == addr.to_string())
            .map(|b| b.requests())
            .unwrap()
    };
    assert!(
        requests_to(dead) >= 1,
        "round robin sent the refusing backend its share"
    );

    // Above the limit: refused before any part is sent.
    let sent = requests_to(u.users.addr);
    let (status, body) = post(format!("{{\"pad\":\"{}\"}}", "x".repeat(64))).await;
    assert_eq!(status, 413, "{body}");
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .contains("max_request_bytes"),
        "{body}"
    );
    assert_eq!(requests_to(u.users.addr), sent);

    // No retry: the part that meets the refusing backend fails the merge.
    set_routes(&app, json!([composite(0)])).await;
    let mut failed = 0;
    for n in 0..2 {
        let (status, body) = post(format!("{{\"n\":{n}}}")).await;
        if status == 502 {
            assert_eq!(body["part"], "b", "{body}");
            failed += 1;
        }
    }
    assert_eq!(
        failed, 1,
        "round robin: one of two requests met the refusing backend"
    );
    app.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_part_past_its_timeout_fails_with_504_or_is_left_out() {
    let u = upstreams().await;
    let slow = json!({ "slow": { "pool": "flaky", "path": "/sleep/5000", "timeout": "150ms" } });
    let app = support::start(json!({
        "routes": [merge("fail", slow.clone())],
        "pools": pools(&u),
    }))
    .await
    .unwrap();
    let (status, body) = app.get("/dash").await;
    assert_eq!(status, 504, "{body}");
    assert_eq!(body["part"], "slow");
    assert!(
        body["error"].as_str().unwrap().contains("timed out"),
        "{body}"
    );

    set_routes(&app, json!([merge("omit", slow)])).await;
    let (status, body) = app.get("/dash").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body.as_object().unwrap().len(), 2, "{body}");
    app.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn first_success_streams_the_first_2xx_part_and_a_reload_switches_the_mode() {
    let u = upstreams().await;
    let first = route(json!({
        "mode": "first_success",
        "parts": {
            "broken": { "pool": "flaky", "path": "/status/503" },
            "slow": { "pool": "orders", "path": "/sleep/3000" },
            "fast": { "pool": "users", "path": "/sleep/50" },
        },
    }));
    let app = support::start(json!({ "routes": [first], "pools": pools(&u) }))
        .await
        .unwrap();
    let response = app.http.get(app.url("/dash")).send().await.unwrap();
    assert_eq!(response.status().as_u16(), 200);
    assert_eq!(response.headers()["x-composite-part"], "fast");
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["backend"], "users");
    assert_eq!(body["slept_ms"], 50);

    // Every part failing: 502 naming each failure.
    let none = route(json!({
        "mode": "first_success",
        "parts": {
            "a": { "pool": "flaky", "path": "/status/503" },
            "b": { "pool": "flaky", "path": "/status/404" },
        },
    }));
    set_routes(&app, json!([none])).await;
    let (status, body) = app.get("/dash").await;
    assert_eq!(status, 502, "{body}");
    assert!(
        body["parts"]["a"].as_str().unwrap().contains("503"),
        "{body}"
    );
    assert!(
        body["parts"]["b"].as_str().unwrap().contains("404"),
        "{body}"
    );

    // Back to merge, live.
    set_routes(&app, json!([merge("fail", json!({}))])).await;
    let (status, body) = app.get("/dash").await;
    assert_eq!(status, 200);
    assert_eq!(body["user"]["backend"], "users");
    app.finish().await;
}

async fn build_error(section: Value) -> String {
    match support::build(section).await {
        Ok(mut app) => {
            let _ = app.stop().await;
            panic!("the section was accepted")
        }
        Err(error) => error.to_string(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_composite_config_is_refused_with_its_key_path() {
    let u = upstreams().await;
    let unknown = route(json!({ "parts": { "ghost": { "pool": "nope" } } }));
    let error = build_error(json!({ "routes": [unknown.clone()], "pools": pools(&u) })).await;
    assert!(
        error.contains("reverseproxy.routes.0.composite.parts.ghost.pool"),
        "{error}"
    );
    assert!(error.contains("unknown pool `nope`"), "{error}");

    let mut both = merge("fail", json!({}));
    both["pool"] = json!("users");
    let error = build_error(json!({ "routes": [both], "pools": pools(&u) })).await;
    assert!(error.contains("reverseproxy.routes.0.pool"), "{error}");

    let error = build_error(json!({
        "routes": [route(json!({ "parts": {} }))], "pools": pools(&u),
    }))
    .await;
    assert!(
        error.contains("reverseproxy.routes.0.composite.parts"),
        "{error}"
    );

    let error = build_error(json!({
        "routes": [route(json!({ "mode": "fastest", "parts": { "a": { "pool": "users" } } }))],
        "pools": pools(&u),
    }))
    .await;
    assert!(error.contains("fastest"), "{error}");

    let error = build_error(json!({
        "routes": [route(json!({ "parts": { "a": { "pool": "users", "timeout": "0s" } } }))],
        "pools": pools(&u),
    }))
    .await;
    assert!(
        error.contains("reverseproxy.routes.0.composite.parts.a.timeout"),
        "{error}"
    );

    // On reload: rejected with the path, the running table stays.
    let app = support::start(json!({ "routes": [merge("fail", json!({}))], "pools": pools(&u) }))
        .await
        .unwrap();
    let outcome = app
        .app
        .set_override("reverseproxy.routes", json!([unknown]))
        .await
        .unwrap();
    assert_eq!(outcome.status, ReloadStatus::Rejected);
    let paths: Vec<String> = outcome.errors.iter().map(|e| e.path.clone()).collect();
    assert!(
        paths
            .iter()
            .any(|p| p.contains("reverseproxy.routes.0.composite.parts.ghost.pool")),
        "{paths:?}"
    );
    assert_eq!(app.get("/dash").await.0, 200);
    app.finish().await;
}
