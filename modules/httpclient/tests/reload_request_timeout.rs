//! A dynamic reload changes live behaviour: the new `request_timeout` applies to the next
//! request, while a request already running keeps the timeout it started with; and every other
//! dynamic field, one test each, is observed on the next request after a reload.
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

async fn reload(app: &modular_core::Application, key: &str, value: serde_json::Value) {
    let outcome = app.set_override(key, value).await.unwrap();
    assert_eq!(outcome.status, ReloadStatus::Applied, "{outcome:?}");
}

#[tokio::test(start_paused = true)]
async fn a_user_agent_reload_applies_to_the_next_request() {
    let server = TestServer::start().await;
    let app = support::app_with("httpclient:\n  user_agent: agent-one\n")
        .await
        .unwrap();
    let client = app.services().get::<HttpClient>().unwrap();

    client.get(server.url("/echo")).send().await.unwrap();
    reload(&app, "httpclient.user_agent", json!("agent-two")).await;
    client.get(server.url("/echo")).send().await.unwrap();

    let agents: Vec<_> = server
        .hits("/echo")
        .iter()
        .map(|h| h.headers["user-agent"].to_str().unwrap().to_owned())
        .collect();
    assert_eq!(agents, ["agent-one", "agent-two"]);
}

#[tokio::test(start_paused = true)]
async fn a_connect_timeout_reload_applies_to_the_next_connect() {
    let hole = support::BlackHole::start();
    let app =
        support::app_with("httpclient:\n  connect_timeout: 200ms\n  retry:\n    max_retries: 0\n")
            .await
            .unwrap();
    let client = app.services().get::<HttpClient>().unwrap();

    let started = Instant::now();
    let error = client.get(hole.url()).send().await.unwrap_err();
    let first = started.elapsed();
    reload(&app, "httpclient.connect_timeout", json!("3s")).await;
    let started = Instant::now();
    let error_after = client.get(hole.url()).send().await.unwrap_err();
    let second = started.elapsed();

    assert!(
        error.is_connect() && error_after.is_connect(),
        "{error} / {error_after}"
    );
    assert!(
        first >= Duration::from_millis(200) && first < Duration::from_millis(300),
        "{first:?}"
    );
    assert!(
        second >= Duration::from_secs(3) && second < Duration::from_millis(3100),
        "{second:?}"
    );
}

async fn peer_of(client: &HttpClient, server: &TestServer) -> String {
    let response = client.get(server.url("/peer")).send().await.unwrap();
    response.text().await.unwrap()
}

#[tokio::test(start_paused = true)]
async fn a_pool_max_idle_per_host_reload_to_zero_stops_reusing_connections() {
    let server = TestServer::start().await;
    let app = support::app_with("httpclient:\n  pool_max_idle_per_host: 4\n")
        .await
        .unwrap();
    let client = app.services().get::<HttpClient>().unwrap();

    let (a, b) = (
        peer_of(&client, &server).await,
        peer_of(&client, &server).await,
    );
    assert_eq!(a, b, "a pooled connection is reused");

    reload(&app, "httpclient.pool_max_idle_per_host", json!(0)).await;
    let (c, d) = (
        peer_of(&client, &server).await,
        peer_of(&client, &server).await,
    );
    assert_ne!(c, d, "no connection is kept idle");
    assert_ne!(b, c, "the new client has its own pool");
}

#[tokio::test(start_paused = true)]
async fn a_pool_idle_timeout_reload_applies_to_connections_of_the_new_client() {
    let server = TestServer::start().await;
    let app = support::app_with("httpclient:\n  pool_idle_timeout: 90s\n")
        .await
        .unwrap();
    let client = app.services().get::<HttpClient>().unwrap();

    let a = peer_of(&client, &server).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let b = peer_of(&client, &server).await;
    assert_eq!(a, b, "idle for 2 s under a 90 s timeout: reused");

    reload(&app, "httpclient.pool_idle_timeout", json!("1s")).await;
    let c = peer_of(&client, &server).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let d = peer_of(&client, &server).await;
    assert_ne!(c, d, "idle for 2 s under a 1 s timeout: closed");
}

#[tokio::test(start_paused = true)]
async fn a_retry_delay_reload_applies_to_requests_sent_afterwards() {
    let server = TestServer::start().await;
    let app = support::app_with(
        "httpclient:\n  retry:\n    max_retries: 1\n    base_delay: 100ms\n    jitter: 0\n",
    )
    .await
    .unwrap();
    let client = app.services().get::<HttpClient>().unwrap();

    server.fail_next("d1", 1);
    client.get(server.url("/flaky/d1")).send().await.unwrap();
    reload(&app, "httpclient.retry.base_delay", json!("700ms")).await;
    server.fail_next("d2", 1);
    client.get(server.url("/flaky/d2")).send().await.unwrap();

    let ms = |key: &str| server.gaps(&format!("/flaky/{key}"))[0].as_millis();
    assert!((100..150).contains(&ms("d1")), "{}", ms("d1"));
    assert!((700..750).contains(&ms("d2")), "{}", ms("d2"));
}

