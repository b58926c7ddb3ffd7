//! Reloading the router: CORS from a config file edit, the request timeout, route toggles,
//! a failing reload that rolls back, invalid configuration, in-flight requests, and the
//! router's health registration.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::time::Duration;

use modular_core::ReloadStatus;
use modular_core::events::{EventFilter, event_data};
use modular_core::health::HealthStatus;
use modular_core::reload::ReloadOptions;
use support::{build, start, start_with, text};

const ORIGIN: &str = "https://app.example.com";

#[tokio::test]
async fn a_cors_origin_added_by_editing_the_config_file_is_honoured_by_the_next_request()
-> anyhow::Result<()> {
    let test = start_with("", |b| {
        b.with_reload_options(ReloadOptions {
            watch_files: true,
            debounce: Duration::from_millis(50),
            health_gate: false,
            ..ReloadOptions::default()
        })
    })
    .await?;
    let mut reloads = test
        .app
        .events()
        .subscribe(EventFilter::exact("com.modular.config.reload.completed"));
    let before = test.get("/greet").header("origin", ORIGIN).send().await?;
    assert!(
        before
            .headers()
            .get("access-control-allow-origin")
            .is_none()
    );

    test.write_config(&format!(
        "router:\n  cors:\n    allowed_origins: [\"{ORIGIN}\"]\n    allowed_methods: [GET, POST]\n"
    ))?;
    tokio::time::timeout(Duration::from_secs(10), reloads.recv())
        .await?
        .expect("a reload after the file edit");

    let after = test.get("/greet").header("origin", ORIGIN).send().await?;
    assert_eq!(after.headers()["access-control-allow-origin"], ORIGIN);
    let preflight = test
        .http
        .request(reqwest::Method::OPTIONS, test.url("/echo"))
        .header("origin", ORIGIN)
        .header("access-control-request-method", "POST")
        .send()
        .await?;
    assert_eq!(preflight.status(), 200);
    assert_eq!(preflight.headers()["access-control-allow-origin"], ORIGIN);
    let other = test
        .get("/greet")
        .header("origin", "https://evil.example")
        .send()
        .await?;
    assert!(other.headers().get("access-control-allow-origin").is_none());
    Ok(())
}

#[tokio::test]
async fn a_request_timeout_change_takes_effect_on_the_next_request() -> anyhow::Result<()> {
    let test = start("").await?;
    assert_eq!(text(test.get("/slow")).await?, (200, "slow".to_owned()));

    let outcome = test
        .app
        .set_override("router.request_timeout", serde_json::json!("100ms"))
        .await?;
    assert_eq!(outcome.status, ReloadStatus::Applied, "{outcome:?}");
    assert_eq!(outcome.reloaded, ["router"]);
    // Same keep-alive connection, next request.
    assert_eq!(text(test.get("/slow")).await?.0, 503);
    assert_eq!(text(test.get("/greet")).await?.0, 200);
    Ok(())
}

#[tokio::test]
async fn a_disabled_route_answers_its_configured_status_until_enabled_again() -> anyhow::Result<()>
{
    let test = start("").await?;
    let mut rebuilt = test
        .app
        .events()
        .subscribe(EventFilter::exact("com.modular.router.routes.rebuilt"));
    test.write_config("router:\n  routes:\n    /greet/{name}:\n      enabled: false\n      disabled_status: 503\n    /greet:\n      enabled: false\n")?;
    assert!(test.app.reload().await?.is_applied());
    let event = rebuilt.try_recv().expect("routes.rebuilt event");
    let data = event_data(&event).expect("event data");
    assert_eq!(data["trigger"], "reload");
    assert_eq!(
        data["disabled"],
        serde_json::json!(["/greet", "/greet/{name}"])
    );
    assert_eq!(
        text(test.get("/greet/ada")).await?,
        (503, "route disabled".to_owned())
    );
    assert_eq!(text(test.get("/greet")).await?.0, 404);
    assert_eq!(text(test.get("/slow")).await?.0, 200);

    test.write_config("router:\n  routes:\n    /greet/{name}:\n      enabled: true\n")?;
    assert!(test.app.reload().await?.is_applied());
    assert_eq!(
        text(test.get("/greet/ada")).await?,
        (200, "hi ada".to_owned())
    );
    assert_eq!(text(test.get("/greet")).await?.0, 200);
    Ok(())
}

