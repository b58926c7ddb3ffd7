//! The reload contract scenarios (tests/features/reload_contract.feature).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use cucumber::{World, given, then, when};
use modular_core::events::{Event, EventFilter, EventStream, event_data};
use modular_core::reload::{ReloadOrchestrator, ReloadTarget};
use modular_core::{ReloadOutcome, ReloadTrigger, Reloadable};
use serde_json::json;
use support::reload::{Behaviour, Journal, Recorder, quiet_options, store_with};

#[derive(World, Default)]
struct ReloadWorld {
    store: Option<Arc<modular_core::config::ConfigStore>>,
    journal: Journal,
    recorders: Vec<Arc<Recorder>>,
    orchestrator: Option<ReloadOrchestrator>,
    events: Option<EventStream>,
    seen: Vec<Event>,
    outcome: Option<ReloadOutcome>,
    outcomes: Vec<ReloadOutcome>,
    next_level: u32,
    /// A multi-thread runtime the orchestrator and the callers run on, when a scenario asks
    /// for one (the scenarios otherwise share the paused current-thread runtime of `main`).
    threads: Threads,
}

/// Owns a runtime and shuts it down without blocking (the world is dropped inside `main`'s
/// runtime, where a blocking drop would panic).
#[derive(Default)]
struct Threads(Option<tokio::runtime::Runtime>);

impl Drop for Threads {
    fn drop(&mut self) {
        if let Some(runtime) = self.0.take() {
            runtime.shutdown_background();
        }
    }
}

impl std::fmt::Debug for ReloadWorld {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReloadWorld")
            .field("outcome", &self.outcome)
            .finish()
    }
}

fn names(list: &str) -> Vec<String> {
    list.split(',')
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty())
        .collect()
}

impl ReloadWorld {
    fn setup(&mut self, modules: &str, delay: Duration) {
        let recorders = names(modules)
            .iter()
            .map(|n| Recorder::with_delay(n, &self.journal, delay))
            .collect();
        self.setup_with(recorders);
    }

    fn setup_with(&mut self, recorders: Vec<Arc<Recorder>>) {
        let names: Vec<String> = recorders.iter().map(|r| r.name.clone()).collect();
        let refs: Vec<&str> = names.iter().map(String::as_str).collect();
        let store = store_with(&refs);
        self.recorders = recorders;
        let bus = modular_core::events::EventBus::new();
        self.events = Some(bus.subscribe(EventFilter::prefix("com.modular.config.reload.")));
        let targets = self
            .recorders
            .iter()
            .map(|r| ReloadTarget {
                module: r.name.clone(),
                reloadable: Some(r.clone() as Arc<dyn Reloadable>),
            })
            .collect();
        // The worker is spawned on the multi-thread runtime when there is one.
        let _entered = self.threads.0.as_ref().map(|rt| rt.enter());
        self.orchestrator = Some(ReloadOrchestrator::new(
            store.clone(),
            targets,
            bus,
            None,
            quiet_options(),
        ));
        self.store = Some(store);
        self.next_level = 10;
    }

    fn recorder(&self, name: &str) -> &Arc<Recorder> {
        self.recorders
            .iter()
            .find(|r| r.name == name)
            .expect("module exists")
    }

    fn set_levels(&mut self, modules: &[String], level: u32) {
        let store = self.store.as_ref().expect("store");
        let mut overrides = store.overrides();
        for m in modules {
            overrides.insert(format!("{m}.level"), json!(level));
        }
        store.set_overrides(overrides);
    }

    fn collect_events(&mut self) {
        if let Some(events) = self.events.as_mut() {
            self.seen.extend(events.drain());
        }
    }

    fn event(&mut self, ty: &str) -> Option<Event> {
        self.collect_events();
        self.seen
            .iter()
            .find(|e| cloudevents::AttributesReader::ty(*e) == ty)
            .cloned()
    }
}

#[given(expr = "modules {string} that reload successfully")]
fn modules_succeed(w: &mut ReloadWorld, modules: String) {
    w.setup(&modules, Duration::ZERO);
}

#[given(expr = "slow modules {string} that take {int} ms to reload")]
fn slow_modules(w: &mut ReloadWorld, modules: String, ms: u64) {
    w.setup(&modules, Duration::from_millis(ms));
}

#[given(expr = "{int} modules that yield while preparing, on a multi-thread runtime")]
fn yielding_modules_on_threads(w: &mut ReloadWorld, count: usize) {
    w.threads.0 = Some(
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(4)
            .enable_all()
            .build()
            .expect("multi-thread runtime"),
    );
    let recorders = (0..count)
        .map(|i| Recorder::yielding(&format!("m{i}"), &w.journal, 8))
        .collect();
    w.setup_with(recorders);
}

