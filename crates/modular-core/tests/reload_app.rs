//! Reload through an `Application`: dependency order, the health gate, programmatic triggers.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::sync::Arc;
use std::time::Duration;

use modular_core::events::{EventFilter, event_data};
use modular_core::health::{
    HealthContext, HealthError, HealthProvider, HealthReport, HealthStatus, ProviderOptions,
};
use modular_core::reload::ReloadOptions;
use modular_core::{Application, BoxError, ConfigHandle, InitContext, Module, ReloadStatus};
use serde_json::json;
use support::reload::{Behaviour, Journal, ModuleConfig, Recorder};

struct Tracked {
    name: String,
    deps: Vec<String>,
    journal: Journal,
    gate_level: Option<u32>,
    stop_delay: Duration,
}

struct LevelHealth {
    config: ConfigHandle<ModuleConfig>,
    limit: u32,
}

#[modular_core::async_trait]
impl HealthProvider for LevelHealth {
    async fn health_check(&self, _ctx: &HealthContext) -> Result<Vec<HealthReport>, HealthError> {
        let level = self.config.load().level;
        if level > self.limit {
            return Err(HealthError::Failed(format!(
                "level {level} is above {}",
                self.limit
            )));
        }
        Ok(vec![])
    }
}

#[modular_core::async_trait]
impl Module for Tracked {
    fn name(&self) -> &str {
        &self.name
    }

    fn dependencies(&self) -> Vec<String> {
        self.deps.clone()
    }

    async fn init(&mut self, ctx: &mut InitContext<'_>) -> Result<(), BoxError> {
        let config = ctx.config::<ModuleConfig>()?;
        ctx.register_reloadable(Recorder::new(&self.name, Behaviour::Succeed, &self.journal));
        if let Some(limit) = self.gate_level {
            ctx.register_health_provider(
                &self.name,
                Arc::new(LevelHealth { config, limit }),
                ProviderOptions::default(),
            );
        }
        Ok(())
    }

    async fn stop(&self, _ctx: &modular_core::ModuleContext) -> Result<(), BoxError> {
        // Like a server draining: readiness is already unhealthy while this runs.
        tokio::time::sleep(self.stop_delay).await;
        Ok(())
    }
}

fn tracked(name: &str, deps: &[&str], journal: &Journal) -> Tracked {
    Tracked {
        name: name.to_owned(),
        deps: deps.iter().map(|d| (*d).to_owned()).collect(),
        journal: journal.clone(),
        gate_level: None,
        stop_delay: Duration::ZERO,
    }
}

fn quiet() -> ReloadOptions {
    ReloadOptions {
        watch_files: false,
        health_gate: false,
        ..ReloadOptions::default()
    }
}

#[tokio::test]
async fn a_module_reloads_after_the_module_it_depends_on() {
    let journal = Journal::default();
    let mut app = Application::builder()
        .env_prefix(None)
        .module(tracked("api", &["store"], &journal))
        .module(tracked("store", &[], &journal))
        .with_reload_options(quiet())
        .handle_signals(false)
        .build()
        .await
        .unwrap();
    app.start().await.unwrap();
    app.config().set_overrides(
        [
            ("api.level".to_owned(), json!(3)),
            ("store.level".to_owned(), json!(3)),
        ]
        .into_iter()
        .collect(),
    );
    let outcome = app.reload().await.unwrap();
    assert_eq!(outcome.status, ReloadStatus::Applied);
    assert_eq!(outcome.reloaded, vec!["store", "api"]);
    assert_eq!(
        journal.modules(),
        vec![("store".to_owned(), false), ("api".to_owned(), false)]
    );
    app.stop().await.unwrap();
}

#[tokio::test]
async fn set_override_reloads_and_a_bad_override_changes_nothing() {
    let journal = Journal::default();
    let mut app = Application::builder()
        .env_prefix(None)
        .module(tracked("svc", &[], &journal))
        .with_reload_options(quiet())
        .handle_signals(false)
        .build()
        .await
        .unwrap();
    app.start().await.unwrap();
    let good = app.set_override("svc.level", json!(9)).await.unwrap();
    assert_eq!(good.status, ReloadStatus::Applied);
    assert_eq!(app.config().version(), 2);
    let bad = app.set_override("svc.level", json!("nine")).await.unwrap();
    assert_eq!(bad.status, ReloadStatus::Rejected);
    assert_eq!(bad.errors[0].path, "svc.level");
    assert_eq!(app.config().version(), 2);
    assert_eq!(app.config().redacted_json()["svc"]["level"], json!(9));
    app.stop().await.unwrap();
}

