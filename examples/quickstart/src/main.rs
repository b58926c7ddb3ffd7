//! The quickstart: a small modular service on embedded defaults.
//!
//! `cargo run -p quickstart` starts it with `examples/quickstart/config.yaml`; edit the file
//! while it runs and watch the reload line.

use std::path::PathBuf;
use std::time::Duration;

use modular_core::{Application, BoxError, ConfigHandle, DynamicConfig, InitContext, Module, ModuleContext};
use serde::{Deserialize, Serialize};

/// The greeter's section.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, DynamicConfig)]
#[serde(default, deny_unknown_fields)]
struct GreeterConfig {
    /// What to log; dynamic.
    #[config(dynamic)]
    greeting: String,
    /// How often; dynamic.
    #[config(dynamic)]
    #[serde(with = "humantime_serde")]
    interval: Duration,
}

impl Default for GreeterConfig {
    fn default() -> Self {
        Self {
            greeting: "hello".to_owned(),
            interval: Duration::from_secs(10),
        }
    }
}

#[derive(Default)]
struct Greeter {
    config: Option<ConfigHandle<GreeterConfig>>,
}

#[modular_core::async_trait]
impl Module for Greeter {
    fn name(&self) -> &str {
        "greeter"
    }

    async fn init(&mut self, ctx: &mut InitContext<'_>) -> Result<(), BoxError> {
        self.config = Some(ctx.config::<GreeterConfig>()?);
        Ok(())
    }

    async fn start(&self, ctx: &ModuleContext) -> Result<(), BoxError> {
        let Some(config) = self.config.clone() else { return Ok(()) };
        let cancel = ctx.cancellation().clone();
        ctx.spawn(async move {
            loop {
                // One snapshot per tick: greeting and interval always come from one version.
                let snapshot = config.get();
                tracing::info!(greeting = %snapshot.greeting, "greeter");
                tokio::select! {
                    _ = cancel.cancelled() => return,
                    _ = tokio::time::sleep(snapshot.interval) => {}
                }
            }
        });
        Ok(())
    }
}

fn config_path() -> PathBuf {
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        if arg == "--config"
            && let Some(path) = args.next()
        {
            return PathBuf::from(path);
        }
    }
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("config.yaml")
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .init();
    let app = Application::builder()
        .config_file(config_path())
        .module(Greeter::default())
        .with_dynamic_reload()
        .with_health_aggregator()
        .build()
        .await?;
    app.run().await?;
    Ok(())
}
