//! `/admin/config/overrides` over a real socket: reading (redacted), merging, removing one or
//! all, a rejected change, and overrides withdrawn by the health gate or a rollback.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::sync::Arc;
use std::time::Duration;

use modular_core::config::ConfigHandle;
use modular_core::events::EventFilter;
use modular_core::health::{
    HealthContext, HealthError, HealthProvider, HealthReport, ProviderOptions,
};
use modular_core::reload::ReloadOptions;
use modular_core::{BoxError, DynamicConfig, InitContext, Module};
use serde::{Deserialize, Serialize};
use serde_json::json;
use support::{TOKEN, TestApp, admin_yaml, json, start, start_with, text};

fn put(test: &TestApp, body: &str, content_type: &str) -> reqwest::RequestBuilder {
    test.http
        .put(test.url("/admin/config/overrides"))
        .bearer_auth(TOKEN)
        .header("content-type", content_type)
        .body(body.to_owned())
}

fn delete(test: &TestApp, path: &str) -> reqwest::RequestBuilder {
    test.http.delete(test.url(path)).bearer_auth(TOKEN)
}

async fn overrides(test: &TestApp) -> anyhow::Result<serde_json::Value> {
    let (status, body) = json(test.get("/admin/config/overrides").bearer_auth(TOKEN)).await?;
    assert_eq!(status, 200, "{body}");
    Ok(body)
}

#[tokio::test]
async fn overrides_are_merged_listed_and_removed_through_the_pipeline() -> anyhow::Result<()> {
    let test = start(&admin_yaml()).await?;
    assert_eq!(overrides(&test).await?, json!({}));

    let (status, outcome) = json(put(
        &test,
        r#"{"greeter.greeting": "hola"}"#,
        "application/json",
    ))
    .await?;
    assert_eq!(status, 200, "{outcome}");
    assert_eq!(outcome["status"], "applied");
    assert_eq!(outcome["trigger"], "admin");
    assert_eq!(text(test.get("/greet")).await?.1, "hola");

    // YAML, merged: the earlier key stays; a secret's value is never echoed.
    let (status, outcome) = json(put(
        &test,
        &format!("admin.token: {TOKEN}\n"),
        "application/yaml",
    ))
    .await?;
    assert_eq!(status, 200, "{outcome}");
    let listed = overrides(&test).await?;
    assert_eq!(
        listed,
        json!({ "admin.token": "[REDACTED]", "greeter.greeting": "hola" })
    );
    assert!(!listed.to_string().contains(TOKEN));

    let (status, outcome) = json(delete(&test, "/admin/config/overrides/greeter.greeting")).await?;
    assert_eq!(status, 200, "{outcome}");
    assert_eq!(outcome["status"], "applied");
    assert_eq!(outcome["trigger"], "admin");
    assert_eq!(text(test.get("/greet")).await?.1, "hello");
    assert_eq!(
        overrides(&test).await?,
        json!({ "admin.token": "[REDACTED]" })
    );

    let (status, missing) = json(delete(&test, "/admin/config/overrides/greeter.greeting")).await?;
    assert_eq!(status, 404, "{missing}");

    let (status, outcome) = json(delete(&test, "/admin/config/overrides")).await?;
    assert_eq!(status, 200, "{outcome}");
    assert_eq!(overrides(&test).await?, json!({}));
    Ok(())
}

#[tokio::test]
async fn a_rejected_override_change_answers_422_and_leaves_the_overrides() -> anyhow::Result<()> {
    let test = start(&admin_yaml()).await?;
    let (status, _) = json(put(
        &test,
        r#"{"greeter.greeting": "hola"}"#,
        "application/json",
    ))
    .await?;
    assert_eq!(status, 200);
    let (status, outcome) = json(put(
        &test,
        r#"{"greeter.greeting": "ciao", "router.request_timeout": "soon"}"#,
        "application/json",
    ))
    .await?;
    assert_eq!(status, 422, "{outcome}");
    assert_eq!(outcome["errors"][0]["path"], "router.request_timeout");
    assert_eq!(
        overrides(&test).await?,
        json!({ "greeter.greeting": "hola" })
    );
    assert_eq!(text(test.get("/greet")).await?.1, "hola");

    let (status, body) = json(put(&test, "[1, 2]", "application/json")).await?;
    assert_eq!(status, 400, "{body}");
    let (status, body) = json(put(&test, "", "application/json")).await?;
    assert_eq!(status, 400, "{body}");
    Ok(())
}