#[given(expr = "module {string} cannot reload now")]
fn cannot_reload(w: &mut ReloadWorld, module: String) {
    w.recorder(&module).set(Behaviour::Busy);
}

#[given(expr = "module {string} fails to reload")]
fn fails(w: &mut ReloadWorld, module: String) {
    w.recorder(&module).set(Behaviour::Fail);
}

#[given(expr = "module {string} applies in place")]
fn in_place(w: &mut ReloadWorld, module: String) {
    w.recorder(&module).set(Behaviour::InPlace);
}

#[given(expr = "module {string} reloads successfully again")]
fn succeeds_again(w: &mut ReloadWorld, module: String) {
    w.recorder(&module).set(Behaviour::Succeed);
}

#[when(expr = "the level of {string} changes to {int}")]
fn level_changes(w: &mut ReloadWorld, modules: String, level: u32) {
    let modules = names(&modules);
    w.set_levels(&modules, level);
}

#[when("a reload is requested")]
async fn reload_requested(w: &mut ReloadWorld) {
    let outcome = w
        .orchestrator
        .as_ref()
        .expect("orchestrator")
        .reload(ReloadTrigger::Programmatic)
        .await;
    w.outcome = Some(outcome);
}

#[when(expr = "{int} reloads with new levels fail")]
async fn failing_reloads(w: &mut ReloadWorld, count: usize) {
    let modules: Vec<String> = w.recorders.iter().map(|r| r.name.clone()).collect();
    for _ in 0..count {
        w.next_level += 1;
        let level = w.next_level;
        w.set_levels(&modules, level);
        let outcome = w
            .orchestrator
            .as_ref()
            .expect("orchestrator")
            .reload(ReloadTrigger::Programmatic)
            .await;
        assert_eq!(outcome.status.as_str(), "failed", "{outcome:?}");
    }
}

#[when("the backoff has passed")]
async fn backoff_passes(w: &mut ReloadWorld) {
    let retry = w
        .outcome
        .as_ref()
        .and_then(|o| o.retry_after_ms)
        .expect("retry_after");
    tokio::time::sleep(Duration::from_millis(retry)).await;
}

#[when(expr = "{int} reloads are requested concurrently with new levels")]
async fn concurrent(w: &mut ReloadWorld, count: u32) {
    let modules: Vec<String> = w.recorders.iter().map(|r| r.name.clone()).collect();
    let mut handles = Vec::new();
    for i in 0..count {
        w.set_levels(&modules, 20 + i);
        let o = w.orchestrator.clone().expect("orchestrator");
        let call = async move { o.reload(ReloadTrigger::Programmatic).await };
        handles.push(match &w.threads.0 {
            Some(runtime) => runtime.spawn(call),
            None => tokio::spawn(call),
        });
    }
    for h in handles {
        w.outcomes.push(h.await.expect("reload task"));
    }
}

#[then(expr = "the reload status is {string}")]
fn status_is(w: &mut ReloadWorld, status: String) {
    let outcome = w.outcome.as_ref().expect("outcome");
    assert_eq!(outcome.status.as_str(), status, "{outcome:?}");
}

#[then(expr = "the reload status is {string} with a retry_after")]
fn status_with_retry(w: &mut ReloadWorld, status: String) {
    let outcome = w.outcome.as_ref().expect("outcome");
    assert_eq!(outcome.status.as_str(), status, "{outcome:?}");
    let retry = outcome.retry_after_ms.expect("retry_after_ms");
    assert!(retry > 0 && retry <= 2_000, "{retry}");
    assert!(
        w.journal.calls().iter().all(|c| c.level != Some(50)),
        "no module was called"
    );
}

#[then(expr = "modules {string} each received {int} change to {string}")]
fn each_received(w: &mut ReloadWorld, modules: String, count: usize, field: String) {
    let calls = w.journal.calls();
    for m in names(&modules) {
        let mine: Vec<_> = calls
            .iter()
            .filter(|c| c.module == m && !c.rollback)
            .collect();
        assert_eq!(mine.len(), 1, "{m}: {calls:?}");
        assert_eq!(mine[0].changes.len(), count, "{m}");
        assert_eq!(mine[0].changes[0].field_path, field.as_str());
        assert_eq!(
            mine[0].changes[0].section,
            m.as_str(),
            "only its own section"
        );
    }
}