#[tokio::test]
async fn a_toggle_for_an_unknown_route_fails_the_reload_and_drops_earlier_prepared_modules()
-> anyhow::Result<()> {
    let test = start("").await?;
    let mut failed = test.app.events().subscribe(EventFilter::exact(
        "com.modular.router.routes.rebuild_failed",
    ));
    test.write_config(
        "greeter:\n  greeting: changed\nrouter:\n  routes:\n    /nowhere:\n      enabled: false\n",
    )?;
    let outcome = test.app.reload().await?;
    assert_eq!(outcome.status, ReloadStatus::Failed, "{outcome:?}");
    assert_eq!(outcome.failed_module.as_deref(), Some("router"));
    assert_eq!(outcome.aborted, ["greeter"]);
    assert!(outcome.rolled_back.is_empty(), "{outcome:?}");
    let error = outcome.error.unwrap_or_default();
    assert!(
        error.contains("router.routes./nowhere names a route that no module registered"),
        "{error}"
    );
    let event = failed.try_recv().expect("routes.rebuild_failed event");
    assert_eq!(
        event_data(&event).map(|d| d["trigger"].clone()),
        Some("reload".into())
    );
    // Both modules run as before.
    assert_eq!(text(test.get("/greet")).await?, (200, "hello".to_owned()));
    assert_eq!(test.app.config().version(), 1);
    Ok(())
}

async fn build_error(yaml: &str) -> anyhow::Result<String> {
    match build(0, yaml, |b| b).await {
        Ok(_) => anyhow::bail!("invalid settings were accepted:\n{yaml}"),
        Err(error) => Ok(error.to_string()),
    }
}

#[tokio::test]
async fn invalid_router_settings_are_rejected_with_every_path() -> anyhow::Result<()> {
    let error = build_error(
        "router:\n  request_id_header: \"bad header\"\n  routes:\n    greet:\n      disabled_status: 500\n  cors:\n    allowed_origins: [\"*\"]\n    allow_credentials: true\n",
    )
    .await?;
    for expected in [
        "router.request_id_header: must be a valid header name",
        "router.routes.greet: must be a route path starting with '/'",
        "router.routes.greet.disabled_status: must be 404 or 503, got 500",
        "router.cors.allow_credentials: must be false",
    ] {
        assert!(
            error.contains(expected),
            "{expected:?} missing from:\n{error}"
        );
    }
    Ok(())
}

#[tokio::test]
async fn a_zero_health_timeout_is_rejected_with_its_path() -> anyhow::Result<()> {
    let error = build_error("router:\n  health:\n    timeout: 0s\n").await?;
    assert!(
        error.contains("router.health.timeout: must be > 0s, got 0s"),
        "{error}"
    );
    Ok(())
}

/// Built but not started, the router reports `unhealthy` (not built yet) and fails readiness
/// (the server's own check is made optional by the fixture): a reload of
/// `router.health.optional` takes it out of readiness, and `router.health.timeout` replaces
/// the registration's deadline.
#[tokio::test]
async fn a_reload_of_health_optional_and_timeout_changes_the_live_registration()
-> anyhow::Result<()> {
    let server_optional = "  health:\n    optional: true\n";
    let (app, _dir, config, _health, _gate) = build(0, server_optional, |b| b).await?;
    let aggregator = app.health().expect("aggregator").clone();
    let before = aggregator.provider_options("router").expect("registered");
    assert_eq!(before.timeout, modular_router::DEFAULT_HEALTH_TIMEOUT);
    assert!(!before.optional);
    let answer = aggregator.force_refresh().await;
    let report = answer.report("router", "routes").expect("router report");
    assert_eq!(report.status, HealthStatus::Unhealthy, "{report:?}");
    assert!(answer.readiness.is_failing(), "{answer:?}");

    let text = std::fs::read_to_string(&config)?;
    std::fs::write(
        &config,
        format!("{text}router:\n  health:\n    optional: true\n    timeout: 1s\n"),
    )?;
    let outcome = app.reload().await?;
    assert_eq!(outcome.status, ReloadStatus::Applied, "{outcome:?}");
    let answer = aggregator.force_refresh().await;
    let report = answer.report("router", "routes").expect("router report");
    assert_eq!(report.status, HealthStatus::Unhealthy, "{report:?}");
    assert!(report.optional, "{report:?}");
    assert!(!answer.readiness.is_failing(), "{answer:?}");
    let after = aggregator.provider_options("router").expect("registered");
    assert_eq!(after.timeout, Duration::from_secs(1));
    assert!(after.optional);
    Ok(())
}

