//! `httpclient.clients.<name>`: named clients with their own base URL, headers, timeouts and
//! retry policy over the section's, each followed live by its handle across reloads.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::time::Duration;

use modular_core::ReloadStatus;
use modular_httpclient::{HttpClient, HttpClientError};
use serde_json::json;
use support::TestServer;

async fn reload(app: &modular_core::Application, key: &str, value: serde_json::Value) {
    let outcome = app.set_override(key, value).await.unwrap();
    assert_eq!(outcome.status, ReloadStatus::Applied, "{outcome:?}");
}

fn config(server: &TestServer) -> String {
    format!(
        "httpclient:
  request_timeout: 10s
  default_headers: {{ x-section: section-wide }}
  clients:
    payments:
      base_url: {}
      request_timeout: 500ms
      user_agent: payments-agent
      default_headers: {{ x-api-key: payments-key-s3cret }}
      retry: {{ max_retries: 0 }}
",
        server.url("/")
    )
}

#[tokio::test(start_paused = true)]
async fn a_named_client_resolves_paths_on_its_base_url_with_its_own_headers_and_timeout() {
    let server = TestServer::start().await;
    let app = support::app_with(&config(&server)).await.unwrap();
    let http = app.services().get::<HttpClient>().unwrap();
    assert_eq!(http.client_names(), ["payments"]);
    assert!(http.named("missing").is_none());
    let payments = http.named("payments").unwrap();
    assert_eq!(payments.name(), Some("payments"));

    let answer = payments.get("echo").body("hi").send().await.unwrap();
    assert_eq!(answer.text().await.unwrap(), "hi");
    let hit = &server.hits("/echo")[0];
    assert_eq!(hit.headers["x-api-key"], "payments-key-s3cret");
    assert_eq!(hit.headers["x-section"], "section-wide");
    assert_eq!(hit.headers["user-agent"], "payments-agent");

    // Its own timeout (500 ms), not the section's 10 s; and no retry.
    let error = payments.get("/slow/2000").send().await.unwrap_err();
    assert!(error.is_timeout(), "{error}");
    assert_eq!(server.hits("/slow/2000").len(), 1);
    // The section's client keeps its own settings, and no base URL.
    assert_eq!(http.settings().request_timeout, Duration::from_secs(10));
    let relative = http.get("/echo").send().await.unwrap_err();
    assert!(
        matches!(relative, HttpClientError::InvalidUrl { .. }),
        "{relative}"
    );
    let answer = http.get(server.url("/slow/2000")).send().await.unwrap();
    assert_eq!(answer.status(), 200);
}

#[tokio::test(start_paused = true)]
async fn a_reload_moves_a_named_client_handle_to_its_new_base_url_and_timeout_and_a_removal_fails_it()
 {
    let first = TestServer::start().await;
    let second = TestServer::start().await;
    let app = support::app_with(&config(&first)).await.unwrap();
    let http = app.services().get::<HttpClient>().unwrap();
    let payments = http.named("payments").unwrap();
    payments.get("echo").send().await.unwrap();
    assert_eq!(first.hits("/echo").len(), 1);

    reload(
        &app,
        "httpclient.clients.payments.base_url",
        json!(second.url("/")),
    )
    .await;
    payments.get("echo").send().await.unwrap();
    assert_eq!(first.hits("/echo").len(), 1);
    assert_eq!(second.hits("/echo").len(), 1);

    reload(
        &app,
        "httpclient.clients.payments.request_timeout",
        json!("5s"),
    )
    .await;
    let answer = payments.get("/slow/2000").send().await.unwrap();
    assert_eq!(answer.status(), 200);

    // A second named client appears with the next reload, and goes with the override that
    // added it: its handle then fails with a clear error instead of using another client.
    reload(
        &app,
        "httpclient.clients.search",
        json!({"base_url": second.url("/")}),
    )
    .await;
    assert_eq!(http.client_names(), ["payments", "search"]);
    let search = http.named("search").unwrap();
    search.get("echo").send().await.unwrap();
    assert_eq!(second.hits("/echo").len(), 2);
    let outcome = app
        .remove_override("httpclient.clients.search")
        .await
        .unwrap();
    assert_eq!(outcome.status, ReloadStatus::Applied, "{outcome:?}");
    assert_eq!(http.client_names(), ["payments"]);
    let error = search.get("echo").send().await.unwrap_err();
    assert!(
        matches!(&error, HttpClientError::UnknownClient { name } if name == "search"),
        "{error}"
    );
    assert_eq!(second.hits("/echo").len(), 2);
}

#[tokio::test]
async fn bad_named_clients_are_rejected_with_their_paths_and_their_secrets_stay_hidden() {
    let server = TestServer::start().await;
    let app = support::app_with(&config(&server)).await.unwrap();
    let http = app.services().get::<HttpClient>().unwrap();
    let generation = http.generation();

    for (key, value, path) in [
        (
            "httpclient.clients.default",
            json!({}),
            "httpclient.clients.default",
        ),
        (
            "httpclient.clients.payments.base_url",
            json!("https://user:pw@payments.internal/"),
            "httpclient.clients.payments.base_url",
        ),
        (
            "httpclient.clients.payments.base_url",
            json!("https://payments.internal/?token=abc"),
            "httpclient.clients.payments.base_url",
        ),
        (
            "httpclient.clients.payments.request_timeout",
            json!("0s"),
            "httpclient.clients.payments.request_timeout",
        ),
        (
            "httpclient.clients.payments.default_headers",
            json!({"bad header": "x"}),
            "httpclient.clients.payments.default_headers.bad header",
        ),
    ] {
        let outcome = app.set_override(key, value).await.unwrap();
        assert_eq!(outcome.status, ReloadStatus::Rejected, "{key}: {outcome:?}");
        assert!(
            outcome.errors.iter().any(|e| e.path == path),
            "{path} in {:?}",
            outcome.errors
        );
    }
    assert_eq!(http.generation(), generation);

    // The named client's header value is in no Debug output and no reload outcome.
    let changed = app
        .set_override(
            "httpclient.clients.payments.default_headers",
            json!({"x-api-key": "rotated-key-s3cret"}),
        )
        .await
        .unwrap();
    assert_eq!(changed.status, ReloadStatus::Applied, "{changed:?}");
    let shown = format!(
        "{changed:?} {http:?} {:?} {}",
        http.named("payments").unwrap(),
        serde_json::to_string(&changed.changes).unwrap()
    );
    assert!(!shown.contains("s3cret"), "{shown}");
}
