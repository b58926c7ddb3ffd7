//! Persistence: job state, a bounded run history and claim (lease) rows, on a sqlx pool the
//! database module publishes through core's [`Live`] seam (followed across its reloads).
//!
//! One row per occurrence (`job`, `scheduled_at`) in `scheduler_runs` is the claim: an
//! instance runs an occurrence only if its insert of that row wins (or, for a row still
//! `running` whose lease has expired, its takeover update wins), so N instances sharing the
//! database run each occurrence once. The holder renews `lease_until` while it runs.

use std::collections::HashMap;
use std::sync::Arc;

use modular_core::ServiceRegistry;
use modular_core::live::Live;
use sqlx::AssertSqlSafe;

use crate::error::SchedulerError;

/// The migrations of each driver, applied in order, recorded in `scheduler_migrations`.
const SQLITE_MIGRATIONS: &[(i64, &str)] =
    &[(1, include_str!("../migrations/sqlite/0001_init.sql"))];
const POSTGRES_MIGRATIONS: &[(i64, &str)] =
    &[(1, include_str!("../migrations/postgres/0001_init.sql"))];
const MYSQL_MIGRATIONS: &[(i64, &str)] = &[(1, include_str!("../migrations/mysql/0001_init.sql"))];

/// A pool of one of the enabled drivers.
#[derive(Clone)]
pub(crate) enum Store {
    #[cfg(feature = "sqlite")]
    Sqlite(Arc<Live<sqlx::SqlitePool>>),
    #[cfg(feature = "postgres")]
    Postgres(Arc<Live<sqlx::PgPool>>),
    #[cfg(feature = "mysql")]
    MySql(Arc<Live<sqlx::MySqlPool>>),
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            #[cfg(feature = "sqlite")]
            Self::Sqlite(_) => "Store::Sqlite",
            #[cfg(feature = "postgres")]
            Self::Postgres(_) => "Store::Postgres",
            #[cfg(feature = "mysql")]
            Self::MySql(_) => "Store::MySql",
        })
    }
}

/// What a claim of an occurrence found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Claim {
    /// This instance inserted the row: run it.
    Won,
    /// The row was `running` under an expired lease; this instance took it over: run it.
    TakenOver,
    /// Another instance holds a live lease on it.
    Held,
    /// It already finished (here or elsewhere).
    Done,
}

/// A job's persisted state.
#[derive(Clone, Debug, Default, PartialEq)]
pub(crate) struct PersistedJob {
    /// The latest occurrence handled (run, claimed or reported missed), epoch ms.
    pub(crate) last_scheduled_at: Option<i64>,
    pub(crate) last_run_at: Option<i64>,
    pub(crate) last_status: Option<String>,
    pub(crate) consecutive_failures: i64,
}

/// A `scheduler_jobs` row: name, last_scheduled_at, last_run_at, last_status,
/// consecutive_failures.
type JobRow = (String, Option<i64>, Option<i64>, Option<String>, i64);

/// One finished run, as recorded.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Finished<'a> {
    pub(crate) job: &'a str,
    pub(crate) scheduled_at: i64,
    pub(crate) instance: &'a str,
    pub(crate) status: &'a str,
    pub(crate) attempts: i64,
    pub(crate) error: Option<&'a str>,
    pub(crate) finished_at: i64,
    pub(crate) consecutive_failures: i64,
    pub(crate) history: i64,
}

/// `?` placeholders become `$1, $2, ...` for PostgreSQL.
#[cfg_attr(not(feature = "postgres"), allow(dead_code))]
fn numbered(sql: &str) -> String {
    let mut out = String::with_capacity(sql.len() + 8);
    let mut n = 0;
    for ch in sql.chars() {
        if ch == '?' {
            n += 1;
            out.push('$');
            out.push_str(&n.to_string());
        } else {
            out.push(ch);
        }
    }
    out
}

/// Runs `$body` with `$pool` bound to the current pool of whichever driver `$store` is, and
/// `$sql` turning a `?`-placeholder statement into the driver's dialect.
macro_rules! on_store {
    ($store:expr, |$pool:ident, $sql:ident| $body:expr) => {
        match $store {
            #[cfg(feature = "sqlite")]
            Store::Sqlite(live) => {
                let $pool = live.load_full();
                let $sql = |s: &str| AssertSqlSafe(s.replace("INSERT IGNORE", "INSERT OR IGNORE"));
                $body
            }
            #[cfg(feature = "postgres")]
            Store::Postgres(live) => {
                let $pool = live.load_full();
                let $sql = |s: &str| {
                    let s = numbered(s);
                    AssertSqlSafe(match s.strip_prefix("INSERT IGNORE") {
                        Some(rest) => format!("INSERT{rest} ON CONFLICT DO NOTHING"),
                        None => s,
                    })
                };
                $body
            }
            #[cfg(feature = "mysql")]
            Store::MySql(live) => {
                let $pool = live.load_full();
                let $sql = |s: &str| AssertSqlSafe(s.to_owned());
                $body
            }
        }
    };
}

