//! The module conformance kit (modular-testkit): the memory engine, and the Redis engine behind
//! a fault proxy.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::sync::Arc;

use modular_cache::{Cache, CacheModule, CacheService};
use modular_core::health::HealthAggregator;
use modular_testkit::Service;
use modular_testkit::conformance::{Conformance, ProbeContext, probe};
use serde_json::json;

fn service(ctx: &ProbeContext) -> Arc<CacheService> {
    ctx.services().get::<CacheService>().expect("cache service")
}

fn ttl_is(secs: u64) -> modular_testkit::conformance::Probe {
    probe(move |ctx| async move {
        let ttl = service(&ctx).default_ttl();
        (ttl.as_secs() == secs)
            .then_some(())
            .ok_or(format!("default_ttl is {ttl:?}"))
    })
}

#[tokio::test]
async fn the_memory_cache_passes_the_conformance_kit() {
    Conformance::new("cache", |b| b.module(CacheModule::new()))
        .valid(json!({ "cache": { "engine": "memory", "max_items": 1000, "default_ttl": "1h" } }))
        .invalid("cache.max_items", json!("lots"))
        .invalid("cache.default_ttl", json!("soon"))
        .change(
            "default_ttl",
            [("cache.default_ttl", json!("90s"))],
            ttl_is(90),
        )
        .change(
            "max_items",
            [("cache.max_items", json!(50))],
            probe(|ctx| async move {
                let stats = service(&ctx).stats().await;
                (stats.max_items == Some(50))
                    .then_some(())
                    .ok_or(format!("max_items is {:?}", stats.max_items))
            }),
        )
        .without_fault("the memory engine is in-process: there is no backend to lose")
        .run()
        .await
        .assert_passed();
}

async fn address(ctx: &ProbeContext) -> Option<String> {
    let health = ctx.services().get::<HealthAggregator>()?;
    let answer = health.force_refresh().await;
    answer
        .reports
        .iter()
        .find(|r| r.module == "cache")
        .and_then(|r| r.details.get("address"))
        .and_then(|a| a.as_str().map(str::to_owned))
}

/// The live connection (the running engine's, as its health report names it) goes to `expected`.
fn address_is(expected: String) -> modular_testkit::conformance::Probe {
    probe(move |ctx| {
        let expected = expected.clone();
        async move {
            let seen = address(&ctx).await;
            (seen.as_deref() == Some(expected.as_str()))
                .then_some(())
                .ok_or(format!("address {seen:?}"))
        }
    })
}

#[tokio::test]
async fn the_redis_cache_passes_the_conformance_kit() -> anyhow::Result<()> {
    let Some(url) = modular_testkit::service(Service::Redis) else {
        return Ok(());
    };
    let (proxy, proxied) = support::redis_proxy(&url).await?;
    let proxy = Arc::new(proxy);
    let slow = Arc::clone(&proxy);
    let proxied = format!("{}/0", proxied.trim_end_matches('/'));
    let direct = format!("{}/0", url.trim_end_matches('/'));
    let (section, _prefix) = support::redis_section(
        "conformance",
        &proxied,
        json!({ "redis": { "connect_timeout": "1s", "command_timeout": "1s" } }),
    );
    let proxy_addr = proxy.addr().to_string();
    let direct_addr = proxy.upstream().to_string();
    Conformance::new("cache", |b| b.module(CacheModule::new()))
        .valid(json!({ "cache": section }))
        .invalid("cache.redis.connect_timeout", json!("whenever"))
        .change(
            "default_ttl",
            [("cache.default_ttl", json!("90s"))],
            ttl_is(90),
        )
        .change(
            "redis.url (directly)",
            [("cache.redis.url", json!(direct))],
            address_is(direct_addr),
        )
        .change(
            "redis.url (back through the proxy)",
            [("cache.redis.url", json!(proxied))],
            address_is(proxy_addr),
        )
        .change(
            "redis.command_timeout",
            [("cache.redis.command_timeout", json!("100ms"))],
            probe(move |ctx| {
                let slow = Arc::clone(&slow);
                async move {
                    // A 300 ms round trip: cut by the new timeout, served under the old 1 s.
                    slow.set_latency(std::time::Duration::from_millis(300));
                    let result = service(&ctx).get("conformance:probe").await;
                    slow.set_latency(std::time::Duration::ZERO);
                    match result {
                        Err(error) => error
                            .to_string()
                            .to_lowercase()
                            .contains("time")
                            .then_some(())
                            .ok_or(format!("failed otherwise: {error}")),
                        Ok(_) => Err("answered within the old timeout".to_owned()),
                    }
                }
            }),
        )
        .fault(proxy)
        .secret(direct)
        .secret(proxied)
        .run()
        .await
        .assert_passed();
    Ok(())
}
