//! [`Application`]: builds modules in dependency order, runs them, stops them in reverse.

mod builder;
mod graph;

use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::Duration;

use futures::FutureExt as _;
use serde_json::json;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::Instrument as _;

pub use builder::ApplicationBuilder;

use crate::config::ConfigStore;
use crate::error::{BoxError, Error, Phase};
use crate::events::{EventBus, types};
use crate::health::HealthAggregator;
use crate::module::{HealthRegistration, InitContext, Module, ModuleContext};
use crate::registry::ServiceRegistry;
use crate::reload::{
    ConfigWatcher, ReloadOptions, ReloadOrchestrator, ReloadOutcome, ReloadTarget, ReloadTrigger,
};
use crate::util::panic_message;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    Built,
    Started,
    Stopped,
}

impl State {
    fn as_str(self) -> &'static str {
        match self {
            Self::Built => "built",
            Self::Started => "started",
            Self::Stopped => "stopped",
        }
    }
}

/// A running set of modules with their configuration, services, events, health and reload.
pub struct Application {
    modules: Vec<Box<dyn Module>>,
    contexts: Vec<ModuleContext>,
    started: usize,
    state: State,
    services: Arc<ServiceRegistry>,
    events: EventBus,
    store: Arc<ConfigStore>,
    health: Option<Arc<HealthAggregator>>,
    reload: Option<ReloadOrchestrator>,
    reload_options: Option<ReloadOptions>,
    watcher: Option<ConfigWatcher>,
    handle_signals: bool,
    cancel: CancellationToken,
    tasks: TaskTracker,
    shutdown_timeout: Duration,
}

impl std::fmt::Debug for Application {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Application")
            .field("modules", &self.module_names())
            .field("state", &self.state)
            .field("config_version", &self.store.version())
            .finish()
    }
}

async fn guarded<F>(module: &str, phase: Phase, hook: F) -> Result<(), Error>
where
    F: std::future::Future<Output = Result<(), BoxError>>,
{
    match AssertUnwindSafe(hook).catch_unwind().await {
        Ok(Ok(())) => Ok(()),
        // A config error raised through `ctx.config()?` is reported as itself: its paths and
        // sources are the message, and callers match on `Error::Config`.
        Ok(Err(source)) if source.is::<Error>() => match source.downcast::<Error>() {
            Ok(error) => match *error {
                Error::Config(errors) => Err(Error::Config(errors)),
                other => Err(Error::Module {
                    module: module.to_owned(),
                    phase,
                    source: Box::new(other),
                }),
            },
            Err(source) => Err(Error::Module {
                module: module.to_owned(),
                phase,
                source,
            }),
        },
        Ok(Err(source)) => Err(Error::Module {
            module: module.to_owned(),
            phase,
            source,
        }),
        Err(panic) => Err(Error::ModulePanicked {
            module: module.to_owned(),
            phase,
            message: panic_message(&*panic),
        }),
    }
}

impl Application {
    /// Starts describing an application.
    pub fn builder() -> ApplicationBuilder {
        ApplicationBuilder::default()
    }

