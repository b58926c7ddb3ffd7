//! A dynamic reload changes live behaviour: the new `request_timeout` applies to the next
//! request, while a request already running keeps the timeout it started with.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::time::Duration;

use modular_core::ReloadStatus;
use modular_core::events::{EventFilter, event_data};
use modular_httpclient::HttpClient;
use serde_json::json;
use support::TestServer;
use tokio::time::Instant;

#[tokio::test(start_paused = true)]
async fn a_request_timeout_reload_applies_to_the_next_request_while_a_running_one_keeps_its_old_timeout()
 {
    let server = TestServer::start().await;
    let mut app =
        support::app_with("httpclient:\n  request_timeout: 10s\n  retry:\n    max_retries: 0\n")
            .await
            .unwrap();
    app.start().await.unwrap();
    let client = app.services().get::<HttpClient>().unwrap();
    let mut rebuilt = app
        .events()
        .subscribe(EventFilter::exact("com.modular.httpclient.client.rebuilt"));

    // A request that takes 2 s starts under the 10 s timeout...
    let running = tokio::spawn({
        let client = client.clone();
        let url = server.url("/slow/2000");
        async move {
            let started = Instant::now();
            let response = client.get(url).send().await;
            (response, started.elapsed())
        }
    });
    server.state.slow_arrived.notified().await;

    // ...and while it runs the timeout drops to 500 ms.
    let outcome = app
        .set_override("httpclient.request_timeout", json!("500ms"))
        .await
        .unwrap();
    assert_eq!(outcome.status, ReloadStatus::Applied, "{outcome:?}");
    assert_eq!(outcome.reloaded, ["httpclient"]);
    assert_eq!(
        client.settings().request_timeout,
        Duration::from_millis(500)
    );
    assert_eq!(client.generation(), 2);

    // The next request runs on the new client and times out after 500 ms.
    let started = Instant::now();
    let error = client
        .get(server.url("/slow/2000"))
        .send()
        .await
        .unwrap_err();
    let waited = started.elapsed();
    assert!(error.is_timeout(), "{error}");
    assert!(
        waited >= Duration::from_millis(500) && waited < Duration::from_millis(600),
        "{waited:?}"
    );

    // The request started before the reload finishes on the old client, after 2 s.
    let (response, took) = running.await.unwrap();
    let response = response.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.text().await.unwrap(), "finally");
    assert!(took >= Duration::from_secs(2), "{took:?}");

    let events = rebuilt.drain();
    assert_eq!(events.len(), 1);
    let data = event_data(&events[0]).unwrap();
    assert_eq!(data["generation"], 2);
    assert_eq!(data["previous_generation"], 1);
    assert_eq!(data["trigger"], "override");
    assert_eq!(data["changes"], json!(["request_timeout"]));

    app.stop().await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn a_retry_policy_reload_applies_to_requests_sent_afterwards() {
    let server = TestServer::start().await;
    let mut app =
        support::app_with("httpclient:\n  retry:\n    max_retries: 0\n    base_delay: 10ms\n")
            .await
            .unwrap();
    app.start().await.unwrap();
    let client = app.services().get::<HttpClient>().unwrap();

    server.fail_next("before", 1);
    let before = client
        .get(server.url("/flaky/before"))
        .send()
        .await
        .unwrap();
    assert_eq!(before.status(), 503);

    let outcome = app
        .set_override("httpclient.retry.max_retries", json!(2))
        .await
        .unwrap();
    assert_eq!(outcome.status, ReloadStatus::Applied, "{outcome:?}");

    server.fail_next("after", 1);
    let after = client.get(server.url("/flaky/after")).send().await.unwrap();
    assert_eq!(after.status(), 200);
    assert_eq!(server.hits("/flaky/before").len(), 1);
    assert_eq!(server.hits("/flaky/after").len(), 2);

    app.stop().await.unwrap();
}
