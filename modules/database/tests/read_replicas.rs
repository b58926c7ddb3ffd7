//! Read replicas: `replica_of` makes a connection a replica; `DatabaseService::reader` prefers
//! the usable replicas in turn and falls back to the primary when the health check finds them
//! down, and takes them back once a check sees them answer (through the testkit's
//! fault-injecting proxy to the real servers). Bad `replica_of` values are rejected with their
//! paths.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::time::Duration;

use modular_core::health::HealthStatus;
use modular_testkit::FaultProxy;
use serde_json::json;
use support::{Backend, Fixture};

const WITHIN: Duration = Duration::from_secs(20);

async fn reads_fail_over_to_the_primary_while_the_replica_is_down(
    backend: Backend,
) -> anyhow::Result<()> {
    let Some(f) = Fixture::new(backend) else {
        return Ok(());
    };
    let proxy = FaultProxy::start(support::server_addr(&f.url)?).await?;
    let replica_url = support::with_addr(&f.url, proxy.addr())?;
    f.write_config(json!({
        "connections": {
            "primary": f.connection(&f.url, json!({})),
            "replica": f.connection(&replica_url, json!({ "replica_of": "primary", "optional": true })),
        },
    }));
    let mut app = f.start().await?;
    let db = support::service(&app);

    let read = db.reader("primary").expect("primary configured");
    assert_eq!(
        (read.connection.as_str(), read.is_replica),
        ("replica", true)
    );
    assert_eq!(db.default_reader().unwrap().connection, "replica");
    assert!(read.pool.ping().await.is_ok());
    let report = support::report(&app, "replica").await?;
    assert_eq!(report.details["replica_of"], "primary", "{report:?}");

    // The replica goes away: once a check sees it, reads go to the primary, and readiness
    // holds (the replica is optional).
    proxy.cut();
    let (down, last) =
        support::wait_for_status(&app, "replica", HealthStatus::Unhealthy, WITHIN).await;
    assert!(down, "replica not unhealthy with its link cut: {last:?}");
    let read = db.reader("primary").unwrap();
    assert_eq!(
        (read.connection.as_str(), read.is_replica),
        ("primary", false)
    );
    assert!(read.pool.ping().await.is_ok());
    let answer = app.health().expect("health").force_refresh().await;
    assert_eq!(answer.readiness, HealthStatus::Healthy);

    proxy.restore();
    let (up, last) = support::wait_for_status(&app, "replica", HealthStatus::Healthy, WITHIN).await;
    assert!(up, "replica not healthy after the link came back: {last:?}");
    assert_eq!(db.reader("primary").unwrap().connection, "replica");

    app.stop().await?;
    proxy.shutdown().await;
    Ok(())
}

#[tokio::test]
async fn postgres_reads_fail_over_to_the_primary_while_the_replica_is_down() -> anyhow::Result<()> {
    reads_fail_over_to_the_primary_while_the_replica_is_down(Backend::Postgres).await
}

#[tokio::test]
async fn mariadb_reads_fail_over_to_the_primary_while_the_replica_is_down() -> anyhow::Result<()> {
    reads_fail_over_to_the_primary_while_the_replica_is_down(Backend::MariaDb).await
}

fn sqlite_file(f: &Fixture, name: &str) -> String {
    format!("sqlite://{}", f.dir.path().join(name).display())
}

/// SQLite files `primary.db` and its replica `r1.db`, configured as `primary` and `r1`.
fn sqlite_primary_and_replica() -> Fixture {
    let f = Fixture::new(Backend::Sqlite).expect("sqlite always runs");
    f.write_config(json!({
        "connections": {
            "primary": f.connection(&sqlite_file(&f, "primary.db"), json!({})),
            "r1": f.connection(&sqlite_file(&f, "r1.db"), json!({ "replica_of": "primary" })),
        },
    }));
    f
}

#[tokio::test]
async fn reads_take_usable_replicas_in_turn_and_a_reload_adds_or_removes_one() -> anyhow::Result<()>
{
    let f = sqlite_primary_and_replica();
    let file = |name: &str| sqlite_file(&f, name);
    let app = f.start().await?;
    let db = support::service(&app);
    assert_eq!(db.reader("primary").unwrap().connection, "r1");
    // A connection with no replicas reads from itself; an unknown one has no reader.
    assert_eq!(db.reader("r1").unwrap().connection, "r1");
    assert!(db.reader("missing").is_none());

    let outcome = app
        .set_override(
            "database.connections.r2",
            f.connection(&file("r2.db"), json!({ "replica_of": "primary" })),
        )
        .await?;
    assert!(outcome.is_applied(), "{outcome:?}");
    let mut seen: Vec<String> = (0..4)
        .map(|_| db.reader("primary").unwrap().connection)
        .collect();
    seen.sort();
    assert_eq!(seen, ["r1", "r1", "r2", "r2"]);

    // `replica_of` is dynamic: r1 stops being a replica, and only r2 is read from.
    let outcome = app
        .set_override("database.connections.r1.replica_of", json!(null))
        .await?;
    assert!(outcome.is_applied(), "{outcome:?}");
    for _ in 0..3 {
        assert_eq!(db.reader("primary").unwrap().connection, "r2");
    }
    Ok(())
}

#[tokio::test]
async fn bad_replica_of_values_are_rejected_with_their_paths() -> anyhow::Result<()> {
    let f = sqlite_primary_and_replica();
    let file = |name: &str| sqlite_file(&f, name);
    let app = f.start().await?;
    for (key, value, message) in [
        (
            "database.connections.r2",
            json!({ "url": file("r2.db"), "replica_of": "nope" }),
            "names no configured connection",
        ),
        (
            "database.connections.r2",
            json!({ "url": file("r2.db"), "replica_of": "r1" }),
            "is itself a replica",
        ),
        (
            "database.connections.r2",
            json!({ "url": file("r2.db"), "replica_of": "r2" }),
            "cannot replicate itself",
        ),
        (
            "database.connections.r2",
            json!({ "url": "postgres://postgres@127.0.0.1:5432/test", "replica_of": "primary" }),
            "the same pool type",
        ),
    ] {
        let outcome = app.set_override(key, value).await?;
        let error = outcome
            .errors
            .iter()
            .find(|e| e.path == "database.connections.r2.replica_of")
            .map(ToString::to_string)
            .unwrap_or_default();
        assert!(error.contains(message), "{message}: {outcome:?}");
    }
    assert_eq!(support::service(&app).connection_names(), ["primary", "r1"]);
    Ok(())
}
