//! The memory engine: round trip, wildcards, groups, fan-out, retries, dead letters, bounded
//! queues (time-dependent parts on paused time).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use cloudevents::AttributesReader as _;
use modular_eventbus::{EventbusError, Nack};
use serde_json::json;
use support::{collector, next, start};

const SOON: Duration = Duration::from_secs(5);

#[tokio::test]
async fn a_published_payload_arrives_as_a_complete_cloudevent() {
    let h = start(json!({})).await.unwrap();
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
    assert_eq!(got.event.ty(), "com.example.order.created");
    assert_eq!(
        got.event.source().to_string(),
        modular_eventbus::DEFAULT_SOURCE
    );
    assert!(got.event.time().is_some());
    assert_eq!(got.event.datacontenttype(), Some("application/json"));
    assert_eq!(got.attempt, 1);
    h.stop().await;
}

#[tokio::test]
async fn wildcards_route_by_token() {
    let h = start(json!({})).await.unwrap();
    let (one, mut one_rx) = collector();
    let (tail, mut tail_rx) = collector();
    let _a = h.bus.subscribe("orders.*", one).await.unwrap();
    let _b = h.bus.subscribe("orders.>", tail).await.unwrap();
    h.bus
        .publish_data("orders.eu.created", "t", &1)
        .await
        .unwrap();
    h.bus.publish_data("orders.created", "t", &2).await.unwrap();
    h.bus
        .publish_data("invoices.created", "t", &3)
        .await
        .unwrap();
    assert_eq!(next(&mut one_rx, SOON).await.topic, "orders.created");
    let mut tails = vec![
        next(&mut tail_rx, SOON).await.topic,
        next(&mut tail_rx, SOON).await.topic,
    ];
    tails.sort();
    assert_eq!(tails, ["orders.created", "orders.eu.created"]);
    assert!(one_rx.try_recv().is_err());
    assert!(tail_rx.try_recv().is_err());
    h.stop().await;
}

#[tokio::test]
async fn a_consumer_group_splits_and_fan_out_subscribers_each_get_everything() {
    let h = start(json!({})).await.unwrap();
    let (a, mut a_rx) = collector();
    let (b, mut b_rx) = collector();
    let (fan, mut fan_rx) = collector();
    let _a = h.bus.subscribe_group("jobs.*", "workers", a).await.unwrap();
    let _b = h.bus.subscribe_group("jobs.*", "workers", b).await.unwrap();
    let _f = h.bus.subscribe("jobs.*", fan).await.unwrap();
    for i in 0..100 {
        h.bus.publish_data("jobs.run", "t", &i).await.unwrap();
    }
    for _ in 0..100 {
        next(&mut fan_rx, SOON).await;
    }
    // Every event reaches one member (bounded wait, not a fixed pause)...
    let (mut a_count, mut b_count) = (0, 0);
    while a_count + b_count < 100 {
        tokio::select! {
            Some(_) = a_rx.recv() => a_count += 1,
            Some(_) = b_rx.recv() => b_count += 1,
            () = tokio::time::sleep(SOON) => panic!("only {} delivered to the group", a_count + b_count),
        }
    }
    // ...and none to both: the fan-out subscriber saw all 100, so nothing is still in flight.
    while a_rx.try_recv().is_ok() {
        a_count += 1;
    }
    while b_rx.try_recv().is_ok() {
        b_count += 1;
    }
    assert_eq!(a_count + b_count, 100, "each event to exactly one member");
    h.stop().await;
}

