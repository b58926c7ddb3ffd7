//! A reload that changes `max_connections` builds a new pool aside and swaps it in: with 5 a
//! third concurrent acquire succeeds, after the reload to 2 it waits until the pool's
//! `acquire_timeout` and fails, and queries in flight on the old pool during the swap finish.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::time::Duration;

use cloudevents::AttributesReader as _;
use modular_core::ReloadStatus;
use modular_database::events::{CONNECTION_CLOSED, POOL_SWAPPED};
use modular_database::sqlx;
use serde_json::json;
use support::{Backend, Fixture};

/// Far above the pools' 1 s `acquire_timeout`: only a hung acquire hits it.
const BOUND: Duration = Duration::from_secs(15);

async fn shrinking_max_connections_makes_a_third_acquire_wait(
    backend: Backend,
) -> anyhow::Result<()> {
    let Some(f) = Fixture::new(backend) else {
        return Ok(());
    };
    f.write_config(f.single(json!({ "max_connections": 5, "acquire_timeout": "1s" })));
    let mut events = f.subscribe();
    let mut app = f.start().await?;
    let db = support::service(&app);
    let old = db.default_pool().expect("pool");
    assert_eq!(old.stats().max, 5);

    // With 5: two held, a third acquire completes.
    let mut in_flight = support::acquire_within(&old, BOUND).await??;
    let second = support::acquire_within(&old, BOUND).await??;
    let third = support::acquire_within(&old, BOUND).await?;
    assert!(
        third.is_ok(),
        "a third acquire with max_connections 5 failed"
    );
    drop((second, third));

    // A slow query in flight on the old pool while the reload swaps it out.
    let sleeper = f.sleep_sql(1).map(|sql| {
        let old = old.clone();
        tokio::spawn(async move { old.execute(sqlx::AssertSqlSafe(sql)).await })
    });

    f.write_config(f.single(json!({ "max_connections": 2, "acquire_timeout": "1s" })));
    let outcome = app.reload().await?;
    assert_eq!(outcome.status, ReloadStatus::Applied, "{outcome:?}");
    assert_eq!(outcome.reloaded, ["database"]);

    let swapped = support::expect_event(&mut events, POOL_SWAPPED, |_| true).await?;
    assert_eq!(swapped["connection"], "primary");
    assert_eq!(swapped["generation"], 2);
    assert_eq!(swapped["max_connections"], 2);
    assert_eq!(swapped["changed"], json!(["max_connections"]));
    assert_eq!(db.generation("primary"), Some(2));

    // The old pool takes no new work, but the query in flight on it finishes.
    assert!(old.is_closed());
    assert!(matches!(
        support::acquire_within(&old, BOUND).await?,
        Err(sqlx::Error::PoolClosed)
    ));
    in_flight.select_one().await?;
    if let Some(sleeper) = sleeper {
        sleeper.await??;
    }
    // It is closed for good only once the connection in flight is returned.
    let early: Vec<_> = events
        .drain()
        .into_iter()
        .filter(|e| e.ty() == CONNECTION_CLOSED)
        .collect();
    assert!(
        early.is_empty(),
        "old pool closed while a connection was still in use: {early:?}"
    );
    drop(in_flight);
    let closed = support::expect_event(&mut events, CONNECTION_CLOSED, |d| {
        d["reason"] == "replaced"
    })
    .await?;
    assert_eq!(closed["generation"], 1);

    // With 2: two held, a third acquire waits the whole acquire_timeout and fails.
    let new = db.default_pool().expect("pool");
    assert_eq!(new.stats().max, 2);
    let first = support::acquire_within(&new, BOUND).await??;
    let second = support::acquire_within(&new, BOUND).await??;
    let third = support::acquire_within(&new, BOUND).await?;
    assert!(
        matches!(third, Err(sqlx::Error::PoolTimedOut)),
        "a third acquire with max_connections 2 did not wait for a connection"
    );
    // Once one is returned, the next acquire gets it.
    drop(first);
    let mut again = support::acquire_within(&new, BOUND).await??;
    again.select_one().await?;
    drop((again, second));

    app.stop().await?;
    Ok(())
}

#[tokio::test]
async fn postgres_shrinking_max_connections_makes_a_third_acquire_wait() -> anyhow::Result<()> {
    shrinking_max_connections_makes_a_third_acquire_wait(Backend::Postgres).await
}

#[tokio::test]
async fn mariadb_shrinking_max_connections_makes_a_third_acquire_wait() -> anyhow::Result<()> {
    shrinking_max_connections_makes_a_third_acquire_wait(Backend::MariaDb).await
}

