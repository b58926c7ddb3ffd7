//! The health endpoints over a real socket: status codes, JSON fields, formats, and details
//! policy.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use modular_core::health::HealthStatus;
use support::{TOKEN, admin_yaml, json, start, text};

#[tokio::test]
async fn health_json_carries_every_field_and_takes_its_status_code_from_its_probe()
-> anyhow::Result<()> {
    let test = start("").await?;
    let response = test.get("/health").send().await?;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["cache-control"], "no-store");
    assert_eq!(response.headers()["content-type"], "application/json");
    let body: serde_json::Value = response.json().await?;
    for field in [
        "status",
        "readiness",
        "liveness",
        "startup",
        "config_version",
        "generated_at",
        "checks",
    ] {
        assert!(body.get(field).is_some(), "{field} missing from {body}");
    }
    assert_eq!(body["status"], "healthy");
    assert_eq!(body["config_version"], 1);
    let checks = body["checks"].as_array().expect("checks");
    let components: Vec<String> = checks
        .iter()
        .map(|c| {
            format!(
                "{}:{}",
                c["module"].as_str().unwrap_or(""),
                c["component"].as_str().unwrap_or("")
            )
        })
        .collect();
    for expected in ["checker:db", "httpserver:listener", "router:routes"] {
        assert!(
            components.contains(&expected.to_owned()),
            "{expected} missing from {components:?}"
        );
    }

    test.set_health(HealthStatus::Unhealthy);
    let (status, body) = json(test.get("/health")).await?;
    assert_eq!((status, body["status"].as_str()), (503, Some("unhealthy")));
    assert_eq!(json(test.get("/health/ready")).await?.0, 503);
    // The checker counts for readiness only: liveness still passes.
    let (status, body) = json(test.get("/health/live")).await?;
    assert_eq!((status, body["liveness"].as_str()), (200, Some("healthy")));

    test.set_health(HealthStatus::Degraded);
    assert_eq!(json(test.get("/health/ready")).await?.0, 200);
    Ok(())
}

#[tokio::test]
async fn kube_probes_answer_ok_list_checks_when_verbose_and_honour_exclude() -> anyhow::Result<()> {
    let test = start("").await?;
    for path in ["/readyz", "/livez", "/startupz"] {
        let response = test.get(path).send().await?;
        assert_eq!(response.status(), 200, "{path}");
        assert_eq!(response.headers()["cache-control"], "no-store");
        assert_eq!(response.text().await?, "ok");
    }
    let (status, body) = text(test.get("/readyz?verbose")).await?;
    assert_eq!(status, 200);
    assert!(body.contains("[+]router:routes ok"), "{body}");
    assert!(body.ends_with("readyz check passed\n"), "{body}");

    test.set_health(HealthStatus::Unhealthy);
    let (status, body) = text(test.get("/readyz")).await?;
    assert_eq!(status, 503);
    assert!(
        body.contains("[-]checker:db failed: reason withheld"),
        "{body}"
    );
    let (status, body) = text(test.get("/readyz?exclude=checker:db")).await?;
    assert_eq!(status, 200, "{body}");
    assert_eq!(text(test.get("/livez")).await?.0, 200);
    Ok(())
}

#[tokio::test]
async fn details_are_shown_only_to_callers_with_the_admin_token() -> anyhow::Result<()> {
    let test = start(&admin_yaml()).await?;
    test.set_health(HealthStatus::Unhealthy);
    let checker = |body: &serde_json::Value| {
        body["checks"]
            .as_array()
            .and_then(|c| c.iter().find(|c| c["module"] == "checker").cloned())
            .expect("checker check")
    };

    let (_, anonymous) = json(test.get("/health")).await?;
    let check = checker(&anonymous);
    assert_eq!(check["status"], "unhealthy");
    assert!(
        check.get("message").is_none() && check.get("details").is_none(),
        "{check}"
    );
    let (_, wrong) = json(test.get("/health").bearer_auth("not-the-token-at-all")).await?;
    assert!(checker(&wrong).get("message").is_none());

    let (_, authorized) = json(test.get("/health").bearer_auth(TOKEN)).await?;
    let check = checker(&authorized);
    assert_eq!(check["message"], "db down: connection refused");
    assert_eq!(check["details"]["host"], "db.internal");

    let (_, body) = text(test.get("/readyz?verbose")).await?;
    assert!(
        body.contains("reason withheld") && !body.contains("connection refused"),
        "{body}"
    );
    let (_, body) = text(test.get("/readyz?verbose").bearer_auth(TOKEN)).await?;
    assert!(
        body.contains("[-]checker:db failed: db down: connection refused"),
        "{body}"
    );
    Ok(())
}

