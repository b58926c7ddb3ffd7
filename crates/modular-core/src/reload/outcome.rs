//! [`ReloadOutcome`]: what one reload did (also the JSON body of `POST /admin/reload`).

use serde::Serialize;

use crate::config::{ConfigChange, ValidationError};

use super::ReloadTrigger;

/// How a reload ended.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ReloadStatus {
    /// Changes were applied and committed as a new version.
    Applied,
    /// Nothing changed; no module was called.
    Noop,
    /// The candidate was invalid or needed a restart; nothing was applied.
    Rejected,
    /// A module failed to prepare; every prepared state was dropped and nothing was committed.
    Failed,
    /// The circuit breaker is open; nothing was tried.
    CircuitOpen,
    /// A dry run whose reload would apply: the plan, nothing applied (a dry run that would be
    /// a `noop` or `rejected` says so instead).
    Planned,
}

impl ReloadStatus {
    /// The snake_case name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Applied => "applied",
            Self::Noop => "noop",
            Self::Rejected => "rejected",
            Self::Failed => "failed",
            Self::CircuitOpen => "circuit_open",
            Self::Planned => "planned",
        }
    }
}

/// A module that failed to apply or to roll back.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ModuleFailure {
    /// The module.
    pub module: String,
    /// What went wrong.
    pub error: String,
}

/// The result of one reload (or of a dry run).
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ReloadOutcome {
    /// How it ended.
    pub status: ReloadStatus,
    /// The config version after it (the running version when nothing was committed).
    pub version: u64,
    /// What started it.
    pub trigger: ReloadTrigger,
    /// The id of its diff.
    pub diff_id: Option<uuid::Uuid>,
    /// Every change seen (redacted when serialized).
    pub changes: Vec<ConfigChange>,
    /// Modules that prepared and committed, in order.
    pub reloaded: Vec<String>,
    /// Modules skipped because `can_reload()` was false.
    pub skipped: Vec<String>,
    /// The module that failed, if any.
    pub failed_module: Option<String>,
    /// The error, if any.
    pub error: Option<String>,
    /// Validation errors, each with `path`, `source` and `message`.
    pub errors: Vec<ValidationError>,
    /// Full paths of changes to non-dynamic fields.
    pub static_changes: Vec<String>,
    /// Modules whose prepared state was dropped after a failure, in abort order (nothing of
    /// theirs was ever published).
    pub aborted: Vec<String>,
    /// Modules that had applied in place and were undone after a failure, in undo order.
    pub rolled_back: Vec<String>,
    /// Undos that failed in turn (only modules that apply in place can have one).
    pub rollback_errors: Vec<ModuleFailure>,
    /// Full paths waiting for a restart (policy `apply_dynamic`).
    pub pending_restart: Vec<String>,
    /// With `circuit_open`: when to try again.
    pub retry_after_ms: Option<u64>,
    /// The modules the plan would call, in order (filled by dry runs and reloads alike).
    pub plan: Vec<String>,
    /// `watching` when the health gate watches this version: its verdict follows as an
    /// event and in the history entry.
    pub health_gate: Option<String>,
    /// Whether this was a dry run.
    pub dry_run: bool,
    /// The revision of each remote config layer the committed version was read at, by source
    /// name (empty without remote layers or when nothing was committed).
    #[serde(skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub source_revisions: std::collections::BTreeMap<String, String>,
    /// How long it took.
    pub duration_ms: f64,
}

impl ReloadOutcome {
    pub(crate) fn new(status: ReloadStatus, trigger: ReloadTrigger, version: u64) -> Self {
        Self {
            status,
            version,
            trigger,
            diff_id: None,
            changes: Vec::new(),
            reloaded: Vec::new(),
            skipped: Vec::new(),
            failed_module: None,
            error: None,
            errors: Vec::new(),
            static_changes: Vec::new(),
            aborted: Vec::new(),
            rolled_back: Vec::new(),
            rollback_errors: Vec::new(),
            pending_restart: Vec::new(),
            retry_after_ms: None,
            plan: Vec::new(),
            health_gate: None,
            dry_run: false,
            source_revisions: std::collections::BTreeMap::new(),
            duration_ms: 0.0,
        }
    }

    /// Whether changes were applied.
    pub fn is_applied(&self) -> bool {
        self.status == ReloadStatus::Applied
    }
}
