//! The reload pipeline, one function per step (DESIGN.md §3.4), in the order they run:
//!
//! 1. [`load`]: every source into one candidate figment;
//! 2. [`validate`]: every section deserialized and validated (any error rejects);
//! 3. [`diff`]: each section against the running one;
//! 4. [`classify`]: static changes rejected or recorded as pending restart;
//! 5. [`plan`]: affected modules in dependency order;
//! 6. [`prepare`]: each module builds its new state aside, under its timeout;
//! 7. [`prepare::abort`]: on the first failure every prepared state is dropped;
//! 8. [`commit`]: every prepared module commits, then one epoch swap publishes all sections;
//!    [`record`] appends the history entry and updates health, breaker and events;
//! 9. [`gate`]: the health gate watches readiness afterwards, between requests.

pub(super) mod classify;
pub(super) mod commit;
pub(super) mod diff;
pub(super) mod gate;
pub(super) mod load;
pub(super) mod plan;
pub(super) mod prepare;
pub(super) mod record;
pub(super) mod validate;

use serde_json::json;
use tokio::time::Instant;

use super::ReloadTrigger;
use super::breaker::{Admission, BreakerState};
use super::orchestrator::lock;
use super::outcome::{ReloadOutcome, ReloadStatus};
use super::worker::Worker;
use crate::events::types;
use crate::util::{format_duration, millis_f64};
use gate::ActiveGate;
use load::CandidateSource;

