//! [`JsonSchemaModule`]: compiles the `jsonschema` section's schemas at init, registers the
//! [`JsonSchemas`] service, the section checks, the two-phase reload, the health check and
//! the file watcher.

use std::sync::Arc;
use std::time::Duration;

use modular_core::health::{HealthAggregator, HealthProvider, ProviderOptions};
use modular_core::{
    BoxError, ConfigChange, ConfigHandle, InitContext, Module, ModuleContext, PreparedReload,
    ReloadContext, Reloadable,
};
use tokio::sync::mpsc;

use crate::compiler::{self, COMPILE_TIMEOUT};
use crate::config::JsonSchemaConfig;
use crate::error::JsonSchemaError;
use crate::health::SchemaHealth;
use crate::schemas::JsonSchemas;
use crate::watcher::{self, Armed, WatchPlan};

/// The module's name, its section and its health registration.
pub(crate) const NAME: &str = "jsonschema";

/// The health check only reads memory (and, with the watcher off, the schema files).
const HEALTH_TIMEOUT: Duration = Duration::from_millis(500);

/// The jsonschema module, named `jsonschema`.
#[derive(Debug, Default)]
pub struct JsonSchemaModule {
    /// Sections checked against a schema, attached in code ([`JsonSchemaModule::check_section`]).
    sections: Vec<(String, String)>,
    running: Option<Running>,
}

#[derive(Debug)]
struct Running {
    schemas: JsonSchemas,
    config: ConfigHandle<JsonSchemaConfig>,
    /// Where reload commits send their prepared watch; taken by `start`.
    watches: std::sync::Mutex<Option<mpsc::UnboundedReceiver<Armed>>>,
}

impl JsonSchemaModule {
    /// The module; its schemas come from the `jsonschema` section.
    pub fn new() -> Self {
        Self::default()
    }

    /// Checks config section `section` against schema `schema`, as an entry of
    /// `jsonschema.sections` does, from the application's code: the start-up configuration
    /// must match (else `build()` fails with the key paths and sources), and so must every
    /// reload candidate (else it is rejected in step 2 and the running config stays). The
    /// schema must be loaded at start (else `build()` fails); a section named both here and
    /// in `jsonschema.sections` must name the same schema there.
    ///
    /// ```
    /// use modular_jsonschema::JsonSchemaModule;
    ///
    /// let builder = modular_core::Application::builder()
    ///     .free_section("app")
    ///     .module(JsonSchemaModule::new().check_section("app", "app-config"));
    /// # drop(builder);
    /// ```
    #[must_use]
    pub fn check_section(mut self, section: impl Into<String>, schema: impl Into<String>) -> Self {
        self.sections.push((section.into(), schema.into()));
        self
    }

    /// Every section to check: `jsonschema.sections`, then the ones attached in code; a
    /// section named twice with two schemas is an error.
    fn sections(&self, config: &JsonSchemaConfig) -> Result<Vec<(String, String)>, String> {
        let mut all: Vec<(String, String)> = config
            .sections
            .iter()
            .map(|(section, schema)| (section.clone(), schema.clone()))
            .collect();
        for (section, schema) in &self.sections {
            match all.iter().find(|(s, _)| s == section) {
                Some((_, existing)) if existing == schema => {}
                Some((_, existing)) => {
                    return Err(format!(
                        "jsonschema: section \"{section}\" is checked against schema \"{existing}\" \
                         (jsonschema.sections or an earlier check_section) and against \"{schema}\" \
                         by JsonSchemaModule::check_section; name one"
                    ));
                }
                None => all.push((section.clone(), schema.clone())),
            }
        }
        Ok(all)
    }
}

pub(crate) fn provider_options(config: &JsonSchemaConfig) -> ProviderOptions {
    config.health.options(HEALTH_TIMEOUT)
}

#[async_trait::async_trait]
impl Module for JsonSchemaModule {
    fn name(&self) -> &str {
        NAME
    }

