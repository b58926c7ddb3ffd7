//! Dynamic configuration reload (DESIGN.md §3.4).
//!
//! Every trigger (file change, SIGHUP, `app.reload()`, a runtime override, the admin API)
//! runs the same pipeline, one reload at a time: load, validate, diff, classify, plan,
//! apply (with enforced timeouts and caught panics), roll back on failure, commit, and an
//! optional health gate that reverts a reload after which readiness got worse.

mod breaker;
mod history;
mod orchestrator;
mod outcome;
mod watcher;

use std::any::Any;
use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::config::{AnySection, ConfigChange};
use crate::error::BoxError;

pub use breaker::{BreakerState, CircuitBreaker};
pub use history::HistoryEntry;
pub use orchestrator::{ReloadOptions, ReloadOrchestrator, ReloadTarget, StaticPolicy};
pub use outcome::{ModuleFailure, ReloadOutcome, ReloadStatus};
pub use watcher::{ConfigWatcher, content_fingerprint};

/// What started a reload.
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
        }
    }
}

impl std::fmt::Display for ReloadTrigger {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A module's reload hook.
///
/// `reload` receives only its own section's changes and must apply them all or nothing:
/// build the new state aside, then swap it in. It runs under [`Reloadable::reload_timeout`],
/// enforced by the orchestrator (the future is dropped at the deadline), with panics caught.
/// On rollback it is called again with the inverse changes and the previous section.
#[async_trait::async_trait]
pub trait Reloadable: Send + Sync + 'static {
    /// Whether the module can reload now; `false` skips it (its changes stay pending and are
    /// retried next reload).
    fn can_reload(&self) -> bool {
        true
    }

    /// How long one reload may take.
    fn reload_timeout(&self) -> Duration {
        Duration::from_secs(5)
    }

    /// Applies `changes` (this module's dynamic changes only).
    async fn reload(&self, ctx: &ReloadContext, changes: &[ConfigChange]) -> Result<(), BoxError>;
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

    /// The section this module should now run with, typed (the candidate on apply, the
    /// previous value on rollback).
    pub fn new_config<T: Any + Send + Sync>(&self) -> Option<Arc<T>> {
        self.section.clone()?.downcast::<T>().ok()
    }

    /// The version this reload will commit as.
    pub fn version(&self) -> u64 {
        self.version
    }

    /// Whether this call undoes an earlier apply of the same reload.
    pub fn is_rollback(&self) -> bool {
        self.rollback
    }

    /// Cancelled when the hook's deadline passes or the application shuts down.
    pub fn cancellation(&self) -> &CancellationToken {
        &self.cancel
    }
}
