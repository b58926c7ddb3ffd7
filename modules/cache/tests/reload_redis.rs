//! Reloading the Redis engine against the real server: `default_ttl`, the URL and the
//! timeouts change live behaviour; an unreachable URL fails and leaves the old connection
//! serving; a failure elsewhere reconnects the cache to its previous URL.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::time::Duration;

use modular_cache::CacheError;
use modular_core::ReloadStatus;
use modular_core::health::HealthStatus;
use modular_testkit::Service;
use serde_json::json;

#[tokio::test]
async fn a_default_ttl_reload_applies_to_entries_written_after_it() -> anyhow::Result<()> {
    let Some(h) = support::redis("default_ttl_reload", json!({ "default_ttl": "1h" })).await?
    else {
        return Ok(());
    };
    let url = modular_testkit::service_url(Service::Redis).unwrap();
    let mut raw = support::raw_redis(&url).await?;
    h.cache.set("before", b"1", None).await?;
    let outcome = h
        .app
        .set_override("cache.default_ttl", json!("20s"))
        .await?;
    assert_eq!(outcome.status, ReloadStatus::Applied, "{outcome:?}");
    h.cache.set("after", b"2", None).await?;
    let before: i64 = redis::cmd("PTTL")
        .arg(format!("{}before", h.prefix))
        .query_async(&mut raw)
        .await?;
    let after: i64 = redis::cmd("PTTL")
        .arg(format!("{}after", h.prefix))
        .query_async(&mut raw)
        .await?;
    assert!(
        before > 3_500_000,
        "the earlier entry keeps its 1h, pttl {before}"
    );
    assert!(
        (15_000..=20_000).contains(&after),
        "the later entry has the new 20s, pttl {after}"
    );
    h.finish().await
}

#[tokio::test]
async fn a_url_reload_moves_traffic_to_the_new_connection() -> anyhow::Result<()> {
    let Some(mut h) = support::redis("url_reload", json!({})).await? else {
        return Ok(());
    };
    let url = modular_testkit::service_url(Service::Redis).unwrap();
    let (proxy, proxied) = support::redis_proxy(&url).await?;
    h.cache.set("k", b"v", None).await?;

    let outcome = h
        .app
        .set_override("cache.redis.url", json!(proxied))
        .await?;
    assert_eq!(outcome.status, ReloadStatus::Applied, "{outcome:?}");
    let address = proxy.addr().to_string();
    h.wait_for_event("engine.connected", Duration::from_secs(1), |d| {
        d["reason"] == "reload" && d["address"] == address.as_str()
    })
    .await;
    let reloaded = h
        .wait_for_event("engine.reloaded", Duration::from_secs(1), |_| true)
        .await;
    assert_eq!(reloaded["fields"], json!(["redis.url"]));
    assert_eq!(reloaded["reconnected"], json!(true));
    assert_eq!(
        h.cache.get("k").await?.as_deref(),
        Some(&b"v"[..]),
        "same server, same data"
    );
    assert_eq!(
        h.cache_report().await.details.get("address"),
        Some(&json!(address))
    );

    // The traffic really goes through the new URL: cutting the proxy cuts the cache.
    proxy.cut();
    let error = h.cache.get("k").await.expect_err("the proxy is cut");
    assert!(error.is_connection_error(), "{error:?}");
    proxy.restore();
    h.wait_for_health(HealthStatus::Healthy, Duration::from_secs(15))
        .await;
    h.finish().await
}

