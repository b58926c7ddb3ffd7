//! End to end: the real `quickstart` binary, on port 0 (the address read back from its log) with
//! a temporary config file and data directory, walked through the README's walkthrough — a note round trip (`x-cache`
//! miss then hit), health, a live `cache.default_ttl` edit reaching the cache (new version at
//! `/admin/config`, entries expiring on the new TTL), a bad value rejected while the service
//! keeps answering, a static change refused with "restart required", a live switch to another
//! SQLite file that still serves the notes API (the new file is migrated, and the old file's
//! cached rows are never served), and SIGTERM ending in a clean exit. With the `postgres` and
//! `redis` features the same walkthrough also runs on PostgreSQL (a fresh schema per run) and
//! Redis (a fresh key prefix), and with `mysql` the notes API on MariaDB (a fresh database);
//! `cargo xtask ci` runs both (`servers_` tests).
//!
//! Besides the walkthrough: a database swap clears the cached notes; the webhook reaches a
//! local receiver, and a webhook that is down fails no note but shows in health; the notes'
//! own health check fails without its table and recovers; with the log masker installed, a
//! walkthrough of failures never writes the admin token, a database password or webhook
//! credentials.
//!
//! Every wait is a bounded poll with a generous deadline; nothing asserts how fast anything is.
#![allow(clippy::expect_used)]

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{Value, json};
use tokio::time::Instant;

/// The shipped configuration, edited below only where a test needs it.
const SHIPPED_CONFIG: &str = include_str!("../config.yaml");
/// Given through the environment, so the test also proves the `MODULAR_` override.
const TOKEN: &str = "e2e-admin-token-0123456789";
/// Start-up on a loaded 2-core machine, cold SQLite file included.
const READY_DEADLINE: Duration = Duration::from_secs(60);
/// A reload triggered by a file edit (debounce 250 ms) or any other change to be seen.
const CHANGE_DEADLINE: Duration = Duration::from_secs(30);
/// The application's shutdown deadline (30 s) plus margin.
const EXIT_DEADLINE: Duration = Duration::from_secs(45);

/// The running binary; killed (and its log printed) if the test ends without stopping it.
struct Quickstart {
    child: Option<Child>,
    log: PathBuf,
}

impl Quickstart {
    fn spawn_with(config: &Path, log: &Path, env: &[(&str, &str)]) -> Self {
        let log_file = fs::File::create(log).expect("create the log file");
        let child = Command::new(env!("CARGO_BIN_EXE_quickstart"))
            .arg("--config")
            .arg(config)
            .env("RUST_LOG", "info")
            .env("MODULAR_ADMIN__TOKEN", TOKEN)
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(log_file.try_clone().expect("clone the log file"))
            .stderr(log_file)
            .spawn()
            .expect("spawn the quickstart binary");
        Self {
            child: Some(child),
            log: log.to_path_buf(),
        }
    }

    fn log(&self) -> String {
        fs::read_to_string(&self.log).unwrap_or_default()
    }

    fn pid(&self) -> u32 {
        self.child.as_ref().expect("the child is running").id()
    }

    /// Fails the test if the process has exited.
    fn assert_running(&mut self) {
        let child = self.child.as_mut().expect("the child is running");
        if let Some(status) = child.try_wait().expect("poll the child") {
            panic!(
                "the quickstart exited early with {status}; log:\n{}",
                self.log()
            );
        }
    }