impl Worker {
    /// The pipeline: each step in order, returning early with the outcome of the step that
    /// ends it.
    #[tracing::instrument(name = "reload", skip_all, fields(trigger = trigger.as_str(), dry_run))]
    pub(super) async fn run_steps(
        &mut self,
        trigger: ReloadTrigger,
        source: CandidateSource,
        dry_run: bool,
    ) -> (ReloadOutcome, Option<ActiveGate>) {
        let started = Instant::now();
        let store = std::sync::Arc::clone(&self.shared.store);
        let running_version = store.version();
        let mut outcome =
            ReloadOutcome::new(ReloadStatus::Applied, trigger.clone(), running_version);
        outcome.dry_run = dry_run;

        // Circuit breaker (dry runs are never refused).
        let trial = if dry_run {
            false
        } else {
            match self.admit(started) {
                Ok(trial) => trial,
                Err(retry_after) => {
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
        };
        let from_sources = source.is_sources();

        // 1-2. Load and validate.
        let loaded = load::load(&store, source);
        let revisions = match &loaded {
            Ok(load::Loaded::Figment(figment)) => Some(crate::config::source_revisions(figment)),
            _ => None,
        };
        let candidate = match loaded.and_then(|l| validate::validate(&store, l)) {
            Ok(candidate) => candidate,
            Err(errors) => {
                outcome.status = ReloadStatus::Rejected;
                outcome.error = Some(match errors.len() {
                    1 => "invalid configuration (1 error)".to_owned(),
                    n => format!("invalid configuration ({n} errors)"),
                });
                outcome.errors = errors;
                return (self.reject(outcome, started, dry_run), None);
            }
        };

        // 3. Diff.
        let diff = diff::diff(&candidate);
        if !dry_run {
            // A held-back section whose source went back to what its module runs has nothing
            // pending any more.
            self.pending_skipped
                .retain(|module| diff.changes.iter().any(|c| c.section == module.as_str()));
        }
        outcome.diff_id = Some(diff.diff_id);
        outcome.changes = diff.changes.clone();
        if !diff.has_changes()
            || diff::only_still_skipped(&diff, &self.targets, &self.pending_skipped)
        {
            outcome.status = ReloadStatus::Noop;
            outcome.changes.clear();
            if trial {
                // The trial found nothing to apply (the bad change was reverted at the source):
                // nothing is failing any more.
                self.close_breaker();
            }
            if from_sources && !dry_run {
                record::sources_match(&self.shared);
            }
            outcome.duration_ms = millis_f64(started.elapsed());
            if !dry_run {
                tracing::info!(
                    version = running_version,
                    trigger = trigger.as_str(),
                    "config reload: no changes"
                );
                self.shared.emit(
                    types::RELOAD_NOOP,
                    json!({ "trigger": trigger.as_str(), "version": running_version }),
                );
            }
            return (outcome, None);
        }

        // 4. Classify.
        let static_paths = match classify::classify(&diff, self.options.static_policy) {
            Ok(paths) => paths,
            Err(paths) => {
                outcome.static_changes = paths.clone();
                outcome.status = ReloadStatus::Rejected;
                outcome.error = Some(format!("restart required: {}", paths.join(", ")));
                return (self.reject(outcome, started, dry_run), None);
            }
        };
        outcome.static_changes = static_paths.clone();

        // 5. Plan.
        let plan = plan::plan(&self.targets, &diff, &candidate);
        outcome.plan = plan.iter().map(|p| p.module.clone()).collect();
        if dry_run {
            outcome.status = ReloadStatus::Planned;
            outcome.skipped = plan
                .iter()
                .filter(|p| !prepare::guarded_can_reload(&p.reloadable))
                .map(|p| p.module.clone())
                .collect();
            outcome.pending_restart = static_paths;
            outcome.version = running_version + 1;
            outcome.duration_ms = millis_f64(started.elapsed());
            return (outcome, None);
        }

        let next_version = running_version + 1;
        self.shared.emit(
            types::RELOAD_STARTED,
            json!({
                "trigger": trigger.as_str(),
                "diff_id": diff.diff_id,
                "summary": diff.summary(),
                "version": next_version,
            }),
        );
        let baseline = self.gate_baseline(&trigger).await;

        // 6. Prepare; 7. abort on the first failure.
        let prepared =
            match prepare::prepare(plan, &trigger, next_version, &self.shared.cancel).await {
                Ok(prepared) => prepared,
                Err(failure) => {
                    let aborted = prepare::abort(
                        failure.prepared,
                        &trigger,
                        running_version,
                        &self.shared.cancel,
                    )
                    .await;
                    outcome.status = ReloadStatus::Failed;
                    outcome.skipped = failure.skipped;
                    outcome.failed_module = Some(failure.module.clone());
                    outcome.error = Some(format!(
                        "module `{}` failed to reload: {}",
                        failure.module, failure.error
                    ));
                    outcome.aborted = aborted.aborted;
                    outcome.rolled_back = aborted.rolled_back;
                    outcome.rollback_errors = aborted.rollback_errors;
                    outcome.duration_ms = millis_f64(started.elapsed());
                    tracing::error!(
                        module = %failure.module,
                        error = %failure.error,
                        aborted = %outcome.aborted.join(", "),
                        "module failed to prepare its reload; nothing was committed"
                    );
                    self.shared.emit(
                        types::RELOAD_FAILED,
                        json!({
                            "trigger": trigger.as_str(),
                            "diff_id": diff.diff_id,
                            "failed_module": failure.module,
                            "error": outcome.error,
                            "aborted": outcome.aborted,
                            "rolled_back": outcome.rolled_back,
                            "rollback_errors": outcome.rollback_errors,
                        }),
                    );
                    self.record_failure(started);
                    return (outcome, None);
                }
            };

        // 8. Commit: modules, then one epoch; record.
        outcome.reloaded = prepared.prepared.iter().map(|p| p.module.clone()).collect();
        outcome.skipped = prepared.skipped.clone();
        let version = commit::commit(
            &store,
            prepared.prepared,
            &candidate,
            &diff,
            &prepared.skipped,
        );
        outcome.version = version;
        if let Some(revisions) = revisions {
            store.set_source_revisions(revisions);
        }
        outcome.source_revisions = store.source_revisions();
        for module in &outcome.reloaded {
            self.pending_skipped.remove(module);
        }
        self.pending_skipped
            .extend(prepared.skipped.iter().cloned());
        outcome.pending_restart =
            record::record(&self.shared, &trigger, version, &diff, from_sources);
        let gate = baseline.map(|before| {
            outcome.health_gate = Some("watching".to_owned());
            ActiveGate::new(before, running_version, version, &self.options)
        });
        outcome.duration_ms = millis_f64(started.elapsed());
        record::announce(&self.shared, &outcome, &diff);
        (outcome, gate)
    }

    /// Asks the breaker; `Ok(true)` for a half-open trial, `Err(retry_after)` when refused.
    fn admit(&self, now: Instant) -> Result<bool, std::time::Duration> {
        let (was_open, admission, failures) = {
            let mut breaker = lock(&self.shared.breaker);
            let was_open = matches!(breaker.state(), BreakerState::Open { .. });
            let admission = breaker.admit(now);
            (was_open, admission, breaker.failures())
        };
        match admission {
            Admission::Closed => Ok(false),
            Admission::Trial => {
                // Announced once, on the open -> half-open transition.
                if was_open {
                    self.shared.emit(
                        types::CIRCUIT_HALF_OPENED,
                        json!({ "failures": failures, "retry_after_ms": 0 }),
                    );
                }
                Ok(true)
            }
            Admission::Refused(retry_after) => Err(retry_after),
        }
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
            // Recorded before it is announced: an observer of the event finds it recorded.
            *lock(&self.shared.last_rejected) = Some(outcome.clone());
            self.shared.emit(
                types::RELOAD_REJECTED,
                json!({
                    "trigger": outcome.trigger.as_str(),
                    "errors": outcome.errors,
                    "static_changes": outcome.static_changes,
                    "error": outcome.error,
                }),
            );
        }
        outcome
    }
}
