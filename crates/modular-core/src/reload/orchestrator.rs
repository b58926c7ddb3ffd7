//! [`ReloadOrchestrator`]: the handle every trigger talks to. The worker behind it runs one
//! reload at a time (see `worker.rs`, and `steps/` for the pipeline).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use serde::Serialize;
use serde_json::Value;
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::ReloadTrigger;
use super::breaker::{BreakerState, CircuitBreaker};
use super::history::{History, HistoryEntry};
use super::options::{ReloadOptions, ReloadTarget};
use super::outcome::{ReloadOutcome, ReloadStatus};
use super::worker::Worker;
use crate::config::{AnySection, ConfigStore, TextFormat};
use crate::events::EventBus;
use crate::health::HealthAggregator;

pub(super) enum Request {
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

/// A version the health gate reverted, as `/admin/config` shows it.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct RevertedVersion {
    /// The version that was reverted.
    pub version: u64,
    /// The version the revert committed (the old config, under a new number).
    pub reverted_to: u64,
    /// When it was reverted.
    pub at: chrono::DateTime<chrono::Utc>,
    /// Why: how readiness got worse.
    pub reason: String,
    /// Whether the sources (files, environment, overrides) still say what was reverted, so
    /// they differ from the running config. Cleared by the next reload that commits or
    /// finds nothing to change.
    pub sources_differ: bool,
}

pub(super) struct Shared {
    pub(super) store: Arc<ConfigStore>,
    pub(super) events: crate::events::EventBus,
    pub(super) health: Option<Arc<HealthAggregator>>,
    pub(super) history: Mutex<History>,
    pub(super) last_rejected: Mutex<Option<ReloadOutcome>>,
    pub(super) last_reverted: Mutex<Option<RevertedVersion>>,
    pub(super) pending_restart: Mutex<BTreeMap<String, Value>>,
    pub(super) breaker: Mutex<CircuitBreaker>,
    pub(super) cancel: CancellationToken,
    pub(super) tasks: TaskTracker,
    worker: Mutex<Option<tokio::task::JoinHandle<()>>>,
}

impl Shared {
    pub(super) fn emit(&self, ty: &str, data: Value) {
        self.events
            .emit(ty, crate::events::types::RELOAD_SOURCE, data);
    }
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
            health_gate: None,
            health_gate_reason: None,
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
            last_reverted: Mutex::new(None),
            pending_restart: Mutex::new(BTreeMap::new()),
            cancel,
            tasks,
            worker: Mutex::new(None),
        });
        let (tx, rx) = mpsc::unbounded_channel();
        let worker = Worker::new(Arc::clone(&shared), targets, options);
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

    /// The last version the health gate reverted, and whether the sources still differ from
    /// the running config because of it.
    pub fn last_reverted(&self) -> Option<RevertedVersion> {
        lock(&self.shared.last_reverted).clone()
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
    /// prepares, dropping what was prepared; nothing was published).
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

pub(super) fn current_sections(store: &ConfigStore) -> Vec<(String, AnySection)> {
    store
        .sections()
        .iter()
        .map(|s| (s.name().to_owned(), s.current()))
        .collect()
}

pub(super) fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // The guarded values are replaced whole; a panic elsewhere cannot leave them torn.
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}