#[then(expr = "module {string} received no call")]
fn no_call(w: &mut ReloadWorld, module: String) {
    assert!(
        w.journal.calls().iter().all(|c| c.module != module),
        "{:?}",
        w.journal.modules()
    );
}

#[then(expr = "the outcome skipped {string}")]
fn skipped(w: &mut ReloadWorld, module: String) {
    assert_eq!(w.outcome.as_ref().expect("outcome").skipped, vec![module]);
}

#[then(expr = "module {string} was rolled back with exactly the inverse changes")]
fn rolled_back(w: &mut ReloadWorld, module: String) {
    let calls = w.journal.calls();
    let applied = calls
        .iter()
        .find(|c| c.module == module && !c.rollback)
        .expect("applied");
    let undone = calls
        .iter()
        .find(|c| c.module == module && c.rollback)
        .expect("rolled back");
    let inverse: Vec<_> = applied.changes.iter().rev().map(|c| c.inverse()).collect();
    assert_eq!(undone.changes, inverse);
    assert_eq!(
        w.outcome.as_ref().expect("outcome").rolled_back,
        vec![module]
    );
}

#[then(expr = "module {string} was aborted and never committed")]
fn aborted(w: &mut ReloadWorld, module: String) {
    let outcome = w.outcome.as_ref().expect("outcome");
    assert_eq!(outcome.aborted, vec![module.clone()], "{outcome:?}");
    assert_eq!(w.journal.phases(), vec![(module.clone(), "abort")]);
    assert_eq!(
        w.recorder(&module).live(),
        (1, 1),
        "the live resource is untouched"
    );
}

#[then("no module was rolled back")]
fn none_rolled_back(w: &mut ReloadWorld) {
    let outcome = w.outcome.as_ref().expect("outcome");
    assert!(outcome.rolled_back.is_empty(), "{outcome:?}");
    assert!(outcome.rollback_errors.is_empty(), "{outcome:?}");
    assert!(!w.journal.any_undo(), "{:?}", w.journal.modules());
}

#[then("the running config version is unchanged")]
fn version_unchanged(w: &mut ReloadWorld) {
    assert_eq!(w.store.as_ref().expect("store").version(), 1);
}

#[then(expr = "a {string} event names modules {string}")]
fn event_names_modules(w: &mut ReloadWorld, ty: String, modules: String) {
    let event = w.event(&ty).unwrap_or_else(|| panic!("no {ty} event"));
    let data = event_data(&event).expect("data");
    assert_eq!(data["reloaded"], json!(names(&modules)));
}

#[then(expr = "a {string} event names failed module {string}")]
fn event_names_failed(w: &mut ReloadWorld, ty: String, module: String) {
    let event = w.event(&ty).unwrap_or_else(|| panic!("no {ty} event"));
    assert_eq!(
        event_data(&event).expect("data")["failed_module"],
        json!(module)
    );
}

#[then(expr = "a {string} event was emitted")]
fn event_emitted(w: &mut ReloadWorld, ty: String) {
    assert!(
        w.event(&ty).is_some(),
        "no {ty} event in {:?}",
        w.seen
            .iter()
            .map(|e| cloudevents::AttributesReader::ty(e).to_owned())
            .collect::<Vec<_>>()
    );
}

#[then(expr = "all {int} requests received an outcome")]
fn all_outcomes(w: &mut ReloadWorld, count: usize) {
    assert_eq!(w.outcomes.len(), count);
    assert!(
        w.outcomes
            .iter()
            .all(|o| matches!(o.status.as_str(), "applied" | "noop")),
        "{:?}",
        w.outcomes
    );
}

#[then("reload calls never overlapped")]
fn never_overlapped(w: &mut ReloadWorld) {
    assert!(!w.journal.calls().is_empty(), "no module was called");
    assert_eq!(
        w.journal.max_running.load(Ordering::SeqCst),
        1,
        "two prepares ran at once"
    );
}

#[then(expr = "at most {int} reloads ran")]
fn at_most(w: &mut ReloadWorld, max: usize) {
    let ran = w.journal.calls().len();
    assert!(ran >= 1 && ran <= max, "{ran} reloads ran");
}

fn main() {
    // Paused time: the breaker's backoff and slow modules advance instantly and exactly.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .start_paused(true)
        .build()
        .expect("runtime");
    runtime.block_on(
        ReloadWorld::cucumber()
            .max_concurrent_scenarios(1)
            .fail_on_skipped()
            .run_and_exit(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/tests/features/reload_contract.feature"
            )),
    );
}
