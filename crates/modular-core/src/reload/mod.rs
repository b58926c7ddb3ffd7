//! Dynamic configuration reload (DESIGN.md §3.4).
//!
//! Every trigger (file change, SIGHUP, `app.reload()`, a runtime override, the admin API)
//! runs the same pipeline, one reload at a time, one step function each (see `steps/`): load,
//! validate, diff, classify, plan, prepare (two-phase: every module builds its new state aside,
//! under an enforced timeout, with panics caught), commit or abort, record, and a health gate
//! that reverts a reload after which readiness got worse without holding the worker.

mod breaker;
mod history;
mod options;
mod orchestrator;
mod outcome;
mod steps;
mod watcher;
mod worker;

use std::any::Any;
use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::config::{AnySection, ConfigChange};
use crate::error::BoxError;

pub use breaker::{BreakerState, CircuitBreaker};
pub use history::HistoryEntry;
pub use options::{
    BreakerSection, HealthGateSection, ReloadOptions, ReloadSection, ReloadTarget, StaticPolicy,
};
pub use orchestrator::{REQUEST_QUEUE_CAPACITY, ReloadOrchestrator, RevertedVersion};
pub use outcome::{ModuleFailure, ReloadOutcome, ReloadStatus};
pub use watcher::{
    ConfigWatcher, DirectoryWatch, content_fingerprint, directory_of, watch_directories,
};

/// What started a reload.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Clone, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum ReloadTrigger {
    /// A watched config file changed.
    File,
    /// SIGHUP.
    Signal,
    /// `POST /admin/reload`.
    Admin,
    /// `app.reload()` or the orchestrator called from code.
    Programmatic,
    /// A runtime override was set or cleared.
    Override,
    /// A rollback to an earlier version.
    Rollback,
    /// The health gate reverted a reload.
    HealthGate,
    /// A remote configuration source ([`RemoteSource`](crate::config::RemoteSource)) changed:
    /// a key-value store or config server pushed a new revision.
    Remote,
}

impl ReloadTrigger {
    /// The snake_case name used in events and outcomes.
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::File => "file",
            Self::Signal => "signal",
            Self::Admin => "admin",
            Self::Programmatic => "programmatic",
            Self::Override => "override",
            Self::Rollback => "rollback",
            Self::HealthGate => "health_gate",
            Self::Remote => "remote",
        }
    }
}

impl std::fmt::Display for ReloadTrigger {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A module's reload hook: two-phase, prepare then commit.
///
/// [`Reloadable::prepare`] receives only its own section's dynamic changes and the typed new
/// section ([`ReloadContext::new_config`]), builds the new state **aside** (a new pool, client,
/// router, compiled rule set) and returns it as a [`PreparedReload`]. Preparing publishes
/// nothing: no request can see prepared state. It runs under [`Reloadable::reload_timeout`],
/// enforced by the orchestrator (the future is dropped at the deadline), with panics caught.
///
/// Only when every planned module has prepared does the orchestrator commit them all, in
/// dependency order: [`PreparedReload::commit`] runs the module's commit closure, which must be
/// cheap, synchronous and unable to fail (an `Arc` swap). If any module fails, times out or
/// panics while preparing, every prepared state is dropped (in reverse order), which aborts
/// it: whatever it opened is released, and no module ever ran the new config.
///
/// A module whose resource truly cannot be built aside applies in place instead and returns
/// [`PreparedReload::applied_in_place`]; on abort it gets [`Reloadable::undo`] with the
/// inverse changes and the previous section. That is the exception: say so in the module docs.
///
/// ```
/// use std::sync::Arc;
/// use arc_swap::ArcSwap;
/// use modular_core::{BoxError, ConfigChange, ReloadContext, Reloadable};
/// use modular_core::reload::PreparedReload;
///
/// #[derive(Clone, serde::Serialize, serde::Deserialize, modular_core::DynamicConfig)]
/// #[serde(deny_unknown_fields)]
/// struct GreeterConfig {
///     #[config(dynamic)]
///     greeting: String,
/// }
///
/// struct Greeter {
///     live: Arc<ArcSwap<String>>,
/// }
///
/// #[modular_core::async_trait]
/// impl Reloadable for Greeter {
///     async fn prepare(
///         &self,
///         ctx: &ReloadContext,
///         _changes: &[ConfigChange],
///     ) -> Result<PreparedReload, BoxError> {
///         let config = ctx.new_config::<GreeterConfig>().ok_or("no greeter section")?;
///         let built = Arc::new(format!("{}!", config.greeting)); // the new state, aside
///         let live = Arc::clone(&self.live);
///         Ok(PreparedReload::new(move || live.store(built)))
///     }
/// }
/// ```
#[async_trait::async_trait]
pub trait Reloadable: Send + Sync + 'static {
    /// Whether the module can reload now; `false` skips it (its changes stay pending and are
    /// retried next reload, and its section is not committed for it meanwhile).
    fn can_reload(&self) -> bool {
        true
    }

    /// How long preparing (or an undo) may take.
    fn reload_timeout(&self) -> Duration {
        Duration::from_secs(5)
    }

