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

/// The `reload:` config section: the machinery's own settings, read once at `build()`.
///
/// Every key is optional; a key that is set replaces the value the application gave in code
/// ([`ApplicationBuilder::with_reload_options`](crate::ApplicationBuilder::with_reload_options)),
/// so operators can tune the pipeline without a rebuild. The section is static: changing it
/// needs a restart (a reload that changes it is refused as restart-required, or recorded as
/// pending under `static_policy: apply_dynamic`).
///
/// ```yaml
/// reload:
///   debounce: 250ms
///   static_policy: reject        # or apply_dynamic
///   history: 20
///   watch_files: true
///   health_gate:
///     enabled: true
///     window: 3s
///     interval: 500ms
///   breaker:
///     threshold: 3
///     backoff: 2s
///     max_backoff: 2m
/// ```
#[derive(
    Clone, Debug, Default, PartialEq, serde::Serialize, serde::Deserialize, crate::DynamicConfig,
)]
#[serde(default, deny_unknown_fields)]
pub struct ReloadSection {
    /// Trailing debounce of file events.
    #[serde(with = "humantime_serde::option")]
    pub debounce: Option<Duration>,
    /// What to do with changes to non-dynamic fields.
    pub static_policy: Option<StaticPolicy>,
    /// Versions kept in history.
    pub history: Option<usize>,
    /// Watch config files for changes.
    pub watch_files: Option<bool>,
    /// The health gate.
    #[config(nested)]
    pub health_gate: HealthGateSection,
    /// The circuit breaker.
    #[config(nested)]
    pub breaker: BreakerSection,
}

/// `reload.health_gate`.
#[derive(
    Clone, Debug, Default, PartialEq, serde::Serialize, serde::Deserialize, crate::DynamicConfig,
)]
#[serde(default, deny_unknown_fields)]
pub struct HealthGateSection {
    /// Watch readiness after each reload and revert when it got worse.
    pub enabled: Option<bool>,
    /// How long after a reload the gate watches.
    #[serde(with = "humantime_serde::option")]
    pub window: Option<Duration>,
    /// How often it looks within the window.
    #[serde(with = "humantime_serde::option")]
    pub interval: Option<Duration>,
}

/// `reload.breaker`.
#[derive(
    Clone, Debug, Default, PartialEq, serde::Serialize, serde::Deserialize, crate::DynamicConfig,
)]
#[serde(default, deny_unknown_fields)]
pub struct BreakerSection {
    /// Consecutive failures that open the breaker.
    pub threshold: Option<u32>,
    /// The first backoff once open.
    #[serde(with = "humantime_serde::option")]
    pub backoff: Option<Duration>,
    /// The longest backoff.
    #[serde(with = "humantime_serde::option")]
    pub max_backoff: Option<Duration>,
}

impl ReloadSection {
    /// `options` with every key this section sets replaced.
    pub fn apply_to(&self, mut options: ReloadOptions) -> ReloadOptions {
        if let Some(v) = self.debounce {
            options.debounce = v;
        }
        if let Some(v) = self.static_policy {
            options.static_policy = v;
        }
        if let Some(v) = self.history {
            options.history = v;
        }
        if let Some(v) = self.watch_files {
            options.watch_files = v;
        }
        if let Some(v) = self.health_gate.enabled {
            options.health_gate = v;
        }
        if let Some(v) = self.health_gate.window {
            options.health_gate_window = v;
        }
        if let Some(v) = self.health_gate.interval {
            options.health_gate_interval = v;
        }
        if let Some(v) = self.breaker.threshold {
            options.breaker_threshold = v;
        }
        if let Some(v) = self.breaker.backoff {
            options.breaker_backoff = v;
        }
        if let Some(v) = self.breaker.max_backoff {
            options.breaker_max_backoff = v;
        }
        options
    }
}
