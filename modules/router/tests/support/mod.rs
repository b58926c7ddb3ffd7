//! Shared fixtures: the router and the real HTTP server on a free loopback port, a `greeter`
//! module that contributes routes and reloads its greeting, and a `checker` module whose
//! health a test controls.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};
use std::time::Duration;

use anyhow::Context as _;
use arc_swap::ArcSwap;
use axum::routing::{get, post};
use modular_core::config::ConfigHandle;
use modular_core::health::{
    HealthContext, HealthError, HealthOptions, HealthProvider, HealthReport, HealthStatus,
    ProviderOptions,
};
use modular_core::http::RouteRegistry;
use modular_core::reload::ReloadOptions;
use modular_core::{
    Application, ApplicationBuilder, BoxError, ConfigChange, DynamicConfig, InitContext, Module,
    ReloadContext, Reloadable,
};
use modular_httpserver::HttpServerModule;
use modular_router::RouterModule;
use serde::{Deserialize, Serialize};
use tokio::sync::Semaphore;

/// A token long enough for `admin.token`.
pub const TOKEN: &str = "test-admin-token-0123456789";

/// The `greeter` section.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, DynamicConfig)]
#[serde(deny_unknown_fields, default)]
pub struct GreeterConfig {
    #[config(dynamic)]
    pub greeting: String,
}

impl Default for GreeterConfig {
    fn default() -> Self {
        Self {
            greeting: "hello".to_owned(),
        }
    }
}

/// Lets a test hold a request inside its handler: `GET /wait` adds a permit to `entered`,
/// then waits for one on `release`.
#[derive(Debug)]
pub struct Gate {
    pub entered: Semaphore,
    pub release: Semaphore,
}

impl Default for Gate {
    fn default() -> Self {
        Self {
            entered: Semaphore::new(0),
            release: Semaphore::new(0),
        }
    }
}

impl Gate {
    pub async fn wait_entered(&self) {
        self.entered.acquire().await.expect("gate open").forget();
    }

    pub fn open(&self) {
        self.release.add_permits(1);
    }
}

/// Contributes `/greet`, `/greet/{name}`, `/slow`, `/wait`, `/panic`, `/echo` and `/big`; a
/// reload changes what `/greet` answers.
pub struct Greeter(pub Arc<Gate>);

struct GreeterReload(Arc<ArcSwap<String>>);

#[modular_core::async_trait]
impl Reloadable for GreeterReload {
    async fn prepare(
        &self,
        ctx: &ReloadContext,
        _changes: &[ConfigChange],
    ) -> Result<modular_core::PreparedReload, BoxError> {
        let config = ctx
            .new_config::<GreeterConfig>()
            .ok_or("no greeter section")?;
        let live = Arc::clone(&self.0);
        let greeting = Arc::new(config.greeting.clone());
        Ok(modular_core::PreparedReload::new(move || {
            live.store(greeting)
        }))
    }
}

#[modular_core::async_trait]
impl Module for Greeter {
    fn name(&self) -> &str {
        "greeter"
    }

    async fn init(&mut self, ctx: &mut InitContext<'_>) -> Result<(), BoxError> {
        let config: ConfigHandle<GreeterConfig> = ctx.config()?;
        let greeting = Arc::new(ArcSwap::from_pointee(config.get().greeting.clone()));
        let routes = RouteRegistry::shared(ctx.services());
        let current = Arc::clone(&greeting);
        routes.route(
            "greeter",
            "/greet",
            get(move || async move { current.load().to_string() }),
        );
        routes.route(
            "greeter",
            "/greet/{name}",
            get(
                |axum::extract::Path(name): axum::extract::Path<String>| async move {
                    format!("hi {name}")
                },
            ),
        );
        routes.route(
            "greeter",
            "/slow",
            get(|| async {
                tokio::time::sleep(Duration::from_millis(300)).await;
                "slow"
            }),
        );
        let gate = Arc::clone(&self.0);
        routes.route(
            "greeter",
            "/wait",
            get(move || async move {
                gate.entered.add_permits(1);
                gate.release.acquire().await.expect("gate open").forget();
                "released"
            }),
        );
        routes.route(
            "greeter",
            "/panic",
            get(|| async {
                if true {
                    panic!("handler exploded");
                }
                "unreachable"
            }),
        );
        routes.route(
            "greeter",
            "/echo",
            post(|body: axum::body::Bytes| async move { body.len().to_string() }),
        );
        routes.route("greeter", "/big", get(|| async { "modular ".repeat(2000) }));
        ctx.register_reloadable(Arc::new(GreeterReload(greeting)));
        Ok(())
    }
}

/// A module whose health the test sets: 0 healthy, 1 degraded, 2 unhealthy.
pub struct Checker(pub Arc<AtomicU8>);

struct CheckerHealth(Arc<AtomicU8>);

#[modular_core::async_trait]
impl HealthProvider for CheckerHealth {
    async fn health_check(&self, _ctx: &HealthContext) -> Result<Vec<HealthReport>, HealthError> {
        let status = match self.0.load(Ordering::Acquire) {
            0 => HealthStatus::Healthy,
            1 => HealthStatus::Degraded,
            _ => HealthStatus::Unhealthy,
        };
        Ok(vec![
            HealthReport::new("checker", "db", status)
                .with_message("db down: connection refused")
                .with_detail("host", "db.internal"),
        ])
    }
}

