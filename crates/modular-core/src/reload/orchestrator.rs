//! The reload worker: one reload at a time, requests coalesced, the nine pipeline steps.

use std::collections::{BTreeMap, HashMap};
use std::panic::AssertUnwindSafe;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::FutureExt as _;
use serde_json::{Value, json};
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::breaker::{Admission, BreakerState, CircuitBreaker};
use super::history::{History, HistoryEntry};
use super::outcome::{ModuleFailure, ReloadOutcome, ReloadStatus};
use super::{ReloadContext, ReloadTrigger, Reloadable};
use crate::config::{
    AnySection, ConfigChange, ConfigDiff, ConfigStore, SectionBinding, TextFormat, ValidationErrors,
};
use crate::events::{EventBus, types};
use crate::health::{HealthAggregator, HealthStatus};
use crate::util::{format_duration, millis_f64, panic_message};

/// What to do with changes to non-dynamic fields.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StaticPolicy {
    /// Refuse the whole reload and report the static paths (default).
    #[default]
    Reject,
    /// Apply the dynamic changes; record the static ones as pending restart.
    ApplyDynamic,
}

/// Reload settings.
#[derive(Clone, Debug)]
pub struct ReloadOptions {
    /// Static-change policy.
    pub static_policy: StaticPolicy,
    /// Versions kept in history.
    pub history: usize,
    /// Trailing debounce of file events.
    pub debounce: Duration,
    /// Watch config files for changes.
    pub watch_files: bool,
    /// Re-check readiness after a reload and revert it when readiness got worse.
    pub health_gate: bool,
    /// How long after a reload the gate watches readiness.
    pub health_gate_window: Duration,
    /// How often the gate re-checks within its window.
    pub health_gate_interval: Duration,
    /// Consecutive failures that open the breaker.
    pub breaker_threshold: u32,
    /// The first backoff once open.
    pub breaker_backoff: Duration,
    /// The longest backoff.
    pub breaker_max_backoff: Duration,
}

impl Default for ReloadOptions {
    fn default() -> Self {
        Self {
            static_policy: StaticPolicy::Reject,
            history: 20,
            debounce: Duration::from_millis(250),
            watch_files: true,
            health_gate: true,
            health_gate_window: Duration::from_secs(3),
            health_gate_interval: Duration::from_millis(500),
            breaker_threshold: 3,
            breaker_backoff: Duration::from_secs(2),
            breaker_max_backoff: Duration::from_secs(120),
        }
    }
}

/// A module as the orchestrator sees it. Targets are given in dependency order.
#[derive(Clone)]
pub struct ReloadTarget {
    /// The module (and section) name.
    pub module: String,
    /// Its reload hook; `None` means its config handle is swapped at commit and nothing else.
    pub reloadable: Option<Arc<dyn Reloadable>>,
}

impl std::fmt::Debug for ReloadTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReloadTarget")
            .field("module", &self.module)
            .field("reloadable", &self.reloadable.is_some())
            .finish()
    }
}

enum Request {
    Reload {
        trigger: ReloadTrigger,
        reply: oneshot::Sender<ReloadOutcome>,
    },
    Plan {
        candidate: Option<(TextFormat, String)>,
        reply: oneshot::Sender<ReloadOutcome>,
    },
    Rollback {
        version: u64,
        reply: oneshot::Sender<ReloadOutcome>,
    },
    Override {
        set: BTreeMap<String, Option<Value>>,
        reply: oneshot::Sender<ReloadOutcome>,
    },
}

struct Shared {
    store: Arc<ConfigStore>,
    events: EventBus,
    health: Option<Arc<HealthAggregator>>,
    history: Mutex<History>,
    last_rejected: Mutex<Option<ReloadOutcome>>,
    pending_restart: Mutex<BTreeMap<String, Value>>,
    breaker: Mutex<CircuitBreaker>,
    cancel: CancellationToken,
    tasks: TaskTracker,
    worker: Mutex<Option<tokio::task::JoinHandle<()>>>,
}

/// Runs reloads one at a time. Cheap to clone; clones talk to the same worker.
#[derive(Clone)]
pub struct ReloadOrchestrator {
    tx: mpsc::UnboundedSender<Request>,
    shared: Arc<Shared>,
}

impl std::fmt::Debug for ReloadOrchestrator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReloadOrchestrator")
            .field("version", &self.shared.store.version())
            .finish()
    }
}

