//! Shared fixtures: an application with the console, router and HTTP server, a `checks`
//! module reporting any number of health checks, a `knob` section to reload, and a headless
//! Chromium driven through chromedriver.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use fantoccini::{Client, ClientBuilder, Locator};
use modular_console::ConsoleModule;
use modular_core::config::ConfigHandle;
use modular_core::health::{
    HealthContext, HealthError, HealthOptions, HealthProvider, HealthReport, HealthStatus,
    ProviderOptions,
};
use modular_core::http::{AccessPolicy, Decision, Right};
use modular_core::reload::{ReloadOptions, ReloadOrchestrator};
use modular_core::{
    Application, BoxError, DynamicConfig, InitContext, Module, ReloadStatus, ReloadTrigger,
};
use modular_httpserver::HttpServerModule;
use modular_router::RouterModule;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

/// A token long enough for `admin.token`.
pub const TOKEN: &str = "console-test-admin-token-0123456789";

/// How long any awaited condition may take.
pub const WAIT: Duration = Duration::from_secs(10);

/// The `knob` section: `value` is changed through overrides (to fill the history), `label`
/// through the config file (to trigger a file reload).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, DynamicConfig)]
#[serde(deny_unknown_fields, default)]
pub struct KnobConfig {
    #[config(dynamic)]
    pub value: u32,
    #[config(dynamic)]
    pub label: String,
}

impl Default for KnobConfig {
    fn default() -> Self {
        Self {
            value: 0,
            label: "first".to_owned(),
        }
    }
}

/// Reads the `knob` section, so it is a known section.
struct Knob;

#[modular_core::async_trait]
impl Module for Knob {
    fn name(&self) -> &str {
        "knob"
    }

    async fn init(&mut self, ctx: &mut InitContext<'_>) -> Result<(), BoxError> {
        let _: ConfigHandle<KnobConfig> = ctx.config()?;
        Ok(())
    }
}

/// Reports `count` checks `checks:c000`, `checks:c001`, …, every one healthy but the first,
/// which is degraded with a message.
struct Checks(usize);

struct ChecksHealth(usize);

#[modular_core::async_trait]
impl HealthProvider for ChecksHealth {
    async fn health_check(&self, _ctx: &HealthContext) -> Result<Vec<HealthReport>, HealthError> {
        Ok((0..self.0)
            .map(|i| {
                let status = if i == 0 {
                    HealthStatus::Degraded
                } else {
                    HealthStatus::Healthy
                };
                HealthReport::new("checks", format!("c{i:03}"), status)
                    .with_message(format!("check number {i}"))
            })
            .collect())
    }
}

#[modular_core::async_trait]
impl Module for Checks {
    fn name(&self) -> &str {
        "checks"
    }

    async fn init(&mut self, ctx: &mut InitContext<'_>) -> Result<(), BoxError> {
        ctx.register_health_provider(
            "checks",
            Arc::new(ChecksHealth(self.0)),
            // Optional: the degraded one must not hold readiness down.
            ProviderOptions::default().with_optional(true),
        );
        Ok(())
    }
}

/// The cookie [`CookieRole`] grants the admin role for, like an auth-module session.
pub const SESSION_COOKIE: (&str, &str) = ("console_session", "operator");

/// Stands in for the auth module's role policy: a request carrying [`SESSION_COOKIE`] has
/// every right.
#[derive(Debug)]
struct CookiePolicy;

impl AccessPolicy for CookiePolicy {
    fn decide(&self, _right: Right, headers: &axum::http::HeaderMap) -> Decision {
        let wanted = format!("{}={}", SESSION_COOKIE.0, SESSION_COOKIE.1);
        let has = headers
            .get_all(axum::http::header::COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .any(|v| v.split(';').any(|pair| pair.trim() == wanted));
        if has {
            Decision::Granted
        } else {
            Decision::Abstain
        }
    }
}

/// Registers [`CookiePolicy`].
struct CookieRole;

#[modular_core::async_trait]
impl Module for CookieRole {
    fn name(&self) -> &str {
        "cookie_role"
    }

