//! Shared fixtures of the database module's integration tests.
#![allow(dead_code, unreachable_pub)]

use std::net::{SocketAddr, ToSocketAddrs};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use anyhow::Context as _;
use cloudevents::AttributesReader as _;
use modular_core::Application;
use modular_core::events::{Event, EventBus, EventFilter, EventStream, event_data};
use modular_core::health::HealthReport;
use modular_database::sqlx::{self, AssertSqlSafe};
use modular_database::{DatabaseModule, DatabaseService, DbPool};
use modular_testkit::Service;
use serde_json::{Value, json};
use tempfile::TempDir;

/// A database server (or file) the tests run against.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    Postgres,
    MariaDb,
    Sqlite,
}

/// One test's backend: its URL, and the temp dir holding config (and the SQLite file).
pub struct Fixture {
    pub backend: Backend,
    pub url: String,
    pub dir: TempDir,
    pub events: EventBus,
    /// A loopback port held bound without listening, for `unreachable_url`.
    refused: modular_testkit::RefusedPort,
}

impl Fixture {
    /// `None` when the backend's service is not available (the testkit printed a skip line).
    pub fn new(backend: Backend) -> Option<Self> {
        modular_testkit::init_tracing();
        let dir = tempfile::tempdir().expect("temp dir");
        let url = match backend {
            Backend::Postgres => modular_testkit::service(Service::Postgres)?,
            Backend::MariaDb => modular_testkit::service(Service::Mysql)?,
            Backend::Sqlite => format!("sqlite://{}", dir.path().join("test.db").display()),
        };
        Some(Self {
            backend,
            url,
            dir,
            events: EventBus::new(),
            refused: modular_testkit::RefusedPort::new(),
        })
    }

    pub fn config_path(&self) -> PathBuf {
        self.dir.path().join("config.json")
    }

    /// Writes the whole config file (`{"database": database}`).
    pub fn write_config(&self, database: Value) {
        let text = serde_json::to_string_pretty(&json!({ "database": database })).expect("json");
        std::fs::write(self.config_path(), text).expect("write config");
    }

    /// A config with one connection `primary` to this backend, plus `extra` settings.
    pub fn single(&self, extra: Value) -> Value {
        json!({ "connections": { "primary": self.connection(&self.url, extra) } })
    }

    /// One connection's settings: `url`, short timeouts for tests, then `extra`.
    pub fn connection(&self, url: &str, extra: Value) -> Value {
        let mut c = json!({
            "url": url,
            "connect_timeout": "3s",
            "acquire_timeout": "3s",
            "ping_timeout": "1s",
        });
        if let (Some(c), Some(extra)) = (c.as_object_mut(), extra.as_object()) {
            for (k, v) in extra {
                c.insert(k.clone(), v.clone());
            }
        }
        c
    }

    /// Builds and starts an application with only the database module, dynamic reload (no file
    /// watcher, no health gate) and the health aggregator.
    pub async fn start(&self) -> anyhow::Result<Application> {
        let mut app = self.build().await?;
        app.start().await?;
        Ok(app)
    }

    pub async fn build(&self) -> Result<Application, modular_core::Error> {
        modular_testkit::test_builder()
            .config_file(self.config_path())
            .event_bus(self.events.clone())
            .module(DatabaseModule::new())
            .shutdown_timeout(Duration::from_secs(15))
            .build()
            .await
    }

    /// Subscribes to the database module's events.
    pub fn subscribe(&self) -> EventStream {
        self.events
            .subscribe(EventFilter::prefix("com.modular.database."))
    }

    /// A URL to a port where nothing listens (connections are refused).
    pub fn unreachable_url(&self) -> String {
        let port = self.refused.port();
        match self.backend {
            Backend::Postgres => format!("postgres://postgres@127.0.0.1:{port}/test"),
            Backend::MariaDb => format!("mysql://root@127.0.0.1:{port}/test"),
            // A file inside a directory that does not exist cannot be opened.
            Backend::Sqlite => format!(
                "sqlite://{}",
                self.dir.path().join("missing/dir/test.db").display()
            ),
        }
    }

    /// The SQL that sleeps for `secs` seconds on this backend (SQLite has none).
    pub fn sleep_sql(&self, secs: u32) -> Option<String> {
        match self.backend {
            Backend::Postgres => Some(format!("SELECT pg_sleep({secs})")),
            Backend::MariaDb => Some(format!("SELECT SLEEP({secs})")),
            Backend::Sqlite => None,
        }
    }
}

