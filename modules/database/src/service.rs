//! [`DatabaseService`]: the pools by name, as other modules and the application see them.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

use arc_swap::ArcSwap;

use crate::config::ConnectionConfig;
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
}

impl DatabaseService {
    pub(crate) fn new() -> Self {
        Self {
            state: ArcSwap::from_pointee(State::default()),
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
