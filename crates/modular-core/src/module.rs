//! [`Module`]: the unit an application is built from, and the contexts its hooks receive.

use std::sync::Arc;

use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::config::{ConfigHandle, ConfigStore, SectionConfig};
use crate::error::{BoxError, Error};
use crate::events::EventBus;
use crate::health::{HealthProvider, ProviderOptions};
use crate::registry::ServiceRegistry;
use crate::reload::Reloadable;

/// A plug-in part of an application.
///
/// Only [`Module::name`] is required; every lifecycle hook has a default that does nothing.
/// The module's configuration section is keyed by its name.
///
/// ```
/// use modular_core::{Module, InitContext, BoxError};
///
/// struct Hello;
///
/// #[modular_core::async_trait]
/// impl Module for Hello {
///     fn name(&self) -> &str { "hello" }
///     async fn init(&mut self, ctx: &mut InitContext<'_>) -> Result<(), BoxError> {
///         ctx.services().register(std::sync::Arc::new(String::from("hi")));
///         Ok(())
///     }
/// }
/// ```
#[async_trait::async_trait]
pub trait Module: Send + Sync + 'static {
    /// The unique name; also the key of the module's configuration section.
    fn name(&self) -> &str;

    /// Names of modules that must be initialised and started before this one.
    fn dependencies(&self) -> Vec<String> {
        Vec::new()
    }

    /// Reads configuration, builds resources, registers services, reload and health hooks.
    async fn init(&mut self, _ctx: &mut InitContext<'_>) -> Result<(), BoxError> {
        Ok(())
    }

    /// Starts background work. Called in dependency order after every module is initialised.
    async fn start(&self, _ctx: &ModuleContext) -> Result<(), BoxError> {
        Ok(())
    }

    /// Stops background work. Called in reverse dependency order, under the shutdown deadline.
    async fn stop(&self, _ctx: &ModuleContext) -> Result<(), BoxError> {
        Ok(())
    }
}

/// What every lifecycle hook can reach: services, events, cancellation and owned tasks.
#[derive(Clone, Debug)]
pub struct ModuleContext {
    pub(crate) name: Arc<str>,
    pub(crate) services: Arc<ServiceRegistry>,
    pub(crate) events: EventBus,
    pub(crate) config: Arc<ConfigStore>,
    pub(crate) cancel: CancellationToken,
    pub(crate) tasks: TaskTracker,
}

impl ModuleContext {
    /// The module's name.
    pub fn module_name(&self) -> &str {
        &self.name
    }

    /// The service registry.
    pub fn services(&self) -> &Arc<ServiceRegistry> {
        &self.services
    }

    /// The event bus.
    pub fn events(&self) -> &EventBus {
        &self.events
    }

    /// The application's configuration store.
    pub fn config_store(&self) -> &Arc<ConfigStore> {
        &self.config
    }

    /// Cancelled when the application shuts down.
    pub fn cancellation(&self) -> &CancellationToken {
        &self.cancel
    }

    /// Spawns a task the application owns: it is awaited at shutdown, and should watch
    /// [`ModuleContext::cancellation`].
    pub fn spawn<F>(&self, future: F) -> tokio::task::JoinHandle<F::Output>
    where
        F: std::future::Future + Send + 'static,
        F::Output: Send + 'static,
    {
        self.tasks.spawn(future)
    }

    /// The tracker of the application's tasks.
    pub fn tasks(&self) -> &TaskTracker {
        &self.tasks
    }

    /// Emits a module event `com.modular.<module>.<noun>.<verb>` from `/modular/modules/<module>`.
    pub fn emit(&self, noun_verb: &str, data: serde_json::Value) {
        let ty = format!("com.modular.{}.{noun_verb}", self.name);
        self.events
            .emit(&ty, &crate::events::types::module_source(&self.name), data);
    }
}

pub(crate) struct HealthRegistration {
    pub(crate) name: String,
    pub(crate) provider: Arc<dyn HealthProvider>,
    pub(crate) options: ProviderOptions,
}

/// What [`Module::init`] receives: the module context plus registration of config sections,
/// reload and health hooks.
pub struct InitContext<'a> {
    pub(crate) base: &'a ModuleContext,
    pub(crate) reloadable: &'a mut Option<Arc<dyn Reloadable>>,
    pub(crate) health: &'a mut Vec<HealthRegistration>,
    pub(crate) start_last: &'a mut bool,
}

impl std::fmt::Debug for InitContext<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("InitContext")
            .field("module", &self.base.name)
            .finish()
    }
}

impl std::ops::Deref for InitContext<'_> {
    type Target = ModuleContext;
    fn deref(&self) -> &ModuleContext {
        self.base
    }
}

impl InitContext<'_> {
    /// The module context (to keep for later, for example in a reload hook).
    pub fn context(&self) -> ModuleContext {
        self.base.clone()
    }

    /// Reads the module's own section (keyed by its name) as `T` and keeps it current across
    /// reloads. An invalid section fails `build()` with every error's path and source.
    pub fn config<T: SectionConfig>(&mut self) -> Result<ConfigHandle<T>, Error> {
        let name = self.base.name.to_string();
        self.config_section(&name)
    }

    /// Reads another section as `T` (for example a shared `tls` section).
    pub fn config_section<T: SectionConfig>(
        &mut self,
        section: &str,
    ) -> Result<ConfigHandle<T>, Error> {
        let owner = (section == &*self.base.name).then_some(&*self.base.name);
        self.base
            .config
            .register::<T>(section, owner)
            .map_err(Error::Config)
    }

    /// Starts this module after every other module and stops it before them, as a server
    /// that takes traffic needs: it must not accept requests before the modules that answer
    /// them have started, and must drain before they stop. Ignored (with a warning) when
    /// another module depends on this one, since dependencies always come first.
    pub fn start_after_others(&mut self) {
        *self.start_last = true;
    }

    /// Registers the module's reload hook (one per module; a second call replaces the first).
    pub fn register_reloadable(&mut self, reloadable: Arc<dyn Reloadable>) {
        *self.reloadable = Some(reloadable);
    }

    /// Registers a health provider under `name` (usually the module's own name,
    /// [`ModuleContext::module_name`]; a module with several backends may register several).
    /// The same name and signature as
    /// [`HealthAggregator::register_health_provider`](crate::health::HealthAggregator::register_health_provider).
    pub fn register_health_provider(
        &mut self,
        name: impl AsRef<str>,
        provider: Arc<dyn HealthProvider>,
        options: ProviderOptions,
    ) {
        self.health.push(HealthRegistration {
            name: name.as_ref().to_owned(),
            provider,
            options,
        });
    }
}
