//! [`DatabaseService`]: the pools by name, as other modules and the application see them.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use arc_swap::ArcSwap;
use modular_core::ServiceRegistry;
use modular_core::live::Live;

use crate::config::ConnectionConfig;
use crate::metrics::PoolMetrics;
use crate::pool::{DbPool, PoolStats};

/// Pools by connection name: what the database module publishes in the service registry.
///
/// Implemented by [`DatabaseService`] and registered as `Arc<dyn Database>` next to the
/// concrete `Arc<DatabaseService>`, so code that only needs "a pool by name" can depend on the
/// trait (and a test can hand it another implementation).
pub trait Database: Send + Sync + 'static {
    /// The current pool of connection `name`.
    fn pool(&self, name: &str) -> Option<DbPool>;

    /// The current pool of the default connection.
    fn default_pool(&self) -> Option<DbPool>;

    /// The configured connection names, sorted.
    fn connection_names(&self) -> Vec<String>;
}

/// The database module's service: the live pool of every named connection.
///
/// Get it from the registry with `app.services().get::<DatabaseService>()` (or
/// `get::<dyn Database>()`). A lookup is one atomic load plus a map lookup; a reload swaps the
/// whole set of pools at once, so two lookups in one operation may see different generations
/// but never a half-applied reload.
///
/// ```no_run
/// # async fn demo(app: &modular_core::Application) -> Result<(), Box<dyn std::error::Error>> {
/// use modular_database::{DatabaseService, DbPool, sqlx};
///
/// let db = app.services().require::<DatabaseService>()?;
/// let Some(DbPool::Sqlite(pool)) = db.default_pool() else { return Ok(()) };
/// let (n,): (i64,) = sqlx::query_as("SELECT 1").fetch_one(&pool).await?;
/// assert_eq!(n, 1);
/// # Ok(()) }
/// ```
pub struct DatabaseService {
    state: ArcSwap<State>,
    /// The live handles published in the registry, by connection name, with the generation
    /// of the pool each holds.
    live: std::sync::Mutex<BTreeMap<String, (LivePool, u64)>>,
    /// The pool gauges per connection, written by every health check.
    pub(crate) metrics: PoolMetrics,
    /// Spreads reads over a primary's usable replicas in turn.
    next_replica: AtomicUsize,
}

/// One connection's live handle, typed by its driver's sqlx pool.
#[derive(Clone)]
enum LivePool {
    #[cfg(feature = "postgres")]
    Postgres(Arc<Live<sqlx::PgPool>>),
    #[cfg(feature = "mysql")]
    MySql(Arc<Live<sqlx::MySqlPool>>),
    #[cfg(feature = "sqlite")]
    Sqlite(Arc<Live<sqlx::SqlitePool>>),
}

/// One consistent set of pools.
#[derive(Debug, Default)]
pub(crate) struct State {
    pub(crate) default: String,
    pub(crate) connections: BTreeMap<String, Arc<Connection>>,
}

/// One named connection as it runs now.
#[derive(Debug)]
pub(crate) struct Connection {
    pub(crate) name: String,
    pub(crate) pool: DbPool,
    pub(crate) config: ConnectionConfig,
    /// 1 for the first pool of this connection, +1 per swap.
    pub(crate) generation: u64,
    /// Whether the last health check found the connection usable (healthy or degraded); true
    /// for a pool just built, which connected before it was installed. Readers skip a replica
    /// whose last check failed.
    pub(crate) usable: AtomicBool,
}

impl Connection {
    pub(crate) fn new(name: &str, pool: DbPool, config: ConnectionConfig, generation: u64) -> Self {
        Self {
            name: name.to_owned(),
            pool,
            config,
            generation,
            usable: AtomicBool::new(true),
        }
    }
}

/// The pool [`DatabaseService::reader`] chose for a read: a healthy replica, or the primary.
#[derive(Clone, Debug)]
pub struct ReadPool {
    /// The connection the pool belongs to.
    pub connection: String,
    /// Whether it is a replica (`false`: the primary itself, no replica being usable).
    pub is_replica: bool,
    /// Its current pool.
    pub pool: DbPool,
}

