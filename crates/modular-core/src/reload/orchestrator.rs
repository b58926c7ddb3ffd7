//! [`ReloadOrchestrator`]: the handle every trigger talks to. The worker behind it runs one
//! reload at a time (see `worker.rs`, and `steps/` for the pipeline).

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use futures::FutureExt as _;

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

/// How many requests the worker's queue holds. The queue is bounded so that no burst can
/// grow it without limit, and no request is lost for it:
///
/// - a caller that finds the queue full waits for a slot (backpressure: what waits is the
///   caller's own future, not an entry the orchestrator keeps);
/// - reload requests coalesce: while one waits in the queue, later reload callers join it
///   instead of queueing their own (see [`ReloadOrchestrator::reload`]), so ten thousand
///   concurrent `reload()` calls or file events take one slot and all get its outcome;
/// - any other request (plan, rollback, override) is queued in order, and a reload asked for
///   after it queues after it.
pub const REQUEST_QUEUE_CAPACITY: usize = 64;

pub(super) enum Request {
    Reload {
        trigger: ReloadTrigger,
        /// Matches [`PendingReload::id`] while later callers may still join it.
        id: u64,
        reply: oneshot::Sender<ReloadOutcome>,
    },
    Plan {
        trigger: ReloadTrigger,
        candidate: Option<(TextFormat, String)>,
        reply: oneshot::Sender<ReloadOutcome>,
    },
    Rollback {
        version: u64,
        reply: oneshot::Sender<ReloadOutcome>,
    },
    Override {
        trigger: ReloadTrigger,
        edit: OverrideEdit,
        reply: oneshot::Sender<ReloadOutcome>,
    },
}

/// How an override request changes the runtime overrides.
pub(super) enum OverrideEdit {
    /// `Some` sets the key, `None` removes it; other keys stay.
    Merge(BTreeMap<String, Option<Value>>),
    /// Removes every override.
    Clear,
}

impl OverrideEdit {
    pub(super) fn apply(self, overrides: &mut BTreeMap<String, Value>) {
        match self {
            Self::Merge(edits) => {
                for (path, value) in edits {
                    match value {
                        Some(v) => overrides.insert(path, v),
                        None => overrides.remove(&path),
                    };
                }
            }
            Self::Clear => overrides.clear(),
        }
    }
}

pub(super) type SharedOutcome = futures::future::Shared<oneshot::Receiver<ReloadOutcome>>;

/// A reload request in the queue that has not started yet.
pub(super) struct PendingReload {
    pub(super) id: u64,
    outcome: SharedOutcome,
}