#[tokio::test]
async fn the_details_policy_changes_without_a_restart() -> anyhow::Result<()> {
    let test = start(&admin_yaml()).await?;
    test.set_health(HealthStatus::Unhealthy);
    let message_of = |body: serde_json::Value| {
        body["checks"]
            .as_array()
            .and_then(|c| c.iter().find(|c| c["module"] == "checker").cloned())
            .map(|c| c.get("message").cloned())
    };

    test.write_config(&format!(
        "{}health:\n  show_details: always\n",
        admin_yaml()
    ))?;
    assert!(test.app.reload().await?.is_applied());
    let (_, body) = json(test.get("/health")).await?;
    assert_eq!(
        message_of(body),
        Some(Some("db down: connection refused".into()))
    );

    test.write_config(&format!("{}health:\n  show_details: never\n", admin_yaml()))?;
    assert!(test.app.reload().await?.is_applied());
    let (_, body) = json(test.get("/health").bearer_auth(TOKEN)).await?;
    assert_eq!(message_of(body), Some(None));
    Ok(())
}

#[tokio::test]
async fn the_ietf_format_is_served_on_request() -> anyhow::Result<()> {
    let test = start("").await?;
    test.set_health(HealthStatus::Degraded);
    let response = test
        .get("/health")
        .header("accept", "application/health+json")
        .send()
        .await?;
    assert_eq!(response.status(), 200);
    assert_eq!(
        response.headers()["content-type"],
        "application/health+json"
    );
    assert_eq!(response.headers()["cache-control"], "no-store");
    let body: serde_json::Value = response.json().await?;
    assert_eq!(body["status"], "warn");
    assert_eq!(body["checks"]["checker:db"][0]["status"], "warn");
    assert_eq!(body["checks"]["router:routes"][0]["status"], "pass");

    test.set_health(HealthStatus::Unhealthy);
    let response = test
        .get("/readyz")
        .header("accept", "application/health+json")
        .send()
        .await?;
    assert_eq!(response.status(), 503);
    let body: serde_json::Value = response.json().await?;
    assert_eq!(body["status"], "fail");
    Ok(())
}

#[tokio::test]
async fn one_module_s_checks_are_served_and_unknown_modules_are_not_found() -> anyhow::Result<()> {
    let test = start("").await?;
    let (status, body) = json(test.get("/health/checks/checker")).await?;
    assert_eq!(status, 200);
    assert_eq!(body["module"], "checker");
    assert_eq!(body["checks"][0]["component"], "db");

    test.set_health(HealthStatus::Unhealthy);
    let (status, body) = json(test.get("/health/checks/checker")).await?;
    assert_eq!((status, body["status"].as_str()), (503, Some("unhealthy")));

    let response = test.get("/health/checks/nothing").send().await?;
    assert_eq!(response.status(), 404);
    assert_eq!(response.headers()["cache-control"], "no-store");
    Ok(())
}

#[tokio::test]
async fn the_router_reports_its_routes() -> anyhow::Result<()> {
    let test = start(&format!(
        "{}router:\n  routes:\n    /slow:\n      enabled: false\n",
        support::admin_yaml()
    ))
    .await?;
    let health = test.app.health().expect("aggregator").force_refresh().await;
    let report = health.report("router", "routes").expect("router report");
    assert_eq!(report.status, HealthStatus::Healthy);
    // 7 greeter routes, 7 health endpoints, 7 admin endpoints.
    assert_eq!(report.details["route_count"], 22, "{report:?}");
    assert_eq!(report.details["disabled"][0]["path"], "/slow");
    assert_eq!(report.details["owners"], serde_json::json!(["greeter"]));
    assert_eq!(report.message, "22 routes, 1 disabled");
    assert_eq!(report.details["admin_endpoints"], true);
    Ok(())
}

