//! [`EventbusModule`]: reads the `eventbus` section, connects the engines, registers the
//! [`MessageBus`], its reload hook and its health check, and forwards framework events.

use std::sync::Arc;
use std::time::Duration;

use modular_core::events::EventFilter;
use modular_core::health::{HealthAggregator, ProviderOptions};
use modular_core::{BoxError, InitContext, Module, ModuleContext};

use crate::config::EventbusConfig;
use crate::service::MessageBus;

/// The registration's deadline is `health.timeout` plus this, so the probe's own deadline
/// fires first and reports what timed out.
const HEALTH_MARGIN: Duration = Duration::from_millis(100);

/// How long `stop` waits for running handlers.
const STOP_DEADLINE: Duration = Duration::from_secs(5);

pub(crate) fn provider_options(config: &EventbusConfig) -> ProviderOptions {
    ProviderOptions::new()
        .with_timeout(config.health.timeout + HEALTH_MARGIN)
        .with_optional(config.health.optional)
}

/// The event bus module, named `eventbus`.
#[derive(Debug, Default)]
pub struct EventbusModule {
    bus: Option<MessageBus>,
}

impl EventbusModule {
    /// The module, not yet initialised.
    pub fn new() -> Self {
        Self::default()
    }

    /// The running bus, once `init` has run.
    pub fn bus(&self) -> Option<MessageBus> {
        self.bus.clone()
    }
}

#[async_trait::async_trait]
impl Module for EventbusModule {
    fn name(&self) -> &str {
        "eventbus"
    }

    async fn init(&mut self, ctx: &mut InitContext<'_>) -> Result<(), BoxError> {
        let config: Arc<EventbusConfig> = ctx.config::<EventbusConfig>()?.get();
        let bus = MessageBus::new(&config).await?;
        bus.attach(ctx.context());
        ctx.services().register(Arc::new(bus.clone()));
        ctx.register_reloadable(Arc::new(crate::reload::EventbusReloader {
            bus: bus.clone(),
            health: ctx.services().get::<HealthAggregator>(),
        }));
        ctx.register_health_provider(
            "eventbus",
            Arc::new(bus.clone()) as Arc<dyn modular_core::health::HealthProvider>,
            provider_options(&config),
        );
        for (name, engine) in &config.engines {
            bus.emit(
                "connection.established",
                serde_json::json!({ "engine": name, "type": engine.kind.as_str(), "address": bus.engine_address(name) }),
            );
        }
        tracing::info!(module = "eventbus", engines = ?config.engines.keys().collect::<Vec<_>>(), "event bus ready");
        self.bus = Some(bus);
        Ok(())
    }

    async fn start(&self, ctx: &ModuleContext) -> Result<(), BoxError> {
        if let Some(bus) = &self.bus {
            crate::forward::spawn(
                bus.clone(),
                ctx.events().subscribe_named(
                    "eventbus.forward",
                    EventFilter::All,
                    modular_core::events::DEFAULT_OBSERVER_CAPACITY,
                ),
            );
        }
        Ok(())
    }

    async fn stop(&self, _ctx: &ModuleContext) -> Result<(), BoxError> {
        if let Some(bus) = &self.bus {
            bus.shutdown(STOP_DEADLINE).await;
        }
        Ok(())
    }
}
