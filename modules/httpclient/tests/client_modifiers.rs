//! Request modifiers: named hooks added and removed at runtime.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use modular_core::health::{HealthContext, HealthProvider, HealthStatus};
use modular_httpclient::{
    HealthProbeConfig, HttpClient, HttpClientConfig, HttpClientHealth, RetryConfig,
};
use reqwest::header::HeaderValue;
use support::TestServer;

fn tenant(value: &'static str) -> impl Fn(&mut reqwest::Request) + Send + Sync + 'static {
    move |request: &mut reqwest::Request| {
        request
            .headers_mut()
            .insert("x-tenant", HeaderValue::from_static(value));
    }
}

fn tenants(server: &TestServer) -> Vec<Option<String>> {
    server
        .hits("/echo")
        .iter()
        .map(|h| {
            h.headers
                .get("x-tenant")
                .map(|v| v.to_str().unwrap().to_owned())
        })
        .collect()
}

#[tokio::test]
async fn a_modifier_applies_from_when_it_is_added_until_it_is_removed() {
    let server = TestServer::start().await;
    let client = HttpClient::new(HttpClientConfig::default()).unwrap();

    client.get(server.url("/echo")).send().await.unwrap();
    assert!(client.add_modifier("tenant", tenant("acme")).is_none());
    client.get(server.url("/echo")).send().await.unwrap();
    assert!(client.add_modifier("tenant", tenant("globex")).is_some());
    client.get(server.url("/echo")).send().await.unwrap();
    assert!(client.remove_modifier("tenant"));
    client.get(server.url("/echo")).send().await.unwrap();

    assert_eq!(
        tenants(&server),
        [
            None,
            Some("acme".to_owned()),
            Some("globex".to_owned()),
            None
        ]
    );
    assert!(client.modifier_names().is_empty());
}

#[tokio::test]
async fn a_modifier_added_on_one_handle_applies_to_every_holder_of_the_service() {
    let server = TestServer::start().await;
    let mut app = support::app_with("{}\n").await.unwrap();
    app.start().await.unwrap();
    let one = app.services().get::<HttpClient>().unwrap();
    let other = app.services().get::<HttpClient>().unwrap();

    one.add_modifier("tenant", tenant("acme"));
    other.get(server.url("/echo")).send().await.unwrap();

    assert_eq!(tenants(&server), [Some("acme".to_owned())]);
    app.stop().await.unwrap();
}

#[tokio::test]
async fn a_modifier_can_rewrite_the_request_url() {
    let server = TestServer::start().await;
    let client = HttpClient::new(HttpClientConfig::default()).unwrap();
    client.add_modifier("reroute", |request: &mut reqwest::Request| {
        if request.url().path() == "/old" {
            request.url_mut().set_path("/echo");
        }
    });

    let response = client.get(server.url("/old")).send().await.unwrap();

    assert_eq!(response.status(), 200);
    assert_eq!(server.hits("/echo").len(), 1);
}

#[tokio::test(start_paused = true)]
async fn modifiers_run_once_per_request_and_every_retry_resends_their_result() {
    let server = TestServer::start().await;
    server.fail_next("m", 2);
    let client = HttpClient::new(HttpClientConfig {
        retry: RetryConfig {
            max_retries: 2,
            base_delay: Duration::from_millis(10),
            jitter: 0.0,
            ..RetryConfig::default()
        },
        ..HttpClientConfig::default()
    })
    .unwrap();
    let calls = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&calls);
    client.add_modifier("count", move |request: &mut reqwest::Request| {
        let n = counter.fetch_add(1, Ordering::SeqCst) + 1;
        request.headers_mut().insert("x-call", HeaderValue::from(n));
    });

    let response = client.get(server.url("/flaky/m")).send().await.unwrap();

    assert_eq!(response.status(), 200);
    assert_eq!(calls.load(Ordering::SeqCst), 1);
    let sent: Vec<_> = server
        .hits("/flaky/m")
        .iter()
        .map(|h| h.headers["x-call"].clone())
        .collect();
    assert_eq!(sent, ["1", "1", "1"]);
}

#[tokio::test]
async fn modifiers_also_apply_to_health_probes() {
    let server = TestServer::start().await;
    let client = HttpClient::new(HttpClientConfig {
        health_probe: vec![HealthProbeConfig::new("api", server.url("/health"))],
        ..HttpClientConfig::default()
    })
    .unwrap();
    client.add_modifier("tenant", tenant("acme"));
    let provider = HttpClientHealth::new(client);

    let reports = provider
        .health_check(&HealthContext::new("httpclient", Duration::from_secs(5)))
        .await
        .unwrap();

    assert_eq!(reports.len(), 2);
    assert_eq!(reports[1].component, "probe.api");
    assert_eq!(reports[1].status, HealthStatus::Healthy);
    assert_eq!(server.hits("/health")[0].headers["x-tenant"], "acme");
}
