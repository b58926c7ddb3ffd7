//! [`LogMaskerModule`]: loads the `logmasker` section into a [`Masker`], reloads it two-phase,
//! and reports its health.

use std::sync::Arc;
use std::time::Duration;

use modular_core::health::{
    HealthAggregator, HealthContext, HealthError, HealthProvider, HealthReport, HealthStatus,
    ProviderOptions,
};
use modular_core::{
    BoxError, ConfigChange, InitContext, Module, ModuleContext, PreparedReload, ReloadContext,
    Reloadable,
};
use serde_json::{Map, json};

use crate::config::LogMaskerConfig;
use crate::error::LogMaskerError;
use crate::masker::Masker;

/// The module's name, its section and its health registration.
const NAME: &str = "logmasker";

/// Compiling a rule set is CPU work of milliseconds; this bounds a pathological one.
const RELOAD_TIMEOUT: Duration = Duration::from_secs(5);

/// The log masker module, named `logmasker`.
///
/// `init` compiles the section's rules into its [`Masker`] (the one the application's
/// subscriber masks with: [`Masker::global`] unless given another), registers the masker as a
/// service, its reload hook and its health check.
#[derive(Debug)]
pub struct LogMaskerModule {
    masker: Masker,
}

impl Default for LogMaskerModule {
    fn default() -> Self {
        Self::new()
    }
}

impl LogMaskerModule {
    /// The module over the process-wide [`Masker::global`], which [`install`](crate::install)
    /// puts in the global subscriber.
    pub fn new() -> Self {
        Self::with_masker(Masker::global().clone())
    }

    /// The module over `masker` (the one installed in your own subscriber).
    pub fn with_masker(masker: Masker) -> Self {
        Self { masker }
    }

    /// The masker this module configures.
    pub fn masker(&self) -> &Masker {
        &self.masker
    }
}

fn provider_options(config: &LogMaskerConfig) -> ProviderOptions {
    ProviderOptions::new().with_optional(config.health.optional)
}

#[async_trait::async_trait]
impl Module for LogMaskerModule {
    fn name(&self) -> &str {
        NAME
    }

    async fn init(&mut self, ctx: &mut InitContext<'_>) -> Result<(), BoxError> {
        let config: Arc<LogMaskerConfig> = ctx.config::<LogMaskerConfig>()?.get();
        self.masker.apply(&config)?;
        ctx.services().register(Arc::new(self.masker.clone()));
        ctx.register_reloadable(Arc::new(MaskerReloader {
            masker: self.masker.clone(),
            context: ctx.context(),
            health: ctx.services().get::<HealthAggregator>(),
        }));
        ctx.register_health_provider(
            NAME,
            Arc::new(MaskerHealth {
                masker: self.masker.clone(),
            }) as Arc<dyn HealthProvider>,
            provider_options(&config),
        );
        let stats = self.masker.stats();
        tracing::info!(
            module = NAME,
            rules = stats.rules,
            enabled = stats.enabled,
            "log masker ready"
        );
        Ok(())
    }
}

/// Compiles the new rule set aside in `prepare` (a rule that does not compile fails the
/// reload with its path and emits `rules.rejected`, while the running set keeps masking) and
/// swaps it in at commit.
struct MaskerReloader {
    masker: Masker,
    context: ModuleContext,
    health: Option<Arc<HealthAggregator>>,
}

impl std::fmt::Debug for MaskerReloader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MaskerReloader")
            .field("masker", &self.masker)
            .finish_non_exhaustive()
    }
}

#[async_trait::async_trait]
impl Reloadable for MaskerReloader {
    fn reload_timeout(&self) -> Duration {
        RELOAD_TIMEOUT
    }

    async fn prepare(
        &self,
        ctx: &ReloadContext,
        changes: &[ConfigChange],
    ) -> Result<PreparedReload, BoxError> {
        let config =
            ctx.new_config::<LogMaskerConfig>()
                .ok_or_else(|| LogMaskerError::MissingSection {
                    module: ctx.module().to_owned(),
                })?;
        let version = ctx.version();
        let fields: Vec<String> = changes.iter().map(|c| c.field_path.to_string()).collect();
        let prepared = match self.masker.prepare(&config) {
            Ok(prepared) => prepared,
            Err(error) => {
                tracing::warn!(module = NAME, version, %error, "log masker rules rejected; the running rules keep masking");
                self.context.emit(
                    "rules.rejected",
                    json!({ "version": version, "fields": fields, "error": error.to_string() }),
                );
                return Err(error.into());
            }
        };
        let context = self.context.clone();
        let health = self.health.clone();
        let options = provider_options(&config);
        let enabled = config.enabled;
        Ok(PreparedReload::new(move || {
            let rules = prepared.rule_count();
            prepared.commit();
            if let Some(health) = &health {
                health.set_provider_options(NAME, options);
            }
            tracing::info!(module = NAME, version, rules, enabled, fields = ?fields, "log masker rules reloaded");
            context.emit(
                "rules.reloaded",
                json!({ "version": version, "fields": fields, "rules": rules, "enabled": enabled }),
            );
        }))
    }
}

/// One report, component `rules`:
///
/// - `degraded` when the writer dropped lines since the previous check (a failing or
///   backpressured writer; trackers added with [`Masker::track_dropped`] count too);
/// - `healthy` otherwise. A reload whose rules fail to compile is not a health matter (the
///   framework's rule, docs/health.md): the running config and rule set stay and are
///   current; the reload's `failed` outcome, the `rules.rejected` event, core's reload
///   breaker and `details.last_rejection` record it.
///
/// Details: `rules`, `enabled`, `lines_masked`, `values_masked`, `dropped_lines`,
/// `dropped_since_last_check`, `rejected_reloads`, and `last_rejection` when there is one.
/// Registered optional by default (`health.optional`): losing log lines does not make the
/// service unready.
struct MaskerHealth {
    masker: Masker,
}

#[async_trait::async_trait]
impl HealthProvider for MaskerHealth {
    async fn health_check(&self, _ctx: &HealthContext) -> Result<Vec<HealthReport>, HealthError> {
        let stats = self.masker.stats();
        let dropped = self.masker.dropped_since_last_check();
        let rejection = self.masker.last_rejection();
        let mut details = Map::new();
        details.insert("rules".to_owned(), json!(stats.rules));
        details.insert("enabled".to_owned(), json!(stats.enabled));
        details.insert("lines_masked".to_owned(), json!(stats.lines_masked));
        details.insert("values_masked".to_owned(), json!(stats.values_masked));
        details.insert("dropped_lines".to_owned(), json!(stats.dropped_lines));
        details.insert("dropped_since_last_check".to_owned(), json!(dropped));
        details.insert("rejected_reloads".to_owned(), json!(stats.rejected_reloads));
        let (status, message) = match dropped {
            n if n > 0 => (
                HealthStatus::Degraded,
                format!("{n} log lines dropped by the writer since the last check"),
            ),
            _ => (
                HealthStatus::Healthy,
                format!("{} rules, {} lines masked", stats.rules, stats.lines_masked),
            ),
        };
        if let Some(error) = rejection {
            details.insert("last_rejection".to_owned(), json!(error));
        }
        Ok(vec![
            HealthReport::new(NAME, "rules", status)
                .with_message(message)
                .with_details(details),
        ])
    }
}
