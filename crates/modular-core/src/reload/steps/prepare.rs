//! Step 6, prepare, and step 7, abort.
//!
//! Each planned module, in dependency order, builds its new state aside under its
//! `reload_timeout()` (the future is dropped at the deadline) with panics caught; preparing
//! publishes nothing. On the first failure, timeout or panic, [`abort`] drops every prepared
//! state in reverse order (each closes what it opened); only a module that applied in place
//! gets an undo with the inverse changes.

use std::panic::AssertUnwindSafe;
use std::sync::Arc;

use futures::FutureExt as _;
use tokio_util::sync::CancellationToken;

use super::plan::Planned;
use crate::config::{AnySection, ConfigChange};
use crate::reload::outcome::ModuleFailure;
use crate::reload::{PreparedReload, ReloadContext, ReloadTrigger, Reloadable};
use crate::util::{format_duration, panic_message};

/// A module's state, prepared and waiting for commit.
pub(crate) struct Prepared {
    pub(crate) module: String,
    reloadable: Arc<dyn Reloadable>,
    changes: Vec<ConfigChange>,
    old: AnySection,
    pub(crate) state: PreparedReload,
}

/// Every planned module prepared (or skipped).
pub(crate) struct AllPrepared {
    pub(crate) prepared: Vec<Prepared>,
    pub(crate) skipped: Vec<String>,
}

/// The module that failed, and what had been prepared before it.
pub(crate) struct PrepareFailure {
    pub(crate) module: String,
    pub(crate) error: String,
    pub(crate) prepared: Vec<Prepared>,
    pub(crate) skipped: Vec<String>,
}

/// What [`abort`] did.
#[derive(Default)]
pub(crate) struct Aborted {
    /// Modules whose prepared state was dropped, in abort order.
    pub(crate) aborted: Vec<String>,
    /// In-place modules undone.
    pub(crate) rolled_back: Vec<String>,
    /// Undos that failed.
    pub(crate) rollback_errors: Vec<ModuleFailure>,
}

pub(crate) async fn prepare(
    plan: Vec<Planned>,
    trigger: &ReloadTrigger,
    version: u64,
    cancel: &CancellationToken,
) -> Result<AllPrepared, PrepareFailure> {
    let mut prepared: Vec<Prepared> = Vec::with_capacity(plan.len());
    let mut skipped = Vec::new();
    for step in plan {
        if !guarded_can_reload(&step.reloadable) {
            tracing::info!(module = %step.module, "module cannot reload now; changes stay pending");
            skipped.push(step.module);
            continue;
        }
        let ctx = context(&step.module, trigger, step.new, version, false, cancel);
        let result = if cancel.is_cancelled() {
            Err("the application is stopping".to_owned())
        } else {
            run_prepare(&step.reloadable, &ctx, &step.changes).await
        };
        match result {
            Ok(state) => prepared.push(Prepared {
                module: step.module,
                reloadable: step.reloadable,
                changes: step.changes,
                old: step.old,
                state,
            }),
            Err(error) => {
                return Err(PrepareFailure {
                    module: step.module,
                    error,
                    prepared,
                    skipped,
                });
            }
        }
    }
    Ok(AllPrepared { prepared, skipped })
}

/// Drops every prepared state, last prepared first; undoes modules that applied in place.
pub(crate) async fn abort(
    prepared: Vec<Prepared>,
    trigger: &ReloadTrigger,
    running_version: u64,
    cancel: &CancellationToken,
) -> Aborted {
    let mut report = Aborted::default();
    for p in prepared.into_iter().rev() {
        let Prepared {
            module,
            reloadable,
            changes,
            old,
            state,
        } = p;
        if state.is_in_place() {
            drop(state);
            let inverse: Vec<ConfigChange> =
                changes.iter().rev().map(ConfigChange::inverse).collect();
            let ctx = context(&module, trigger, old, running_version, true, cancel);
            match run_undo(&reloadable, &ctx, &inverse).await {
                Ok(()) => report.rolled_back.push(module),
                Err(error) => {
                    tracing::error!(module = %module, %error, "undo of an in-place reload failed");
                    report.rollback_errors.push(ModuleFailure { module, error });
                }
            }
        } else {
            // Dropping the prepared state releases what it opened.
            drop(state);
            report.aborted.push(module);
        }
    }
    report
}

