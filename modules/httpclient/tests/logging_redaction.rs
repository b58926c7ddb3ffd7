//! Verbose logging, checked on captured `tracing` output: headers are redacted, bodies cut.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use modular_core::ReloadStatus;
use modular_core::events::{EventFilter, event_data};
use modular_httpclient::{HttpClient, HttpClientConfig, VerboseConfig};
use serde_json::json;
use support::{TestServer, capture_logs};

fn verbose_client(redact: &[&str], max_body_bytes: usize) -> HttpClient {
    let mut config = HttpClientConfig {
        verbose: VerboseConfig {
            enabled: true,
            redact_headers: redact.iter().map(|s| (*s).to_owned()).collect(),
            max_body_bytes,
        },
        ..HttpClientConfig::default()
    };
    config
        .default_headers
        .insert("x-api-key".to_owned(), "k-secret-123".to_owned());
    HttpClient::new(config).unwrap()
}

#[tokio::test]
async fn verbose_logs_redact_sensitive_and_configured_headers() {
    let server = TestServer::start().await;
    let client = verbose_client(&["X-Api-Key"], 256);
    let (logs, guard) = capture_logs();

    let response = client
        .get(server.url("/echo"))
        .bearer_auth("token-secret-456")
        .header("cookie", "session=cookie-secret")
        .header("x-visible", "shown")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    response.text().await.unwrap();
    drop(guard);

    // The server did receive every secret...
    let sent = &server.hits("/echo")[0].headers;
    assert_eq!(sent["authorization"], "Bearer token-secret-456");
    assert_eq!(sent["x-api-key"], "k-secret-123");
    // ...and the log shows none of them.
    let text = logs.text();
    for line in ["http request", "http response", "http response body"] {
        assert!(text.contains(line), "missing {line:?} in:\n{text}");
    }
    for shown in [
        "authorization: [REDACTED]",
        "cookie: [REDACTED]",
        "x-api-key: [REDACTED]",
        "set-cookie: [REDACTED]",
        "x-visible: shown",
        "x-trace: visible",
        "user-agent: modular-httpclient/",
    ] {
        assert!(text.contains(shown), "missing {shown:?} in:\n{text}");
    }
    for secret in [
        "token-secret-456",
        "cookie-secret",
        "k-secret-123",
        "server-secret",
    ] {
        assert!(!text.contains(secret), "{secret:?} leaked into:\n{text}");
    }
}