enum CandidateSource {
    Sources(Option<(TextFormat, String)>),
    Sections(Vec<(String, AnySection)>),
}

struct Gate {
    before: HealthStatus,
    previous_version: u64,
    version: u64,
}

impl ReloadOrchestrator {
    /// Starts the worker (on the current tokio runtime) for `targets`, given in dependency
    /// order. The health aggregator, when given, receives the `reload` and `config` components
    /// and serves the health gate.
    pub fn new(
        store: Arc<ConfigStore>,
        targets: Vec<ReloadTarget>,
        events: EventBus,
        health: Option<Arc<HealthAggregator>>,
        options: ReloadOptions,
    ) -> Self {
        Self::with_tasks(
            store,
            targets,
            events,
            health,
            options,
            CancellationToken::new(),
            TaskTracker::new(),
        )
    }

    /// Like [`ReloadOrchestrator::new`], with the worker owned by `tasks` and stopped by `cancel`.
    pub fn with_tasks(
        store: Arc<ConfigStore>,
        targets: Vec<ReloadTarget>,
        events: EventBus,
        health: Option<Arc<HealthAggregator>>,
        options: ReloadOptions,
        cancel: CancellationToken,
        tasks: TaskTracker,
    ) -> Self {
        let mut history = History::new(options.history);
        history.push(HistoryEntry {
            version: store.version(),
            trigger: None,
            time: chrono::Utc::now(),
            diff_id: None,
            changes: Vec::new(),
            outcome: "initial".to_owned(),
            sections: current_sections(&store),
        });
        let shared = Arc::new(Shared {
            breaker: Mutex::new(CircuitBreaker::new(
                options.breaker_threshold,
                options.breaker_backoff,
                options.breaker_max_backoff,
            )),
            store,
            events,
            health,
            history: Mutex::new(history),
            last_rejected: Mutex::new(None),
            pending_restart: Mutex::new(BTreeMap::new()),
            cancel,
            tasks,
            worker: Mutex::new(None),
        });
        let (tx, rx) = mpsc::unbounded_channel();
        let worker = Worker {
            shared: Arc::clone(&shared),
            targets,
            options,
            pending_skipped: HashMap::new(),
        };
        let handle = shared.tasks.spawn(worker.run(rx));
        *lock(&shared.worker) = Some(handle);
        Self { tx, shared }
    }

    async fn ask(
        &self,
        make: impl FnOnce(oneshot::Sender<ReloadOutcome>) -> Request,
        trigger: ReloadTrigger,
    ) -> ReloadOutcome {
        let (reply, rx) = oneshot::channel();
        if self.tx.send(make(reply)).is_ok()
            && let Ok(outcome) = rx.await
        {
            return outcome;
        }
        let mut outcome =
            ReloadOutcome::new(ReloadStatus::Failed, trigger, self.shared.store.version());
        outcome.error = Some("reload orchestrator is stopped".to_owned());
        outcome
    }

    /// Runs a reload (or joins the one about to run) and returns the outcome that covered it.
    pub async fn reload(&self, trigger: ReloadTrigger) -> ReloadOutcome {
        let t = trigger.clone();
        self.ask(|reply| Request::Reload { trigger, reply }, t)
            .await
    }

    /// A dry run: the outcome a reload would have now, with its plan; applies nothing.
    /// `candidate` is configuration text layered over the files (as `POST /admin/reload/plan`
    /// sends it).
    pub async fn plan(&self, candidate: Option<(TextFormat, String)>) -> ReloadOutcome {
        self.ask(
            |reply| Request::Plan { candidate, reply },
            ReloadTrigger::Programmatic,
        )
        .await
    }

    /// Returns to the configuration of an earlier version through the pipeline.
    pub async fn rollback(&self, version: u64) -> ReloadOutcome {
        self.ask(
            |reply| Request::Rollback { version, reply },
            ReloadTrigger::Rollback,
        )
        .await
    }

    /// Sets a runtime override (`cache.default_ttl` = `"5s"`) and reloads; if the reload is
    /// not applied the override is withdrawn.
    pub async fn set_override(&self, path: &str, value: Value) -> ReloadOutcome {
        let set = BTreeMap::from([(path.to_owned(), Some(value))]);
        self.ask(
            |reply| Request::Override { set, reply },
            ReloadTrigger::Override,
        )
        .await
    }

