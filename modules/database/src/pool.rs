//! [`DbPool`]: a typed sqlx pool of whichever driver a connection's URL selects, and how one
//! is built from a [`ConnectionConfig`].

use std::future::Future;
use std::pin::Pin;
use std::time::{Duration, Instant};

use serde::Serialize;
use sqlx::pool::PoolOptions;

use crate::config::ConnectionConfig;
use crate::driver::Driver;
use crate::error::DatabaseError;

#[cfg(not(any(feature = "postgres", feature = "mysql", feature = "sqlite")))]
compile_error!(
    "modular-database needs at least one driver feature: `postgres`, `mysql` or `sqlite`"
);

/// A connection pool of one driver: a real, typed sqlx pool.
///
/// Match on it, or use `as_postgres` / `as_mysql` / `as_sqlite` (one per enabled driver
/// feature), to run queries with the driver's full API. Cloning is cheap (sqlx pools are
/// `Arc`s).
///
/// A reload replaces a connection's pool and closes the old one once its in-flight queries
/// finish, so fetch the pool from [`DatabaseService`](crate::DatabaseService) for each unit of
/// work instead of keeping it for the life of the process; a pool kept across a reload
/// answers `sqlx::Error::PoolClosed`.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub enum DbPool {
    /// A PostgreSQL pool.
    #[cfg(feature = "postgres")]
    Postgres(sqlx::PgPool),
    /// A MySQL or MariaDB pool.
    #[cfg(feature = "mysql")]
    MySql(sqlx::MySqlPool),
    /// A SQLite pool.
    #[cfg(feature = "sqlite")]
    Sqlite(sqlx::SqlitePool),
}

/// Runs `$body` with `$p` bound to the typed pool inside `$pool`.
macro_rules! on_pool {
    ($pool:expr, $p:ident => $body:expr) => {
        match $pool {
            #[cfg(feature = "postgres")]
            DbPool::Postgres($p) => $body,
            #[cfg(feature = "mysql")]
            DbPool::MySql($p) => $body,
            #[cfg(feature = "sqlite")]
            DbPool::Sqlite($p) => $body,
        }
    };
}
pub(crate) use on_pool;

/// A pool's utilisation at one moment.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct PoolStats {
    /// Open connections, idle or in use.
    pub size: u32,
    /// Open connections waiting in the pool.
    pub idle: u32,
    /// Connections checked out (`size - idle`).
    pub in_use: u32,
    /// `max_connections`.
    pub max: u32,
}

impl PoolStats {
    /// `in_use / max`, from 0.0 to 1.0.
    pub fn utilization(&self) -> f64 {
        if self.max == 0 {
            return 0.0;
        }
        f64::from(self.in_use) / f64::from(self.max)
    }
}

impl DbPool {
    /// The driver.
    pub fn driver(&self) -> Driver {
        match self {
            #[cfg(feature = "postgres")]
            Self::Postgres(_) => Driver::Postgres,
            #[cfg(feature = "mysql")]
            Self::MySql(_) => Driver::MySql,
            #[cfg(feature = "sqlite")]
            Self::Sqlite(_) => Driver::Sqlite,
        }
    }

    /// The PostgreSQL pool, if this is one.
    #[cfg(feature = "postgres")]
    pub fn as_postgres(&self) -> Option<&sqlx::PgPool> {
        match self {
            Self::Postgres(pool) => Some(pool),
            #[allow(unreachable_patterns)]
            _ => None,
        }
    }

    /// The MySQL / MariaDB pool, if this is one.
    #[cfg(feature = "mysql")]
    pub fn as_mysql(&self) -> Option<&sqlx::MySqlPool> {
        match self {
            Self::MySql(pool) => Some(pool),
            #[allow(unreachable_patterns)]
            _ => None,
        }
    }

    /// The SQLite pool, if this is one.
    #[cfg(feature = "sqlite")]
    pub fn as_sqlite(&self) -> Option<&sqlx::SqlitePool> {
        match self {
            Self::Sqlite(pool) => Some(pool),
            #[allow(unreachable_patterns)]
            _ => None,
        }
    }

