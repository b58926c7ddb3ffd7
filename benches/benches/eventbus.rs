//! Event bus benchmarks (issue 16), each broker one beside the raw client doing the same work
//! in the same run:
//! - `eventbus/memory_publish_deliver`: one event published on the memory engine and received
//!   by a fan-out subscriber's handler (routing, queue, dispatcher, handler pool, ack).
//! - `eventbus/nats_publish` vs `eventbus/raw_nats_publish`: one JetStream publish awaited
//!   until the server's ack, through the bus (routing, CloudEvents JSON encoding, timeout) and
//!   through a plain async-nats JetStream context (the same event encoded the same way, the
//!   same subject and stream); skipped without `MODULAR_TEST_NATS_URL`.
//! - `eventbus/redis_publish` vs `eventbus/raw_redis_publish`: one `XADD` through the bus and
//!   through a redis-rs `ConnectionManager` (same key, same encoded event); skipped without
//!   `MODULAR_TEST_REDIS_URL`.
//! - `eventbus/amqp_publish` vs `eventbus/raw_amqp_publish`: one persistent publish to the
//!   topic exchange awaited until the publisher confirm, through the bus and through a plain
//!   lapin channel in confirm mode (same exchange, routing key and encoded event); skipped
//!   without `MODULAR_TEST_AMQP_URL`.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::sync::Arc;

use criterion::{Criterion, criterion_group, criterion_main};
use modular_benches::interleaved;
use modular_core::Secret;
use modular_eventbus::{EngineConfig, EngineType, EventbusConfig, MessageBus};

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

fn event() -> modular_eventbus::Event {
    modular_eventbus::wrap(
        "com.example.order.created",
        "/bench",
        &serde_json::json!({ "order": 42, "total": "19.99", "currency": "EUR" }),
    )
    .unwrap()
}

fn with_engine(name: &str, engine: EngineConfig) -> EventbusConfig {
    let mut config = EventbusConfig::default();
    config.engines.clear();
    config.engines.insert(name.to_owned(), engine);
    config
}

fn memory(c: &mut Criterion) {
    let rt = runtime();
    let bus = rt
        .block_on(MessageBus::new(&EventbusConfig::default()))
        .unwrap();
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel::<()>();
    let rx = Arc::new(tokio::sync::Mutex::new(rx));
    let _sub = rt
        .block_on(bus.subscribe("bench.*", move |_d| {
            let _ = tx.send(());
            std::future::ready(Ok(()))
        }))
        .unwrap();
    let event = event();
    let mut group = c.benchmark_group("eventbus");
    group.bench_function("memory_publish_deliver", |b| {
        b.to_async(&rt).iter(|| {
            let (bus, rx, event) = (&bus, Arc::clone(&rx), event.clone());
            async move {
                bus.publish("bench.run", event).await.unwrap();
                rx.lock().await.recv().await.unwrap();
            }
        });
    });
    group.finish();
}

fn nats(c: &mut Criterion) {
    let Some(url) = std::env::var("MODULAR_TEST_NATS_URL")
        .ok()
        .filter(|u| !u.is_empty())
    else {
        eprintln!("skipped: eventbus/nats_* (MODULAR_TEST_NATS_URL not set)");
        return;
    };
    let rt = runtime();
    let prefix = format!("bench_{}", std::process::id());
    let config = with_engine(
        "js",
        EngineConfig {
            kind: EngineType::Nats,
            url: Some(Secret::new(url.clone())),
            prefix: Some(prefix.clone()),
            ..EngineConfig::default()
        },
    );
    let bus = rt.block_on(MessageBus::new(&config)).unwrap();
    let raw = rt.block_on(async_nats::connect(url.as_str())).unwrap();
    let js = {
        let _runtime = rt.enter();
        async_nats::jetstream::new(raw)
    };
    let subject = format!("{prefix}.bench.run");
    let event = event();
    let ours = || {
        let (bus, event) = (&bus, event.clone());
        async move { bus.publish("bench.run", event).await.unwrap() }
    };
    let theirs = || {
        let (js, subject, event) = (&js, subject.clone(), event.clone());
        async move {
            let payload = serde_json::to_vec(&event).unwrap();
            js.publish(subject, payload.into())
                .await
                .unwrap()
                .await
                .unwrap();
        }
    };
    let mut group = c.benchmark_group("eventbus");
    group.bench_function("nats_publish", |b| b.to_async(&rt).iter(ours));
    group.bench_function("raw_nats_publish", |b| b.to_async(&rt).iter(theirs));
    group.finish();
    rt.block_on(interleaved(
        "eventbus/nats_publish",
        ("module", Box::new(move || Box::pin(ours()))),
        ("async-nats", Box::new(move || Box::pin(theirs()))),
        20,
        200,
    ));
}