#[tokio::test]
async fn sqlite_shrinking_max_connections_makes_a_third_acquire_wait() -> anyhow::Result<()> {
    shrinking_max_connections_makes_a_third_acquire_wait(Backend::Sqlite).await
}

#[tokio::test]
async fn a_change_to_ping_timeout_alone_keeps_the_pool() -> anyhow::Result<()> {
    let Some(f) = Fixture::new(Backend::Sqlite) else {
        return Ok(());
    };
    f.write_config(f.single(json!({ "ping_timeout": "1s" })));
    let mut events = f.subscribe();
    let mut app = f.start().await?;
    let db = support::service(&app);
    let before = db.default_pool().expect("pool");

    f.write_config(f.single(json!({ "ping_timeout": "2s" })));
    let outcome = app.reload().await?;
    assert_eq!(outcome.status, ReloadStatus::Applied, "{outcome:?}");
    assert_eq!(db.generation("primary"), Some(1));
    assert!(!before.is_closed());
    assert!(support::drain_of_type(&mut events, POOL_SWAPPED).is_empty());
    app.stop().await?;
    Ok(())
}

/// A pool replaced by a reload but still draining (a query in flight on a connection checked
/// out of it) is closed by the shutdown too: `stop` waits for that query within the shutdown
/// deadline and closes the old pool's last connection, instead of returning (and cancelling
/// the drain task) with the connection still open.
async fn a_replaced_pool_still_draining_is_closed_at_shutdown(
    backend: Backend,
) -> anyhow::Result<()> {
    let Some(f) = Fixture::new(backend) else {
        return Ok(());
    };
    let sleep = f.sleep_sql(1).expect("a server backend");
    f.write_config(f.single(json!({ "max_connections": 3 })));
    let mut events = f.subscribe();
    let mut app = f.start().await?;
    let db = support::service(&app);
    let old = db.default_pool().expect("pool");

    // A connection of the old pool, busy with a one-second query across reload and shutdown.
    let mut held = support::acquire_within(&old, BOUND).await??;
    held.select_one().await?;
    let in_flight = tokio::spawn(async move {
        let result = held.execute(&sleep).await;
        drop(held);
        result
    });

    f.write_config(f.single(json!({ "max_connections": 4 })));
    let outcome = app.reload().await?;
    assert_eq!(outcome.status, ReloadStatus::Applied, "{outcome:?}");
    assert_eq!(db.generation("primary"), Some(2));
    assert!(old.is_closed());
    assert_eq!(old.stats().in_use, 1, "{:?}", old.stats());

    tokio::time::timeout(BOUND, app.stop()).await??;
    assert!(
        in_flight.is_finished(),
        "stop returned while a query was still in flight on the replaced pool"
    );
    in_flight.await??;
    assert_eq!(old.stats().size, 0, "old pool left open: {:?}", old.stats());
    let closed = support::drain_of_type(&mut events, CONNECTION_CLOSED);
    let generations: Vec<(serde_json::Value, serde_json::Value)> = closed
        .iter()
        .map(|d| (d["generation"].clone(), d["reason"].clone()))
        .collect();
    assert!(
        generations.contains(&(json!(1), json!("replaced"))),
        "no close of the replaced pool: {generations:?}"
    );
    assert!(
        generations.contains(&(json!(2), json!("shutdown"))),
        "{generations:?}"
    );
    Ok(())
}

#[tokio::test]
async fn postgres_a_replaced_pool_still_draining_is_closed_at_shutdown() -> anyhow::Result<()> {
    a_replaced_pool_still_draining_is_closed_at_shutdown(Backend::Postgres).await
}

#[tokio::test]
async fn mariadb_a_replaced_pool_still_draining_is_closed_at_shutdown() -> anyhow::Result<()> {
    a_replaced_pool_still_draining_is_closed_at_shutdown(Backend::MariaDb).await
}