#[tokio::test]
async fn the_overrides_endpoints_need_the_token_and_are_absent_without_one() -> anyhow::Result<()> {
    let test = start(&admin_yaml()).await?;
    assert_eq!(
        test.get("/admin/config/overrides").send().await?.status(),
        401
    );
    let unauthorised = test
        .http
        .put(test.url("/admin/config/overrides"))
        .bearer_auth("test-admin-token-0123456780")
        .body(r#"{"greeter.greeting": "hola"}"#)
        .send()
        .await?;
    assert_eq!(unauthorised.status(), 403);
    assert_eq!(text(test.get("/greet")).await?.1, "hello");

    let closed = start("").await?;
    for response in [
        closed
            .get("/admin/config/overrides")
            .bearer_auth(TOKEN)
            .send()
            .await?,
        delete(&closed, "/admin/config/overrides").send().await?,
        delete(&closed, "/admin/config/overrides/greeter.greeting")
            .send()
            .await?,
    ] {
        assert_eq!(response.status(), 404);
    }
    Ok(())
}

#[tokio::test]
async fn an_override_undone_by_a_rollback_stays_withdrawn() -> anyhow::Result<()> {
    let test = start(&admin_yaml()).await?;
    let (_, outcome) = json(put(
        &test,
        r#"{"greeter.greeting": "hola"}"#,
        "application/json",
    ))
    .await?;
    assert_eq!(outcome["version"], 2, "{outcome}");
    let (status, outcome) = json(test.post("/admin/config/rollback/1").bearer_auth(TOKEN)).await?;
    assert_eq!(status, 200, "{outcome}");
    assert_eq!(text(test.get("/greet")).await?.1, "hello");
    assert_eq!(overrides(&test).await?, json!({}));

    let (status, outcome) = json(test.post("/admin/reload").bearer_auth(TOKEN)).await?;
    assert_eq!((status, outcome["status"].as_str()), (200, Some("noop")));
    assert_eq!(text(test.get("/greet")).await?.1, "hello");
    Ok(())
}

/// `sentinel.level`: readiness fails above 50.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, DynamicConfig)]
#[serde(deny_unknown_fields, default)]
struct SentinelConfig {
    #[config(dynamic)]
    level: u32,
}

struct Sentinel;

struct SentinelHealth(ConfigHandle<SentinelConfig>);

#[modular_core::async_trait]
impl HealthProvider for SentinelHealth {
    async fn health_check(&self, _ctx: &HealthContext) -> Result<Vec<HealthReport>, HealthError> {
        match self.0.load().level {
            level if level > 50 => Err(HealthError::Failed(format!("level {level} is above 50"))),
            _ => Ok(vec![]),
        }
    }
}

#[modular_core::async_trait]
impl Module for Sentinel {
    fn name(&self) -> &str {
        "sentinel"
    }

    async fn init(&mut self, ctx: &mut InitContext<'_>) -> Result<(), BoxError> {
        let config = ctx.config::<SentinelConfig>()?;
        ctx.register_health_provider(
            "sentinel",
            Arc::new(SentinelHealth(config)),
            ProviderOptions::default(),
        );
        Ok(())
    }
}

#[tokio::test]
async fn an_override_reverted_by_the_health_gate_is_withdrawn_and_stays_out() -> anyhow::Result<()>
{
    let test = start_with(&admin_yaml(), |b| {
        b.module(Sentinel).with_reload_options(ReloadOptions {
            watch_files: false,
            ..ReloadOptions::default()
        })
    })
    .await?;
    let mut reverted = test
        .app
        .events()
        .subscribe(EventFilter::exact("com.modular.config.reload.reverted"));
    let (status, outcome) = json(put(&test, "sentinel.level: 80\n", "application/yaml")).await?;
    assert_eq!(status, 200, "{outcome}");
    assert_eq!(outcome["health_gate"], "watching");
    // The gate looks as soon as the worker is idle; waiting on its event, not on a clock.
    tokio::time::timeout(Duration::from_secs(30), reverted.recv())
        .await
        .expect("the gate reverts the override's version")
        .expect("event stream open");
    assert_eq!(overrides(&test).await?, json!({}));

    let (status, outcome) = json(test.post("/admin/reload").bearer_auth(TOKEN)).await?;
    assert_eq!((status, outcome["status"].as_str()), (200, Some("noop")));
    let (_, config) = json(test.get("/admin/config").bearer_auth(TOKEN)).await?;
    assert_eq!(config["config"]["sentinel"]["level"], 0, "{config}");
    Ok(())
}
