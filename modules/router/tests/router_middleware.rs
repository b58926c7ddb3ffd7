//! The middleware stack and route contributions over a real socket: request ids, caught
//! panics, compression, body limits, routes added after start, and conflicting routes.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::sync::Arc;
use std::time::Duration;

use axum::routing::get;
use modular_core::events::{EventFilter, event_data};
use modular_core::health::{
    HealthContext, HealthError, HealthProvider, HealthReport, HealthStatus, ProviderOptions,
};
use modular_core::http::RouteRegistry;
use modular_core::{BoxError, InitContext, Module};
use support::{json, start, start_with, text};

#[tokio::test]
async fn every_response_carries_a_request_id_generated_or_echoed() -> anyhow::Result<()> {
    let test = start("").await?;
    let generated = test.get("/greet").send().await?;
    let id = generated.headers()["x-request-id"].to_str()?.to_owned();
    assert_eq!(id.len(), 36, "{id}");
    let unknown = test.get("/not-a-route").send().await?;
    assert_eq!(unknown.status(), 404);
    assert!(unknown.headers().contains_key("x-request-id"));
    let echoed = test
        .get("/greet")
        .header("x-request-id", "abc-123")
        .send()
        .await?;
    assert_eq!(echoed.headers()["x-request-id"], "abc-123");

    test.write_config("router:\n  request_id_header: x-correlation-id\n")?;
    assert!(test.app.reload().await?.is_applied());
    let renamed = test
        .get("/greet")
        .header("x-correlation-id", "c-1")
        .send()
        .await?;
    assert_eq!(renamed.headers()["x-correlation-id"], "c-1");
    assert!(renamed.headers().get("x-request-id").is_none());
    Ok(())
}