    /// Phase one: builds the new state aside from `changes` (this module's dynamic changes
    /// only) and the typed new section, and returns it unpublished.
    async fn prepare(
        &self,
        ctx: &ReloadContext,
        changes: &[ConfigChange],
    ) -> Result<PreparedReload, BoxError>;

    /// Undoes an in-place apply ([`PreparedReload::applied_in_place`]) when another module
    /// failed: `changes` are the inverse changes, [`ReloadContext::new_config`] is the
    /// previous section and [`ReloadContext::is_rollback`] is true. Never called for a module
    /// that prepared aside.
    async fn undo(&self, _ctx: &ReloadContext, _changes: &[ConfigChange]) -> Result<(), BoxError> {
        Ok(())
    }
}

type Action = Box<dyn FnOnce() + Send + 'static>;

/// A module's new state, built aside by [`Reloadable::prepare`] and not yet published.
///
/// [`PreparedReload::commit`] publishes it. Dropping it without committing aborts it: the
/// captured state is dropped, and the [`PreparedReload::on_abort`] action, if any, runs (to
/// close a pool at once, for example).
#[must_use = "a prepared reload does nothing until it is committed; dropping it aborts"]
pub struct PreparedReload {
    commit: Option<Action>,
    abort: Option<Action>,
    in_place: bool,
}

impl std::fmt::Debug for PreparedReload {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PreparedReload")
            .field("commit", &self.commit.is_some())
            .field("abort", &self.abort.is_some())
            .field("in_place", &self.in_place)
            .finish()
    }
}

impl PreparedReload {
    /// State that `commit` publishes: a cheap, synchronous, infallible swap. What the closure
    /// captures is the prepared state; it is dropped unused on abort.
    pub fn new(commit: impl FnOnce() + Send + 'static) -> Self {
        Self {
            commit: Some(Box::new(commit)),
            abort: None,
            in_place: false,
        }
    }

    /// Nothing to publish besides the config section itself (the module reads its handle).
    pub fn nothing() -> Self {
        Self {
            commit: None,
            abort: None,
            in_place: false,
        }
    }

    /// The module applied its changes in place while preparing, because its resource cannot be
    /// built aside; an abort calls [`Reloadable::undo`] with the inverse changes.
    pub fn applied_in_place() -> Self {
        Self {
            commit: None,
            abort: None,
            in_place: true,
        }
    }

    /// Runs `abort` if this state is dropped without being committed (close what preparing
    /// opened, count the abort).
    pub fn on_abort(mut self, abort: impl FnOnce() + Send + 'static) -> Self {
        self.abort = Some(Box::new(abort));
        self
    }

    /// Whether the module applied in place (and needs an undo on abort).
    pub fn is_in_place(&self) -> bool {
        self.in_place
    }

    /// Phase two: publishes the prepared state. A panic in the module's commit closure is
    /// caught and logged (the orchestrator cannot undo a half-run commit).
    pub fn commit(mut self) {
        self.abort = None;
        if let Some(commit) = self.commit.take()
            && let Err(panic) = std::panic::catch_unwind(std::panic::AssertUnwindSafe(commit))
        {
            tracing::error!(
                panic = %crate::panic_message(&*panic),
                "a module's reload commit panicked; commits must not fail"
            );
        }
    }
}

impl Drop for PreparedReload {
    fn drop(&mut self) {
        if let Some(abort) = self.abort.take() {
            let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(abort));
        }
    }
}

/// What a reload hook receives besides its changes.
#[derive(Clone)]
pub struct ReloadContext {
    pub(crate) module: Arc<str>,
    pub(crate) trigger: ReloadTrigger,
    pub(crate) section: Option<AnySection>,
    pub(crate) version: u64,
    pub(crate) rollback: bool,
    pub(crate) cancel: CancellationToken,
}

impl std::fmt::Debug for ReloadContext {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReloadContext")
            .field("module", &self.module)
            .field("trigger", &self.trigger)
            .field("version", &self.version)
            .field("rollback", &self.rollback)
            .finish()
    }
}

impl ReloadContext {
    /// A context for calling a hook directly (tests, custom drivers).
    pub fn new(module: &str, trigger: ReloadTrigger, section: Option<AnySection>) -> Self {
        Self {
            module: Arc::from(module),
            trigger,
            section,
            version: 0,
            rollback: false,
            cancel: CancellationToken::new(),
        }
    }

    /// The module being reloaded.
    pub fn module(&self) -> &str {
        &self.module
    }

    /// What started the reload.
    pub fn trigger(&self) -> &ReloadTrigger {
        &self.trigger
    }

    /// The section this module should now run with, typed (the candidate on prepare, the
    /// previous value on undo).
    pub fn new_config<T: Any + Send + Sync>(&self) -> Option<Arc<T>> {
        self.section.clone()?.downcast::<T>().ok()
    }

    /// The version this reload will commit as.
    pub fn version(&self) -> u64 {
        self.version
    }

    /// Whether this call is an [`Reloadable::undo`] of an in-place apply.
    pub fn is_rollback(&self) -> bool {
        self.rollback
    }

    /// Cancelled when the hook's deadline passes or the application shuts down.
    pub fn cancellation(&self) -> &CancellationToken {
        &self.cancel
    }
}
