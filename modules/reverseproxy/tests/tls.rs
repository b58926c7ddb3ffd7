//! TLS to backends: `https://` upstreams (axum over tokio-rustls, certificates from an rcgen
//! test CA) are reached over HTTP/1.1 or HTTP/2 (ALPN); a certificate the pool's CA did not
//! sign fails the request (502) and the health check (down), and a reload switching or
//! rotating the CA changes the live client; a client certificate is presented; bad TLS
//! config is refused with its key path.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::path::Path;
use std::time::Duration;

use modular_core::ReloadStatus;
use modular_core::health::HealthStatus;
use serde_json::{Value, json};
use support::{Ca, Upstream, eventually};

fn path(p: &Path) -> Value {
    json!(p.display().to_string())
}

fn section(pools: Value) -> Value {
    json!({
        "routes": [
            { "match": { "prefix": "/" }, "pool": "secure" },
            { "match": { "prefix": "/h2" }, "pool": "secure_h2", "strip_prefix": true },
        ],
        "pools": pools,
    })
}

fn check() -> Value {
    json!({ "path": "/health", "interval": "100ms", "timeout": "1s",
            "unhealthy_threshold": 1, "healthy_threshold": 1 })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_https_backend_is_reached_over_http1_and_over_h2_by_alpn() {
    let ca = Ca::new("test root");
    let (cert, key) = ca.leaf("server", &["127.0.0.1"]);
    let up = Upstream::start_tls("tls", &cert, &key, None).await;
    let tls = json!({ "ca_file": path(&ca.ca_file()) });
    let app = support::start(section(json!({
        "secure": { "backends": [{ "url": up.https_url() }], "tls": tls },
        "secure_h2": { "backends": [{ "url": up.https_url() }], "tls": tls, "protocol": "h2" },
    })))
    .await
    .unwrap();

    let (status, body) = app.get("/plain?x=1").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["backend"], "tls");
    assert_eq!(body["version"], "HTTP/1.1");
    assert_eq!(body["path"], "/plain?x=1");

    let (status, body) = app.get("/h2/thing").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["version"], "HTTP/2.0", "ALPN chose h2");
    assert_eq!(body["path"], "/thing");

    // Pooled: more requests, no new handshake per request.
    let handshakes = up.handshakes();
    for _ in 0..10 {
        assert_eq!(app.get("/again").await.0, 200);
        assert_eq!(app.get("/h2/again").await.0, 200);
    }
    assert!(
        up.handshakes() <= handshakes + 2,
        "{} handshakes for 20 requests",
        up.handshakes() - handshakes
    );

    // A streamed body both ways over TLS.
    let payload = vec![b'z'; 1024 * 1024];
    let echoed = app
        .http
        .post(app.url("/h2/echo"))
        .body(payload.clone())
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    assert_eq!(echoed.len(), payload.len());
    app.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_certificate_the_ca_did_not_sign_fails_and_a_reload_to_its_ca_recovers() {
    let trusted = Ca::new("trusted root");
    let other = Ca::new("other root");
    let (cert, key) = other.leaf("server", &["127.0.0.1"]);
    let up = Upstream::start_tls("tls", &cert, &key, None).await;
    let mut app = support::start(json!({
        "routes": [{ "match": { "prefix": "/" }, "pool": "secure" }],
        "pools": { "secure": {
            "backends": [{ "url": up.https_url() }],
            "tls": { "ca_file": path(&trusted.ca_file()) },
            "health_check": check(),
        } },
    }))
    .await
    .unwrap();

    let response = app.http.get(app.url("/x")).send().await.unwrap();
    assert_eq!(response.status().as_u16(), 502);
    let text = response.text().await.unwrap();
    assert!(text.contains("certificate"), "{text}");
    assert_eq!(up.hits(), 0, "nothing reached the backend");

    // The health check fails on the handshake: down, with the reason.
    assert!(
        eventually(Duration::from_secs(5), || async {
            app.reports().await[0].status == HealthStatus::Unhealthy
        })
        .await
    );
    let report = app.reports().await.remove(0);
    let details = &report.details["backends"][up.addr.to_string()];
    assert_eq!(details["state"], "down");
    assert!(
        details["last_error"]
            .as_str()
            .unwrap()
            .contains("certificate"),
        "{details}"
    );
    let events = app.events();
    assert!(
        events.iter().any(|(ty, _)| ty.ends_with("backend.down")),
        "{events:?}"
    );

    // Switch the pool to the backend's CA: prepared aside, swapped; the backend comes back up.
    let outcome = app
        .app
        .set_override(
            "reverseproxy.pools.secure.tls.ca_file",
            path(&other.ca_file()),
        )
        .await
        .unwrap();
    assert_eq!(outcome.status, ReloadStatus::Applied, "{:?}", outcome.error);
    assert!(
        eventually(Duration::from_secs(5), || async {
            app.reports().await[0].status == HealthStatus::Healthy
        })
        .await
    );
    let (status, body) = app.get("/x").await;
    assert_eq!((status, body["backend"].as_str()), (200, Some("tls")));
    app.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ca_file_rotated_in_place_takes_effect_at_the_next_reload() {
    let first = Ca::new("first root");
    let second = Ca::new("second root");
    let (cert_a, key_a) = first.leaf("a", &["127.0.0.1"]);
    let (cert_b, key_b) = second.leaf("b", &["127.0.0.1"]);
    let a = Upstream::start_tls("a", &cert_a, &key_a, None).await;
    let b = Upstream::start_tls("b", &cert_b, &key_b, None).await;
    let dir = tempfile::tempdir().unwrap();
    let ca_file = dir.path().join("backends-ca.pem");
    std::fs::write(&ca_file, first.pem()).unwrap();
    let tls = json!({ "ca_file": path(&ca_file) });
    let app = support::start(json!({
        "routes": [
            { "match": { "prefix": "/a" }, "pool": "a" },
            { "match": { "prefix": "/b" }, "pool": "b" },
        ],
        "pools": {
            "a": { "backends": [{ "url": a.https_url() }], "tls": tls },
            "b": { "backends": [{ "url": b.https_url() }], "tls": tls },
        },
        // This test is about the reload; the watcher has its own below.
        "watch_tls_files": false,
    }))
    .await
    .unwrap();
    assert_eq!(app.get("/a").await.0, 200);
    assert_eq!(app.get("/b").await.0, 502);

    // A reload that does not change the TLS material keeps the client (and its pooled
    // connection): no new handshake.
    let handshakes = a.handshakes();
    let outcome = app
        .app
        .set_override("reverseproxy.retry_budget", json!(0.3))
        .await
        .unwrap();
    assert_eq!(outcome.status, ReloadStatus::Applied, "{:?}", outcome.error);
    assert_eq!(app.get("/a").await.0, 200);
    assert_eq!(a.handshakes(), handshakes, "the same client and connection");

    // The file now holds the second CA; the next reload of the section reads it.
    std::fs::write(&ca_file, second.pem()).unwrap();
    assert_eq!(app.get("/b").await.0, 502, "not before a reload");
    let outcome = app
        .app
        .set_override("reverseproxy.retry_budget", json!(0.25))
        .await
        .unwrap();
    assert_eq!(outcome.status, ReloadStatus::Applied, "{:?}", outcome.error);
    let (status, body) = app.get("/b").await;
    assert_eq!((status, body["backend"].as_str()), (200, Some("b")));
    // The old CA is no longer trusted by the new client.
    assert_eq!(app.get("/a").await.0, 502);
    app.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_name_and_client_certificate_are_used() {
    let ca = Ca::new("mesh root");
    let (cert, key) = ca.leaf("server", &["backend.internal"]);
    let (client_cert, client_key) = ca.leaf("client", &["gateway.internal"]);
    let up = Upstream::start_tls("mtls", &cert, &key, Some(&ca.ca_file())).await;
    let tls = json!({ "ca_file": path(&ca.ca_file()), "server_name": "backend.internal" });
    let app = support::start(json!({
        "routes": [{ "match": { "prefix": "/" }, "pool": "mesh" }],
        "pools": { "mesh": { "backends": [{ "url": up.https_url() }], "tls": tls } },
    }))
    .await
    .unwrap();
    // The name matches, but the backend wants a client certificate.
    assert_eq!(app.get("/x").await.0, 502);
    assert_eq!(up.handshakes(), 0);

    let outcome = app
        .app
        .set_overrides(
            [
                (
                    "reverseproxy.pools.mesh.tls.client_cert_file",
                    path(&client_cert),
                ),
                (
                    "reverseproxy.pools.mesh.tls.client_key_file",
                    path(&client_key),
                ),
            ]
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v))
            .collect(),
        )
        .await
        .unwrap();
    assert_eq!(outcome.status, ReloadStatus::Applied, "{:?}", outcome.error);
    let (status, body) = app.get("/x").await;
    assert_eq!((status, body["backend"].as_str()), (200, Some("mtls")));

    // Another name: the certificate (for backend.internal) does not match 127.0.0.1.
    let outcome = app
        .app
        .set_override(
            "reverseproxy.pools.mesh.tls.server_name",
            json!("127.0.0.1"),
        )
        .await
        .unwrap();
    assert_eq!(outcome.status, ReloadStatus::Applied, "{:?}", outcome.error);
    let response = app.http.get(app.url("/x")).send().await.unwrap();
    assert_eq!(response.status().as_u16(), 502);
    let text = response.text().await.unwrap();
    assert!(text.contains("certificate"), "{text}");
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

fn pool_with(tls: Value, protocol: &str) -> Value {
    json!({
        "routes": [{ "match": { "prefix": "/" }, "pool": "p" }],
        "pools": { "p": {
            "backends": [{ "url": "https://127.0.0.1:9443" }],
            "protocol": protocol,
            "tls": tls,
        } },
    })
}

#[tokio::test]
async fn bad_tls_config_is_refused_with_its_key_path() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("missing.pem");
    let error = build_error(pool_with(json!({ "ca_file": path(&missing) }), "http1")).await;
    assert!(
        error.contains("reverseproxy.pools.p.tls.ca_file"),
        "{error}"
    );
    assert!(error.contains("missing.pem"), "{error}");

    let garbage = dir.path().join("garbage.pem");
    std::fs::write(&garbage, "not a certificate\n").unwrap();
    let error = build_error(pool_with(json!({ "ca_file": path(&garbage) }), "http1")).await;
    assert!(
        error.contains("reverseproxy.pools.p.tls.ca_file"),
        "{error}"
    );
    assert!(error.contains("no PEM certificate"), "{error}");

    let ca = Ca::new("root");
    let (cert, _) = ca.leaf("client", &["client"]);
    let error = build_error(pool_with(
        json!({ "client_cert_file": path(&cert) }),
        "http1",
    ))
    .await;
    assert!(
        error.contains("reverseproxy.pools.p.tls.client_key_file"),
        "{error}"
    );

    // A key file holding a certificate: refused, never quoting the file.
    let error = build_error(pool_with(
        json!({ "client_cert_file": path(&cert), "client_key_file": path(&cert) }),
        "http1",
    ))
    .await;
    assert!(
        error.contains("reverseproxy.pools.p.tls.client_key_file"),
        "{error}"
    );
    assert!(!error.contains("BEGIN"), "{error}");

    let error = build_error(pool_with(json!({ "server_name": "bad name!" }), "http1")).await;
    assert!(
        error.contains("reverseproxy.pools.p.tls.server_name"),
        "{error}"
    );

    let error = build_error(pool_with(json!({}), "h2c")).await;
    assert!(error.contains("reverseproxy.pools.p.protocol"), "{error}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reload_to_a_missing_ca_file_is_rejected_and_the_client_stays() {
    let ca = Ca::new("root");
    let (cert, key) = ca.leaf("server", &["127.0.0.1"]);
    let up = Upstream::start_tls("tls", &cert, &key, None).await;
    let app = support::start(json!({
        "routes": [{ "match": { "prefix": "/" }, "pool": "secure" }],
        "pools": { "secure": {
            "backends": [{ "url": up.https_url() }],
            "tls": { "ca_file": path(&ca.ca_file()) },
        } },
    }))
    .await
    .unwrap();
    assert_eq!(app.get("/x").await.0, 200);
    let outcome = app
        .app
        .set_override(
            "reverseproxy.pools.secure.tls.ca_file",
            json!("/nonexistent/ca.pem"),
        )
        .await
        .unwrap();
    assert_ne!(outcome.status, ReloadStatus::Applied);
    let error = format!("{:?} {:?}", outcome.error, outcome.errors);
    assert!(error.contains("pools.secure.tls.ca_file"), "{error}");
    assert_eq!(app.get("/x").await.0, 200, "the running client stays");
    app.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_ca_file_a_private_ca_is_not_trusted() {
    let ca = Ca::new("private root");
    let (cert, key) = ca.leaf("server", &["127.0.0.1"]);
    let up = Upstream::start_tls("tls", &cert, &key, None).await;
    let app = support::start(json!({
        "routes": [{ "match": { "prefix": "/" }, "pool": "secure" }],
        "pools": { "secure": { "backends": [{ "url": up.https_url() }] } },
    }))
    .await
    .unwrap();
    assert_eq!(app.get("/x").await.0, 502, "the platform roots only");
    app.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_https_backend_cut_by_the_fault_proxy_goes_down_and_comes_back() {
    let ca = Ca::new("root");
    let (cert, key) = ca.leaf("server", &["127.0.0.1"]);
    let a = Upstream::start_tls("a", &cert, &key, None).await;
    let b = Upstream::start_tls("b", &cert, &key, None).await;
    let cut = modular_testkit::FaultProxy::start(a.addr).await.unwrap();
    let via = format!("https://{}", cut.addr());
    let mut app = support::start(json!({
        "routes": [{ "match": { "prefix": "/" }, "pool": "secure" }],
        "pools": { "secure": {
            "backends": [{ "url": via }, { "url": b.https_url() }],
            "tls": { "ca_file": path(&ca.ca_file()) },
            "health_check": check(),
        } },
    }))
    .await
    .unwrap();
    let mut seen = std::collections::BTreeSet::new();
    for _ in 0..4 {
        seen.insert(app.backend("/x").await);
    }
    assert_eq!(seen.len(), 2, "{seen:?}");

    cut.cut();
    // Idempotent requests are retried on the other backend: none fails.
    for _ in 0..10 {
        assert_eq!(app.get("/x").await.0, 200);
    }
    // Marked down by the checks (not only ejected or open by the failed requests).
    let cut_label = cut.addr().to_string();
    assert!(
        eventually(Duration::from_secs(5), || async {
            let report = app.reports().await.remove(0);
            report.status == HealthStatus::Degraded
                && report.details["backends"][&cut_label]["state"] == "down"
        })
        .await
    );
    cut.restore();
    assert!(
        eventually(Duration::from_secs(5), || async {
            app.reports().await[0].status == HealthStatus::Healthy
        })
        .await
    );
    let events: Vec<String> = app.events().into_iter().map(|(ty, _)| ty).collect();
    assert!(
        events.iter().any(|t| t.ends_with("backend.down")),
        "{events:?}"
    );
    assert!(
        events.iter().any(|t| t.ends_with("backend.up")),
        "{events:?}"
    );
    let mut seen = std::collections::BTreeSet::new();
    for _ in 0..6 {
        seen.insert(app.backend("/x").await);
    }
    assert_eq!(seen.len(), 2, "back in rotation: {seen:?}");
    app.finish().await;
}

/// Replaces `file` the way a mounted Secret or an atomic save does: a new file renamed over it.
fn replace(file: &Path, content: &str) {
    let next = file.with_extension("next");
    std::fs::write(&next, content).unwrap();
    std::fs::rename(&next, file).unwrap();
}

/// A CA bundle rotated on disk is loaded with no reload; one that does not load keeps the
/// running client and degrades health (with an event) until a good one lands; with
/// `watch_tls_files` turned off live, the watch is dropped.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rotated_tls_file_is_loaded_without_a_reload_and_a_bad_one_is_refused() {
    let first = Ca::new("first root");
    let second = Ca::new("second root");
    let (cert_b, key_b) = second.leaf("b", &["127.0.0.1"]);
    let b = Upstream::start_tls("b", &cert_b, &key_b, None).await;
    let dir = tempfile::tempdir().unwrap();
    let ca_file = dir.path().join("ca.pem");
    std::fs::write(&ca_file, first.pem()).unwrap();
    let mut app = support::start(json!({
        "routes": [{ "match": { "prefix": "/" }, "pool": "b" }],
        "pools": { "b": { "backends": [{ "url": b.https_url() }], "tls": { "ca_file": path(&ca_file) } } },
    }))
    .await
    .unwrap();
    let watched = eventually(Duration::from_secs(5), || async {
        app.reports().await[0].details["tls_files_watched"] == true
    })
    .await;
    assert!(watched);
    assert_eq!(app.get("/x").await.0, 502, "the first CA did not sign b");
    let _ = app.events();

    replace(&ca_file, &second.pem());
    // Waited for by its event, not by requests: each refused handshake would count
    // against the backend's outlier detection.
    let mut events = Vec::new();
    let rotated = eventually(Duration::from_secs(5), || {
        events.extend(app.events());
        let seen = events
            .iter()
            .any(|(ty, _)| ty == "com.modular.reverseproxy.tls.rotated");
        async move { seen }
    })
    .await;
    assert!(rotated, "{events:?}");
    let rotated: Vec<_> = events
        .iter()
        .filter(|(ty, _)| ty == "com.modular.reverseproxy.tls.rotated")
        .collect();
    assert_eq!(rotated.len(), 1, "{events:?}");
    assert_eq!(rotated[0].1["pools"], json!(["b"]));
    let (status, body) = app.get("/x").await;
    assert_eq!(
        status, 200,
        "the rotated CA is trusted with no reload: {body}"
    );

    // A half-written bundle: refused with its key path, the running client kept.
    replace(&ca_file, "-----BEGIN CERTIFICATE-----\nnot base64\n");
    let degraded = eventually(Duration::from_secs(5), || async {
        app.reports()
            .await
            .iter()
            .any(|r| r.component == "tls_files" && r.status == HealthStatus::Degraded)
    })
    .await;
    assert!(degraded);
    let reports = app.reports().await;
    let tls = reports.iter().find(|r| r.component == "tls_files").unwrap();
    let message = &tls.message;
    assert!(message.contains("pools.b.tls.ca_file"), "{message}");
    assert_eq!(app.get("/x").await.0, 200, "the running client is kept");
    let events = app.events();
    assert!(
        events
            .iter()
            .any(|(ty, data)| ty == "com.modular.reverseproxy.tls.rejected"
                && data["error"]
                    .as_str()
                    .unwrap_or_default()
                    .contains("pools.b.tls.ca_file")),
        "{events:?}"
    );

    replace(&ca_file, &second.pem());
    let recovered = eventually(Duration::from_secs(5), || async {
        app.reports()
            .await
            .iter()
            .all(|r| r.component != "tls_files")
    })
    .await;
    assert!(recovered);
    assert_eq!(app.get("/x").await.0, 200);

    // Watching turned off live: the watch is dropped.
    let outcome = app
        .app
        .set_override("reverseproxy.watch_tls_files", json!(false))
        .await
        .unwrap();
    assert_eq!(outcome.status, ReloadStatus::Applied, "{:?}", outcome.error);
    let unwatched = eventually(Duration::from_secs(5), || async {
        app.reports().await[0].details["tls_files_watched"] == false
    })
    .await;
    assert!(unwatched);
    app.finish().await;
}