#[modular_core::async_trait]
impl Module for Checker {
    fn name(&self) -> &str {
        "checker"
    }

    async fn init(&mut self, ctx: &mut InitContext<'_>) -> Result<(), BoxError> {
        ctx.register_health_provider(
            "checker",
            Arc::new(CheckerHealth(Arc::clone(&self.0))),
            ProviderOptions::default(),
        );
        Ok(())
    }
}

/// A started application: router, HTTP server, greeter and checker.
pub struct TestApp {
    pub app: Application,
    pub dir: tempfile::TempDir,
    pub config: PathBuf,
    pub port: u16,
    pub health: Arc<AtomicU8>,
    pub gate: Arc<Gate>,
    pub http: reqwest::Client,
}

/// The server section: loopback, the given port, no drain delay.
pub fn server_yaml(port: u16) -> String {
    format!("httpserver:\n  host: 127.0.0.1\n  port: {port}\n  drain_delay: 0s\n")
}

/// `admin.token` set to [`TOKEN`].
pub fn admin_yaml() -> String {
    format!("admin:\n  token: {TOKEN}\n")
}

pub fn reload_options() -> ReloadOptions {
    ReloadOptions {
        watch_files: false,
        health_gate: false,
        ..ReloadOptions::default()
    }
}

/// Builds and starts with `yaml` (the server section is added) and the default options.
pub async fn start(yaml: &str) -> anyhow::Result<TestApp> {
    start_with(yaml, |b| b).await
}

pub async fn start_with(
    yaml: &str,
    customize: impl FnOnce(ApplicationBuilder) -> ApplicationBuilder,
) -> anyhow::Result<TestApp> {
    // Port 0: the server binds a free port itself, so parallel tests never race for one.
    let (mut app, dir, config, health, gate) = build(0, yaml, customize).await?;
    app.start().await?;
    let port = app
        .services()
        .require::<modular_httpserver::HttpServerHandle>()?
        .local_addr()
        .context("the server is listening")?
        .port();
    modular_testkit::wait_for_tcp(("127.0.0.1", port), Duration::from_secs(5)).await?;
    Ok(TestApp {
        app,
        dir,
        config,
        port,
        health,
        gate,
        // Raw answers: the tests read `content-encoding`, which a decoding client removes.
        http: reqwest::Client::builder()
            .no_proxy()
            .no_gzip()
            .no_brotli()
            .no_zstd()
            .build()?,
    })
}

/// Builds (without starting) an application for `yaml` on `port`.
pub async fn build(
    port: u16,
    yaml: &str,
    customize: impl FnOnce(ApplicationBuilder) -> ApplicationBuilder,
) -> anyhow::Result<(
    Application,
    tempfile::TempDir,
    PathBuf,
    Arc<AtomicU8>,
    Arc<Gate>,
)> {
    modular_testkit::install_crypto_provider();
    let dir = tempfile::tempdir()?;
    let config = dir.path().join("config.yaml");
    std::fs::write(&config, format!("{}{yaml}", server_yaml(port)))?;
    let health = Arc::new(AtomicU8::new(0));
    let gate = Arc::new(Gate::default());
    let builder = Application::builder()
        .config_file(&config)
        .env_prefix(None)
        .module(Greeter(Arc::clone(&gate)))
        .module(RouterModule::new())
        .module(HttpServerModule::new())
        .module(Checker(Arc::clone(&health)))
        .with_reload_options(reload_options())
        .with_health_options(HealthOptions::default().with_cache_ttl(Duration::ZERO))
        .handle_signals(false);
    let app = customize(builder).build().await?;
    Ok((app, dir, config, health, gate))
}

impl TestApp {
    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    pub fn get(&self, path: &str) -> reqwest::RequestBuilder {
        self.http.get(self.url(path))
    }

    pub fn post(&self, path: &str) -> reqwest::RequestBuilder {
        self.http.post(self.url(path))
    }

    /// Rewrites the config file (the server section is added).
    pub fn write_config(&self, yaml: &str) -> anyhow::Result<()> {
        std::fs::write(&self.config, format!("{}{yaml}", server_yaml(0))).context("write config")
    }

    pub fn set_health(&self, status: HealthStatus) {
        let code = match status {
            HealthStatus::Healthy => 0,
            HealthStatus::Degraded => 1,
            _ => 2,
        };
        self.health.store(code, Ordering::Release);
    }
}

/// `GET` and read status and body.
pub async fn text(request: reqwest::RequestBuilder) -> anyhow::Result<(u16, String)> {
    let response = request.send().await?;
    let status = response.status().as_u16();
    Ok((status, response.text().await?))
}

/// Send and read status and JSON body.
pub async fn json(request: reqwest::RequestBuilder) -> anyhow::Result<(u16, serde_json::Value)> {
    let response = request.send().await?;
    let status = response.status().as_u16();
    Ok((status, response.json().await?))
}
