//! The JSON answers of the built-in endpoints, as Rust types: the admin handlers serialize
//! these, and the OpenAPI spec (`GET /admin/openapi.json`) takes its schemas from them.
//!
//! The health bodies are rendered by core's renderers (`modular_core::health::render`), which
//! every HTTP framework shares; [`HealthAnswer`], [`ModuleHealth`] and [`IetfHealth`] describe
//! what they write, and `cargo xtask api-test` checks every answer against them.

use std::collections::BTreeMap;

use modular_core::ReloadOutcome;
use modular_core::health::HealthStatus;
use modular_core::reload::{HistoryEntry, RevertedVersion};
use serde::Serialize;
use serde_json::Value;
use utoipa::ToSchema;

/// An answer that is not the endpoint's normal body: `{"error": "..."}`.
#[derive(Debug, Serialize, ToSchema)]
// No other field: so the spec tells it apart from a `ReloadOutcome` (which has an `error` too).
#[serde(deny_unknown_fields)]
pub(crate) struct ErrorBody {
    /// What went wrong, lowercase.
    pub(crate) error: String,
}

/// A `503` of the reload endpoints: the outcome of a reload refused by the open circuit
/// breaker, or an error when the application has no dynamic reload.
// Schema only: the handlers answer either type directly.
#[allow(dead_code)]
#[derive(Debug, Serialize, ToSchema)]
#[serde(untagged)]
pub(crate) enum Unavailable {
    /// `circuit_open`, with `Retry-After`.
    CircuitOpen(Box<ReloadOutcome>),
    /// Dynamic reload is not enabled.
    NotEnabled(ErrorBody),
}

/// `GET /admin/config`: the running configuration, secrets redacted.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct ConfigAnswer {
    /// The running config version.
    pub(crate) version: u64,
    /// Every section, sensitive and secret fields redacted.
    #[schema(value_type = Object)]
    pub(crate) config: Value,
    /// Static fields whose change waits for a restart (dotted paths).
    pub(crate) pending_restart: Vec<String>,
    /// The last reload that was rejected, if any.
    pub(crate) last_rejected: Option<ReloadOutcome>,
    /// The last version the health gate reverted, if any.
    pub(crate) last_reverted: Option<RevertedVersion>,
    /// Whether the sources still say what the health gate reverted.
    pub(crate) sources_differ: bool,
}

/// `GET /admin/config/history`: the running version and the bounded history, oldest first.
#[derive(Serialize, ToSchema)]
pub(crate) struct HistoryAnswer {
    /// The running config version.
    pub(crate) version: u64,
    /// The committed versions kept.
    pub(crate) history: Vec<HistoryEntry>,
}

/// `GET /admin/config/overrides`: dotted keys to values, sensitive and secret ones redacted.
#[derive(Debug, Serialize, ToSchema)]
#[serde(transparent)]
pub(crate) struct OverridesAnswer(pub(crate) BTreeMap<String, Value>);

/// The native health JSON of `GET /health`, `/health/ready` and `/health/live`.
// Schema only: core's renderer writes this body.
#[allow(dead_code)]
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct HealthAnswer {
    /// Every check folded (`unknown` counts as `unhealthy`).
    pub(crate) status: HealthStatus,
    /// The readiness checks folded.
    pub(crate) readiness: HealthStatus,
    /// The liveness checks folded.
    pub(crate) liveness: HealthStatus,
    /// The startup checks folded.
    pub(crate) startup: HealthStatus,
    /// The config version the checks ran under.
    pub(crate) config_version: u64,
    /// When the answer was computed (RFC 3339).
    pub(crate) generated_at: String,
    /// One report per component.
    pub(crate) checks: Vec<CheckReport>,
}

/// `GET /health/checks/{module}`: one module's reports.
// Schema only: core's renderer writes this body.
#[allow(dead_code)]
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct ModuleHealth {
    /// The module.
    pub(crate) module: String,
    /// The worst of its reports.
    pub(crate) status: HealthStatus,
    /// Its reports.
    pub(crate) checks: Vec<CheckReport>,
}

/// One component's report. Unauthorized callers (by `health.show_details`) see `module`,
/// `component` and `status` only.
// Schema only: core's renderer writes this body.
#[allow(dead_code)]
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct CheckReport {
    /// The module.
    pub(crate) module: String,
    /// The component within it.
    pub(crate) component: String,
    /// Its status.
    pub(crate) status: HealthStatus,
    /// Whether it never fails readiness (details only).
    pub(crate) optional: Option<bool>,
    /// What the check said (details only).
    pub(crate) message: Option<String>,
    /// When it last ran (RFC 3339, details only).
    pub(crate) checked_at: Option<String>,
    /// Since when it has had this status (RFC 3339, details only).
    pub(crate) observed_since: Option<String>,
    /// How long it took (details only).
    pub(crate) duration_ms: Option<f64>,
    /// The check's own details (details only).
    #[schema(value_type = Option<Object>)]
    pub(crate) details: Option<Value>,
}

/// The IETF health check response (`Accept: application/health+json`).
// Schema only: core's renderer writes this body.
#[allow(dead_code)]
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct IetfHealth {
    /// The probe's status.
    pub(crate) status: IetfStatus,
    /// Reports keyed `module:component`.
    pub(crate) checks: BTreeMap<String, Vec<IetfCheck>>,
}

/// `pass`, `warn` or `fail`.
// Schema only: core's renderer writes this body.
#[allow(dead_code)]
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub(crate) enum IetfStatus {
    /// Healthy.
    Pass,
    /// Degraded.
    Warn,
    /// Unhealthy or unknown.
    Fail,
}

/// One component in the IETF format.
// Schema only: core's renderer writes this body.
#[allow(dead_code)]
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct IetfCheck {
    /// The component.
    pub(crate) component_id: String,
    /// Its status.
    pub(crate) status: IetfStatus,
    /// When it last ran (details only).
    pub(crate) time: Option<String>,
    /// How long it took, in `observedUnit` (details only).
    pub(crate) observed_value: Option<f64>,
    /// `ms` (details only).
    pub(crate) observed_unit: Option<String>,
    /// The message of a check that does not pass (details only).
    pub(crate) output: Option<String>,
    /// The check's own details (details only).
    #[schema(value_type = Option<Object>)]
    pub(crate) details: Option<Value>,
}
