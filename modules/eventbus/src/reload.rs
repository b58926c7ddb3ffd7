//! The event bus's reload hook: two-phase.

use std::sync::Arc;
use std::time::Duration;

use modular_core::health::HealthAggregator;
use modular_core::{BoxError, ConfigChange, PreparedReload, ReloadContext, Reloadable};
use serde_json::json;

use crate::config::EventbusConfig;
use crate::error::EventbusError;
use crate::service::MessageBus;

/// Prepares the next routing table and engines aside (changed engines are connected and
/// checked; moving subscriptions are set up on their new engine) and commits them by one swap.
/// A failed prepare drops what it opened and the running engines never stopped serving.
pub(crate) struct EventbusReloader {
    pub(crate) bus: MessageBus,
    pub(crate) health: Option<Arc<HealthAggregator>>,
}

impl std::fmt::Debug for EventbusReloader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EventbusReloader").finish_non_exhaustive()
    }
}

#[async_trait::async_trait]
impl Reloadable for EventbusReloader {
    fn reload_timeout(&self) -> Duration {
        let config = self.bus.config();
        let longest = config
            .engines
            .values()
            .map(|e| e.connect_timeout)
            .max()
            .unwrap_or_default();
        Duration::from_secs(5).max(longest * 2 + Duration::from_secs(1))
    }

    async fn prepare(
        &self,
        ctx: &ReloadContext,
        changes: &[ConfigChange],
    ) -> Result<PreparedReload, BoxError> {
        let config =
            ctx.new_config::<EventbusConfig>()
                .ok_or_else(|| EventbusError::MissingSection {
                    module: ctx.module().to_owned(),
                })?;
        let fields: Vec<String> = changes.iter().map(|c| c.field_path.to_string()).collect();
        let prepared = match self.bus.prepare(&config).await {
            Ok(prepared) => prepared,
            Err(error) => {
                tracing::warn!(module = "eventbus", version = ctx.version(), %error, "eventbus reload failed to prepare; the running engines keep serving");
                return Err(error.into());
            }
        };
        let bus = self.bus.clone();
        let aborted = self.bus.clone();
        let version = ctx.version();
        let health = self.health.clone();
        let options = crate::module::provider_options(&config);
        Ok(PreparedReload::new(move || {
            let reconnected = prepared.reconnected.clone();
            bus.commit(prepared);
            if let Some(health) = &health {
                health.set_provider_options("eventbus", options);
            }
            tracing::info!(module = "eventbus", version, fields = ?fields, reconnected = ?reconnected, "eventbus reloaded");
            bus.emit(
                "engine.reloaded",
                json!({ "fields": fields, "version": version, "reconnected": reconnected }),
            );
        })
        .on_abort(move || {
            aborted.emit("reload.aborted", json!({ "version": version }));
        }))
    }
}
