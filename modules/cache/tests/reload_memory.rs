//! Reloading the memory engine: `default_ttl` and `max_items` change live behaviour, writes
//! survive a rebuild, and a failed reload rolls the cache back.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::sync::Arc;
use std::time::Duration;

use modular_core::ReloadStatus;
use serde_json::json;

#[tokio::test]
async fn a_default_ttl_reload_applies_to_entries_written_after_it() -> anyhow::Result<()> {
    let mut h = support::memory(json!({ "default_ttl": "1h" })).await?;
    h.cache.set("before", b"1", None).await?;
    let outcome = h
        .app
        .set_override("cache.default_ttl", json!("300ms"))
        .await?;
    assert_eq!(outcome.status, ReloadStatus::Applied, "{outcome:?}");
    assert_eq!(h.service.default_ttl(), Duration::from_millis(300));
    h.cache.set("after", b"2", None).await?;
    let expired = support::eventually(Duration::from_secs(10), || async {
        h.cache.get("after").await.ok() == Some(None)
    })
    .await;
    assert!(
        expired,
        "an entry written after the reload kept the old default_ttl"
    );
    assert_eq!(
        h.cache.get("before").await?.as_deref(),
        Some(&b"1"[..]),
        "the earlier entry keeps its 1h"
    );
    let reloaded = h.events_of("engine.reloaded");
    assert_eq!(reloaded.len(), 1, "{reloaded:?}");
    assert_eq!(reloaded[0]["fields"], json!(["default_ttl"]));
    assert_eq!(reloaded[0]["rebuilt"], json!(false));
    h.finish().await
}

#[tokio::test]
async fn a_max_items_reload_shrinks_the_cache_and_carries_the_hottest_entries() -> anyhow::Result<()>
{
    let mut h = support::memory(json!({ "max_items": 1000 })).await?;
    for i in 0..500 {
        h.cache.set(&format!("key:{i}"), b"x", None).await?;
    }
    // key:0 .. key:49 are the hot ones.
    for _ in 0..3 {
        for i in 0..50 {
            assert!(h.cache.get(&format!("key:{i}")).await?.is_some());
        }
    }
    let outcome = h.app.set_override("cache.max_items", json!(100)).await?;
    assert_eq!(outcome.status, ReloadStatus::Applied, "{outcome:?}");

    let stats = h.service.stats().await;
    assert_eq!(stats.max_items, Some(100));
    assert_eq!(stats.entries, Some(100));
    for i in 0..50 {
        assert!(
            h.cache.get(&format!("key:{i}")).await?.is_some(),
            "hot key:{i} was not carried over"
        );
    }
    let reloaded = h
        .wait_for_event("engine.reloaded", Duration::from_secs(1), |_| true)
        .await;
    assert_eq!(reloaded["rebuilt"], json!(true));
    assert_eq!(reloaded["carried_over"], json!(100));
    assert_eq!(reloaded["dropped"], json!(400));

    // Eviction follows the new bound.
    for i in 1000..1400 {
        h.cache.set(&format!("key:{i}"), b"y", None).await?;
    }
    let entries = h.service.stats().await.entries.unwrap_or_default();
    assert!(entries <= 100, "{entries} entries under max_items 100");
    h.finish().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_during_a_max_items_rebuild_are_neither_lost_nor_stale() -> anyhow::Result<()> {
    let h = support::memory(json!({ "max_items": 20000 })).await?;
    // Cold filler, so the copy takes a while; it ranks below the writer's keys (read once).
    let filler: Vec<(String, Vec<u8>)> = (0..8000)
        .map(|i| (format!("filler:{i}"), vec![0; 16]))
        .collect();
    let refs: Vec<(&str, &[u8])> = filler
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_slice()))
        .collect();
    h.cache.set_many(&refs, None).await?;

    let cache = Arc::clone(&h.cache);
    let writer = tokio::spawn(async move {
        for i in 0..2000 {
            let key = format!("w:{i}");
            cache.set(&key, b"first", None).await?;
            cache
                .set(&key, format!("second:{i}").as_bytes(), None)
                .await?;
            cache.get(&key).await?;
            if i % 100 == 0 {
                tokio::task::yield_now().await;
            }
        }
        anyhow::Ok(())
    });
    tokio::time::sleep(Duration::from_millis(5)).await;
    let outcome = h.app.set_override("cache.max_items", json!(10000)).await?;
    assert_eq!(outcome.status, ReloadStatus::Applied, "{outcome:?}");
    writer.await??;

    for i in 0..2000 {
        let value = h.cache.get(&format!("w:{i}")).await?;
        assert_eq!(
            value,
            Some(format!("second:{i}").into_bytes()),
            "w:{i} lost or stale after the rebuild"
        );
    }
    assert_eq!(h.service.stats().await.max_items, Some(10000));
    h.finish().await
}

