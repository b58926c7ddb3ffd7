//! Reloads that fail leave the running pools serving: a new pool that cannot connect fails the
//! reload (the config stays at the running version), a later module's failure rolls the
//! database back to its previous pool settings, a driver change is refused, and a reload
//! touching two connections is all or nothing. A URL change rotates credentials.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::sync::Arc;

use modular_core::{
    BoxError, ConfigChange, DynamicConfig, InitContext, Module, ReloadContext, ReloadStatus,
    Reloadable,
};
use modular_database::events::{CONNECTION_CLOSED, CONNECTION_FAILED, POOL_SWAPPED};
use modular_database::sqlx::{self, AssertSqlSafe};
use serde::{Deserialize, Serialize};
use serde_json::json;
use support::{Backend, Fixture};

async fn a_reload_to_an_unreachable_url_fails_and_the_old_pool_keeps_serving(
    backend: Backend,
) -> anyhow::Result<()> {
    let Some(f) = Fixture::new(backend) else {
        return Ok(());
    };
    let good = f.single(json!({}));
    f.write_config(good.clone());
    let mut events = f.subscribe();
    let mut app = f.start().await?;
    let db = support::service(&app);
    let pool = db.default_pool().expect("pool");
    let table = support::unique_table("rollback");
    assert_eq!(support::round_trip(&pool, &table).await?, 2);
    let version = app.config().version();

    let unreachable = f.unreachable_url();
    f.write_config(json!({
        "connections": { "primary": f.connection(&unreachable, json!({ "connect_timeout": "1s" })) },
    }));
    let outcome = app.reload().await?;
    assert_eq!(outcome.status, ReloadStatus::Failed, "{outcome:?}");
    assert_eq!(outcome.failed_module.as_deref(), Some("database"));
    let error = outcome.error.clone().unwrap_or_default();
    assert!(error.contains("connection `primary`"), "{error}");
    assert!(!error.contains(&unreachable), "the url leaked into {error}");
    let failed = support::expect_event(&mut events, CONNECTION_FAILED, |_| true).await?;
    assert_eq!(failed["reason"], "replaced");

    // Nothing changed: same pool, same generation, same config version; queries still work.
    assert_eq!(app.config().version(), version);
    assert_eq!(db.generation("primary"), Some(1));
    assert!(!pool.is_closed());
    let current = db.default_pool().expect("pool");
    assert_eq!(support::count(&current, &table).await?, 2);
    assert!(support::drain_of_type(&mut events, POOL_SWAPPED).is_empty());

    // The running config is still the good one: writing it back is a no-op.
    f.write_config(good);
    assert_eq!(app.reload().await?.status, ReloadStatus::Noop);

    support::drop_table(&current, &table).await;
    app.stop().await?;
    Ok(())
}

#[tokio::test]
async fn postgres_a_reload_to_an_unreachable_url_fails_and_the_old_pool_keeps_serving()
-> anyhow::Result<()> {
    a_reload_to_an_unreachable_url_fails_and_the_old_pool_keeps_serving(Backend::Postgres).await
}

#[tokio::test]
async fn mariadb_a_reload_to_an_unreachable_url_fails_and_the_old_pool_keeps_serving()
-> anyhow::Result<()> {
    a_reload_to_an_unreachable_url_fails_and_the_old_pool_keeps_serving(Backend::MariaDb).await
}

#[tokio::test]
async fn sqlite_a_reload_to_an_unreachable_url_fails_and_the_old_pool_keeps_serving()
-> anyhow::Result<()> {
    a_reload_to_an_unreachable_url_fails_and_the_old_pool_keeps_serving(Backend::Sqlite).await
}

/// A module after `database` whose reload always fails, to make the orchestrator roll back.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, DynamicConfig)]
#[serde(deny_unknown_fields, default)]
struct RefuserConfig {
    #[config(dynamic)]
    level: u32,
}

struct Refuser;