impl DatabaseService {
    pub(crate) fn new() -> Self {
        Self {
            state: ArcSwap::from_pointee(State::default()),
            live: std::sync::Mutex::new(BTreeMap::new()),
            metrics: PoolMetrics::default(),
            next_replica: AtomicUsize::new(0),
        }
    }

    /// Publishes every connection's current pool through core's live-handle seam
    /// (`registry.live::<sqlx::PgPool>(name)`, and `MySqlPool`, `SqlitePool`), so modules that
    /// depend on sqlx but not on this crate follow pool swaps. A swapped pool is stored into
    /// the same handle; a removed connection (or one whose driver changed) is unregistered.
    /// Called after every install, without awaiting.
    pub(crate) fn publish_live(&self, registry: &ServiceRegistry) {
        let state = self.state.load();
        let mut live = self
            .live
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let gone: Vec<String> = live
            .keys()
            .filter(|name| !state.connections.contains_key(*name))
            .cloned()
            .collect();
        for name in gone {
            if let Some((handle, _)) = live.remove(&name) {
                handle.unregister(registry, &name);
            }
        }
        for (name, connection) in &state.connections {
            if let Some((handle, generation)) = live.get_mut(name) {
                if *generation == connection.generation {
                    // Same pool (only health or migration settings changed, or untouched).
                    continue;
                }
                if handle.store(&connection.pool) {
                    *generation = connection.generation;
                    continue;
                }
                // The driver changed: the handle of the old pool type goes.
                handle.unregister(registry, name);
            }
            let handle = LivePool::register(registry, name, &connection.pool);
            live.insert(name.clone(), (handle, connection.generation));
        }
    }

    pub(crate) fn snapshot(&self) -> Arc<State> {
        self.state.load_full()
    }

    pub(crate) fn install(&self, state: State) {
        self.state.store(Arc::new(state));
    }

    /// The current pool of connection `name`.
    pub fn pool(&self, name: &str) -> Option<DbPool> {
        self.state
            .load()
            .connections
            .get(name)
            .map(|c| c.pool.clone())
    }

    /// The current pool of the default connection.
    pub fn default_pool(&self) -> Option<DbPool> {
        let state = self.state.load();
        state
            .connections
            .get(&state.default)
            .map(|c| c.pool.clone())
    }

    /// The pool to read from for connection `primary`: one of its replicas (connections with
    /// `replica_of: <primary>`) whose last health check passed, taken in turn, or `primary`'s
    /// own pool when no replica is usable. `None` when `primary` is not configured.
    ///
    /// Replica health is what the last health check of each replica found (a pool just built
    /// counts as usable, having connected before it was installed), so a failed replica is left
    /// out from the first check that sees it fail until one sees it answer again. Writes, and
    /// reads that must see them at once, use [`DatabaseService::pool`] instead: replicas lag.
    pub fn reader(&self, primary: &str) -> Option<ReadPool> {
        let state = self.state.load();
        let own = state.connections.get(primary)?;
        // Two passes over the few connections, so a read allocates nothing.
        let usable = || {
            state.connections.values().filter(|c| {
                c.config.replica_of.as_deref() == Some(primary)
                    && c.usable.load(Ordering::Relaxed)
                    && !c.pool.is_closed()
            })
        };
        // A health check between the passes may take a replica out: then the primary serves.
        let replica = match usable().count() {
            0 => None,
            count => usable().nth(self.next_replica.fetch_add(1, Ordering::Relaxed) % count),
        };
        let chosen = replica.unwrap_or(own);
        Some(ReadPool {
            connection: chosen.name.clone(),
            is_replica: replica.is_some(),
            pool: chosen.pool.clone(),
        })
    }

    /// [`DatabaseService::reader`] for the default connection.
    pub fn default_reader(&self) -> Option<ReadPool> {
        let primary = self.state.load().default.clone();
        self.reader(&primary)
    }

    /// The name of the default connection.
    pub fn default_name(&self) -> String {
        self.state.load().default.clone()
    }

    /// The configured connection names, sorted.
    pub fn connection_names(&self) -> Vec<String> {
        self.state.load().connections.keys().cloned().collect()
    }

