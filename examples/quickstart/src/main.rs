//! The quickstart: a real modular service on embedded defaults, with no server to install.
//!
//! `cargo run -p quickstart` starts the httpserver, router, database (SQLite), cache (memory),
//! httpclient and console (the status page at `/admin/ui`) modules plus this example's own
//! `notes` module ([`notes`]), configured by `examples/quickstart/config.yaml`. The same binary runs on PostgreSQL or MariaDB / MySQL and
//! on Redis when built with the `postgres`, `mysql` or `redis` feature, chosen by config alone
//! (the README shows the command for the local PostgreSQL and Redis). Edit that file while the service runs: dynamic fields
//! reload live, a bad value is rejected with its key path, and a static field is refused with
//! "restart required". The README walks through it with curl.
//!
//! ```text
//! quickstart [--config PATH]
//! ```
//!
//! - `--config PATH` (default: `config.yaml` next to this package's `Cargo.toml`). Relative
//!   paths inside it (`notes.data_dir`) are relative to the file's directory.
//! - Every key can be overridden with a `MODULAR_` environment variable, `__` between levels:
//!   `MODULAR_HTTPSERVER__PORT=9090`, `MODULAR_ADMIN__TOKEN=...`, `MODULAR_CACHE__DEFAULT_TTL=1m`.
//! - The SQLite file is `<notes.data_dir>/notes.db`; the directory is created when missing.
//!   Setting `database.connections.primary.url` yourself replaces it, also while the service
//!   runs (`MODULAR_DATABASE__CONNECTIONS__PRIMARY__URL=postgres://...` with the `postgres`
//!   feature): the new database gets the notes table from the migrations of the URL's driver,
//!   `examples/quickstart/migrations/<sqlite|postgres|mysql>`
//!   (`database.connections.primary.migrations`, set by default to that directory's absolute
//!   path, chosen by the URL the service starts with: a reload cannot change a connection's
//!   driver).
//! - `cache.engine: redis` (`MODULAR_CACHE__ENGINE=redis`, `MODULAR_CACHE__REDIS__URL=...`)
//!   needs the `redis` feature.
//! - `RUST_LOG` sets the log filter (default `info`).
//!
//! SIGTERM or Ctrl-C stops the modules in reverse order within the application's shutdown
//! deadline (30 s): the server first (`httpserver.drain_delay`, then up to
//! `httpserver.shutdown_timeout` for requests in flight), the database last.

#[cfg(feature = "fleet")]
mod fleet;
mod notes;
mod store;

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context as _;
use modular_cache::CacheModule;
use modular_console::ConsoleModule;
use modular_core::Application;
use modular_core::config::{ConfigSources, ConfigStore};
use modular_database::{DatabaseModule, Driver};
use modular_httpclient::HttpClientModule;
use modular_httpserver::{HttpServerHandle, HttpServerModule};
use modular_logmasker::LogMaskerModule;
use modular_router::{AdminConfig, RouterModule};
use serde_json::json;

use crate::notes::{NotesConfig, NotesModule};

const USAGE: &str = "usage: quickstart [--config PATH]

  --config PATH   the config file (default: examples/quickstart/config.yaml)

Every key can be overridden with MODULAR_<SECTION>__<KEY> environment variables,
for example MODULAR_HTTPSERVER__PORT=9090 or MODULAR_ADMIN__TOKEN=...

Built with --features fleet, QUICKSTART_FLEET_URL=nats://127.0.0.1:4222 layers the service's
keys of a NATS JetStream key-value bucket over the config file and reloads on every change
(QUICKSTART_FLEET_BUCKET, default `config`; QUICKSTART_FLEET_SERVICE, default `quickstart`;
the last revision is cached in <notes.data_dir>/fleet-cache.json).";

/// The config file: `--config PATH` (or `--config=PATH`), else the package's `config.yaml`.
fn config_path() -> anyhow::Result<PathBuf> {
    let mut path = None;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "-h" | "--help" => {
                println!("{USAGE}");
                std::process::exit(0);
            }
            "--config" => {
                path = Some(PathBuf::from(args.next().context("--config needs a path")?));
            }
            other => match other.strip_prefix("--config=") {
                Some(value) => path = Some(PathBuf::from(value)),
                None => anyhow::bail!("unknown argument {other:?}\n\n{USAGE}"),
            },
        }
    }
    let path = path.unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("config.yaml"));
    // Absolute, so the data directory can be resolved against the file's directory.
    std::path::absolute(&path).with_context(|| format!("config file {}", path.display()))
}

/// What the application's defaults layer needs before it is built.
struct Prepared {
    /// `<notes.data_dir>`, created (the default SQLite file's directory).
    data_dir: PathBuf,
    /// The `primary` connection's URL as the file or the environment set it, if they do.
    database_url: Option<String>,
}

/// Reads `notes.data_dir` and `database.connections.primary.url` from the same sources the
/// application will read (the file and the environment), resolves the data directory against
/// the config file's directory, and creates it.
///
/// This runs before the application is built because the database module opens its pool in
/// its `init`: the default URL, and the migrations of its driver, must be known by then.
fn prepare(config_path: &Path) -> anyhow::Result<Prepared> {
    let store = ConfigStore::new(ConfigSources::new().file(config_path));
    store.load_initial()?;
    let notes = store
        .register::<NotesConfig>(notes::MODULE_NAME, None)?
        .get();
    let base = config_path.parent().unwrap_or_else(|| Path::new("."));
    let data_dir = base.join(&notes.data_dir);
    std::fs::create_dir_all(&data_dir)
        .with_context(|| format!("cannot create the data directory {}", data_dir.display()))?;
    let configured = store
        .figment(None)
        .ok()
        .and_then(|figment| {
            figment
                .extract_inner::<String>("database.connections.primary.url")
                .ok()
        })
        .filter(|url| !url.trim().is_empty());
    Ok(Prepared {
        data_dir,
        database_url: configured,
    })
}

