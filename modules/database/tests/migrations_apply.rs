//! Migrations run at start, once: each applied migration is announced, a second start with
//! the same migrations applies nothing, a connection added by a reload is migrated before it
//! serves, and a failing migration fails the start naming the connection.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use modular_core::ReloadStatus;
use modular_database::events::MIGRATION_APPLIED;
use modular_database::sqlx::{self, AssertSqlSafe};
use serde_json::json;
use support::{Backend, Fixture};

const MIGRATIONS: &[(&str, &str)] = &[
    (
        "1_create_items.sql",
        "CREATE TABLE items (id INTEGER PRIMARY KEY, name VARCHAR(50) NOT NULL);",
    ),
    (
        "2_seed_items.sql",
        "INSERT INTO items (id, name) VALUES (1, 'first');",
    ),
];

/// A database of this test's own, so the `_sqlx_migrations` table is not shared: a fresh
/// schema (PostgreSQL, via `search_path`), database (MariaDB) or file (SQLite). Returns its URL
/// and the SQL that drops it.
async fn private_database(f: &Fixture) -> anyhow::Result<(String, Option<String>)> {
    let name = support::unique_table("mig");
    Ok(match f.backend {
        Backend::Postgres => {
            let admin = sqlx::PgPool::connect(&f.url).await?;
            sqlx::query(AssertSqlSafe(format!("CREATE SCHEMA {name}")))
                .execute(&admin)
                .await?;
            admin.close().await;
            let separator = if f.url.contains('?') { '&' } else { '?' };
            (
                format!("{}{separator}options[search_path]={name}", f.url),
                Some(format!("DROP SCHEMA {name} CASCADE")),
            )
        }
        Backend::MariaDb => {
            let admin = sqlx::MySqlPool::connect(&f.url).await?;
            sqlx::query(AssertSqlSafe(format!("CREATE DATABASE {name}")))
                .execute(&admin)
                .await?;
            admin.close().await;
            let base = f
                .url
                .rsplit_once('/')
                .map_or(f.url.as_str(), |(base, _)| base);
            (
                format!("{base}/{name}"),
                Some(format!("DROP DATABASE {name}")),
            )
        }
        Backend::Sqlite => (
            format!("sqlite://{}", f.dir.path().join("migrated.db").display()),
            None,
        ),
    })
}

async fn drop_private_database(f: &Fixture, drop_sql: Option<String>) -> anyhow::Result<()> {
    let Some(sql) = drop_sql else { return Ok(()) };
    match f.backend {
        Backend::Postgres => {
            let admin = sqlx::PgPool::connect(&f.url).await?;
            sqlx::query(AssertSqlSafe(sql)).execute(&admin).await?;
            admin.close().await;
        }
        Backend::MariaDb => {
            let admin = sqlx::MySqlPool::connect(&f.url).await?;
            sqlx::query(AssertSqlSafe(sql)).execute(&admin).await?;
            admin.close().await;
        }
        Backend::Sqlite => {}
    }
    Ok(())
}

async fn migrations_run_once_and_are_reported(backend: Backend) -> anyhow::Result<()> {
    let Some(f) = Fixture::new(backend) else {
        return Ok(());
    };
    let (url, drop_sql) = private_database(&f).await?;
    let result = run_twice(&f, &url).await;
    drop_private_database(&f, drop_sql).await?;
    result
}

async fn run_twice(f: &Fixture, url: &str) -> anyhow::Result<()> {
    let dir = support::write_migrations(f.dir.path(), MIGRATIONS);
    f.write_config(json!({
        "connections": { "primary": f.connection(url, json!({ "migrations": dir })) },
    }));

    // First start: both migrations applied and announced, in order.
    let mut events = f.subscribe();
    let mut app = f.start().await?;
    let applied = support::drain_of_type(&mut events, MIGRATION_APPLIED);
    let seen: Vec<(i64, String)> = applied
        .iter()
        .map(|d| {
            (
                d["version"].as_i64().unwrap_or(-1),
                d["description"].as_str().unwrap_or("").to_owned(),
            )
        })
        .collect();
    assert_eq!(
        seen,
        [(1, "create items".to_owned()), (2, "seed items".to_owned())]
    );
    assert!(
        applied
            .iter()
            .all(|d| d["connection"] == "primary" && d["duration_ms"].is_number())
    );
    let pool = support::service(&app).default_pool().expect("pool");
    assert_eq!(support::count(&pool, "items").await?, 1);
    app.stop().await?;

    // Second start: nothing new to apply, nothing announced, the seed row is there once.
    let mut app = f.start().await?;
    assert!(support::drain_of_type(&mut events, MIGRATION_APPLIED).is_empty());
    let pool = support::service(&app).default_pool().expect("pool");
    assert_eq!(support::count(&pool, "items").await?, 1);
    app.stop().await?;
    Ok(())
}