    /// The current PostgreSQL pool of connection `name` (`None` if absent or of another driver).
    #[cfg(feature = "postgres")]
    pub fn postgres(&self, name: &str) -> Option<sqlx::PgPool> {
        self.pool(name)?.as_postgres().cloned()
    }

    /// The current MySQL / MariaDB pool of connection `name` (`None` if absent or of another
    /// driver).
    #[cfg(feature = "mysql")]
    pub fn mysql(&self, name: &str) -> Option<sqlx::MySqlPool> {
        self.pool(name)?.as_mysql().cloned()
    }

    /// The current SQLite pool of connection `name` (`None` if absent or of another driver).
    #[cfg(feature = "sqlite")]
    pub fn sqlite(&self, name: &str) -> Option<sqlx::SqlitePool> {
        self.pool(name)?.as_sqlite().cloned()
    }

    /// Utilisation of connection `name`'s current pool.
    pub fn stats(&self, name: &str) -> Option<PoolStats> {
        self.state
            .load()
            .connections
            .get(name)
            .map(|c| c.pool.stats())
    }

    /// How many pools connection `name` has had: 1 after start, +1 for every reload that
    /// swapped its pool.
    pub fn generation(&self, name: &str) -> Option<u64> {
        self.state
            .load()
            .connections
            .get(name)
            .map(|c| c.generation)
    }
}

impl Database for DatabaseService {
    fn pool(&self, name: &str) -> Option<DbPool> {
        DatabaseService::pool(self, name)
    }

    fn default_pool(&self) -> Option<DbPool> {
        DatabaseService::default_pool(self)
    }

    fn connection_names(&self) -> Vec<String> {
        DatabaseService::connection_names(self)
    }
}

impl fmt::Debug for DatabaseService {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = self.state.load();
        let connections: BTreeMap<&str, (crate::Driver, u64)> = state
            .connections
            .values()
            .map(|c| (c.name.as_str(), (c.pool.driver(), c.generation)))
            .collect();
        f.debug_struct("DatabaseService")
            .field("default", &state.default)
            .field("connections", &connections)
            .finish()
    }
}

impl LivePool {
    /// Stores `pool` into this handle when it is of the same driver; `false` otherwise.
    fn store(&self, pool: &DbPool) -> bool {
        match (self, pool) {
            #[cfg(feature = "postgres")]
            (Self::Postgres(h), DbPool::Postgres(p)) => {
                h.store(p.clone());
                true
            }
            #[cfg(feature = "mysql")]
            (Self::MySql(h), DbPool::MySql(p)) => {
                h.store(p.clone());
                true
            }
            #[cfg(feature = "sqlite")]
            (Self::Sqlite(h), DbPool::Sqlite(p)) => {
                h.store(p.clone());
                true
            }
            #[allow(unreachable_patterns)]
            _ => false,
        }
    }

    fn register(registry: &ServiceRegistry, name: &str, pool: &DbPool) -> Self {
        match pool {
            #[cfg(feature = "postgres")]
            DbPool::Postgres(pool) => {
                let handle = Arc::new(Live::new(pool.clone()));
                registry.register_live(name, Arc::clone(&handle));
                Self::Postgres(handle)
            }
            #[cfg(feature = "mysql")]
            DbPool::MySql(pool) => {
                let handle = Arc::new(Live::new(pool.clone()));
                registry.register_live(name, Arc::clone(&handle));
                Self::MySql(handle)
            }
            #[cfg(feature = "sqlite")]
            DbPool::Sqlite(pool) => {
                let handle = Arc::new(Live::new(pool.clone()));
                registry.register_live(name, Arc::clone(&handle));
                Self::Sqlite(handle)
            }
        }
    }

    fn unregister(&self, registry: &ServiceRegistry, name: &str) {
        match self {
            #[cfg(feature = "postgres")]
            Self::Postgres(_) => {
                registry.remove_named::<Live<sqlx::PgPool>>(name);
            }
            #[cfg(feature = "mysql")]
            Self::MySql(_) => {
                registry.remove_named::<Live<sqlx::MySqlPool>>(name);
            }
            #[cfg(feature = "sqlite")]
            Self::Sqlite(_) => {
                registry.remove_named::<Live<sqlx::SqlitePool>>(name);
            }
        }
    }
}
