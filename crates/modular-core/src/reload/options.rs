//! Reload settings and the modules the orchestrator drives.

use std::sync::Arc;
use std::time::Duration;

use super::Reloadable;

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
    /// Watch readiness after a reload and revert it when readiness got worse (without
    /// holding the reload worker).
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