    /// Removes a runtime override and reloads.
    pub async fn clear_override(&self, path: &str) -> ReloadOutcome {
        let set = BTreeMap::from([(path.to_owned(), None)]);
        self.ask(
            |reply| Request::Override { set, reply },
            ReloadTrigger::Override,
        )
        .await
    }

    /// Committed versions, oldest first.
    pub fn history(&self) -> Vec<HistoryEntry> {
        lock(&self.shared.history).entries()
    }

    /// The last rejected reload, if any.
    pub fn last_rejected(&self) -> Option<ReloadOutcome> {
        lock(&self.shared.last_rejected).clone()
    }

    /// Full paths of static changes waiting for a restart.
    pub fn pending_restart(&self) -> Vec<String> {
        lock(&self.shared.pending_restart).keys().cloned().collect()
    }

    /// The circuit breaker's state.
    pub fn breaker_state(&self) -> BreakerState {
        lock(&self.shared.breaker).state()
    }

    /// The running config version.
    pub fn version(&self) -> u64 {
        self.shared.store.version()
    }

    /// The configuration store.
    pub fn store(&self) -> &Arc<ConfigStore> {
        &self.shared.store
    }

    /// Stops the worker and waits for it (a reload in flight stops before its next module
    /// hook, rolling back what it applied).
    pub async fn shutdown(&self) {
        self.shared.cancel.cancel();
        let handle = lock(&self.shared.worker).take();
        if let Some(handle) = handle {
            let _ = handle.await;
        }
    }

    /// Like [`ReloadOrchestrator::shutdown`], giving up after `timeout`. Returns whether the
    /// worker stopped in time.
    pub async fn shutdown_within(&self, timeout: std::time::Duration) -> bool {
        self.shared.cancel.cancel();
        let handle = lock(&self.shared.worker).take();
        match handle {
            Some(handle) => tokio::time::timeout(timeout, handle).await.is_ok(),
            None => true,
        }
    }

    pub(crate) fn cancellation(&self) -> &CancellationToken {
        &self.shared.cancel
    }

    pub(crate) fn tasks(&self) -> &TaskTracker {
        &self.shared.tasks
    }
}

fn current_sections(store: &ConfigStore) -> Vec<(String, AnySection)> {
    store
        .sections()
        .iter()
        .map(|s| (s.name().to_owned(), s.current()))
        .collect()
}

struct Worker {
    shared: Arc<Shared>,
    targets: Vec<ReloadTarget>,
    options: ReloadOptions,
    // Changes of modules that were skipped (`can_reload() == false`), retried next reload.
    pending_skipped: HashMap<String, Vec<ConfigChange>>,
}

impl Worker {
    async fn run(mut self, mut rx: mpsc::UnboundedReceiver<Request>) {
        loop {
            let first = tokio::select! {
                _ = self.shared.cancel.cancelled() => break,
                request = rx.recv() => match request {
                    Some(r) => r,
                    None => break,
                },
            };
            // Everything that queued while the previous reload ran is handled now, in order;
            // consecutive reload requests share one reload.
            let mut batch = vec![first];
            while let Ok(r) = rx.try_recv() {
                batch.push(r);
            }
            let mut batch = batch.into_iter().peekable();
            while let Some(request) = batch.next() {
                match request {
                    Request::Reload { trigger, reply } => {
                        let mut replies = vec![reply];
                        while let Some(Request::Reload { .. }) = batch.peek() {
                            if let Some(Request::Reload { reply, .. }) = batch.next() {
                                replies.push(reply);
                            }
                        }
                        let (outcome, gate) = self
                            .pipeline(trigger, CandidateSource::Sources(None), false)
                            .await;
                        for reply in replies {
                            let _ = reply.send(outcome.clone());
                        }
                        if let Some(gate) = gate {
                            self.health_gate(gate).await;
                        }
                    }
                    Request::Plan { candidate, reply } => {
                        let (outcome, _) = self
                            .pipeline(
                                ReloadTrigger::Programmatic,
                                CandidateSource::Sources(candidate),
                                true,
                            )
                            .await;
                        let _ = reply.send(outcome);
                    }
                    Request::Rollback { version, reply } => {
                        let entry = lock(&self.shared.history)
                            .get(version)
                            .map(|e| e.sections.clone());
                        let (outcome, gate) = match entry {
                            Some(sections) => {
                                self.pipeline(
                                    ReloadTrigger::Rollback,
                                    CandidateSource::Sections(sections),
                                    false,
                                )
                                .await
                            }
                            None => {
                                let mut o = ReloadOutcome::new(
                                    ReloadStatus::Rejected,
                                    ReloadTrigger::Rollback,
                                    self.shared.store.version(),
                                );
                                o.error = Some(format!("version {version} is not in the history"));
                                (o, None)
                            }
                        };
                        let _ = reply.send(outcome);
                        if let Some(gate) = gate {
                            self.health_gate(gate).await;
                        }
                    }
                    Request::Override { set, reply } => {
                        let previous = self.shared.store.overrides();
                        let mut next = previous.clone();
                        for (path, value) in set {
                            match value {
                                Some(v) => next.insert(path, v),
                                None => next.remove(&path),
                            };
                        }
                        self.shared.store.set_overrides(next);
                        let (outcome, gate) = self
                            .pipeline(
                                ReloadTrigger::Override,
                                CandidateSource::Sources(None),
                                false,
                            )
                            .await;
                        if !matches!(outcome.status, ReloadStatus::Applied | ReloadStatus::Noop) {
                            // The running config stays as it was, and so do the overrides.
                            self.shared.store.set_overrides(previous);
                        }
                        let _ = reply.send(outcome);
                        if let Some(gate) = gate {
                            self.health_gate(gate).await;
                        }
                    }
                }
            }
        }
    }

