//! Running a connection's sqlx migrations and reporting each one applied.

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::time::Duration;

use sqlx::migrate::{Migrate, MigrateError, Migrator};

use crate::error::DatabaseError;
use crate::pool::{DbPool, on_pool};

/// sqlx's default bookkeeping table, shared with `sqlx migrate run` and `sqlx::migrate!`.
const TABLE: &str = "_sqlx_migrations";

/// One migration this run applied.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct AppliedMigration {
    /// The migration's version (the number its file name starts with).
    pub(crate) version: i64,
    /// Its description (the rest of the file name).
    pub(crate) description: String,
    /// How long it took.
    pub(crate) duration: Duration,
}

/// Applies the migrations in `dir` that the database has not seen yet, under the driver's
/// migration lock, and returns the ones applied (none when up to date).
pub(crate) async fn run(
    connection: &str,
    pool: &DbPool,
    dir: &Path,
) -> Result<Vec<AppliedMigration>, DatabaseError> {
    let wrap = |source: MigrateError| DatabaseError::Migration {
        connection: connection.to_owned(),
        path: dir.display().to_string(),
        source,
    };
    let migrator = Migrator::new(dir).await.map_err(wrap)?;
    on_pool!(pool, p => {
        let mut conn = p.acquire().await.map_err(|e| wrap(MigrateError::Execute(e)))?;
        apply_pending(&mut *conn, &migrator).await.map_err(wrap)
    })
}

/// What `Migrator::run` does, except that it reports each migration applied.
async fn apply_pending<C: Migrate + Send + ?Sized>(
    conn: &mut C,
    migrator: &Migrator,
) -> Result<Vec<AppliedMigration>, MigrateError> {
    conn.lock().await?;
    let result = apply_locked(conn, migrator).await;
    let unlocked = conn.unlock().await;
    let applied = result?;
    unlocked?;
    Ok(applied)
}

async fn apply_locked<C: Migrate + Send + ?Sized>(
    conn: &mut C,
    migrator: &Migrator,
) -> Result<Vec<AppliedMigration>, MigrateError> {
    conn.ensure_migrations_table(TABLE).await?;
    if let Some(version) = conn.dirty_version(TABLE).await? {
        return Err(MigrateError::Dirty(version));
    }
    let already = conn.list_applied_migrations(TABLE).await?;
    let known: HashSet<i64> = migrator.iter().map(|m| m.version).collect();
    if let Some(missing) = already.iter().find(|m| !known.contains(&m.version)) {
        return Err(MigrateError::VersionMissing(missing.version));
    }
    let already: HashMap<i64, _> = already
        .into_iter()
        .map(|m| (m.version, m.checksum))
        .collect();
    let mut applied = Vec::new();
    for migration in migrator.iter() {
        if migration.migration_type.is_down_migration() {
            continue;
        }
        match already.get(&migration.version) {
            Some(checksum) if *checksum != migration.checksum => {
                return Err(MigrateError::VersionMismatch(migration.version));
            }
            Some(_) => {}
            None => {
                let duration = conn.apply(TABLE, migration).await?;
                applied.push(AppliedMigration {
                    version: migration.version,
                    description: migration.description.to_string(),
                    duration,
                });
            }
        }
    }
    Ok(applied)
}
