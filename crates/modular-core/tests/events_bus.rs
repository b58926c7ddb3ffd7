//! The in-process CloudEvents bus: filters, bounded per-observer queues, event shape, and
//! unsubscription.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use cloudevents::AttributesReader as _;
use modular_core::events::{EventBus, EventFilter, EventStream, build_event, event_data};
use serde_json::json;

const SOURCE: &str = "/modular/modules/test";

fn types_of(stream: &mut EventStream) -> Vec<String> {
    stream.drain().iter().map(|e| e.ty().to_owned()).collect()
}

fn publish_each(bus: &EventBus, types: &[&str]) {
    for ty in types {
        bus.emit(ty, SOURCE, json!({}));
    }
}

#[tokio::test]
async fn an_exact_filter_receives_only_its_type() {
    let bus = EventBus::new();
    let mut stream = bus.subscribe(EventFilter::exact("com.modular.config.reload.completed"));
    publish_each(
        &bus,
        &[
            "com.modular.config.reload.started",
            "com.modular.config.reload.completed",
            "com.modular.config.reload.completed.extra",
            "com.modular.health.evaluated",
        ],
    );
    assert_eq!(
        types_of(&mut stream),
        ["com.modular.config.reload.completed"]
    );
}

#[tokio::test]
async fn a_prefix_filter_receives_the_whole_family() {
    let bus = EventBus::new();
    let mut stream = bus.subscribe(EventFilter::prefix("com.modular.config.reload."));
    publish_each(
        &bus,
        &[
            "com.modular.config.reload.started",
            "com.modular.health.evaluated",
            "com.modular.config.reload.circuit.opened",
            "com.modular.config.reloaded",
        ],
    );
    assert_eq!(
        types_of(&mut stream),
        [
            "com.modular.config.reload.started",
            "com.modular.config.reload.circuit.opened"
        ]
    );
}

#[tokio::test]
async fn the_all_filter_receives_every_event_in_publication_order() {
    let bus = EventBus::new();
    let mut all = bus.subscribe(EventFilter::All);
    let types = ["com.modular.a", "com.other.b", "x"];
    publish_each(&bus, &types);
    assert_eq!(types_of(&mut all), types);
    assert_eq!(bus.published(), 3);
}

#[tokio::test]
async fn every_matching_observer_gets_its_own_copy() {
    let bus = EventBus::new();
    let mut first = bus.subscribe(EventFilter::prefix("com.modular."));
    let mut second = bus.subscribe(EventFilter::prefix("com.modular."));
    bus.emit(
        "com.modular.module.started",
        SOURCE,
        json!({ "module": "cache" }),
    );
    let a = first.recv().await.unwrap();
    let b = second.recv().await.unwrap();
    assert_eq!(a.id(), b.id());
}

#[tokio::test]
async fn a_slow_observer_does_not_block_the_publisher() {
    const EVENTS: u64 = 10_000;
    let bus = EventBus::new();
    // Never read until the end, with room for a single event.
    let slow = bus.subscribe_with_capacity(EventFilter::All, 1);
    let mut fast = bus.subscribe_with_capacity(EventFilter::All, EVENTS as usize);

    // A publisher that waited for the slow observer would never finish: the bound only has
    // to be one a loaded machine cannot miss for 10 000 in-memory publishes.
    let publisher = tokio::task::spawn_blocking({
        let bus = bus.clone();
        move || {
            for i in 0..EVENTS {
                bus.emit("com.modular.test.tick", SOURCE, json!({ "n": i }));
            }
        }
    });
    tokio::time::timeout(Duration::from_secs(60), publisher)
        .await
        .expect("publishing waited for the slow observer")
        .unwrap();

    let received = fast.drain();
    assert_eq!(
        received.len() as u64,
        EVENTS,
        "the fast observer gets every event"
    );
    let numbers: Vec<u64> = received
        .iter()
        .map(|e| event_data(e).and_then(|d| d["n"].as_u64()).unwrap())
        .collect();
    assert!(
        numbers.iter().copied().eq(0..EVENTS),
        "in publication order"
    );
    assert_eq!(fast.dropped(), 0);

    assert_eq!(
        slow.dropped(),
        EVENTS - 1,
        "all but the one queued event are dropped and counted"
    );
    assert_eq!(bus.dropped(), EVENTS - 1);
    assert_eq!(bus.published(), EVENTS);
}