    fn emit(&self, ty: &str, data: Value) {
        self.shared.events.emit(ty, types::RELOAD_SOURCE, data);
    }

    fn reject(&self, mut outcome: ReloadOutcome, started: Instant, dry_run: bool) -> ReloadOutcome {
        outcome.duration_ms = millis_f64(started.elapsed());
        if !dry_run {
            tracing::warn!(
                trigger = outcome.trigger.as_str(),
                error = outcome.error.as_deref().unwrap_or_default(),
                errors = outcome.errors.len(),
                "config reload rejected; running config unchanged"
            );
            for error in &outcome.errors {
                tracing::warn!(path = %error.path, source = %error.source, "{}", error.message);
            }
            self.emit(
                types::RELOAD_REJECTED,
                json!({
                    "trigger": outcome.trigger.as_str(),
                    "errors": outcome.errors,
                    "static_changes": outcome.static_changes,
                    "error": outcome.error,
                }),
            );
            *lock(&self.shared.last_rejected) = Some(outcome.clone());
        }
        outcome
    }

    /// Runs the pipeline with panics caught: a panic anywhere in it (a validation hook, a
    /// derived diff, a module's `can_reload`) fails this reload, never the worker.
    async fn pipeline(
        &mut self,
        trigger: ReloadTrigger,
        source: CandidateSource,
        dry_run: bool,
    ) -> (ReloadOutcome, Option<Gate>) {
        let shown = trigger.clone();
        let version = self.shared.store.version();
        match AssertUnwindSafe(self.pipeline_inner(trigger, source, dry_run))
            .catch_unwind()
            .await
        {
            Ok(result) => result,
            Err(panic) => {
                let message = panic_message(&*panic);
                tracing::error!(%message, "reload pipeline panicked; running config unchanged");
                let mut outcome = ReloadOutcome::new(ReloadStatus::Failed, shown, version);
                outcome.error = Some(format!("reload pipeline panicked: {message}"));
                outcome.dry_run = dry_run;
                (outcome, None)
            }
        }
    }

