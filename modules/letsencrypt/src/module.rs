//! [`LetsEncryptModule`]: loads the stored certificates at init (served at once, without the
//! CA), registers the resolver, the `LetsEncrypt` service, the HTTP-01 route, the reload
//! hook and the health check, and starts the renewal task.

use std::sync::Arc;
use std::time::Duration;

use modular_core::health::{HealthAggregator, HealthProvider, ProviderOptions};
use modular_core::http::RouteRegistry;
use modular_core::{
    BoxError, ConfigChange, InitContext, Module, ModuleContext, PreparedReload, ReloadContext,
    Reloadable,
};

use crate::challenge::CHALLENGE_PATH;
use crate::config::LetsEncryptConfig;
use crate::error::LetsEncryptError;
use crate::health::CertificateHealth;
use crate::manager::{self, LetsEncrypt, Loaded};
use crate::storage::Storage;

/// The module's name, its section and its health registration.
pub(crate) const NAME: &str = "letsencrypt";

/// The health check reads memory only.
const HEALTH_TIMEOUT: Duration = Duration::from_millis(200);

/// The letsencrypt module, named `letsencrypt`.
#[derive(Debug, Default)]
pub struct LetsEncryptModule {
    service: Option<LetsEncrypt>,
}

impl LetsEncryptModule {
    /// The module; its certificates come from the `letsencrypt` section.
    pub fn new() -> Self {
        Self::default()
    }
}

fn provider_options(config: &LetsEncryptConfig) -> ProviderOptions {
    config.health.options(HEALTH_TIMEOUT)
}

#[async_trait::async_trait]
impl Module for LetsEncryptModule {
    fn name(&self) -> &str {
        NAME
    }

    async fn init(&mut self, ctx: &mut InitContext<'_>) -> Result<(), BoxError> {
        let handle = ctx.config::<LetsEncryptConfig>()?;
        let config = (*handle.get()).clone();
        let storage = Storage::open(&config.storage_dir)
            .map_err(|e| LetsEncryptError::storage(&config.storage_dir, e))?;
        let states = manager::load_states(&storage, &config);
        let loaded = states.values().filter(|s| s.issued.is_some()).count();
        let service = LetsEncrypt::new(config.clone(), storage, states);
        modular_core::tls::register_resolver(
            ctx.services(),
            config.resolver_name.as_deref(),
            service.resolver(),
        );
        ctx.services().register(Arc::new(service.clone()));
        RouteRegistry::shared(ctx.services()).route(
            NAME,
            CHALLENGE_PATH,
            service.inner.tokens.route(),
        );
        ctx.register_reloadable(Arc::new(CertificateReloader {
            service: service.clone(),
            health: ctx.services().get::<HealthAggregator>(),
        }));
        ctx.register_health_provider(
            NAME,
            Arc::new(CertificateHealth {
                service: service.clone(),
            }) as Arc<dyn HealthProvider>,
            provider_options(&config),
        );
        tracing::info!(
            module = NAME,
            certificates = config.certificates.len(),
            loaded,
            "certificates loaded from storage"
        );
        self.service = Some(service);
        Ok(())
    }

    async fn start(&self, ctx: &ModuleContext) -> Result<(), BoxError> {
        if let Some(service) = &self.service {
            ctx.spawn(service.clone().run(ctx.clone()));
        }
        Ok(())
    }
}

/// Reads the stored certificates of newly configured names aside in `prepare`; the commit
/// swaps the config in, brings the certificate set in line (removed names leave the
/// resolver at once) and wakes the renewal task, which orders what is missing while the old
/// certificates keep serving.
struct CertificateReloader {
    service: LetsEncrypt,
    health: Option<Arc<HealthAggregator>>,
}

impl std::fmt::Debug for CertificateReloader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CertificateReloader")
            .finish_non_exhaustive()
    }
}

#[async_trait::async_trait]
impl Reloadable for CertificateReloader {
    async fn prepare(
        &self,
        ctx: &ReloadContext,
        _changes: &[ConfigChange],
    ) -> Result<PreparedReload, BoxError> {
        let config = ctx.new_config::<LetsEncryptConfig>().ok_or_else(|| {
            LetsEncryptError::MissingSection {
                module: ctx.module().to_owned(),
            }
        })?;
        let config = (*config).clone();
        let running: Vec<String> = self
            .service
            .certificates()
            .into_iter()
            .map(|c| c.name)
            .collect();
        let storage = self.service.storage().clone();
        let new_names: Vec<String> = config
            .certificates
            .keys()
            .filter(|name| !running.contains(name))
            .cloned()
            .collect();
        let loaded: Loaded = tokio::task::spawn_blocking(move || {
            new_names
                .into_iter()
                .map(|name| {
                    let issued = manager::load_stored(&storage, &name);
                    (name, issued)
                })
                .collect()
        })
        .await
        .map_err(|e| LetsEncryptError::storage("(reader)", e))?;
        let service = self.service.clone();
        let health = self.health.clone();
        Ok(PreparedReload::new(move || {
            if let Some(health) = &health {
                health.set_provider_options(NAME, provider_options(&config));
            }
            service.commit(config, loaded);
        }))
    }
}
