//! Retries against a real server: backoff, idempotency, `Retry-After`, connect errors, events.
//! Time is paused, so every delay is measured exactly on the virtual clock.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::time::Duration;

use modular_core::events::{EventFilter, event_data};
use modular_httpclient::{HttpClient, HttpClientConfig, RetryConfig};
use support::TestServer;

fn client(max_retries: u32, base_delay_ms: u64, jitter: f64) -> HttpClient {
    HttpClient::new(HttpClientConfig {
        retry: RetryConfig {
            max_retries,
            base_delay: Duration::from_millis(base_delay_ms),
            max_delay: Duration::from_secs(5),
            jitter,
            ..RetryConfig::default()
        },
        ..HttpClientConfig::default()
    })
    .unwrap()
}

const MS: Duration = Duration::from_millis(1);

#[tokio::test(start_paused = true)]
async fn a_get_that_fails_twice_with_503_is_retried_with_exponential_backoff() {
    let server = TestServer::start().await;
    server.fail_next("a", 2);
    let client = client(3, 100, 0.0);

    let response = client.get(server.url("/flaky/a")).send().await.unwrap();

    assert_eq!(response.status(), 200);
    assert_eq!(response.text().await.unwrap(), "ok");
    assert_eq!(server.hits("/flaky/a").len(), 3);
    let gaps = server.gaps("/flaky/a");
    assert!(gaps[0] >= 100 * MS && gaps[0] < 150 * MS, "{gaps:?}");
    assert!(gaps[1] >= 200 * MS && gaps[1] < 250 * MS, "{gaps:?}");
}

#[tokio::test(start_paused = true)]
async fn jitter_only_shortens_each_delay_by_at_most_its_fraction() {
    let server = TestServer::start().await;
    server.fail_next("j", 3);
    let client = client(3, 200, 0.5);

    let response = client.get(server.url("/flaky/j")).send().await.unwrap();

    assert_eq!(response.status(), 200);
    let gaps = server.gaps("/flaky/j");
    assert_eq!(gaps.len(), 3);
    for (gap, full) in gaps.iter().zip([200u32, 400, 800]) {
        assert!(
            *gap >= full / 2 * MS && *gap <= full * MS + 20 * MS,
            "{gaps:?}"
        );
    }
}

#[tokio::test(start_paused = true)]
async fn the_last_failure_is_returned_once_retries_run_out() {
    let server = TestServer::start().await;
    server.fail_next("out", 10);
    let client = client(2, 10, 0.0);

    let response = client.get(server.url("/flaky/out")).send().await.unwrap();

    assert_eq!(response.status(), 503);
    assert_eq!(server.hits("/flaky/out").len(), 3);
}

#[tokio::test(start_paused = true)]
async fn a_post_is_never_retried() {
    let server = TestServer::start().await;
    server.fail_next("post", 2);
    let client = client(3, 10, 0.0);

    let response = client
        .post(server.url("/flaky/post"))
        .body("order")
        .send()
        .await
        .unwrap();

    assert_eq!(response.status(), 503);
    assert_eq!(server.hits("/flaky/post").len(), 1);
}

#[tokio::test(start_paused = true)]
async fn put_and_delete_are_retried_as_idempotent() {
    let server = TestServer::start().await;
    server.fail_next("put", 1);
    server.fail_next("delete", 1);
    let client = client(1, 10, 0.0);

    let put = client
        .put(server.url("/flaky/put"))
        .body("v1")
        .send()
        .await
        .unwrap();
    let delete = client
        .delete(server.url("/flaky/delete"))
        .send()
        .await
        .unwrap();

    assert_eq!(
        (put.status().as_u16(), delete.status().as_u16()),
        (200, 200)
    );
    assert_eq!(server.hits("/flaky/put").len(), 2);
    assert_eq!(server.hits("/flaky/delete").len(), 2);
}

#[tokio::test(start_paused = true)]
async fn a_500_is_not_retried() {
    let server = TestServer::start().await;
    let client = client(3, 10, 0.0);

    let response = client.get(server.url("/status/500")).send().await.unwrap();

    assert_eq!(response.status(), 500);
    assert_eq!(server.hits("/status/500").len(), 1);
}

#[tokio::test(start_paused = true)]
async fn retry_after_in_seconds_replaces_the_backoff() {
    let server = TestServer::start().await;
    let client = client(2, 10, 0.0);

    let response = client
        .get(server.url("/retry-after/s?after=3"))
        .send()
        .await
        .unwrap();

    assert_eq!(response.status(), 200);
    let gaps = server.gaps("/retry-after/s");
    assert_eq!(gaps.len(), 1);
    assert!(gaps[0] >= 3000 * MS && gaps[0] < 3050 * MS, "{gaps:?}");
}