#[tokio::test(start_paused = true)]
async fn a_max_elapsed_reload_applies_to_requests_sent_afterwards() {
    let server = TestServer::start().await;
    let app = support::app_with(
        "httpclient:\n  retry:\n    max_retries: 5\n    base_delay: 1s\n    max_delay: 1s\n    jitter: 0\n",
    )
    .await
    .unwrap();
    let client = app.services().get::<HttpClient>().unwrap();

    server.fail_next("e1", 10);
    client.get(server.url("/flaky/e1")).send().await.unwrap();
    reload(&app, "httpclient.retry.max_elapsed", json!("1500ms")).await;
    server.fail_next("e2", 10);
    client.get(server.url("/flaky/e2")).send().await.unwrap();

    assert_eq!(server.hits("/flaky/e1").len(), 6);
    assert_eq!(server.hits("/flaky/e2").len(), 2);
}

#[tokio::test(start_paused = true)]
async fn decompression_decodes_gzip_brotli_and_zstd_until_a_reload_turns_it_off() {
    let server = TestServer::start().await;
    let app = support::app_with("httpclient: {}\n").await.unwrap();
    let client = app.services().get::<HttpClient>().unwrap();
    let plain = "0123456789abcdef".repeat(256);

    for encoding in ["gzip", "br", "zstd"] {
        let response = client
            .get(server.url("/compressed"))
            .header("accept-encoding", encoding)
            .send()
            .await
            .unwrap();
        assert!(
            response.headers().get("content-encoding").is_none(),
            "{encoding}"
        );
        assert_eq!(response.text().await.unwrap(), plain, "{encoding}");
    }
    // Unasked, the client offers all three.
    client.get(server.url("/compressed")).send().await.unwrap();
    let offered = server.hits("/compressed").last().unwrap().headers["accept-encoding"]
        .to_str()
        .unwrap()
        .to_owned();
    for encoding in ["gzip", "br", "zstd"] {
        assert!(offered.contains(encoding), "{offered}");
    }

    reload(&app, "httpclient.decompression", json!(false)).await;
    let response = client
        .get(server.url("/compressed"))
        .header("accept-encoding", "gzip")
        .send()
        .await
        .unwrap();
    assert_eq!(response.headers()["content-encoding"], "gzip");
    let raw = response.bytes().await.unwrap();
    assert!(raw.len() < plain.len(), "{} bytes", raw.len());
    client.get(server.url("/compressed")).send().await.unwrap();
    let last = server.hits("/compressed").last().unwrap().headers.clone();
    assert!(last.get("accept-encoding").is_none(), "{last:?}");
}

#[tokio::test(start_paused = true)]
async fn a_redirect_limit_reload_applies_to_the_next_request() {
    let server = TestServer::start().await;
    let app = support::app_with("httpclient: {}\n").await.unwrap();
    let client = app.services().get::<HttpClient>().unwrap();

    let followed = client.get(server.url("/redirect/3")).send().await.unwrap();
    assert_eq!(followed.status(), 200);
    assert_eq!(followed.text().await.unwrap(), "landed");

    reload(&app, "httpclient.redirects.max", json!(2)).await;
    let error = client
        .get(server.url("/redirect/3"))
        .send()
        .await
        .unwrap_err();
    assert!(error.to_string().contains("too many redirects"), "{error}");
    let two = client.get(server.url("/redirect/2")).send().await.unwrap();
    assert_eq!(two.status(), 200);

    reload(&app, "httpclient.redirects.max", json!(0)).await;
    let first = client.get(server.url("/redirect/1")).send().await.unwrap();
    assert_eq!(first.status(), 302);
    assert_eq!(first.headers()["location"], "/redirect/0");
}

#[tokio::test(start_paused = true)]
async fn a_proxy_reload_routes_the_next_request_through_it_except_for_no_proxy_hosts() {
    let server = TestServer::start().await;
    let app = support::app_with("httpclient:\n  retry:\n    max_retries: 0\n")
        .await
        .unwrap();
    let client = app.services().get::<HttpClient>().unwrap();

    // The test server plays the proxy: it receives `GET http://upstream.invalid/echo` and
    // routes it by path. Without the proxy the name would not even resolve.
    reload(&app, "httpclient.proxy.url", json!(server.url(""))).await;
    let response = client
        .get("http://upstream.invalid/echo")
        .body("via proxy")
        .send()
        .await
        .unwrap();
    assert_eq!(response.text().await.unwrap(), "via proxy");
    assert_eq!(server.hits("/echo")[0].headers["host"], "upstream.invalid");

    // A proxy that is down fails every request, except to the hosts in no_proxy.
    // Its credentials never appear in the error, however deep the chain is read.
    let refused = modular_testkit::RefusedPort::new();
    let dead = format!("http://proxyuser:proxy-s3cret@{}", refused.addr());
    reload(&app, "httpclient.proxy.url", json!(dead)).await;
    let error = client.get(server.url("/echo")).send().await.unwrap_err();
    assert!(error.is_connect(), "{error}");
    let mut chain = format!("{error} {error:?}");
    let mut source = std::error::Error::source(&error);
    while let Some(cause) = source {
        chain.push_str(&format!(" {cause} {cause:?}"));
        source = cause.source();
    }
    assert!(!chain.contains("proxy-s3cret"), "{chain}");
    reload(&app, "httpclient.proxy.no_proxy", json!(["127.0.0.1"])).await;
    let direct = client.get(server.url("/echo")).send().await.unwrap();
    assert_eq!(direct.status(), 200);
}