#[tokio::test(start_paused = true)]
async fn readiness_answers_503_while_the_server_drains_and_the_server_stops_after_the_delay()
-> anyhow::Result<()> {
    let test = support::start_with("", |b| {
        b.shutdown_timeout(std::time::Duration::from_secs(300))
    })
    .await?;
    let outcome = test
        .app
        .set_override("httpserver.drain_delay", serde_json::json!("60s"))
        .await?;
    assert!(outcome.is_applied(), "{outcome:?}");
    assert_eq!(text(test.get("/readyz")).await?, (200, "ok".to_owned()));

    let (http, readyz, ready) = (
        test.http.clone(),
        test.url("/readyz"),
        test.url("/health/ready"),
    );
    let mut app = test.app;
    let stopping = tokio::spawn(async move { app.stop().await });
    let (status, body) = loop {
        let answer = text(http.get(&readyz)).await?;
        if answer.0 != 200 {
            break answer;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    };
    assert_eq!(status, 503);
    assert!(body.contains("[-]shutdown failed"), "{body}");
    let (status, body) = json(http.get(&ready)).await?;
    assert_eq!(
        (status, body["readiness"].as_str()),
        (503, Some("unhealthy"))
    );
    assert!(
        !stopping.is_finished(),
        "the server must keep serving through the drain delay"
    );

    stopping.await??;
    assert!(
        http.get(&readyz).send().await.is_err(),
        "connections must be refused once stopped"
    );
    Ok(())
}

#[tokio::test]
async fn one_module_s_checks_are_served_in_the_ietf_format_on_request() -> anyhow::Result<()> {
    let test = start(&admin_yaml()).await?;
    test.set_health(HealthStatus::Unhealthy);
    let response = test
        .get("/health/checks/checker")
        .header("accept", "application/health+json")
        .bearer_auth(TOKEN)
        .send()
        .await?;
    assert_eq!(response.status(), 503);
    assert_eq!(
        response.headers()["content-type"],
        "application/health+json"
    );
    assert_eq!(response.headers()["cache-control"], "no-store");
    let body: serde_json::Value = response.json().await?;
    assert_eq!(body["status"], "fail", "{body}");
    let checks = body["checks"].as_object().expect("checks");
    // That module's reports only.
    assert_eq!(checks.keys().collect::<Vec<_>>(), ["checker:db"], "{body}");
    let check = &checks["checker:db"][0];
    assert_eq!(check["componentId"], "db");
    assert_eq!(check["status"], "fail");
    assert_eq!(check["output"], "db down: connection refused");
    assert_eq!(check["details"]["host"], "db.internal");

    // Without the token: statuses only.
    let (status, body) = json(
        test.get("/health/checks/checker")
            .header("accept", "application/health+json"),
    )
    .await?;
    assert_eq!(status, 503);
    let check = &body["checks"]["checker:db"][0];
    assert_eq!(check["status"], "fail");
    assert!(
        check.get("output").is_none() && check.get("details").is_none(),
        "{check}"
    );

    test.set_health(HealthStatus::Degraded);
    let (status, body) = json(
        test.get("/health/checks/checker")
            .header("accept", "application/health+json"),
    )
    .await?;
    assert_eq!((status, body["status"].as_str()), (200, Some("warn")));
    // Still a plain 404 for a module without reports.
    let response = test
        .get("/health/checks/nothing")
        .header("accept", "application/health+json")
        .send()
        .await?;
    assert_eq!(response.status(), 404);
    assert_eq!(response.headers()["cache-control"], "no-store");
    Ok(())
}

#[tokio::test]
async fn an_unauthorized_ietf_answer_carries_no_output_or_details() -> anyhow::Result<()> {
    let test = start(&admin_yaml()).await?;
    test.set_health(HealthStatus::Unhealthy);
    let ietf = |request: reqwest::RequestBuilder| {
        json(request.header("accept", "application/health+json"))
    };

    for request in [
        test.get("/health"),
        test.get("/health").bearer_auth("not-the-token-at-all"),
    ] {
        let (status, body) = ietf(request).await?;
        assert_eq!(status, 503);
        assert_eq!(body["status"], "fail");
        let check = &body["checks"]["checker:db"][0];
        assert_eq!(check["status"], "fail", "{body}");
        for field in ["output", "details", "time", "observedValue"] {
            assert!(check.get(field).is_none(), "{field} in {check}");
        }
        assert!(!body.to_string().contains("connection refused"), "{body}");
    }

    let (_, body) = ietf(test.get("/health").bearer_auth(TOKEN)).await?;
    let check = &body["checks"]["checker:db"][0];
    assert_eq!(check["output"], "db down: connection refused");
    assert_eq!(check["details"]["host"], "db.internal");
    Ok(())
}

/// An access policy as the auth module would register one: roles from a header (a stand-in
/// for a verified token), admin for `admin`, health details for `viewer` and `admin`.
#[derive(Debug)]
struct RolePolicy;

impl modular_core::http::AccessPolicy for RolePolicy {
    fn decide(
        &self,
        right: modular_core::http::Right,
        headers: &http::HeaderMap,
    ) -> modular_core::http::Decision {
        use modular_core::http::{Decision, Right};
        match (right, headers.get("x-role").and_then(|v| v.to_str().ok())) {
            (_, None) => Decision::Unauthenticated,
            (_, Some("admin")) | (Right::HealthDetails, Some("viewer")) => Decision::Granted,
            _ => Decision::Forbidden,
        }
    }
}

struct PolicyOwner;

#[modular_core::async_trait]
impl modular_core::Module for PolicyOwner {
    fn name(&self) -> &str {
        "roles"
    }

    async fn init(
        &mut self,
        ctx: &mut modular_core::InitContext<'_>,
    ) -> Result<(), modular_core::BoxError> {
        ctx.services()
            .register::<dyn modular_core::http::AccessPolicy>(std::sync::Arc::new(RolePolicy));
        Ok(())
    }
}

#[tokio::test]
async fn a_registered_access_policy_grants_admin_and_details_rights_by_role() -> anyhow::Result<()>
{
    // No admin token: with a policy registered the admin endpoints exist, and it decides.
    let test = support::start_with("", |b| b.module(PolicyOwner)).await?;
    test.set_health(HealthStatus::Unhealthy);
    assert_eq!(test.get("/admin/config").send().await?.status(), 401);
    let as_viewer = test.get("/admin/config").header("x-role", "viewer");
    assert_eq!(as_viewer.send().await?.status(), 403);
    let as_admin = test.get("/admin/config").header("x-role", "admin");
    assert_eq!(as_admin.send().await?.status(), 200);
    // A bearer token means nothing without a configured admin token.
    let bearer = test.get("/admin/config").bearer_auth(TOKEN);
    assert_eq!(bearer.send().await?.status(), 401);

    let message = |body: serde_json::Value| {
        body["checks"]
            .as_array()
            .and_then(|c| c.iter().find(|c| c["module"] == "checker").cloned())
            .and_then(|c| c.get("message").cloned())
    };
    let (_, anonymous) = json(test.get("/health")).await?;
    assert_eq!(message(anonymous), None);
    let (_, other) = json(test.get("/health").header("x-role", "guest")).await?;
    assert_eq!(message(other), None);
    let (_, viewer) = json(test.get("/health").header("x-role", "viewer")).await?;
    assert_eq!(
        message(viewer),
        Some(serde_json::json!("db down: connection refused"))
    );
    Ok(())
}

#[tokio::test]
async fn the_admin_token_still_works_beside_a_policy_and_a_wrong_one_stays_forbidden()
-> anyhow::Result<()> {
    let test = support::start_with(&admin_yaml(), |b| b.module(PolicyOwner)).await?;
    let token = test.get("/admin/config").bearer_auth(TOKEN);
    assert_eq!(token.send().await?.status(), 200);
    let wrong = test
        .get("/admin/config")
        .bearer_auth("not-the-token-at-all");
    assert_eq!(wrong.send().await?.status(), 403);
    let role = test.get("/admin/config").header("x-role", "admin");
    assert_eq!(role.send().await?.status(), 200);
    Ok(())
}

#[tokio::test]
async fn without_metrics_enabled_there_is_no_metrics_endpoint() -> anyhow::Result<()> {
    let test = start("").await?;
    assert_eq!(test.get("/metrics").send().await?.status(), 404);
    Ok(())
}