#[tokio::test(start_paused = true)]
async fn retry_after_as_an_http_date_is_honoured() {
    let server = TestServer::start().await;
    let client = client(2, 10, 0.0);
    // Whole seconds only: the date names a moment between 3 and 4 seconds from now.
    let at = chrono::Utc::now() + chrono::Duration::seconds(4);
    let date = at.format("%a, %d %b %Y %H:%M:%S GMT").to_string();

    let url = format!(
        "{}?date={}",
        server.url("/retry-after/d"),
        date.replace(' ', "%20").replace(',', "%2C")
    );
    let response = client.get(url).send().await.unwrap();

    assert_eq!(response.status(), 200);
    let gaps = server.gaps("/retry-after/d");
    assert_eq!(gaps.len(), 1);
    assert!(gaps[0] > 2500 * MS && gaps[0] <= 4000 * MS, "{gaps:?}");
}

fn retry_after_client(max_delay_s: u64, max_retry_after_s: u64) -> HttpClient {
    HttpClient::new(HttpClientConfig {
        retry: RetryConfig {
            max_retries: 1,
            base_delay: Duration::from_millis(10),
            max_delay: Duration::from_secs(max_delay_s),
            max_retry_after: Duration::from_secs(max_retry_after_s),
            jitter: 0.0,
            ..RetryConfig::default()
        },
        ..HttpClientConfig::default()
    })
    .unwrap()
}

#[tokio::test(start_paused = true)]
async fn a_retry_after_beyond_max_delay_is_honoured_up_to_max_retry_after() {
    let server = TestServer::start().await;
    let client = retry_after_client(2, 60);

    let response = client
        .get(server.url("/retry-after/long?after=30"))
        .send()
        .await
        .unwrap();

    assert_eq!(response.status(), 200);
    let gaps = server.gaps("/retry-after/long");
    assert!(gaps[0] >= 30_000 * MS && gaps[0] < 30_050 * MS, "{gaps:?}");
}

#[tokio::test(start_paused = true)]
async fn a_retry_after_beyond_max_retry_after_returns_the_answer_without_waiting() {
    let server = TestServer::start().await;
    let client = retry_after_client(2, 10);
    let started = tokio::time::Instant::now();

    let response = client
        .get(server.url("/retry-after/cap?after=3600"))
        .send()
        .await
        .unwrap();

    assert_eq!(response.status(), 429);
    assert_eq!(response.headers()["retry-after"], "3600");
    assert_eq!(server.hits("/retry-after/cap").len(), 1);
    assert!(started.elapsed() < 50 * MS, "{:?}", started.elapsed());
}

#[tokio::test(start_paused = true)]
async fn no_retry_starts_past_max_elapsed() {
    let server = TestServer::start().await;
    server.fail_next("deadline", 10);
    let client = HttpClient::new(HttpClientConfig {
        retry: RetryConfig {
            max_retries: 10,
            base_delay: Duration::from_secs(1),
            max_delay: Duration::from_secs(1),
            max_elapsed: Duration::from_millis(2500),
            jitter: 0.0,
            ..RetryConfig::default()
        },
        ..HttpClientConfig::default()
    })
    .unwrap();
    let started = tokio::time::Instant::now();

    let response = client
        .get(server.url("/flaky/deadline"))
        .send()
        .await
        .unwrap();

    // Attempts at 0 s, 1 s and 2 s; a third retry would start at 3 s, past the 2.5 s deadline.
    assert_eq!(response.status(), 503);
    assert_eq!(server.hits("/flaky/deadline").len(), 3);
    assert!(started.elapsed() < 2100 * MS, "{:?}", started.elapsed());
}

#[tokio::test(start_paused = true)]
async fn a_get_that_times_out_is_retried_and_a_post_is_not() {
    let server = TestServer::start().await;
    let client = HttpClient::new(HttpClientConfig {
        request_timeout: Duration::from_millis(500),
        retry: RetryConfig {
            max_retries: 2,
            base_delay: Duration::from_millis(100),
            jitter: 0.0,
            ..RetryConfig::default()
        },
        ..HttpClientConfig::default()
    })
    .unwrap();

    let error = client
        .get(server.url("/slow/2000"))
        .send()
        .await
        .unwrap_err();
    assert!(error.is_timeout(), "{error}");
    assert!(
        error.to_string().contains("failed after 3 attempts"),
        "{error}"
    );
    assert_eq!(server.hits("/slow/2000").len(), 3);

    let error = client
        .post(server.url("/slow/3000"))
        .send()
        .await
        .unwrap_err();
    assert!(error.is_timeout(), "{error}");
    assert_eq!(server.hits("/slow/3000").len(), 1);
}

