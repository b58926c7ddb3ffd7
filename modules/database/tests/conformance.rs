//! The module conformance kit (modular-testkit) against PostgreSQL behind a fault proxy.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::time::Duration;

use modular_database::{DatabaseModule, DatabaseService};
use modular_testkit::FaultProxy;
use modular_testkit::conformance::{Conformance, probe};
use serde_json::json;
use support::{Backend, Fixture};

const PASSWORD: &str = "conformance-pw-7f3a9c";

fn service(ctx: &modular_testkit::conformance::ProbeContext) -> std::sync::Arc<DatabaseService> {
    ctx.services()
        .get::<DatabaseService>()
        .expect("database service")
}

#[tokio::test]
async fn database_passes_the_conformance_kit() -> anyhow::Result<()> {
    let Some(f) = Fixture::new(Backend::Postgres) else {
        return Ok(());
    };
    let proxy = FaultProxy::start(support::server_addr(&f.url)?).await?;
    // Trust auth ignores the password, so it can stand for the credential a real URL carries.
    let url = support::with_addr(&f.url, proxy.addr())?.replacen('@', &format!(":{PASSWORD}@"), 1);
    let (base, _) = f.url.rsplit_once('/').expect("a database in the url");
    let direct_to_postgres = format!("{base}/postgres").replacen('@', &format!(":{PASSWORD}@"), 1);
    let connection = |extra: serde_json::Value| {
        let mut c = json!({
            "url": url,
            "max_connections": 4,
            "min_connections": 0,
            "connect_timeout": "2s",
            "acquire_timeout": "2s",
            "ping_timeout": "1s",
        });
        if let (Some(c), Some(extra)) = (c.as_object_mut(), extra.as_object()) {
            c.extend(extra.clone());
        }
        c
    };
    Conformance::new("database", |b| b.module(DatabaseModule::new()))
        .valid(json!({ "database": { "connections": { "primary": connection(json!({})) } } }))
        .invalid(
            "database.connections.primary.max_connections",
            json!("many"),
        )
        .invalid("database.default", json!("nowhere"))
        .change(
            "max_connections",
            [("database.connections.primary.max_connections", json!(7))],
            probe(|ctx| async move {
                let stats = service(&ctx).stats("primary").ok_or("no pool")?;
                (stats.max == 7)
                    .then_some(())
                    .ok_or(format!("max_connections is {}", stats.max))
            }),
        )
        .change(
            "min_connections",
            [("database.connections.primary.min_connections", json!(1))],
            pool_option(|o| {
                (o.get_min_connections() == 1)
                    .then_some(())
                    .ok_or(format!("min {}", o.get_min_connections()))
            }),
        )
        .change(
            "acquire_timeout",
            [("database.connections.primary.acquire_timeout", json!("3s"))],
            pool_option(|o| {
                let t = o.get_acquire_timeout();
                (t == Duration::from_secs(3))
                    .then_some(())
                    .ok_or(format!("acquire_timeout {t:?}"))
            }),
        )
        .change(
            "idle_timeout",
            [("database.connections.primary.idle_timeout", json!("45s"))],
            pool_option(|o| {
                let t = o.get_idle_timeout();
                (t == Some(Duration::from_secs(45)))
                    .then_some(())
                    .ok_or(format!("idle_timeout {t:?}"))
            }),
        )
        .change(
            "max_lifetime",
            [("database.connections.primary.max_lifetime", json!("10m"))],
            pool_option(|o| {
                let t = o.get_max_lifetime();
                (t == Some(Duration::from_secs(600)))
                    .then_some(())
                    .ok_or(format!("max_lifetime {t:?}"))
            }),
        )
        .change(
            "statement_timeout",
            [(
                "database.connections.primary.statement_timeout",
                json!("150ms"),
            )],
            probe(|ctx| async move {
                let pool = service(&ctx).postgres("primary").ok_or("no pool")?;
                let shown: String = sqlx_show(&pool).await?;
                (shown == "150ms")
                    .then_some(())
                    .ok_or(format!("statement_timeout is {shown}"))
            }),
        )
        .change(
            "url (another database, directly)",
            [(
                "database.connections.primary.url",
                json!(direct_to_postgres),
            )],
            probe(|ctx| async move { current_database(&ctx, "postgres").await }),
        )
        .change(
            "url (back through the proxy)",
            [("database.connections.primary.url", json!(url))],
            probe(|ctx| async move { current_database(&ctx, "test").await }),
        )
        .fault(proxy)
        .secret(PASSWORD)
        .run()
        .await
        .assert_passed();
    Ok(())
}

type PgOptions = modular_database::sqlx::pool::PoolOptions<modular_database::sqlx::Postgres>;

/// A probe of the live pool's own options (what sqlx enforces), not of the config.
fn pool_option(
    check: impl Fn(&PgOptions) -> Result<(), String> + Send + Sync + 'static,
) -> modular_testkit::conformance::Probe {
    let check = std::sync::Arc::new(check);
    probe(move |ctx| {
        let check = std::sync::Arc::clone(&check);
        async move {
            let pool = service(&ctx).postgres("primary").ok_or("no pool")?;
            check(pool.options())
        }
    })
}

async fn current_database(
    ctx: &modular_testkit::conformance::ProbeContext,
    expected: &str,
) -> Result<(), String> {
    let pool = service(ctx).postgres("primary").ok_or("no pool")?;
    let name: String = modular_database::sqlx::query_scalar("SELECT current_database()::text")
        .fetch_one(&pool)
        .await
        .map_err(|e| e.to_string())?;
    (name == expected)
        .then_some(())
        .ok_or(format!("connected to {name}"))
}

async fn sqlx_show(pool: &modular_database::sqlx::PgPool) -> Result<String, String> {
    modular_database::sqlx::query_scalar::<_, String>("SHOW statement_timeout")
        .fetch_one(pool)
        .await
        .map_err(|e| e.to_string())
}