#[tokio::test]
async fn a_reload_to_an_unreachable_url_fails_and_the_old_connection_keeps_serving()
-> anyhow::Result<()> {
    let Some(mut h) = support::redis(
        "unreachable_reload",
        json!({ "redis": { "connect_timeout": "500ms" } }),
    )
    .await?
    else {
        return Ok(());
    };
    let before = h.cache_report().await.details.get("address").cloned();
    let version = h.app.config().version();
    let refused = modular_testkit::RefusedPort::new();
    let port = refused.port();
    let outcome = h
        .app
        .set_override(
            "cache.redis.url",
            json!(format!("redis://127.0.0.1:{port}")),
        )
        .await?;

    assert_eq!(outcome.status, ReloadStatus::Failed, "{outcome:?}");
    assert_eq!(outcome.failed_module.as_deref(), Some("cache"));
    let error = outcome.error.clone().unwrap_or_default();
    assert!(
        error.contains(&format!(
            "cannot connect to redis at 127.0.0.1:{port} within 500ms"
        )),
        "{error}"
    );
    assert_eq!(
        h.app.config().version(),
        version,
        "a failed reload commits nothing"
    );

    h.cache.set("still", b"works", None).await?;
    assert_eq!(h.cache.get("still").await?.as_deref(), Some(&b"works"[..]));
    let report = h.cache_report().await;
    assert_eq!(report.status, HealthStatus::Healthy, "{report:?}");
    assert_eq!(
        report.details.get("address").cloned(),
        before,
        "still on the old server"
    );
    assert!(
        h.events_of("engine.reloaded").is_empty(),
        "nothing was reloaded"
    );
    assert!(
        h.events_of("engine.disconnected").is_empty(),
        "the running connection never dropped"
    );
    h.finish().await
}

#[tokio::test]
async fn a_reload_that_fails_in_a_later_module_keeps_the_cache_on_its_running_connection()
-> anyhow::Result<()> {
    let Some(url) = modular_testkit::service(Service::Redis) else {
        return Ok(());
    };
    let (proxy, proxied) = support::redis_proxy(&url).await?;
    let (section, prefix) = support::redis_section("rollback_url", &url, json!({}));
    let mut h = support::start_with(json!({ "cache": section }), None, true).await?;
    h.prefix = prefix;
    let original = h.cache_report().await.details.get("address").cloned();
    let generation = h.service.engine_generation();

    let store = h.app.config();
    let mut overrides = store.overrides();
    overrides.insert("cache.redis.url".to_owned(), json!(proxied));
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
    assert_eq!(
        h.service.engine_generation(),
        generation,
        "the live engine is untouched"
    );

    assert_eq!(
        h.cache_report().await.details.get("address").cloned(),
        original
    );
    // Back on the direct URL: the proxy no longer matters.
    proxy.cut();
    h.cache.set("direct", b"1", None).await?;
    assert_eq!(h.cache.get("direct").await?.as_deref(), Some(&b"1"[..]));
    let reasons: Vec<_> = h
        .events_of("engine.connected")
        .iter()
        .map(|d| d["reason"].clone())
        .collect();
    assert_eq!(
        reasons,
        vec![json!("start")],
        "the prepared connection was never announced: it never served"
    );
    assert_eq!(
        h.service.engine_generation(),
        generation,
        "same engine throughout"
    );
    h.finish().await
}

#[tokio::test]
async fn a_command_timeout_reload_applies_to_the_next_commands() -> anyhow::Result<()> {
    let Some(url) = modular_testkit::service(Service::Redis) else {
        return Ok(());
    };
    let (proxy, proxied) = support::redis_proxy(&url).await?;
    let (section, prefix) = support::redis_section(
        "command_timeout_reload",
        &proxied,
        json!({ "redis": { "command_timeout": "5s" } }),
    );
    let mut h = support::start(section).await?;
    h.prefix = prefix;
    h.cache.set("k", b"v", None).await?;

    // 150 ms each way: a round trip takes at least 300 ms, well within 5 s.
    proxy.set_latency(Duration::from_millis(150));
    assert_eq!(h.cache.get("k").await?.as_deref(), Some(&b"v"[..]));

    proxy.set_latency(Duration::ZERO);
    let outcome = h
        .app
        .set_override("cache.redis.command_timeout", json!("100ms"))
        .await?;
    assert_eq!(outcome.status, ReloadStatus::Applied, "{outcome:?}");
    proxy.set_latency(Duration::from_millis(150));
    let error = h
        .cache
        .get("k")
        .await
        .expect_err("300 ms round trip under a 100 ms timeout");
    assert!(
        matches!(error, CacheError::Timeout { operation: "get", timeout } if timeout == Duration::from_millis(100)),
        "{error:?}"
    );
    proxy.set_latency(Duration::ZERO);
    h.finish().await
}