#[tokio::test]
async fn postgres_migrations_run_once_and_are_reported() -> anyhow::Result<()> {
    migrations_run_once_and_are_reported(Backend::Postgres).await
}

#[tokio::test]
async fn mariadb_migrations_run_once_and_are_reported() -> anyhow::Result<()> {
    migrations_run_once_and_are_reported(Backend::MariaDb).await
}

#[tokio::test]
async fn sqlite_migrations_run_once_and_are_reported() -> anyhow::Result<()> {
    migrations_run_once_and_are_reported(Backend::Sqlite).await
}

#[tokio::test]
async fn a_connection_added_by_a_reload_is_migrated_before_it_serves() -> anyhow::Result<()> {
    let Some(f) = Fixture::new(Backend::Sqlite) else {
        return Ok(());
    };
    let dir = support::write_migrations(f.dir.path(), MIGRATIONS);
    f.write_config(f.single(json!({})));
    let mut events = f.subscribe();
    let mut app = f.start().await?;
    assert!(support::drain_of_type(&mut events, MIGRATION_APPLIED).is_empty());

    let reports = format!("sqlite://{}", f.dir.path().join("reports.db").display());
    f.write_config(json!({
        "connections": {
            "primary": f.connection(&f.url, json!({})),
            "reports": f.connection(&reports, json!({ "migrations": dir })),
        },
    }));
    let outcome = app.reload().await?;
    assert_eq!(outcome.status, ReloadStatus::Applied, "{outcome:?}");
    let applied = support::drain_of_type(&mut events, MIGRATION_APPLIED);
    assert_eq!(applied.len(), 2, "{applied:?}");
    assert!(applied.iter().all(|d| d["connection"] == "reports"));
    let pool = support::service(&app).pool("reports").expect("reports");
    assert_eq!(support::count(&pool, "items").await?, 1);
    app.stop().await?;
    Ok(())
}

#[tokio::test]
async fn a_failing_migration_fails_the_start_naming_the_connection() -> anyhow::Result<()> {
    let Some(f) = Fixture::new(Backend::Sqlite) else {
        return Ok(());
    };
    let dir = support::write_migrations(
        f.dir.path(),
        &[(
            "1_broken.sql",
            "CREATE TABLE broken (id INTEGER PRIMARY KEY,,);",
        )],
    );
    f.write_config(f.single(json!({ "migrations": dir })));
    let error = f
        .build()
        .await
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
    assert!(
        error.contains("connection `primary`: migrations from"),
        "{error}"
    );
    assert!(
        error.contains("1_broken") || error.contains("migration 1"),
        "{error}"
    );
    Ok(())
}

/// A reload that points `migrations` at another directory runs its pending migrations on the
/// live pool (no new pool), once: the ones already applied are skipped.
#[tokio::test]
async fn a_changed_migrations_path_runs_its_pending_migrations_on_reload() -> anyhow::Result<()> {
    let Some(f) = Fixture::new(Backend::Sqlite) else {
        return Ok(());
    };
    let first = "CREATE TABLE first_table (id INTEGER PRIMARY KEY);";
    let before = support::write_migrations(&f.dir.path().join("v1"), &[("1_first.sql", first)]);
    let after = support::write_migrations(
        &f.dir.path().join("v2"),
        &[
            ("1_first.sql", first),
            (
                "2_second.sql",
                "CREATE TABLE second_table (id INTEGER PRIMARY KEY); INSERT INTO second_table (id) VALUES (7);",
            ),
        ],
    );
    f.write_config(f.single(json!({ "migrations": before })));
    let mut events = f.subscribe();
    let mut app = f.start().await?;
    let applied = support::drain_of_type(&mut events, MIGRATION_APPLIED);
    assert_eq!(applied.len(), 1, "{applied:?}");

    f.write_config(f.single(json!({ "migrations": after })));
    let outcome = app.reload().await?;
    assert_eq!(outcome.status, ReloadStatus::Applied, "{outcome:?}");
    let applied = support::drain_of_type(&mut events, MIGRATION_APPLIED);
    let versions: Vec<&serde_json::Value> = applied.iter().map(|d| &d["version"]).collect();
    assert_eq!(versions, [&json!(2)], "{applied:?}");
    let db = support::service(&app);
    assert_eq!(
        db.generation("primary"),
        Some(1),
        "no new pool for a migrations path"
    );
    let pool = db.default_pool().expect("pool");
    assert_eq!(support::count(&pool, "second_table").await?, 1);
    app.stop().await?;
    Ok(())
}
