//! Graceful shutdown the way Kubernetes needs it, on paused time: readiness fails first, the
//! server keeps serving for the drain delay, then refuses new connections and lets in-flight
//! requests finish up to the deadline.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::time::Duration;

use modular_core::events::{EventFilter, event_data};
use support::{build, build_with, client, server_yaml};

fn shutdown_yaml(drain: &str, deadline: &str) -> String {
    server_yaml()
        .replace("drain_delay: 0s", &format!("drain_delay: {drain}"))
        .replace(
            "shutdown_timeout: 5s",
            &format!("shutdown_timeout: {deadline}"),
        )
        + "  request_timeout: 0s\n"
}

async fn refused(port: u16) -> bool {
    matches!(
        tokio::net::TcpStream::connect(("127.0.0.1", port)).await,
        Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused
    )
}

#[tokio::test(start_paused = true)]
async fn draining_serves_until_the_delay_then_refuses_new_connections_and_finishes_in_flight_requests()
-> anyhow::Result<()> {
    // The application's own deadline must cover the drain delay plus the server's deadline.
    let test = build_with(&shutdown_yaml("60s", "120s"), |b| {
        b.shutdown_timeout(Duration::from_secs(300))
    })
    .await?
    .start()
    .await?;
    let port = test.port;
    let aggregator = test.app.health().expect("aggregator").clone();
    let mut events = test
        .app
        .events()
        .subscribe(EventFilter::exact("com.modular.httpserver.server.stopped"));
    let gate = test.gate.clone();
    assert!(!aggregator.check().await.readiness.is_failing());

    // A slow request is in flight when the stop begins.
    let slow = tokio::spawn(client().get(test.url("/wait")).send());
    gate.wait_entered().await;
    let hello = test.url("/hello");
    let mut app = test.app;
    let stopping = tokio::spawn(async move { app.stop().await });

    // Readiness fails at once, while the server still answers new connections.
    while !aggregator.check().await.readiness.is_failing() {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let during = client().get(&hello).send().await?;
    assert_eq!(during.status(), 200);
    assert_eq!(
        during.headers().get("connection").map(|v| v.as_bytes()),
        Some(&b"close"[..])
    );
    assert!(!stopping.is_finished());

    // After the drain delay the listener is gone, while the slow request still runs.
    let mut waited = Duration::ZERO;
    while !refused(port).await {
        tokio::time::sleep(Duration::from_millis(500)).await;
        waited += Duration::from_millis(500);
        assert!(
            waited < Duration::from_secs(100),
            "the listener never closed"
        );
    }
    assert!(
        waited >= Duration::from_secs(59),
        "closed after {waited:?}, before the drain delay"
    );
    assert!(!slow.is_finished());
    assert!(!stopping.is_finished());

    gate.open();
    let answer = slow.await??;
    assert_eq!(answer.status(), 200);
    assert_eq!(answer.text().await?, "released");
    stopping.await??;
    let stopped = events.try_recv().expect("server.stopped event");
    assert_eq!(
        event_data(&stopped).map(|d| d["forced_connections"].clone()),
        Some(0.into())
    );
    drop(test.dir);
    Ok(())
}

#[tokio::test(start_paused = true)]
async fn requests_still_running_at_the_deadline_are_cut_off() -> anyhow::Result<()> {
    let test = build(&shutdown_yaml("0s", "5s")).await?.start().await?;
    let port = test.port;
    let mut events = test
        .app
        .events()
        .subscribe(EventFilter::exact("com.modular.httpserver.server.stopped"));
    let slow = tokio::spawn(client().get(test.url("/wait")).send());
    test.gate.wait_entered().await;

    let mut app = test.app;
    app.stop().await?;
    assert!(
        slow.await?.is_err(),
        "the held request should have lost its connection"
    );
    let stopped = events.try_recv().expect("server.stopped event");
    assert_eq!(
        event_data(&stopped).map(|d| d["forced_connections"].clone()),
        Some(1.into())
    );
    assert!(refused(port).await);
    Ok(())
}
