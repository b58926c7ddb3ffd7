//! The server's series, read from the process's Prometheus recorder: open connections,
//! requests in flight, and TLS reloads by outcome. One test in this binary, since the
//! recorder and its gauges are process-wide.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::time::Duration;

use modular_core::ReloadStatus;
use modular_core::metrics::MetricsExporter;
use support::{build, tls_connect, tls_yaml, write_certificate};

/// The value of the series line starting with `series` (name and labels).
fn value(exporter: &MetricsExporter, series: &str) -> f64 {
    let text = exporter.render();
    text.lines()
        .find(|l| l.split(' ').next() == Some(series))
        .and_then(|l| l.rsplit(' ').next()?.parse().ok())
        .unwrap_or_else(|| panic!("no {series} in\n{text}"))
}

/// Waits (a few seconds at most) for `series` to read `wanted`: gauges move when the server's
/// tasks get to it, not when the client's call returns.
async fn eventually(exporter: &MetricsExporter, series: &str, wanted: f64) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    loop {
        let now = value(exporter, series);
        if now == wanted {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{series} is {now}, expected {wanted}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test]
async fn connections_requests_in_flight_and_tls_reloads_are_recorded() -> anyhow::Result<()> {
    let exporter = MetricsExporter::install()?;
    let dir = tempfile::tempdir()?;
    let (cert_a, key_a) = write_certificate(dir.path(), "a", &[0x0a], (2020, 1, 1), (2099, 1, 1));
    let (cert_b, key_b) = write_certificate(dir.path(), "b", &[0x0b], (2020, 1, 1), (2099, 1, 1));
    let tls = |cert: &std::path::Path, key: &std::path::Path| tls_yaml(cert, key, "");
    let test = build(&tls(&cert_a, &key_a)).await?.start().await?;
    eventually(&exporter, "modular_httpserver_connections", 0.0).await;
    eventually(&exporter, "modular_httpserver_requests_in_flight", 0.0).await;

    // Two open connections, one of them with a request held in its handler.
    let mut idle = tls_connect(test.port).await?;
    assert_eq!(idle.get("/hello").await?.0, 200);
    let mut busy = tls_connect(test.port).await?;
    let held = tokio::spawn(async move { busy.get("/wait").await });
    test.gate.wait_entered().await;
    eventually(&exporter, "modular_httpserver_connections", 2.0).await;
    eventually(&exporter, "modular_httpserver_requests_in_flight", 1.0).await;

    test.gate.open();
    assert_eq!(held.await??, (200, "released".to_owned()));
    eventually(&exporter, "modular_httpserver_requests_in_flight", 0.0).await;
    drop(idle);
    eventually(&exporter, "modular_httpserver_connections", 0.0).await;

    // A rotation by config, then one whose certificate cannot be loaded.
    let success = r#"modular_httpserver_tls_reloads_total{outcome="success"}"#;
    let failure = r#"modular_httpserver_tls_reloads_total{outcome="failure"}"#;
    test.write_config(&tls(&cert_b, &key_b))?;
    assert_eq!(test.app.reload().await?.status, ReloadStatus::Applied);
    assert_eq!(value(&exporter, success), 1.0);
    assert_eq!(value(&exporter, failure), 0.0);
    test.write_config(&tls(&dir.path().join("missing.crt"), &key_b))?;
    assert_eq!(test.app.reload().await?.status, ReloadStatus::Failed);
    assert_eq!(value(&exporter, success), 1.0);
    assert_eq!(value(&exporter, failure), 1.0);

    // No request paths or addresses in the series.
    let text = exporter.render();
    let ours: Vec<&str> = text
        .lines()
        .filter(|l| l.starts_with("modular_httpserver_"))
        .collect();
    assert!(
        ours.iter()
            .all(|l| !l.contains("/wait") && !l.contains("127.0.0.1")),
        "{ours:?}"
    );
    Ok(())
}