struct RefuseEveryReload;

#[modular_core::async_trait]
impl Reloadable for RefuseEveryReload {
    async fn prepare(
        &self,
        _ctx: &ReloadContext,
        _changes: &[ConfigChange],
    ) -> Result<modular_core::PreparedReload, BoxError> {
        Err("refuser refuses every reload".into())
    }
}

#[modular_core::async_trait]
impl Module for Refuser {
    fn name(&self) -> &str {
        "refuser"
    }
    fn dependencies(&self) -> Vec<String> {
        vec!["database".to_owned()]
    }
    async fn init(&mut self, ctx: &mut InitContext<'_>) -> Result<(), BoxError> {
        ctx.config::<RefuserConfig>()?;
        ctx.register_reloadable(Arc::new(RefuseEveryReload));
        Ok(())
    }
}

async fn a_later_module_failing_closes_the_prepared_pool_and_keeps_the_live_one(
    backend: Backend,
) -> anyhow::Result<()> {
    let Some(f) = Fixture::new(backend) else {
        return Ok(());
    };
    let write = |max: u32, level: u32| {
        let text = json!({
            "database": f.single(json!({ "max_connections": max })),
            "refuser": { "level": level },
        });
        std::fs::write(f.config_path(), text.to_string()).expect("write config");
    };
    write(5, 1);
    let mut events = f.subscribe();
    let mut app = modular_core::Application::builder()
        .config_file(f.config_path())
        .env_prefix(None)
        .event_bus(f.events.clone())
        .module(modular_database::DatabaseModule::new())
        .module(Refuser)
        .with_reload_options(modular_core::reload::ReloadOptions {
            watch_files: false,
            health_gate: false,
            ..Default::default()
        })
        .handle_signals(false)
        .build()
        .await?;
    app.start().await?;
    let db = support::service(&app);

    write(2, 2);
    let outcome = app.reload().await?;
    assert_eq!(outcome.status, ReloadStatus::Failed, "{outcome:?}");
    assert_eq!(outcome.failed_module.as_deref(), Some("refuser"));
    // Two-phase: the pool prepared with max 2 was closed unused; nothing was rolled back.
    assert_eq!(outcome.aborted, ["database"]);
    assert!(outcome.rolled_back.is_empty(), "{outcome:?}");
    assert!(outcome.rollback_errors.is_empty(), "{outcome:?}");
    let closed =
        support::expect_event(&mut events, CONNECTION_CLOSED, |d| d["reason"] == "aborted").await?;
    assert_eq!(closed["connection"], "primary");
    assert!(
        support::drain_of_type(&mut events, POOL_SWAPPED).is_empty(),
        "the prepared pool was never swapped in"
    );
    assert_eq!(
        db.generation("primary"),
        Some(1),
        "the live pool is the same generation"
    );
    let pool = db.default_pool().expect("pool");
    assert_eq!(pool.stats().max, 5);
    assert!(pool.ping().await.is_ok());
    app.stop().await?;
    Ok(())
}

#[tokio::test]
async fn postgres_a_later_module_failing_keeps_the_live_pool() -> anyhow::Result<()> {
    a_later_module_failing_closes_the_prepared_pool_and_keeps_the_live_one(Backend::Postgres).await
}

#[tokio::test]
async fn sqlite_a_later_module_failing_keeps_the_live_pool() -> anyhow::Result<()> {
    a_later_module_failing_closes_the_prepared_pool_and_keeps_the_live_one(Backend::Sqlite).await
}