    #[tracing::instrument(name = "reload", skip_all, fields(trigger = trigger.as_str(), dry_run))]
    async fn pipeline_inner(
        &mut self,
        trigger: ReloadTrigger,
        source: CandidateSource,
        dry_run: bool,
    ) -> (ReloadOutcome, Option<Gate>) {
        let started = Instant::now();
        let store = Arc::clone(&self.shared.store);
        let running_version = store.version();
        let mut outcome =
            ReloadOutcome::new(ReloadStatus::Applied, trigger.clone(), running_version);
        outcome.dry_run = dry_run;

        // Circuit breaker (dry runs are never refused).
        let mut trial = false;
        if !dry_run {
            let (was_open, admission, failures) = {
                let mut breaker = lock(&self.shared.breaker);
                let was_open = matches!(breaker.state(), BreakerState::Open { .. });
                let admission = breaker.admit(started);
                (was_open, admission, breaker.failures())
            };
            match admission {
                Admission::Closed => {}
                Admission::Trial => {
                    trial = true;
                    // Announced once, on the open -> half-open transition.
                    if was_open {
                        self.emit(
                            types::CIRCUIT_HALF_OPENED,
                            json!({ "failures": failures, "retry_after_ms": 0 }),
                        );
                    }
                }
                Admission::Refused(retry_after) => {
                    outcome.status = ReloadStatus::CircuitOpen;
                    outcome.retry_after_ms = Some(retry_after.as_millis() as u64);
                    outcome.error = Some(format!(
                        "reload circuit breaker is open; retry after {}",
                        format_duration(retry_after)
                    ));
                    outcome.duration_ms = millis_f64(started.elapsed());
                    return (outcome, None);
                }
            }
        }

        // 1-2. Load and validate.
        let candidate: Vec<(Arc<dyn SectionBinding>, AnySection)> = match source {
            CandidateSource::Sources(extra) => {
                let extra_ref = extra.as_ref().map(|(f, t)| (*f, t.as_str()));
                match store.load_candidate(extra_ref) {
                    Ok(c) => c.sections,
                    Err(ValidationErrors(errors)) => {
                        outcome.status = ReloadStatus::Rejected;
                        outcome.error = Some(match errors.len() {
                            1 => "invalid configuration (1 error)".to_owned(),
                            n => format!("invalid configuration ({n} errors)"),
                        });
                        outcome.errors = errors;
                        return (self.reject(outcome, started, dry_run), None);
                    }
                }
            }
            CandidateSource::Sections(sections) => {
                let by_name: HashMap<String, AnySection> = sections.into_iter().collect();
                store
                    .sections()
                    .into_iter()
                    .map(|binding| {
                        let value = by_name
                            .get(binding.name())
                            .cloned()
                            .unwrap_or_else(|| binding.current());
                        (binding, value)
                    })
                    .collect()
            }
        };

        // 3. Diff, section by section, plus changes still pending from skipped modules.
        let mut changes: Vec<ConfigChange> = Vec::new();
        let mut fresh_changes = false;
        for (binding, new) in &candidate {
            let mut section_changes = binding.diff(&binding.current(), new);
            fresh_changes |= !section_changes.is_empty();
            if let Some(owner) = binding.owner()
                && let Some(pending) = self.pending_skipped.get(owner)
            {
                section_changes = merge_pending(pending, section_changes);
            }
            changes.extend(section_changes);
        }
        // Changes pending only for modules that still cannot reload are no reason to commit a
        // new version; they wait for the next reload.
        let only_still_skipped = !fresh_changes
            && self.targets.iter().all(|t| {
                !self.pending_skipped.contains_key(&t.module)
                    || t.reloadable
                        .as_ref()
                        .is_some_and(|r| !guarded_can_reload(r))
            });
        let diff = ConfigDiff::new(changes);
        outcome.diff_id = Some(diff.diff_id);
        outcome.changes = diff.changes.clone();
        if !diff.has_changes() || only_still_skipped {
            outcome.status = ReloadStatus::Noop;
            outcome.changes.clear();
            if trial {
                // The trial found nothing to apply (the bad change was reverted at the source):
                // nothing is failing any more.
                self.close_breaker();
            }
            outcome.duration_ms = millis_f64(started.elapsed());
            if !dry_run {
                tracing::info!(
                    version = running_version,
                    trigger = trigger.as_str(),
                    "config reload: no changes"
                );
                self.emit(
                    types::RELOAD_NOOP,
                    json!({ "trigger": trigger.as_str(), "version": running_version }),
                );
            }
            return (outcome, None);
        }

        // 4. Classify.
        let static_paths: Vec<String> = diff
            .static_changes()
            .iter()
            .map(|c| c.full_path())
            .collect();
        outcome.static_changes = static_paths.clone();
        if !static_paths.is_empty() && self.options.static_policy == StaticPolicy::Reject {
            outcome.status = ReloadStatus::Rejected;
            outcome.error = Some(format!("restart required: {}", static_paths.join(", ")));
            return (self.reject(outcome, started, dry_run), None);
        }

        // 5. Plan: modules whose section has dynamic changes, in dependency order.
        let mut plan: Vec<(ReloadTarget, Vec<ConfigChange>, AnySection, AnySection)> = Vec::new();
        for target in &self.targets {
            let module_changes: Vec<ConfigChange> = diff
                .changes
                .iter()
                .filter(|c| c.dynamic && c.section == target.module.as_str())
                .cloned()
                .collect();
            if module_changes.is_empty() {
                continue;
            }
            let Some((binding, new)) = candidate.iter().find(|(b, _)| b.name() == target.module)
            else {
                continue;
            };
            plan.push((
                target.clone(),
                module_changes,
                binding.current(),
                Arc::clone(new),
            ));
        }
        outcome.plan = plan
            .iter()
            .filter(|(t, ..)| t.reloadable.is_some())
            .map(|(t, ..)| t.module.clone())
            .collect();
        if dry_run {
            outcome.skipped = plan
                .iter()
                .filter(|(t, ..)| {
                    t.reloadable
                        .as_ref()
                        .is_some_and(|r| !guarded_can_reload(r))
                })
                .map(|(t, ..)| t.module.clone())
                .collect();
            outcome.pending_restart = static_paths;
            outcome.version = running_version + 1;
            outcome.duration_ms = millis_f64(started.elapsed());
            return (outcome, None);
        }

        let next_version = running_version + 1;
        self.emit(
            types::RELOAD_STARTED,
            json!({
                "trigger": trigger.as_str(),
                "diff_id": diff.diff_id,
                "summary": diff.summary(),
                "version": next_version,
            }),
        );
        let before = match (
            &self.shared.health,
            self.options.health_gate && trigger != ReloadTrigger::HealthGate,
        ) {
            (Some(health), true) => Some(health.force_refresh().await.readiness),
            _ => None,
        };

        // 6. Apply, in order.
        let mut applied: Vec<(ReloadTarget, Vec<ConfigChange>, AnySection)> = Vec::new();
        let mut skipped_now: HashMap<String, Vec<ConfigChange>> = HashMap::new();
        for (target, module_changes, old, new) in plan {
            let Some(reloadable) = target.reloadable.clone() else {
                continue;
            };
            if !guarded_can_reload(&reloadable) {
                tracing::info!(module = %target.module, "module cannot reload now; changes stay pending");
                outcome.skipped.push(target.module.clone());
                skipped_now.insert(target.module.clone(), module_changes);
                continue;
            }
            let ctx = self.context(&target.module, &trigger, Some(new), next_version, false);
            let result = if self.shared.cancel.is_cancelled() {
                Err("the application is stopping".to_owned())
            } else {
                run_hook(&reloadable, &ctx, &module_changes).await
            };
            match result {
                Ok(()) => {
                    outcome.reloaded.push(target.module.clone());
                    applied.push((target, module_changes, old));
                }
                Err(error) => {
                    // 7. Roll back what was applied, in reverse order.
                    tracing::error!(module = %target.module, %error, "module reload failed; rolling back");
                    for (done, done_changes, old_section) in applied.iter().rev() {
                        let inverse: Vec<ConfigChange> = done_changes
                            .iter()
                            .rev()
                            .map(ConfigChange::inverse)
                            .collect();
                        let ctx = self.context(
                            &done.module,
                            &trigger,
                            Some(Arc::clone(old_section)),
                            running_version,
                            true,
                        );
                        let Some(hook) = &done.reloadable else {
                            continue;
                        };
                        match run_hook(hook, &ctx, &inverse).await {
                            Ok(()) => outcome.rolled_back.push(done.module.clone()),
                            Err(e) => {
                                tracing::error!(module = %done.module, error = %e, "rollback failed");
                                outcome.rollback_errors.push(ModuleFailure {
                                    module: done.module.clone(),
                                    error: e,
                                });
                            }
                        }
                    }
                    outcome.status = ReloadStatus::Failed;
                    outcome.failed_module = Some(target.module.clone());
                    outcome.error = Some(format!(
                        "module `{}` failed to reload: {error}",
                        target.module
                    ));
                    outcome.reloaded.clear();
                    outcome.duration_ms = millis_f64(started.elapsed());
                    self.emit(
                        types::RELOAD_FAILED,
                        json!({
                            "trigger": trigger.as_str(),
                            "diff_id": diff.diff_id,
                            "failed_module": target.module,
                            "error": outcome.error,
                            "rolled_back": outcome.rolled_back,
                            "rollback_errors": outcome.rollback_errors,
                        }),
                    );
                    self.record_failure(started);
                    return (outcome, None);
                }
            }
        }

        // 8. Commit.
        for (binding, new) in &candidate {
            if diff.changes.iter().any(|c| c.section == binding.name()) {
                binding.store(Arc::clone(new));
            }
        }
        let version = store.bump_version();
        outcome.version = version;
        for target in &outcome.reloaded {
            self.pending_skipped.remove(target);
        }
        for (module, pending) in skipped_now {
            self.pending_skipped.insert(module, pending);
        }
        let pending_restart = {
            let mut pending = lock(&self.shared.pending_restart);
            for change in diff.static_changes() {
                let path = change.full_path();
                match pending.get(&path) {
                    Some(original) if *original == change.new_value => {
                        pending.remove(&path);
                    }
                    Some(_) => {}
                    None => {
                        pending.insert(path, change.old_value.clone());
                    }
                }
            }
            pending.keys().cloned().collect::<Vec<_>>()
        };
        outcome.pending_restart = pending_restart.clone();
        lock(&self.shared.history).push(HistoryEntry {
            version,
            trigger: Some(trigger.clone()),
            time: chrono::Utc::now(),
            diff_id: Some(diff.diff_id),
            changes: diff.changes.clone(),
            outcome: if trigger == ReloadTrigger::HealthGate {
                "reverted".to_owned()
            } else {
                "applied".to_owned()
            },
            sections: current_sections(&store),
        });
        let was_open = lock(&self.shared.breaker).record_success();
        if let Some(health) = &self.shared.health {
            health.set_config_version(version);
            if was_open {
                health.clear_component("reload", "circuit_breaker");
            }
            if pending_restart.is_empty() {
                health.clear_component("config", "pending_restart");
            } else {
                health.set_component(
                    "config",
                    "pending_restart",
                    HealthStatus::Degraded,
                    format!("restart required to apply: {}", pending_restart.join(", ")),
                    true,
                );
            }
        }
        if was_open {
            self.emit(
                types::CIRCUIT_CLOSED,
                json!({ "failures": 0, "retry_after_ms": 0 }),
            );
        }
        outcome.duration_ms = millis_f64(started.elapsed());
        let paths: Vec<String> = diff.changes.iter().map(ConfigChange::full_path).collect();
        tracing::info!(
            version,
            trigger = trigger.as_str(),
            changed = %paths.join(", "),
            reloaded = %outcome.reloaded.join(", "),
            "config reloaded"
        );
        self.emit(
            types::RELOAD_COMPLETED,
            json!({
                "trigger": trigger.as_str(),
                "diff_id": diff.diff_id,
                "version": version,
                "reloaded": outcome.reloaded,
                "skipped": outcome.skipped,
                "duration_ms": outcome.duration_ms,
            }),
        );
        let gate = before.map(|before| Gate {
            before,
            previous_version: running_version,
            version,
        });
        (outcome, gate)
    }

