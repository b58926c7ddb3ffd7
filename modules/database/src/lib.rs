//! The database module of modular: named sqlx connection pools for PostgreSQL, MariaDB/MySQL
//! and SQLite that reload without a restart and report their health.
//!
//! # A guided tour
//!
//! Add [`DatabaseModule`] to an application and describe the connections in the `database`
//! section. Each connection's driver is chosen by its URL's scheme: `postgres://` (or
//! `postgresql://`), `mysql://` (or `mariadb://`: MariaDB speaks the MySQL protocol), or
//! `sqlite:`.
//!
//! ```yaml
//! database:
//!   default: primary                # what DatabaseService::default_pool returns
//!   connections:
//!     primary:
//!       url: postgres://app:secret@db.internal:5432/app
//!       max_connections: 20
//!       min_connections: 2
//!       acquire_timeout: 5s
//!       idle_timeout: 10m
//!       max_lifetime: 30m
//!       connect_timeout: 5s
//!       statement_timeout: 30s
//!       migrations: ./migrations    # sqlx migrations, run at start
//!       ping_timeout: 500ms         # health check
//!     replica:
//!       url: postgres://app:secret@db-replica.internal:5432/app
//!       replica_of: primary         # DatabaseService::reader("primary") prefers it while healthy
//!       optional: true
//!     cache:
//!       url: sqlite://data/cache.db # created when missing
//!       optional: true              # its outage never fails readiness
//!   health:                         # the health registration (both optional)
//!     timeout: 11s                  # the aggregator's deadline; default 10.5s
//!     optional: false               # true: a database outage never fails readiness
//! ```
//!
//! The module registers [`DatabaseService`] (and the [`Database`] trait object) in the service
//! registry. Its pools are real, typed sqlx pools ([`DbPool`]), so queries use sqlx's full API:
//!
//! ```
//! use modular_core::Application;
//! use modular_core::config::TextFormat;
//! use modular_database::{DatabaseModule, DatabaseService, sqlx};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let config = r#"
//! database:
//!   connections:
//!     primary: { url: "sqlite::memory:", max_connections: 4 }
//! "#;
//! let mut app = Application::builder()
//!     .config_text("embedded", TextFormat::Yaml, config)
//!     .env_prefix(None)
//!     .module(DatabaseModule::new())
//!     .handle_signals(false)
//!     .build()
//!     .await?;
//! app.start().await?;
//!
//! let db = app.services().require::<DatabaseService>()?;
//! let pool = db.sqlite("primary").ok_or("no sqlite pool named primary")?;
//! let (answer,): (i64,) = sqlx::query_as("SELECT 41 + 1").fetch_one(&pool).await?;
//! assert_eq!(answer, 42);
//!
//! app.stop().await?;
//! # Ok(())
//! # }
//! ```
//!
//! Fetch the pool for each unit of work (a lookup is an atomic load and a map lookup): a
//! reload replaces pools, and a pool kept across one is closed once its queries finish.
//!
//! # Read replicas
//!
//! A connection with `replica_of: <primary>` is a read replica of that connection (same
//! driver). [`DatabaseService::reader`] returns the pool to read from: the primary's usable
//! replicas in turn, or the primary itself when none is usable. A replica is usable until a
//! health check finds it unhealthy, and again from the first check that sees it answer; so
//! reads move off a failed replica within one probe interval, without a reload. That needs
//! health checks to run: Kubernetes probes of `/readyz` do, and an application without probes
//! sets `HealthOptions::with_background_refresh` so a dead replica is noticed anyway. Writes, and
//! reads that must see them at once, use [`DatabaseService::pool`]: replicas lag.
//!
//! ```no_run
//! # async fn demo(db: &modular_database::DatabaseService) -> Result<(), Box<dyn std::error::Error>> {
//! let read = db.reader("primary").ok_or("no connection named primary")?;
//! let pool = read.pool.as_postgres().ok_or("not postgres")?;
//! let rows: Vec<(i64,)> = modular_database::sqlx::query_as("SELECT id FROM notes").fetch_all(pool).await?;
//! # let _ = rows; Ok(()) }
//! ```
//!
//! # Dynamic fields
//!
//! Every field is dynamic (see [`DatabaseConfig`] and [`ConnectionConfig`] for why):
//!
//! - `default`: which connection `default_pool` returns.
//! - `connections.<name>` added or removed: an added connection is connected and migrated
//!   before the reload commits; a removed one is closed after its in-flight queries.
//! - `url`, `max_connections`, `min_connections`, `acquire_timeout`, `idle_timeout`,
//!   `max_lifetime`, `statement_timeout`: sqlx pools cannot be resized or re-pointed, so a
//!   change builds a **new pool aside**, checks that it connects (within
//!   `connect_timeout`), **swaps it in atomically**, and closes the old pool in an owned task
//!   once the queries in flight on it have finished (new acquires on the old pool fail with
//!   `PoolClosed` from the swap on). A new pool that cannot connect **fails the reload**; the
//!   orchestrator rolls back, and the old pool never stopped serving. A changed `url` rotates
//!   credentials this way; changing a connection's driver fails the reload.
//! - `migrations`: a new path runs its pending migrations on reload (forward only).
//! - `connect_timeout`: bounds the next pool built; `ping_timeout` and `optional`: the next
//!   health check; `replica_of`: the next `reader` call. None needs a new pool.
//! - `health.timeout`, `health.optional`: the reload commit replaces the health registration's
//!   options (`HealthAggregator::set_provider_options`); no pool is touched.
//!
//! `sqlite::memory:` is for tests and demos: its database lives only while its pool has a
//! connection open, so a reload that rebuilds the pool starts an empty database.
//!
//! # Health
//!
//! One report per connection, module `database`, component `<connection name>`, counted for
//! readiness (not liveness: a database outage should take the instance out of rotation, not
//! restart it):
//!
//! | status | when |
//! |---|---|
//! | healthy | `SELECT 1` answered within `ping_timeout` and at most 90% of `max_connections` are in use |
//! | degraded | more than 90% of `max_connections` in use; at 100% the ping is skipped |
//! | unhealthy | the ping failed or did not answer within `ping_timeout` |
//!
//! Details: `driver`, `size`, `idle`, `in_use`, `max`, `generation` (pools this connection has
//! had) and `latency_ms`. A pool recovers from an outage by itself: sqlx tests idle
//! connections before handing them out and opens new ones, so the check turns healthy again as
//! soon as the server answers. See [`DatabaseService::health_reports`].
//!
//! The aggregator bounds the whole check by `health.timeout` (default
//! [`DEFAULT_HEALTH_TIMEOUT`], 10.5s: above the longest `ping_timeout`, so each ping reports its
//! own timeout); with `health.optional: true` an unhealthy database counts for overall health
//! only, never for readiness (for a database the service can run without). A single
//! connection can be made optional the same way with its own `optional: true` (a replica, a
//! reporting database): its report is marked optional, the other connections still count.
//!
//! # Events
//!
//! CloudEvents from `/modular/modules/database` (constants in [`events`]):
//!
//! | type | data |
//! |---|---|
//! | `com.modular.database.connection.opened` | `connection`, `driver`, `generation`, `max_connections`, `min_connections`, `reason` (`start`, `added`, `replaced`) |
//! | `com.modular.database.connection.failed` | `connection`, `driver`, `error`, `reason` |
//! | `com.modular.database.connection.closed` | `connection`, `driver`, `generation`, `reason` (`replaced`, `removed`, `shutdown`, `aborted`: a pool prepared by a reload that another module failed, closed unused) |
//! | `com.modular.database.pool.swapped` | `connection`, `driver`, `generation`, `changed`, `max_connections`, `min_connections` |
//! | `com.modular.database.migration.applied` | `connection`, `version`, `description`, `duration_ms` |
//!
//! The module never writes a URL into an event, a log line or an error (only its scheme), and
//! config diffs show a fingerprint of it.
//!
//! # Metrics
//!
//! Through the `metrics` facade (names in [`metrics::names`]), written at every health check
//! from the pool's utilisation, and only while core records (an exporter is installed, see
//! `modular_core::metrics`):
//!
//! | series | type | labels |
//! |---|---|---|
//! | `modular_database_pool_connections` | gauge | `connection`, `state` (`idle`, `in_use`) |
//! | `modular_database_pool_size` | gauge | `connection` |
//!
//! A connection removed by a reload has its gauges set to 0. There is no acquire-wait
//! histogram: applications acquire from the typed sqlx pool directly, and sqlx exposes no
//! hook around the wait, so the module cannot time it without wrapping every acquire.
//!
//! # Feature flags
//!
//! - `sqlite` (default): SQLite, bundled, so the quickstart needs no server.
//! - `postgres`: PostgreSQL.
//! - `mysql`: MySQL and MariaDB.
//!
//! At least one must be on. A URL whose driver is not compiled in is rejected by validation
//! with the feature to turn on.

mod config;
mod driver;
mod error;
pub mod events;
mod health;
mod lifecycle;
pub mod metrics;
mod migrate;
mod module;
mod pool;
mod service;

/// The module's name and the key of its config section.
pub const MODULE_NAME: &str = "database";

pub use config::{ConnectionConfig, DEFAULT_HEALTH_TIMEOUT, DatabaseConfig, MAX_PING_TIMEOUT};
pub use driver::Driver;
pub use error::DatabaseError;
pub use health::DEGRADED_UTILIZATION;
pub use module::{DatabaseModule, RELOAD_TIMEOUT};
pub use pool::{DbPool, PoolStats};
pub use service::{Database, DatabaseService, ReadPool};
/// The sqlx this crate is built on, so applications use the same types.
pub use sqlx;
