//! Health: probes of a real upstream, followed through the application's health aggregator.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use modular_core::ReloadStatus;
use std::time::{Duration, Instant};

use modular_core::health::{AggregatedHealth, HealthReport, HealthStatus};
use modular_httpclient::DEFAULT_HEALTH_TIMEOUT;
use modular_testkit::FaultProxy;
use serde_json::json;
use support::TestServer;

fn report<'a>(health: &'a AggregatedHealth, component: &str) -> &'a HealthReport {
    health
        .reports
        .iter()
        .find(|r| r.module == "httpclient" && r.component == component)
        .unwrap_or_else(|| panic!("no httpclient:{component} report in {:?}", health.reports))
}

/// The httpclient module's reports that are not healthy.
fn ours(health: &AggregatedHealth) -> Vec<&HealthReport> {
    health
        .reports
        .iter()
        .filter(|r| r.module == "httpclient" && r.status != HealthStatus::Healthy)
        .collect()
}

async fn app(yaml: &str) -> modular_core::Application {
    let mut app = support::app_builder(yaml)
        .with_health_aggregator()
        .build()
        .await
        .unwrap();
    app.start().await.unwrap();
    app
}

#[tokio::test]
async fn health_follows_a_probe_upstream_going_down_and_coming_back() {
    let server = TestServer::start().await;
    let proxy = FaultProxy::start(server.addr).await.unwrap();
    let yaml = format!(
        "httpclient:\n  health_probe:\n    - name: upstream\n      url: http://{}/health\n      timeout: 500ms\n",
        proxy.addr()
    );
    let mut app = app(&yaml).await;
    let health = app.health().unwrap().clone();

    let up = health.force_refresh().await;
    assert_eq!(
        report(&up, "probe.upstream").status,
        HealthStatus::Healthy,
        "{up:?}"
    );
    assert_eq!(up.readiness, HealthStatus::Healthy);

    proxy.cut();
    let down = health.force_refresh().await;
    let probe = report(&down, "probe.upstream");
    assert_eq!(probe.status, HealthStatus::Unhealthy, "{probe:?}");
    assert!(!probe.optional);
    assert_eq!(down.readiness, HealthStatus::Unhealthy);

    proxy.restore();
    let back = health.force_refresh().await;
    assert_eq!(
        report(&back, "probe.upstream").status,
        HealthStatus::Healthy,
        "{back:?}"
    );
    assert_eq!(back.readiness, HealthStatus::Healthy);

    app.stop().await.unwrap();
}

#[tokio::test]
async fn an_unexpected_status_is_unhealthy_and_an_optional_probe_only_degrades() {
    let server = TestServer::start().await;
    let yaml = format!(
        "httpclient:\n  health_probe:\n    - name: api\n      url: {}\n      expected_status: [200]\n    - name: search\n      url: {}\n      optional: true\n",
        server.url("/health"),
        server.url("/status/500"),
    );
    let mut app = app(&yaml).await;
    let health = app.health().unwrap().clone();

    let first = health.force_refresh().await;
    assert_eq!(report(&first, "probe.api").status, HealthStatus::Healthy);
    let search = report(&first, "probe.search");
    assert_eq!(search.status, HealthStatus::Degraded);
    assert!(search.optional);
    assert_eq!(
        search.message,
        "unexpected status 500 Internal Server Error, expected any 2xx"
    );
    assert_eq!(search.details["status"], 500);
    assert_eq!(
        first.readiness,
        HealthStatus::Healthy,
        "an optional probe never fails readiness"
    );

    server.set_health(503);
    let second = health.force_refresh().await;
    let api = report(&second, "probe.api");
    assert_eq!(api.status, HealthStatus::Unhealthy);
    assert_eq!(
        api.message,
        "unexpected status 503 Service Unavailable, expected one of [200]"
    );
    assert_eq!(second.readiness, HealthStatus::Unhealthy);

    app.stop().await.unwrap();
}

