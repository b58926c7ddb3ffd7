//! The at-most-once topics of the broker engines, against the real servers: NATS
//! `core_topics` (core NATS subjects, never stored in the JetStream stream) and MQTT
//! `qos0_topics` (QoS 0, no `PUBACK` awaited), each switched on by a reload too.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use cloudevents::AttributesReader as _;
use modular_core::ReloadStatus;
use modular_eventbus::{EventbusError, Nack};
use modular_testkit::Service;
use serde_json::json;
use support::{collector, mqtt_engine, nats_engine, next, start, unique};

const SOON: Duration = Duration::from_secs(10);

/// The NATS section for `test` with `core_topics`, and the JetStream stream it uses.
fn nats_section(url: &str, test: &str, core: &[&str]) -> (serde_json::Value, String) {
    let mut engine = nats_engine(url, &unique(test));
    engine["core_topics"] = json!(core);
    let prefix = engine["prefix"].as_str().unwrap().to_owned();
    let stream = prefix
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_uppercase()
            } else {
                '_'
            }
        })
        .collect();
    (json!({ "engines": { "n": engine } }), stream)
}

/// How many messages the JetStream stream `name` holds, read with a client of its own.
async fn stream_messages(url: &str, name: &str) -> u64 {
    let client = async_nats::connect(url).await.unwrap();
    let js = async_nats::jetstream::new(client);
    let mut stream = js.get_stream(name).await.unwrap();
    stream.info().await.unwrap().state.messages
}

#[tokio::test]
async fn a_core_nats_topic_round_trips_and_never_lands_in_the_stream() {
    let Some(url) = modular_testkit::service(Service::Nats) else {
        return;
    };
    let (section, stream) = nats_section(&url, "core-rt", &["metrics.*", "presence.>"]);
    let h = start(section).await.unwrap();
    let (fan, mut fan_rx) = collector();
    let _f = h.bus.subscribe("metrics.*", fan).await.unwrap();
    let (all, mut all_rx) = collector();
    // Overlaps core and JetStream topics: reads from both.
    let _a = h.bus.subscribe(">", all).await.unwrap();
    let before = stream_messages(&url, &stream).await;
    let sent = h
        .bus
        .publish_data("metrics.cpu", "com.example.cpu", &json!({ "load": 0.5 }))
        .await
        .unwrap();
    let got = next(&mut fan_rx, SOON).await;
    assert_eq!(got.topic, "metrics.cpu");
    assert_eq!(got.event.id(), sent.id());
    assert_eq!(got.event.ty(), "com.example.cpu");
    h.bus
        .publish_data("presence.eu.alice", "t", &1)
        .await
        .unwrap();
    assert_eq!(
        stream_messages(&url, &stream).await,
        before,
        "core topics skip JetStream"
    );
    // A JetStream topic on the same engine is stored: the count above can move.
    h.bus.publish_data("orders.created", "t", &2).await.unwrap();
    assert_eq!(stream_messages(&url, &stream).await, before + 1);
    let mut topics = HashSet::new();
    while topics.len() < 3 {
        topics.insert(next(&mut all_rx, SOON).await.topic);
    }
    assert_eq!(
        topics,
        HashSet::from(["metrics.cpu", "presence.eu.alice", "orders.created"].map(String::from))
    );
    h.stop().await;
}

#[tokio::test]
async fn a_core_nats_queue_group_splits_and_fan_out_gets_everything() {
    let Some(url) = modular_testkit::service(Service::Nats) else {
        return;
    };
    let (section, _) = nats_section(&url, "core-group", &["metrics.>"]);
    let h = start(section).await.unwrap();
    let per = support::split_between_two_members(&h, "metrics.*", "metrics.run", 50, SOON).await;
    assert!(
        per[0] > 0 && per[1] > 0,
        "both queue members got events: {per:?}"
    );
    h.stop().await;
}

#[tokio::test]
async fn a_core_nats_publish_to_a_cut_server_is_an_error() {
    let Some(url) = modular_testkit::service(Service::Nats) else {
        return;
    };
    let (proxy, proxied) = support::proxy(&url).await.unwrap();
    let (section, _) = nats_section(&proxied, "core-cut", &["metrics.*"]);
    let h = start(section).await.unwrap();
    h.bus.publish_data("metrics.cpu", "t", &0).await.unwrap();
    proxy.cut();
    let deadline = tokio::time::Instant::now() + SOON;
    let error = loop {
        // The client learns of the cut at its next read; until then a publish may still pass.
        match h.bus.publish_data("metrics.cpu", "t", &1).await {
            Err(error) => break error,
            Ok(_) if tokio::time::Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            Ok(_) => panic!("core publishes kept succeeding with the server cut"),
        }
    };
    assert!(
        matches!(
            error,
            EventbusError::Publish { .. } | EventbusError::Timeout { .. }
        ),
        "{error:?}"
    );
    proxy.restore();
    h.stop().await;
}

