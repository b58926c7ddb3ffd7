//! Startup against the real servers: each driver connects, serves typed pools through the
//! registry, announces its connections and reports healthy; a start that cannot connect fails
//! `build()` naming the connection; `stop` closes the pools.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use modular_core::health::HealthStatus;
use modular_database::events::{CONNECTION_CLOSED, CONNECTION_FAILED, CONNECTION_OPENED};
use modular_database::{Database, DbPool, Driver};
use serde_json::json;
use support::{Backend, Fixture};

async fn starts_connects_and_runs_a_query(backend: Backend) -> anyhow::Result<()> {
    let Some(f) = Fixture::new(backend) else {
        return Ok(());
    };
    f.write_config(f.single(json!({ "max_connections": 3 })));
    let mut events = f.subscribe();
    let mut app = f.start().await?;
    let db = support::service(&app);

    let opened = support::expect_event(&mut events, CONNECTION_OPENED, |_| true).await?;
    assert_eq!(opened["connection"], "primary");
    assert_eq!(opened["reason"], "start");
    assert_eq!(opened["generation"], 1);
    assert_eq!(opened["max_connections"], 3);
    assert!(
        !opened.to_string().contains(&f.url),
        "the url leaked into {opened}"
    );

    let pool = db.default_pool().expect("default pool");
    let expected = match backend {
        Backend::Postgres => Driver::Postgres,
        Backend::MariaDb => Driver::MySql,
        Backend::Sqlite => Driver::Sqlite,
    };
    assert_eq!(pool.driver(), expected);
    match backend {
        Backend::Postgres => {
            assert!(db.postgres("primary").is_some() && db.sqlite("primary").is_none())
        }
        Backend::MariaDb => {
            assert!(db.mysql("primary").is_some() && db.postgres("primary").is_none())
        }
        Backend::Sqlite => assert!(db.sqlite("primary").is_some() && db.mysql("primary").is_none()),
    }

    let table = support::unique_table("startup");
    let rows = support::round_trip(&pool, &table).await;
    support::drop_table(&pool, &table).await;
    assert_eq!(rows?, 2);

    let report = support::report(&app, "primary").await?;
    assert_eq!(report.status, HealthStatus::Healthy, "{report:?}");
    assert_eq!(report.details["driver"], expected.as_str());
    assert_eq!(report.details["max"], 3);
    assert!(
        report.details["latency_ms"].as_f64().is_some(),
        "{report:?}"
    );

    app.stop().await?;
    assert!(pool.is_closed());
    let closed = support::expect_event(&mut events, CONNECTION_CLOSED, |_| true).await?;
    assert_eq!(closed["reason"], "shutdown");
    Ok(())
}

#[tokio::test]
async fn postgres_starts_connects_and_runs_a_query() -> anyhow::Result<()> {
    starts_connects_and_runs_a_query(Backend::Postgres).await
}

#[tokio::test]
async fn mariadb_starts_connects_and_runs_a_query() -> anyhow::Result<()> {
    starts_connects_and_runs_a_query(Backend::MariaDb).await
}

#[tokio::test]
async fn sqlite_starts_connects_and_runs_a_query() -> anyhow::Result<()> {
    starts_connects_and_runs_a_query(Backend::Sqlite).await
}

#[tokio::test]
async fn the_service_is_also_registered_as_the_database_trait() -> anyhow::Result<()> {
    let Some(f) = Fixture::new(Backend::Sqlite) else {
        return Ok(());
    };
    let second = format!("sqlite://{}", f.dir.path().join("second.db").display());
    f.write_config(json!({
        "default": "second",
        "connections": {
            "primary": f.connection(&f.url, json!({})),
            "second": f.connection(&second, json!({})),
        },
    }));
    let mut app = f.start().await?;
    let db = app
        .services()
        .get::<dyn Database>()
        .expect("dyn Database registered");
    assert_eq!(db.connection_names(), ["primary", "second"]);
    assert!(matches!(db.pool("primary"), Some(DbPool::Sqlite(_))));
    assert!(db.pool("nope").is_none());

    // The default pool is the `second` file, not the `primary` one.
    let default = db.default_pool().expect("default pool");
    default.execute("CREATE TABLE marker (id INTEGER)").await?;
    let primary = db.pool("primary").expect("primary");
    assert!(primary.execute("SELECT * FROM marker").await.is_err());
    app.stop().await?;
    Ok(())
}

#[tokio::test]
async fn a_start_that_cannot_connect_fails_naming_the_connection() -> anyhow::Result<()> {
    let Some(f) = Fixture::new(Backend::Postgres) else {
        return Ok(());
    };
    let unreachable = f.unreachable_url();
    f.write_config(json!({
        "connections": {
            "primary": f.connection(&f.url, json!({})),
            "broken": f.connection(&unreachable, json!({ "connect_timeout": "1s" })),
        },
    }));
    let mut events = f.subscribe();
    let error = f
        .build()
        .await
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
    assert!(error.contains("connection `broken`"), "{error}");
    assert!(!error.contains(&unreachable), "the url leaked into {error}");
    let failed = support::expect_event(&mut events, CONNECTION_FAILED, |_| true).await?;
    assert_eq!(failed["connection"], "broken");
    assert_eq!(failed["reason"], "start");
    Ok(())
}