#[tokio::test]
async fn a_probe_that_does_not_answer_in_time_is_unhealthy() {
    let server = TestServer::start().await;
    let yaml = format!(
        "httpclient:\n  health_probe:\n    - name: slow\n      url: {}\n      timeout: 150ms\n",
        server.url("/slow/5000"),
    );
    let mut app = app(&yaml).await;

    let health = app.health().unwrap().force_refresh().await;
    let slow = report(&health, "probe.slow");
    assert_eq!(slow.status, HealthStatus::Unhealthy, "{slow:?}");
    assert_eq!(slow.message, "no answer within 150ms");

    app.stop().await.unwrap();
}

#[tokio::test]
async fn without_probes_the_client_reports_healthy_with_its_settings_and_a_reload_adds_probes() {
    let server = TestServer::start().await;
    let mut app =
        app("httpclient:\n  request_timeout: 7s\n  default_headers:\n    x-api-key: secret\n")
            .await;
    let health = app.health().unwrap().clone();

    let first = health.force_refresh().await;
    let ours: Vec<_> = first
        .reports
        .iter()
        .filter(|r| r.module == "httpclient")
        .collect();
    assert_eq!(ours.len(), 1, "{ours:?}");
    let client = report(&first, "client");
    assert_eq!(client.status, HealthStatus::Healthy);
    assert_eq!(client.details["request_timeout_ms"], 7000);
    assert_eq!(client.details["generation"], 1);
    assert_eq!(client.details["default_headers"], json!(["x-api-key"]));
    assert!(
        !serde_json::to_string(&client.details)
            .unwrap()
            .contains("secret")
    );

    let probes = json!([{ "name": "added", "url": server.url("/health") }]);
    let outcome = app
        .set_override("httpclient.health_probe", probes)
        .await
        .unwrap();
    assert_eq!(outcome.status, ReloadStatus::Applied, "{outcome:?}");

    let second = health.force_refresh().await;
    assert_eq!(report(&second, "probe.added").status, HealthStatus::Healthy);
    assert_eq!(report(&second, "client").details["generation"], 2);
    assert_eq!(server.hits("/health").len(), 1);

    app.stop().await.unwrap();
}

#[tokio::test]
async fn a_reload_of_health_timeout_and_optional_changes_the_live_registration() {
    let server = TestServer::start().await;
    let yaml = format!(
        "httpclient:\n  health_probe:\n    - name: slow\n      url: {}\n      timeout: 5s\n",
        server.url("/slow/5000"),
    );
    let mut app = app(&yaml).await;
    let health = app.health().unwrap().clone();
    let before = health.provider_options("httpclient").unwrap();
    assert_eq!(before.timeout, DEFAULT_HEALTH_TIMEOUT);
    assert!(!before.optional);

    // The probe's own 5 s are cut to what remains of the new 200 ms deadline; whichever of
    // the probe and the aggregator fires first reports it.
    let outcome = app
        .set_override("httpclient.health.timeout", json!("200ms"))
        .await
        .unwrap();
    assert_eq!(outcome.status, ReloadStatus::Applied, "{outcome:?}");
    let started = Instant::now();
    let answer = health.force_refresh().await;
    let elapsed = started.elapsed();
    assert!(
        elapsed < Duration::from_secs(3),
        "the check ran past the reloaded 200ms deadline: {elapsed:?}"
    );
    let failed = ours(&answer);
    assert!(!failed.is_empty(), "{answer:?}");
    for r in &failed {
        assert_eq!(r.status, HealthStatus::Unhealthy, "{r:?}");
        assert!(
            r.message.starts_with("no answer within") || r.message == "timed out after 200ms",
            "{r:?}"
        );
        assert_ne!(r.message, "no answer within 5s", "{r:?}");
    }
    assert_eq!(answer.readiness, HealthStatus::Unhealthy);

    let outcome = app
        .set_override("httpclient.health.optional", json!(true))
        .await
        .unwrap();
    assert_eq!(outcome.status, ReloadStatus::Applied, "{outcome:?}");
    let answer = health.force_refresh().await;
    assert!(ours(&answer).iter().all(|r| r.optional), "{answer:?}");
    assert_eq!(answer.health, HealthStatus::Unhealthy, "still counted");
    assert_eq!(answer.readiness, HealthStatus::Healthy, "{answer:?}");
    let after = health.provider_options("httpclient").unwrap();
    assert_eq!(after.timeout, Duration::from_millis(200));
    assert!(after.optional);

    app.stop().await.unwrap();
}
