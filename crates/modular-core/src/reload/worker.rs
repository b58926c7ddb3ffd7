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

    pub(super) async fn run(mut self, mut rx: mpsc::Receiver<Request>) {
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
            // consecutive reload requests share one reload. The queue is bounded
            // (`REQUEST_QUEUE_CAPACITY`), so is this batch.
            let mut batch = vec![first];
            while let Ok(r) = rx.try_recv() {
                batch.push(r);
            }
            let mut batch = batch.into_iter().peekable();
            while let Some(request) = batch.next() {
                match request {
                    Request::Reload { trigger, id, reply } => {
                        let mut replies = vec![(id, reply)];
                        while let Some(Request::Reload { .. }) = batch.peek() {
                            if let Some(Request::Reload { id, reply, .. }) = batch.next() {
                                replies.push((id, reply));
                            }
                        }
                        // From here on a new caller cannot join: the sources are read next,
                        // and a change made after that needs a reload of its own.
                        {
                            let mut pending = lock(&self.shared.pending_reload);
                            if pending
                                .as_ref()
                                .is_some_and(|p| replies.iter().any(|(id, _)| *id == p.id))
                            {
                                *pending = None;
                            }
                        }
                        let outcome = self.reload(trigger, CandidateSource::Sources(None)).await;
                        for (_, reply) in replies {
                            let _ = reply.send(outcome.clone());
                        }
                    }
                    Request::Plan {
                        trigger,
                        candidate,
                        reply,
                    } => {
                        let (outcome, _) = self
                            .pipeline(trigger, CandidateSource::Sources(candidate), true)
                            .await;
                        let _ = reply.send(outcome);
                    }
                    Request::Rollback { version, reply } => {
                        let outcome = self.rollback(version).await;
                        let _ = reply.send(outcome);
                    }
                    Request::Override {
                        trigger,
                        edit,
                        reply,
                    } => {
                        let previous = self.shared.store.overrides();
                        let mut next = previous.clone();
                        edit.apply(&mut next);
                        self.shared.store.set_overrides(next);
                        let outcome = self
                            .reload_with_overrides_before(
                                trigger,
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

    /// Commits the sections of an earlier version again. The runtime overrides go back to
    /// what they were at that version: an override set after it is withdrawn with the
    /// version it made, so the next reload does not bring it back. If the rollback does not
    /// apply, the overrides stay as they were.
    async fn rollback(&mut self, version: u64) -> ReloadOutcome {
        let entry = lock(&self.shared.history)
            .get(version)
            .map(|e| (e.sections.clone(), e.overrides.clone()));
        let Some((sections, overrides)) = entry else {
            let mut outcome = ReloadOutcome::new(
                ReloadStatus::Rejected,
                ReloadTrigger::Rollback,
                self.shared.store.version(),
            );
            outcome.error = Some(format!("version {version} is not in the history"));
            return outcome;
        };
        let previous = self.shared.store.overrides();
        // Set before the pipeline, so the history entry of the rollback records them.
        self.shared.store.set_overrides(overrides);
        let outcome = self
            .reload_with_overrides_before(
                ReloadTrigger::Rollback,
                CandidateSource::Sections(sections),
                Some(previous.clone()),
            )
            .await;
        if !matches!(outcome.status, ReloadStatus::Applied | ReloadStatus::Noop) {
            self.shared.store.set_overrides(previous);
        }
        outcome
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
