//! The cache's reload hook.

use std::time::Duration;

use modular_core::{BoxError, ConfigChange, ReloadContext, Reloadable};
use serde_json::json;

use crate::config::CacheConfig;
use crate::error::CacheError;
use crate::service::{CacheService, Store};

/// How long a reload may take at least; a Redis reconnect may take `redis.connect_timeout`
/// plus a second of margin when that is longer.
const MIN_RELOAD_TIMEOUT: Duration = Duration::from_secs(5);

/// Applies dynamic changes all or nothing (see [`CacheService`]): `default_ttl` and
/// `health.latency_threshold` swap in at once; `max_items` rebuilds the memory cache aside and
/// carries the hottest entries over; `redis.url` and the Redis timeouts open a new connection,
/// check it with `PING`, and swap it in, leaving the old one serving when that fails.
///
/// A rollback is the same operation towards the previous section: it reconnects to the
/// previous Redis URL, or rebuilds the memory cache at the previous bound (the entries a
/// shrink dropped are not restored).
#[async_trait::async_trait]
impl Reloadable for CacheService {
    fn reload_timeout(&self) -> Duration {
        match &self.engine.load().store {
            #[cfg(feature = "redis")]
            Store::Redis(redis) => {
                MIN_RELOAD_TIMEOUT.max(redis.connect_timeout() + Duration::from_secs(1))
            }
            Store::Memory(_) => MIN_RELOAD_TIMEOUT,
        }
    }

    async fn reload(&self, ctx: &ReloadContext, changes: &[ConfigChange]) -> Result<(), BoxError> {
        let config = ctx
            .new_config::<CacheConfig>()
            .ok_or_else(|| CacheError::MissingSection {
                module: ctx.module().to_owned(),
            })?;
        let fields: Vec<&str> = changes.iter().map(|c| c.field_path.as_ref()).collect();
        let applied = match self.apply(&config).await {
            Ok(applied) => applied,
            Err(error) => {
                tracing::warn!(module = "cache", version = ctx.version(), rollback = ctx.is_rollback(), %error, "cache reload failed; the running engine keeps serving");
                return Err(error.into());
            }
        };
        let (kept, dropped) = applied
            .rebuilt
            .map_or((None, None), |c| (Some(c.kept), Some(c.dropped)));
        tracing::info!(
            module = "cache",
            version = ctx.version(),
            rollback = ctx.is_rollback(),
            fields = ?fields,
            rebuilt = applied.rebuilt.is_some(),
            reconnected = applied.reconnected,
            "cache reloaded"
        );
        self.emit(
            "reloaded",
            json!({
                "engine": self.engine().as_str(),
                "fields": fields,
                "version": ctx.version(),
                "rollback": ctx.is_rollback(),
                "rebuilt": applied.rebuilt.is_some(),
                "carried_over": kept,
                "dropped": dropped,
                "reconnected": applied.reconnected,
            }),
        );
        Ok(())
    }
}