#[tokio::test]
async fn changing_a_connections_driver_fails_the_reload() -> anyhow::Result<()> {
    let Some(f) = Fixture::new(Backend::Sqlite) else {
        return Ok(());
    };
    f.write_config(f.single(json!({})));
    let mut app = f.start().await?;
    let db = support::service(&app);

    f.write_config(f.single(json!({ "url": "postgres://app@127.0.0.1:1/app" })));
    let outcome = app.reload().await?;
    assert_eq!(outcome.status, ReloadStatus::Failed, "{outcome:?}");
    let error = outcome.error.unwrap_or_default();
    assert!(
        error.contains("changing the driver from sqlite to postgres"),
        "{error}"
    );
    assert_eq!(db.generation("primary"), Some(1));
    assert!(db.sqlite("primary").is_some());
    app.stop().await?;
    Ok(())
}

#[tokio::test]
async fn a_reload_of_two_connections_is_all_or_nothing() -> anyhow::Result<()> {
    let Some(f) = Fixture::new(Backend::Sqlite) else {
        return Ok(());
    };
    let replica = format!("sqlite://{}", f.dir.path().join("replica.db").display());
    let config = |max: u32, replica_url: &str| {
        json!({
            "connections": {
                "primary": f.connection(&f.url, json!({ "max_connections": max })),
                "replica": f.connection(replica_url, json!({ "connect_timeout": "1s" })),
            },
        })
    };
    f.write_config(config(5, &replica));
    let mut app = f.start().await?;
    let db = support::service(&app);
    let primary = db.pool("primary").expect("primary");

    // primary alone would succeed; replica cannot open, so neither is swapped.
    f.write_config(config(2, &f.unreachable_url()));
    let outcome = app.reload().await?;
    assert_eq!(outcome.status, ReloadStatus::Failed, "{outcome:?}");
    assert!(
        outcome
            .error
            .unwrap_or_default()
            .contains("connection `replica`")
    );
    assert_eq!(db.generation("primary"), Some(1));
    assert_eq!(db.generation("replica"), Some(1));
    assert!(!primary.is_closed());
    assert_eq!(db.stats("primary").map(|s| s.max), Some(5));
    app.stop().await?;
    Ok(())
}

async fn a_url_change_rotates_credentials(backend: Backend) -> anyhow::Result<()> {
    let Some(f) = Fixture::new(backend) else {
        return Ok(());
    };
    f.write_config(f.single(json!({})));
    let mut events = f.subscribe();
    let mut app = f.start().await?;
    let db = support::service(&app);
    let old = db.default_pool().expect("pool");

    // A second login for the same database.
    let user = support::unique_table("rotated");
    let rotated = match backend {
        Backend::Postgres => {
            old.execute(AssertSqlSafe(format!("CREATE ROLE {user} LOGIN")))
                .await?;
            support::with_user(&f.url, &user)?
        }
        Backend::MariaDb => {
            old.execute(AssertSqlSafe(format!("CREATE USER '{user}'@'127.0.0.1'")))
                .await?;
            old.execute(AssertSqlSafe(format!(
                "GRANT SELECT ON test.* TO '{user}'@'127.0.0.1'"
            )))
            .await?;
            support::with_user(&f.url, &user)?
        }
        Backend::Sqlite => format!("sqlite://{}", f.dir.path().join("rotated.db").display()),
    };
    assert_ne!(rotated, f.url);

    f.write_config(json!({ "connections": { "primary": f.connection(&rotated, json!({})) } }));
    let outcome = app.reload().await;
    let swapped = support::expect_event(&mut events, POOL_SWAPPED, |_| true).await;
    let new = db.default_pool().expect("pool");
    let who: anyhow::Result<String> = match &new {
        modular_database::DbPool::Postgres(p) => {
            Ok(sqlx::query_scalar("SELECT current_user::text")
                .fetch_one(p)
                .await?)
        }
        modular_database::DbPool::MySql(p) => Ok(sqlx::query_scalar("SELECT CURRENT_USER()")
            .fetch_one(p)
            .await?),
        modular_database::DbPool::Sqlite(p) => {
            let file: String =
                sqlx::query_scalar("SELECT file FROM pragma_database_list WHERE name = 'main'")
                    .fetch_one(p)
                    .await?;
            Ok(file)
        }
        _ => anyhow::bail!("unexpected pool"),
    };
    app.stop().await?;
    match backend {
        Backend::Postgres => {
            let admin = sqlx::PgPool::connect(&f.url).await?;
            sqlx::query(AssertSqlSafe(format!("DROP ROLE IF EXISTS {user}")))
                .execute(&admin)
                .await?;
            admin.close().await;
        }
        Backend::MariaDb => {
            let admin = sqlx::MySqlPool::connect(&f.url).await?;
            sqlx::query(AssertSqlSafe(format!(
                "DROP USER IF EXISTS '{user}'@'127.0.0.1'"
            )))
            .execute(&admin)
            .await?;
            admin.close().await;
        }
        Backend::Sqlite => {}
    }

    assert_eq!(outcome?.status, ReloadStatus::Applied);
    let swapped = swapped?;
    assert_eq!(swapped["changed"], json!(["url"]));
    assert!(
        !swapped.to_string().contains(&rotated),
        "the url leaked into {swapped}"
    );
    let who = who?;
    match backend {
        Backend::Sqlite => assert!(who.ends_with("rotated.db"), "{who}"),
        _ => assert!(
            who.starts_with(&user),
            "connected as {who}, expected {user}"
        ),
    }
    assert!(old.is_closed());
    Ok(())
}