#[tokio::test]
async fn verbose_logs_cut_bodies_after_max_body_bytes_without_changing_them() {
    let server = TestServer::start().await;
    let client = verbose_client(&[], 32);
    let (logs, guard) = capture_logs();

    let payload = "x".repeat(100);
    let echoed = client
        .post(server.url("/echo"))
        .body(payload.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(echoed.text().await.unwrap(), payload);
    let big = client.get(server.url("/big")).send().await.unwrap();
    assert_eq!(big.content_length(), Some(4096));
    assert_eq!(big.url().as_str(), server.url("/big"));
    assert_eq!(big.bytes().await.unwrap().len(), 4096);
    drop(guard);

    let text = logs.text();
    let request_line = text
        .lines()
        .find(|l| l.contains("http request") && l.contains("POST"))
        .unwrap();
    assert!(
        request_line.contains(&format!("body={}... (68 more bytes)", "x".repeat(32))),
        "{request_line}"
    );
    let big_line = text
        .lines()
        .find(|l| l.contains("http response body") && l.contains("/big"))
        .unwrap();
    assert!(big_line.contains("bytes=4096"), "{big_line}");
    assert!(big_line.contains("read=complete"), "{big_line}");
    assert!(
        big_line.contains("body=0123456789abcdef0123456789abcdef... (4064 more bytes)"),
        "{big_line}"
    );
}

#[tokio::test]
async fn nothing_is_logged_when_verbose_is_off() {
    let server = TestServer::start().await;
    let client = HttpClient::new(HttpClientConfig::default()).unwrap();
    let (logs, guard) = capture_logs();

    client
        .get(server.url("/echo"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    drop(guard);

    assert!(
        !logs.text().contains("modular_httpclient::verbose"),
        "{}",
        logs.text()
    );
}

#[tokio::test]
async fn verbose_logging_can_be_turned_on_by_a_reload() {
    let server = TestServer::start().await;
    let mut app = support::app_with("httpclient:\n  verbose:\n    redact_headers: [x-session]\n")
        .await
        .unwrap();
    app.start().await.unwrap();
    let client = app.services().get::<HttpClient>().unwrap();
    let (logs, guard) = capture_logs();

    client.get(server.url("/echo")).send().await.unwrap();
    let quiet = logs.text();
    let outcome = app
        .set_override("httpclient.verbose.enabled", json!(true))
        .await
        .unwrap();
    assert_eq!(outcome.status, ReloadStatus::Applied, "{outcome:?}");
    client
        .get(server.url("/echo"))
        .header("x-session", "s-secret")
        .send()
        .await
        .unwrap();
    drop(guard);

    assert!(!quiet.contains("http request"), "{quiet}");
    let text = logs.text();
    assert!(text.contains("http request"), "{text}");
    assert!(text.contains("x-session: [REDACTED]"), "{text}");
    assert!(!text.contains("s-secret"), "{text}");
    app.stop().await.unwrap();
}

#[tokio::test]
async fn url_credentials_stay_out_of_logs_and_retry_events_keep_the_path_only() {
    let server = TestServer::start().await;
    server.fail_next("creds", 1);
    let app = support::app_with(
        "httpclient:\n  retry:\n    max_retries: 2\n    base_delay: 1ms\n    jitter: 0\n  verbose:\n    enabled: true\n",
    )
    .await
    .unwrap();
    let mut events = app
        .events()
        .subscribe(EventFilter::exact("com.modular.httpclient.request.retried"));
    let client = app.services().get::<HttpClient>().unwrap();
    let url = format!(
        "http://url-user:pw-hunter2@{}/flaky/creds?token=tok-s3cr3t",
        server.addr
    );
    let (logs, guard) = capture_logs();

    let response = client.get(url).send().await.unwrap();
    assert_eq!(response.status(), 200);
    response.text().await.unwrap();
    drop(guard);

    let seen = events.drain();
    assert_eq!(seen.len(), 1);
    let data = event_data(&seen[0]).unwrap();
    // The event has scheme, host and path only: no userinfo, no query.
    assert_eq!(data["url"], server.url("/flaky/creds"));
    let event = data.to_string();
    for secret in ["url-user", "pw-hunter2", "tok-s3cr3t"] {
        assert!(!event.contains(secret), "{secret:?} leaked into {event}");
    }
    // Logs (verbose and the retry line) never show the userinfo.
    let text = logs.text();
    assert!(text.contains("http request"), "{text}");
    assert!(text.contains("retrying http request"), "{text}");
    for secret in ["url-user", "pw-hunter2"] {
        assert!(!text.contains(secret), "{secret:?} leaked into:\n{text}");
    }
}

/// Query strings often carry tokens: their values never reach a log line, an error or an
/// event in clear; the keys stay, so the line still says what was sent.
#[tokio::test]
async fn query_values_never_reach_logs_errors_or_events() {
    let server = TestServer::start().await;
    let client = verbose_client(&[], 256);
    let (logs, guard) = capture_logs();
    let response = client
        .get(server.url("/echo"))
        .query(&[("access_token", "q-secret-789"), ("page", "2")])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    response.text().await.unwrap();

    // A request that fails: a closed port, with the token in its query.
    let closed = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = closed.local_addr().unwrap().port();
    drop(closed);
    let error = client
        .get(format!(
            "http://127.0.0.1:{port}/x?access_token=q-secret-789"
        ))
        .send()
        .await
        .expect_err("the request fails");
    drop(guard);

    assert_eq!(server.hits("/echo").len(), 1);
    // Neither the log nor the error shows the token.
    let text = logs.text();
    assert!(
        text.contains("access_token=[REDACTED]&page=[REDACTED]"),
        "the keys stay visible:\n{text}"
    );
    let said = format!("{error} {error:?}");
    assert!(said.contains("access_token=[REDACTED]"), "{said}");
    for (what, shown) in [("log", text.as_str()), ("error", said.as_str())] {
        assert!(
            !shown.contains("q-secret-789"),
            "the query value leaked into the {what}:\n{shown}"
        );
    }
}
