//! `statement_timeout` is enforced by the server, and a reload that sets it changes live
//! behaviour: a statement that ran to completion before is cancelled after.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use modular_core::ReloadStatus;
use modular_database::sqlx::AssertSqlSafe;
use serde_json::json;
use support::{Backend, Fixture};

async fn a_reloaded_statement_timeout_cancels_slow_statements(
    backend: Backend,
) -> anyhow::Result<()> {
    let Some(f) = Fixture::new(backend) else {
        return Ok(());
    };
    let slow = f.sleep_sql(1).expect("a server backend");
    f.write_config(f.single(json!({})));
    let mut app = f.start().await?;
    let db = support::service(&app);

    let before = db
        .default_pool()
        .expect("pool")
        .execute(AssertSqlSafe(slow.clone()))
        .await;
    assert!(
        before.is_ok(),
        "without a timeout the slow statement failed: {before:?}"
    );

    f.write_config(f.single(json!({ "statement_timeout": "200ms" })));
    let outcome = app.reload().await?;
    assert_eq!(outcome.status, ReloadStatus::Applied, "{outcome:?}");

    let pool = db.default_pool().expect("pool");
    let after = pool.execute(AssertSqlSafe(slow)).await;
    let error = after.err().map(|e| e.to_string()).unwrap_or_default();
    let expected = match backend {
        Backend::Postgres => "statement timeout",
        _ => "max_statement_time",
    };
    assert!(
        error.contains(expected),
        "expected a {expected} error, got {error:?}"
    );
    // Fast statements still run.
    assert!(pool.ping().await.is_ok());
    app.stop().await?;
    Ok(())
}

#[tokio::test]
async fn postgres_a_reloaded_statement_timeout_cancels_slow_statements() -> anyhow::Result<()> {
    a_reloaded_statement_timeout_cancels_slow_statements(Backend::Postgres).await
}

#[tokio::test]
async fn mariadb_a_reloaded_statement_timeout_cancels_slow_statements() -> anyhow::Result<()> {
    a_reloaded_statement_timeout_cancels_slow_statements(Backend::MariaDb).await
}