    /// Sends SIGTERM and waits (bounded) for the exit.
    async fn terminate(&mut self) -> ExitStatus {
        let sent = Command::new("kill")
            .arg("-TERM")
            .arg(self.pid().to_string())
            .status()
            .expect("run kill");
        assert!(sent.success(), "kill -TERM failed: {sent}");
        let deadline = Instant::now() + EXIT_DEADLINE;
        loop {
            let child = self.child.as_mut().expect("the child is running");
            if let Some(status) = child.try_wait().expect("poll the child") {
                self.child = None;
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "the quickstart did not exit within {EXIT_DEADLINE:?} of SIGTERM; log:\n{}",
                self.log()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

impl Drop for Quickstart {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
            eprintln!("quickstart log:\n{}", self.log());
        }
    }
}

/// The temporary config file, edited the way an editor saves: write aside, rename over.
struct ConfigFile {
    path: PathBuf,
    text: String,
}

impl ConfigFile {
    fn write(&self) {
        let aside = self.path.with_extension("yaml.tmp");
        fs::write(&aside, &self.text).expect("write the config");
        fs::rename(&aside, &self.path).expect("rename the config into place");
    }

    /// Replaces one exact line fragment and saves.
    fn edit(&mut self, from: &str, to: &str) {
        assert_eq!(
            self.text.matches(from).count(),
            1,
            "the config should hold {from:?} exactly once"
        );
        self.text = self.text.replace(from, to);
        self.write();
    }
}

/// Polls `check` until it returns `Some`, failing after `deadline`.
async fn eventually<T, F, Fut>(what: &str, deadline: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let until = Instant::now() + deadline;
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(
            Instant::now() < until,
            "timed out after {deadline:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

struct Api {
    http: reqwest::Client,
    base: String,
}

impl Api {
    async fn get(&self, path: &str) -> reqwest::Response {
        self.http
            .get(format!("{}{path}", self.base))
            .send()
            .await
            .unwrap_or_else(|e| panic!("GET {path}: {e}"))
    }

    async fn post_note(&self, body: &str) -> (StatusCode, Value) {
        let response = self
            .http
            .post(format!("{}/notes", self.base))
            .header("content-type", "application/json")
            .body(body.to_owned())
            .send()
            .await
            .expect("POST /notes");
        let status = response.status();
        (status, response.json().await.expect("a JSON answer"))
    }

    /// `GET /notes/{id}`: status, `x-cache`, body.
    async fn read_note(&self, id: i64) -> (StatusCode, Option<String>, Value) {
        let response = self.get(&format!("/notes/{id}")).await;
        let status = response.status();
        let cache = response
            .headers()
            .get("x-cache")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        (status, cache, response.json().await.expect("a JSON answer"))
    }

    async fn admin_reload(&self) -> Value {
        let (status, outcome) = self.admin_reload_answer().await;
        assert_eq!(status, StatusCode::OK);
        outcome
    }

    /// `POST /admin/reload`, whatever it answers (422 for a rejected reload).
    async fn admin_reload_answer(&self) -> (StatusCode, Value) {
        let response = self
            .admin_request(reqwest::Method::POST, "/admin/reload", TOKEN)
            .await;
        let status = response.status();
        (status, response.json().await.expect("a JSON answer"))
    }

    /// An admin request with `token` as the bearer.
    async fn admin_request(
        &self,
        method: reqwest::Method,
        path: &str,
        token: &str,
    ) -> reqwest::Response {
        self.http
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(token)
            .send()
            .await
            .unwrap_or_else(|e| panic!("{path}: {e}"))
    }

    async fn admin_config(&self) -> Value {
        let response = self
            .http
            .get(format!("{}/admin/config", self.base))
            .bearer_auth(TOKEN)
            .send()
            .await
            .expect("GET /admin/config");
        assert_eq!(response.status(), StatusCode::OK);
        response.json().await.expect("a JSON answer")
    }
}

/// A running quickstart with its temp dir, config file and an API client.
struct Launched {
    dir: tempfile::TempDir,
    config: ConfigFile,
    app: Quickstart,
    api: Api,
}

/// The base URL the binary announced (`notes:        http://127.0.0.1:<port>/notes`): the
/// address the server really bound on port 0.
fn announced_base(log: &str) -> Option<String> {
    log.lines().find_map(|line| {
        let url = line.split("notes:        ").nth(1)?.trim();
        url.strip_suffix("/notes").map(str::to_owned)
    })
}

/// Starts the binary on `config_text` (the shipped config unless a test changed it) on port 0,
/// with the data directory beside the config's directory and extra environment, and waits
/// until `/readyz` answers `ok`.
async fn launch_with(config_text: &str, env: &[(&str, &str)]) -> Launched {
    modular_testkit::install_crypto_provider();
    let dir = tempfile::tempdir().expect("a temp dir");
    // The config lives in its own directory (the one the reload watcher watches); the data
    // directory is given relative to it and does not exist yet.
    let config_dir = dir.path().join("etc");
    fs::create_dir(&config_dir).expect("create the config dir");
    let config = ConfigFile {
        path: config_dir.join("config.yaml"),
        text: config_text
            .replace("port: 8080 ", "port: 0 ")
            .replace("data_dir: data ", "data_dir: ../data "),
    };
    assert!(config.text.contains("port: 0 "));
    assert!(config.text.contains("data_dir: ../data"));
    config.write();
    start_in(dir, config, env, "quickstart.log").await
}

/// Starts the binary on `config` in `dir` (a fresh one, or one a stopped run left behind, with
/// its data directory), logging to `log` in `dir`, and waits until `/readyz` answers `ok`.
async fn start_in(
    dir: tempfile::TempDir,
    config: ConfigFile,
    env: &[(&str, &str)],
    log: &str,
) -> Launched {
    let mut app = Quickstart::spawn_with(&config.path, &dir.path().join(log), env);
    // The server binds port 0; its start-up lines say where it listens.
    let base = eventually("the announced address", READY_DEADLINE, || {
        app.assert_running();
        let base = announced_base(&app.log());
        async move { base }
    })
    .await;
    let api = Api {
        http: reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .build()
            .expect("an HTTP client"),
        base,
    };

    // Start: /readyz answers `ok`.
    let until = Instant::now() + READY_DEADLINE;
    loop {
        app.assert_running();
        if let Ok(response) = api.http.get(format!("{}/readyz", api.base)).send().await
            && response.status() == StatusCode::OK
            && response.text().await.ok().as_deref() == Some("ok")
        {
            break;
        }
        assert!(
            Instant::now() < until,
            "/readyz was not ok within {READY_DEADLINE:?}; log:\n{}",
            app.log()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Launched {
        dir,
        config,
        app,
        api,
    }
}

/// [`launch_with`] on the shipped config.
async fn launch(env: &[(&str, &str)]) -> Launched {
    launch_with(SHIPPED_CONFIG, env).await
}

/// `    url: "<url>"` above the primary connection's `max_connections` line.
fn with_primary_url(config: &str, url: &str) -> String {
    let line = "      max_connections: 5 ";
    assert_eq!(config.matches(line).count(), 1, "one max_connections line");
    config.replace(line, &format!("      url: \"{url}\"\n{line}"))
}

/// Where one walkthrough run keeps its notes and its cache.
struct Backend {
    /// The primary connection's URL, written into the config file; `None`: the SQLite default.
    database_url: Option<String>,
    /// A second, empty database for the live switch; `None`: another SQLite file.
    other_database_url: Option<String>,
    /// The cache's health component, `memory` or `redis`.
    cache: &'static str,
    /// More environment for the binary (the cache engine).
    env: Vec<(&'static str, String)>,
}

impl Backend {
    /// The shipped defaults: SQLite and the memory cache.
    fn embedded() -> Self {
        Self {
            database_url: None,
            other_database_url: None,
            cache: "memory",
            env: Vec::new(),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_readme_walkthrough_works_against_the_real_binary() {
    walkthrough(Backend::embedded()).await;
}

/// The README's walkthrough, step by step, on `backend`.
async fn walkthrough(backend: Backend) {
    let config_text = match &backend.database_url {
        Some(url) => with_primary_url(SHIPPED_CONFIG, url),
        None => SHIPPED_CONFIG.to_owned(),
    };
    let env: Vec<(&str, &str)> = backend.env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let Launched {
        dir,
        mut config,
        mut app,
        api,
    } = launch_with(&config_text, &env).await;
    if backend.database_url.is_none() {
        assert!(
            dir.path().join("data/notes.db").is_file(),
            "the data directory and SQLite file are created"
        );
    }
    let log = app.log();
    for module in [
        "database",
        "cache",
        "httpclient",
        "notes",
        "console",
        "router",
        "httpserver",
    ] {
        assert!(
            log.contains(&format!("module started module={module}")),
            "no start line for {module}:\n{log}"
        );
    }
    for path in [
        "/health",
        "/readyz?verbose",
        "/metrics",
        "/admin/config",
        "/admin/ui",
    ] {
        assert!(
            log.contains(&format!("{}{path}", api.base)),
            "no URL for {path}:\n{log}"
        );
    }

    // Create and read a note: miss, then hit.
    let (status, created) = api.post_note(r#"{"text": "buy milk"}"#).await;
    assert_eq!(
        (status, &created),
        (StatusCode::CREATED, &json!({ "id": 1 }))
    );
    let (status, cache, note) = api.read_note(1).await;
    assert_eq!((status, cache.as_deref()), (StatusCode::OK, Some("miss")));
    assert_eq!(
        (note["id"].clone(), note["text"].clone()),
        (json!(1), json!("buy milk"))
    );
    assert!(
        note["created_at"]
            .as_str()
            .is_some_and(|at| at.len() == "2026-11-25T17:56:19.653Z".len() && at.ends_with('Z')),
        "{note}"
    );
    let (status, cache, again) = api.read_note(1).await;
    assert_eq!((status, cache.as_deref()), (StatusCode::OK, Some("hit")));
    assert_eq!(again, note);
    let list: Value = api.get("/notes").await.json().await.expect("a JSON list");
    assert_eq!(list["notes"], json!([note]));

    // Unknown ids, bad JSON and empty texts: JSON errors, nothing stored.
    let (status, _, missing) = api.read_note(42).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(missing, json!({ "error": "note 42 not found" }));
    for bad in [
        r#"{"text": "#,
        r#"{"text": ""}"#,
        r#"{"text": "   "}"#,
        r#"{"note": "x"}"#,
        "[]",
    ] {
        let (status, error) = api.post_note(bad).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{bad}: {error}");
        assert!(
            error["error"].as_str().is_some_and(|e| !e.is_empty()),
            "{bad}: {error}"
        );
    }
    let list: Value = api.get("/notes").await.json().await.expect("a JSON list");
    assert_eq!(list["notes"].as_array().map(Vec::len), Some(1), "{list}");

    // Metrics: the core series, in the Prometheus text format, with no secret in them.
    let metrics = api.get("/metrics").await;
    assert_eq!(metrics.status(), StatusCode::OK);
    let metrics = metrics.text().await.expect("metrics text");
    for series in [
        "modular_config_version",
        "modular_health_check_duration_seconds_bucket{module=\"database\"",
        "modular_health_status{module=\"database\",component=\"primary\",status=\"healthy\"} 1",
        "modular_health_status{module=\"notes\",component=\"table\",status=\"healthy\"} 1",
        "modular_health_probe_status{probe=\"readiness\"} 0",
    ] {
        assert!(
            metrics.contains(series),
            "{series} missing from:\n{metrics}"
        );
    }
    assert!(
        !metrics.contains("dev-admin-token-change-me"),
        "the admin token leaked into /metrics"
    );

    // Health: every module's check, healthy; readiness verbose lists them.
    let health = api.get("/health").await;
    assert_eq!(health.status(), StatusCode::OK);
    let health: Value = health.json().await.expect("health JSON");
    assert_eq!(health["status"], "healthy", "{health}");
    let verbose = api
        .get("/readyz?verbose")
        .await
        .text()
        .await
        .expect("readyz text");
    for check in [
        "database:primary",
        &format!("cache:{}", backend.cache),
        "httpclient:client",
        "httpserver:listener",
        "notes:table",
        "router:routes",
    ] {
        assert!(verbose.contains(&format!("[+]{check} ok")), "{verbose}");
    }

    // The admin API needs the token (given through MODULAR_ADMIN__TOKEN).
    let anonymous = api.get("/admin/config").await;
    assert_eq!(anonymous.status(), StatusCode::UNAUTHORIZED);
    // The console's page is a static shell (its login form asks for the token); the data it
    // reads is behind the same guard.
    let page = api.get("/admin/ui").await;
    assert_eq!(page.status(), StatusCode::OK);
    assert!(
        page.text()
            .await
            .unwrap_or_default()
            .contains("modular console")
    );
    let settings = api.get("/admin/ui/settings").await;
    assert_eq!(settings.status(), StatusCode::UNAUTHORIZED);
    let admin = api.admin_config().await;
    assert_eq!(admin["version"], 1);
    assert_eq!(admin["config"]["cache"]["default_ttl"], "5m");
    assert_eq!(admin["config"]["admin"]["token"], "[REDACTED]");

    // Edit cache.default_ttl in the file: a new version, and the cache runs with it.
    config.edit("default_ttl: 5m ", "default_ttl: 4s ");
    let admin = eventually("version 2 at /admin/config", CHANGE_DEADLINE, || async {
        let admin = api.admin_config().await;
        (admin["version"] == 2).then_some(admin)
    })
    .await;
    assert_eq!(admin["config"]["cache"]["default_ttl"], "4s");
    let reload_line = eventually("the reload line", CHANGE_DEADLINE, || async {
        app.log()
            .lines()
            .find(|l| l.contains("config reloaded") && l.contains("version=2"))
            .map(str::to_owned)
    })
    .await;
    assert!(
        reload_line.contains("changed=cache.default_ttl"),
        "{reload_line}"
    );
    // Entries written from now on expire after 4 s: a note read twice is a miss then a hit
    // (the second read follows the first by far less than 4 s), and a miss again once the
    // entry has expired (polled: a hit until then, never more than the deadline).
    let (_, created) = api.post_note(r#"{"text": "short-lived"}"#).await;
    let id = created["id"].as_i64().expect("an id");
    assert_eq!(api.read_note(id).await.1.as_deref(), Some("miss"));
    assert_eq!(api.read_note(id).await.1.as_deref(), Some("hit"));
    eventually(
        "x-cache: miss once the 4 s TTL passed",
        CHANGE_DEADLINE,
        || async {
            let (status, cache, _) = api.read_note(id).await;
            assert_eq!(status, StatusCode::OK);
            (cache.as_deref() == Some("miss")).then_some(())
        },
    )
    .await;

    // A bad value is rejected, with its path; the running config and the service stay.
    config.edit("default_ttl: 4s ", "default_ttl: soon ");
    let rejected = eventually(
        "last_rejected at /admin/config",
        CHANGE_DEADLINE,
        || async {
            let admin = api.admin_config().await;
            (!admin["last_rejected"].is_null()).then_some(admin)
        },
    )
    .await;
    assert_eq!(rejected["version"], 2, "{rejected}");
    assert_eq!(rejected["config"]["cache"]["default_ttl"], "4s");
    let last = &rejected["last_rejected"];
    assert_eq!(last["status"], "rejected", "{last}");
    assert_eq!(last["errors"][0]["path"], "cache.default_ttl", "{last}");
    assert!(
        last["errors"][0]["source"]
            .as_str()
            .is_some_and(|s| s.ends_with("config.yaml")),
        "{last}"
    );
    assert!(app.log().contains("config reload rejected"));
    let (status, cache, note_again) = api.read_note(1).await;
    assert_eq!((status, cache.as_deref()), (StatusCode::OK, Some("hit")));
    assert_eq!(note_again, note);
    app.assert_running();

    // A static field: refused with "restart required", nothing applied. (Another port is never
    // bound: the change is refused.)
    config.edit("default_ttl: soon ", "default_ttl: 4s ");
    config.edit("port: 0 ", "port: 1 ");
    let response = api
        .http
        .post(format!("{}/admin/reload", api.base))
        .bearer_auth(TOKEN)
        .send()
        .await
        .expect("POST /admin/reload");
    assert_eq!(response.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let outcome: Value = response.json().await.expect("a reload outcome");
    assert_eq!(outcome["status"], "rejected", "{outcome}");
    assert_eq!(
        outcome["error"], "restart required: httpserver.port",
        "{outcome}"
    );
    assert_eq!(
        outcome["static_changes"],
        json!(["httpserver.port"]),
        "{outcome}"
    );
    let admin = api.admin_config().await;
    assert_eq!(
        (
            admin["version"].clone(),
            admin["config"]["httpserver"]["port"].clone()
        ),
        (json!(2), json!(0))
    );
    assert_eq!(api.get("/readyz").await.status(), StatusCode::OK);

    // Another database, live: the reload builds a pool on a new, empty database, the
    // `migrations` directory gives it the notes table, and the notes API keeps answering.
    config.edit("port: 1 ", "port: 0 ");
    let other_sqlite = dir.path().join("data/other.db");
    match (&backend.database_url, &backend.other_database_url) {
        (Some(url), Some(other)) => config.edit(url, other),
        _ => {
            let url = format!("sqlite://{}", other_sqlite.display());
            config.text = with_primary_url(&config.text, &url);
            config.write();
        }
    }
    eventually("version 3 at /admin/config", CHANGE_DEADLINE, || async {
        (api.admin_config().await["version"] == 3).then_some(())
    })
    .await;
    let reload_line = eventually("the database reload line", CHANGE_DEADLINE, || async {
        app.log()
            .lines()
            .find(|l| l.contains("config reloaded") && l.contains("version=3"))
            .map(str::to_owned)
    })
    .await;
    assert!(
        reload_line.contains("database.connections.primary.url"),
        "{reload_line}"
    );
    if backend.other_database_url.is_none() {
        assert!(other_sqlite.is_file(), "the new SQLite file is created");
    }
    // Ids restart on the new database: note 1 is not there yet, and the old database's note 1,
    // cached a moment ago, is never served.
    let (status, _, missing) = api.read_note(1).await;
    assert_eq!(
        (status, &missing),
        (
            StatusCode::NOT_FOUND,
            &json!({ "error": "note 1 not found" })
        ),
        "the old database's row was served"
    );
    let (status, created) = api.post_note(r#"{"text": "in the other file"}"#).await;
    assert_eq!(
        (status, &created),
        (StatusCode::CREATED, &json!({ "id": 1 })),
        "log:\n{}",
        app.log()
    );
    let (status, cache, fresh) = api.read_note(1).await;
    assert_eq!((status, cache.as_deref()), (StatusCode::OK, Some("miss")));
    assert_eq!(fresh["text"], "in the other file", "{fresh}");
    let list: Value = api.get("/notes").await.json().await.expect("a JSON list");
    assert_eq!(list["notes"].as_array().map(Vec::len), Some(1), "{list}");
    assert_eq!(list["notes"][0]["text"], "in the other file", "{list}");
    assert_eq!(api.get("/readyz").await.status(), StatusCode::OK);

    // SIGTERM: a clean exit within the shutdown deadline.
    let status = app.terminate().await;
    let log = app.log();
    assert!(status.success(), "exit status {status}; log:\n{log}");
    assert!(log.contains("quickstart stopped"), "{log}");
    assert!(log.contains("module stopped module=database"), "{log}");
}

/// A thousand back-to-back `POST /admin/reload`, each committing a change, with the health gate
/// on: none waits out the 3 s gate window (that alone would take 50 minutes). Then a change
/// that breaks readiness (a health probe of an upstream that never answers) is reverted by the gate, and the
/// revert shows in `/admin/config` and in `/health` while the file still holds it. The loop's
/// duration is printed, not asserted; docs/PERFORMANCE.md records it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn back_to_back_reloads_never_wait_for_the_gate_and_a_bad_change_is_reverted_visibly() {
    // The `reload:` section through the environment: reloads come from the admin API only.
    let Launched {
        dir: _dir,
        mut config,
        mut app,
        api,
    } = launch(&[("MODULAR_RELOAD__WATCH_FILES", "false")]).await;

    let started = Instant::now();
    let mut ttl = "default_ttl: 5m ";
    for i in 0..1000 {
        let next = if i % 2 == 0 {
            "default_ttl: 6m "
        } else {
            "default_ttl: 5m "
        };
        config.edit(ttl, next);
        ttl = next;
        let outcome = api.admin_reload().await;
        assert_eq!(outcome["status"], "applied", "reload {i}: {outcome}");
        assert_eq!(outcome["health_gate"], "watching", "reload {i}: {outcome}");
    }
    println!(
        "1000 back-to-back reloads with the health gate on took {:?}",
        started.elapsed()
    );
    assert_eq!(api.admin_config().await["version"], 1001);

    // A probe of an upstream that accepts connections but never answers (a listener this test
    // holds and never accepts from): the 200 ms probe times out, readiness fails after the
    // reload, so the gate reverts it. Port 0: no other process can take the port meanwhile.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").expect("bind a silent upstream");
    let silent_port = silent.local_addr().expect("its address").port();
    config.edit(
        "  retry:\n    max_retries: 2\n",
        &format!(
            "  retry:\n    max_retries: 2\n  health_probe:\n    - name: upstream\n      url: http://127.0.0.1:{silent_port}/health\n      timeout: 200ms\n"
        ),
    );
    let outcome = api.admin_reload().await;
    assert_eq!(outcome["status"], "applied", "{outcome}");
    let reverted = eventually("the revert in /admin/config", CHANGE_DEADLINE, || async {
        let view = api.admin_config().await;
        (!view["last_reverted"].is_null()).then_some(view)
    })
    .await;
    assert_eq!(reverted["last_reverted"]["version"], 1002, "{reverted}");
    assert_eq!(reverted["last_reverted"]["reverted_to"], 1003, "{reverted}");
    assert_eq!(reverted["sources_differ"], true, "{reverted}");
    // Readiness follows the revert (polled, as every wait here is bounded rather than timed).
    let health: Value = eventually("readiness back to healthy", CHANGE_DEADLINE, || async {
        let health: Value = api
            .http
            .get(format!("{}/health", api.base))
            .bearer_auth(TOKEN)
            .send()
            .await
            .ok()?
            .json()
            .await
            .ok()?;
        (health["readiness"] == "healthy").then_some(health)
    })
    .await;
    let component = health["checks"]
        .as_array()
        .and_then(|checks| {
            checks
                .iter()
                .find(|c| c["module"] == "config" && c["component"] == "reverted")
        })
        .unwrap_or_else(|| panic!("no config:reverted check in {health}"));
    assert_eq!(component["status"], "degraded", "{component}");
    assert_eq!(health["readiness"], "healthy", "{health}");

    let status = app.terminate().await;
    assert!(status.success(), "exit {status}; log:\n{}", app.log());
}

/// `GET /health` with the admin token: every check with its message.
async fn health_with_details(api: &Api) -> Value {
    api.http
        .get(format!("{}/health", api.base))
        .bearer_auth(TOKEN)
        .send()
        .await
        .expect("GET /health")
        .json()
        .await
        .expect("health JSON")
}

/// The report of `module:component` in a `/health` answer.
fn check<'a>(health: &'a Value, module: &str, component: &str) -> &'a Value {
    health["checks"]
        .as_array()
        .and_then(|checks| {
            checks
                .iter()
                .find(|c| c["module"] == module && c["component"] == component)
        })
        .unwrap_or_else(|| panic!("no {module}:{component} check in {health}"))
}

/// Waits for `/admin/config` to show `version`.
async fn wait_for_version(api: &Api, version: u64) {
    eventually(
        &format!("version {version} at /admin/config"),
        CHANGE_DEADLINE,
        || async { (api.admin_config().await["version"] == version).then_some(()) },
    )
    .await;
}

/// Note 1 on database A is cached; the connection moves to database B: `GET /notes/1` answers
/// B's note 1 or 404, never A's. Moving back to A, A's note 1 is read from the database again
/// (`x-cache: miss`): the swap cleared the cache (without the clear it would be a hit until
/// its 5-minute TTL).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_swap_never_serves_the_old_rows_and_clears_the_cached_notes() {
    let Launched {
        dir,
        mut config,
        mut app,
        api,
    } = launch(&[("MODULAR_RELOAD__WATCH_FILES", "false")]).await;
    let (status, _) = api.post_note(r#"{"text": "on A"}"#).await;
    assert_eq!(status, StatusCode::CREATED);
    assert_eq!(api.read_note(1).await.1.as_deref(), Some("miss"));
    assert_eq!(api.read_note(1).await.1.as_deref(), Some("hit"));

    let b = dir.path().join("data/b.db");
    let shipped = config.text.clone();
    config.text = with_primary_url(&shipped, &format!("sqlite://{}", b.display()));
    config.write();
    assert_eq!(api.admin_reload().await["status"], "applied");
    wait_for_version(&api, 2).await;
    // At once after the reload, not eventually: the cache keys name the database.
    let (status, _, missing) = api.read_note(1).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "A's row on B: {missing}");
    let (status, created) = api.post_note(r#"{"text": "on B"}"#).await;
    assert_eq!((status, created), (StatusCode::CREATED, json!({ "id": 1 })));
    let (status, cache, note) = api.read_note(1).await;
    assert_eq!((status, cache.as_deref()), (StatusCode::OK, Some("miss")));
    assert_eq!(note["text"], "on B");
    assert_eq!(api.read_note(1).await.1.as_deref(), Some("hit"));
    eventually(
        "the clear after the first swap",
        CHANGE_DEADLINE,
        || async {
            app.log()
                .contains("database pool swapped; cached notes cleared")
                .then_some(())
        },
    )
    .await;

    // Back to A (the default URL): its note 1 was cleared from the cache with the first swap.
    config.text = shipped;
    config.write();
    assert_eq!(api.admin_reload().await["status"], "applied");
    wait_for_version(&api, 3).await;
    let (status, cache, note) = api.read_note(1).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(note["text"], "on A", "B's row on A: {note}");
    assert_eq!(
        cache.as_deref(),
        Some("miss"),
        "A's row survived the swap in the cache"
    );

    let status = app.terminate().await;
    assert!(status.success(), "exit {status}; log:\n{}", app.log());
}

/// What the local webhook receiver got.
type Received = std::sync::Arc<std::sync::Mutex<Vec<Value>>>;

/// An axum server on port 0 that records every JSON body posted to `/hook`, and answers
/// `/health` with 200.
async fn webhook_receiver() -> (String, Received) {
    use axum::routing::{get, post};
    let received = Received::default();
    let sink = std::sync::Arc::clone(&received);
    let router = axum::Router::new()
        .route(
            "/hook",
            post(move |axum::Json(body): axum::Json<Value>| {
                let sink = std::sync::Arc::clone(&sink);
                async move {
                    sink.lock().expect("the receiver's list").push(body);
                    StatusCode::NO_CONTENT
                }
            }),
        )
        .route("/health", get(|| async { "ok" }));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind the webhook receiver");
    let addr = listener.local_addr().expect("its address");
    tokio::spawn(async move {
        let _ = axum::serve(listener, router).await;
    });
    (format!("http://{addr}"), received)
}

/// The shipped config as [`launch_with`] writes it (port 0, the data directory beside).
fn shipped_as_launched() -> String {
    SHIPPED_CONFIG
        .replace("port: 8080 ", "port: 0 ")
        .replace("data_dir: data ", "data_dir: ../data ")
}

/// The shipped config with a webhook to `hook` and its probe of `probe_url`, the file watcher
/// off (the tests reload through the admin API).
async fn launch_with_webhook(hook: &str, probe_url: &str) -> Launched {
    launch_with(
        &webhook_config(&shipped_as_launched(), hook, probe_url),
        &[("MODULAR_RELOAD__WATCH_FILES", "false")],
    )
    .await
}

/// `notes.webhook_url` and a `webhook` probe of `probe_url`, in the config file.
fn webhook_config(shipped: &str, hook: &str, probe_url: &str) -> String {
    let probe = format!(
        "  retry:\n    max_retries: 2\n  health_probe:\n    - name: webhook\n      url: {probe_url}\n      timeout: 500ms\n      optional: true\n"
    );
    let with_probe = shipped.replace("  retry:\n    max_retries: 2\n", &probe);
    assert_ne!(
        with_probe, shipped,
        "the shipped httpclient section changed"
    );
    let list_limit = "  list_limit: 100 ";
    assert_eq!(with_probe.matches(list_limit).count(), 1);
    with_probe.replace(
        list_limit,
        &format!("  webhook_url: \"{hook}\"\n{list_limit}"),
    )
}

/// A webhook on note creation goes out through the httpclient module: a local receiver gets
/// every new note; with the webhook down (a refused port) notes are still created, the failure
/// is logged, and the `webhook` probe shows it in health (degraded: the probe is optional)
/// while readiness stays healthy.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_webhook_receives_new_notes_and_a_down_one_fails_no_note_but_shows_in_health() {
    let (receiver, received) = webhook_receiver().await;
    // As `launch_with` writes it, so the rewrites below change only the webhook.
    let shipped = shipped_as_launched();
    let Launched {
        dir: _dir,
        mut config,
        mut app,
        api,
    } = launch_with_webhook(
        &format!("{receiver}/hook?token=hook-secret-1234"),
        &format!("{receiver}/health"),
    )
    .await;
    assert_eq!(
        api.admin_config().await["config"]["notes"]["webhook_url"],
        "[REDACTED]"
    );
    let health = health_with_details(&api).await;
    assert_eq!(
        check(&health, "httpclient", "probe.webhook")["status"],
        "healthy",
        "{health}"
    );

    let (status, created) = api.post_note(r#"{"text": "ring the bell"}"#).await;
    assert_eq!((status, created), (StatusCode::CREATED, json!({ "id": 1 })));
    let delivered = eventually("the webhook delivery", CHANGE_DEADLINE, || async {
        received
            .lock()
            .expect("the receiver's list")
            .first()
            .cloned()
    })
    .await;
    assert_eq!(delivered["event"], "note.created", "{delivered}");
    assert_eq!(delivered["note"]["id"], 1, "{delivered}");
    assert_eq!(delivered["note"]["text"], "ring the bell", "{delivered}");
    let (_, _, stored) = api.read_note(1).await;
    assert_eq!(delivered["note"], stored);

    // The webhook goes down: a refused port, for both the hook and its probe.
    let down = modular_testkit::RefusedPort::new();
    config.text = webhook_config(
        &shipped,
        &format!("{}/hook?token=hook-secret-1234", down.http_url()),
        &format!("{}/health", down.http_url()),
    );
    config.write();
    assert_eq!(api.admin_reload().await["status"], "applied");
    let (status, created) = api.post_note(r#"{"text": "nobody listens"}"#).await;
    assert_eq!((status, created), (StatusCode::CREATED, json!({ "id": 2 })));
    eventually(
        "the failed delivery in the log",
        CHANGE_DEADLINE,
        || async { app.log().contains("webhook delivery failed").then_some(()) },
    )
    .await;
    let health = eventually(
        "the probe's failure in /health",
        CHANGE_DEADLINE,
        || async {
            let health = health_with_details(&api).await;
            (check(&health, "httpclient", "probe.webhook")["status"] == "degraded")
                .then_some(health)
        },
    )
    .await;
    assert_eq!(health["readiness"], "healthy", "{health}");
    assert_eq!(api.get("/readyz").await.status(), StatusCode::OK);
    assert_eq!(received.lock().expect("the receiver's list").len(), 1);
    let log = app.log();
    assert!(
        !log.contains("hook-secret-1234"),
        "the webhook token leaked:\n{log}"
    );

    let status = app.terminate().await;
    assert!(status.success(), "exit {status}; log:\n{}", app.log());
}

/// The notes module's own check: with its table dropped the service is not ready
/// (`[-]notes:table`, 503) although the database answers; with the table back it recovers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_notes_health_fails_without_its_table_and_recovers() {
    use modular_database::sqlx;
    let Launched {
        dir,
        config: _config,
        mut app,
        api,
    } = launch(&[]).await;
    let file = dir.path().join("data/notes.db");
    let db =
        sqlx::SqlitePool::connect_with(sqlx::sqlite::SqliteConnectOptions::new().filename(&file))
            .await
            .expect("open the notes file");
    sqlx::query("DROP TABLE notes")
        .execute(&db)
        .await
        .expect("drop the notes table");

    let verbose = eventually("readiness failing", CHANGE_DEADLINE, || async {
        let response = api.get("/readyz?verbose").await;
        let status = response.status();
        let text = response.text().await.ok()?;
        (status == StatusCode::SERVICE_UNAVAILABLE).then_some(text)
    })
    .await;
    assert!(verbose.contains("[-]notes:table"), "{verbose}");
    assert!(verbose.contains("[+]database:primary ok"), "{verbose}");
    let health = health_with_details(&api).await;
    let table = check(&health, "notes", "table");
    assert_eq!(table["status"], "unhealthy", "{health}");
    assert!(
        table["message"]
            .as_str()
            .is_some_and(|m| m.contains("no such table: notes")),
        "{table}"
    );

    sqlx::raw_sql(include_str!("../migrations/sqlite/0001_notes.sql"))
        .execute(&db)
        .await
        .expect("recreate the notes table");
    eventually("readiness back", CHANGE_DEADLINE, || async {
        (api.get("/readyz").await.status() == StatusCode::OK).then_some(())
    })
    .await;
    let (status, _) = api.post_note(r#"{"text": "back"}"#).await;
    assert_eq!(status, StatusCode::CREATED);
    db.close().await;

    let status = app.terminate().await;
    assert!(status.success(), "exit {status}; log:\n{}", app.log());
}

/// A name no earlier run used: this process and the time.
#[cfg(any(feature = "postgres", feature = "mysql", feature = "fleet"))]
fn run_id() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default();
    format!("{}_{nanos}", std::process::id())
}

/// `url` with one more query parameter.
#[cfg(feature = "postgres")]
fn with_query(url: &str, parameter: &str) -> String {
    let separator = if url.contains('?') { '&' } else { '?' };
    format!("{url}{separator}{parameter}")
}

/// The README walkthrough on PostgreSQL (the notes in a fresh schema, the live switch to a
/// second one) and Redis (keys under a fresh prefix). `cargo xtask ci` runs it with
/// `--features postgres,mysql,redis`.
#[cfg(all(feature = "postgres", feature = "redis"))]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn servers_the_readme_walkthrough_works_on_postgresql_and_redis() {
    use modular_database::sqlx::{self, AssertSqlSafe};
    use modular_testkit::Service;
    let Some(postgres) = modular_testkit::service(Service::Postgres) else {
        return;
    };
    let Some(redis) = modular_testkit::service(Service::Redis) else {
        return;
    };
    let run = run_id();
    let admin = sqlx::PgPool::connect(&postgres)
        .await
        .expect("connect to PostgreSQL");
    let schemas = [
        format!("quickstart_e2e_{run}_a"),
        format!("quickstart_e2e_{run}_b"),
    ];
    for schema in &schemas {
        sqlx::query(AssertSqlSafe(format!("CREATE SCHEMA {schema}")))
            .execute(&admin)
            .await
            .expect("create a schema");
    }
    let in_schema =
        |schema: &str| with_query(&postgres, &format!("options=-c%20search_path%3D{schema}"));
    walkthrough(Backend {
        database_url: Some(in_schema(&schemas[0])),
        other_database_url: Some(in_schema(&schemas[1])),
        cache: "redis",
        env: vec![
            ("MODULAR_CACHE__ENGINE", "redis".to_owned()),
            ("MODULAR_CACHE__REDIS__URL", redis),
            (
                "MODULAR_CACHE__REDIS__KEY_PREFIX",
                format!("quickstart-e2e:{run}:"),
            ),
        ],
    })
    .await;
    for schema in &schemas {
        sqlx::query(AssertSqlSafe(format!("DROP SCHEMA {schema} CASCADE")))
            .execute(&admin)
            .await
            .expect("drop a schema");
    }
}

/// The notes API and its health on MariaDB, in a fresh database given the way the README
/// does, through `MODULAR_DATABASE__CONNECTIONS__PRIMARY__URL`.
#[cfg(feature = "mysql")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn servers_the_notes_api_works_on_mariadb() {
    use modular_database::sqlx::{self, AssertSqlSafe};
    use modular_testkit::Service;
    let Some(mysql) = modular_testkit::service(Service::Mysql) else {
        return;
    };
    let database = format!("quickstart_e2e_{}", run_id());
    let admin = sqlx::MySqlPool::connect(&mysql)
        .await
        .expect("connect to MariaDB");
    sqlx::query(AssertSqlSafe(format!("CREATE DATABASE {database}")))
        .execute(&admin)
        .await
        .expect("create a database");
    let server = mysql.split('?').next().unwrap_or(&mysql);
    let (server, _) = server.rsplit_once('/').expect("a database in the URL");
    let url = format!("{server}/{database}");

    let Launched {
        dir: _dir,
        config: _config,
        mut app,
        api,
    } = launch(&[("MODULAR_DATABASE__CONNECTIONS__PRIMARY__URL", url.as_str())]).await;
    assert!(app.log().contains("driver=mysql"), "{}", app.log());
    for (text, id) in [("buy milk", 1), ("call mum", 2)] {
        let (status, created) = api.post_note(&json!({ "text": text }).to_string()).await;
        assert_eq!(
            (status, created),
            (StatusCode::CREATED, json!({ "id": id }))
        );
    }
    let (status, cache, note) = api.read_note(1).await;
    assert_eq!((status, cache.as_deref()), (StatusCode::OK, Some("miss")));
    assert_eq!(note["text"], "buy milk");
    assert_eq!(api.read_note(1).await.1.as_deref(), Some("hit"));
    let list: Value = api.get("/notes").await.json().await.expect("a JSON list");
    let ids: Vec<&Value> = list["notes"]
        .as_array()
        .map(|notes| notes.iter().map(|n| &n["id"]).collect())
        .unwrap_or_default();
    assert_eq!(ids, [&json!(2), &json!(1)], "{list}");
    let verbose = api.get("/readyz?verbose").await.text().await.expect("text");
    for check in ["database:primary", "notes:table"] {
        assert!(verbose.contains(&format!("[+]{check} ok")), "{verbose}");
    }
    assert!(!app.log().contains(&url), "the database URL was logged");

    let status = app.terminate().await;
    assert!(status.success(), "exit {status}; log:\n{}", app.log());
    sqlx::query(AssertSqlSafe(format!("DROP DATABASE {database}")))
        .execute(&admin)
        .await
        .expect("drop the database");
}

/// With the log masker installed (issue 18), a walkthrough of failures never writes the admin
/// token, a database URL's password or a webhook's credentials: bad admin tokens, a reload to
/// an unreachable database URL with a password, and outbound errors to a webhook that is down.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secrets_never_reach_the_log_with_the_masker_installed() {
    const DB_PASSWORD: &str = "e2e-db-pass-5150";
    const HOOK_PASSWORD: &str = "e2e-hook-pass-8086";
    const HOOK_TOKEN: &str = "e2e-hook-token-6502";
    const WRONG_TOKEN: &str = "e2e-wrong-token-2600";
    let down = modular_testkit::RefusedPort::new();
    let hook = format!(
        "{}/hook?token={HOOK_TOKEN}",
        down.http_url()
            .replacen("://", &format!("://hook:{HOOK_PASSWORD}@"), 1)
    );
    let Launched {
        dir: _dir,
        mut config,
        mut app,
        api,
    } = launch_with(
        &webhook_config(
            &shipped_as_launched(),
            &hook,
            &format!("{}/health", down.http_url()),
        ),
        &[
            ("MODULAR_RELOAD__WATCH_FILES", "false"),
            // The notes log each new note's text at debug: user content, where the personal
            // data the masker exists for turns up.
            ("RUST_LOG", "info,quickstart=debug"),
        ],
    )
    .await;
    assert!(
        app.log().contains("log masker ready"),
        "the masker module is installed:\n{}",
        app.log()
    );

    // Bad admin tokens.
    for token in [WRONG_TOKEN, &format!("{TOKEN}x")] {
        let response = api
            .admin_request(reqwest::Method::GET, "/admin/config", token)
            .await;
        assert!(
            matches!(
                response.status(),
                StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN
            ),
            "{}",
            response.status()
        );
    }

    // Outbound errors: the webhook is down.
    let (status, _) = api.post_note(r#"{"text": "nobody listens"}"#).await;
    assert_eq!(status, StatusCode::CREATED);
    eventually(
        "the failed delivery in the log",
        CHANGE_DEADLINE,
        || async { app.log().contains("webhook delivery failed").then_some(()) },
    )
    .await;

    // Personal data in a note: the app logs the text, the masker masks what it recognises.
    const EMAIL: &str = "carol.e2e@example.com";
    const CARD: &str = "4111 1111 1111 1111";
    let (status, created) = api
        .post_note(&format!(r#"{{"text": "mail {EMAIL}, card {CARD}"}}"#))
        .await;
    assert_eq!(status, StatusCode::CREATED);
    let line = eventually("the note's log line", CHANGE_DEADLINE, || async {
        app.log()
            .lines()
            .find(|l| l.contains("note created") && l.contains(&format!("id={}", created["id"])))
            .map(str::to_owned)
    })
    .await;
    assert!(
        line.contains("text=mail [REDACTED], card [REDACTED]"),
        "{line}"
    );

    // The control: with masking turned off by a live reload, the same kind of line shows the
    // address, so this test sees a leak when there is one; then masking is turned back on.
    const CONTROL: &str = "dave.e2e@example.com";
    config.edit(
        "  enabled: true          # secrets",
        "  enabled: false         # secrets",
    );
    assert_eq!(api.admin_reload().await["status"], "applied");
    let (_, created) = api
        .post_note(&format!(r#"{{"text": "mail {CONTROL}"}}"#))
        .await;
    eventually("the unmasked control line", CHANGE_DEADLINE, || async {
        app.log()
            .lines()
            .any(|l| l.contains(&format!("id={}", created["id"])) && l.contains(CONTROL))
            .then_some(())
    })
    .await;
    config.edit(
        "  enabled: false         # secrets",
        "  enabled: true          # secrets",
    );
    assert_eq!(api.admin_reload().await["status"], "applied");

    // A reload to an unreachable database URL carrying a password: refused, the service stays.
    let unreachable = format!(
        "postgres://notes:{DB_PASSWORD}@127.0.0.1:{}/notes",
        down.addr().port()
    );
    config.text = with_primary_url(&config.text, &unreachable);
    config.write();
    let (_, outcome) = api.admin_reload_answer().await;
    assert_ne!(outcome["status"], "applied", "{outcome}");
    assert!(!outcome.to_string().contains(DB_PASSWORD), "{outcome}");
    assert_eq!(api.get("/readyz").await.status(), StatusCode::OK);

    let status = app.terminate().await;
    assert!(status.success(), "exit {status}; log:\n{}", app.log());
    let log = app.log();
    for secret in [
        TOKEN,
        WRONG_TOKEN,
        DB_PASSWORD,
        HOOK_PASSWORD,
        HOOK_TOKEN,
        EMAIL,
        CARD,
    ] {
        assert!(!log.contains(secret), "`{secret}` reached the log:\n{log}");
    }
}

/// `GET /admin/fleet` on `api`, when it answers 200.
#[cfg(feature = "fleet")]
async fn fleet_view(api: &Api) -> Option<Value> {
    let response = api
        .admin_request(reqwest::Method::GET, "/admin/fleet", TOKEN)
        .await;
    if response.status() != StatusCode::OK {
        return None;
    }
    response.json().await.ok()
}

/// The `time` (when the outcome happened) of every instance's status about `revision`.
#[cfg(feature = "fleet")]
fn outcome_times(fleet: &Value, revision: &str) -> Vec<chrono::DateTime<chrono::Utc>> {
    fleet["instances"]
        .as_array()
        .map(|all| {
            all.iter()
                .filter(|s| s["revision"] == json!(revision))
                .filter_map(|s| s["time"].as_str()?.parse().ok())
                .collect()
        })
        .unwrap_or_default()
}

/// Ten quickstart processes on one bucket, each connected to NATS through one `FaultProxy`:
///
/// 1. one put reaches them all, and every instance's `/admin/fleet` lists ten ACKs of its
///    revision; the spread between the first and the last apply (the instances' outcome
///    times) and the time from the put to the last apply are measured and printed (not
///    asserted: wall-clock figures go to docs/PERFORMANCE.md);
/// 2. NATS is cut: every instance keeps serving, its `fleet:config_source` turns degraded; a
///    change put meanwhile is applied by all ten once the link is restored, and the source
///    turns healthy again;
/// 3. a change valid on nine instances and invalid on one (its config file sets the static
///    `notes.data_dir` to another directory, which the change would move): every instance's
///    `/admin/fleet` shows nine ACKs and one NACK with the error, and the NACKing instance
///    keeps its running config.
///
/// `cargo xtask ci` runs it with `--features fleet` against the local NATS.
#[cfg(feature = "fleet")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn servers_ten_instances_apply_one_fleet_put_ride_out_an_outage_and_show_one_nack() {
    let Some(url) = modular_testkit::service(modular_testkit::Service::Nats) else {
        return;
    };
    let bucket = format!("e2e_fleet_{}", run_id());
    let client = async_nats::connect(url.as_str()).await.expect("NATS");
    let js = async_nats::jetstream::new(client);
    let store = modular_config_nats::ops::open_bucket(&js, &bucket, 5)
        .await
        .expect("the bucket");
    let upstream: std::net::SocketAddr = url
        .trim_start_matches("nats://")
        .parse()
        .expect("a nats://ip:port URL");
    let proxy = modular_testkit::FaultProxy::start(upstream)
        .await
        .expect("the fault proxy");
    let proxied = format!("nats://{}", proxy.addr());
    let mut fleet = Vec::new();
    for i in 0..10 {
        let id = format!("q{i}");
        let env = [
            ("MODULAR_ADMIN__TOKEN", TOKEN),
            ("QUICKSTART_FLEET_URL", proxied.as_str()),
            ("QUICKSTART_FLEET_BUCKET", bucket.as_str()),
            ("QUICKSTART_FLEET_SERVICE", "notes_e2e"),
            ("MODULAR_FLEET__INSTANCE_ID", id.as_str()),
            ("MODULAR_FLEET__HEARTBEAT", "1s"),
        ];
        // q9 keeps its notes in a directory of its own (a local setting of a static field).
        let config = if i == 9 {
            SHIPPED_CONFIG.replace("data_dir: data ", "data_dir: ../data9 ")
        } else {
            SHIPPED_CONFIG.to_owned()
        };
        fleet.push(launch_with(&config, &env).await);
    }

    // 1. One put reaches all ten; each ACKs it; every instance shows the ten ACKs.
    let put_at = chrono::Utc::now();
    let revision = store
        .put("notes_e2e.notes.list_limit", "7".into())
        .await
        .expect("put")
        .to_string();
    let mut times = Vec::new();
    for launched in &fleet {
        let view = eventually(
            "ten ACKs of the put on this instance",
            CHANGE_DEADLINE,
            || {
                let revision = revision.clone();
                async move {
                    let body = fleet_view(&launched.api).await?;
                    (body["acks"] == json!(10) && body["revisions"][revision.as_str()] == json!(10))
                        .then_some(body)
                }
            },
        )
        .await;
        times = outcome_times(&view, &revision);
        let config = launched.api.admin_config().await;
        assert_eq!(
            config["config"]["notes"]["list_limit"],
            json!(7),
            "{config}"
        );
    }
    assert_eq!(times.len(), 10, "{times:?}");
    let first = times.iter().min().copied().expect("ten times");
    let last = times.iter().max().copied().expect("ten times");
    eprintln!(
        "fleet e2e: first-to-last apply spread over 10 processes {} ms; put to last apply {} ms",
        (last - first).num_milliseconds(),
        (last - put_at).num_milliseconds()
    );
    // Without the admin token, the fleet's state is not shown.
    let response = fleet[0]
        .api
        .http
        .get(format!("{}/admin/fleet", fleet[0].api.base))
        .send()
        .await
        .expect("GET /admin/fleet");
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);

    // 2. NATS cut: serving goes on, the source degrades; a change put meanwhile applies on
    // reconnect and the source recovers.
    proxy.cut();
    for launched in &fleet {
        let source = eventually("fleet:config_source degraded", CHANGE_DEADLINE, || async {
            let health = health_with_details(&launched.api).await;
            let source = check(&health, "fleet", "config_source").clone();
            (source["status"] == "degraded").then_some(source)
        })
        .await;
        assert!(
            source["message"]
                .as_str()
                .unwrap_or_default()
                .contains("unreachable"),
            "{source}"
        );
        assert_eq!(launched.api.get("/readyz").await.status(), StatusCode::OK);
        assert_eq!(launched.api.get("/notes").await.status(), StatusCode::OK);
    }
    let during = store
        .put("notes_e2e.notes.list_limit", "8".into())
        .await
        .expect("put during the outage")
        .to_string();
    let (status, _) = fleet[0]
        .api
        .post_note(r#"{"text": "during the outage"}"#)
        .await;
    assert_eq!(status, StatusCode::CREATED);
    proxy.restore();
    for launched in &fleet {
        eventually(
            "the change put during the outage applies",
            CHANGE_DEADLINE,
            || async {
                let config = launched.api.admin_config().await;
                (config["config"]["notes"]["list_limit"] == json!(8)).then_some(())
            },
        )
        .await;
        eventually(
            "fleet:config_source healthy again",
            CHANGE_DEADLINE,
            || async {
                let health = health_with_details(&launched.api).await;
                (check(&health, "fleet", "config_source")["status"] == "healthy").then_some(())
            },
        )
        .await;
    }
    eventually(
        "ten ACKs of the change put during the outage",
        CHANGE_DEADLINE,
        || {
            let during = during.clone();
            let api = &fleet[0].api;
            async move {
                let body = fleet_view(api).await?;
                (body["acks"] == json!(10) && body["revisions"][during.as_str()] == json!(10))
                    .then_some(())
            }
        },
    )
    .await;

    // 3. Valid on nine, invalid on q9 (it would move q9's data directory, a static field):
    // nine ACKs and one NACK, seen on every instance; q9 keeps its running config.
    let conflicting = store
        .put(
            "notes_e2e.notes",
            "{data_dir: ../data, max_text_bytes: 5000}".into(),
        )
        .await
        .expect("put")
        .to_string();
    for launched in &fleet {
        let view = eventually(
            "nine ACKs and one NACK on this instance",
            CHANGE_DEADLINE,
            || {
                let conflicting = conflicting.clone();
                async move {
                    let body = fleet_view(&launched.api).await?;
                    (body["revisions"][conflicting.as_str()] == json!(10)).then_some(body)
                }
            },
        )
        .await;
        assert_eq!(
            (view["acks"].clone(), view["nacks"].clone()),
            (json!(9), json!(1)),
            "{view}"
        );
        let nack = view["instances"]
            .as_array()
            .and_then(|all| all.iter().find(|s| s["status"] == "nack"))
            .unwrap_or_else(|| panic!("no NACK in {view}"));
        assert_eq!(nack["instance"], "q9", "{view}");
        let error = nack["error"].as_str().unwrap_or_default();
        assert!(error.contains("notes.data_dir"), "{view}");
    }
    for (i, launched) in fleet.iter().enumerate() {
        let config = launched.api.admin_config().await;
        let want = if i == 9 { 10_000 } else { 5000 };
        assert_eq!(
            config["config"]["notes"]["max_text_bytes"],
            json!(want),
            "instance q{i}: {config}"
        );
        assert_eq!(config["config"]["notes"]["list_limit"], json!(8), "q{i}");
    }
    for mut launched in fleet {
        launched.app.terminate().await;
    }
}

/// Start-up with NATS unreachable (a refused port, a password in the URL): with the fleet
/// cache a previous run left in the data directory, the quickstart starts on the cached
/// revision with `fleet:config_source` degraded (`from_cache`); without one, it exits with an
/// error naming the URL without its password. `cargo xtask ci` runs it with `--features fleet`.
#[cfg(feature = "fleet")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn servers_fleet_start_up_without_nats_uses_the_cache_or_fails_naming_the_url() {
    let Some(url) = modular_testkit::service(modular_testkit::Service::Nats) else {
        return;
    };
    let bucket = format!("e2e_fleet_cache_{}", run_id());
    let client = async_nats::connect(url.as_str()).await.expect("NATS");
    let js = async_nats::jetstream::new(client);
    let store = modular_config_nats::ops::open_bucket(&js, &bucket, 5)
        .await
        .expect("the bucket");
    let revision = store
        .put("notes_cache.notes.list_limit", "13".into())
        .await
        .expect("put")
        .to_string();
    let env = |url: &str| {
        vec![
            ("QUICKSTART_FLEET_URL".to_owned(), url.to_owned()),
            ("QUICKSTART_FLEET_BUCKET".to_owned(), bucket.clone()),
            (
                "QUICKSTART_FLEET_SERVICE".to_owned(),
                "notes_cache".to_owned(),
            ),
            ("MODULAR_FLEET__INSTANCE_ID".to_owned(), "c0".to_owned()),
        ]
    };
    // A first run reads the bucket and caches its revision in the data directory.
    let up = env(&url);
    let up: Vec<(&str, &str)> = up.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let mut first = launch(&up).await;
    assert_eq!(
        first.api.admin_config().await["config"]["notes"]["list_limit"],
        json!(13)
    );
    let status = first.app.terminate().await;
    assert!(status.success(), "exit {status}; log:\n{}", first.app.log());

    // NATS unreachable, the cache there: the service starts on the cached revision.
    let secret = "e2e-fleet-s3cret";
    let refused = modular_testkit::RefusedPort::new();
    let down_url = format!("nats://ops:{secret}@127.0.0.1:{}", refused.port());
    let down = env(&down_url);
    let down: Vec<(&str, &str)> = down.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let Launched { dir, config, .. } = first;
    let mut cached = start_in(dir, config, &down, "cached.log").await;
    let admin = cached.api.admin_config().await;
    assert_eq!(admin["config"]["notes"]["list_limit"], json!(13), "{admin}");
    let health = health_with_details(&cached.api).await;
    let source = check(&health, "fleet", "config_source");
    assert_eq!(source["status"], "degraded", "{source}");
    assert_eq!(source["details"]["from_cache"], json!(true), "{source}");
    assert_eq!(
        source["details"]["revision"],
        json!(revision.parse::<u64>().unwrap()),
        "{source}"
    );
    assert_eq!(cached.api.get("/readyz").await.status(), StatusCode::OK);
    let status = cached.app.terminate().await;
    assert!(
        status.success(),
        "exit {status}; log:\n{}",
        cached.app.log()
    );
    let log = cached.app.log();
    assert!(
        !log.contains(secret),
        "the password reached the log:\n{log}"
    );

    // No cache (a fresh data directory): start-up fails, naming the URL without the password.
    let dir = tempfile::tempdir().expect("a temp dir");
    let config_dir = dir.path().join("etc");
    fs::create_dir(&config_dir).expect("create the config dir");
    let config = ConfigFile {
        path: config_dir.join("config.yaml"),
        text: SHIPPED_CONFIG
            .replace("port: 8080 ", "port: 0 ")
            .replace("data_dir: data ", "data_dir: ../data "),
    };
    config.write();
    let mut failing = Quickstart::spawn_with(&config.path, &dir.path().join("failing.log"), &down);
    let status = eventually("the start-up failure", READY_DEADLINE, || {
        let status = failing
            .child
            .as_mut()
            .expect("the child")
            .try_wait()
            .expect("poll the child");
        async move { status }
    })
    .await;
    failing.child = None;
    assert!(!status.success(), "exit {status}");
    let log = failing.log();
    assert!(
        log.contains(&format!("nats://127.0.0.1:{}", refused.port())),
        "the URL is named:\n{log}"
    );
    assert!(
        !log.contains(secret),
        "the password reached the output:\n{log}"
    );
}

/// The checked-in spec (`docs/openapi.json`): what `cargo xtask api-test` fuzzes the quickstart
/// against, and what readers see without running anything.
const CHECKED_IN_SPEC: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/openapi.json");

/// The spec the quickstart serves at `/admin/openapi.json` is the checked-in one, byte for byte
/// (pretty JSON, sorted paths and schemas, one trailing newline). With `UPDATE_OPENAPI=1` the
/// test writes the served spec there instead (`cargo xtask openapi`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_served_openapi_spec_is_the_checked_in_one() {
    let launched = launch(&[]).await;
    let response = launched
        .api
        .http
        .get(format!("{}/admin/openapi.json", launched.api.base))
        .bearer_auth(TOKEN)
        .send()
        .await
        .expect("GET /admin/openapi.json");
    assert_eq!(response.status(), StatusCode::OK);
    let served = format!("{}\n", response.text().await.expect("the spec"));
    let spec: Value = serde_json::from_str(&served).expect("the spec is JSON");
    assert_eq!(spec["openapi"], "3.1.0");
    assert!(
        spec["paths"]["/notes"]["post"].is_object(),
        "the notes are described"
    );
    if std::env::var_os("UPDATE_OPENAPI").is_some_and(|v| v == "1") {
        fs::write(CHECKED_IN_SPEC, &served).expect("write docs/openapi.json");
        return;
    }
    let checked_in = fs::read_to_string(CHECKED_IN_SPEC).unwrap_or_default();
    if let Some(difference) = first_difference(&checked_in, &served) {
        panic!(
            "docs/openapi.json differs from the served spec ({difference}); regenerate it with \
             `cargo xtask openapi` (UPDATE_OPENAPI=1 cargo test -p quickstart --test \
             quickstart_e2e the_served_openapi_spec)"
        );
    }
}

/// Where two texts first differ, by line, or `None` when they are equal.
fn first_difference(checked_in: &str, served: &str) -> Option<String> {
    if checked_in == served {
        return None;
    }
    let mut served_lines = served.lines();
    for (number, line) in checked_in.lines().enumerate() {
        match served_lines.next() {
            Some(other) if other == line => {}
            Some(other) => {
                return Some(format!(
                    "line {}: checked in {line:?}, served {other:?}",
                    number + 1
                ));
            }
            None => return Some(format!("the served spec ends before line {}", number + 1)),
        }
    }
    Some(match served_lines.next() {
        Some(extra) => format!("the served spec goes on: {extra:?}"),
        None => "they differ in line endings".to_owned(),
    })
}

#[test]
fn a_changed_spec_is_reported_with_its_first_differing_line() {
    assert_eq!(first_difference("a\nb\n", "a\nb\n"), None);
    assert_eq!(
        first_difference("a\n\"type\": \"string\"\n", "a\n\"type\": \"integer\"\n").as_deref(),
        Some(r#"line 2: checked in "\"type\": \"string\"", served "\"type\": \"integer\"""#)
    );
    assert!(first_difference("a\n", "a\nb\n").is_some_and(|d| d.contains("goes on")));
    assert!(first_difference("", "{}\n").is_some());
}
