//! The durable engines (NATS JetStream, Redis Streams, RabbitMQ and MQTT QoS 1) against the real servers, each test
//! once per engine: round trip, groups, wildcards, retries and dead letters, redelivery after
//! the ack wait / visibility timeout, and an outage through the fault proxy.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::collections::HashSet;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use cloudevents::AttributesReader as _;
use modular_core::health::HealthStatus;
use modular_eventbus::Nack;
use modular_testkit::Service;
use serde_json::json;
use support::{
    amqp_engine, collector, mqtt_engine, nats_engine, next, redis_engine, start, unique,
};

const SOON: Duration = Duration::from_secs(10);

/// A durable engine under test: its service, its key in `engines`, and its section.
#[derive(Clone, Copy)]
struct Durable {
    service: Service,
    key: &'static str,
    engine: fn(&str, &str) -> serde_json::Value,
}

impl Durable {
    /// The engine at `url` as the only one, under a prefix unique to `test`.
    fn section(self, url: &str, test: &str) -> serde_json::Value {
        self.section_with_prefix(url, &unique(test))
    }

    fn section_with_prefix(self, url: &str, prefix: &str) -> serde_json::Value {
        json!({ "engines": { self.key: (self.engine)(url, prefix) } })
    }
}

const NATS: Durable = Durable {
    service: Service::Nats,
    key: "js",
    engine: nats_engine,
};

const REDIS: Durable = Durable {
    service: Service::Redis,
    key: "streams",
    engine: redis_engine,
};

const AMQP: Durable = Durable {
    service: Service::Amqp,
    key: "rabbit",
    engine: amqp_engine,
};

const MQTT: Durable = Durable {
    service: Service::Mqtt,
    key: "mqtt",
    engine: mqtt_engine,
};

/// The tests in a module named after the engine: `<module>::<test>`.
macro_rules! on_engine {
    ($module:ident, $engine:ident, $($test:ident),* $(,)?) => {
        mod $module {
            $(#[tokio::test]
            async fn $test() {
                super::$test(super::$engine).await;
            })*
        }
    };
}

/// Each test once per durable engine: `nats::<test>`, `redis::<test>` and `amqp::<test>`.
macro_rules! per_engine {
    ($($test:ident),* $(,)?) => {
        on_engine!(nats, NATS, $($test),*);
        on_engine!(redis, REDIS, $($test),*);
        on_engine!(amqp, AMQP, $($test),*);
    };
}

per_engine!(
    a_round_trip_delivers_the_cloudevent,
    wildcards_match_by_token_and_pick_up_topics_created_later,
    a_consumer_group_splits_and_fan_out_gets_everything,
    a_failing_handler_is_retried_then_dead_lettered,
    an_unacknowledged_event_is_redelivered_after_the_visibility_timeout,
    an_outage_loses_no_event_and_health_recovers,
    binary_mode_carries_every_attribute_and_the_data,
);

// MQTT gives no visibility timeout (a stuck member keeps what it holds until its session
// ends), so the redelivery test does not apply; the rest hold as for the other engines.
on_engine!(
    mqtt,
    MQTT,
    a_round_trip_delivers_the_cloudevent,
    wildcards_match_by_token_and_pick_up_topics_created_later,
    a_consumer_group_splits_and_fan_out_gets_everything,
    a_failing_handler_is_retried_then_dead_lettered,
    an_outage_loses_no_event_and_health_recovers,
);

async fn a_round_trip_delivers_the_cloudevent(e: Durable) {
    let Some(url) = modular_testkit::service(e.service) else {
        return;
    };
    let h = start(e.section(&url, "rt")).await.unwrap();
    let (handler, mut rx) = collector();
    let _sub = h.bus.subscribe("orders.created", handler).await.unwrap();
    let sent = h
        .bus
        .publish_data(
            "orders.created",
            "com.example.order.created",
            &json!({"id": 1}),
        )
        .await
        .unwrap();
    let got = next(&mut rx, SOON).await;
    assert_eq!(got.event.id(), sent.id());
    assert_eq!(got.topic, "orders.created");
    h.stop().await;
}

async fn wildcards_match_by_token_and_pick_up_topics_created_later(e: Durable) {
    let Some(url) = modular_testkit::service(e.service) else {
        return;
    };
    let h = start(e.section(&url, "wild")).await.unwrap();
    let (handler, mut rx) = collector();
    let _sub = h.bus.subscribe("orders.>", handler).await.unwrap();
    h.bus
        .publish_data("orders.eu.created", "t", &1)
        .await
        .unwrap();
    h.bus
        .publish_data("invoices.created", "t", &2)
        .await
        .unwrap();
    assert_eq!(next(&mut rx, SOON).await.topic, "orders.eu.created");
    h.bus.publish_data("orders.us", "t", &3).await.unwrap();
    assert_eq!(next(&mut rx, SOON).await.topic, "orders.us");
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(rx.try_recv().is_err());
    h.stop().await;
}

async fn a_consumer_group_splits_and_fan_out_gets_everything(e: Durable) {
    let Some(url) = modular_testkit::service(e.service) else {
        return;
    };
    let h = start(e.section(&url, "group")).await.unwrap();
    h.bus.publish_data("jobs.run", "t", &0).await.unwrap(); // creates the stream
    support::split_between_two_members(&h, "jobs.*", "jobs.run", 50, SOON).await;
    h.stop().await;
}

