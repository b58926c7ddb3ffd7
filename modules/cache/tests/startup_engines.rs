//! Start-up of each engine: services registered, the Redis connection checked and announced,
//! an unreachable Redis failing start-up with its address.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::sync::Arc;
use std::time::Duration;

use modular_cache::{Cache, CacheEngine, CacheModule, CacheService};
use modular_core::Application;
use modular_testkit::Service;
use serde_json::json;

#[tokio::test]
async fn a_memory_cache_starts_and_registers_one_service_under_both_types() -> anyhow::Result<()> {
    let h = support::memory(json!({})).await?;
    let as_trait: Arc<dyn Cache> = h.app.services().require::<dyn Cache>()?;
    let concrete: Arc<CacheService> = h.app.services().require::<CacheService>()?;
    assert!(std::ptr::addr_eq(
        Arc::as_ptr(&as_trait),
        Arc::as_ptr(&concrete)
    ));
    assert_eq!(concrete.engine(), CacheEngine::Memory);
    assert_eq!(concrete.default_ttl(), Duration::from_secs(3600));
    h.finish().await
}

#[tokio::test]
async fn the_defaults_give_a_memory_cache_with_no_section_at_all() -> anyhow::Result<()> {
    let mut app = Application::builder()
        .env_prefix(None)
        .module(CacheModule::new())
        .handle_signals(false)
        .build()
        .await?;
    app.start().await?;
    let service = app.services().require::<CacheService>()?;
    assert_eq!(service.engine(), CacheEngine::Memory);
    assert_eq!(service.stats().await.max_items, Some(10_000));
    assert_eq!(service.default_ttl(), Duration::from_secs(300));
    app.stop().await?;
    Ok(())
}

#[tokio::test]
async fn a_redis_cache_connects_at_startup_and_announces_it() -> anyhow::Result<()> {
    let Some(mut h) = support::redis("startup", json!({})).await? else {
        return Ok(());
    };
    let connected = h
        .wait_for_event("engine.connected", Duration::from_secs(1), |_| true)
        .await;
    assert_eq!(connected["engine"], "redis");
    assert_eq!(connected["reason"], "start");
    assert!(
        connected["address"]
            .as_str()
            .is_some_and(|a| a.contains(':')),
        "{connected}"
    );
    assert_eq!(h.service.engine(), CacheEngine::Redis);
    h.finish().await
}

#[tokio::test]
async fn an_unreachable_redis_fails_startup_with_its_address() {
    // Not service-backed: the port is held bound without listening, so it refuses.
    let refused = modular_testkit::RefusedPort::new();
    let port = refused.port();
    let built = Application::builder()
        .env_prefix(None)
        .config_defaults(json!({ "cache": {
            "engine": "redis",
            "redis": { "url": format!("redis://:secret-pw@127.0.0.1:{port}"), "connect_timeout": "300ms" },
        } }))
        .module(CacheModule::new())
        .handle_signals(false)
        .build()
        .await;
    let error = built.err().map(|e| e.to_string()).unwrap_or_default();
    assert!(
        error.contains(&format!(
            "cannot connect to redis at 127.0.0.1:{port} within 300ms"
        )),
        "{error}"
    );
    assert!(!error.contains("secret-pw"), "{error}");
}

#[tokio::test]
async fn stopping_the_application_stops_the_cache_cleanly() -> anyhow::Result<()> {
    let Some(url) = modular_testkit::service(Service::Redis) else {
        return Ok(());
    };
    let (section, _) = support::redis_section("stop", &url, json!({}));
    let mut h = support::start(section).await?;
    h.cache.clear().await?;
    h.app.stop().await?;
    Ok(())
}