    async fn init(&mut self, ctx: &mut InitContext<'_>) -> Result<(), BoxError> {
        ctx.services()
            .register::<dyn AccessPolicy>(Arc::new(CookiePolicy));
        Ok(())
    }
}

/// A started application.
pub struct ConsoleApp {
    pub app: Application,
    pub dir: tempfile::TempDir,
    pub config: PathBuf,
    pub port: u16,
    pub http: reqwest::Client,
}

/// The config file: loopback server on a free port, the admin token, a fast-polling console.
pub fn config_yaml(label: &str, console: &str) -> String {
    format!(
        "httpserver:\n  host: 127.0.0.1\n  port: 0\n  drain_delay: 0s\n\
         admin:\n  token: {TOKEN}\n\
         console:\n  poll_interval: 200ms\n{console}\
         knob:\n  label: {label}\n"
    )
}

/// Starts an application reporting `checks` checks whose history keeps `history` versions.
pub async fn start(checks: usize, history: usize) -> anyhow::Result<ConsoleApp> {
    start_with(checks, history, &config_yaml("first", "")).await
}

/// [`start`] with the given config file.
pub async fn start_with(checks: usize, history: usize, yaml: &str) -> anyhow::Result<ConsoleApp> {
    start_full(checks, history, yaml, false).await
}

/// [`start`] with an access policy granting the admin role to [`SESSION_COOKIE`].
pub async fn start_with_cookie_role(checks: usize) -> anyhow::Result<ConsoleApp> {
    start_full(checks, 20, &config_yaml("first", ""), true).await
}

async fn start_full(
    checks: usize,
    history: usize,
    yaml: &str,
    cookie_role: bool,
) -> anyhow::Result<ConsoleApp> {
    modular_testkit::install_crypto_provider();
    let dir = tempfile::tempdir()?;
    let config = dir.path().join("config.yaml");
    std::fs::write(&config, yaml)?;
    let mut builder = Application::builder();
    if cookie_role {
        builder = builder.module(CookieRole);
    }
    let mut app = builder
        .config_file(&config)
        .env_prefix(None)
        .module(ConsoleModule::new())
        .module(Knob)
        .module(Checks(checks))
        .module(RouterModule::new())
        .module(HttpServerModule::new())
        .with_reload_options(ReloadOptions {
            watch_files: true,
            health_gate: false,
            history,
            debounce: Duration::from_millis(100),
            ..ReloadOptions::default()
        })
        .with_health_options(HealthOptions::default().with_cache_ttl(Duration::ZERO))
        .handle_signals(false)
        .build()
        .await?;
    app.start().await?;
    let port = app
        .services()
        .require::<modular_httpserver::HttpServerHandle>()?
        .local_addr()
        .context("the server is listening")?
        .port();
    modular_testkit::wait_for_tcp(("127.0.0.1", port), Duration::from_secs(5)).await?;
    Ok(ConsoleApp {
        app,
        dir,
        config,
        port,
        http: reqwest::Client::builder().no_proxy().build()?,
    })
}

impl ConsoleApp {
    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    pub fn orchestrator(&self) -> Arc<ReloadOrchestrator> {
        self.app
            .services()
            .get::<ReloadOrchestrator>()
            .expect("dynamic reload is on")
    }

    /// Commits `count` versions by setting `knob.value` override by override.
    pub async fn add_versions(&self, count: usize) -> anyhow::Result<()> {
        let orchestrator = self.orchestrator();
        for i in 0..count {
            let value = u32::try_from(i + 1)?;
            let outcome = orchestrator
                .set_overrides(
                    ReloadTrigger::Admin,
                    BTreeMap::from([("knob.value".to_owned(), json!(value))]),
                )
                .await;
            if outcome.status != ReloadStatus::Applied {
                bail!("override {i} was not applied: {outcome:?}");
            }
        }
        Ok(())
    }

    /// `GET` with the admin token, as JSON.
    pub async fn admin_json(&self, path: &str) -> anyhow::Result<Value> {
        Ok(self
            .http
            .get(self.url(path))
            .bearer_auth(TOKEN)
            .send()
            .await?
            .json()
            .await?)
    }

    /// Every check the server reports, as `module:component`.
    pub async fn check_names(&self) -> anyhow::Result<Vec<String>> {
        let health = self.admin_json("/health").await?;
        Ok(health["checks"]
            .as_array()
            .context("checks")?
            .iter()
            .map(|c| {
                format!(
                    "{}:{}",
                    c["module"].as_str().unwrap_or(""),
                    c["component"].as_str().unwrap_or("")
                )
            })
            .collect())
    }

    pub async fn stop(mut self) -> anyhow::Result<()> {
        self.app.stop().await?;
        Ok(())
    }
}

/// A headless Chromium session through a chromedriver this fixture started.
pub struct Browser {
    pub client: Client,
    // Killed when dropped.
    _driver: tokio::process::Child,
}

fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v.eq_ignore_ascii_case("true") || v == "1")
}

fn find_program(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(name))
        .find(|candidate| candidate.is_file())
}