#[tokio::test]
async fn a_reload_adding_a_core_pattern_moves_the_topic_off_jetstream() {
    let Some(url) = modular_testkit::service(Service::Nats) else {
        return;
    };
    let (section, stream) = nats_section(&url, "core-reload", &[]);
    let h = start(section).await.unwrap();
    let (sub, mut rx) = collector();
    let _s = h
        .bus
        .subscribe_group("gauges.*", "readers", sub)
        .await
        .unwrap();
    let before = stream_messages(&url, &stream).await;
    let first = h.bus.publish_data("gauges.a", "t", &1).await.unwrap();
    assert_eq!(next(&mut rx, SOON).await.event.id(), first.id());
    assert_eq!(
        stream_messages(&url, &stream).await,
        before + 1,
        "JetStream before the reload"
    );
    let outcome = h
        .app
        .set_override("eventbus.engines.n.core_topics", json!(["gauges.*"]))
        .await
        .unwrap();
    assert_eq!(outcome.status, ReloadStatus::Applied, "{outcome:?}");
    let second = h.bus.publish_data("gauges.b", "t", &2).await.unwrap();
    let got = next(&mut rx, SOON).await;
    assert_eq!(got.event.id(), second.id());
    assert_eq!(got.topic, "gauges.b");
    assert_eq!(
        stream_messages(&url, &stream).await,
        before + 1,
        "core NATS after the reload: the stream did not grow"
    );
    h.stop().await;
}

#[tokio::test]
async fn an_mqtt_qos0_topic_does_not_wait_for_the_puback_and_a_reload_switches_it() {
    let Some(url) = modular_testkit::service(Service::Mqtt) else {
        return;
    };
    let (proxy, proxied) = support::proxy(&url).await.unwrap();
    let prefix = unique("qos0");
    let h = start(json!({ "engines": { "m": mqtt_engine(&proxied, &prefix) } }))
        .await
        .unwrap();
    let (sub, mut rx) = collector();
    let _s = h.bus.subscribe("gauge.*", sub).await.unwrap();
    // Every chunk through the proxy now takes longer than `publish_timeout` (1 s) each way:
    // a QoS 1 publish cannot see its PUBACK in time.
    proxy.set_latency(Duration::from_secs(3));
    let error = h.bus.publish_data("gauge.x", "t", &0).await.unwrap_err();
    assert!(
        matches!(error, EventbusError::Timeout { .. }),
        "QoS 1 before the reload: {error:?}"
    );
    proxy.set_latency(Duration::ZERO);
    let outcome = h
        .app
        .set_override("eventbus.engines.m.qos0_topics", json!(["gauge.*"]))
        .await
        .unwrap();
    assert_eq!(outcome.status, ReloadStatus::Applied, "{outcome:?}");
    // Open the new publishing connection while the link is fast.
    h.bus.publish_data("gauge.warm", "t", &1).await.unwrap();
    proxy.set_latency(Duration::from_secs(3));
    let sent = h
        .bus
        .publish_data("gauge.x", "t", &2)
        .await
        .expect("a QoS 0 publish returns once sent, without a PUBACK");
    let error = h.bus.publish_data("other.x", "t", &3).await.unwrap_err();
    assert!(
        matches!(error, EventbusError::Timeout { .. }),
        "other topics stay QoS 1: {error:?}"
    );
    proxy.set_latency(Duration::ZERO);
    // The slow QoS 0 copy still arrives (the subscription moved to the new engine, QoS 0).
    let deadline = tokio::time::Instant::now() + SOON;
    loop {
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        let got = next(&mut rx, left).await;
        if got.event.id() == sent.id() {
            break;
        }
    }
    h.stop().await;
}

#[tokio::test]
async fn a_failing_handler_on_a_core_nats_topic_is_retried_in_process_then_dead_lettered() {
    let Some(url) = modular_testkit::service(Service::Nats) else {
        return;
    };
    let (mut section, stream) = nats_section(&url, "core-dlq", &["pay.*"]);
    section["delivery"] =
        json!({ "max_attempts": 3, "initial_backoff": "10ms", "max_backoff": "20ms" });
    let h = start(section).await.unwrap();
    let attempts = Arc::new(AtomicU32::new(0));
    let seen = Arc::clone(&attempts);
    let _sub = h
        .bus
        .subscribe_group("pay.*", "billing", move |_d| {
            seen.fetch_add(1, Ordering::SeqCst);
            async { Err(Nack::retry("declined")) }
        })
        .await
        .unwrap();
    let (dead, mut dead_rx) = collector();
    // The dead-letter topic is not a core one: it goes through JetStream.
    let _dlq = h.bus.subscribe("eventbus.dead_letter", dead).await.unwrap();
    let before = stream_messages(&url, &stream).await;
    let sent = h.bus.publish_data("pay.charge", "t", &1).await.unwrap();
    let got = next(&mut dead_rx, SOON).await;
    assert_eq!(got.event.id(), sent.id());
    assert_eq!(attempts.load(Ordering::SeqCst), 3);
    assert_eq!(
        stream_messages(&url, &stream).await,
        before + 1,
        "only the dead-lettered copy is stored"
    );
    // No broker redelivery follows: the server never hands the core event out again.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(attempts.load(Ordering::SeqCst), 3);
    h.stop().await;
}

#[tokio::test]
async fn binary_mode_works_on_core_nats_topics() {
    use cloudevents::AttributesWriter as _;
    let Some(url) = modular_testkit::service(Service::Nats) else {
        return;
    };
    let (mut section, _) = nats_section(&url, "core-binary", &["bin.*"]);
    section["engines"]["n"]["mode"] = json!("binary");
    let h = start(section).await.unwrap();
    let (handler, mut rx) = collector();
    let _sub = h.bus.subscribe("bin.*", handler).await.unwrap();
    let mut event =
        modular_eventbus::wrap("com.example.binary.sent", "/tests/binary", &json!({"n": 1}))
            .unwrap();
    event.set_subject(Some("order-7"));
    event.set_extension("tenant", "acme");
    h.bus.publish("bin.made", event.clone()).await.unwrap();
    let got = next(&mut rx, SOON).await;
    assert_eq!(got.topic, "bin.made");
    assert_eq!(got.event, event);
    h.stop().await;
}
