//! [`ConsoleModule`]: registers the page with the router.

use modular_core::config::ConfigHandle;
use modular_core::http::RouteRegistry;
use modular_core::{BoxError, InitContext, Module};

use crate::assets;
use crate::config::ConsoleConfig;
use crate::error::ConsoleError;

/// The module's name, and the name of its config section.
pub const MODULE_NAME: &str = "console";

/// The operator's console: serves the status page at `/admin/ui` (see the crate docs).
///
/// It has no backend of its own, so it registers no health provider and no reload hook: its
/// handlers read the `console` section per request, and a reload's commit is all they need.
#[derive(Debug, Default)]
pub struct ConsoleModule {
    _private: (),
}

impl ConsoleModule {
    /// The module, configured by the `console` section.
    pub fn new() -> Self {
        Self::default()
    }
}

#[modular_core::async_trait]
impl Module for ConsoleModule {
    fn name(&self) -> &str {
        MODULE_NAME
    }

    async fn init(&mut self, ctx: &mut InitContext<'_>) -> Result<(), BoxError> {
        let config: ConfigHandle<ConsoleConfig> = ctx.config().map_err(ConsoleError::Config)?;
        let routes = RouteRegistry::shared(ctx.services());
        assets::register(&routes, MODULE_NAME, config);
        tracing::debug!(
            module = MODULE_NAME,
            path = assets::PAGE_PATH,
            "status page registered"
        );
        Ok(())
    }
}