impl Store {
    /// The database module's live pool published under `connection`, of whichever enabled
    /// driver it is.
    pub(crate) fn lookup(
        services: &ServiceRegistry,
        connection: &str,
    ) -> Result<Self, SchedulerError> {
        #[cfg(feature = "sqlite")]
        if let Some(live) = services.live::<sqlx::SqlitePool>(connection) {
            return Ok(Self::Sqlite(live));
        }
        #[cfg(feature = "postgres")]
        if let Some(live) = services.live::<sqlx::PgPool>(connection) {
            return Ok(Self::Postgres(live));
        }
        #[cfg(feature = "mysql")]
        if let Some(live) = services.live::<sqlx::MySqlPool>(connection) {
            return Ok(Self::MySql(live));
        }
        let _ = services;
        Err(SchedulerError::NoPool {
            connection: connection.to_owned(),
        })
    }

    /// The driver's name.
    pub(crate) fn driver(&self) -> &'static str {
        match self {
            #[cfg(feature = "sqlite")]
            Self::Sqlite(_) => "sqlite",
            #[cfg(feature = "postgres")]
            Self::Postgres(_) => "postgres",
            #[cfg(feature = "mysql")]
            Self::MySql(_) => "mysql",
        }
    }

    /// Applies the migrations not yet recorded (idempotent; instances starting together may
    /// race, every statement tolerates that).
    pub(crate) async fn migrate(&self) -> Result<(), SchedulerError> {
        let migrations = match self {
            #[cfg(feature = "sqlite")]
            Self::Sqlite(_) => SQLITE_MIGRATIONS,
            #[cfg(feature = "postgres")]
            Self::Postgres(_) => POSTGRES_MIGRATIONS,
            #[cfg(feature = "mysql")]
            Self::MySql(_) => MYSQL_MIGRATIONS,
        };
        let _ = (SQLITE_MIGRATIONS, POSTGRES_MIGRATIONS, MYSQL_MIGRATIONS);
        on_store!(self, |pool, sql| {
            sqlx::raw_sql(
                "CREATE TABLE IF NOT EXISTS scheduler_migrations (version BIGINT PRIMARY KEY)",
            )
            .execute(&*pool)
            .await?;
            for (version, script) in migrations {
                let done: Option<(i64,)> = sqlx::query_as(sql(
                    "SELECT version FROM scheduler_migrations WHERE version = ?",
                ))
                .bind(*version)
                .fetch_optional(&*pool)
                .await?;
                if done.is_some() {
                    continue;
                }
                sqlx::raw_sql(AssertSqlSafe(*script))
                    .execute(&*pool)
                    .await?;
                sqlx::query(sql(
                    "INSERT IGNORE INTO scheduler_migrations (version) VALUES (?)",
                ))
                .bind(*version)
                .execute(&*pool)
                .await?;
            }
            Ok(())
        })
    }

    /// A round trip, for health.
    pub(crate) async fn ping(&self) -> Result<(), SchedulerError> {
        on_store!(self, |pool, sql| {
            let _ = &sql;
            sqlx::query("SELECT 1").execute(&*pool).await?;
            Ok(())
        })
    }

    /// Every job's persisted state.
    pub(crate) async fn load(&self) -> Result<HashMap<String, PersistedJob>, SchedulerError> {
        on_store!(self, |pool, sql| {
            let rows: Vec<JobRow> = sqlx::query_as(sql(
                "SELECT name, last_scheduled_at, last_run_at, last_status, consecutive_failures FROM scheduler_jobs",
            ))
            .fetch_all(&*pool)
            .await?;
            Ok(rows
                .into_iter()
                .map(
                    |(name, last_scheduled_at, last_run_at, last_status, consecutive_failures)| {
                        (
                            name,
                            PersistedJob {
                                last_scheduled_at,
                                last_run_at,
                                last_status,
                                consecutive_failures,
                            },
                        )
                    },
                )
                .collect())
        })
    }

    /// Records that occurrence `scheduled_at` of `job` was handled (so a restart does not see
    /// it as missed), and the next one planned.
    pub(crate) async fn scheduled(
        &self,
        job: &str,
        scheduled_at: i64,
        next_run_at: Option<i64>,
    ) -> Result<(), SchedulerError> {
        on_store!(self, |pool, sql| {
            sqlx::query(sql(
                "INSERT IGNORE INTO scheduler_jobs (name, consecutive_failures) VALUES (?, 0)",
            ))
            .bind(job)
            .execute(&*pool)
            .await?;
            sqlx::query(sql(
                "UPDATE scheduler_jobs SET last_scheduled_at = ?, next_run_at = ? WHERE name = ? AND (last_scheduled_at IS NULL OR last_scheduled_at < ?)",
            ))
            .bind(scheduled_at)
            .bind(next_run_at)
            .bind(job)
            .bind(scheduled_at)
            .execute(&*pool)
            .await?;
            Ok(())
        })
    }

    /// Tries to claim occurrence `scheduled_at` of `job` for `instance` until `lease_until`.
    pub(crate) async fn claim(
        &self,
        job: &str,
        scheduled_at: i64,
        instance: &str,
        now: i64,
        lease_until: i64,
    ) -> Result<Claim, SchedulerError> {
        on_store!(self, |pool, sql| {
            let inserted = sqlx::query(sql(
                "INSERT IGNORE INTO scheduler_runs (job, scheduled_at, instance, status, attempts, started_at, lease_until) VALUES (?, ?, ?, 'running', 0, ?, ?)",
            ))
            .bind(job)
            .bind(scheduled_at)
            .bind(instance)
            .bind(now)
            .bind(lease_until)
            .execute(&*pool)
            .await?
            .rows_affected();
            if inserted == 1 {
                return Ok(Claim::Won);
            }
            let taken = sqlx::query(sql(
                "UPDATE scheduler_runs SET instance = ?, lease_until = ?, started_at = ? WHERE job = ? AND scheduled_at = ? AND status = 'running' AND lease_until < ?",
            ))
            .bind(instance)
            .bind(lease_until)
            .bind(now)
            .bind(job)
            .bind(scheduled_at)
            .bind(now)
            .execute(&*pool)
            .await?
            .rows_affected();
            if taken == 1 {
                return Ok(Claim::TakenOver);
            }
            let status: Option<(String,)> = sqlx::query_as(sql(
                "SELECT status FROM scheduler_runs WHERE job = ? AND scheduled_at = ?",
            ))
            .bind(job)
            .bind(scheduled_at)
            .fetch_optional(&*pool)
            .await?;
            Ok(match status {
                Some((s,)) if s == "running" => Claim::Held,
                _ => Claim::Done,
            })
        })
    }

    /// Extends the lease this instance holds; `false` when it no longer holds it.
    pub(crate) async fn renew(
        &self,
        job: &str,
        scheduled_at: i64,
        instance: &str,
        lease_until: i64,
    ) -> Result<bool, SchedulerError> {
        on_store!(self, |pool, sql| {
            let n = sqlx::query(sql(
                "UPDATE scheduler_runs SET lease_until = ? WHERE job = ? AND scheduled_at = ? AND instance = ? AND status = 'running'",
            ))
            .bind(lease_until)
            .bind(job)
            .bind(scheduled_at)
            .bind(instance)
            .execute(&*pool)
            .await?
            .rows_affected();
            Ok(n == 1)
        })
    }

    /// Records a finished run, the job's state, and trims the history to `history` rows.
    pub(crate) async fn finish(&self, run: &Finished<'_>) -> Result<(), SchedulerError> {
        on_store!(self, |pool, sql| {
            sqlx::query(sql(
                "UPDATE scheduler_runs SET status = ?, attempts = ?, error = ?, finished_at = ? WHERE job = ? AND scheduled_at = ? AND instance = ?",
            ))
            .bind(run.status)
            .bind(run.attempts)
            .bind(run.error)
            .bind(run.finished_at)
            .bind(run.job)
            .bind(run.scheduled_at)
            .bind(run.instance)
            .execute(&*pool)
            .await?;
            sqlx::query(sql(
                "INSERT IGNORE INTO scheduler_jobs (name, consecutive_failures) VALUES (?, 0)",
            ))
            .bind(run.job)
            .execute(&*pool)
            .await?;
            sqlx::query(sql(
                "UPDATE scheduler_jobs SET last_run_at = ?, last_status = ?, consecutive_failures = ? WHERE name = ?",
            ))
            .bind(run.finished_at)
            .bind(run.status)
            .bind(run.consecutive_failures)
            .bind(run.job)
            .execute(&*pool)
            .await?;
            let cutoff: Option<(i64,)> = sqlx::query_as(sql(
                "SELECT scheduled_at FROM scheduler_runs WHERE job = ? ORDER BY scheduled_at DESC LIMIT 1 OFFSET ?",
            ))
            .bind(run.job)
            .bind(run.history)
            .fetch_optional(&*pool)
            .await?;
            if let Some((cutoff,)) = cutoff {
                sqlx::query(sql(
                    "DELETE FROM scheduler_runs WHERE job = ? AND scheduled_at <= ? AND status <> 'running'",
                ))
                .bind(run.job)
                .bind(cutoff)
                .execute(&*pool)
                .await?;
            }
            Ok(())
        })
    }

    /// The run history of `job`, newest first: (scheduled_at, instance, status, attempts).
    pub(crate) async fn history(
        &self,
        job: &str,
    ) -> Result<Vec<(i64, String, String, i64)>, SchedulerError> {
        on_store!(self, |pool, sql| {
            let rows: Vec<(i64, String, String, i64)> = sqlx::query_as(sql(
                "SELECT scheduled_at, instance, status, attempts FROM scheduler_runs WHERE job = ? ORDER BY scheduled_at DESC",
            ))
            .bind(job)
            .fetch_all(&*pool)
            .await?;
            Ok(rows)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn postgres_placeholders_are_numbered() {
        assert_eq!(numbered("a = ? AND b = ?"), "a = $1 AND b = $2");
    }
}