/// One module `gated` whose readiness fails above level 50, with the health gate on.
async fn gated_app(journal: &Journal, stop_delay: Duration) -> Application {
    gated_app_on(journal, stop_delay, None).await
}

/// [`gated_app`], reading `file` too when given.
async fn gated_app_on(
    journal: &Journal,
    stop_delay: Duration,
    file: Option<&std::path::Path>,
) -> Application {
    gated_app_with(journal, stop_delay, file, true).await
}

/// [`gated_app_on`], with the health gate on or off.
async fn gated_app_with(
    journal: &Journal,
    stop_delay: Duration,
    file: Option<&std::path::Path>,
    health_gate: bool,
) -> Application {
    let mut module = tracked("gated", &[], journal);
    module.gate_level = Some(50);
    module.stop_delay = stop_delay;
    let builder = match file {
        Some(file) => Application::builder().config_file(file),
        None => Application::builder(),
    };
    builder
        .env_prefix(None)
        .module(module)
        .with_reload_options(ReloadOptions {
            watch_files: false,
            health_gate,
            ..ReloadOptions::default()
        })
        .with_health_aggregator()
        .handle_signals(false)
        .build()
        .await
        .unwrap()
}

#[tokio::test(start_paused = true)]
async fn the_health_gate_reverts_a_reload_after_which_readiness_got_worse() {
    let journal = Journal::default();
    let mut app = gated_app(&journal, Duration::ZERO).await;
    let mut events = app
        .events()
        .subscribe(EventFilter::exact("com.modular.config.reload.reverted"));
    app.start().await.unwrap();
    let before = app.health().unwrap().force_refresh().await;
    assert_eq!(before.readiness, HealthStatus::Healthy);

    let outcome = app.set_override("gated.level", json!(80)).await.unwrap();
    assert_eq!(outcome.status, ReloadStatus::Applied, "{outcome:?}");
    assert_eq!(outcome.version, 2);

    let reverted = next_event(&mut events, "reverted").await;
    let data = event_data(&reverted).unwrap();
    assert_eq!(data["from_version"], json!(2));
    assert_eq!(data["to_version"], json!(3));
    let level = app.config().redacted_json()["gated"]["level"].clone();
    assert_eq!(level, json!(1), "the previous config is running again");
    let after = app.health().unwrap().force_refresh().await;
    assert_eq!(after.readiness, HealthStatus::Healthy);
    let calls = journal.calls();
    assert_eq!(
        calls.last().unwrap().level,
        Some(1),
        "the module was given the previous section"
    );
    app.stop().await.unwrap();
}

struct Refusing;

#[modular_core::async_trait]
impl modular_core::Reloadable for Refusing {
    async fn prepare(
        &self,
        _ctx: &modular_core::ReloadContext,
        _: &[modular_core::ConfigChange],
    ) -> Result<modular_core::PreparedReload, BoxError> {
        Err("refused".into())
    }
}

struct RefusingModule;

#[modular_core::async_trait]
impl Module for RefusingModule {
    fn name(&self) -> &str {
        "refuser"
    }

    async fn init(&mut self, ctx: &mut InitContext<'_>) -> Result<(), BoxError> {
        ctx.config::<ModuleConfig>()?;
        ctx.register_reloadable(Arc::new(Refusing));
        Ok(())
    }
}

