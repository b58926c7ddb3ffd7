//! [`HttpClientModule`]: wires the client into an application (service, reload, health).

use std::sync::Arc;

use modular_core::health::HealthAggregator;
use modular_core::{
    BoxError, ConfigChange, InitContext, Module, PreparedReload, ReloadContext, Reloadable,
};

use crate::client::{HttpClient, Rebuild};
use crate::config::{DEFAULT_HEALTH_TIMEOUT, HttpClientConfig};
use crate::error::HttpClientError;
use crate::health::HttpClientHealth;

/// The module's name and the key of its configuration section.
pub const MODULE_NAME: &str = "httpclient";

/// The httpclient module: reads the `httpclient` section, registers an `Arc<HttpClient>` in
/// the service registry, rebuilds the client on reload, and reports health.
#[derive(Debug, Default)]
pub struct HttpClientModule {
    client: Option<HttpClient>,
}

impl HttpClientModule {
    /// The module, not yet initialised.
    pub fn new() -> Self {
        Self::default()
    }

    /// The client, once the module is initialised.
    pub fn client(&self) -> Option<&HttpClient> {
        self.client.as_ref()
    }
}

#[modular_core::async_trait]
impl Module for HttpClientModule {
    fn name(&self) -> &str {
        MODULE_NAME
    }

    async fn init(&mut self, ctx: &mut InitContext<'_>) -> Result<(), BoxError> {
        let config = ctx.config::<HttpClientConfig>()?.get();
        let health_options = config.health.options(DEFAULT_HEALTH_TIMEOUT);
        let client = HttpClient::build(config, Some(ctx.context()))?;
        ctx.services().register(Arc::new(client.clone()));
        ctx.register_reloadable(Arc::new(HttpClientReloader {
            client: client.clone(),
            health: ctx.services().get::<HealthAggregator>(),
        }));
        // Probes run in parallel, each bounded by its own timeout (at most MAX_PROBE_TIMEOUT),
        // so by default the provider as a whole finishes within that plus a margin.
        ctx.register_health_provider(
            MODULE_NAME,
            Arc::new(HttpClientHealth::new(client.clone())),
            health_options,
        );
        let settings = client.settings();
        tracing::info!(
            module = MODULE_NAME,
            request_timeout = ?settings.request_timeout,
            max_retries = settings.retry.max_retries,
            probes = settings.health_probe.len(),
            "http client ready"
        );
        self.client = Some(client);
        Ok(())
    }
}

/// The reload hook: builds a client from the new section aside; the commit swaps it in, and
/// replaces the health registration's options when `health.*` changed.
#[derive(Debug)]
struct HttpClientReloader {
    client: HttpClient,
    /// The aggregator the health provider is registered with, if any.
    health: Option<Arc<HealthAggregator>>,
}

#[modular_core::async_trait]
impl Reloadable for HttpClientReloader {
    async fn prepare(
        &self,
        ctx: &ReloadContext,
        changes: &[ConfigChange],
    ) -> Result<PreparedReload, BoxError> {
        let config = ctx.new_config::<HttpClientConfig>().ok_or_else(|| {
            HttpClientError::MissingSection {
                module: ctx.module().to_owned(),
            }
        })?;
        let cause = Rebuild {
            trigger: ctx.trigger().as_str(),
            changes: changes.iter().map(|c| c.field_path.to_string()).collect(),
        };
        let health = self
            .health
            .clone()
            .filter(|_| changes.iter().any(|c| c.is_under("health")))
            .map(|aggregator| (aggregator, config.health.options(DEFAULT_HEALTH_TIMEOUT)));
        let next = self.client.prepare(config)?;
        let client = self.client.clone();
        Ok(PreparedReload::new(move || {
            client.commit(next, cause);
            if let Some((aggregator, options)) = health {
                aggregator.set_provider_options(MODULE_NAME, options);
            }
        }))
    }
}
