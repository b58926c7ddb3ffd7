//! [`DatabaseModule`]: the module itself, and its reload hook.

use std::sync::Arc;
use std::time::Duration;

use modular_core::health::HealthAggregator;
use modular_core::{
    BoxError, ConfigChange, InitContext, Module, ModuleContext, PreparedReload, ReloadContext,
    Reloadable,
};

use crate::MODULE_NAME;
use crate::config::{DEFAULT_HEALTH_TIMEOUT, DatabaseConfig};
use crate::error::DatabaseError;
use crate::health::DatabaseHealth;
use crate::lifecycle::Pools;
use crate::service::{Database, DatabaseService};

/// How long one reload may take in all. Each step bounds itself well below this (every new
/// pool by its `connect_timeout`); the margin covers migrations.
pub const RELOAD_TIMEOUT: Duration = Duration::from_secs(60);

/// The database module: named sqlx pools for PostgreSQL, MySQL/MariaDB and SQLite, reloadable
/// and health-checked. See the [crate docs](crate).
///
/// ```no_run
/// # async fn demo() -> Result<(), modular_core::Error> {
/// use modular_core::Application;
/// use modular_database::DatabaseModule;
///
/// let app = Application::builder()
///     .config_file("config.yaml")
///     .module(DatabaseModule::new())
///     .with_dynamic_reload()
///     .with_health_aggregator()
///     .build()
///     .await?;
/// app.run().await
/// # }
/// ```
#[derive(Debug, Default)]
pub struct DatabaseModule {
    pools: Option<Pools>,
}

impl DatabaseModule {
    /// A module that reads the `database` section.
    pub fn new() -> Self {
        Self::default()
    }
}

#[modular_core::async_trait]
impl Module for DatabaseModule {
    fn name(&self) -> &str {
        MODULE_NAME
    }

    /// Opens every connection (each within its `connect_timeout`) and runs its migrations, so
    /// modules that depend on `database` find migrated, connected pools in their own `init`.
    /// Registers `Arc<DatabaseService>` and `Arc<dyn Database>`, the reload hook and the health
    /// provider.
    async fn init(&mut self, ctx: &mut InitContext<'_>) -> Result<(), BoxError> {
        let config = ctx.config::<DatabaseConfig>()?.get();
        let service = Arc::new(DatabaseService::new());
        let pools = Pools::new(ctx.context(), Arc::clone(&service));
        pools.start(&config).await?;

        ctx.services()
            .register::<DatabaseService>(Arc::clone(&service));
        ctx.services()
            .register::<dyn Database>(Arc::clone(&service) as Arc<dyn Database>);
        ctx.register_reloadable(Arc::new(DatabaseReloader {
            pools: pools.clone(),
            health: ctx.services().get::<HealthAggregator>(),
        }));
        // Each ping bounds itself by its connection's `ping_timeout` (at most
        // MAX_PING_TIMEOUT), so the default deadline is only a backstop.
        ctx.register_health_provider(
            MODULE_NAME,
            Arc::new(DatabaseHealth {
                service: Arc::clone(&service),
            }),
            config.health.options(DEFAULT_HEALTH_TIMEOUT),
        );
        self.pools = Some(pools);
        Ok(())
    }

    /// Closes every pool, letting queries in flight finish within the shutdown deadline: the
    /// running pools and the pools a reload replaced or removed that are still draining.
    async fn stop(&self, _ctx: &ModuleContext) -> Result<(), BoxError> {
        if let Some(pools) = &self.pools {
            pools.close_all().await;
        }
        Ok(())
    }
}

/// Prepares a new `database` section by building pools aside; commits by swapping them in,
/// and replaces the health registration's options when `health.*` changed.
#[derive(Debug)]
struct DatabaseReloader {
    pools: Pools,
    /// The aggregator the health provider is registered with, if any.
    health: Option<Arc<HealthAggregator>>,
}

#[modular_core::async_trait]
impl Reloadable for DatabaseReloader {
    fn reload_timeout(&self) -> Duration {
        RELOAD_TIMEOUT
    }

    async fn prepare(
        &self,
        ctx: &ReloadContext,
        changes: &[ConfigChange],
    ) -> Result<PreparedReload, BoxError> {
        let config = ctx
            .new_config::<DatabaseConfig>()
            .ok_or(DatabaseError::MissingSection)?;
        tracing::debug!(
            module = MODULE_NAME,
            version = ctx.version(),
            changes = changes.len(),
            "preparing database configuration"
        );
        let prepared = self.pools.prepare(&config).await?;
        let health = self
            .health
            .clone()
            .filter(|_| changes.iter().any(|c| c.is_under("health")))
            .map(|aggregator| (aggregator, config.health.options(DEFAULT_HEALTH_TIMEOUT)));
        // Dropping `prepared` (an abort) closes the pools it opened.
        Ok(PreparedReload::new(move || {
            prepared.commit();
            if let Some((aggregator, options)) = health {
                aggregator.set_provider_options(MODULE_NAME, options);
            }
        }))
    }
}