    fn context(
        &self,
        module: &str,
        trigger: &ReloadTrigger,
        section: Option<AnySection>,
        version: u64,
        rollback: bool,
    ) -> ReloadContext {
        ReloadContext {
            module: Arc::from(module),
            trigger: trigger.clone(),
            section,
            version,
            rollback,
            cancel: self.shared.cancel.child_token(),
        }
    }

    /// Closes an open or half-open breaker (a trial found nothing failing).
    fn close_breaker(&self) {
        if lock(&self.shared.breaker).record_success() {
            if let Some(health) = &self.shared.health {
                health.clear_component("reload", "circuit_breaker");
            }
            self.emit(
                types::CIRCUIT_CLOSED,
                json!({ "failures": 0, "retry_after_ms": 0 }),
            );
        }
    }

    fn record_failure(&self, now: Instant) {
        let (opened, failures) = {
            let mut breaker = lock(&self.shared.breaker);
            (breaker.record_failure(now), breaker.failures())
        };
        if let Some(backoff) = opened {
            let retry_after_ms = backoff.as_millis() as u64;
            tracing::warn!(failures, retry_after_ms, "reload circuit breaker opened");
            self.emit(
                types::CIRCUIT_OPENED,
                json!({ "failures": failures, "retry_after_ms": retry_after_ms }),
            );
            if let Some(health) = &self.shared.health {
                health.set_component(
                    "reload",
                    "circuit_breaker",
                    HealthStatus::Degraded,
                    format!(
                        "{failures} consecutive reload failures; retry after {}",
                        format_duration(backoff)
                    ),
                    true,
                );
            }
        }
    }

