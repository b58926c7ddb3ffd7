//! [`ApplicationBuilder`]: collects modules, config sources and options.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use crate::config::{ConfigSources, SectionCheck, TextFormat};
use crate::events::EventBus;
use crate::health::HealthOptions;
use crate::module::Module;
use crate::registry::ServiceRegistry;
use crate::reload::ReloadOptions;

use super::Application;
use crate::error::Error;

/// Builds an [`Application`]. Methods take `self` and return `Self`, so a whole application
/// reads as one chain.
pub struct ApplicationBuilder {
    pub(crate) modules: Vec<Box<dyn Module>>,
    pub(crate) sources: ConfigSources,
    pub(crate) reload: Option<ReloadOptions>,
    pub(crate) health: Option<HealthOptions>,
    pub(crate) shutdown_timeout: Duration,
    pub(crate) events: EventBus,
    pub(crate) services: Arc<ServiceRegistry>,
    pub(crate) handle_signals: bool,
    pub(crate) free_sections: Vec<String>,
    pub(crate) section_checks: Vec<(String, Arc<dyn SectionCheck>)>,
}

impl std::fmt::Debug for ApplicationBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApplicationBuilder")
            .field(
                "modules",
                &self
                    .modules
                    .iter()
                    .map(|m| m.name().to_owned())
                    .collect::<Vec<_>>(),
            )
            .field("sources", &self.sources)
            .field("reload", &self.reload.is_some())
            .field("health", &self.health.is_some())
            .finish()
    }
}

impl Default for ApplicationBuilder {
    fn default() -> Self {
        Self {
            modules: Vec::new(),
            sources: ConfigSources::new(),
            reload: None,
            health: None,
            shutdown_timeout: Duration::from_secs(30),
            events: EventBus::new(),
            services: Arc::new(ServiceRegistry::new()),
            handle_signals: true,
            free_sections: Vec::new(),
            section_checks: Vec::new(),
        }
    }
}

impl ApplicationBuilder {
    /// Adds a module.
    pub fn module(mut self, module: impl Module) -> Self {
        self.modules.push(Box::new(module));
        self
    }

    /// Adds a boxed module.
    pub fn boxed_module(mut self, module: Box<dyn Module>) -> Self {
        self.modules.push(module);
        self
    }

    /// Adds a config file that must exist (YAML, TOML or JSON by extension). It is watched
    /// when dynamic reload is on.
    pub fn config_file(mut self, path: impl Into<PathBuf>) -> Self {
        self.sources = self.sources.file(path);
        self
    }

    /// Adds a config file that is read when present.
    pub fn optional_config_file(mut self, path: impl Into<PathBuf>) -> Self {
        self.sources = self.sources.optional_file(path);
        self
    }

    /// Adds configuration text (embedded defaults, for example).
    pub fn config_text(mut self, name: &str, format: TextFormat, text: impl Into<String>) -> Self {
        self.sources = self.sources.text(name, format, text);
        self
    }

    /// Adds a layer of defaults from a JSON value.
    pub fn config_defaults(mut self, value: serde_json::Value) -> Self {
        self.sources = self.sources.defaults("defaults", value);
        self
    }

    /// Sets the environment prefix (default `MODULAR_`); `None` ignores the environment.
    pub fn env_prefix(mut self, prefix: Option<&str>) -> Self {
        self.sources = self.sources.env_prefix(prefix.map(str::to_owned));
        self
    }

    /// Adds a remote layer ([`RemoteSource`](crate::config::RemoteSource), such as a NATS
    /// JetStream key-value bucket) above the sources added so far: a file added after it wins
    /// over it, one added before loses. The environment and runtime overrides stay above it.
    pub fn config_remote(
        mut self,
        source: std::sync::Arc<dyn crate::config::RemoteSource>,
    ) -> Self {
        self.sources = self.sources.remote(source);
        self
    }

    /// Replaces every config source.
    pub fn config_sources(mut self, sources: ConfigSources) -> Self {
        self.sources = sources;
        self
    }

    /// Turns on dynamic configuration reload with default options.
    pub fn with_dynamic_reload(self) -> Self {
        self.with_reload_options(ReloadOptions::default())
    }

    /// Turns on dynamic configuration reload.
    pub fn with_reload_options(mut self, options: ReloadOptions) -> Self {
        self.reload = Some(options);
        self
    }

    /// Turns on health aggregation with default options.
    pub fn with_health_aggregator(self) -> Self {
        self.with_health_options(HealthOptions::default())
    }

    /// Turns on health aggregation.
    pub fn with_health_options(mut self, options: HealthOptions) -> Self {
        self.health = Some(options);
        self
    }

    /// How long `stop` may take in all (default 30 s).
    pub fn shutdown_timeout(mut self, timeout: Duration) -> Self {
        self.shutdown_timeout = timeout;
        self
    }

    /// Uses this event bus (to subscribe before `build`, so init events are seen).
    pub fn event_bus(mut self, events: EventBus) -> Self {
        self.events = events;
        self
    }

    /// Declares a top-level config section that no module reads, so it is not an error.
    ///
    /// Every top-level key of the configuration must be a section something reads: a
    /// module's (keyed by its name, or registered with
    /// [`InitContext::config_section`](crate::InitContext::config_section)), one core reads
    /// (`admin`, `health`, `reload`, `metrics`), or one declared here (for example a section
    /// the application reads itself through [`Application::config`]). Any other key fails
    /// `build()` and rejects a reload with `unknown section "cahce" (did you mean "cache"?)`.
    pub fn free_section(mut self, name: impl Into<String>) -> Self {
        self.free_sections.push(name.into());
        self
    }

    /// Attaches a [`SectionCheck`] to section `section` (a module's or a free one): the
    /// configuration loaded by `build()` must pass it (else `build()` fails with the errors'
    /// key paths and sources), and so must every reload candidate (else the reload is
    /// rejected in step 2, like a type error, and the running config stays). A module that
    /// needs a service for its check (the jsonschema module's schemas, say) attaches it in
    /// `init` through [`ModuleContext::config_store`](crate::ModuleContext::config_store) instead.
    ///
    /// ```
    /// # async fn demo() -> Result<(), modular_core::Error> {
    /// use modular_core::Application;
    /// use modular_core::FieldError;
    ///
    /// let check = |value: &serde_json::Value| -> Result<(), Vec<FieldError>> {
    ///     match value.get("workers").and_then(|w| w.as_u64()) {
    ///         Some(n) if n > 64 => Err(vec![FieldError::new("workers", "must be at most 64")]),
    ///         _ => Ok(()),
    ///     }
    /// };
    /// let app = Application::builder()
    ///     .env_prefix(None)
    ///     .handle_signals(false)
    ///     .free_section("my_app")
    ///     .config_defaults(serde_json::json!({ "my_app": { "workers": 8 } }))
    ///     .section_check("my_app", std::sync::Arc::new(check))
    ///     .build()
    ///     .await?;
    /// # drop(app);
    /// # Ok(())
    /// # }
    /// ```
    pub fn section_check(
        mut self,
        section: impl Into<String>,
        check: Arc<dyn SectionCheck>,
    ) -> Self {
        self.section_checks.push((section.into(), check));
        self
    }

    /// Whether `start` listens for SIGHUP (reload) — default on. Tests that run several
    /// applications in one process may turn it off.
    pub fn handle_signals(mut self, on: bool) -> Self {
        self.handle_signals = on;
        self
    }

    /// Loads configuration and initialises every module in dependency order.
    pub async fn build(self) -> Result<Application, Error> {
        Application::from_builder(self).await
    }
}