#[tokio::test(start_paused = true)]
async fn a_failing_handler_is_retried_with_backoff_then_dead_lettered() {
    let h = start(
        json!({ "delivery": { "max_attempts": 3, "initial_backoff": "1s", "max_backoff": "10s" } }),
    )
    .await
    .unwrap();
    let attempts = Arc::new(AtomicU32::new(0));
    let seen = Arc::clone(&attempts);
    let _sub = h
        .bus
        .subscribe("pay.*", move |_d| {
            seen.fetch_add(1, Ordering::SeqCst);
            async { Err(Nack::retry("card declined")) }
        })
        .await
        .unwrap();
    let (dead, mut dead_rx) = collector();
    let _dlq = h.bus.subscribe("eventbus.dead_letter", dead).await.unwrap();
    let started = tokio::time::Instant::now();
    let sent = h.bus.publish_data("pay.charge", "t", &1).await.unwrap();
    let got = next(&mut dead_rx, Duration::from_secs(60)).await;
    assert_eq!(attempts.load(Ordering::SeqCst), 3);
    // 1 s after the first failure, 2 s after the second.
    assert!(
        started.elapsed() >= Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(got.event.id(), sent.id());
    assert_eq!(
        got.event
            .extension("deadletterreason")
            .map(ToString::to_string)
            .as_deref(),
        Some("card declined")
    );
    assert_eq!(
        got.event
            .extension("deadlettertopic")
            .map(ToString::to_string)
            .as_deref(),
        Some("pay.charge")
    );
    h.stop().await;
}

#[tokio::test]
async fn a_rejected_event_is_dead_lettered_without_retry() {
    let h = start(json!({ "delivery": { "max_attempts": 5 } }))
        .await
        .unwrap();
    let attempts = Arc::new(AtomicU32::new(0));
    let seen = Arc::clone(&attempts);
    let _sub = h
        .bus
        .subscribe("pay.*", move |_d| {
            seen.fetch_add(1, Ordering::SeqCst);
            async { Err(Nack::reject("malformed")) }
        })
        .await
        .unwrap();
    let (dead, mut dead_rx) = collector();
    let _dlq = h.bus.subscribe("eventbus.dead_letter", dead).await.unwrap();
    let mut events = h
        .app
        .events()
        .subscribe(modular_core::events::EventFilter::exact(
            "com.modular.eventbus.delivery.dead_lettered",
        ));
    let sent = h.bus.publish_data("pay.charge", "t", &1).await.unwrap();
    next(&mut dead_rx, SOON).await;
    assert_eq!(attempts.load(Ordering::SeqCst), 1);
    let event = tokio::time::timeout(SOON, events.recv())
        .await
        .unwrap()
        .unwrap();
    let data = modular_core::events::event_data(&event).cloned().unwrap();
    assert_eq!(data["event_id"], json!(sent.id()));
    assert_eq!(data["reason"], json!("malformed"));
    h.stop().await;
}

#[tokio::test]
async fn a_full_queue_drops_and_counts_when_told_to_drop() {
    let h = start(json!({ "engines": { "memory": { "type": "memory", "queue_size": 2, "when_full": "drop" } }, "delivery": { "concurrency": 1 } })).await.unwrap();
    let gate = Arc::new(tokio::sync::Semaphore::new(0));
    let held = Arc::clone(&gate);
    let _sub = h
        .bus
        .subscribe("slow.*", move |_d| {
            let held = Arc::clone(&held);
            async move {
                let _permit = held.acquire().await;
                Ok(())
            }
        })
        .await
        .unwrap();
    let mut dropped = 0;
    for i in 0..10 {
        if let Err(EventbusError::Dropped { .. }) = h.bus.publish_data("slow.x", "t", &i).await {
            dropped += 1;
        }
    }
    // One in the handler, one taken by the dispatcher waiting for a permit, two queued.
    assert!(dropped >= 6, "dropped {dropped}");
    let health = h.app.health().unwrap().force_refresh().await;
    let report = health
        .reports
        .iter()
        .find(|r| r.module == "eventbus")
        .unwrap();
    assert_eq!(
        report.status,
        modular_core::health::HealthStatus::Degraded,
        "{report:?}"
    );
    assert_eq!(report.details["dropped"], json!(dropped));
    gate.add_permits(100);
    h.stop().await;
}

#[tokio::test(start_paused = true)]
async fn block_timeout_waits_then_drops() {
    let h = start(json!({ "engines": { "memory": { "type": "memory", "queue_size": 1, "when_full": "block_timeout", "block_timeout": "2s" } }, "delivery": { "concurrency": 1 } })).await.unwrap();
    let gate = Arc::new(tokio::sync::Semaphore::new(0));
    let held = Arc::clone(&gate);
    let _sub = h
        .bus
        .subscribe("slow.*", move |_d| {
            let held = Arc::clone(&held);
            async move {
                let _p = held.acquire().await;
                Ok(())
            }
        })
        .await
        .unwrap();
    let mut results = Vec::new();
    for i in 0..4 {
        let started = tokio::time::Instant::now();
        let result = h.bus.publish_data("slow.x", "t", &i).await;
        results.push((result.is_ok(), started.elapsed()));
        tokio::task::yield_now().await;
    }
    let (ok, waited) = results.last().copied().unwrap();
    assert!(!ok, "{results:?}");
    assert!(waited >= Duration::from_secs(2), "{results:?}");
    gate.add_permits(100);
    h.stop().await;
}

#[tokio::test]
async fn block_waits_for_room_and_loses_nothing() {
    let h = start(json!({ "engines": { "memory": { "type": "memory", "queue_size": 1, "when_full": "block" } }, "delivery": { "concurrency": 1 } })).await.unwrap();
    let (handler, mut rx) = collector();
    let _sub = h.bus.subscribe("b.*", handler).await.unwrap();
    for i in 0..200 {
        h.bus.publish_data("b.x", "t", &i).await.unwrap();
    }
    for _ in 0..200 {
        next(&mut rx, SOON).await;
    }
    h.stop().await;
}

#[tokio::test]
async fn a_pattern_is_not_a_publish_topic() {
    let h = start(json!({})).await.unwrap();
    let error = h.bus.publish_data("orders.*", "t", &1).await.unwrap_err();
    assert!(error.to_string().contains("is a pattern"), "{error}");
    assert!(
        h.bus
            .subscribe("orders.>.x", support::collector().0)
            .await
            .is_err()
    );
    h.stop().await;
}
