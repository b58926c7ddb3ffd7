//! A reload that fails in a later module rolls the httpclient back to its previous client.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::sync::Arc;
use std::time::Duration;

use modular_core::events::{EventFilter, event_data};
use modular_core::{
    Application, BoxError, ConfigChange, InitContext, Module, ReloadContext, ReloadStatus,
    Reloadable,
};
use modular_httpclient::{HttpClient, HttpClientModule};
use serde::{Deserialize, Serialize};
use support::TestServer;

/// A module after httpclient whose reload always fails.
struct Refuser;

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, modular_core::DynamicConfig)]
#[serde(deny_unknown_fields, default)]
struct RefuserConfig {
    #[config(dynamic)]
    level: u32,
}

struct RefuseEveryReload;

#[modular_core::async_trait]
impl Reloadable for RefuseEveryReload {
    async fn prepare(
        &self,
        ctx: &ReloadContext,
        _changes: &[ConfigChange],
    ) -> Result<modular_core::PreparedReload, BoxError> {
        let level = ctx
            .new_config::<RefuserConfig>()
            .map(|c| c.level)
            .unwrap_or_default();
        Err(format!("refusing level {level}").into())
    }
}

#[modular_core::async_trait]
impl Module for Refuser {
    fn name(&self) -> &str {
        "refuser"
    }

    fn dependencies(&self) -> Vec<String> {
        vec!["httpclient".to_owned()]
    }

    async fn init(&mut self, ctx: &mut InitContext<'_>) -> Result<(), BoxError> {
        ctx.config::<RefuserConfig>()?;
        ctx.register_reloadable(Arc::new(RefuseEveryReload));
        Ok(())
    }
}

const BEFORE: &str =
    "httpclient:\n  request_timeout: 10s\n  retry:\n    max_retries: 0\nrefuser:\n  level: 1\n";
const AFTER: &str =
    "httpclient:\n  request_timeout: 1s\n  retry:\n    max_retries: 0\nrefuser:\n  level: 2\n";

#[tokio::test(start_paused = true)]
async fn a_reload_that_fails_later_never_publishes_the_prepared_client() {
    let server = TestServer::start().await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("config.yaml");
    std::fs::write(&path, BEFORE).unwrap();
    let mut app = Application::builder()
        .config_file(&path)
        .env_prefix(None)
        .module(Refuser)
        .module(HttpClientModule::new())
        .with_reload_options(support::quiet_reloads())
        .handle_signals(false)
        .build()
        .await
        .unwrap();
    app.start().await.unwrap();
    let client = app.services().get::<HttpClient>().unwrap();
    let mut rebuilt = app
        .events()
        .subscribe(EventFilter::exact("com.modular.httpclient.client.rebuilt"));

    std::fs::write(&path, AFTER).unwrap();
    let outcome = app.reload().await.unwrap();

    assert_eq!(outcome.status, ReloadStatus::Failed, "{outcome:?}");
    assert_eq!(outcome.failed_module.as_deref(), Some("refuser"));
    assert!(
        outcome
            .error
            .as_deref()
            .unwrap_or_default()
            .contains("refusing level 2"),
        "{outcome:?}"
    );
    // Two-phase: the client built from the candidate was dropped unused; nothing to roll back.
    assert_eq!(outcome.aborted, ["httpclient"]);
    assert!(outcome.rolled_back.is_empty(), "{outcome:?}");
    assert!(outcome.rollback_errors.is_empty(), "{outcome:?}");
    assert_eq!(client.settings().request_timeout, Duration::from_secs(10));
    assert_eq!(
        client.generation(),
        1,
        "the live client is the same generation"
    );
    let events: Vec<_> = rebuilt
        .drain()
        .iter()
        .map(|e| event_data(e).unwrap().clone())
        .collect();
    assert!(events.is_empty(), "no client was swapped in: {events:?}");

    // And it behaves like it: a 3 s answer is still within the running 10 s timeout.
    let response = client.get(server.url("/slow/3000")).send().await.unwrap();
    assert_eq!(response.status(), 200);

    app.stop().await.unwrap();
}