#[tokio::main]
async fn main() -> ExitCode {
    match run().await {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("quickstart: {}", error_chain(&error));
            ExitCode::FAILURE
        }
    }
}

/// The error and its causes on one line, each cause once: some errors already include
/// their source in their own message.
fn error_chain(error: &anyhow::Error) -> String {
    let mut message = error.to_string();
    for cause in error.chain().skip(1) {
        let cause = cause.to_string();
        if !message.contains(&cause) {
            message.push_str(": ");
            message.push_str(&cause);
        }
    }
    message
}

async fn run() -> anyhow::Result<()> {
    // Every line goes through the log masker (the `logmasker` section configures it once the
    // module initialises; until then its default rules mask): secrets and personal data are
    // masked in messages, fields and span fields before anything reaches stdout.
    modular_logmasker::install()?;

    let config_path = config_path()?;
    let Prepared {
        data_dir,
        database_url,
    } = prepare(&config_path)?;
    let driver = match &database_url {
        // An unknown scheme is the database module's to report, with its key path.
        Some(url) => Driver::from_url(url).unwrap_or(Driver::Sqlite),
        None => Driver::Sqlite,
    };
    if database_url.is_none() {
        tracing::info!(config = %config_path.display(), data_dir = %data_dir.display(), "quickstart starting");
    } else {
        // Never the URL: it may hold a password.
        tracing::info!(config = %config_path.display(), %driver, "quickstart starting");
    }

    let sqlite_url = format!("sqlite://{}", data_dir.join("notes.db").display());
    let defaults = json!({
        "database": { "connections": { "primary": {
            "url": sqlite_url,
            "migrations": store::migrations_dir(notes::MIGRATIONS_DIR, driver),
        } } }
    });
    let builder = Application::builder()
        // The lowest layer, so the config file and the environment can still replace it. The
        // notes' schema is the `primary` connection's migrations of the URL's driver, by
        // absolute path (a relative one would depend on the working directory).
        .config_defaults(defaults)
        .config_file(&config_path);
    // The fleet's keys sit above the file: one change reaches every instance.
    #[cfg(feature = "fleet")]
    let builder = fleet::layer(builder, &data_dir).await?;
    let mut app = builder
        // Modules start after their dependencies and stop in reverse. The server asks to start
        // after every other module (`InitContext::start_after_others`), so it stops first and
        // drains requests while the database and cache they use are still there.
        // First, so its rules are loaded before the other modules log.
        .module(LogMaskerModule::new())
        .module(DatabaseModule::new())
        .module(CacheModule::new())
        .module(HttpClientModule::new())
        .module(NotesModule::new())
        // The status page at /admin/ui (its data calls use the admin token).
        .module(ConsoleModule::new())
        .module(RouterModule::new())
        .module(HttpServerModule::new())
        .with_dynamic_reload()
        .with_health_aggregator()
        .build()
        .await?;

    // Listening before `start`, so a SIGTERM that arrives while modules start still ends in
    // an orderly stop.
    let shutdown = shutdown_signal()?;
    // Each module logs one `module started` line; each reload logs `config reloaded` with its
    // version and changed paths (never values), or `config reload rejected` with every
    // error's path and source.
    app.start().await?;
    announce(&app);
    shutdown.await;
    tracing::info!("shutdown signal received; stopping");
    // Stops the modules in reverse order within the application's shutdown deadline (30 s).
    app.stop().await?;
    tracing::info!("quickstart stopped");
    Ok(())
}

/// Resolves on SIGTERM or Ctrl-C.
fn shutdown_signal() -> anyhow::Result<impl Future<Output = ()>> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let mut terminate = signal(SignalKind::terminate()).context("listening for SIGTERM")?;
        let mut interrupt = signal(SignalKind::interrupt()).context("listening for SIGINT")?;
        Ok(async move {
            tokio::select! {
                _ = terminate.recv() => {}
                _ = interrupt.recv() => {}
            }
        })
    }
    #[cfg(not(unix))]
    {
        Ok(async {
            let _ = tokio::signal::ctrl_c().await;
        })
    }
}

/// Logs the URLs to try, with the address the server really bound.
fn announce(app: &Application) {
    let Some(server) = app.services().get::<HttpServerHandle>() else {
        return;
    };
    let Some(addr) = server.local_addr() else {
        return;
    };
    let host = match addr.ip() {
        ip if ip.is_unspecified() && ip.is_ipv4() => "127.0.0.1".to_owned(),
        ip if ip.is_unspecified() => "[::1]".to_owned(),
        IpAddr::V4(ip) => ip.to_string(),
        IpAddr::V6(ip) => format!("[{ip}]"),
    };
    let base = format!("{}://{host}:{}", server.scheme(), addr.port());
    tracing::info!("notes:        {base}/notes");
    tracing::info!("health:       {base}/health");
    tracing::info!("readiness:    {base}/readyz?verbose");
    if app
        .services()
        .get::<modular_core::metrics::MetricsExporter>()
        .is_some()
    {
        tracing::info!("metrics:      {base}/metrics");
    }
    // The router registered the `admin` section; asking again shares its live handle.
    let admin = app
        .config()
        .register::<AdminConfig>("admin", None)
        .map(|handle| !handle.get().token.expose().is_empty())
        .unwrap_or(false);
    if admin {
        tracing::info!("admin config: {base}/admin/config (Authorization: Bearer <admin.token>)");
        tracing::info!("console:      {base}/admin/ui (log in with admin.token)");
    } else {
        tracing::info!("admin config: not mounted (set admin.token or MODULAR_ADMIN__TOKEN)");
    }
}
