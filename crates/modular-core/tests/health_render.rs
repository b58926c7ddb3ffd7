//! The renderers, field by field: native JSON, IETF health+json and kube-apiserver text, with
//! and without details.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use chrono::{DateTime, TimeDelta, TimeZone, Utc};
use modular_core::health::render::{
    self, HEALTH_JSON_CONTENT_TYPE, JSON_CONTENT_TYPE, KubeQuery, TEXT_CONTENT_TYPE, ietf_json,
    module_json, native_json, render_ietf, render_kube, render_module, render_native,
};
use modular_core::health::{
    AggregatedHealth, DetailsPolicy, HealthReport, HealthStatus, Probe, Probes,
};
use serde_json::json;

fn at(seconds: i64) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 3, 1, 12, 0, 0).unwrap() + TimeDelta::seconds(seconds)
}

/// db:primary healthy, db:replica degraded, cache:redis unhealthy but optional,
/// runtime:scheduler healthy (liveness only).
fn fixture() -> AggregatedHealth {
    let reports = vec![
        HealthReport::healthy("db", "primary")
            .with_checked_at(at(10))
            .with_observed_since(at(0))
            .with_duration(Duration::from_micros(1_500))
            .with_detail("idle", 3),
        HealthReport::degraded("db", "replica")
            .with_message("replication lag 4s")
            .with_checked_at(at(10))
            .with_duration(Duration::from_millis(2)),
        HealthReport::unhealthy("cache", "redis")
            .with_optional(true)
            .with_message("connection refused")
            .with_checked_at(at(10))
            .with_duration(Duration::from_millis(200)),
        HealthReport::healthy("runtime", "scheduler")
            .with_probes(Probes::LIVENESS)
            .with_checked_at(at(10)),
    ];
    let mut health = AggregatedHealth::from_reports(reports);
    health.config_version = 7;
    health.generated_at = at(10);
    health
}

/// The fixture with db:primary unhealthy.
fn failing() -> AggregatedHealth {
    let mut health = fixture();
    let primary = health
        .reports
        .iter_mut()
        .find(|r| r.component == "primary")
        .unwrap();
    primary.status = HealthStatus::Unhealthy;
    primary.message = "pool closed".to_owned();
    AggregatedHealth::from_reports(health.reports)
}

#[test]
fn the_fixture_folds_as_expected() {
    let health = fixture();
    assert_eq!(health.health, HealthStatus::Unhealthy);
    assert_eq!(health.readiness, HealthStatus::Degraded);
    assert_eq!(health.liveness, HealthStatus::Healthy);
    assert_eq!(health.startup, HealthStatus::Healthy);
}

#[test]
fn native_json_with_details_shows_every_field() {
    let value = native_json(&fixture(), true);
    assert_eq!(
        value,
        json!({
            "status": "unhealthy",
            "readiness": "degraded",
            "liveness": "healthy",
            "startup": "healthy",
            "config_version": 7,
            "generated_at": "2026-03-01T12:00:10.000Z",
            "checks": [
                {
                    "module": "cache", "component": "redis", "status": "unhealthy", "optional": true,
                    "message": "connection refused",
                    "checked_at": "2026-03-01T12:00:10.000Z", "observed_since": "2026-03-01T12:00:10.000Z",
                    "duration_ms": 200.0, "details": {}
                },
                {
                    "module": "db", "component": "primary", "status": "healthy", "optional": false,
                    "message": "",
                    "checked_at": "2026-03-01T12:00:10.000Z", "observed_since": "2026-03-01T12:00:00.000Z",
                    "duration_ms": 1.5, "details": {"idle": 3}
                },
                {
                    "module": "db", "component": "replica", "status": "degraded", "optional": false,
                    "message": "replication lag 4s",
                    "checked_at": "2026-03-01T12:00:10.000Z", "observed_since": "2026-03-01T12:00:10.000Z",
                    "duration_ms": 2.0, "details": {}
                },
                {
                    "module": "runtime", "component": "scheduler", "status": "healthy", "optional": false,
                    "message": "",
                    "checked_at": "2026-03-01T12:00:10.000Z", "observed_since": "2026-03-01T12:00:10.000Z",
                    "duration_ms": 0.0, "details": {}
                }
            ]
        })
    );
}

#[test]
fn the_serde_form_of_an_answer_is_the_native_json_with_details() {
    let health = fixture();
    assert_eq!(
        serde_json::to_value(&health).unwrap(),
        native_json(&health, true)
    );
}

