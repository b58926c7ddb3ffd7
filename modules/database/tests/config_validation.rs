//! Bad configuration is rejected with the path of the offending value: at `build()` and on
//! reload, where the running pools are left alone.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use modular_core::config::ValidationError;
use modular_core::{Error, ReloadStatus};
use serde_json::{Value, json};
use support::{Backend, Fixture};

/// The validation errors `build()` returns for this `database` section.
async fn build_errors(f: &Fixture, database: Value) -> Vec<ValidationError> {
    f.write_config(database);
    match f.build().await {
        Err(Error::Config(errors)) => errors.errors().to_vec(),
        Err(other) => panic!("expected a config error, got {other}"),
        Ok(_) => panic!("expected a config error, the application built"),
    }
}

fn only(errors: &[ValidationError]) -> &ValidationError {
    assert_eq!(errors.len(), 1, "{errors:?}");
    &errors[0]
}

#[tokio::test]
async fn an_unknown_driver_scheme_is_rejected_at_the_url() {
    let Some(f) = Fixture::new(Backend::Sqlite) else {
        return;
    };
    let errors = build_errors(
        &f,
        f.single(json!({ "url": "oracle://scott:tiger@db/orcl" })),
    )
    .await;
    let error = only(&errors);
    assert_eq!(error.path, "database.connections.primary.url");
    assert!(
        error.message.starts_with("unknown driver scheme `oracle`"),
        "{error}"
    );
    assert!(
        !error.to_string().contains("tiger"),
        "the url leaked into {error}"
    );
    assert!(error.source.ends_with("config.json"), "{error}");
}

#[tokio::test]
async fn min_connections_above_max_connections_is_rejected() {
    let Some(f) = Fixture::new(Backend::Sqlite) else {
        return;
    };
    let errors = build_errors(
        &f,
        f.single(json!({ "max_connections": 2, "min_connections": 3 })),
    )
    .await;
    let error = only(&errors);
    assert_eq!(error.path, "database.connections.primary.min_connections");
    assert_eq!(error.message, "must be <= max_connections (2), got 3");
}

#[tokio::test]
async fn zero_max_connections_is_rejected() {
    let Some(f) = Fixture::new(Backend::Sqlite) else {
        return;
    };
    let errors = build_errors(&f, f.single(json!({ "max_connections": 0 }))).await;
    let error = only(&errors);
    assert_eq!(error.path, "database.connections.primary.max_connections");
    assert_eq!(error.message, "must be > 0, got 0");
}

#[tokio::test]
async fn every_error_is_reported_at_once() {
    let Some(f) = Fixture::new(Backend::Sqlite) else {
        return;
    };
    let errors = build_errors(
        &f,
        json!({
            "default": "main",
            "connections": {
                "primary": f.connection("mssql://sa@db/app", json!({})),
                "replica": f.connection(&f.url, json!({ "max_connections": 0 })),
            },
        }),
    )
    .await;
    let mut paths: Vec<&str> = errors.iter().map(|e| e.path.as_str()).collect();
    paths.sort_unstable();
    assert_eq!(
        paths,
        [
            "database.connections.primary.url",
            "database.connections.replica.max_connections",
            "database.default",
        ],
        "{errors:?}"
    );
}

#[tokio::test]
async fn a_misspelt_field_and_a_wrong_type_are_rejected_with_their_paths() {
    let Some(f) = Fixture::new(Backend::Sqlite) else {
        return;
    };
    let errors = build_errors(&f, f.single(json!({ "max_conections": 5 }))).await;
    let error = only(&errors);
    assert!(
        error.path.starts_with("database.connections.primary"),
        "{error}"
    );
    assert!(error.message.contains("max_conections"), "{error}");

    let errors = build_errors(&f, f.single(json!({ "max_connections": "many" }))).await;
    let error = only(&errors);
    assert_eq!(
        error.path, "database.connections.primary.max_connections",
        "{error}"
    );
}

#[tokio::test]
async fn a_bad_reload_is_rejected_with_its_path_and_the_pools_keep_serving() -> anyhow::Result<()> {
    let Some(f) = Fixture::new(Backend::Sqlite) else {
        return Ok(());
    };
    f.write_config(f.single(json!({ "max_connections": 4 })));
    let mut app = f.start().await?;
    let db = support::service(&app);
    let pool = db.default_pool().expect("pool");

    f.write_config(f.single(json!({ "max_connections": 4, "min_connections": 5 })));
    let outcome = app.reload().await?;
    assert_eq!(outcome.status, ReloadStatus::Rejected, "{outcome:?}");
    let paths: Vec<&str> = outcome.errors.iter().map(|e| e.path.as_str()).collect();
    assert_eq!(paths, ["database.connections.primary.min_connections"]);
    assert_eq!(db.generation("primary"), Some(1));
    assert!(pool.ping().await.is_ok());
    app.stop().await?;
    Ok(())
}

#[tokio::test]
async fn a_zero_health_timeout_is_rejected_with_its_path() -> anyhow::Result<()> {
    let Some(f) = Fixture::new(Backend::Sqlite) else {
        return Ok(());
    };
    let mut database = f.single(json!({}));
    database["health"] = json!({ "timeout": "0s" });
    let errors = build_errors(&f, database).await;
    let error = only(&errors);
    assert_eq!(error.path, "database.health.timeout", "{error}");
    assert_eq!(error.message, "must be > 0s, got 0s", "{error}");

    // On reload too: rejected, and the registration keeps its deadline.
    f.write_config(f.single(json!({})));
    let mut app = f.start().await?;
    let health = app.health().expect("aggregator").clone();
    let before = health.provider_options("database").expect("registered");
    let outcome = app
        .set_override("database.health.timeout", json!("2m"))
        .await?;
    assert_eq!(outcome.status, ReloadStatus::Rejected, "{outcome:?}");
    let paths: Vec<&str> = outcome.errors.iter().map(|e| e.path.as_str()).collect();
    assert_eq!(paths, ["database.health.timeout"], "{outcome:?}");
    assert_eq!(health.provider_options("database"), Some(before));
    app.stop().await?;
    Ok(())
}

/// `default` must name one of the configured connections, not any key of the section (a
/// `default: connections` typo once passed): reported at its path, at build and on reload.
#[tokio::test]
async fn a_default_naming_no_configured_connection_is_rejected_at_build_and_on_reload()
-> anyhow::Result<()> {
    let Some(f) = Fixture::new(Backend::Sqlite) else {
        return Ok(());
    };
    let mut database = f.single(json!({}));
    database["default"] = json!("connections");
    let errors = build_errors(&f, database).await;
    let error = only(&errors);
    assert_eq!(
        format!("{}: {}", error.path, error.message),
        "database.default: names no configured connection \"connections\" (configured: primary)"
    );

    f.write_config(f.single(json!({})));
    let mut app = f.start().await?;
    let db = support::service(&app);
    let outcome = app
        .set_override("database.default", json!("connections"))
        .await?;
    assert_eq!(outcome.status, ReloadStatus::Rejected, "{outcome:?}");
    let seen: Vec<String> = outcome
        .errors
        .iter()
        .map(|e| format!("{}: {}", e.path, e.message))
        .collect();
    assert_eq!(
        seen,
        ["database.default: names no configured connection \"connections\" (configured: primary)"]
    );
    assert_eq!(db.default_name(), "primary");
    assert!(db.default_pool().is_some());
    app.stop().await?;
    Ok(())
}