/// A version the health gate reverted, as `/admin/config` shows it.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
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
    /// The reload request waiting in the queue that later reload callers join, if any.
    pub(super) pending_reload: Mutex<Option<PendingReload>>,
    next_reload_id: AtomicU64,
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
    tx: mpsc::Sender<Request>,
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
            source_revisions: store.source_revisions(),
            sections: current_sections(&store),
            overrides: store.overrides(),
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
            pending_reload: Mutex::new(None),
            next_reload_id: AtomicU64::new(0),
        });
        let (tx, rx) = mpsc::channel(REQUEST_QUEUE_CAPACITY);
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
        let Ok(permit) = self.tx.reserve().await else {
            return self.stopped(trigger);
        };
        {
            // A reload asked for after this request must run after it: it no longer joins
            // the one queued before.
            let mut pending = lock(&self.shared.pending_reload);
            *pending = None;
            permit.send(make(reply));
        }
        match rx.await {
            Ok(outcome) => outcome,
            Err(_) => self.stopped(trigger),
        }
    }

    fn stopped(&self, trigger: ReloadTrigger) -> ReloadOutcome {
        let mut outcome =
            ReloadOutcome::new(ReloadStatus::Failed, trigger, self.shared.store.version());
        outcome.error = Some("reload orchestrator is stopped".to_owned());
        outcome
    }

    /// Runs a reload (or joins the one about to run) and returns the outcome that covered it.
    ///
    /// A reload asked for while another reload request waits in the queue (not yet started)
    /// joins that request instead of queueing its own: the reload reads the sources when it
    /// starts, so it covers every caller that joined it, and each of them gets its outcome.
    /// A burst of reload requests therefore takes one slot of the bounded queue, not one
    /// per caller.
    pub async fn reload(&self, trigger: ReloadTrigger) -> ReloadOutcome {
        if let Some(waiting) = self.join_pending() {
            return self.wait(waiting, trigger).await;
        }
        let Ok(permit) = self.tx.reserve().await else {
            return self.stopped(trigger);
        };
        let waiting = {
            let mut pending = lock(&self.shared.pending_reload);
            match &*pending {
                // Another caller queued one while this one waited for a slot.
                Some(queued) => queued.outcome.clone(),
                None => {
                    let (reply, rx) = oneshot::channel();
                    let id = self.shared.next_reload_id.fetch_add(1, Ordering::Relaxed);
                    let outcome = rx.shared();
                    *pending = Some(PendingReload {
                        id,
                        outcome: outcome.clone(),
                    });
                    permit.send(Request::Reload {
                        trigger: trigger.clone(),
                        id,
                        reply,
                    });
                    outcome
                }
            }
        };
        self.wait(waiting, trigger).await
    }

    fn join_pending(&self) -> Option<SharedOutcome> {
        lock(&self.shared.pending_reload)
            .as_ref()
            .map(|p| p.outcome.clone())
    }

    async fn wait(&self, waiting: SharedOutcome, trigger: ReloadTrigger) -> ReloadOutcome {
        match waiting.await {
            Ok(outcome) => outcome,
            Err(_) => self.stopped(trigger),
        }
    }

    /// A dry run: the outcome a reload would have now, with its plan (status `planned` when
    /// it would apply); applies nothing. `candidate` is configuration text layered over the
    /// files (as `POST /admin/reload/plan` sends it); `trigger` is who asks (`admin` for the
    /// HTTP endpoint) and is what the outcome reports.
    pub async fn plan(
        &self,
        trigger: ReloadTrigger,
        candidate: Option<(TextFormat, String)>,
    ) -> ReloadOutcome {
        let t = trigger.clone();
        self.ask(
            |reply| Request::Plan {
                trigger,
                candidate,
                reply,
            },
            t,
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

    /// Sets a runtime override (`cache.default_ttl` = `"5s"`) and reloads (trigger
    /// `override`); if the reload is neither applied nor a noop the override is withdrawn.
    pub async fn set_override(&self, path: &str, value: Value) -> ReloadOutcome {
        self.set_overrides(
            ReloadTrigger::Override,
            BTreeMap::from([(path.to_owned(), value)]),
        )
        .await
    }

    /// Merges `overrides` (dotted path to value) into the runtime overrides and reloads once:
    /// keys given replace their value, keys not given stay. If the reload is neither applied
    /// nor a noop, the overrides stay exactly as they were.
    pub async fn set_overrides(
        &self,
        trigger: ReloadTrigger,
        overrides: BTreeMap<String, Value>,
    ) -> ReloadOutcome {
        let edit = OverrideEdit::Merge(overrides.into_iter().map(|(k, v)| (k, Some(v))).collect());
        self.edit_overrides(trigger, edit).await
    }

    /// Removes the runtime override at `path` and reloads (the overrides stay as they were
    /// if that reload is neither applied nor a noop).
    pub async fn remove_override(&self, trigger: ReloadTrigger, path: &str) -> ReloadOutcome {
        let edit = OverrideEdit::Merge(BTreeMap::from([(path.to_owned(), None)]));
        self.edit_overrides(trigger, edit).await
    }

    /// Removes every runtime override and reloads (the overrides stay as they were if that
    /// reload is neither applied nor a noop).
    pub async fn clear_overrides(&self, trigger: ReloadTrigger) -> ReloadOutcome {
        self.edit_overrides(trigger, OverrideEdit::Clear).await
    }

    async fn edit_overrides(&self, trigger: ReloadTrigger, edit: OverrideEdit) -> ReloadOutcome {
        let t = trigger.clone();
        self.ask(
            |reply| Request::Override {
                trigger,
                edit,
                reply,
            },
            t,
        )
        .await
    }

    /// Requests waiting in the queue (at most [`REQUEST_QUEUE_CAPACITY`]; a burst of reload
    /// requests takes one slot).
    pub fn queued_requests(&self) -> usize {
        REQUEST_QUEUE_CAPACITY - self.tx.capacity()
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
