//! `GET /metrics` with the core series. Alone in its binary: the Prometheus recorder is
//! process-wide, and another test's application with the same `checker`/`db` component would
//! overwrite the status series this test reads.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use modular_core::health::HealthStatus;
use support::{TOKEN, admin_yaml, json, start};

#[tokio::test]
async fn metrics_are_served_in_the_prometheus_format_with_the_core_series() -> anyhow::Result<()> {
    let test = start(&format!("{}metrics:\n  enabled: true\n", admin_yaml())).await?;
    // A reload and a health answer, so their series exist.
    let (status, _) = json(test.post("/admin/reload").bearer_auth(TOKEN)).await?;
    assert_eq!(status, 200);
    test.set_health(HealthStatus::Unhealthy);
    let _ = test.get("/health").send().await?;

    let response = test.get("/metrics").send().await?;
    assert_eq!(response.status(), 200);
    assert_eq!(
        response.headers()["content-type"],
        "text/plain; version=0.0.4; charset=utf-8"
    );
    let body = response.text().await?;
    for series in [
        "modular_config_reloads_total{status=\"noop\",trigger=\"admin\"}",
        "modular_config_reload_duration_seconds_bucket",
        "modular_config_version",
        "modular_health_check_duration_seconds_bucket{module=\"checker\"",
        "modular_health_status{module=\"checker\",component=\"db\",status=\"unhealthy\"} 1",
        "modular_health_probe_status{probe=\"readiness\"}",
    ] {
        assert!(body.contains(series), "{series} missing from:\n{body}");
    }
    assert!(
        !body.contains(TOKEN),
        "the admin token leaked into /metrics"
    );
    Ok(())
}
