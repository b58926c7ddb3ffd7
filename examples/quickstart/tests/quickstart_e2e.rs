//! End to end: the real `quickstart` binary, on a free port with a temporary config file and
//! data directory, walked through the README's walkthrough — a note round trip (`x-cache`
//! miss then hit), health, a live `cache.default_ttl` edit reaching the cache (new version at
//! `/admin/config`, entries expiring on the new TTL), a bad value rejected while the service
//! keeps answering, a static change refused with "restart required", a live switch to another
//! SQLite file that still serves the notes API (the new file is migrated), and SIGTERM ending
//! in a clean exit.
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
        let response = self
            .http
            .post(format!("{}/admin/reload", self.base))
            .bearer_auth(TOKEN)
            .send()
            .await
            .expect("POST /admin/reload");
        assert_eq!(response.status(), StatusCode::OK);
        response.json().await.expect("a JSON answer")
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

/// A running quickstart on a free port, with its temp dir, config file and an API client.
struct Launched {
    dir: tempfile::TempDir,
    port: u16,
    config: ConfigFile,
    app: Quickstart,
    api: Api,
}

/// Starts the binary on the shipped config (free port, data dir beside the config dir) with
/// extra environment, and waits until `/readyz` answers `ok`.
async fn launch(env: &[(&str, &str)]) -> Launched {
    modular_testkit::install_crypto_provider();
    let dir = tempfile::tempdir().expect("a temp dir");
    // The config lives in its own directory (the one the reload watcher watches); the data
    // directory is given relative to it and does not exist yet.
    let config_dir = dir.path().join("etc");
    fs::create_dir(&config_dir).expect("create the config dir");
    let port = modular_testkit::free_port();
    let config = ConfigFile {
        path: config_dir.join("config.yaml"),
        text: SHIPPED_CONFIG
            .replace("port: 8080 ", &format!("port: {port} "))
            .replace("data_dir: data ", "data_dir: ../data "),
    };
    assert!(config.text.contains(&format!("port: {port} ")));
    assert!(config.text.contains("data_dir: ../data "));
    config.write();

    let mut app = Quickstart::spawn_with(&config.path, &dir.path().join("quickstart.log"), env);
    let api = Api {
        http: reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .build()
            .expect("an HTTP client"),
        base: format!("http://127.0.0.1:{port}"),
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
        port,
        config,
        app,
        api,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_readme_walkthrough_works_against_the_real_binary() {
    let Launched {
        dir,
        port,
        mut config,
        mut app,
        api,
    } = launch(&[]).await;
    assert!(
        dir.path().join("data/notes.db").is_file(),
        "the data directory and SQLite file are created"
    );
    let log = app.log();
    for module in [
        "database",
        "cache",
        "httpclient",
        "notes",
        "router",
        "httpserver",
    ] {
        assert!(
            log.contains(&format!("module started module={module}")),
            "no start line for {module}:\n{log}"
        );
    }
    for path in ["/health", "/readyz?verbose", "/metrics", "/admin/config"] {
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
        "cache:memory",
        "httpserver:listener",
        "router:routes",
    ] {
        assert!(verbose.contains(&format!("[+]{check} ok")), "{verbose}");
    }

    // The admin API needs the token (given through MODULAR_ADMIN__TOKEN).
    let anonymous = api.get("/admin/config").await;
    assert_eq!(anonymous.status(), StatusCode::UNAUTHORIZED);
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

    // A static field: refused with "restart required", nothing applied.
    config.edit("default_ttl: soon ", "default_ttl: 4s ");
    let other_port = modular_testkit::free_port();
    config.edit(&format!("port: {port} "), &format!("port: {other_port} "));
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
        (json!(2), json!(port))
    );
    assert_eq!(api.get("/readyz").await.status(), StatusCode::OK);

    // Another SQLite file, live: the reload builds a pool on a new, empty file, the
    // `migrations` directory gives it the notes table, and the notes API keeps answering.
    config.edit(&format!("port: {other_port} "), &format!("port: {port} "));
    let other_db = dir.path().join("data/other.db");
    config.edit(
        "      max_connections: 5 ",
        &format!(
            "      url: \"sqlite://{}\"\n      max_connections: 5 ",
            other_db.display()
        ),
    );
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
    assert!(other_db.is_file(), "the new SQLite file is created");
    let (status, created) = api.post_note(r#"{"text": "in the other file"}"#).await;
    assert_eq!(
        (status, &created),
        (StatusCode::CREATED, &json!({ "id": 1 })),
        "log:\n{}",
        app.log()
    );
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
        port: _,
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
