//! Event type and source constants of DESIGN.md §3.6.

/// Source of every reload event.
pub const RELOAD_SOURCE: &str = "/modular/reload";
/// Source of every health event.
pub const HEALTH_SOURCE: &str = "/modular/health";

pub const RELOAD_STARTED: &str = "com.modular.config.reload.started";
pub const RELOAD_COMPLETED: &str = "com.modular.config.reload.completed";
pub const RELOAD_NOOP: &str = "com.modular.config.reload.noop";
pub const RELOAD_REJECTED: &str = "com.modular.config.reload.rejected";
pub const RELOAD_FAILED: &str = "com.modular.config.reload.failed";
pub const RELOAD_REVERTED: &str = "com.modular.config.reload.reverted";
/// The health gate's window closed with readiness no worse than before the reload.
pub const RELOAD_GATE_PASSED: &str = "com.modular.config.reload.gate.passed";
pub const CIRCUIT_OPENED: &str = "com.modular.config.reload.circuit.opened";
pub const CIRCUIT_HALF_OPENED: &str = "com.modular.config.reload.circuit.half_opened";
pub const CIRCUIT_CLOSED: &str = "com.modular.config.reload.circuit.closed";

pub const HEALTH_EVALUATED: &str = "com.modular.health.evaluated";
pub const HEALTH_STATUS_CHANGED: &str = "com.modular.health.status.changed";

pub const MODULE_INITIALIZED: &str = "com.modular.module.initialized";
pub const MODULE_STARTED: &str = "com.modular.module.started";
pub const MODULE_STOPPED: &str = "com.modular.module.stopped";
pub const MODULE_FAILED: &str = "com.modular.module.failed";

/// The source of a module's events: `/modular/modules/<module>`.
pub fn module_source(module: &str) -> String {
    format!("/modular/modules/{module}")
}