    async fn init(&mut self, ctx: &mut InitContext<'_>) -> Result<(), BoxError> {
        let handle = ctx.config::<JsonSchemaConfig>()?;
        let config = handle.get();
        let compiled = tokio::time::timeout(COMPILE_TIMEOUT, compiler::compile(&config, 1))
            .await
            .map_err(|_| {
                format!("jsonschema: compiling the schemas took longer than {COMPILE_TIMEOUT:?}")
            })??;
        crate::metrics::compiled(true);
        let fingerprint = compiled.fingerprint;
        let schemas = JsonSchemas::new(compiled.set);
        schemas.state().fingerprint = Some(fingerprint);
        for (section, schema) in &self.sections(&config)? {
            if schemas.get(schema).is_none() {
                let origin = if config.sections.contains_key(section) {
                    format!("jsonschema.sections.{section}")
                } else {
                    format!("jsonschema: JsonSchemaModule::check_section(\"{section}\")")
                };
                return Err(format!(
                    "{origin}: no schema named \"{schema}\" (have: {})",
                    schemas.names().join(", ")
                )
                .into());
            }
            ctx.config_store()
                .add_section_check(section, schemas.section_check(schema))?;
        }
        ctx.services().register(Arc::new(schemas.clone()));
        let (watches, watches_rx) = mpsc::unbounded_channel();
        ctx.register_reloadable(Arc::new(SchemaReloader {
            schemas: schemas.clone(),
            context: ctx.context(),
            health: ctx.services().get::<HealthAggregator>(),
            watches,
        }));
        ctx.register_health_provider(
            NAME,
            Arc::new(SchemaHealth::new(schemas.clone(), handle.clone())) as Arc<dyn HealthProvider>,
            provider_options(&config),
        );
        tracing::info!(module = NAME, schemas = ?schemas.names(), "json schemas compiled");
        self.running = Some(Running {
            schemas,
            config: handle,
            watches: std::sync::Mutex::new(Some(watches_rx)),
        });
        Ok(())
    }

    async fn start(&self, ctx: &ModuleContext) -> Result<(), BoxError> {
        let Some(running) = &self.running else {
            return Ok(());
        };
        let Some(watches) = running
            .watches
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take()
        else {
            return Ok(());
        };
        // The first watch is in place before `start` returns: a file changed right after
        // start is seen.
        let first = watcher::arm(WatchPlan::of(&running.config.get()));
        watcher::spawn(
            ctx,
            running.schemas.clone(),
            running.config.clone(),
            first,
            watches,
        );
        Ok(())
    }
}

/// Compiles the whole new set aside in `prepare` (a failure fails the reload naming the
/// file and emits `schemas.rejected`; the running set keeps validating and health stays as
/// it was, with `details.last_rejection`) and swaps it in at commit.
struct SchemaReloader {
    schemas: JsonSchemas,
    context: ModuleContext,
    health: Option<Arc<HealthAggregator>>,
    watches: mpsc::UnboundedSender<Armed>,
}

impl std::fmt::Debug for SchemaReloader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SchemaReloader")
            .field("schemas", &self.schemas)
            .finish_non_exhaustive()
    }
}

#[async_trait::async_trait]
impl Reloadable for SchemaReloader {
    fn reload_timeout(&self) -> Duration {
        COMPILE_TIMEOUT
    }

    async fn prepare(
        &self,
        ctx: &ReloadContext,
        _changes: &[ConfigChange],
    ) -> Result<PreparedReload, BoxError> {
        let config = ctx.new_config::<JsonSchemaConfig>().ok_or_else(|| {
            JsonSchemaError::MissingSection {
                module: ctx.module().to_owned(),
            }
        })?;
        let generation = self.schemas.current().generation() + 1;
        let compiled = match compiler::compile(&config, generation).await {
            Ok(compiled) => compiled,
            Err(error) => {
                compiler::reject(
                    &self.schemas,
                    &self.context,
                    &error,
                    compiler::Failed::Candidate,
                    "reload",
                );
                return Err(error.into());
            }
        };
        // The new watch is built aside too; it watches from now on, but only its commit
        // hands it to the task (an aborted reload drops it, and the old watch stays).
        let armed = watcher::arm(WatchPlan::of(&config));
        let schemas = self.schemas.clone();
        let context = self.context.clone();
        let health = self.health.clone();
        let watches = self.watches.clone();
        Ok(PreparedReload::new(move || {
            compiler::publish(
                &schemas,
                &context,
                compiled,
                "reload",
                compiler::Epoch::Bump,
            );
            if let Some(health) = &health {
                health.set_provider_options(NAME, provider_options(&config));
            }
            schemas.state().watching = Some(armed.plan.clone());
            // The task is gone only when the application stops.
            let _ = watches.send(armed);
        }))
    }
}
