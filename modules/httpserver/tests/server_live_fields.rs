//! Every dynamic field without a test elsewhere, changed by a reload and observed on the live
//! server: `header_read_timeout` and `idle_timeout` (on the next connection),
//! `drain_delay` and `shutdown_timeout` (at the stop that follows), `tls.watch_interval` (the
//! running file watcher) and `tls.expiry_warning` (the next certificate check); and the idle
//! timeout around a request that outlasts it. Paused time where a duration is measured.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::time::Duration;

use modular_core::ReloadStatus;
use modular_core::events::{EventFilter, event_data};
use modular_core::health::HealthStatus;
use support::{TestApp, Ticking, build, build_with, client, server_yaml, tls_connect, tls_yaml};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;
use tokio::time::Instant;

async fn reload(test: &TestApp, yaml: &str) -> anyhow::Result<()> {
    test.write_config(yaml)?;
    let outcome = test.app.reload().await?;
    assert_eq!(outcome.status, ReloadStatus::Applied, "{outcome:?}");
    Ok(())
}

/// Reads until the server closes the connection (or `within` passes): how long it took.
async fn until_closed(stream: &mut TcpStream, within: Duration) -> Duration {
    let started = Instant::now();
    let mut buf = [0u8; 1024];
    let closed = tokio::time::timeout(within, async {
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
    })
    .await;
    assert!(closed.is_ok(), "still open after {within:?}");
    started.elapsed()
}

async fn connect(port: u16) -> anyhow::Result<TcpStream> {
    let stream = TcpStream::connect(("127.0.0.1", port)).await?;
    stream.set_nodelay(true)?;
    Ok(stream)
}

/// A client that sends the first line of a request and stalls, cut by the header-read
/// timeout: the one in force when its connection was accepted.
async fn stalled_head_cut_after(port: u16) -> anyhow::Result<Duration> {
    let mut stream = connect(port).await?;
    stream.write_all(b"GET /hello HTTP/1.1\r\n").await?;
    Ok(until_closed(&mut stream, Duration::from_secs(120)).await)
}

#[tokio::test(start_paused = true)]
async fn a_reloaded_header_read_timeout_cuts_the_next_slow_client_at_the_new_value()
-> anyhow::Result<()> {
    let _ticking = Ticking::every(Duration::from_millis(10));
    let yaml = |timeout: &str| format!("{}  header_read_timeout: {timeout}\n", server_yaml());
    let test = build(&yaml("10s")).await?.start().await?;
    let before = stalled_head_cut_after(test.port).await?;
    assert!(
        before >= Duration::from_secs(10) && before < Duration::from_secs(11),
        "{before:?}"
    );

    reload(&test, &yaml("1s")).await?;
    let after = stalled_head_cut_after(test.port).await?;
    assert!(
        after >= Duration::from_secs(1) && after < Duration::from_secs(2),
        "{after:?}"
    );
    Ok(())
}