pub fn service(app: &Application) -> std::sync::Arc<DatabaseService> {
    app.services()
        .get::<DatabaseService>()
        .expect("DatabaseService registered")
}

/// A table name no other test (in this or another process) uses.
pub fn unique_table(prefix: &str) -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or_default();
    format!(
        "{prefix}_{}_{}_{nanos}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    )
}

/// Waits (up to 10 s) for an event of type `ty` matching `pred`, skipping others.
pub async fn expect_event(
    stream: &mut EventStream,
    ty: &str,
    pred: impl Fn(&Value) -> bool,
) -> anyhow::Result<Value> {
    let wait = async {
        loop {
            let Some(event) = stream.recv().await else {
                anyhow::bail!("event bus closed")
            };
            if event.ty() == ty {
                let data = event_data(&event).cloned().unwrap_or(Value::Null);
                if pred(&data) {
                    return Ok(data);
                }
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(10), wait)
        .await
        .with_context(|| format!("no {ty} event within 10s"))?
}

/// The events of type `ty` queued now.
pub fn drain_of_type(stream: &mut EventStream, ty: &str) -> Vec<Value> {
    stream
        .drain()
        .into_iter()
        .filter(|e: &Event| e.ty() == ty)
        .map(|e| event_data(&e).cloned().unwrap_or(Value::Null))
        .collect()
}

/// `host:port` of a server URL, resolved.
pub fn server_addr(url: &str) -> anyhow::Result<SocketAddr> {
    let (scheme, rest) = url.split_once("://").context("url has no scheme")?;
    let authority = rest.split(['/', '?']).next().unwrap_or_default();
    let host_port = authority.rsplit_once('@').map_or(authority, |(_, hp)| hp);
    let default_port = if scheme.starts_with("postgres") {
        5432
    } else {
        3306
    };
    let with_port = if host_port.contains(':') {
        host_port.to_owned()
    } else {
        format!("{host_port}:{default_port}")
    };
    with_port
        .to_socket_addrs()?
        .next()
        .with_context(|| format!("cannot resolve {with_port}"))
}

/// `url` with its `host:port` replaced by `addr`.
pub fn with_addr(url: &str, addr: SocketAddr) -> anyhow::Result<String> {
    let (scheme, rest) = url.split_once("://").context("url has no scheme")?;
    let end = rest.find(['/', '?']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(end);
    let userinfo = authority
        .rsplit_once('@')
        .map(|(u, _)| format!("{u}@"))
        .unwrap_or_default();
    Ok(format!("{scheme}://{userinfo}{addr}{tail}"))
}

/// Writes migration files into `dir/migrations` and returns that directory.
pub fn write_migrations(dir: &Path, files: &[(&str, &str)]) -> PathBuf {
    let migrations = dir.join("migrations");
    std::fs::create_dir_all(&migrations).expect("create migrations dir");
    for (name, sql) in files {
        std::fs::write(migrations.join(name), sql).expect("write migration");
    }
    migrations
}

/// Creates `table`, inserts two rows through the driver-neutral `execute`, and counts them
/// through the typed pool.
pub async fn round_trip(pool: &DbPool, table: &str) -> anyhow::Result<i64> {
    pool.execute(AssertSqlSafe(format!(
        "CREATE TABLE {table} (id INTEGER PRIMARY KEY, name VARCHAR(50) NOT NULL)"
    )))
    .await?;
    let inserted = pool
        .execute(AssertSqlSafe(format!(
            "INSERT INTO {table} (id, name) VALUES (1, 'a'), (2, 'b')"
        )))
        .await?;
    anyhow::ensure!(inserted == 2, "inserted {inserted} rows, expected 2");
    count(pool, table).await
}

/// `SELECT COUNT(*)` through the typed pool of whichever driver.
pub async fn count(pool: &DbPool, table: &str) -> anyhow::Result<i64> {
    let sql = format!("SELECT COUNT(*) FROM {table}");
    let n: i64 = match pool {
        DbPool::Postgres(p) => sqlx::query_scalar(AssertSqlSafe(sql)).fetch_one(p).await?,
        DbPool::MySql(p) => sqlx::query_scalar(AssertSqlSafe(sql)).fetch_one(p).await?,
        DbPool::Sqlite(p) => sqlx::query_scalar(AssertSqlSafe(sql)).fetch_one(p).await?,
        _ => anyhow::bail!("unexpected pool {pool:?}"),
    };
    Ok(n)
}

/// Drops `table` (best effort: the databases are shared between test runs).
pub async fn drop_table(pool: &DbPool, table: &str) {
    let _ = pool
        .execute(AssertSqlSafe(format!("DROP TABLE IF EXISTS {table}")))
        .await;
}

/// The report of connection `name` from a fresh aggregated check.
pub async fn report(app: &Application, name: &str) -> anyhow::Result<HealthReport> {
    let health = app
        .health()
        .context("health aggregator on")?
        .force_refresh()
        .await;
    health
        .reports
        .iter()
        .find(|r| r.module == "database" && r.component == name)
        .cloned()
        .with_context(|| format!("no database report for {name}: {:?}", health.reports))
}

/// A connection checked out of a pool of any driver.
pub enum Held {
    Postgres(sqlx::pool::PoolConnection<sqlx::Postgres>),
    MySql(sqlx::pool::PoolConnection<sqlx::MySql>),
    Sqlite(sqlx::pool::PoolConnection<sqlx::Sqlite>),
}

impl Held {
    /// Runs `sql` (no bind parameters) on this very connection.
    pub async fn execute(&mut self, sql: &str) -> Result<(), sqlx::Error> {
        let sql = AssertSqlSafe(sql.to_owned());
        match self {
            Held::Postgres(c) => sqlx::query(sql).execute(&mut **c).await.map(|_| ()),
            Held::MySql(c) => sqlx::query(sql).execute(&mut **c).await.map(|_| ()),
            Held::Sqlite(c) => sqlx::query(sql).execute(&mut **c).await.map(|_| ()),
        }
    }

    /// Runs `SELECT 1` on this very connection.
    pub async fn select_one(&mut self) -> Result<(), sqlx::Error> {
        let n: i32 = match self {
            Held::Postgres(c) => sqlx::query_scalar("SELECT 1").fetch_one(&mut **c).await?,
            Held::MySql(c) => sqlx::query_scalar("SELECT 1").fetch_one(&mut **c).await?,
            Held::Sqlite(c) => sqlx::query_scalar("SELECT 1").fetch_one(&mut **c).await?,
        };
        assert_eq!(n, 1);
        Ok(())
    }
}

/// Checks a connection out of `pool`.
pub async fn acquire(pool: &DbPool) -> Result<Held, sqlx::Error> {
    Ok(match pool {
        DbPool::Postgres(p) => Held::Postgres(p.acquire().await?),
        DbPool::MySql(p) => Held::MySql(p.acquire().await?),
        DbPool::Sqlite(p) => Held::Sqlite(p.acquire().await?),
        _ => unreachable!("every driver is compiled into the tests"),
    })
}

/// Checks a connection out of `pool`, giving up after `within` (a bound on the test, well
/// above the pool's own `acquire_timeout`).
pub async fn acquire_within(
    pool: &DbPool,
    within: Duration,
) -> anyhow::Result<Result<Held, sqlx::Error>> {
    tokio::time::timeout(within, acquire(pool))
        .await
        .map_err(|_| anyhow::anyhow!("acquire neither succeeded nor failed within {within:?}"))
}

/// `url` logging in as `user` (no password).
pub fn with_user(url: &str, user: &str) -> anyhow::Result<String> {
    let (scheme, rest) = url.split_once("://").context("url has no scheme")?;
    let host_and_tail = rest.split_once('@').map_or(rest, |(_, tail)| tail);
    Ok(format!("{scheme}://{user}@{host_and_tail}"))
}

/// Checks connection `name` every 100 ms until it reports `status`, for at most `within`.
/// Returns the last report seen.
pub async fn wait_for_status(
    app: &Application,
    name: &str,
    status: modular_core::health::HealthStatus,
    within: Duration,
) -> (bool, Option<HealthReport>) {
    let mut last = None;
    let reached = tokio::time::timeout(within, async {
        loop {
            let report = report(app, name).await.ok();
            let done = report.as_ref().is_some_and(|r| r.status == status);
            last = report;
            if done {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    })
    .await
    .is_ok();
    (reached, last)
}