fn redis(c: &mut Criterion) {
    let Some(url) = std::env::var("MODULAR_TEST_REDIS_URL")
        .ok()
        .filter(|u| !u.is_empty())
    else {
        eprintln!("skipped: eventbus/redis_* (MODULAR_TEST_REDIS_URL not set)");
        return;
    };
    let rt = runtime();
    let prefix = format!("modular-bench:eventbus:{}:", std::process::id());
    let config = with_engine(
        "streams",
        EngineConfig {
            kind: EngineType::Redis,
            url: Some(Secret::new(url.clone())),
            prefix: Some(prefix.clone()),
            ..EngineConfig::default()
        },
    );
    let bus = rt.block_on(MessageBus::new(&config)).unwrap();
    let client = redis::Client::open(url.as_str()).unwrap();
    let raw = rt
        .block_on(redis::aio::ConnectionManager::new(client))
        .unwrap();
    let key = format!("{prefix}bench.run");
    let event = event();
    rt.block_on(bus.publish("bench.run", event.clone()))
        .unwrap();
    let ours = || {
        let (bus, event) = (&bus, event.clone());
        async move { bus.publish("bench.run", event).await.unwrap() }
    };
    let theirs = || {
        let (mut raw, key, event) = (raw.clone(), key.clone(), event.clone());
        async move {
            let payload = serde_json::to_vec(&event).unwrap();
            let mut cmd = redis::cmd("XADD");
            cmd.arg(&key).arg("*").arg("event").arg(payload);
            let _: String = cmd.query_async(&mut raw).await.unwrap();
        }
    };
    let mut group = c.benchmark_group("eventbus");
    group.bench_function("redis_publish", |b| b.to_async(&rt).iter(ours));
    group.bench_function("raw_redis_publish", |b| b.to_async(&rt).iter(theirs));
    group.finish();
    rt.block_on(interleaved(
        "eventbus/redis_publish",
        ("module", Box::new(move || Box::pin(ours()))),
        ("redis-rs", Box::new(move || Box::pin(theirs()))),
        20,
        200,
    ));
    let mut raw = raw.clone();
    let _: Result<(), _> = rt.block_on(redis::cmd("DEL").arg(&key).query_async(&mut raw));
}

fn amqp(c: &mut Criterion) {
    use lapin::options::{BasicPublishOptions, ConfirmSelectOptions};
    let Some(url) = std::env::var("MODULAR_TEST_AMQP_URL")
        .ok()
        .filter(|u| !u.is_empty())
    else {
        eprintln!("skipped: eventbus/amqp_* (MODULAR_TEST_AMQP_URL not set)");
        return;
    };
    let rt = runtime();
    let prefix = format!("bench_{}", std::process::id());
    let config = with_engine(
        "rabbit",
        EngineConfig {
            kind: EngineType::Amqp,
            url: Some(Secret::new(url.clone())),
            prefix: Some(prefix.clone()),
            ..EngineConfig::default()
        },
    );
    // The bus declares the exchange; no queue is bound, so both sides publish to the same
    // exchange and RabbitMQ confirms without storing (the comparison is the client path).
    let bus = rt.block_on(MessageBus::new(&config)).unwrap();
    let channel = rt.block_on(async {
        let connection = lapin::Connection::connect(&url, lapin::ConnectionProperties::default())
            .await
            .unwrap();
        let channel = connection.create_channel().await.unwrap();
        channel
            .confirm_select(ConfirmSelectOptions::default())
            .await
            .unwrap();
        // Kept open for the run.
        std::mem::forget(connection);
        channel
    });
    let event = event();
    let ours = || {
        let (bus, event) = (&bus, event.clone());
        async move { bus.publish("bench.run", event).await.unwrap() }
    };
    let theirs = || {
        let (channel, exchange, event) = (&channel, prefix.clone(), event.clone());
        async move {
            let payload = serde_json::to_vec(&event).unwrap();
            let properties = lapin::BasicProperties::default()
                .with_delivery_mode(2)
                .with_content_type("application/cloudevents+json".into());
            let confirm = channel
                .basic_publish(
                    exchange.as_str().into(),
                    "bench.run".into(),
                    BasicPublishOptions::default(),
                    &payload,
                    properties,
                )
                .await
                .unwrap()
                .await
                .unwrap();
            assert!(confirm.is_ack());
        }
    };
    let mut group = c.benchmark_group("eventbus");
    group.bench_function("amqp_publish", |b| b.to_async(&rt).iter(ours));
    group.bench_function("raw_amqp_publish", |b| b.to_async(&rt).iter(theirs));
    group.finish();
    rt.block_on(interleaved(
        "eventbus/amqp_publish",
        ("module", Box::new(move || Box::pin(ours()))),
        ("lapin", Box::new(move || Box::pin(theirs()))),
        20,
        200,
    ));
}

criterion_group!(benches, memory, nats, redis, amqp);
criterion_main!(benches);
