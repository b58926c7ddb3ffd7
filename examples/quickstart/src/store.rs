//! The notes' SQL on every driver the quickstart can be built with: SQLite (always), PostgreSQL
//! (feature `postgres`) and MariaDB / MySQL (feature `mysql`).
//!
//! The queries are the same on every driver except for two things: PostgreSQL numbers its
//! placeholders (`$1`) where SQLite and MySQL take `?`, and MySQL has no `INSERT ... RETURNING`
//! (the new id is the statement's `LAST_INSERT_ID()`). Timestamps are written by the module
//! as RFC 3339 text, so `created_at` reads back identically everywhere. Each driver has its own
//! schema in `migrations/<driver>`, which `main` picks by the connection URL's scheme.

use std::hash::{Hash as _, Hasher as _};
use std::path::PathBuf;

use modular_database::sqlx;
use modular_database::{DbPool, Driver};

/// A `notes` row: id, text, created_at.
pub type NoteRow = (i64, String, String);

/// One statement, in both placeholder styles.
struct Sql {
    /// `?` placeholders: SQLite, MySQL and MariaDB.
    question: &'static str,
    /// `$1` placeholders: PostgreSQL.
    #[cfg_attr(not(feature = "postgres"), allow(dead_code))]
    dollar: &'static str,
}

const INSERT: Sql = Sql {
    question: "INSERT INTO notes (text, created_at) VALUES (?, ?) RETURNING id",
    dollar: "INSERT INTO notes (text, created_at) VALUES ($1, $2) RETURNING id",
};
#[cfg(feature = "mysql")]
const INSERT_MYSQL: &str = "INSERT INTO notes (text, created_at) VALUES (?, ?)";
const SELECT_ONE: Sql = Sql {
    question: "SELECT id, text, created_at FROM notes WHERE id = ?",
    dollar: "SELECT id, text, created_at FROM notes WHERE id = $1",
};
const SELECT_LATEST: Sql = Sql {
    question: "SELECT id, text, created_at FROM notes ORDER BY id DESC LIMIT ?",
    dollar: "SELECT id, text, created_at FROM notes ORDER BY id DESC LIMIT $1",
};
/// Reads no row, but needs the connection and the `notes` table (and its columns).
const PROBE: &str = "SELECT id, text, created_at FROM notes WHERE 1 = 0";

/// Runs `$body` with `$p` bound to the typed pool and `$sql` to the text of `$query` in the
/// driver's placeholder style. A driver compiled into the database module but not enabled in
/// the quickstart answers [`unsupported`].
macro_rules! on_pool {
    ($pool:expr, $query:expr, |$p:ident, $sql:ident| $body:expr) => {
        match $pool {
            #[cfg(feature = "postgres")]
            DbPool::Postgres($p) => {
                let $sql = $query.dollar;
                $body
            }
            #[cfg(feature = "mysql")]
            DbPool::MySql($p) => {
                let $sql = $query.question;
                $body
            }
            DbPool::Sqlite($p) => {
                let $sql = $query.question;
                $body
            }
            #[allow(unreachable_patterns)]
            other => Err(unsupported(other.driver())),
        }
    };
}

/// Whether this build of the quickstart has the queries for `driver`.
pub fn supports(driver: Driver) -> bool {
    match driver {
        Driver::Sqlite => true,
        Driver::Postgres => cfg!(feature = "postgres"),
        Driver::MySql => cfg!(feature = "mysql"),
    }
}

/// The error for a driver this build has no queries for, naming the feature to turn on.
pub fn unsupported(driver: Driver) -> sqlx::Error {
    sqlx::Error::Configuration(unsupported_message(driver).into())
}

/// `the quickstart was built without the `postgres` feature ...`.
pub fn unsupported_message(driver: Driver) -> String {
    format!(
        "the quickstart was built without the `{driver}` feature; rebuild it with `--features {driver}`"
    )
}

/// The schema directory of `driver` under `root` (`migrations/sqlite`, `migrations/postgres`,
/// `migrations/mysql`).
pub fn migrations_dir(root: &str, driver: Driver) -> PathBuf {
    PathBuf::from(root).join(driver.as_str())
}

/// Stores a note; returns its id.
pub async fn insert(pool: &DbPool, text: &str, created_at: &str) -> Result<i64, sqlx::Error> {
    #[cfg(feature = "mysql")]
    if let DbPool::MySql(p) = pool {
        let done = sqlx::query(INSERT_MYSQL)
            .bind(text)
            .bind(created_at)
            .execute(p)
            .await?;
        return i64::try_from(done.last_insert_id())
            .map_err(|_| sqlx::Error::Protocol("LAST_INSERT_ID() above i64::MAX".into()));
    }
    on_pool!(pool, INSERT, |p, sql| {
        sqlx::query_as::<_, (i64,)>(sql)
            .bind(text)
            .bind(created_at)
            .fetch_one(p)
            .await
            .map(|(id,)| id)
    })
}