/// Polls `done` on the live pool of `primary` every 100 ms, for at most `BOUND`.
async fn until(
    db: &modular_database::DatabaseService,
    what: &str,
    done: impl Fn(&modular_database::PoolStats) -> bool,
) -> anyhow::Result<()> {
    let reached = tokio::time::timeout(BOUND, async {
        loop {
            if db.stats("primary").is_some_and(|s| done(&s)) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    })
    .await;
    anyhow::ensure!(
        reached.is_ok(),
        "{what} not reached within {BOUND:?}: {:?}",
        db.stats("primary")
    );
    Ok(())
}

/// The backend pid of a fresh acquire from the live PostgreSQL pool.
async fn backend_pid(db: &modular_database::DatabaseService) -> anyhow::Result<i32> {
    let pool = db.postgres("primary").expect("postgres pool");
    Ok(sqlx::query_scalar("SELECT pg_backend_pid()")
        .fetch_one(&pool)
        .await?)
}

#[tokio::test]
async fn postgres_a_reloaded_min_connections_opens_connections_ahead_of_use() -> anyhow::Result<()>
{
    let Some(f) = Fixture::new(Backend::Postgres) else {
        return Ok(());
    };
    f.write_config(f.single(json!({ "max_connections": 4, "min_connections": 0 })));
    let mut app = f.start().await?;
    let db = support::service(&app);
    assert!(db.stats("primary").expect("stats").size <= 1);

    f.write_config(f.single(json!({ "max_connections": 4, "min_connections": 3 })));
    let outcome = app.reload().await?;
    assert_eq!(outcome.status, ReloadStatus::Applied, "{outcome:?}");
    assert_eq!(db.generation("primary"), Some(2));
    // Nothing acquires: the pool opens them on its own.
    until(&db, "3 open connections", |s| s.size >= 3 && s.in_use == 0).await?;
    app.stop().await?;
    Ok(())
}

#[tokio::test]
async fn postgres_a_reloaded_acquire_timeout_bounds_the_next_wait() -> anyhow::Result<()> {
    let Some(f) = Fixture::new(Backend::Postgres) else {
        return Ok(());
    };
    f.write_config(f.single(json!({ "max_connections": 1, "acquire_timeout": "10s" })));
    let mut app = f.start().await?;
    let db = support::service(&app);

    f.write_config(f.single(json!({ "max_connections": 1, "acquire_timeout": "200ms" })));
    let outcome = app.reload().await?;
    assert_eq!(outcome.status, ReloadStatus::Applied, "{outcome:?}");
    let pool = db.default_pool().expect("pool");
    let held = support::acquire_within(&pool, BOUND).await??;
    let started = std::time::Instant::now();
    let second = support::acquire_within(&pool, BOUND).await?;
    let waited = started.elapsed();
    assert!(
        matches!(second, Err(sqlx::Error::PoolTimedOut)),
        "the second acquire did not time out"
    );
    assert!(
        waited >= Duration::from_millis(200) && waited < Duration::from_secs(5),
        "waited {waited:?}, not the reloaded 200ms"
    );
    drop(held);
    app.stop().await?;
    Ok(())
}

#[tokio::test]
async fn postgres_a_reloaded_idle_timeout_closes_idle_connections() -> anyhow::Result<()> {
    let Some(f) = Fixture::new(Backend::Postgres) else {
        return Ok(());
    };
    let settings = |idle: serde_json::Value| {
        f.single(json!({ "min_connections": 0, "idle_timeout": idle, "max_lifetime": null }))
    };
    f.write_config(settings(json!(null)));
    let mut app = f.start().await?;
    let db = support::service(&app);

    f.write_config(settings(json!("500ms")));
    let outcome = app.reload().await?;
    assert_eq!(outcome.status, ReloadStatus::Applied, "{outcome:?}");
    let pool = db.default_pool().expect("pool");
    let mut held = support::acquire_within(&pool, BOUND).await??;
    held.select_one().await?;
    drop(held);
    until(&db, "the idle connection closed", |s| s.size == 0).await?;
    app.stop().await?;
    Ok(())
}

#[tokio::test]
async fn postgres_a_reloaded_max_lifetime_replaces_old_connections() -> anyhow::Result<()> {
    let Some(f) = Fixture::new(Backend::Postgres) else {
        return Ok(());
    };
    let settings = |lifetime: serde_json::Value| {
        f.single(json!({
            "min_connections": 1,
            "max_connections": 1,
            "idle_timeout": null,
            "max_lifetime": lifetime,
        }))
    };
    f.write_config(settings(json!(null)));
    let mut app = f.start().await?;
    let db = support::service(&app);

    f.write_config(settings(json!("500ms")));
    let outcome = app.reload().await?;
    assert_eq!(outcome.status, ReloadStatus::Applied, "{outcome:?}");
    let first = backend_pid(&db).await?;
    let replaced = tokio::time::timeout(BOUND, async {
        loop {
            match backend_pid(&db).await {
                Ok(pid) if pid != first => return Ok(pid),
                Ok(_) => tokio::time::sleep(Duration::from_millis(100)).await,
                Err(error) => return Err(error),
            }
        }
    })
    .await;
    assert!(
        matches!(replaced, Ok(Ok(_))),
        "the connection (pid {first}) outlived the reloaded max_lifetime: {replaced:?}"
    );
    app.stop().await?;
    Ok(())
}