    /// 9. Watches readiness for the gate window; reverts the reload if it got worse.
    async fn health_gate(&mut self, gate: Gate) {
        let Some(health) = self.shared.health.clone() else {
            return;
        };
        let deadline = Instant::now() + self.options.health_gate_window;
        loop {
            let now_health = health.force_refresh().await;
            // Shutting down turns readiness unhealthy on purpose; that is no regression.
            if self.shared.cancel.is_cancelled() || now_health.shutting_down {
                return;
            }
            if now_health.readiness > gate.before {
                let reason = format!(
                    "readiness went from {:?} to {:?} after version {}",
                    gate.before, now_health.readiness, gate.version
                )
                .to_lowercase();
                tracing::warn!(version = gate.version, %reason, "health gate: reverting reload");
                let sections = lock(&self.shared.history)
                    .get(gate.previous_version)
                    .map(|e| e.sections.clone());
                let Some(sections) = sections else { return };
                let (outcome, _) = Box::pin(self.pipeline(
                    ReloadTrigger::HealthGate,
                    CandidateSource::Sections(sections),
                    false,
                ))
                .await;
                if outcome.status == ReloadStatus::Applied {
                    self.emit(
                        types::RELOAD_REVERTED,
                        json!({
                            "from_version": gate.version,
                            "to_version": outcome.version,
                            "reason": reason,
                        }),
                    );
                }
                return;
            }
            let now = Instant::now();
            if now >= deadline {
                return;
            }
            tokio::select! {
                _ = self.shared.cancel.cancelled() => return,
                _ = tokio::time::sleep(self.options.health_gate_interval.min(deadline - now)) => {}
            }
        }
    }
}