#[tokio::test]
async fn a_reload_that_fails_in_a_later_module_never_publishes_the_rebuilt_cache()
-> anyhow::Result<()> {
    let mut h = support::start_with(json!({ "cache": { "max_items": 1000 } }), None, true).await?;
    h.cache.set("kept", b"1", None).await?;
    let store = h.app.config();
    let mut overrides = store.overrides();
    overrides.insert("cache.max_items".to_owned(), json!(10));
    overrides.insert("conformance_tripwire.fail".to_owned(), json!(true));
    store.set_overrides(overrides);
    let outcome = h.app.reload().await?;
    assert_eq!(outcome.status, ReloadStatus::Failed, "{outcome:?}");
    assert_eq!(
        outcome.failed_module.as_deref(),
        Some(modular_testkit::conformance::TRIPWIRE)
    );
    assert_eq!(outcome.aborted, vec!["cache".to_owned()]);
    assert!(outcome.rolled_back.is_empty(), "{outcome:?}");
    assert!(outcome.rollback_errors.is_empty(), "{outcome:?}");

    assert_eq!(
        h.service.stats().await.max_items,
        Some(1000),
        "the running cache kept its bound"
    );
    assert_eq!(h.cache.get("kept").await?.as_deref(), Some(&b"1"[..]));
    assert!(
        h.events_of("engine.reloaded").is_empty(),
        "nothing was committed"
    );
    assert_eq!(h.events_of("reload.aborted").len(), 1);
    // The write gate opened again with the abort: writes go on.
    h.cache.set("after", b"2", None).await?;
    assert_eq!(h.cache.get("after").await?.as_deref(), Some(&b"2"[..]));
    h.finish().await
}

#[tokio::test]
async fn under_apply_dynamic_a_static_change_waits_for_a_restart_while_dynamic_ones_apply()
-> anyhow::Result<()> {
    use modular_cache::{CacheEngine, CacheModule, CacheService};
    use modular_core::Application;
    use modular_core::reload::StaticPolicy;

    let mut app = Application::builder()
        .env_prefix(None)
        .config_defaults(json!({ "cache": { "default_ttl": "1h" } }))
        .module(CacheModule::new())
        .with_reload_options(modular_core::reload::ReloadOptions {
            static_policy: StaticPolicy::ApplyDynamic,
            ..support::quiet_reload()
        })
        .handle_signals(false)
        .build()
        .await?;
    app.start().await?;
    let service = app.services().require::<CacheService>()?;
    let store = app.config();
    let mut overrides = store.overrides();
    overrides.insert("cache.engine".to_owned(), json!("redis"));
    overrides.insert("cache.redis.key_prefix".to_owned(), json!("elsewhere:"));
    overrides.insert("cache.default_ttl".to_owned(), json!("10s"));
    store.set_overrides(overrides);
    let outcome = app.reload().await?;
    assert_eq!(outcome.status, ReloadStatus::Applied, "{outcome:?}");
    assert!(
        outcome.pending_restart.contains(&"cache.engine".to_owned()),
        "{outcome:?}"
    );
    assert_eq!(
        service.engine(),
        CacheEngine::Memory,
        "the engine waits for a restart"
    );
    assert_eq!(service.default_ttl(), Duration::from_secs(10));
    app.stop().await?;
    Ok(())
}

#[tokio::test]
async fn a_reload_of_health_timeout_and_optional_updates_the_provider_registration_live()
-> anyhow::Result<()> {
    let h = support::memory(json!({})).await?;
    let health = Arc::clone(h.app.health().expect("aggregator"));
    let before = health.provider_options("cache").expect("cache provider");
    assert!(!before.optional);
    let outcome = h
        .app
        .set_overrides(
            [
                ("cache.health.timeout".to_owned(), json!("750ms")),
                ("cache.health.optional".to_owned(), json!(true)),
            ]
            .into(),
        )
        .await?;
    assert_eq!(outcome.status, ReloadStatus::Applied, "{outcome:?}");
    let after = health.provider_options("cache").expect("cache provider");
    assert!(after.optional);
    // The registration keeps the module's margin over its own PING deadline.
    assert_eq!(
        after.timeout - before.timeout,
        Duration::from_millis(750) - Duration::from_millis(150)
    );
    let answer = health.force_refresh().await;
    assert!(
        answer
            .reports
            .iter()
            .filter(|r| r.module == "cache")
            .all(|r| r.optional),
        "{:?}",
        answer.reports
    );
    h.finish().await
}