    async fn from_builder(builder: ApplicationBuilder) -> Result<Self, Error> {
        crate::crypto::install_default_crypto_provider();
        let ApplicationBuilder {
            modules,
            sources,
            reload,
            health,
            shutdown_timeout,
            events,
            services,
            handle_signals,
            free_sections,
            section_checks,
        } = builder;

        let nodes: Vec<(String, Vec<String>)> = modules
            .iter()
            .map(|m| (m.name().to_owned(), m.dependencies()))
            .collect();
        let order = graph::topological_order(&nodes)?;
        let mut slots: Vec<Option<Box<dyn Module>>> = modules.into_iter().map(Some).collect();
        let mut modules: Vec<Box<dyn Module>> =
            order.iter().filter_map(|&i| slots[i].take()).collect();

        let store = Arc::new(ConfigStore::new(sources));
        store.load_initial()?;
        for (section, check) in section_checks {
            store.add_section_check(&section, check)?;
        }
        // The `reload:` section tunes the machinery; keys it sets win over the code's options.
        let reload = match reload {
            Some(options) => {
                let section = store
                    .register::<crate::reload::ReloadSection>("reload", None)
                    .map_err(Error::Config)?;
                Some(section.get().apply_to(options))
            }
            None => None,
        };
        let cancel = CancellationToken::new();
        let tasks = TaskTracker::new();

        services.register(Arc::new(events.clone()));
        services.register(Arc::clone(&store));
        // `metrics.enabled`: the process's Prometheus recorder, installed before any module
        // records, and the exporter the router renders at `GET /metrics`.
        let metrics = store
            .register::<crate::metrics::MetricsConfig>("metrics", None)
            .map_err(Error::Config)?;
        if metrics.load().enabled
            && let Ok(exporter) = crate::metrics::MetricsExporter::install()
        {
            services.register(exporter);
        }
        crate::metrics::record_version(store.version());
        let health = health.map(|options| HealthAggregator::new(options, events.clone()));
        if let Some(health) = &health {
            services.register(Arc::clone(health));
        }

        let mut contexts = Vec::with_capacity(modules.len());
        let mut last: Vec<bool> = Vec::with_capacity(modules.len());
        let mut targets = Vec::with_capacity(modules.len());
        for module in &mut modules {
            let name: Arc<str> = Arc::from(module.name());
            let base = ModuleContext {
                name: Arc::clone(&name),
                services: Arc::clone(&services),
                events: events.clone(),
                config: Arc::clone(&store),
                cancel: cancel.child_token(),
                tasks: tasks.clone(),
            };
            let mut reloadable = None;
            let mut registrations: Vec<HealthRegistration> = Vec::new();
            let mut start_last = false;
            let span = tracing::info_span!("module", module = %name, phase = "init");
            let result = {
                let mut ctx = InitContext {
                    base: &base,
                    reloadable: &mut reloadable,
                    health: &mut registrations,
                    start_last: &mut start_last,
                };
                guarded(&name, Phase::Init, module.init(&mut ctx))
                    .instrument(span)
                    .await
            };
            let source = types::module_source(&name);
            if let Err(error) = result {
                events.emit(
                    types::MODULE_FAILED,
                    &source,
                    json!({ "module": &*name, "error": error.to_string() }),
                );
                tracing::error!(module = %name, %error, "module failed to initialise");
                cancel.cancel();
                return Err(error);
            }
            events.emit(
                types::MODULE_INITIALIZED,
                &source,
                json!({ "module": &*name, "error": null }),
            );
            tracing::debug!(module = %name, "module initialised");
            if let Some(health) = &health {
                for r in registrations {
                    health.register_health_provider(&r.name, r.provider, r.options);
                }
            }
            targets.push(ReloadTarget {
                module: name.to_string(),
                reloadable,
            });
            contexts.push(base);
            last.push(start_last);
        }
        // Every top-level key must now be a section something reads; the same rule holds for
        // every reload candidate.
        store.require_known_sections(
            targets
                .iter()
                .map(|t| t.module.clone())
                .chain(free_sections),
        );
        if let Err(errors) = store.check_initial_sections() {
            tracing::error!(%errors, "unknown configuration sections");
            cancel.cancel();
            return Err(Error::Config(errors));
        }
        // Modules that asked to start after the others (servers) move to the end of the start
        // order, so they also stop first; reload keeps the dependency order (`targets`).
        let (modules, contexts) = start_order(modules, contexts, &last);

        let reload_options = reload.clone();
        let reload = reload.map(|options| {
            let orchestrator = ReloadOrchestrator::with_tasks(
                Arc::clone(&store),
                targets,
                events.clone(),
                health.clone(),
                options,
                cancel.child_token(),
                tasks.clone(),
            );
            services.register(Arc::new(orchestrator.clone()));
            orchestrator
        });

        Ok(Self {
            modules,
            contexts,
            started: 0,
            state: State::Built,
            services,
            events,
            store,
            health,
            reload,
            reload_options,
            watcher: None,
            handle_signals,
            cancel,
            tasks,
            shutdown_timeout,
        })
    }