    /// Size, idle and in-use connections, and the maximum.
    pub fn stats(&self) -> PoolStats {
        on_pool!(self, p => {
            let size = p.size();
            let idle = u32::try_from(p.num_idle()).unwrap_or(u32::MAX).min(size);
            PoolStats {
                size,
                idle,
                in_use: size - idle,
                max: p.options().get_max_connections(),
            }
        })
    }

    /// Whether the pool has been closed (by a reload that replaced it, or at shutdown).
    pub fn is_closed(&self) -> bool {
        on_pool!(self, p => p.is_closed())
    }

    /// Runs `SELECT 1` on a pooled connection and returns how long it took.
    pub async fn ping(&self) -> Result<Duration, sqlx::Error> {
        let started = Instant::now();
        on_pool!(self, p => sqlx::query("SELECT 1").execute(p).await.map(|_| ()))?;
        Ok(started.elapsed())
    }

    /// Opens one fresh connection outside the pool, with the pool's own connect options, runs
    /// `SELECT 1` on it and closes it; returns how long the connect and query took.
    ///
    /// Unlike [`ping`](Self::ping) it never waits for a pooled connection, so it answers even
    /// when the application holds every one. The caller bounds it with a timeout.
    pub(crate) async fn probe(&self) -> Result<Duration, sqlx::Error> {
        use sqlx::{ConnectOptions, Connection};

        let started = Instant::now();
        on_pool!(self, p => {
            let mut conn = p.connect_options().connect().await?;
            let answered = sqlx::query("SELECT 1").execute(&mut conn).await.map(|_| ());
            let elapsed = started.elapsed();
            match answered {
                // The server answered: a failure to say goodbye does not change that.
                Ok(()) => {
                    let _ = conn.close().await;
                    Ok(elapsed)
                }
                Err(error) => {
                    let _ = conn.close_hard().await;
                    Err(error)
                }
            }
        })
    }

    /// Runs one statement without bind parameters (any driver) and returns the rows affected.
    /// For anything more, use the typed pool.
    pub async fn execute(&self, sql: impl sqlx::SqlSafeStr) -> Result<u64, sqlx::Error> {
        on_pool!(self, p => sqlx::query(sql).execute(p).await.map(|r| r.rows_affected()))
    }

    /// Closes the pool: from this call on, new and waiting `acquire`s fail with
    /// `PoolClosed`; connections in use are closed when returned, and the returned future
    /// completes once every connection is closed (awaiting it is optional).
    pub fn close(&self) -> impl Future<Output = ()> + Send + '_ {
        let closing: Pin<Box<dyn Future<Output = ()> + Send + '_>> =
            on_pool!(self, p => Box::pin(p.close()));
        closing
    }
}

/// Connect options of one driver, parsed from a URL.
pub(crate) enum ConnectTarget {
    #[cfg(feature = "postgres")]
    Postgres(sqlx::postgres::PgConnectOptions),
    #[cfg(feature = "mysql")]
    MySql(sqlx::mysql::MySqlConnectOptions),
    #[cfg(feature = "sqlite")]
    Sqlite(sqlx::sqlite::SqliteConnectOptions),
}

/// Parses `url` with `driver`'s connect options and applies the server-side statement timeout
/// where the options carry it (PostgreSQL).
pub(crate) fn parse_options(
    driver: Driver,
    url: &str,
    statement_timeout: Option<Duration>,
) -> Result<ConnectTarget, DatabaseError> {
    let invalid = |e: sqlx::Error| DatabaseError::InvalidUrl {
        driver,
        message: e.to_string(),
    };
    // Only the PostgreSQL options carry the statement timeout (MySQL sets it per session).
    #[cfg(not(feature = "postgres"))]
    let _ = statement_timeout;
    match driver {
        #[cfg(feature = "postgres")]
        Driver::Postgres => {
            let mut options: sqlx::postgres::PgConnectOptions = url.parse().map_err(invalid)?;
            if let Some(timeout) = statement_timeout {
                options = options.options([(
                    "statement_timeout",
                    format!("{}ms", timeout.as_millis().max(1)),
                )]);
            }
            Ok(ConnectTarget::Postgres(options))
        }
        #[cfg(feature = "mysql")]
        Driver::MySql => {
            // The mysql driver serves MariaDB too; it only reads the URL's parts, not its scheme.
            let options: sqlx::mysql::MySqlConnectOptions = url.parse().map_err(invalid)?;
            Ok(ConnectTarget::MySql(options))
        }
        #[cfg(feature = "sqlite")]
        Driver::Sqlite => {
            let mut options: sqlx::sqlite::SqliteConnectOptions = url.parse().map_err(invalid)?;
            // A missing database file is created unless the URL chose a `mode` itself.
            if !url.contains("mode=") {
                options = options.create_if_missing(true);
            }
            Ok(ConnectTarget::Sqlite(options))
        }
        #[allow(unreachable_patterns)]
        other => Err(DatabaseError::DriverDisabled { driver: other }),
    }
}