#[tokio::test]
async fn a_panicking_handler_answers_500_and_the_server_keeps_serving() -> anyhow::Result<()> {
    let test = start("").await?;
    let (status, body) = text(test.get("/panic")).await?;
    assert_eq!(status, 500);
    assert_eq!(body, r#"{"error":"internal server error"}"#);
    assert_eq!(text(test.get("/greet")).await?, (200, "hello".to_owned()));
    Ok(())
}

#[tokio::test]
async fn responses_are_gzipped_for_clients_that_ask_unless_compression_is_off() -> anyhow::Result<()>
{
    let test = start("").await?;
    let compressed = test
        .get("/big")
        .header("accept-encoding", "gzip")
        .send()
        .await?;
    assert_eq!(compressed.headers()["content-encoding"], "gzip");
    assert!(compressed.bytes().await?.len() < 16_000);
    let plain = test.get("/big").send().await?;
    assert!(plain.headers().get("content-encoding").is_none());

    test.write_config("router:\n  compression: false\n")?;
    assert!(test.app.reload().await?.is_applied());
    let off = test
        .get("/big")
        .header("accept-encoding", "gzip")
        .send()
        .await?;
    assert!(off.headers().get("content-encoding").is_none());
    assert_eq!(off.bytes().await?.len(), 16_000);
    Ok(())
}

#[tokio::test]
async fn bodies_over_the_router_limit_are_refused_with_413() -> anyhow::Result<()> {
    let test = start("router:\n  body_limit: 100\n").await?;
    assert_eq!(
        text(test.post("/echo").body(vec![b'x'; 100])).await?,
        (200, "100".to_owned())
    );
    assert_eq!(
        test.post("/echo")
            .body(vec![b'x'; 101])
            .send()
            .await?
            .status(),
        413
    );
    Ok(())
}

#[tokio::test]
async fn routes_contributed_after_start_are_served_after_a_rebuild() -> anyhow::Result<()> {
    let test = start("").await?;
    assert_eq!(test.get("/late").send().await?.status(), 404);
    let mut rebuilt = test
        .app
        .events()
        .subscribe(EventFilter::exact("com.modular.router.routes.rebuilt"));
    let routes = RouteRegistry::shared(test.app.services());
    routes.route("latecomer", "/late", get(|| async { "late" }));

    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while test.get("/late").send().await?.status() != 200 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the new route was never served"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let health = test.app.health().expect("aggregator").force_refresh().await;
    let report = health.report("router", "routes").expect("router report");
    assert_eq!(
        report.details["owners"],
        serde_json::json!(["greeter", "latecomer"])
    );
    let event = rebuilt.try_recv().expect("routes.rebuilt event");
    assert_eq!(
        event_data(&event).map(|d| d["trigger"].clone()),
        Some("contribution".into())
    );
    Ok(())
}

#[tokio::test]
async fn a_conflicting_contribution_keeps_the_old_routes_and_degrades_health() -> anyhow::Result<()>
{
    let test = start("").await?;
    let aggregator = test.app.health().expect("aggregator").clone();
    RouteRegistry::shared(test.app.services()).route(
        "copycat",
        "/greet",
        get(|| async { "impostor" }),
    );

    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    let report = loop {
        let health = aggregator.force_refresh().await;
        let report = health
            .report("router", "routes")
            .cloned()
            .expect("router report");
        if report.status != HealthStatus::Healthy || tokio::time::Instant::now() > deadline {
            break report;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(report.status, HealthStatus::Degraded, "{report:?}");
    assert!(report.message.contains("route conflict"), "{report:?}");
    assert_eq!(text(test.get("/greet")).await?, (200, "hello".to_owned()));

    // Taking the conflict away rebuilds and recovers.
    RouteRegistry::shared(test.app.services()).remove("copycat");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    loop {
        let health = aggregator.force_refresh().await;
        if health
            .report("router", "routes")
            .is_some_and(|r| r.status == HealthStatus::Healthy)
        {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "never recovered");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Ok(())
}

/// A module whose one health check takes 150 ms: longer than the 50 ms request timeout of
/// the test below, shorter than its own 2 s provider timeout.
struct SlowChecker;

struct SlowHealth;

#[modular_core::async_trait]
impl HealthProvider for SlowHealth {
    async fn health_check(&self, _ctx: &HealthContext) -> Result<Vec<HealthReport>, HealthError> {
        tokio::time::sleep(Duration::from_millis(150)).await;
        Ok(vec![HealthReport::healthy("slowpoke", "check")])
    }
}

#[modular_core::async_trait]
impl Module for SlowChecker {
    fn name(&self) -> &str {
        "slowpoke"
    }

    async fn init(&mut self, ctx: &mut InitContext<'_>) -> Result<(), BoxError> {
        ctx.register_health_provider(
            "slowpoke",
            Arc::new(SlowHealth),
            ProviderOptions::default().with_timeout(Duration::from_secs(2)),
        );
        Ok(())
    }
}

#[tokio::test]
async fn the_request_timeout_cuts_contributed_routes_but_not_the_health_endpoints()
-> anyhow::Result<()> {
    let test = start_with("router:\n  request_timeout: 50ms\n", |b| {
        b.module(SlowChecker)
    })
    .await?;
    // The health cache TTL is zero: every probe waits 150 ms for the slow provider.
    for path in ["/readyz", "/livez"] {
        let response = test.get(path).send().await?;
        assert_eq!(response.status(), 200, "{path}");
        assert_eq!(response.headers()["cache-control"], "no-store", "{path}");
        assert_eq!(response.text().await?, "ok", "{path}");
    }
    let response = test.get("/health/ready").send().await?;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["cache-control"], "no-store");
    let body: serde_json::Value = response.json().await?;
    assert_eq!(body["readiness"], "healthy", "{body}");
    let (status, body) = json(test.get("/health/checks/slowpoke")).await?;
    assert_eq!((status, body["status"].as_str()), (200, Some("healthy")));

    // A contributed route that outlives the timeout still gets the timeout's 503, and the other
    // middleware still wraps it.
    let slow = test.get("/slow").send().await?;
    assert_eq!(slow.status(), 503);
    assert!(slow.headers().contains_key("x-request-id"));
    assert_eq!(text(test.get("/greet")).await?, (200, "hello".to_owned()));
    Ok(())
}

#[tokio::test]
async fn responses_are_compressed_with_brotli_or_zstd_for_clients_that_ask_for_them()
-> anyhow::Result<()> {
    let test = start("").await?;
    for encoding in ["br", "zstd"] {
        let response = test
            .get("/big")
            .header("accept-encoding", encoding)
            .send()
            .await?;
        assert_eq!(response.headers()["content-encoding"], encoding);
        let body = response.bytes().await?;
        assert!(body.len() < 1_000, "{encoding}: {} bytes", body.len());
        if encoding == "zstd" {
            // A zstd frame starts with its magic number.
            assert_eq!(body[..4], [0x28, 0xb5, 0x2f, 0xfd]);
        }
    }
    Ok(())
}

/// Every CORS field but `allowed_origins` (the conformance kit's) is observed on the live
/// stack after its own reload: a preflight's allowed methods, headers and max age, an answer's
/// exposed headers and credentials flag.
#[tokio::test]
async fn a_reload_of_each_cors_field_changes_the_next_preflight_or_answer() -> anyhow::Result<()> {
    const ORIGIN: &str = "https://app.example";
    let test = start(&format!(
        "router:\n  cors:\n    allowed_origins: [\"{ORIGIN}\"]\n    allowed_methods: [GET]\n"
    ))
    .await?;
    let preflight = || {
        test.http
            .request(reqwest::Method::OPTIONS, test.url("/greet"))
            .header("origin", ORIGIN)
            .header("access-control-request-method", "PUT")
            .header("access-control-request-headers", "x-tenant")
            .send()
    };
    let header = |answer: &reqwest::Response, name: &str| {
        answer
            .headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_ascii_lowercase()
    };
    let set = |key: &str, value: serde_json::Value| {
        let app = &test.app;
        let key = format!("router.cors.{key}");
        async move {
            let outcome = app.set_override(&key, value).await?;
            anyhow::ensure!(outcome.is_applied(), "{key}: {outcome:?}");
            anyhow::Ok(())
        }
    };

    let before = preflight().await?;
    assert!(!header(&before, "access-control-allow-methods").contains("put"));
    assert!(!header(&before, "access-control-allow-headers").contains("x-tenant"));
    assert_eq!(header(&before, "access-control-max-age"), "");

    set("allowed_methods", serde_json::json!(["GET", "PUT"])).await?;
    let methods = preflight().await?;
    assert!(header(&methods, "access-control-allow-methods").contains("put"));

    set("allowed_headers", serde_json::json!(["x-tenant"])).await?;
    let headers = preflight().await?;
    assert!(header(&headers, "access-control-allow-headers").contains("x-tenant"));

    set("max_age", serde_json::json!("10m")).await?;
    assert_eq!(header(&preflight().await?, "access-control-max-age"), "600");

    let simple = || test.get("/greet").header("origin", ORIGIN).send();
    let plain = simple().await?;
    assert_eq!(header(&plain, "access-control-expose-headers"), "");
    assert_eq!(header(&plain, "access-control-allow-credentials"), "");

    set("exposed_headers", serde_json::json!(["x-request-id"])).await?;
    let exposed = simple().await?;
    assert!(header(&exposed, "access-control-expose-headers").contains("x-request-id"));

    set("allow_credentials", serde_json::json!(true)).await?;
    assert_eq!(
        header(&simple().await?, "access-control-allow-credentials"),
        "true"
    );
    Ok(())
}