#[tokio::test]
async fn a_slow_observer_keeps_receiving_once_it_catches_up() {
    let bus = EventBus::new();
    let mut slow = bus.subscribe_with_capacity(EventFilter::All, 2);
    publish_each(&bus, &["one", "two", "three", "four"]);
    assert_eq!(
        types_of(&mut slow),
        ["one", "two"],
        "the oldest events are kept"
    );
    assert_eq!(slow.dropped(), 2);
    publish_each(&bus, &["five"]);
    assert_eq!(types_of(&mut slow), ["five"]);
    assert_eq!(slow.dropped(), 2);
}

#[tokio::test]
async fn a_blocked_async_observer_does_not_delay_a_publisher_task() {
    let bus = EventBus::new();
    let _stuck = bus.subscribe_with_capacity(EventFilter::All, 1);
    let publisher = {
        let bus = bus.clone();
        tokio::spawn(async move {
            for _ in 0..1000 {
                bus.emit("com.modular.test.tick", SOURCE, json!(null));
            }
        })
    };
    tokio::time::timeout(Duration::from_secs(5), publisher)
        .await
        .expect("the publisher finished")
        .unwrap();
    assert_eq!(bus.dropped(), 999);
}

#[tokio::test]
async fn events_are_cloudevents_with_uuid_v7_ids_and_json_data() {
    let bus = EventBus::new();
    let mut stream = bus.subscribe(EventFilter::All);
    let before = chrono::Utc::now();
    for i in 0..100 {
        bus.emit(
            "com.modular.cache.entry.evicted",
            SOURCE,
            json!({ "entry_key": "k", "count": i }),
        );
    }
    let events = stream.drain();
    assert_eq!(events.len(), 100);

    let event = &events[0];
    assert_eq!(event.specversion(), cloudevents::event::SpecVersion::V10);
    assert_eq!(event.ty(), "com.modular.cache.entry.evicted");
    assert_eq!(event.source().as_str(), SOURCE);
    assert_eq!(event.datacontenttype(), Some("application/json"));
    assert!(
        event
            .time()
            .is_some_and(|t| *t >= before - chrono::Duration::seconds(1))
    );
    assert_eq!(
        event_data(event),
        Some(&json!({ "entry_key": "k", "count": 0 }))
    );

    let ids: Vec<uuid::Uuid> = events
        .iter()
        .map(|e| uuid::Uuid::parse_str(e.id()).unwrap())
        .collect();
    assert!(ids.iter().all(|id| id.get_version_num() == 7), "{ids:?}");
    let unique: std::collections::HashSet<_> = ids.iter().collect();
    assert_eq!(unique.len(), ids.len(), "ids are unique");
    assert!(
        ids.windows(2).all(|w| w[0] < w[1]),
        "v7 ids sort by creation"
    );
}

#[test]
fn build_event_rejects_nothing_a_framework_source_needs() {
    let event = build_event(
        "com.modular.module.started",
        "/modular/modules/cache",
        json!({ "module": "cache" }),
    )
    .unwrap();
    assert_eq!(event.source().as_str(), "/modular/modules/cache");
    assert_eq!(event_data(&event), Some(&json!({ "module": "cache" })));
}

#[tokio::test]
async fn dropping_a_stream_unsubscribes() {
    let bus = EventBus::new();
    let kept = bus.subscribe(EventFilter::prefix("com.modular.health."));
    let dropped = bus.subscribe(EventFilter::prefix("com.modular.config."));
    assert!(bus.has_observer_for("com.modular.config.reload.started"));
    drop(dropped);

    assert!(
        !bus.has_observer_for("com.modular.config.reload.started"),
        "no observer is left for the dropped stream's types"
    );
    bus.emit("com.modular.config.reload.started", SOURCE, json!({}));
    assert_eq!(
        bus.dropped(),
        0,
        "an event for a dropped stream is not a drop"
    );
    assert!(bus.has_observer_for("com.modular.health.evaluated"));
    drop(kept);
    assert!(!bus.has_observer_for("com.modular.health.evaluated"));
}

#[tokio::test]
async fn a_stream_ends_when_the_bus_is_gone() {
    let bus = EventBus::new();
    let mut stream = bus.subscribe(EventFilter::All);
    bus.emit("last", SOURCE, json!({}));
    drop(bus);
    assert_eq!(
        stream.recv().await.map(|e| e.ty().to_owned()).as_deref(),
        Some("last")
    );
    let end = tokio::time::timeout(Duration::from_secs(5), stream.recv()).await;
    assert!(
        matches!(end, Ok(None)),
        "the stream must end, not wait forever: {end:?}"
    );
}

#[tokio::test]
async fn clones_of_a_bus_share_observers() {
    let bus = EventBus::new();
    let clone = bus.clone();
    let mut stream = bus.subscribe(EventFilter::All);
    clone.emit("from.clone", SOURCE, json!({}));
    assert_eq!(types_of(&mut stream), ["from.clone"]);
}
