//! `forward`: the framework's CloudEvents republished to a topic, each one valid against the
//! CloudEvents 1.0 JSON schema after travelling through the engine.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::time::Duration;

use cloudevents::AttributesReader as _;
use modular_testkit::Service;
use serde_json::{Value, json};
use support::{collector, next, start};

fn schema() -> jsonschema::Validator {
    let schema: Value =
        serde_json::from_str(include_str!("fixtures/cloudevents-1.0.schema.json")).unwrap();
    jsonschema::options()
        .should_validate_formats(true)
        .build(&schema)
        .unwrap()
}

async fn forwarded_reload_events_are_valid_cloudevents(section: Value) {
    let h = start(section).await.unwrap();
    let (handler, mut rx) = collector();
    let _sub = h.bus.subscribe("modular.events", handler).await.unwrap();
    let outcome = h
        .app
        .set_override("eventbus.delivery.max_attempts", json!(3))
        .await
        .unwrap();
    assert_eq!(
        outcome.status,
        modular_core::ReloadStatus::Applied,
        "{outcome:?}"
    );
    let validator = schema();
    let mut types = Vec::new();
    while !types
        .iter()
        .any(|t: &String| t == "com.modular.config.reload.completed")
    {
        let delivery = next(&mut rx, Duration::from_secs(10)).await;
        let json = serde_json::to_value(&delivery.event).unwrap();
        let errors: Vec<String> = validator
            .iter_errors(&json)
            .map(|e| e.to_string())
            .collect();
        assert!(errors.is_empty(), "{json}: {errors:?}");
        for required in ["id", "source", "type", "time", "specversion"] {
            assert!(json.get(required).is_some(), "{required} missing: {json}");
        }
        assert!(
            delivery.event.ty().starts_with("com.modular."),
            "{}",
            delivery.event.ty()
        );
        types.push(delivery.event.ty().to_owned());
    }
    assert!(
        types
            .iter()
            .any(|t| t == "com.modular.config.reload.started"),
        "{types:?}"
    );
    // Turning forwarding off by reload stops it.
    let outcome = h
        .app
        .set_override("eventbus.forward", Value::Null)
        .await
        .unwrap();
    assert_eq!(
        outcome.status,
        modular_core::ReloadStatus::Applied,
        "{outcome:?}"
    );
    while rx.try_recv().is_ok() {}
    h.app
        .set_override("eventbus.delivery.max_attempts", json!(4))
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    let late: Vec<String> = std::iter::from_fn(|| rx.try_recv().ok())
        .map(|d| d.event.ty().to_owned())
        .collect();
    assert!(
        !late.iter().any(|t| t == "com.modular.config.reload.started"
            || t == "com.modular.config.reload.completed"),
        "{late:?}"
    );
    h.stop().await;
}

#[tokio::test]
async fn framework_events_are_forwarded_as_valid_cloudevents_on_memory() {
    forwarded_reload_events_are_valid_cloudevents(json!({
        "forward": { "types": ["com.modular.*"], "topic": "modular.events" }
    }))
    .await;
}

#[tokio::test]
async fn framework_events_are_forwarded_as_valid_cloudevents_through_nats() {
    let Some(url) = modular_testkit::service(Service::Nats) else {
        return;
    };
    let prefix = support::unique("forward");
    forwarded_reload_events_are_valid_cloudevents(json!({
        "engines": { "js": support::nats_engine(&url, &prefix) },
        "forward": { "types": ["com.modular.*"], "topic": "modular.events" }
    }))
    .await;
}

#[tokio::test]
async fn forward_types_must_be_types_or_prefixes() {
    let built = modular_testkit::test_builder()
        .config_defaults(json!({ "eventbus": { "forward": { "types": ["com.*.x"], "topic": "modular.events" } } }))
        .module(modular_eventbus::EventbusModule::new())
        .build()
        .await;
    let error = built.err().map(|e| e.to_string()).unwrap_or_default();
    assert!(error.contains("eventbus.forward.types[0]"), "{error}");
}
