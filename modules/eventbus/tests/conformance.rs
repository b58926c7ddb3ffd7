//! The module conformance kit (modular-testkit): the memory engine, and the redis, nats, amqp
//! and mqtt engines behind a fault proxy.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::sync::Arc;
use std::time::Duration;

use modular_core::health::HealthAggregator;
use modular_eventbus::{EventbusModule, MessageBus};
use modular_testkit::Service;
use modular_testkit::conformance::{Conformance, Probe, ProbeContext, probe};
use serde_json::{Value, json};

fn bus(ctx: &ProbeContext) -> Arc<MessageBus> {
    ctx.services().get::<MessageBus>().expect("bus")
}

fn check(ok: bool, seen: impl std::fmt::Debug) -> Result<(), String> {
    ok.then_some(()).ok_or(format!("saw {seen:?}"))
}

async fn detail(ctx: &ProbeContext, engine: &str, key: &str) -> Option<Value> {
    let health = ctx.services().get::<HealthAggregator>()?;
    let answer = health.force_refresh().await;
    answer
        .reports
        .iter()
        .find(|r| r.module == "eventbus" && r.component == engine)
        .and_then(|r| r.details.get(key).cloned())
}

fn routed_to(topic: &'static str, engine: &'static str) -> Probe {
    probe(move |ctx| async move {
        let seen = bus(&ctx).engine_for(topic);
        check(seen.as_deref() == Some(engine), seen)
    })
}

/// Common dynamic fields, observed on the running bus.
fn delivery_changes(c: Conformance) -> Conformance {
    c.change(
        "delivery.concurrency",
        [("eventbus.delivery.concurrency", json!(3))],
        probe(|ctx| async move {
            let seen = bus(&ctx).concurrency();
            check(seen == 3, seen)
        }),
    )
    .change(
        "delivery.max_attempts",
        [("eventbus.delivery.max_attempts", json!(2))],
        probe(|ctx| async move {
            let seen = bus(&ctx).config().delivery.max_attempts;
            check(seen == 2, seen)
        }),
    )
    .change(
        "health.max_lag",
        [("eventbus.health.max_lag", json!(7))],
        probe(|ctx| async move {
            let seen = bus(&ctx).config().health.max_lag;
            check(seen == 7, seen)
        }),
    )
}

#[tokio::test]
async fn the_memory_bus_passes_the_conformance_kit() {
    let c = Conformance::new("eventbus", |b| b.module(EventbusModule::new()))
        .valid(json!({ "eventbus": { "engines": { "a": { "type": "memory" }, "b": { "type": "memory" } }, "default": "a" } }))
        .invalid("eventbus.engines.a.queue_size", json!("big"))
        .invalid("eventbus.routes", json!([{ "topics": ["x.>.y"], "engine": "a" }]))
        .change(
            "routes",
            [("eventbus.routes", json!([{ "topics": ["orders.*"], "engine": "b" }]))],
            routed_to("orders.created", "b"),
        )
        .change("default", [("eventbus.default", json!("b"))], routed_to("anything", "b"))
        .change(
            "engines.a.queue_size",
            [("eventbus.engines.a.queue_size", json!(8))],
            probe(|ctx| async move {
                let seen = detail(&ctx, "a", "queue_size").await;
                check(seen == Some(json!(8)), seen)
            }),
        );
    delivery_changes(c)
        .without_fault("the memory engine is in-process: there is no broker to lose")
        .run()
        .await
        .assert_passed();
}