impl Browser {
    /// Starts chromedriver and a session; `None` (after one skip line) when chromedriver or
    /// chromium is not installed, unless `CI=true`, where that is an error.
    pub async fn start(test: &str) -> anyhow::Result<Option<Self>> {
        let driver = std::env::var_os("MODULAR_TEST_CHROMEDRIVER")
            .map(PathBuf::from)
            .or_else(|| find_program("chromedriver"));
        let chromium = find_program("chromium");
        let (Some(driver), Some(chromium)) = (driver, chromium) else {
            if in_ci() {
                bail!(
                    "{test}: chromium or chromedriver is missing (apt-get install chromium chromium-driver)"
                );
            }
            eprintln!(
                "skipping {test}: chromium or chromedriver is missing (apt-get install chromium chromium-driver)"
            );
            return Ok(None);
        };
        // Port 0: chromedriver picks a free port and names it on stdout, so two tests (or
        // another process) can never race for the same one.
        let mut child = tokio::process::Command::new(&driver)
            .arg("--port=0")
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("starting {}", driver.display()))?;
        let stdout = child.stdout.take().context("chromedriver's stdout")?;
        let mut lines = tokio::io::AsyncBufReadExt::lines(tokio::io::BufReader::new(stdout));
        let port = tokio::time::timeout(WAIT, async {
            while let Some(line) = lines.next_line().await? {
                if let Some(port) = line
                    .split_once("started successfully on port ")
                    .and_then(|(_, rest)| rest.trim_end_matches('.').parse::<u16>().ok())
                {
                    return Ok(port);
                }
            }
            bail!("chromedriver exited before it named its port")
        })
        .await
        .context("chromedriver did not start")??;
        // Keep reading, so a full pipe never blocks it.
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        let mut capabilities = serde_json::Map::new();
        capabilities.insert(
            "goog:chromeOptions".to_owned(),
            json!({
                "binary": chromium,
                "args": [
                    "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                    "--window-size=1400,1600", "--no-first-run", "--disable-extensions",
                ],
            }),
        );
        // Prompts (the rollback confirm) stay open until the test answers them.
        capabilities.insert("unhandledPromptBehavior".to_owned(), json!("ignore"));
        let client = ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
            .capabilities(capabilities)
            .connect(&format!("http://127.0.0.1:{port}"))
            .await
            .context("cannot open a chromium session")?;
        Ok(Some(Self {
            client,
            _driver: child,
        }))
    }

    /// Runs `script` (a function body that returns a value) in the page.
    pub async fn eval(&self, script: &str) -> anyhow::Result<Value> {
        Ok(self.client.execute(script, Vec::new()).await?)
    }

    /// Waits until `script` returns `true`, polling the DOM; fails after [`WAIT`] with
    /// `what` and the script's last value of `describe`.
    pub async fn wait_until(&self, what: &str, script: &str) -> anyhow::Result<()> {
        self.wait_until_within(what, script, WAIT).await
    }

    /// [`Browser::wait_until`] with another bound.
    pub async fn wait_until_within(
        &self,
        what: &str,
        script: &str,
        within: Duration,
    ) -> anyhow::Result<()> {
        let deadline = Instant::now() + within;
        loop {
            if self.eval(script).await? == Value::Bool(true) {
                return Ok(());
            }
            if Instant::now() >= deadline {
                let body = self
                    .eval("return document.body.innerText")
                    .await
                    .unwrap_or(Value::Null);
                bail!(
                    "timed out after {within:?} waiting for {what}; the page reads:\n{}",
                    body.as_str().unwrap_or("")
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The text of the element with `id`.
    pub async fn text(&self, id: &str) -> anyhow::Result<String> {
        Ok(self.client.find(Locator::Id(id)).await?.text().await?)
    }

    /// Logs in with [`TOKEN`] from the login form.
    pub async fn login(&self, app: &ConsoleApp) -> anyhow::Result<()> {
        self.client.goto(&app.url("/admin/ui")).await?;
        self.wait_until(
            "the login form",
            "return document.body.dataset.state === 'login'",
        )
        .await?;
        self.client
            .find(Locator::Id("token"))
            .await?
            .send_keys(TOKEN)
            .await?;
        self.client
            .find(Locator::Id("login-submit"))
            .await?
            .click()
            .await?;
        self.wait_until(
            "the dashboard",
            "return document.body.dataset.state === 'live'",
        )
        .await
    }

    /// Waits for a prompt and answers it.
    pub async fn answer_confirm(&self, accept: bool) -> anyhow::Result<String> {
        let deadline = Instant::now() + WAIT;
        let text = loop {
            match self.client.get_alert_text().await {
                Ok(text) => break text,
                Err(_) if Instant::now() < deadline => {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                Err(error) => bail!("no confirm appeared: {error}"),
            }
        };
        if accept {
            self.client.accept_alert().await?;
        } else {
            self.client.dismiss_alert().await?;
        }
        Ok(text)
    }

    /// Saves a screenshot of the page as `<target>/console/<name>.png`; returns the path.
    pub async fn screenshot(&self, name: &str) -> anyhow::Result<PathBuf> {
        let png = self.client.screenshot().await?;
        let dir = target_dir().join("console");
        std::fs::create_dir_all(&dir)?;
        let path = dir.join(format!("{name}.png"));
        std::fs::write(&path, png)?;
        Ok(path)
    }

    pub async fn close(self) -> anyhow::Result<()> {
        self.client.close().await?;
        Ok(())
    }
}

/// `CARGO_TARGET_DIR`, else the workspace's `target/`.
pub fn target_dir() -> PathBuf {
    match std::env::var_os("CARGO_TARGET_DIR") {
        Some(dir) => PathBuf::from(dir),
        None => Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target"),
    }
}