#[test]
fn native_json_without_details_shows_only_module_component_and_status() {
    let value = native_json(&fixture(), false);
    assert_eq!(
        value,
        json!({
            "status": "unhealthy",
            "readiness": "degraded",
            "liveness": "healthy",
            "startup": "healthy",
            "config_version": 7,
            "generated_at": "2026-03-01T12:00:10.000Z",
            "checks": [
                {"module": "cache", "component": "redis", "status": "unhealthy"},
                {"module": "db", "component": "primary", "status": "healthy"},
                {"module": "db", "component": "replica", "status": "degraded"},
                {"module": "runtime", "component": "scheduler", "status": "healthy"}
            ]
        })
    );
    let body = render_native(&fixture(), Probe::Health, false).body;
    for secret in [
        "connection refused",
        "replication lag",
        "idle",
        "message",
        "details",
    ] {
        assert!(!body.contains(secret), "{secret:?} leaked: {body}");
    }
}

#[test]
fn native_answers_take_their_status_code_from_the_probe() {
    let health = fixture();
    let overall = render_native(&health, Probe::Health, true);
    assert_eq!(overall.status_code, 503);
    assert_eq!(overall.content_type, JSON_CONTENT_TYPE);
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&overall.body).unwrap(),
        native_json(&health, true)
    );
    assert_eq!(
        render_native(&health, Probe::Readiness, true).status_code,
        200
    );
    assert_eq!(
        render_native(&health, Probe::Liveness, true).status_code,
        200
    );
    assert_eq!(
        render_native(&failing(), Probe::Readiness, false).status_code,
        503
    );
    assert_eq!(
        render_native(&failing(), Probe::Liveness, false).status_code,
        200
    );
}

#[test]
fn a_module_answer_lists_its_reports_with_its_worst_status() {
    let health = fixture();
    assert_eq!(
        module_json(&health, "db", false).unwrap(),
        json!({
            "module": "db",
            "status": "degraded",
            "checks": [
                {"module": "db", "component": "primary", "status": "healthy"},
                {"module": "db", "component": "replica", "status": "degraded"}
            ]
        })
    );
    let detailed = module_json(&health, "db", true).unwrap();
    assert_eq!(detailed["checks"][1]["message"], "replication lag 4s");
    assert_eq!(
        render_module(&health, "db", false).unwrap().status_code,
        200
    );
    assert_eq!(
        render_module(&health, "cache", false).unwrap().status_code,
        503
    );
    assert!(render_module(&health, "nope", true).is_none());
}

#[test]
fn ietf_json_with_details_keys_checks_by_module_and_component() {
    let value = ietf_json(&fixture(), Probe::Readiness, true);
    assert_eq!(
        value,
        json!({
            "status": "warn",
            "checks": {
                "cache:redis": [{
                    "componentId": "redis", "status": "fail", "time": "2026-03-01T12:00:10.000Z",
                    "observedValue": 200.0, "observedUnit": "ms", "output": "connection refused"
                }],
                "db:primary": [{
                    "componentId": "primary", "status": "pass", "time": "2026-03-01T12:00:10.000Z",
                    "observedValue": 1.5, "observedUnit": "ms", "details": {"idle": 3}
                }],
                "db:replica": [{
                    "componentId": "replica", "status": "warn", "time": "2026-03-01T12:00:10.000Z",
                    "observedValue": 2.0, "observedUnit": "ms", "output": "replication lag 4s"
                }],
                "runtime:scheduler": [{
                    "componentId": "scheduler", "status": "pass", "time": "2026-03-01T12:00:10.000Z",
                    "observedValue": 0.0, "observedUnit": "ms"
                }]
            }
        })
    );
}

#[test]
fn ietf_json_without_details_shows_only_component_and_status() {
    let value = ietf_json(&fixture(), Probe::Health, false);
    assert_eq!(
        value,
        json!({
            "status": "fail",
            "checks": {
                "cache:redis": [{"componentId": "redis", "status": "fail"}],
                "db:primary": [{"componentId": "primary", "status": "pass"}],
                "db:replica": [{"componentId": "replica", "status": "warn"}],
                "runtime:scheduler": [{"componentId": "scheduler", "status": "pass"}]
            }
        })
    );
    let rendered = render_ietf(&fixture(), Probe::Liveness, false);
    assert_eq!(rendered.status_code, 200);
    assert_eq!(rendered.content_type, HEALTH_JSON_CONTENT_TYPE);
    let body: serde_json::Value = serde_json::from_str(&rendered.body).unwrap();
    assert_eq!(body, ietf_json(&fixture(), Probe::Liveness, false));
    assert_eq!(body["status"], "pass");
    assert!(!rendered.body.contains("connection refused"));
}