/// Runs one hook under its timeout with panics caught.
async fn run_hook(
    reloadable: &Arc<dyn Reloadable>,
    ctx: &ReloadContext,
    changes: &[ConfigChange],
) -> Result<(), String> {
    let timeout = std::panic::catch_unwind(AssertUnwindSafe(|| reloadable.reload_timeout()))
        .map_err(|panic| format!("panicked: {}", panic_message(&*panic)))?;
    // The call itself is inside the guarded future: a hook that panics before returning its
    // future is caught too.
    let hook =
        AssertUnwindSafe(async move { reloadable.reload(ctx, changes).await }).catch_unwind();
    let result = tokio::time::timeout(timeout, hook).await;
    match result {
        Err(_) => {
            ctx.cancel.cancel();
            Err(format!("timed out after {}", format_duration(timeout)))
        }
        Ok(Err(panic)) => Err(format!("panicked: {}", panic_message(&*panic))),
        Ok(Ok(Err(error))) => Err(error.to_string()),
        Ok(Ok(Ok(()))) => Ok(()),
    }
}

/// `can_reload()` with a panic counted as "cannot reload now".
fn guarded_can_reload(reloadable: &Arc<dyn Reloadable>) -> bool {
    std::panic::catch_unwind(AssertUnwindSafe(|| reloadable.can_reload())).unwrap_or(false)
}

/// Combines changes still pending for a skipped module with the new diff of its section:
/// a path in both keeps the pending old value and takes the new value.
fn merge_pending(pending: &[ConfigChange], new: Vec<ConfigChange>) -> Vec<ConfigChange> {
    let mut merged: Vec<ConfigChange> = Vec::new();
    for p in pending {
        match new.iter().find(|c| c.field_path == p.field_path) {
            Some(c) => {
                if p.old_value != c.new_value {
                    let mut combined = c.clone();
                    combined.old_value = p.old_value.clone();
                    merged.push(combined);
                }
            }
            None => merged.push(p.clone()),
        }
    }
    for c in new {
        if !pending.iter().any(|p| p.field_path == c.field_path) {
            merged.push(c);
        }
    }
    merged
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // The guarded values are replaced whole; a panic elsewhere cannot leave them torn.
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}
