//! The health check: every configured schema compiled and current.

use modular_core::ConfigHandle;
use modular_core::health::{
    HealthContext, HealthError, HealthProvider, HealthReport, HealthStatus,
};
use serde_json::{Map, json};

use crate::config::JsonSchemaConfig;
use crate::loader;
use crate::module::NAME;
use crate::schemas::JsonSchemas;

/// One report, component `schemas`:
///
/// - `degraded` while the schema files on disk do not compile (an edit the watcher picked
///   up): the message names the file and the location, and the last good set keeps
///   validating. It stays degraded until the files compile again (fixing or reverting the
///   file). A config reload whose candidate does not compile is not a health matter: the
///   reload fails, the running config and set stay and both are current (the outcome, the
///   `schemas.rejected` event and core's breaker record it; `details.last_rejection` too);
/// - `degraded` when the watcher is off and the files changed since they were compiled (the
///   running set is not current; a config reload recompiles);
/// - `healthy` otherwise.
///
/// Details: `schemas` (the names), `generation`, `rejected_total`, `watch` (the watch in
/// force: `enabled`, `debounce_ms`, `directories`), and `file` and `error` of the failure
/// when there is one.
pub(crate) struct SchemaHealth {
    schemas: JsonSchemas,
    config: ConfigHandle<JsonSchemaConfig>,
}

impl SchemaHealth {
    pub(crate) fn new(schemas: JsonSchemas, config: ConfigHandle<JsonSchemaConfig>) -> Self {
        Self { schemas, config }
    }
}

#[async_trait::async_trait]
impl HealthProvider for SchemaHealth {
    async fn health_check(&self, _ctx: &HealthContext) -> Result<Vec<HealthReport>, HealthError> {
        let set = self.schemas.current();
        let (rejection, rejected_total, fingerprint, watching, last) = {
            let state = self.schemas.state();
            (
                state.rejection.clone(),
                state.rejected_total,
                state.fingerprint,
                state.watching.clone(),
                state.last_rejection.clone(),
            )
        };
        let config = self.config.get();
        let mut details = Map::new();
        details.insert("schemas".to_owned(), json!(set.names()));
        details.insert("generation".to_owned(), json!(set.generation()));
        details.insert("rejected_total".to_owned(), json!(rejected_total));
        if let Some(last) = &last {
            details.insert("last_rejection".to_owned(), json!(last));
        }
        if let Some(plan) = &watching {
            details.insert(
                "watch".to_owned(),
                json!({
                    "enabled": plan.enabled,
                    "debounce_ms": u64::try_from(plan.debounce.as_millis()).unwrap_or(u64::MAX),
                    "directories": plan.directories,
                }),
            );
        }
        let (status, message) = if let Some(rejection) = rejection {
            details.insert("file".to_owned(), json!(rejection.file));
            details.insert("error".to_owned(), json!(rejection.error));
            (
                HealthStatus::Degraded,
                format!(
                    "the schemas failed to recompile, the previous set keeps validating: {}",
                    rejection.error
                ),
            )
        } else if !config.watch.enabled
            && fingerprint.is_some_and(|f| f != loader::fingerprint(&config.schemas))
        {
            (
                HealthStatus::Degraded,
                "the schema files changed since they were compiled and the watcher is off; reload to apply them".to_owned(),
            )
        } else {
            (
                HealthStatus::Healthy,
                format!("{} schemas compiled", set.len()),
            )
        };
        Ok(vec![
            HealthReport::new(NAME, "schemas", status)
                .with_message(message)
                .with_details(details),
        ])
    }
}