fn pool_options<DB: sqlx::Database>(config: &ConnectionConfig) -> PoolOptions<DB> {
    PoolOptions::<DB>::new()
        .max_connections(config.max_connections)
        .min_connections(config.min_connections)
        .acquire_timeout(config.acquire_timeout)
        .idle_timeout(config.idle_timeout)
        .max_lifetime(config.max_lifetime)
}

/// Builds the pool for connection `name` and opens its first connection(s), all within
/// `connect_timeout`.
pub(crate) async fn connect(
    name: &str,
    config: &ConnectionConfig,
) -> Result<DbPool, DatabaseError> {
    let wrap = |source: DatabaseError| DatabaseError::Config {
        connection: name.to_owned(),
        source: Box::new(source),
    };
    let driver = config.driver().map_err(wrap)?;
    let target =
        parse_options(driver, config.url.expose(), config.statement_timeout).map_err(wrap)?;
    let opening = async {
        match target {
            #[cfg(feature = "postgres")]
            ConnectTarget::Postgres(options) => pool_options(config)
                .connect_with(options)
                .await
                .map(DbPool::Postgres),
            #[cfg(feature = "mysql")]
            ConnectTarget::MySql(options) => {
                let mut pool = pool_options::<sqlx::MySql>(config);
                if let Some(timeout) = config.statement_timeout {
                    pool = pool.after_connect(move |conn, _meta| {
                        Box::pin(mysql_statement_timeout(conn, timeout))
                    });
                }
                pool.connect_with(options).await.map(DbPool::MySql)
            }
            #[cfg(feature = "sqlite")]
            ConnectTarget::Sqlite(options) => pool_options(config)
                .connect_with(options)
                .await
                .map(DbPool::Sqlite),
        }
    };
    match tokio::time::timeout(config.connect_timeout, opening).await {
        Ok(Ok(pool)) => Ok(pool),
        Ok(Err(source)) => Err(DatabaseError::Connect {
            connection: name.to_owned(),
            driver,
            source,
        }),
        Err(_) => Err(DatabaseError::ConnectTimeout {
            connection: name.to_owned(),
            driver,
            timeout: config.connect_timeout,
        }),
    }
}

/// Sets the per-session statement limit: MariaDB calls it `max_statement_time` (seconds),
/// MySQL `max_execution_time` (milliseconds, `SELECT` only).
#[cfg(feature = "mysql")]
async fn mysql_statement_timeout(
    conn: &mut sqlx::MySqlConnection,
    timeout: Duration,
) -> Result<(), sqlx::Error> {
    let version: String = sqlx::query_scalar("SELECT VERSION()")
        .fetch_one(&mut *conn)
        .await?;
    let statement = if version.to_ascii_lowercase().contains("mariadb") {
        format!(
            "SET SESSION max_statement_time = {:.3}",
            timeout.as_secs_f64()
        )
    } else {
        format!(
            "SET SESSION max_execution_time = {}",
            timeout.as_millis().max(1)
        )
    };
    // Built from a number only, never from user text.
    sqlx::raw_sql(sqlx::AssertSqlSafe(statement))
        .execute(&mut *conn)
        .await?;
    Ok(())
}