#[tokio::test]
async fn postgres_a_url_change_rotates_credentials() -> anyhow::Result<()> {
    a_url_change_rotates_credentials(Backend::Postgres).await
}

#[tokio::test]
async fn mariadb_a_url_change_rotates_credentials() -> anyhow::Result<()> {
    a_url_change_rotates_credentials(Backend::MariaDb).await
}

#[tokio::test]
async fn sqlite_a_url_change_rotates_credentials() -> anyhow::Result<()> {
    a_url_change_rotates_credentials(Backend::Sqlite).await
}

/// A reloaded `connect_timeout` bounds the next pool built: a rebuild through a slow link
/// (1 s a chunk, so the PostgreSQL handshake takes seconds) fails after the new 300 ms, not the
/// 10 s the connection started with, and the old pool keeps serving.
#[tokio::test]
async fn postgres_a_reloaded_connect_timeout_bounds_the_next_pool_built() -> anyhow::Result<()> {
    let Some(f) = Fixture::new(Backend::Postgres) else {
        return Ok(());
    };
    let proxy = modular_testkit::FaultProxy::start(support::server_addr(&f.url)?).await?;
    let slow = support::with_addr(&f.url, proxy.addr())?;
    f.write_config(f.single(json!({ "connect_timeout": "10s" })));
    let mut app = f.start().await?;
    let db = support::service(&app);

    // Alone it builds nothing: it is read when a pool is built.
    f.write_config(f.single(json!({ "connect_timeout": "300ms" })));
    let outcome = app.reload().await?;
    assert_eq!(outcome.status, ReloadStatus::Applied, "{outcome:?}");
    assert_eq!(db.generation("primary"), Some(1));

    proxy.set_latency(std::time::Duration::from_secs(1));
    f.write_config(json!({
        "connections": { "primary": f.connection(&slow, json!({ "connect_timeout": "300ms" })) },
    }));
    let started = std::time::Instant::now();
    let outcome = app.reload().await?;
    let took = started.elapsed();
    assert_eq!(outcome.status, ReloadStatus::Failed, "{outcome:?}");
    let error = outcome.error.clone().unwrap_or_default();
    assert!(
        error.contains("no connection within connect_timeout 300ms"),
        "{error}"
    );
    assert!(took < std::time::Duration::from_secs(5), "took {took:?}");
    assert_eq!(db.generation("primary"), Some(1));
    assert!(db.default_pool().expect("pool").ping().await.is_ok());

    proxy.set_latency(std::time::Duration::ZERO);
    app.stop().await?;
    proxy.shutdown().await;
    Ok(())
}
