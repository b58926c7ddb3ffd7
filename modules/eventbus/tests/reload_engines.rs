//! Reloads that change live behaviour: an engine URL while publishing (nothing fails, nothing
//! is lost), a route that moves a subscription to another engine, the handler pool size, and a
//! failed prepare that leaves the running engines alone.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::collections::HashSet;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use cloudevents::AttributesReader as _;
use modular_core::ReloadStatus;
use modular_testkit::Service;
use serde_json::json;
use support::{collector, next, redis_engine, start, unique};

#[tokio::test]
async fn a_redis_url_reload_while_publishing_fails_no_publish_and_loses_no_event() {
    url_reload_while_publishing(Service::Redis, redis_engine).await;
}

#[tokio::test]
async fn an_amqp_url_reload_while_publishing_fails_no_publish_and_loses_no_event() {
    url_reload_while_publishing(Service::Amqp, support::amqp_engine).await;
}

#[tokio::test]
async fn an_mqtt_url_reload_while_publishing_fails_no_publish_and_loses_no_event() {
    url_reload_while_publishing(Service::Mqtt, support::mqtt_engine).await;
}

/// Publishes steadily through a fault proxy, reloads the engine URL to the server itself,
/// and checks that no publish failed and every event was delivered.
async fn url_reload_while_publishing(
    service: Service,
    engine: fn(&str, &str) -> serde_json::Value,
) {
    let Some(url) = modular_testkit::service(service) else {
        return;
    };
    let (proxy, proxied) = support::proxy(&url).await.unwrap();
    let prefix = unique("reload-url");
    let h = start(json!({ "engines": { "streams": engine(&proxied, &prefix) } }))
        .await
        .unwrap();
    h.bus.publish_data("flow.tick", "t", &-1).await.unwrap();
    let delivered = Arc::new(Mutex::new(HashSet::new()));
    let seen = Arc::clone(&delivered);
    let _sub = h
        .bus
        .subscribe_group("flow.*", "readers", move |d| {
            seen.lock().unwrap().insert(d.event.id().to_owned());
            async { Ok(()) }
        })
        .await
        .unwrap();
    let publisher = {
        let bus = Arc::clone(&h.bus);
        tokio::spawn(async move {
            let mut ids = Vec::new();
            for i in 0..400 {
                let event = bus
                    .publish_data("flow.tick", "t", &i)
                    .await
                    .expect("no publish fails across the reload");
                ids.push(event.id().to_owned());
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
            ids
        })
    };
    tokio::time::sleep(Duration::from_millis(100)).await;
    let outcome = h
        .app
        .set_override("eventbus.engines.streams.url", json!(url))
        .await
        .unwrap();
    assert_eq!(outcome.status, ReloadStatus::Applied, "{outcome:?}");
    assert_eq!(
        h.bus.engine_address("streams"),
        Some(proxy.upstream().to_string())
    );
    let ids = publisher.await.unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    loop {
        let lost = {
            let d = delivered.lock().unwrap();
            ids.iter().filter(|id| !d.contains(*id)).count()
        };
        if lost == 0 {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "lost {lost}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // The old connection is no longer used: cutting the proxy changes nothing.
    proxy.cut();
    h.bus.publish_data("flow.tick", "t", &1000).await.unwrap();
    h.stop().await;
}

#[tokio::test]
async fn a_failed_engine_prepare_leaves_the_running_engine_serving() {
    let Some(url) = modular_testkit::service(Service::Redis) else {
        return;
    };
    let prefix = unique("reload-fail");
    let h = start(json!({ "engines": { "streams": redis_engine(&url, &prefix) } }))
        .await
        .unwrap();
    let before = h.bus.engine_address("streams");
    let refused = modular_testkit::RefusedPort::new();
    let outcome = h
        .app
        .set_override(
            "eventbus.engines.streams.url",
            json!(format!("redis://:hunter2@127.0.0.1:{}/0", refused.port())),
        )
        .await
        .unwrap();
    assert_eq!(outcome.status, ReloadStatus::Failed, "{outcome:?}");
    assert!(!format!("{outcome:?}").contains("hunter2"));
    assert_eq!(h.bus.engine_address("streams"), before);
    let (handler, mut rx) = collector();
    let _sub = h.bus.subscribe("still.*", handler).await.unwrap();
    h.bus.publish_data("still.here", "t", &1).await.unwrap();
    next(&mut rx, Duration::from_secs(10)).await;
    h.stop().await;
}

#[tokio::test]
async fn a_route_change_moves_publishes_and_subscriptions_to_the_new_engine() {
    let Some(url) = modular_testkit::service(Service::Redis) else {
        return;
    };
    let prefix = unique("reload-route");
    let h = start(json!({ "engines": { "fast": { "type": "memory" }, "streams": redis_engine(&url, &prefix) }, "default": "fast" })).await.unwrap();
    let (handler, mut rx) = collector();
    let sub = h
        .bus
        .subscribe_group("orders.*", "shop", handler)
        .await
        .unwrap();
    assert_eq!(sub.engine(), "fast");
    h.bus.publish_data("orders.a", "t", &1).await.unwrap();
    next(&mut rx, Duration::from_secs(5)).await;
    let outcome = h
        .app
        .set_override(
            "eventbus.routes",
            json!([{ "topics": ["orders.>"], "engine": "streams" }]),
        )
        .await
        .unwrap();
    assert_eq!(outcome.status, ReloadStatus::Applied, "{outcome:?}");
    assert_eq!(h.bus.engine_for("orders.a").as_deref(), Some("streams"));
    assert_eq!(sub.engine(), "streams");
    let sent = h.bus.publish_data("orders.a", "t", &2).await.unwrap();
    let got = next(&mut rx, Duration::from_secs(10)).await;
    assert_eq!(got.event.id(), sent.id());
    h.stop().await;
}

#[tokio::test]
async fn a_concurrency_reload_resizes_the_handler_pool() {
    let h = start(json!({ "delivery": { "concurrency": 1 } }))
        .await
        .unwrap();
    let running = Arc::new(AtomicUsize::new(0));
    let peak = Arc::new(AtomicUsize::new(0));
    let gate = Arc::new(tokio::sync::Semaphore::new(0));
    let (r, p, g) = (Arc::clone(&running), Arc::clone(&peak), Arc::clone(&gate));
    let _sub = h
        .bus
        .subscribe("work.*", move |_d| {
            let (r, p, g) = (Arc::clone(&r), Arc::clone(&p), Arc::clone(&g));
            async move {
                let now = r.fetch_add(1, Ordering::SeqCst) + 1;
                p.fetch_max(now, Ordering::SeqCst);
                let _permit = g.acquire().await;
                r.fetch_sub(1, Ordering::SeqCst);
                Ok(())
            }
        })
        .await
        .unwrap();
    for i in 0..8 {
        h.bus.publish_data("work.x", "t", &i).await.unwrap();
    }
    // One handler holds the gate; with concurrency 1 no second one may start.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while running.load(Ordering::SeqCst) == 0 {
        assert!(tokio::time::Instant::now() < deadline, "no handler started");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert_eq!(peak.load(Ordering::SeqCst), 1);
    let outcome = h
        .app
        .set_override("eventbus.delivery.concurrency", json!(4))
        .await
        .unwrap();
    assert_eq!(outcome.status, ReloadStatus::Applied, "{outcome:?}");
    // The pool grows to four: wait for it (bounded), not for a fixed time.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while peak.load(Ordering::SeqCst) < 4 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the pool never ran 4 handlers at once (peak {})",
            peak.load(Ordering::SeqCst)
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert_eq!(peak.load(Ordering::SeqCst), 4);
    gate.add_permits(100);
    h.stop().await;
}

/// The last entry of a Redis stream: its field names.
async fn last_entry_fields(conn: &mut redis::aio::MultiplexedConnection, key: &str) -> Vec<String> {
    use redis::AsyncCommands as _;
    let reply: redis::streams::StreamRangeReply =
        conn.xrevrange_count(key, "+", "-", 1).await.unwrap();
    let mut fields: Vec<String> = reply
        .ids
        .first()
        .map(|e| e.map.keys().cloned().collect())
        .unwrap_or_default();
    fields.sort();
    fields
}

#[tokio::test]
async fn a_redis_max_len_reload_trims_streams_from_the_next_publish() {
    use redis::AsyncCommands as _;
    let Some(url) = modular_testkit::service(Service::Redis) else {
        return;
    };
    let prefix = unique("reload-maxlen");
    let h = start(json!({ "engines": { "streams": redis_engine(&url, &prefix) } }))
        .await
        .unwrap();
    let mut conn = redis::Client::open(url.as_str())
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    let key = format!("{prefix}:trim.me");
    for i in 0..300 {
        h.bus.publish_data("trim.me", "t", &i).await.unwrap();
    }
    let untrimmed: u64 = conn.xlen(&key).await.unwrap();
    assert_eq!(untrimmed, 300, "without max_len every entry stays");
    let outcome = h
        .app
        .set_override("eventbus.engines.streams.max_len", json!(10))
        .await
        .unwrap();
    assert_eq!(outcome.status, ReloadStatus::Applied, "{outcome:?}");
    for i in 0..300 {
        h.bus.publish_data("trim.me", "t", &i).await.unwrap();
    }
    // `MAXLEN ~ 10` drops whole stream nodes (100 entries each by default), so the stream
    // keeps at least 10 and at most about one node more.
    let trimmed: u64 = conn.xlen(&key).await.unwrap();
    assert!(
        (10..=200).contains(&trimmed),
        "600 entries published, {trimmed} kept with max_len 10"
    );
    h.stop().await;
}

#[tokio::test]
async fn a_mode_reload_switches_the_wire_format_and_subscribers_read_both() {
    let Some(url) = modular_testkit::service(Service::Redis) else {
        return;
    };
    let prefix = unique("reload-mode");
    let h = start(json!({ "engines": { "streams": redis_engine(&url, &prefix) } }))
        .await
        .unwrap();
    let mut conn = redis::Client::open(url.as_str())
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    let key = format!("{prefix}:wire.fmt");
    h.bus.publish_data("wire.fmt", "t", &0).await.unwrap();
    let (handler, mut rx) = collector();
    let _sub = h
        .bus
        .subscribe_group("wire.*", "readers", handler)
        .await
        .unwrap();
    let structured = h.bus.publish_data("wire.fmt", "t", &1).await.unwrap();
    assert_eq!(last_entry_fields(&mut conn, &key).await, ["event"]);
    assert_eq!(
        next(&mut rx, Duration::from_secs(10)).await.event.id(),
        structured.id()
    );
    let outcome = h
        .app
        .set_override("eventbus.engines.streams.mode", json!("binary"))
        .await
        .unwrap();
    assert_eq!(outcome.status, ReloadStatus::Applied, "{outcome:?}");
    let binary = h.bus.publish_data("wire.fmt", "t", &2).await.unwrap();
    let fields = last_entry_fields(&mut conn, &key).await;
    assert!(!fields.contains(&"event".to_owned()), "{fields:?}");
    for field in [
        "ce_id",
        "ce_source",
        "ce_specversion",
        "ce_type",
        "content-type",
        "data",
    ] {
        assert!(
            fields.contains(&field.to_owned()),
            "{field} missing: {fields:?}"
        );
    }
    let got = next(&mut rx, Duration::from_secs(10)).await;
    assert_eq!(got.event, binary);
    h.stop().await;
}