#[tokio::test]
async fn a_short_admin_token_is_rejected_without_showing_it() -> anyhow::Result<()> {
    let error = build_error("admin:\n  token: shorty\n").await?;
    assert!(
        error.contains("admin.token: must be at least 16 bytes, got 6"),
        "{error}"
    );
    assert!(!error.contains("shorty"), "{error}");
    Ok(())
}

#[tokio::test]
async fn a_request_in_flight_finishes_on_the_router_it_started_on() -> anyhow::Result<()> {
    let test = start("").await?;
    let held = tokio::spawn(test.get("/wait").send());
    test.gate.wait_entered().await;
    // While the request is inside its handler, swap in a router where /wait is disabled.
    test.write_config("router:\n  routes:\n    /wait:\n      enabled: false\n")?;
    assert!(test.app.reload().await?.is_applied());
    assert_eq!(test.get("/wait").send().await?.status(), 404);

    test.gate.open();
    let answer = held.await??;
    assert_eq!(answer.status(), 200);
    assert_eq!(answer.text().await?, "released");
    Ok(())
}

#[tokio::test]
async fn a_later_module_failing_never_publishes_the_prepared_router() -> anyhow::Result<()> {
    let test = start_with("", |b| {
        b.module(modular_testkit::conformance::Tripwire::after("router"))
    })
    .await?;
    let mut rebuilt = test
        .app
        .events()
        .subscribe(EventFilter::exact("com.modular.router.routes.rebuilt"));
    test.write_config(&format!(
        "router:\n  cors:\n    allowed_origins: [\"{ORIGIN}\"]\nconformance_tripwire:\n  fail: true\n"
    ))?;
    let outcome = test.app.reload().await?;
    assert_eq!(outcome.status, ReloadStatus::Failed, "{outcome:?}");
    assert_eq!(
        outcome.failed_module.as_deref(),
        Some(modular_testkit::conformance::TRIPWIRE)
    );
    assert_eq!(outcome.aborted, ["router"]);
    assert!(outcome.rolled_back.is_empty(), "{outcome:?}");

    let triggers: Vec<String> = rebuilt
        .drain()
        .iter()
        .filter_map(|e| event_data(e).and_then(|d| d["trigger"].as_str().map(str::to_owned)))
        .collect();
    assert!(
        triggers.is_empty(),
        "the prepared router was never swapped in: {triggers:?}"
    );
    // The origin the failed reload would have allowed is not allowed.
    let answer = test.get("/greet").header("origin", ORIGIN).send().await?;
    assert!(
        answer
            .headers()
            .get("access-control-allow-origin")
            .is_none()
    );
    Ok(())
}

/// tower-http asserts (panics) on credentials combined with any wildcard; each combination is
/// a validation error at build, naming its key.
#[tokio::test]
async fn cors_credentials_with_a_wildcard_method_or_header_are_rejected_at_build()
-> anyhow::Result<()> {
    for field in ["allowed_methods", "allowed_headers", "exposed_headers"] {
        let yaml = format!(
            "router:\n  cors:\n    allowed_origins: [\"{ORIGIN}\"]\n    allow_credentials: true\n    {field}: [\"*\"]\n"
        );
        let error = match build(0, &yaml, |b| b).await {
            Ok(_) => anyhow::bail!("credentials with {field}: [\"*\"] were accepted"),
            Err(error) => error.to_string(),
        };
        assert!(
            error.contains(&format!("router.cors.{field}: must not be [\"*\"]")),
            "{field}: {error}"
        );
    }
    Ok(())
}

#[tokio::test]
async fn cors_credentials_with_a_wildcard_header_are_rejected_on_reload_and_the_old_stack_serves()
-> anyhow::Result<()> {
    let test = start(&format!(
        "router:\n  cors:\n    allowed_origins: [\"{ORIGIN}\"]\n"
    ))
    .await?;
    test.write_config(&format!(
        "router:\n  cors:\n    allowed_origins: [\"{ORIGIN}\"]\n    allow_credentials: true\n    allowed_headers: [\"*\"]\n"
    ))?;
    let outcome = test.app.reload().await?;
    assert_eq!(outcome.status, ReloadStatus::Rejected, "{outcome:?}");
    assert!(
        outcome
            .errors
            .iter()
            .any(|e| e.path == "router.cors.allowed_headers"),
        "{outcome:?}"
    );
    let after = test.get("/greet").header("origin", ORIGIN).send().await?;
    assert_eq!(after.status(), 200);
    assert_eq!(after.headers()["access-control-allow-origin"], ORIGIN);
    Ok(())
}
