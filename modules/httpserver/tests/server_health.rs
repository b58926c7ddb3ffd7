//! The listener's health: a real self-connection while serving, the connection limit (and
//! raising it at runtime), and the stopped server.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::time::Duration;

use modular_core::ReloadStatus;
use modular_core::health::HealthStatus;
use support::{build, client, server_yaml};

#[tokio::test]
async fn a_serving_listener_is_healthy_and_its_self_connection_is_accepted() -> anyhow::Result<()> {
    let test = build(&server_yaml()).await?.start().await?;
    let aggregator = test.app.health().expect("aggregator").clone();
    let first = aggregator.force_refresh().await;
    let report = first
        .report("httpserver", "listener")
        .expect("listener report");
    assert_eq!(report.status, HealthStatus::Healthy, "{report:?}");
    assert_eq!(
        report.message,
        format!("accepting on 127.0.0.1:{}", test.port)
    );
    let accepted = report.details["accepted_total"].as_u64().unwrap_or(0);
    // Each check makes a real connection the accept loop must take.
    let second = aggregator.force_refresh().await;
    let report = second
        .report("httpserver", "listener")
        .expect("listener report");
    assert!(
        report.details["accepted_total"].as_u64().unwrap_or(0) > accepted,
        "{report:?}"
    );
    assert_eq!(report.details["phase"], "serving");
    Ok(())
}

#[tokio::test]
async fn the_listener_degrades_at_the_connection_limit_and_recovers_when_a_client_leaves()
-> anyhow::Result<()> {
    let test = build(&format!("{}  max_connections: 1\n", server_yaml()))
        .await?
        .start()
        .await?;
    let aggregator = test.app.health().expect("aggregator").clone();
    let status = || async {
        let health = aggregator.force_refresh().await;
        health
            .report("httpserver", "listener")
            .cloned()
            .expect("listener report")
    };

    let client = tokio::net::TcpStream::connect(("127.0.0.1", test.port)).await?;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    let report = loop {
        let report = status().await;
        if report.status != HealthStatus::Healthy || tokio::time::Instant::now() > deadline {
            break report;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(report.status, HealthStatus::Degraded, "{report:?}");
    assert!(
        report.message.contains("at the connection limit (1)"),
        "{report:?}"
    );
    assert!(
        !aggregator.force_refresh().await.readiness.is_failing(),
        "degraded must not fail readiness"
    );

    drop(client);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    loop {
        let report = status().await;
        if report.status == HealthStatus::Healthy {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "never recovered: {report:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Ok(())
}

#[tokio::test]
async fn raising_the_connection_limit_takes_effect_while_the_accept_loop_waits_at_the_old_one()
-> anyhow::Result<()> {
    let test = build(&format!("{}  max_connections: 1\n", server_yaml()))
        .await?
        .start()
        .await?;
    let aggregator = test.app.health().expect("aggregator").clone();
    let status = || async {
        let health = aggregator.force_refresh().await;
        health
            .report("httpserver", "listener")
            .cloned()
            .expect("listener report")
    };

    // One keep-alive connection takes the only slot; the accept loop now waits for room.
    let held = client();
    assert_eq!(held.get(test.url("/hello")).send().await?.status(), 200);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    let report = loop {
        let report = status().await;
        if report.status != HealthStatus::Healthy || tokio::time::Instant::now() > deadline {
            break report;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(report.status, HealthStatus::Degraded, "{report:?}");

    // Raised at runtime, with the held connection still open.
    test.write_config(&format!("{}  max_connections: 2\n", server_yaml()))?;
    let outcome = test.app.reload().await?;
    assert_eq!(outcome.status, ReloadStatus::Applied, "{outcome:?}");

    // A second client is served at once, not left in the backlog until the first one leaves.
    let second = reqwest::Client::builder()
        .no_proxy()
        .pool_max_idle_per_host(0)
        .build()?;
    let answer = tokio::time::timeout(
        Duration::from_secs(5),
        second.get(test.url("/hello")).send(),
    )
    .await
    .map_err(|_| anyhow::anyhow!("the second client was not served after raising the limit"))??;
    assert_eq!(answer.status(), 200);
    assert_eq!(answer.text().await?, "hello");

    // The listener is healthy (its self-connection is accepted) once the second client's
    // connection is gone; degraded in between is fine, unhealthy is not.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    let report = loop {
        let report = status().await;
        if report.status != HealthStatus::Degraded || tokio::time::Instant::now() > deadline {
            break report;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(report.status, HealthStatus::Healthy, "{report:?}");
    assert_eq!(report.details["max_connections"], 2);
    assert_eq!(report.details["connections"], 1, "{report:?}");

    // The held connection was never closed and still serves.
    assert_eq!(held.get(test.url("/hello")).send().await?.status(), 200);
    Ok(())
}

#[tokio::test]
async fn a_stopped_server_is_unhealthy() -> anyhow::Result<()> {
    let mut test = build(&server_yaml()).await?.start().await?;
    let aggregator = test.app.health().expect("aggregator").clone();
    test.app.stop().await?;
    let health = aggregator.force_refresh().await;
    let report = health
        .report("httpserver", "listener")
        .expect("listener report");
    assert_eq!(report.status, HealthStatus::Unhealthy);
    assert_eq!(report.message, "not accepting: the server is shutting down");
    assert!(health.readiness.is_failing());
    Ok(())
}

/// Built but not started, the listener is unhealthy and fails readiness: until a reload of
/// `httpserver.health.optional` takes it out of readiness, and one of `health.timeout`
/// replaces the check's deadline.
#[tokio::test]
async fn a_reload_of_health_optional_and_timeout_changes_the_live_registration()
-> anyhow::Result<()> {
    let test = build(&server_yaml()).await?;
    let aggregator = test.app.health().expect("aggregator").clone();
    let before = aggregator
        .provider_options("httpserver")
        .expect("registered");
    assert_eq!(before.timeout, modular_httpserver::DEFAULT_HEALTH_TIMEOUT);
    assert!(!before.optional);
    let health = aggregator.force_refresh().await;
    let report = health
        .report("httpserver", "listener")
        .expect("listener report");
    assert_eq!(report.status, HealthStatus::Unhealthy, "{report:?}");
    assert!(health.readiness.is_failing());

    test.write_config(&format!(
        "{}  health:\n    optional: true\n    timeout: 2s\n",
        server_yaml()
    ))?;
    let outcome = test.app.reload().await?;
    assert_eq!(outcome.status, ReloadStatus::Applied, "{outcome:?}");
    let health = aggregator.force_refresh().await;
    let report = health
        .report("httpserver", "listener")
        .expect("listener report");
    assert_eq!(report.status, HealthStatus::Unhealthy, "{report:?}");
    assert!(report.optional, "{report:?}");
    assert!(!health.readiness.is_failing(), "{health:?}");
    let after = aggregator
        .provider_options("httpserver")
        .expect("registered");
    assert_eq!(after.timeout, Duration::from_secs(2));
    assert!(after.optional);
    Ok(())
}
