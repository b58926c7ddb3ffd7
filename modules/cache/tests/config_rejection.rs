//! Bad configuration is rejected with its path, at start-up and at reload, and a rejected
//! reload leaves the running cache alone.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use modular_cache::CacheModule;
use modular_core::{Application, ReloadStatus};
use serde_json::{Value, json};

/// The start-up error for a `cache` section, as text.
async fn startup_error(section: Value) -> String {
    let built = Application::builder()
        .env_prefix(None)
        .config_defaults(json!({ "cache": section }))
        .module(CacheModule::new())
        .handle_signals(false)
        .build()
        .await;
    match built {
        Ok(_) => panic!("the section was accepted"),
        Err(error) => error.to_string(),
    }
}

#[tokio::test]
async fn max_items_zero_is_rejected_with_its_path() {
    let error = startup_error(json!({ "max_items": 0 })).await;
    assert!(
        error.contains("cache.max_items: must be > 0, got 0"),
        "{error}"
    );
}

#[tokio::test]
async fn an_unknown_engine_is_rejected_with_its_path() {
    let error = startup_error(json!({ "engine": "memcached" })).await;
    assert!(error.contains("cache.engine"), "{error}");
    assert!(
        error.contains("unknown variant: found `memcached`"),
        "{error}"
    );
    assert!(
        error.contains("memory") && error.contains("redis"),
        "names the valid engines: {error}"
    );
}

#[tokio::test]
async fn a_ca_file_without_a_rediss_url_is_rejected_with_its_path() {
    let error = startup_error(json!({ "engine": "redis", "redis": {
        "url": "redis://127.0.0.1:6379",
        "tls": { "ca_file": "/etc/ssl/ca.pem" },
    } }))
    .await;
    assert!(
        error.contains(
            "cache.redis.tls.ca_file: is only used by a rediss:// url, and redis.url is not one"
        ),
        "{error}"
    );
    let error = startup_error(json!({ "engine": "redis", "redis": {
        "url": "rediss://127.0.0.1:6380",
        "tls": { "ca_file": "" },
    } }))
    .await;
    assert!(
        error.contains("cache.redis.tls.ca_file: must not be empty"),
        "{error}"
    );
}

#[tokio::test]
async fn a_malformed_redis_url_is_rejected_with_its_path() {
    let error =
        startup_error(json!({ "engine": "redis", "redis": { "url": "redis//127.0.0.1:6379" } }))
            .await;
    assert!(
        error.contains("cache.redis.url: is not a valid redis url"),
        "{error}"
    );
}

#[tokio::test]
async fn a_rejected_redis_url_never_shows_its_password() {
    let error =
        startup_error(json!({ "engine": "redis", "redis": { "url": "redis://:hunter2@/0" } }))
            .await;
    assert!(error.contains("cache.redis.url"), "{error}");
    assert!(!error.contains("hunter2"), "{error}");
}

#[tokio::test]
async fn an_empty_key_prefix_is_rejected_because_clear_would_empty_the_database() {
    let error = startup_error(json!({ "redis": { "key_prefix": "" } })).await;
    assert!(
        error.contains("cache.redis.key_prefix: must not be empty"),
        "{error}"
    );
}

#[tokio::test]
async fn a_zero_timeout_is_rejected_with_its_path() {
    let error = startup_error(json!({ "redis": { "command_timeout": "0s" } })).await;
    assert!(
        error.contains("cache.redis.command_timeout: must be > 0s, got 0s"),
        "{error}"
    );
}

#[tokio::test]
async fn an_unknown_key_is_rejected_with_its_path() {
    let error = startup_error(json!({ "max_itemz": 10 })).await;
    assert!(error.contains("cache.max_itemz"), "{error}");
    assert!(error.contains("unknown field"), "{error}");
}

#[tokio::test]
async fn a_bad_value_in_a_reload_is_rejected_and_the_cache_keeps_its_bound() -> anyhow::Result<()> {
    let h = support::memory(serde_json::json!({ "max_items": 500 })).await?;
    let outcome = h.app.set_override("cache.max_items", json!(0)).await?;
    assert_eq!(outcome.status, ReloadStatus::Rejected, "{outcome:?}");
    let paths: Vec<&str> = outcome.errors.iter().map(|e| e.path.as_str()).collect();
    assert_eq!(paths, ["cache.max_items"], "{outcome:?}");
    assert_eq!(outcome.errors[0].message, "must be > 0, got 0");
    assert_eq!(h.service.stats().await.max_items, Some(500));
    h.cache.set("k", b"v", None).await?;
    assert_eq!(h.cache.get("k").await?.as_deref(), Some(&b"v"[..]));
    h.finish().await
}

#[tokio::test]
async fn switching_the_engine_at_runtime_needs_a_restart() -> anyhow::Result<()> {
    let h = support::memory(json!({})).await?;
    let outcome = h.app.set_override("cache.engine", json!("redis")).await?;
    assert_eq!(outcome.status, ReloadStatus::Rejected, "{outcome:?}");
    assert_eq!(
        outcome.error.as_deref(),
        Some("restart required: cache.engine")
    );
    assert_eq!(h.service.engine(), modular_cache::CacheEngine::Memory);
    h.finish().await
}

#[tokio::test]
async fn changing_the_key_prefix_at_runtime_needs_a_restart() -> anyhow::Result<()> {
    let h = support::memory(json!({})).await?;
    let outcome = h
        .app
        .set_override("cache.redis.key_prefix", json!("other:"))
        .await?;
    assert_eq!(outcome.status, ReloadStatus::Rejected, "{outcome:?}");
    assert_eq!(
        outcome.error.as_deref(),
        Some("restart required: cache.redis.key_prefix")
    );
    h.finish().await
}
