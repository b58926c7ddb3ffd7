//! Start-up: the module registers a working client, built from the section or its defaults.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use modular_core::ReloadStatus;
use modular_core::events::{EventFilter, event_data};
use modular_httpclient::{HttpClient, HttpClientConfig};
use serde_json::json;
use support::TestServer;

#[tokio::test]
async fn an_application_without_an_httpclient_section_starts_with_the_defaults() {
    let server = TestServer::start().await;
    let events = modular_core::events::EventBus::new();
    let mut started = events.subscribe(EventFilter::exact("com.modular.module.started"));
    // `other` is a section the application declares for itself; no module reads it.
    let mut app = support::app_builder("other: {}\n")
        .free_section("other")
        .event_bus(events)
        .build()
        .await
        .unwrap();
    app.start().await.unwrap();

    let client = app
        .services()
        .get::<HttpClient>()
        .expect("the module registers Arc<HttpClient>");
    assert_eq!(*client.settings(), HttpClientConfig::default());
    let response = client.get(server.url("/echo")).send().await.unwrap();

    assert_eq!(response.status(), 200);
    let agent = server.hits("/echo")[0].headers["user-agent"]
        .to_str()
        .unwrap()
        .to_owned();
    assert_eq!(
        agent,
        format!("modular-httpclient/{}", env!("CARGO_PKG_VERSION"))
    );
    let data = event_data(&started.recv().await.unwrap()).unwrap().clone();
    assert_eq!(data["module"], "httpclient");
    app.stop().await.unwrap();
}

#[tokio::test]
async fn configured_default_headers_and_user_agent_reach_the_server_unless_a_request_overrides_them()
 {
    let server = TestServer::start().await;
    let yaml = "httpclient:\n  user_agent: billing/2\n  default_headers:\n    x-api-key: k-1\n    x-region: eu\n";
    let mut app = support::app_with(yaml).await.unwrap();
    app.start().await.unwrap();
    let client = app.services().get::<HttpClient>().unwrap();

    client
        .get(server.url("/echo"))
        .header("x-region", "us")
        .send()
        .await
        .unwrap();

    let headers = &server.hits("/echo")[0].headers;
    assert_eq!(headers["user-agent"], "billing/2");
    assert_eq!(headers["x-api-key"], "k-1");
    assert_eq!(headers["x-region"], "us");
    app.stop().await.unwrap();
}

#[tokio::test]
async fn a_default_headers_reload_changes_what_the_next_request_sends_and_stays_redacted() {
    let server = TestServer::start().await;
    let mut app = support::app_with("httpclient:\n  default_headers:\n    x-api-key: old-key\n")
        .await
        .unwrap();
    app.start().await.unwrap();
    let client = app.services().get::<HttpClient>().unwrap();

    client.get(server.url("/echo")).send().await.unwrap();
    let outcome = app
        .set_override(
            "httpclient.default_headers",
            json!({ "x-api-key": "new-key" }),
        )
        .await
        .unwrap();
    client.get(server.url("/echo")).send().await.unwrap();

    assert_eq!(outcome.status, ReloadStatus::Applied, "{outcome:?}");
    let sent: Vec<_> = server
        .hits("/echo")
        .iter()
        .map(|h| h.headers["x-api-key"].clone())
        .collect();
    assert_eq!(sent, ["old-key", "new-key"]);
    // The outcome reports the change without either key.
    let shown = serde_json::to_string(&outcome).unwrap();
    assert!(shown.contains("default_headers"), "{shown}");
    assert!(
        !shown.contains("old-key") && !shown.contains("new-key"),
        "{shown}"
    );
    app.stop().await.unwrap();
}
