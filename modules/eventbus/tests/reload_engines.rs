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
    let Some(url) = modular_testkit::service(Service::Redis) else {
        return;
    };
    let (proxy, proxied) = support::proxy(&url).await.unwrap();
    let prefix = unique("reload-url");
    let h = start(json!({ "engines": { "streams": redis_engine(&proxied, &prefix) } }))
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
