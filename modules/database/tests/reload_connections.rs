//! Adding and removing named connections, and switching the default, are dynamic changes.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use modular_core::ReloadStatus;
use modular_database::events::{CONNECTION_CLOSED, CONNECTION_OPENED};
use serde_json::json;
use support::{Backend, Fixture};

async fn a_connection_can_be_added_and_removed_at_runtime(backend: Backend) -> anyhow::Result<()> {
    let Some(f) = Fixture::new(backend) else {
        return Ok(());
    };
    let primary = format!("sqlite://{}", f.dir.path().join("primary.db").display());
    f.write_config(json!({ "connections": { "primary": f.connection(&primary, json!({})) } }));
    let mut events = f.subscribe();
    let mut app = f.start().await?;
    let db = support::service(&app);
    assert_eq!(db.connection_names(), ["primary"]);
    assert!(db.pool("replica").is_none());

    // Add `replica` (this backend) and make it the default.
    f.write_config(json!({
        "default": "replica",
        "connections": {
            "primary": f.connection(&primary, json!({})),
            "replica": f.connection(&f.url, json!({ "max_connections": 2 })),
        },
    }));
    let outcome = app.reload().await?;
    assert_eq!(outcome.status, ReloadStatus::Applied, "{outcome:?}");
    let opened = support::expect_event(&mut events, CONNECTION_OPENED, |d| {
        d["connection"] == "replica"
    })
    .await?;
    assert_eq!(opened["reason"], "added");
    assert_eq!(opened["generation"], 1);
    assert_eq!(db.connection_names(), ["primary", "replica"]);
    assert_eq!(db.default_name(), "replica");
    let replica = db.default_pool().expect("default is replica");
    let table = support::unique_table("added");
    let rows = support::round_trip(&replica, &table).await;
    support::drop_table(&replica, &table).await;
    assert_eq!(rows?, 2);
    // `primary` was untouched.
    assert_eq!(db.generation("primary"), Some(1));

    // Remove it again.
    f.write_config(json!({ "connections": { "primary": f.connection(&primary, json!({})) } }));
    let outcome = app.reload().await?;
    assert_eq!(outcome.status, ReloadStatus::Applied, "{outcome:?}");
    assert_eq!(db.connection_names(), ["primary"]);
    assert!(db.pool("replica").is_none());
    assert_eq!(db.default_name(), "primary");
    let closed = support::expect_event(&mut events, CONNECTION_CLOSED, |d| {
        d["connection"] == "replica"
    })
    .await?;
    assert_eq!(closed["reason"], "removed");
    assert!(replica.is_closed());
    let report = app.health().expect("health").force_refresh().await;
    assert!(
        report.reports.iter().all(|r| r.component != "replica"),
        "a removed connection is still reported: {:?}",
        report.reports
    );
    app.stop().await?;
    Ok(())
}

#[tokio::test]
async fn postgres_a_connection_can_be_added_and_removed_at_runtime() -> anyhow::Result<()> {
    a_connection_can_be_added_and_removed_at_runtime(Backend::Postgres).await
}

#[tokio::test]
async fn mariadb_a_connection_can_be_added_and_removed_at_runtime() -> anyhow::Result<()> {
    a_connection_can_be_added_and_removed_at_runtime(Backend::MariaDb).await
}

#[tokio::test]
async fn sqlite_a_connection_can_be_added_and_removed_at_runtime() -> anyhow::Result<()> {
    a_connection_can_be_added_and_removed_at_runtime(Backend::Sqlite).await
}

#[tokio::test]
async fn an_added_connection_that_cannot_connect_is_not_added() -> anyhow::Result<()> {
    let Some(f) = Fixture::new(Backend::Sqlite) else {
        return Ok(());
    };
    f.write_config(f.single(json!({})));
    let mut app = f.start().await?;
    let db = support::service(&app);

    f.write_config(json!({
        "connections": {
            "primary": f.connection(&f.url, json!({})),
            "replica": f.connection(&f.unreachable_url(), json!({ "connect_timeout": "1s" })),
        },
    }));
    let outcome = app.reload().await?;
    assert_eq!(outcome.status, ReloadStatus::Failed, "{outcome:?}");
    assert_eq!(db.connection_names(), ["primary"]);
    app.stop().await?;
    Ok(())
}