#[tokio::test]
async fn the_redis_bus_passes_the_conformance_kit() -> anyhow::Result<()> {
    let Some(url) = modular_testkit::service(Service::Redis) else {
        return Ok(());
    };
    let (proxy, proxied) = support::proxy(&url).await?;
    let proxy = Arc::new(proxy);
    let prefix = support::unique("conformance");
    let proxied = format!("{}/0", proxied.trim_end_matches('/'));
    let direct = format!("{}/0", url.trim_end_matches('/'));
    let proxy_addr = proxy.addr().to_string();
    let direct_addr = proxy.upstream().to_string();
    let address_is = |expected: String| {
        probe(move |ctx| {
            let expected = expected.clone();
            async move {
                let seen = bus(&ctx).engine_address("streams");
                check(seen.as_deref() == Some(expected.as_str()), seen)
            }
        })
    };
    let c = Conformance::new("eventbus", |b| b.module(EventbusModule::new()))
        .valid(json!({ "eventbus": { "engines": { "streams": support::redis_engine(&proxied, &prefix) }, "health": { "timeout": "500ms" } } }))
        .invalid("eventbus.engines.streams.url", json!("redis://:pw@/0"))
        .change("engines.streams.url (directly)", [("eventbus.engines.streams.url", json!(direct))], address_is(direct_addr))
        .change("engines.streams.url (back through the proxy)", [("eventbus.engines.streams.url", json!(proxied))], address_is(proxy_addr))
        .change(
            "engines.streams.publish_timeout",
            [("eventbus.engines.streams.publish_timeout", json!("100ms"))],
            probe({
                let slow = Arc::clone(&proxy);
                move |ctx| {
                    let slow = Arc::clone(&slow);
                    async move {
                        slow.set_latency(Duration::from_millis(300));
                        let result = bus(&ctx).publish_data("conformance.probe", "t", &1).await;
                        slow.set_latency(Duration::ZERO);
                        match result {
                            Err(e) => check(e.to_string().contains("timed out"), e.to_string()),
                            Ok(_) => Err("published within the old 1s timeout".to_owned()),
                        }
                    }
                }
            }),
        );
    delivery_changes(c)
        .fault(proxy)
        .secret("redis://:pw@/0")
        .run()
        .await
        .assert_passed();
    Ok(())
}

#[tokio::test]
async fn the_nats_bus_passes_the_conformance_kit() -> anyhow::Result<()> {
    broker_conformance(Service::Nats, support::nats_engine, "nats://user:pw@:4222").await
}

#[tokio::test]
async fn the_amqp_bus_passes_the_conformance_kit() -> anyhow::Result<()> {
    broker_conformance(
        Service::Amqp,
        support::amqp_engine,
        "amqp://user:pw@:5672/%2f",
    )
    .await
}

#[tokio::test]
async fn the_mqtt_bus_passes_the_conformance_kit() -> anyhow::Result<()> {
    broker_conformance(Service::Mqtt, support::mqtt_engine, "mqtt://user:pw@:1883").await
}

/// The kit against one broker engine (named `js`) through a fault proxy: its URL moved to the
/// server and back, the delivery settings, the outage, and a URL with a password that must
/// never be echoed.
async fn broker_conformance(
    service: Service,
    engine: fn(&str, &str) -> Value,
    bad_url: &'static str,
) -> anyhow::Result<()> {
    let Some(url) = modular_testkit::service(service) else {
        return Ok(());
    };
    let (proxy, proxied) = support::proxy(&url).await?;
    let proxy = Arc::new(proxy);
    let prefix = support::unique("conformance");
    let proxy_addr = proxy.addr().to_string();
    let direct_addr = proxy.upstream().to_string();
    let address_is = |expected: String| {
        probe(move |ctx| {
            let expected = expected.clone();
            async move {
                let seen = bus(&ctx).engine_address("js");
                check(seen.as_deref() == Some(expected.as_str()), seen)
            }
        })
    };
    let c = Conformance::new("eventbus", |b| b.module(EventbusModule::new()))
        .valid(json!({ "eventbus": { "engines": { "js": engine(&proxied, &prefix) }, "health": { "timeout": "500ms" } } }))
        .invalid("eventbus.engines.js.url", json!(bad_url))
        .change("engines.js.url (directly)", [("eventbus.engines.js.url", json!(url))], address_is(direct_addr))
        .change("engines.js.url (back through the proxy)", [("eventbus.engines.js.url", json!(proxied))], address_is(proxy_addr));
    delivery_changes(c)
        .fault(proxy)
        .secret(bad_url)
        .run()
        .await
        .assert_passed();
    Ok(())
}