async fn a_failing_handler_is_retried_then_dead_lettered(e: Durable) {
    let Some(url) = modular_testkit::service(e.service) else {
        return;
    };
    let mut s = e.section(&url, "dlq");
    s["delivery"] = json!({ "max_attempts": 3, "initial_backoff": "10ms", "max_backoff": "20ms" });
    let h = start(s).await.unwrap();
    h.bus
        .publish_data("eventbus.dead_letter", "t", &0)
        .await
        .unwrap();
    h.bus.publish_data("pay.charge", "t", &0).await.unwrap();
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
    let _dlq = h.bus.subscribe("eventbus.dead_letter", dead).await.unwrap();
    let sent = h.bus.publish_data("pay.charge", "t", &1).await.unwrap();
    let got = next(&mut dead_rx, SOON).await;
    assert_eq!(got.event.id(), sent.id());
    assert_eq!(attempts.load(Ordering::SeqCst), 3);
    h.stop().await;
}

async fn an_unacknowledged_event_is_redelivered_after_the_visibility_timeout(e: Durable) {
    let Some(url) = modular_testkit::service(e.service) else {
        return;
    };
    let prefix = unique("claim");
    let s = e.section_with_prefix(&url, &prefix);
    // The first member takes the event and never finishes (its handler hangs).
    let first = start(s.clone()).await.unwrap();
    first.bus.publish_data("work.item", "t", &0).await.unwrap();
    let (taken_tx, mut taken_rx) = tokio::sync::mpsc::unbounded_channel();
    let _stuck = first
        .bus
        .subscribe_group("work.*", "crew", move |d| {
            let _ = taken_tx.send(d.event.id().to_owned());
            futures::future::pending()
        })
        .await
        .unwrap();
    let sent = first.bus.publish_data("work.item", "t", &1).await.unwrap();
    let taken = tokio::time::timeout(SOON, taken_rx.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(taken, sent.id());
    // A second member of the group claims it once it has been idle for 1 s.
    let second = start(s).await.unwrap();
    let (handler, mut rx) = collector();
    let _sub = second
        .bus
        .subscribe_group("work.*", "crew", handler)
        .await
        .unwrap();
    let got = next(&mut rx, SOON).await;
    assert_eq!(got.event.id(), sent.id());
    second.stop().await;
    drop(first);
}

async fn an_outage_loses_no_event_and_health_recovers(e: Durable) {
    let Some(url) = modular_testkit::service(e.service) else {
        return;
    };
    let (proxy, proxied) = support::proxy(&url).await.unwrap();
    let mut s = e.section(&proxied, "outage");
    s["engines"][e.key]["publish_timeout"] = json!("300ms");
    let h = start(s).await.unwrap();
    h.bus.publish_data("load.tick", "t", &-1).await.unwrap();
    let delivered = Arc::new(Mutex::new(HashSet::new()));
    let seen = Arc::clone(&delivered);
    let _sub = h
        .bus
        .subscribe_group("load.*", "counter", move |d| {
            seen.lock().unwrap().insert(d.event.id().to_owned());
            async { Ok(()) }
        })
        .await
        .unwrap();
    let health = h.app.health().unwrap().clone();
    let mut connection_events =
        h.app
            .events()
            .subscribe(modular_core::events::EventFilter::prefix(
                "com.modular.eventbus.connection.",
            ));
    let mut accepted = Vec::new();
    let mut failed = 0;
    let mut went_unhealthy = false;
    let mut ticker = tokio::time::interval(Duration::from_millis(2));
    for i in 0..1000 {
        ticker.tick().await;
        if i == 300 {
            proxy.cut();
        }
        if i == 340 {
            let answer = health.force_refresh().await;
            let report = answer
                .reports
                .iter()
                .find(|r| r.module == "eventbus")
                .unwrap();
            went_unhealthy = report.status == HealthStatus::Unhealthy;
            proxy.restore();
        }
        match h.bus.publish_data("load.tick", "t", &i).await {
            Ok(event) => accepted.push(event.id().to_owned()),
            Err(_) => failed += 1,
        }
    }
    assert!(went_unhealthy, "health did not go unhealthy while cut");
    assert!(failed > 0, "the cut was not seen by any publish");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let lost = {
            let d = delivered.lock().unwrap();
            accepted.iter().filter(|id| !d.contains(*id)).count()
        };
        if lost == 0 {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "lost {lost} of {} accepted",
            accepted.len()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let mut healthy = false;
    for _ in 0..50 {
        let answer = health.force_refresh().await;
        if answer
            .reports
            .iter()
            .any(|r| r.module == "eventbus" && r.status == HealthStatus::Healthy)
        {
            healthy = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(healthy, "health did not come back");
    let types: Vec<String> = connection_events
        .drain()
        .iter()
        .map(|e| e.ty().to_owned())
        .collect();
    assert!(
        types
            .iter()
            .any(|t| t == "com.modular.eventbus.connection.lost"),
        "{types:?}"
    );
    assert!(
        types
            .iter()
            .any(|t| t == "com.modular.eventbus.connection.restored"),
        "{types:?}"
    );
    h.stop().await;
}

async fn binary_mode_carries_every_attribute_and_the_data(e: Durable) {
    use cloudevents::AttributesWriter as _;
    let Some(url) = modular_testkit::service(e.service) else {
        return;
    };
    let mut s = e.section(&url, "binary");
    s["engines"][e.key]["mode"] = json!("binary");
    let h = start(s).await.unwrap();
    let (handler, mut rx) = collector();
    let _sub = h.bus.subscribe("bin.*", handler).await.unwrap();
    let mut event = modular_eventbus::wrap(
        "com.example.binary.sent",
        "/tests/binary",
        &json!({"n": 1, "s": "x", "nested": [true, null]}),
    )
    .unwrap();
    event.set_subject(Some("order-7"));
    event.set_extension("tenant", "acme");
    h.bus.publish("bin.made", event.clone()).await.unwrap();
    let got = next(&mut rx, SOON).await;
    assert_eq!(got.topic, "bin.made");
    assert_eq!(got.event, event);
    h.stop().await;
}