    /// Module names in initialisation order.
    pub fn module_names(&self) -> Vec<String> {
        self.modules.iter().map(|m| m.name().to_owned()).collect()
    }

    /// The service registry.
    pub fn services(&self) -> &Arc<ServiceRegistry> {
        &self.services
    }

    /// The event bus.
    pub fn events(&self) -> &EventBus {
        &self.events
    }

    /// The configuration store.
    pub fn config(&self) -> &Arc<ConfigStore> {
        &self.store
    }

    /// The whole running configuration at one version (one config epoch): every section
    /// read from it comes from the same version, even while a reload commits.
    ///
    /// ```
    /// # async fn demo(app: &modular_core::Application, a: modular_core::ConfigHandle<u32>, b: modular_core::ConfigHandle<String>) {
    /// let snapshot = app.config_snapshot();
    /// let (first, second) = (snapshot.get(&a), snapshot.get(&b)); // both old or both new
    /// # let _ = (first, second);
    /// # }
    /// ```
    pub fn config_snapshot(&self) -> Arc<crate::config::ConfigSnapshot> {
        self.store.snapshot_owned()
    }

    /// The health aggregator, when turned on.
    pub fn health(&self) -> Option<&Arc<HealthAggregator>> {
        self.health.as_ref()
    }

    /// The reload orchestrator, when dynamic reload is on.
    pub fn reloader(&self) -> Option<&ReloadOrchestrator> {
        self.reload.as_ref()
    }

    /// Cancelled when the application stops.
    pub fn cancellation(&self) -> &CancellationToken {
        &self.cancel
    }

    fn orchestrator(&self, action: &'static str) -> Result<&ReloadOrchestrator, Error> {
        self.reload.as_ref().ok_or(Error::InvalidState {
            state: "running without dynamic reload",
            action,
        })
    }

    /// Reloads configuration from the sources now.
    pub async fn reload(&self) -> Result<ReloadOutcome, Error> {
        Ok(self
            .orchestrator("reload")?
            .reload(ReloadTrigger::Programmatic)
            .await)
    }

    /// The outcome a reload would have now, applying nothing.
    pub async fn plan_reload(&self) -> Result<ReloadOutcome, Error> {
        Ok(self
            .orchestrator("plan a reload")?
            .plan(ReloadTrigger::Programmatic, None)
            .await)
    }

    /// Sets a runtime override (highest precedence) and reloads.
    pub async fn set_override(
        &self,
        path: &str,
        value: serde_json::Value,
    ) -> Result<ReloadOutcome, Error> {
        Ok(self
            .orchestrator("set an override")?
            .set_override(path, value)
            .await)
    }

    /// Merges several runtime overrides (dotted path to value) and reloads once; a rejected
    /// reload leaves the overrides as they were.
    pub async fn set_overrides(
        &self,
        overrides: std::collections::BTreeMap<String, serde_json::Value>,
    ) -> Result<ReloadOutcome, Error> {
        Ok(self
            .orchestrator("set overrides")?
            .set_overrides(ReloadTrigger::Override, overrides)
            .await)
    }

    /// Removes one runtime override and reloads.
    pub async fn remove_override(&self, path: &str) -> Result<ReloadOutcome, Error> {
        Ok(self
            .orchestrator("remove an override")?
            .remove_override(ReloadTrigger::Override, path)
            .await)
    }

    /// Removes every runtime override and reloads.
    pub async fn clear_overrides(&self) -> Result<ReloadOutcome, Error> {
        Ok(self
            .orchestrator("clear the overrides")?
            .clear_overrides(ReloadTrigger::Override)
            .await)
    }

