//! [`SchedulerModule`]: registers the [`Scheduler`] service, its reload hook and health check
//! at init; at start checks every config job has a handler, attaches the persistence store
//! and starts the timer.

use std::sync::Arc;
use std::time::Duration;

use modular_core::config::SectionCheck;
use modular_core::health::{HealthAggregator, HealthProvider, ProviderOptions};
use modular_core::{
    BoxError, ConfigChange, ConfigHandle, FieldError, InitContext, Module, ModuleContext,
    PreparedReload, ReloadContext, Reloadable,
};
use serde_json::Value;

use crate::clock::Clock;
use crate::config::SchedulerConfig;
use crate::cron::CronSchedule;
use crate::error::SchedulerError;
use crate::health::SchedulerHealth;
use crate::scheduler::{JobHandler, Scheduler};
use crate::store::Store;

/// The module's name, its section and its health registration.
pub(crate) const NAME: &str = "scheduler";

/// The health check pings the store at most.
const HEALTH_TIMEOUT: Duration = Duration::from_secs(2);

/// How long `stop` waits for running jobs.
const STOP_DEADLINE: Duration = Duration::from_secs(10);

/// The scheduler module, named `scheduler`.
///
/// Handlers are registered here or on [`SchedulerModule::scheduler`]'s service before
/// `build()`: every job in the config must have one when the module initialises (a job
/// without one fails `build()` with its path), and a reload that adds a job must find its
/// handler registered by then.
#[derive(Debug)]
pub struct SchedulerModule {
    scheduler: Scheduler,
    config: Option<ConfigHandle<SchedulerConfig>>,
}

impl Default for SchedulerModule {
    fn default() -> Self {
        Self::new()
    }
}

impl SchedulerModule {
    /// The module on the system clock.
    pub fn new() -> Self {
        Self::with_clock(Clock::System)
    }

    /// The module reading time from `clock` (tests with paused time:
    /// [`Clock::starting_at`]).
    pub fn with_clock(clock: Clock) -> Self {
        Self {
            scheduler: Scheduler::with_clock(clock),
            config: None,
        }
    }

    /// Registers the handler of job `name` (see [`Scheduler::job`]).
    #[must_use]
    pub fn job(self, name: impl Into<String>, handler: impl JobHandler) -> Self {
        self.scheduler.job(name, handler);
        self
    }

    /// The service this module registers (to hold on to before `build()`).
    pub fn scheduler(&self) -> Scheduler {
        self.scheduler.clone()
    }
}

pub(crate) fn provider_options(config: &SchedulerConfig) -> ProviderOptions {
    config.health.options(HEALTH_TIMEOUT)
}

/// Every config job names a registered handler.
fn handlers_check(scheduler: Scheduler) -> Arc<dyn SectionCheck> {
    Arc::new(move |value: &Value| {
        let Some(jobs) = value.get("jobs").and_then(Value::as_object) else {
            return Ok(());
        };
        let errors: Vec<FieldError> = jobs
            .keys()
            .filter(|name| !scheduler.has_handler(name))
            .map(|name| {
                FieldError::new(
                    format!("jobs.{name}"),
                    format!(
                        "no job handler registered under \"{name}\" (registered: {})",
                        scheduler.handler_names().join(", ")
                    ),
                )
            })
            .collect();
        FieldError::collect(errors)
    })
}

#[async_trait::async_trait]
impl Module for SchedulerModule {
    fn name(&self) -> &str {
        NAME
    }

    async fn init(&mut self, ctx: &mut InitContext<'_>) -> Result<(), BoxError> {
        let handle = ctx.config::<SchedulerConfig>()?;
        let config = handle.get();
        // Checked now against the start-up config (a job without a handler fails `build()`)
        // and in every reload's validate step.
        ctx.config_store()
            .add_section_check(NAME, handlers_check(self.scheduler.clone()))?;
        ctx.services().register(Arc::new(self.scheduler.clone()));
        crate::admin::register(ctx.services(), &self.scheduler);
        ctx.register_reloadable(Arc::new(SchedulerReloader {
            scheduler: self.scheduler.clone(),
            health: ctx.services().get::<HealthAggregator>(),
        }));
        ctx.register_health_provider(
            NAME,
            Arc::new(SchedulerHealth::new(self.scheduler.clone())) as Arc<dyn HealthProvider>,
            provider_options(&config),
        );
        self.config = Some(handle);
        Ok(())
    }

    async fn start(&self, ctx: &ModuleContext) -> Result<(), BoxError> {
        let Some(handle) = &self.config else {
            return Ok(());
        };
        let config = handle.get();
        if let Some(connection) = &config.persistence.connection {
            let store = Store::lookup(ctx.services(), connection)?;
            self.scheduler.attach_store(store, &config).await?;
        }
        self.scheduler.apply(&config);
        self.scheduler.start(Some(ctx.clone()));
        tracing::info!(
            module = NAME,
            jobs = config.jobs.len(),
            workers = config.workers,
            "scheduler started"
        );
        Ok(())
    }

    async fn stop(&self, _ctx: &ModuleContext) -> Result<(), BoxError> {
        self.scheduler.stop(STOP_DEADLINE).await;
        Ok(())
    }
}

/// Parses every job's schedule aside in `prepare` (nothing changes on failure) and applies
/// the section at commit: the pool is resized, changed jobs' next occurrences recomputed.
struct SchedulerReloader {
    scheduler: Scheduler,
    health: Option<Arc<HealthAggregator>>,
}

#[async_trait::async_trait]
impl Reloadable for SchedulerReloader {
    async fn prepare(
        &self,
        ctx: &ReloadContext,
        _changes: &[ConfigChange],
    ) -> Result<PreparedReload, BoxError> {
        let config =
            ctx.new_config::<SchedulerConfig>()
                .ok_or_else(|| SchedulerError::MissingSection {
                    module: ctx.module().to_owned(),
                })?;
        for (name, job) in &config.jobs {
            CronSchedule::new(&job.cron, &job.timezone).map_err(|message| {
                SchedulerError::InvalidSchedule {
                    name: name.clone(),
                    message,
                }
            })?;
            if !self.scheduler.has_handler(name) {
                return Err(SchedulerError::UnknownJob { name: name.clone() }.into());
            }
        }
        let scheduler = self.scheduler.clone();
        let health = self.health.clone();
        Ok(PreparedReload::new(move || {
            scheduler.apply(&config);
            if let Some(health) = &health {
                health.set_provider_options(NAME, provider_options(&config));
            }
        }))
    }
}