fn context(
    module: &str,
    trigger: &ReloadTrigger,
    section: AnySection,
    version: u64,
    rollback: bool,
    cancel: &CancellationToken,
) -> ReloadContext {
    ReloadContext {
        module: Arc::from(module),
        trigger: trigger.clone(),
        section: Some(section),
        version,
        rollback,
        cancel: cancel.child_token(),
    }
}

/// Runs `prepare` under the module's timeout with panics caught.
async fn run_prepare(
    reloadable: &Arc<dyn Reloadable>,
    ctx: &ReloadContext,
    changes: &[ConfigChange],
) -> Result<PreparedReload, String> {
    let started = tokio::time::Instant::now();
    let result = guarded(reloadable, ctx, async move {
        reloadable.prepare(ctx, changes).await
    })
    .await;
    crate::metrics::record_prepare(ctx.module(), started.elapsed());
    result
}

/// Runs `undo` under the module's timeout with panics caught.
async fn run_undo(
    reloadable: &Arc<dyn Reloadable>,
    ctx: &ReloadContext,
    changes: &[ConfigChange],
) -> Result<(), String> {
    guarded(reloadable, ctx, async move {
        reloadable.undo(ctx, changes).await
    })
    .await
}

async fn guarded<T>(
    reloadable: &Arc<dyn Reloadable>,
    ctx: &ReloadContext,
    hook: impl std::future::Future<Output = Result<T, crate::BoxError>>,
) -> Result<T, String> {
    let timeout = std::panic::catch_unwind(AssertUnwindSafe(|| reloadable.reload_timeout()))
        .map_err(|panic| format!("panicked: {}", panic_message(&*panic)))?;
    // The call itself is inside the guarded future: a hook that panics before returning its
    // future is caught too.
    let hook = AssertUnwindSafe(hook).catch_unwind();
    match tokio::time::timeout(timeout, hook).await {
        Err(_) => {
            ctx.cancel.cancel();
            Err(format!("timed out after {}", format_duration(timeout)))
        }
        Ok(Err(panic)) => Err(format!("panicked: {}", panic_message(&*panic))),
        Ok(Ok(Err(error))) => Err(error.to_string()),
        Ok(Ok(Ok(value))) => Ok(value),
    }
}

/// `can_reload()` with a panic counted as "cannot reload now".
pub(crate) fn guarded_can_reload(reloadable: &Arc<dyn Reloadable>) -> bool {
    std::panic::catch_unwind(AssertUnwindSafe(|| reloadable.can_reload())).unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    /// A module that never finishes preparing, with no timeout to speak of.
    struct Patient;

    #[async_trait::async_trait]
    impl Reloadable for Patient {
        fn reload_timeout(&self) -> Duration {
            Duration::MAX
        }

        async fn prepare(
            &self,
            _ctx: &ReloadContext,
            _changes: &[ConfigChange],
        ) -> Result<PreparedReload, crate::BoxError> {
            Err("refused".into())
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_reload_timeout_of_duration_max_runs_the_hook_without_a_panic() {
        let reloadable: Arc<dyn Reloadable> = Arc::new(Patient);
        let ctx = ReloadContext {
            module: Arc::from("patient"),
            trigger: ReloadTrigger::Programmatic,
            section: None,
            version: 2,
            rollback: false,
            cancel: CancellationToken::new(),
        };
        let result = guarded(&reloadable, &ctx, reloadable.prepare(&ctx, &[])).await;
        assert_eq!(result.err().as_deref(), Some("refused"));
    }
}
