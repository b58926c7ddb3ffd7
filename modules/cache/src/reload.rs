//! The cache's reload hook: two-phase.

use std::sync::Arc;
use std::time::Duration;

use modular_core::health::HealthAggregator;
use modular_core::{BoxError, ConfigChange, PreparedReload, ReloadContext, Reloadable};
use serde_json::json;

use crate::config::CacheConfig;
use crate::error::CacheError;
use crate::service::{CacheService, Store};

/// How long a reload may take at least; a Redis reconnect may take `redis.connect_timeout`
/// plus a second of margin when that is longer.
const MIN_RELOAD_TIMEOUT: Duration = Duration::from_secs(5);

/// Prepares dynamic changes aside and commits them by one swap (see
/// [`CacheService::prepare_engine`]): `default_ttl` and `health.latency_threshold` take effect
/// with the new engine; `max_items` rebuilds the memory cache aside and carries the hottest
/// entries over; `redis.url` and the Redis timeouts open a new connection and check it with
/// `PING`. When any module of the reload fails to prepare, the prepared engine is dropped and
/// the running one never stopped serving.
/// `health.timeout` and `health.optional` replace the health registration's options at
/// commit.
pub(crate) struct CacheReloader {
    pub(crate) service: Arc<CacheService>,
    /// The aggregator the cache's health provider is registered with, if any.
    pub(crate) health: Option<Arc<HealthAggregator>>,
}

impl std::fmt::Debug for CacheReloader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CacheReloader")
            .field("health", &self.health.is_some())
            .finish_non_exhaustive()
    }
}

#[async_trait::async_trait]
impl Reloadable for CacheReloader {
    fn reload_timeout(&self) -> Duration {
        match &self.service.engine.load().store {
            #[cfg(feature = "redis")]
            Store::Redis(redis) => {
                MIN_RELOAD_TIMEOUT.max(redis.connect_timeout() + Duration::from_secs(1))
            }
            Store::Memory(_) => MIN_RELOAD_TIMEOUT,
        }
    }

    async fn prepare(
        &self,
        ctx: &ReloadContext,
        changes: &[ConfigChange],
    ) -> Result<PreparedReload, BoxError> {
        let config = ctx
            .new_config::<CacheConfig>()
            .ok_or_else(|| CacheError::MissingSection {
                module: ctx.module().to_owned(),
            })?;
        let fields: Vec<String> = changes.iter().map(|c| c.field_path.to_string()).collect();
        // `max_items` bounds the memory engine only; on Redis the server's `maxmemory` does.
        // Reporting such a change as applied would claim a bound nothing enforces.
        if self.service.engine() == crate::CacheEngine::Redis
            && changes.iter().any(|c| c.is_under("max_items"))
        {
            return Err(CacheError::NotOnThisEngine {
                field: "cache.max_items",
                engine: "redis",
                hint: "the redis engine is bounded by the server's maxmemory policy",
            }
            .into());
        }
        let prepared = match self.service.prepare_engine(&config).await {
            Ok(prepared) => prepared,
            Err(error) => {
                tracing::warn!(module = "cache", version = ctx.version(), %error, "cache reload failed to prepare; the running engine keeps serving");
                return Err(error.into());
            }
        };
        let service = Arc::clone(&self.service);
        let aborted = Arc::clone(&self.service);
        let version = ctx.version();
        let health = self.health.clone();
        let options = crate::module::provider_options(&config);
        Ok(PreparedReload::new(move || {
            let applied = service.commit_engine(prepared);
            if let Some(health) = &health {
                health.set_provider_options("cache", options);
            }
            let (kept, dropped) = applied
                .rebuilt
                .map_or((None, None), |c| (Some(c.kept), Some(c.dropped)));
            tracing::info!(
                module = "cache",
                version,
                fields = ?fields,
                rebuilt = applied.rebuilt.is_some(),
                reconnected = applied.reconnected,
                "cache reloaded"
            );
            service.emit(
                "engine.reloaded",
                json!({
                    "engine": service.engine().as_str(),
                    "fields": fields,
                    "version": version,
                    "rebuilt": applied.rebuilt.is_some(),
                    "carried_over": kept,
                    "dropped": dropped,
                    "reconnected": applied.reconnected,
                }),
            );
        })
        .on_abort(move || {
            tracing::debug!(module = "cache", version, "prepared cache engine dropped");
            aborted.emit("reload.aborted", json!({ "version": version }));
        }))
    }
}