    /// Starts every module in dependency order, then the file watcher, SIGHUP listener and
    /// health background refresh. If a module fails to start, the ones already started are
    /// stopped in reverse order.
    pub async fn start(&mut self) -> Result<(), Error> {
        if self.state != State::Built {
            return Err(Error::InvalidState {
                state: self.state.as_str(),
                action: "start",
            });
        }
        for i in 0..self.modules.len() {
            let name = self.modules[i].name().to_owned();
            let span = tracing::info_span!("module", module = %name, phase = "start");
            let result = guarded(
                &name,
                Phase::Start,
                self.modules[i].start(&self.contexts[i]),
            )
            .instrument(span)
            .await;
            let source = types::module_source(&name);
            match result {
                Ok(()) => {
                    self.started = i + 1;
                    self.events.emit(
                        types::MODULE_STARTED,
                        &source,
                        json!({ "module": name, "error": null }),
                    );
                    tracing::info!(module = %name, "module started");
                }
                Err(error) => {
                    self.events.emit(
                        types::MODULE_FAILED,
                        &source,
                        json!({ "module": name, "error": error.to_string() }),
                    );
                    tracing::error!(module = %name, %error, "module failed to start; stopping the others");
                    self.state = State::Started;
                    let _ = self.stop().await;
                    return Err(error);
                }
            }
        }
        self.state = State::Started;
        if let Err(error) = self.start_triggers() {
            // The modules are running: stop them rather than leave them behind.
            tracing::error!(%error, "could not start the reload triggers; stopping");
            let _ = self.stop().await;
            return Err(error);
        }
        if let Some(health) = &self.health {
            health.set_started(true);
            health.set_config_version(self.store.version());
            health.start_background(self.cancel.child_token(), &self.tasks);
        }
        Ok(())
    }

    fn start_triggers(&mut self) -> Result<(), Error> {
        if let (Some(reload), Some(options)) = (&self.reload, &self.reload_options) {
            let files = self.store.sources().files();
            if options.watch_files && !files.is_empty() {
                self.watcher = Some(ConfigWatcher::start(
                    files,
                    options.debounce,
                    reload.clone(),
                )?);
            }
            if self.handle_signals {
                self.listen_for_sighup(reload.clone())?;
            }
        }
        Ok(())
    }

    #[cfg(unix)]
    fn listen_for_sighup(&self, reload: ReloadOrchestrator) -> Result<(), Error> {
        use tokio::signal::unix::{SignalKind, signal};
        let mut hangup = signal(SignalKind::hangup()).map_err(Error::Signal)?;
        let cancel = self.cancel.clone();
        self.tasks.spawn(async move {
            loop {
                tokio::select! {
                    _ = cancel.cancelled() => return,
                    received = hangup.recv() => {
                        if received.is_none() { return }
                        tracing::info!("SIGHUP received; reloading configuration");
                        reload.reload(ReloadTrigger::Signal).await;
                    }
                }
            }
        });
        Ok(())
    }

    #[cfg(not(unix))]
    fn listen_for_sighup(&self, _reload: ReloadOrchestrator) -> Result<(), Error> {
        Ok(())
    }