#[tokio::test(start_paused = true)]
async fn an_open_breaker_degrades_the_optional_reload_component_without_failing_readiness() {
    let mut app = Application::builder()
        .env_prefix(None)
        .module(RefusingModule)
        .with_reload_options(quiet())
        .with_health_aggregator()
        .handle_signals(false)
        .build()
        .await
        .unwrap();
    app.start().await.unwrap();
    for level in 2..5 {
        let outcome = app
            .set_override("refuser.level", json!(level))
            .await
            .unwrap();
        assert_eq!(outcome.status, ReloadStatus::Failed);
    }
    let refused = app.set_override("refuser.level", json!(9)).await.unwrap();
    assert_eq!(refused.status, ReloadStatus::CircuitOpen);
    assert_eq!(refused.retry_after_ms, Some(2000));

    let health = app.health().unwrap().force_refresh().await;
    let breaker = health
        .reports
        .iter()
        .find(|r| r.module == "reload" && r.component == "circuit_breaker")
        .expect("reload component while open");
    assert_eq!(breaker.status, HealthStatus::Degraded);
    assert!(breaker.optional);
    assert_eq!(health.readiness, HealthStatus::Healthy);
    assert_eq!(health.health, HealthStatus::Degraded);
    app.stop().await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn stopping_inside_the_health_gate_window_reverts_nothing() {
    let journal = Journal::default();
    let mut app = gated_app(&journal, Duration::from_secs(2)).await;
    let mut events = app
        .events()
        .subscribe(EventFilter::prefix("com.modular.config.reload."));
    app.start().await.unwrap();
    let outcome = app.set_override("gated.level", json!(10)).await.unwrap();
    assert_eq!(outcome.status, ReloadStatus::Applied);
    // Stopping turns readiness unhealthy while the gate is still watching.
    app.stop().await.unwrap();
    tokio::time::sleep(Duration::from_secs(5)).await;
    let types: Vec<String> = events
        .drain()
        .iter()
        .map(|e| modular_core::events::AttributesReader::ty(e).to_owned())
        .collect();
    assert!(!types.iter().any(|t| t.ends_with(".reverted")), "{types:?}");
    assert_eq!(
        journal.calls().len(),
        1,
        "no revert reached the stopped module"
    );
}

/// The next event on `stream`, failing the test after 10 s (of paused time).
async fn next_event(
    stream: &mut modular_core::events::EventStream,
    what: &str,
) -> modular_core::events::Event {
    tokio::time::timeout(Duration::from_secs(10), stream.recv())
        .await
        .unwrap_or_else(|_| panic!("no {what} event"))
        .unwrap_or_else(|| panic!("the {what} stream ended"))
}

fn history_verdict(app: &Application, version: u64) -> Option<String> {
    app.reloader()
        .unwrap()
        .history()
        .into_iter()
        .find(|e| e.version == version)
        .and_then(|e| e.health_gate)
}

#[tokio::test(start_paused = true)]
async fn a_reload_during_the_gate_window_runs_at_once_and_supersedes_the_window() {
    let journal = Journal::default();
    let mut app = gated_app(&journal, Duration::ZERO).await;
    let mut passed = app
        .events()
        .subscribe(EventFilter::exact("com.modular.config.reload.gate.passed"));
    app.start().await.unwrap();
    let started = tokio::time::Instant::now();
    let first = app.set_override("gated.level", json!(10)).await.unwrap();
    let second = app.set_override("gated.level", json!(20)).await.unwrap();
    assert_eq!(first.status, ReloadStatus::Applied, "{first:?}");
    assert_eq!(second.status, ReloadStatus::Applied, "{second:?}");
    assert_eq!(first.health_gate.as_deref(), Some("watching"));
    assert!(
        started.elapsed() < Duration::from_millis(500),
        "the second reload waited for the first one's window: {:?}",
        started.elapsed()
    );
    assert_eq!(history_verdict(&app, 2).as_deref(), Some("superseded"));
    assert_eq!(history_verdict(&app, 3), None, "still watching");

    let event = next_event(&mut passed, "gate.passed").await;
    assert_eq!(event_data(&event).unwrap()["version"], json!(3));
    assert_eq!(history_verdict(&app, 3).as_deref(), Some("passed"));
    app.stop().await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn a_thousand_back_to_back_reloads_with_the_gate_on_never_wait_out_a_window() {
    let journal = Journal::default();
    let mut app = gated_app(&journal, Duration::ZERO).await;
    app.start().await.unwrap();
    let started = tokio::time::Instant::now();
    for i in 0..1000u32 {
        let outcome = app
            .set_override("gated.label", json!(format!("v{i}")))
            .await
            .unwrap();
        assert_eq!(outcome.status, ReloadStatus::Applied, "{outcome:?}");
    }
    // Paused time only moves when every task waits on a timer: a reload that waited out the
    // 3 s window would show here as at least 3 s per reload.
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(app.config().version(), 1001);
    app.stop().await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn a_revert_shows_in_the_admin_view_and_in_health_until_the_sources_change() {
    let journal = Journal::default();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("config.yaml");
    std::fs::write(&path, "gated:\n  level: 1\n").unwrap();
    let mut app = gated_app_on(&journal, Duration::ZERO, Some(&path)).await;
    let mut reverted = app
        .events()
        .subscribe(EventFilter::exact("com.modular.config.reload.reverted"));
    app.start().await.unwrap();

    std::fs::write(&path, "gated:\n  level: 80\n").unwrap();
    let outcome = app.reload().await.unwrap();
    assert_eq!(outcome.status, ReloadStatus::Applied, "{outcome:?}");
    next_event(&mut reverted, "reverted").await;

    let reloader = app.reloader().unwrap();
    let last = reloader.last_reverted().expect("the revert is recorded");
    assert_eq!((last.version, last.reverted_to), (2, 3));
    assert!(last.sources_differ, "the file still says 80");
    assert!(last.reason.contains("readiness"), "{}", last.reason);
    assert_eq!(history_verdict(&app, 2).as_deref(), Some("reverted"));
    let health = app.health().unwrap().force_refresh().await;
    let component = health
        .report("config", "reverted")
        .expect("a config:reverted component while the sources differ");
    assert_eq!(component.status, HealthStatus::Degraded);
    assert!(component.optional);
    assert!(
        component.message.contains("version 2"),
        "{}",
        component.message
    );
    assert_eq!(health.readiness, HealthStatus::Healthy);

    // The next change in the sources is tried again, and clears the mark.
    std::fs::write(&path, "gated:\n  level: 5\n").unwrap();
    let outcome = app.reload().await.unwrap();
    assert_eq!(outcome.status, ReloadStatus::Applied, "{outcome:?}");
    assert!(!reloader.last_reverted().unwrap().sources_differ);
    let health = app.health().unwrap().force_refresh().await;
    assert!(health.report("config", "reverted").is_none());
    app.stop().await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn a_reverted_override_is_withdrawn_with_its_version() {
    let journal = Journal::default();
    let mut app = gated_app(&journal, Duration::ZERO).await;
    let mut reverted = app
        .events()
        .subscribe(EventFilter::exact("com.modular.config.reload.reverted"));
    app.start().await.unwrap();
    let outcome = app.set_override("gated.level", json!(80)).await.unwrap();
    assert_eq!(outcome.status, ReloadStatus::Applied, "{outcome:?}");
    next_event(&mut reverted, "reverted").await;
    assert!(
        app.config().overrides().is_empty(),
        "{:?}",
        app.config().overrides()
    );
    let last = app.reloader().unwrap().last_reverted().unwrap();
    assert!(
        !last.sources_differ,
        "the sources match the running config again"
    );
    // A later reload finds nothing to do: the bad value is gone from every source.
    let again = app.reload().await.unwrap();
    assert_eq!(again.status, ReloadStatus::Noop, "{again:?}");
    app.stop().await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn a_committed_reload_makes_the_cached_health_answer_stale() {
    let journal = Journal::default();
    let mut app = gated_app_with(&journal, Duration::ZERO, None, false).await;
    app.start().await.unwrap();
    let health = app.health().unwrap().clone();
    assert_eq!(health.check().await.readiness, HealthStatus::Healthy);
    let outcome = app.set_override("gated.level", json!(80)).await.unwrap();
    assert_eq!(outcome.status, ReloadStatus::Applied, "{outcome:?}");
    // Time stands still, so the cached answer is within its TTL: only the commit can make it
    // stale.
    let after = health.check().await;
    assert_eq!(after.readiness, HealthStatus::Unhealthy);
    assert_eq!(after.config_version, 2);
    app.stop().await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn the_default_gate_window_passes_a_healthy_reload_after_exactly_3s() {
    let journal = Journal::default();
    let mut app = gated_app(&journal, Duration::ZERO).await;
    let mut passed = app
        .events()
        .subscribe(EventFilter::exact("com.modular.config.reload.gate.passed"));
    app.start().await.unwrap();
    let outcome = app.set_override("gated.level", json!(10)).await.unwrap();
    assert_eq!(outcome.status, ReloadStatus::Applied, "{outcome:?}");
    let committed = tokio::time::Instant::now();
    let event = next_event(&mut passed, "gate passed").await;
    // Paused time: the window's end is exact.
    assert_eq!(committed.elapsed(), Duration::from_secs(3));
    assert_eq!(event_data(&event).unwrap()["window_ms"], json!(3000));
    app.stop().await.unwrap();
}
