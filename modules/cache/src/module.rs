//! [`CacheModule`]: reads the `cache` section, builds the engine, registers the service, its
//! reload hook and its health check.

use std::sync::Arc;
use std::time::Duration;

use modular_core::health::{HealthAggregator, ProviderOptions};
use modular_core::{BoxError, InitContext, Module};

use crate::config::CacheConfig;
use crate::service::{Cache, CacheService};

/// The health registration's deadline is `health.timeout` plus this, so the check's own
/// `PING` deadline fires first and reports what timed out.
const HEALTH_MARGIN: Duration = Duration::from_millis(50);

/// The health registration's options for `config` (replaced on each committed reload).
pub(crate) fn provider_options(config: &CacheConfig) -> ProviderOptions {
    ProviderOptions::new()
        .with_timeout(config.health.timeout + HEALTH_MARGIN)
        .with_optional(config.health.optional)
}

/// The cache module, named `cache`.
///
/// `init` builds the configured engine (a Redis engine must answer `PING` within
/// `redis.connect_timeout`, or start-up fails) and registers it as `Arc<dyn Cache>` and as
/// `Arc<CacheService>`, with its reload hook and a health provider.
#[derive(Debug, Default)]
pub struct CacheModule {
    service: Option<Arc<CacheService>>,
}

impl CacheModule {
    /// The module, not yet initialised.
    pub fn new() -> Self {
        Self::default()
    }

    /// The running service, once `init` has run.
    pub fn service(&self) -> Option<Arc<CacheService>> {
        self.service.clone()
    }
}

#[async_trait::async_trait]
impl Module for CacheModule {
    fn name(&self) -> &str {
        "cache"
    }

    async fn init(&mut self, ctx: &mut InitContext<'_>) -> Result<(), BoxError> {
        let config: Arc<CacheConfig> = ctx.config::<CacheConfig>()?.get();
        let service = Arc::new(CacheService::new(&config).await?);
        service.attach(ctx.context());
        ctx.services()
            .register::<dyn Cache>(Arc::clone(&service) as Arc<dyn Cache>);
        ctx.services().register(Arc::clone(&service));
        ctx.services()
            .register::<dyn modular_core::kv::KeyValue>(Arc::clone(&service) as _);
        ctx.register_reloadable(Arc::new(crate::reload::CacheReloader {
            service: Arc::clone(&service),
            health: ctx.services().get::<HealthAggregator>(),
        }));
        ctx.register_health_provider(
            "cache",
            Arc::clone(&service) as Arc<dyn modular_core::health::HealthProvider>,
            provider_options(&config),
        );
        #[cfg(feature = "redis")]
        if let crate::service::Store::Redis(redis) = &service.engine.load().store {
            service.announce_connected(redis, "start");
        }
        tracing::info!(module = "cache", engine = %config.engine, "cache ready");
        self.service = Some(service);
        Ok(())
    }
}