/// Core's live-handle seam: a module that depends on sqlx but not on this crate finds each
/// connection's pool as `Live<sqlx::SqlitePool>` (or `PgPool`, `MySqlPool`) by name, and the
/// same handle follows every swap; removing the connection unregisters it.
#[tokio::test]
async fn sqlite_live_handles_follow_pool_swaps_and_removals() -> anyhow::Result<()> {
    let Some(f) = Fixture::new(Backend::Sqlite) else {
        return Ok(());
    };
    let a = format!("sqlite://{}", f.dir.path().join("a.db").display());
    let b = format!("sqlite://{}", f.dir.path().join("b.db").display());
    f.write_config(json!({ "connections": { "primary": f.connection(&a, json!({})) } }));
    let mut app = f.start().await?;
    let live = app
        .services()
        .live::<sqlx::SqlitePool>("primary")
        .expect("the primary pool is published");
    assert_eq!(live.generation(), 1);
    sqlx::query("CREATE TABLE only_in_a (id INTEGER)")
        .execute(&**live.load())
        .await?;
    let before = live.load_full();

    // A new URL builds a new pool aside; the commit stores it into the same handle.
    f.write_config(json!({ "connections": { "primary": f.connection(&b, json!({})) } }));
    let outcome = app.reload().await?;
    assert_eq!(outcome.status, ReloadStatus::Applied, "{outcome:?}");
    assert_eq!(live.generation(), 2);
    let tables: (i64,) =
        sqlx::query_as("SELECT count(*) FROM sqlite_master WHERE name = 'only_in_a'")
            .fetch_one(&**live.load())
            .await?;
    assert_eq!(tables.0, 0, "the handle still reads database a");
    let closed =
        tokio::time::timeout(std::time::Duration::from_secs(10), before.close_event()).await;
    assert!(closed.is_ok(), "the replaced pool was never closed");

    // A health-only change keeps the pool, and the handle's generation.
    f.write_config(json!({ "connections": {
        "primary": f.connection(&b, json!({ "ping_timeout": "2s" })),
        "replica": f.connection(&a, json!({})),
    } }));
    let outcome = app.reload().await?;
    assert_eq!(outcome.status, ReloadStatus::Applied, "{outcome:?}");
    assert_eq!(live.generation(), 2);
    assert_eq!(
        app.services().live_names::<sqlx::SqlitePool>(),
        ["primary", "replica"]
    );

    f.write_config(
        json!({ "connections": { "primary": f.connection(&b, json!({ "ping_timeout": "2s" })) } }),
    );
    let outcome = app.reload().await?;
    assert_eq!(outcome.status, ReloadStatus::Applied, "{outcome:?}");
    assert!(app.services().live::<sqlx::SqlitePool>("replica").is_none());
    assert!(app.services().live::<sqlx::PgPool>("primary").is_none());
    app.stop().await?;
    Ok(())
}

#[tokio::test]
async fn postgres_live_handles_follow_a_pool_rebuild() -> anyhow::Result<()> {
    let Some(f) = Fixture::new(Backend::Postgres) else {
        return Ok(());
    };
    f.write_config(f.single(json!({ "max_connections": 2 })));
    let mut app = f.start().await?;
    let live = app
        .services()
        .live::<sqlx::PgPool>("primary")
        .expect("the primary pool is published");
    assert_eq!(live.load().options().get_max_connections(), 2);
    f.write_config(f.single(json!({ "max_connections": 5 })));
    let outcome = app.reload().await?;
    assert_eq!(outcome.status, ReloadStatus::Applied, "{outcome:?}");
    assert_eq!(live.generation(), 2);
    assert_eq!(live.load().options().get_max_connections(), 5);
    let one: (i32,) = sqlx::query_as("SELECT 1").fetch_one(&**live.load()).await?;
    assert_eq!(one.0, 1);
    app.stop().await?;
    Ok(())
}