#[tokio::test]
async fn a_max_items_change_on_the_redis_engine_is_refused_and_changes_nothing()
-> anyhow::Result<()> {
    let Some(mut h) = support::redis(
        "a_max_items_change_on_the_redis_engine_is_refused_and_changes_nothing",
        json!({}),
    )
    .await?
    else {
        return Ok(());
    };
    let version = h.app.config().version();
    let outcome = h.app.set_override("cache.max_items", json!(5)).await?;
    assert_eq!(outcome.status, ReloadStatus::Failed, "{outcome:?}");
    let error = outcome.error.clone().unwrap_or_default();
    assert!(
        error.contains("cache.max_items cannot change on the redis engine")
            && error.contains("maxmemory"),
        "{error}"
    );
    assert_eq!(h.app.config().version(), version, "nothing was committed");
    assert!(
        h.events_of("engine.reloaded").is_empty(),
        "nothing was reloaded"
    );
    h.finish().await
}

/// `redis.connect_timeout` bounds the running engine's reconnects, not only the reload's own
/// connection: the same outage and the same slow link are survived before the reload and not
/// after it.
///
/// Real time, not paused: the link is a real TCP proxy in front of the real server, and paused
/// time would advance past its delays while the runtime idles on real sockets.
#[tokio::test]
async fn a_connect_timeout_reload_bounds_the_reconnects_of_the_running_engine() -> anyhow::Result<()>
{
    let Some(url) = modular_testkit::service(Service::Redis) else {
        return Ok(());
    };
    let (proxy, proxied) = support::redis_proxy(&url).await?;
    let (section, prefix) = support::redis_section(
        "connect_timeout_reload",
        &proxied,
        json!({ "redis": { "connect_timeout": "5s", "command_timeout": "2s" } }),
    );
    let mut h = support::start(section).await?;
    h.prefix = prefix;
    h.cache.set("k", b"v", None).await?;
    // 300 ms each way: a new connection's set-up (its `CLIENT SETINFO` round trip) takes at
    // least 600 ms; one command round trip too, within the 2 s command timeout.
    let slow = Duration::from_millis(300);

    // Before: the connection drops and the link is slow; the reconnect fits in 5 s.
    proxy.set_latency(slow);
    proxy.cut();
    proxy.restore();
    let survived = support::eventually(Duration::from_secs(15), || async {
        h.cache.get("k").await.ok().flatten().as_deref() == Some(&b"v"[..])
    })
    .await;
    assert!(survived, "a slow reconnect under connect_timeout 5s failed");

    proxy.set_latency(Duration::ZERO);
    let outcome = h
        .app
        .set_override("cache.redis.connect_timeout", json!("200ms"))
        .await?;
    assert_eq!(outcome.status, ReloadStatus::Applied, "{outcome:?}");
    let reloaded = h
        .wait_for_event("engine.reloaded", Duration::from_secs(1), |_| true)
        .await;
    assert_eq!(reloaded["fields"], json!(["redis.connect_timeout"]));
    assert_eq!(reloaded["reconnected"], json!(true));
    assert_eq!(h.cache.get("k").await?.as_deref(), Some(&b"v"[..]));

    // After: the same drop on the same slow link; every reconnect attempt now gives up at
    // 200 ms, so no command gets through.
    proxy.set_latency(slow);
    proxy.cut();
    proxy.restore();
    for attempt in 0..3 {
        let result = h.cache.get("k").await;
        assert!(
            result.as_ref().is_err_and(CacheError::is_connection_error),
            "attempt {attempt}: a reconnect needing 600 ms got through under connect_timeout 200ms: {result:?}"
        );
    }

    // A fast link again: the next reconnect fits in 200 ms.
    proxy.set_latency(Duration::ZERO);
    h.wait_for_health(HealthStatus::Healthy, Duration::from_secs(20))
        .await;
    assert_eq!(h.cache.get("k").await?.as_deref(), Some(&b"v"[..]));
    h.finish().await
}
