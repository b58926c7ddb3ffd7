//! The reload worker: takes one request at a time, coalesces consecutive reload requests,
//! runs the pipeline (`steps/`), and watches the health gate between requests, never while a
//! caller waits.

use std::collections::{BTreeMap, HashSet};
use std::panic::AssertUnwindSafe;
use std::sync::Arc;

use futures::FutureExt as _;
use tokio::sync::mpsc;

use super::ReloadTrigger;
use super::options::{ReloadOptions, ReloadTarget};
use super::orchestrator::{Request, Shared, lock};
use super::outcome::{ReloadOutcome, ReloadStatus};
use super::steps::gate::ActiveGate;
use super::steps::load::CandidateSource;
use crate::util::panic_message;

pub(crate) struct Worker {
    pub(super) shared: Arc<Shared>,
    pub(super) targets: Vec<ReloadTarget>,
    pub(super) options: ReloadOptions,
    /// Modules that were skipped (`can_reload() == false`) with changes still pending; their
    /// sections were not committed for them.
    pub(super) pending_skipped: HashSet<String>,
    /// The health gate watching the last applied reload, if its window is still open.
    pub(super) gate: Option<ActiveGate>,
}

impl Worker {
    pub(super) fn new(
        shared: Arc<Shared>,
        targets: Vec<ReloadTarget>,
        options: ReloadOptions,
    ) -> Self {
        Self {
            shared,
            targets,
            options,
            pending_skipped: HashSet::new(),
            gate: None,
        }
    }

    pub(super) async fn run(mut self, mut rx: mpsc::UnboundedReceiver<Request>) {
        loop {
            let next_check = self.gate.as_ref().map(|g| g.next_check);
            let first = tokio::select! {
                biased;
                _ = self.shared.cancel.cancelled() => break,
                request = rx.recv() => match request {
                    Some(r) => r,
                    None => break,
                },
                () = sleep_until(next_check) => {
                    self.check_gate().await;
                    continue;
                }
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
                        let outcome = self.reload(trigger, CandidateSource::Sources(None)).await;
                        for reply in replies {
                            let _ = reply.send(outcome.clone());
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
                        let outcome = match entry {
                            Some(sections) => {
                                self.reload(
                                    ReloadTrigger::Rollback,
                                    CandidateSource::Sections(sections),
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
                                o
                            }
                        };
                        let _ = reply.send(outcome);
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
                        let outcome = self
                            .reload_with_overrides_before(
                                ReloadTrigger::Override,
                                CandidateSource::Sources(None),
                                Some(previous.clone()),
                            )
                            .await;
                        if !matches!(outcome.status, ReloadStatus::Applied | ReloadStatus::Noop) {
                            // The running config stays as it was, and so do the overrides.
                            self.shared.store.set_overrides(previous);
                        }
                        let _ = reply.send(outcome);
                    }
                }
            }
        }
    }

    /// Runs a reload; an applied one opens a health-gate window that supersedes any earlier
    /// one. The caller gets its outcome now; the gate's verdict follows as an event and in
    /// the history entry.
    async fn reload(&mut self, trigger: ReloadTrigger, source: CandidateSource) -> ReloadOutcome {
        self.reload_with_overrides_before(trigger, source, None)
            .await
    }

    async fn reload_with_overrides_before(
        &mut self,
        trigger: ReloadTrigger,
        source: CandidateSource,
        overrides_before: Option<BTreeMap<String, serde_json::Value>>,
    ) -> ReloadOutcome {
        let (outcome, gate) = self.pipeline(trigger, source, false).await;
        if let Some(mut gate) = gate {
            gate.overrides_before = overrides_before;
            if let Some(earlier) = self.gate.replace(gate) {
                self.gate_verdict(earlier.version, "superseded", None);
            }
        }
        outcome
    }

    /// Runs the pipeline with panics caught: a panic anywhere in it (a validation hook, a
    /// derived diff, a module's `can_reload`) fails this reload, never the worker.
    pub(super) async fn pipeline(
        &mut self,
        trigger: ReloadTrigger,
        source: CandidateSource,
        dry_run: bool,
    ) -> (ReloadOutcome, Option<ActiveGate>) {
        let shown = trigger.clone();
        let version = self.shared.store.version();
        let result = match AssertUnwindSafe(self.run_steps(trigger, source, dry_run))
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
        };
        crate::metrics::record_reload(&result.0);
        result
    }
}

async fn sleep_until(at: Option<tokio::time::Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}