#[test]
fn kube_text_is_ok_when_passing_and_not_verbose() {
    let rendered = render_kube(&fixture(), Probe::Readiness, &KubeQuery::default(), false);
    assert_eq!(rendered.status_code, 200);
    assert_eq!(rendered.content_type, TEXT_CONTENT_TYPE);
    assert_eq!(rendered.body, "ok");
}

#[test]
fn kube_text_verbose_lists_each_readiness_check() {
    let rendered = render_kube(
        &fixture(),
        Probe::Readiness,
        &KubeQuery::default().verbose(),
        false,
    );
    assert_eq!(rendered.status_code, 200);
    assert_eq!(
        rendered.body,
        "[+]shutdown ok\n\
         [+]cache:redis ok (optional, unhealthy)\n\
         [+]db:primary ok\n\
         [+]db:replica ok (degraded)\n\
         readyz check passed\n"
    );
}

#[test]
fn kube_text_livez_lists_only_liveness_checks() {
    let rendered = render_kube(
        &fixture(),
        Probe::Liveness,
        &KubeQuery::parse("verbose"),
        false,
    );
    assert_eq!(
        rendered.body,
        "[+]runtime:scheduler ok\nlivez check passed\n"
    );
}

#[test]
fn kube_text_lists_a_failure_in_full_and_withholds_the_reason_without_details() {
    let rendered = render_kube(&failing(), Probe::Readiness, &KubeQuery::default(), false);
    assert_eq!(rendered.status_code, 503);
    assert_eq!(
        rendered.body,
        "[+]shutdown ok\n\
         [+]cache:redis ok (optional, unhealthy)\n\
         [-]db:primary failed: reason withheld\n\
         [+]db:replica ok (degraded)\n\
         readyz check failed\n"
    );
    let detailed = render_kube(&failing(), Probe::Readiness, &KubeQuery::default(), true);
    assert!(
        detailed
            .body
            .contains("[-]db:primary failed: pool closed\n"),
        "{}",
        detailed.body
    );
}

#[test]
fn kube_text_excludes_checks_by_name_or_module_and_warns_about_unknown_names() {
    let query = KubeQuery::parse("exclude=db%3Aprimary");
    let rendered = render_kube(&failing(), Probe::Readiness, &query, false);
    assert_eq!(rendered.status_code, 200);
    assert_eq!(rendered.body, "ok");

    let query = KubeQuery::default()
        .verbose()
        .excluding("db")
        .excluding("nope");
    let rendered = render_kube(&failing(), Probe::Readiness, &query, false);
    assert_eq!(rendered.status_code, 200);
    assert_eq!(
        rendered.body,
        "[+]shutdown ok\n\
         [+]cache:redis ok (optional, unhealthy)\n\
         [+]db:primary excluded: ok\n\
         [+]db:replica excluded: ok\n\
         warn: some health checks cannot be excluded: no matches for \"nope\"\n\
         readyz check passed\n"
    );
}

#[test]
fn kube_text_healthz_counts_optional_failures() {
    let rendered = render_kube(&fixture(), Probe::Health, &KubeQuery::default(), true);
    assert_eq!(rendered.status_code, 503);
    assert!(
        rendered
            .body
            .contains("[-]cache:redis failed: connection refused\n"),
        "{}",
        rendered.body
    );
    assert!(rendered.body.ends_with("healthz check failed\n"));
}

#[test]
fn kube_text_startupz_fails_until_started_and_readyz_fails_while_shutting_down() {
    let mut health = fixture();
    health.started = false;
    let startup = render_kube(&health, Probe::Startup, &KubeQuery::default(), true);
    assert_eq!(startup.status_code, 503);
    assert_eq!(
        startup.body,
        "[-]started failed: application has not started\nstartupz check failed\n"
    );

    let mut health = fixture();
    health.shutting_down = true;
    let ready = render_kube(&health, Probe::Readiness, &KubeQuery::default(), false);
    assert_eq!(ready.status_code, 503);
    assert!(
        ready
            .body
            .starts_with("[-]shutdown failed: reason withheld\n"),
        "{}",
        ready.body
    );
    let excluded = render_kube(
        &health,
        Probe::Readiness,
        &KubeQuery::parse("exclude=shutdown"),
        false,
    );
    assert_eq!(excluded.status_code, 200);
}

#[test]
fn the_details_policy_feeds_the_renderers() {
    let health = fixture();
    let shown = |policy: DetailsPolicy, authorized: bool| {
        render::render_native(&health, Probe::Health, policy.shows_details(authorized))
            .body
            .contains("connection refused")
    };
    assert!(shown(DetailsPolicy::WhenAuthorized, true));
    assert!(!shown(DetailsPolicy::WhenAuthorized, false));
    assert!(!shown(DetailsPolicy::Never, true));
    assert!(shown(DetailsPolicy::Always, false));
}