/// The note `id`, if stored.
pub async fn find(pool: &DbPool, id: i64) -> Result<Option<NoteRow>, sqlx::Error> {
    on_pool!(pool, SELECT_ONE, |p, sql| {
        sqlx::query_as::<_, NoteRow>(sql)
            .bind(id)
            .fetch_optional(p)
            .await
    })
}

/// The newest `limit` notes, newest first.
pub async fn latest(pool: &DbPool, limit: u32) -> Result<Vec<NoteRow>, sqlx::Error> {
    on_pool!(pool, SELECT_LATEST, |p, sql| {
        sqlx::query_as::<_, NoteRow>(sql)
            .bind(i64::from(limit))
            .fetch_all(p)
            .await
    })
}

/// Checks that the connection answers and the `notes` table can be read.
pub async fn probe(pool: &DbPool) -> Result<(), sqlx::Error> {
    let probe = Sql {
        question: PROBE,
        dollar: PROBE,
    };
    on_pool!(pool, probe, |p, sql| {
        sqlx::query(sql).fetch_optional(p).await.map(|_| ())
    })
}

/// Which database a pool reads, without credentials: the driver, host, port and database name
/// (plus PostgreSQL's `options`, which may pick a schema), or the SQLite file. Two pools with
/// the same identity read the same rows.
pub fn identity(pool: &DbPool) -> String {
    match pool {
        #[cfg(feature = "postgres")]
        DbPool::Postgres(p) => {
            let options = p.connect_options();
            format!(
                "postgres://{}:{}/{}?{}",
                options.get_host(),
                options.get_port(),
                options.get_database().unwrap_or_default(),
                options.get_options().unwrap_or_default()
            )
        }
        #[cfg(feature = "mysql")]
        DbPool::MySql(p) => {
            let options = p.connect_options();
            format!(
                "mysql://{}:{}/{}",
                options.get_host(),
                options.get_port(),
                options.get_database().unwrap_or_default()
            )
        }
        DbPool::Sqlite(p) => format!("sqlite:{}", p.connect_options().get_filename().display()),
        #[allow(unreachable_patterns)]
        other => other.driver().to_string(),
    }
}

/// A short, stable name for the database a pool reads ([`identity`], hashed): the namespace of
/// the notes' cache keys. Stable across processes of one build, so instances sharing a Redis
/// cache and the same database share entries, while a process pointed at another database
/// never reads the first one's rows.
pub fn namespace(pool: &DbPool) -> String {
    // `DefaultHasher::new()` has fixed keys (unlike `RandomState`), so every process agrees.
    let mut hasher = std::hash::DefaultHasher::new();
    identity(pool).hash(&mut hasher);
    format!("{:016x}", hasher.finish())
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn sqlite(path: &std::path::Path) -> DbPool {
        let options = sqlx::sqlite::SqliteConnectOptions::new()
            .filename(path)
            .create_if_missing(true);
        let pool = sqlx::SqlitePool::connect_with(options)
            .await
            .unwrap_or_else(|e| panic!("open {}: {e}", path.display()));
        DbPool::Sqlite(pool)
    }

    #[tokio::test]
    async fn another_database_has_another_namespace_and_the_same_one_shares_it() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("a temp dir: {e}"));
        let a = sqlite(&dir.path().join("a.db")).await;
        let a_again = sqlite(&dir.path().join("a.db")).await;
        let b = sqlite(&dir.path().join("b.db")).await;
        assert_eq!(namespace(&a), namespace(&a_again));
        assert_ne!(namespace(&a), namespace(&b));
        assert_eq!(namespace(&a).len(), 16);
    }

    #[tokio::test]
    async fn the_sqlite_queries_round_trip_and_the_probe_needs_the_table() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("a temp dir: {e}"));
        let pool = sqlite(&dir.path().join("notes.db")).await;
        let DbPool::Sqlite(raw) = &pool else {
            unreachable!("a SQLite pool")
        };
        assert!(probe(&pool).await.is_err(), "no table yet");
        sqlx::raw_sql(include_str!("../migrations/sqlite/0001_notes.sql"))
            .execute(raw)
            .await
            .unwrap_or_else(|e| panic!("migrate: {e}"));
        probe(&pool)
            .await
            .unwrap_or_else(|e| panic!("the probe fails on a migrated file: {e}"));
        let created_at = "2026-11-25T17:56:19.653Z";
        let first = insert(&pool, "buy milk", created_at).await.ok();
        let second = insert(&pool, "call mum", created_at).await.ok();
        assert_eq!((first, second), (Some(1), Some(2)));
        assert_eq!(
            find(&pool, 1).await.ok().flatten(),
            Some((1, "buy milk".to_owned(), created_at.to_owned()))
        );
        assert_eq!(find(&pool, 3).await.ok().flatten(), None);
        let ids: Vec<i64> = latest(&pool, 1)
            .await
            .unwrap_or_default()
            .into_iter()
            .map(|(id, _, _)| id)
            .collect();
        assert_eq!(ids, [2]);
    }
}