#[tokio::test(start_paused = true)]
async fn a_get_whose_connection_is_reset_is_retried() {
    let server = support::ResetServer::start(2).await;
    let client = client(2, 10, 0.0);

    let response = client.get(server.url()).send().await.unwrap();

    assert_eq!(response.status(), 200);
    assert_eq!(response.text().await.unwrap(), "ok");
    assert_eq!(
        server.connections.load(std::sync::atomic::Ordering::SeqCst),
        3
    );
}

#[tokio::test]
async fn requests_retries_and_latency_are_recorded_as_metrics_without_urls() {
    let exporter = modular_core::metrics::MetricsExporter::install().unwrap();
    let server = TestServer::start().await;
    server.fail_next("metrics", 1);
    let client = client(2, 1, 0.0);

    let ok = client
        .get(server.url("/flaky/metrics"))
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status(), 200);
    let missing = client
        .delete(server.url("/status/404"))
        .send()
        .await
        .unwrap();
    assert_eq!(missing.status(), 404);
    let refused_port = modular_testkit::RefusedPort::new();
    let refused = format!("{}/", refused_port.http_url());
    client.head(&refused).send().await.unwrap_err();
    // A named client records under its own name.
    let named = HttpClient::new(HttpClientConfig {
        clients: [("billing".to_owned(), Default::default())].into(),
        ..HttpClientConfig::default()
    })
    .unwrap()
    .named("billing")
    .unwrap();
    named.get(server.url("/echo")).send().await.unwrap();

    let text = exporter.render();
    let value = |series: &str| -> f64 {
        text.lines()
            .find(|l| l.starts_with(series))
            .and_then(|l| l.rsplit(' ').next()?.parse().ok())
            .unwrap_or(0.0)
    };
    let series = |method: &str, class: &str| {
        format!(
            "modular_httpclient_requests_total{{client=\"default\",method=\"{method}\",status_class=\"{class}\"}}"
        )
    };
    // Other tests of this binary share the recorder: at least what this one sent.
    assert!(value(&series("GET", "2xx")) >= 1.0, "{text}");
    assert!(value(&series("DELETE", "4xx")) >= 1.0, "{text}");
    assert!(value(&series("HEAD", "error")) >= 1.0, "{text}");
    assert!(
        value(&series("GET", "2xx").replace("default", "billing")) >= 1.0,
        "{text}"
    );
    assert!(
        value("modular_httpclient_retries_total{client=\"default\"}") >= 3.0,
        "{text}"
    );
    assert!(
        value("modular_httpclient_request_duration_seconds_count{client=\"default\"}") >= 3.0,
        "{text}"
    );
    for line in text.lines().filter(|l| l.contains("modular_httpclient")) {
        assert!(
            !line.contains("127.0.0.1") && !line.contains("/flaky"),
            "{line}"
        );
    }
}

#[tokio::test(start_paused = true)]
async fn a_connect_error_is_retried_then_reported_with_the_attempt_count() {
    // A port held bound without listening refuses every connection.
    let refused = modular_testkit::RefusedPort::new();
    let url = format!("{}/", refused.http_url());
    let client = client(2, 100, 0.0);
    let started = tokio::time::Instant::now();

    let error = client.get(&url).send().await.unwrap_err();

    assert!(error.is_connect(), "{error}");
    let text = error.to_string();
    assert!(
        text.starts_with(&format!("GET {url} failed after 3 attempts: ")),
        "{text}"
    );
    // 100 ms then 200 ms of backoff, measured on the paused clock.
    assert!(started.elapsed() >= 300 * MS, "{:?}", started.elapsed());
}

#[tokio::test(start_paused = true)]
async fn each_retry_emits_a_request_retried_event() {
    let server = TestServer::start().await;
    server.fail_next("ev", 2);
    let app = support::app_with(
        "httpclient:\n  retry:\n    max_retries: 3\n    base_delay: 50ms\n    jitter: 0\n",
    )
    .await
    .unwrap();
    let mut events = app
        .events()
        .subscribe(EventFilter::exact("com.modular.httpclient.request.retried"));
    let client = app.services().get::<HttpClient>().unwrap();

    let response = client.get(server.url("/flaky/ev")).send().await.unwrap();

    assert_eq!(response.status(), 200);
    let seen = events.drain();
    assert_eq!(seen.len(), 2);
    let data: Vec<_> = seen
        .iter()
        .map(|e| event_data(e).unwrap().clone())
        .collect();
    assert_eq!(data[0]["method"], "GET");
    assert_eq!(data[0]["url"], server.url("/flaky/ev"));
    assert_eq!(data[0]["attempt"], 1);
    assert_eq!(data[0]["delay_ms"], 50);
    assert_eq!(data[0]["status"], 503);
    assert_eq!(data[0]["reason"], "status 503");
    assert_eq!(data[1]["attempt"], 2);
    assert_eq!(data[1]["delay_ms"], 100);
}