/// One request on a keep-alive connection, then silence until the server closes it.
async fn idle_connection_closed_after(port: u16) -> anyhow::Result<Duration> {
    let mut stream = connect(port).await?;
    stream
        .write_all(b"GET /hello HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .await?;
    let mut answer = Vec::new();
    let mut buf = [0u8; 1024];
    while !answer.ends_with(b"hello") {
        let n = stream.read(&mut buf).await?;
        anyhow::ensure!(n > 0, "closed before the answer: {answer:?}");
        answer.extend_from_slice(&buf[..n]);
    }
    Ok(until_closed(&mut stream, Duration::from_secs(300)).await)
}

#[tokio::test(start_paused = true)]
async fn a_reloaded_idle_timeout_closes_the_next_idle_connection_at_the_new_value()
-> anyhow::Result<()> {
    let _ticking = Ticking::every(Duration::from_millis(10));
    let yaml = |timeout: &str| format!("{}  idle_timeout: {timeout}\n", server_yaml());
    let test = build(&yaml("60s")).await?.start().await?;
    let before = idle_connection_closed_after(test.port).await?;
    assert!(
        before >= Duration::from_secs(60) && before < Duration::from_secs(61),
        "{before:?}"
    );

    reload(&test, &yaml("5s")).await?;
    let after = idle_connection_closed_after(test.port).await?;
    assert!(
        after >= Duration::from_secs(5) && after < Duration::from_secs(6),
        "{after:?}"
    );
    Ok(())
}

/// The watchdog learns of an HTTP/1 request starting and finishing from its own polls of the
/// connection (no wake-up): a request held past `idle_timeout` keeps its connection, and
/// the connection is closed `idle_timeout` after the answer, not earlier.
#[tokio::test(start_paused = true)]
async fn a_request_outlasting_the_idle_timeout_keeps_its_connection_until_idle_after_it()
-> anyhow::Result<()> {
    let _ticking = Ticking::every(Duration::from_millis(10));
    let test = build(&format!("{}  idle_timeout: 5s\n", server_yaml()))
        .await?
        .start()
        .await?;
    let mut stream = connect(test.port).await?;
    stream
        .write_all(b"GET /wait HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .await?;
    test.gate.wait_entered().await;
    // Three idle timeouts with the request in flight.
    tokio::time::sleep(Duration::from_secs(15)).await;
    test.gate.open();
    let mut answer = Vec::new();
    let mut buf = [0u8; 1024];
    while !answer.ends_with(b"released") {
        let n = stream.read(&mut buf).await?;
        anyhow::ensure!(n > 0, "closed before the answer: {answer:?}");
        answer.extend_from_slice(&buf[..n]);
    }
    let idle = until_closed(&mut stream, Duration::from_secs(60)).await;
    assert!(
        idle >= Duration::from_secs(5) && idle < Duration::from_secs(6),
        "{idle:?}"
    );
    Ok(())
}

async fn refused(port: u16) -> bool {
    matches!(
        TcpStream::connect(("127.0.0.1", port)).await,
        Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused
    )
}

#[tokio::test(start_paused = true)]
async fn a_reloaded_drain_delay_is_the_one_the_next_stop_waits() -> anyhow::Result<()> {
    let _ticking = Ticking::every(Duration::from_millis(10));
    // Started with no drain delay (server_yaml), reloaded to 20s.
    let test = build_with(&server_yaml(), |b| {
        b.shutdown_timeout(Duration::from_secs(120))
    })
    .await?
    .start()
    .await?;
    reload(
        &test,
        &server_yaml().replace("drain_delay: 0s", "drain_delay: 20s"),
    )
    .await?;
    let port = test.port;
    let mut app = test.app;
    let began = Instant::now();
    let stopping = tokio::spawn(async move { app.stop().await });
    while !refused(port).await {
        tokio::time::sleep(Duration::from_millis(250)).await;
        assert!(
            began.elapsed() < Duration::from_secs(60),
            "never stopped accepting"
        );
    }
    let drained = began.elapsed();
    assert!(
        drained >= Duration::from_secs(20) && drained < Duration::from_secs(21),
        "stopped accepting after {drained:?}"
    );
    stopping.await??;
    drop(test.dir);
    Ok(())
}

#[tokio::test(start_paused = true)]
async fn a_reloaded_shutdown_timeout_is_the_deadline_of_the_next_stop() -> anyhow::Result<()> {
    let _ticking = Ticking::every(Duration::from_millis(10));
    let yaml = |deadline: &str| {
        server_yaml().replace(
            "shutdown_timeout: 5s",
            &format!("shutdown_timeout: {deadline}\n  request_timeout: 0s"),
        )
    };
    let test = build_with(&yaml("120s"), |b| {
        b.shutdown_timeout(Duration::from_secs(300))
    })
    .await?
    .start()
    .await?;
    reload(&test, &yaml("3s")).await?;
    let mut events = test
        .app
        .events()
        .subscribe(EventFilter::exact("com.modular.httpserver.server.stopped"));
    // A request held in its handler until the deadline cuts it.
    let held = tokio::spawn(client().get(test.url("/wait")).send());
    test.gate.wait_entered().await;

    let mut app = test.app;
    let began = Instant::now();
    app.stop().await?;
    let took = began.elapsed();
    assert!(
        took >= Duration::from_secs(3) && took < Duration::from_secs(4),
        "stopped after {took:?}"
    );
    assert!(held.await?.is_err(), "the held request was not cut");
    let stopped = events.try_recv().expect("server.stopped event");
    assert_eq!(
        event_data(&stopped).map(|d| d["forced_connections"].clone()),
        Some(1.into())
    );
    drop(test.dir);
    Ok(())
}

#[tokio::test(start_paused = true)]
async fn a_reloaded_watch_interval_turns_the_running_file_watcher_on() -> anyhow::Result<()> {
    let _ticking = Ticking::every(Duration::from_millis(10));
    let dir = tempfile::tempdir()?;
    let (cert, key) =
        support::write_certificate(dir.path(), "tls", &[0x01], (2020, 1, 1), (2099, 1, 1));
    let test = build(&tls_yaml(&cert, &key, "    watch_interval: 0s\n"))
        .await?
        .start()
        .await?;

    // Off: new content in the same files is not picked up.
    support::write_certificate(dir.path(), "tls", &[0x02], (2020, 1, 1), (2099, 1, 1));
    tokio::time::sleep(Duration::from_secs(30)).await;
    assert_eq!(tls_connect(test.port).await?.serial, "01");

    // On, every 2s: the running watcher rotates within a round or two.
    reload(&test, &tls_yaml(&cert, &key, "    watch_interval: 2s\n")).await?;
    let began = Instant::now();
    loop {
        tokio::time::sleep(Duration::from_millis(500)).await;
        if tls_connect(test.port).await?.serial == "02" {
            break;
        }
        assert!(
            began.elapsed() < Duration::from_secs(10),
            "the reloaded watcher never rotated"
        );
    }
    Ok(())
}

#[tokio::test]
async fn a_reloaded_expiry_warning_changes_the_next_certificate_check() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let (cert, key) = support::write_certificate(
        dir.path(),
        "tls",
        &[0x01],
        support::days_from_now(-10),
        support::days_from_now(30),
    );
    let test = build(&tls_yaml(&cert, &key, "")).await?.start().await?;
    let aggregator = test.app.health().expect("aggregator").clone();
    let status = || async {
        let health = aggregator.force_refresh().await;
        health
            .report("httpserver", "certificate")
            .cloned()
            .expect("certificate report")
    };
    // 30 days left, warned 14 days ahead by default.
    assert_eq!(status().await.status, HealthStatus::Healthy);

    reload(
        &test,
        &tls_yaml(&cert, &key, "    expiry_warning: 60days\n"),
    )
    .await?;
    let report = status().await;
    assert_eq!(report.status, HealthStatus::Degraded, "{report:?}");
    assert!(report.message.contains("expires in"), "{report:?}");
    Ok(())
}