    /// Stops started modules in reverse order within the shutdown deadline, then waits for
    /// owned tasks. Readiness turns unhealthy first. A module whose `stop` does not finish by
    /// the deadline is abandoned and named in [`Error::ShutdownTimeout`].
    pub async fn stop(&mut self) -> Result<(), Error> {
        if self.state == State::Stopped {
            return Ok(());
        }
        let deadline = crate::util::deadline(Instant::now(), self.shutdown_timeout);
        // Stop reloading first: no reload (or health-gate revert) may run against modules that
        // are stopping.
        if let Some(reload) = &self.reload {
            let remaining = deadline.saturating_duration_since(Instant::now());
            if !reload.shutdown_within(remaining).await {
                tracing::error!("a reload was still running at the shutdown deadline");
            }
        }
        if let Some(health) = &self.health {
            health.set_shutting_down(true);
        }
        self.watcher = None;
        let mut first_error: Option<Error> = None;
        let mut pending: Vec<String> = Vec::new();
        let deadline_text = crate::util::format_duration(self.shutdown_timeout);
        for i in (0..self.started).rev() {
            let name = self.modules[i].name().to_owned();
            let remaining = deadline.saturating_duration_since(Instant::now());
            let source = types::module_source(&name);
            if remaining.is_zero() {
                let error =
                    format!("not stopped: the shutdown deadline of {deadline_text} had passed");
                self.events.emit(
                    types::MODULE_FAILED,
                    &source,
                    json!({ "module": name, "error": error }),
                );
                tracing::error!(module = %name, "module not stopped: the shutdown deadline had passed");
                pending.push(name);
                continue;
            }
            let span = tracing::info_span!("module", module = %name, phase = "stop");
            let hook = guarded(&name, Phase::Stop, self.modules[i].stop(&self.contexts[i]))
                .instrument(span);
            match tokio::time::timeout(remaining, hook).await {
                Ok(Ok(())) => {
                    self.events.emit(
                        types::MODULE_STOPPED,
                        &source,
                        json!({ "module": name, "error": null }),
                    );
                    tracing::info!(module = %name, "module stopped");
                }
                Ok(Err(error)) => {
                    self.events.emit(
                        types::MODULE_FAILED,
                        &source,
                        json!({ "module": name, "error": error.to_string() }),
                    );
                    tracing::error!(module = %name, %error, "module failed to stop");
                    first_error.get_or_insert(error);
                }
                Err(_) => {
                    let error =
                        format!("did not stop before the shutdown deadline of {deadline_text}");
                    self.events.emit(
                        types::MODULE_FAILED,
                        &source,
                        json!({ "module": name, "error": error }),
                    );
                    tracing::error!(module = %name, "module did not stop before the shutdown deadline");
                    pending.push(name);
                }
            }
        }
        self.started = 0;
        self.state = State::Stopped;
        self.cancel.cancel();
        self.tasks.close();
        let remaining = deadline.saturating_duration_since(Instant::now());
        if tokio::time::timeout(remaining, self.tasks.wait())
            .await
            .is_err()
        {
            pending.push("background tasks".to_owned());
        }
        if !pending.is_empty() {
            return Err(Error::ShutdownTimeout {
                deadline: self.shutdown_timeout,
                pending,
            });
        }
        match first_error {
            Some(error) => Err(error),
            None => Ok(()),
        }
    }

    /// Starts, waits for SIGINT or SIGTERM, then stops.
    pub async fn run(mut self) -> Result<(), Error> {
        self.start().await?;
        wait_for_shutdown_signal().await?;
        tracing::info!("shutdown signal received; stopping");
        self.stop().await
    }
}

/// Moves the modules flagged `start_after_others` to the end, keeping the relative order within
/// both groups. A flagged module that another module depends on stays where it is.
fn start_order(
    modules: Vec<Box<dyn Module>>,
    contexts: Vec<ModuleContext>,
    last: &[bool],
) -> (Vec<Box<dyn Module>>, Vec<ModuleContext>) {
    let depended_on: std::collections::HashSet<String> =
        modules.iter().flat_map(|m| m.dependencies()).collect();
    let mut first = Vec::with_capacity(modules.len());
    let mut tail = Vec::new();
    for ((module, context), &flagged) in modules.into_iter().zip(contexts).zip(last) {
        if flagged && depended_on.contains(module.name()) {
            tracing::warn!(
                module = module.name(),
                "start_after_others ignored: another module depends on this one"
            );
            first.push((module, context));
        } else if flagged {
            tail.push((module, context));
        } else {
            first.push((module, context));
        }
    }
    first.extend(tail);
    first.into_iter().unzip()
}

async fn wait_for_shutdown_signal() -> Result<(), Error> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let mut terminate = signal(SignalKind::terminate()).map_err(Error::Signal)?;
        tokio::select! {
            result = tokio::signal::ctrl_c() => result.map_err(Error::Signal),
            _ = terminate.recv() => Ok(()),
        }
    }
    #[cfg(not(unix))]
    {
        tokio::signal::ctrl_c().await.map_err(Error::Signal)
    }
}
