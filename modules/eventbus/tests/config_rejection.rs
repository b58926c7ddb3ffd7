//! Bad configuration is rejected with its key path, and credentials are never echoed.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use modular_eventbus::EventbusModule;
use serde_json::{Value, json};

async fn startup_error(section: Value) -> String {
    let built = modular_testkit::test_builder()
        .config_defaults(json!({ "eventbus": section }))
        .module(EventbusModule::new())
        .build()
        .await;
    match built {
        Ok(_) => panic!("the section was accepted"),
        Err(error) => error.to_string(),
    }
}

#[tokio::test]
async fn an_unknown_engine_type_is_rejected_with_its_path() {
    let error = startup_error(json!({ "engines": { "q": { "type": "kafka" } } })).await;
    assert!(error.contains("eventbus.engines.q.type"), "{error}");
    assert!(error.contains("kafka"), "{error}");
}

#[tokio::test]
async fn a_route_to_a_missing_engine_is_rejected_with_its_path() {
    let error =
        startup_error(json!({ "routes": [{ "topics": ["orders.*"], "engine": "durable" }] })).await;
    assert!(
        error.contains("eventbus.routes[0].engine: names engine `durable`"),
        "{error}"
    );
}

#[tokio::test]
async fn a_wildcard_syntax_error_is_rejected_with_its_path() {
    let error = startup_error(
        json!({ "routes": [{ "topics": ["ok.*", "orders.>.eu"], "engine": "memory" }] }),
    )
    .await;
    assert!(error.contains("eventbus.routes[0].topics[1]"), "{error}");
    assert!(error.contains("`>` may only be the last token"), "{error}");
}

#[tokio::test]
async fn a_url_without_a_host_is_rejected_without_echoing_the_password() {
    let error = startup_error(
        json!({ "engines": { "s": { "type": "redis", "url": "redis://:hunter2@/0" } } }),
    )
    .await;
    assert!(
        error.contains("eventbus.engines.s.url: has no host"),
        "{error}"
    );
    assert!(!error.contains("hunter2"), "{error}");
}

#[tokio::test]
async fn a_default_naming_a_missing_engine_is_rejected() {
    let error = startup_error(json!({ "default": "nope" })).await;
    assert!(error.contains("eventbus.default"), "{error}");
}

#[tokio::test]
async fn zero_sizes_and_unknown_keys_are_rejected() {
    let error = startup_error(json!({ "delivery": { "concurrency": 0 } })).await;
    assert!(
        error.contains("eventbus.delivery.concurrency: must be >= 1"),
        "{error}"
    );
    let error =
        startup_error(json!({ "engines": { "memory": { "type": "memory", "queue_size": 0 } } }))
            .await;
    assert!(
        error.contains("eventbus.engines.memory.queue_size"),
        "{error}"
    );
    let error = startup_error(json!({ "routez": [] })).await;
    assert!(error.contains("routez"), "{error}");
}

#[tokio::test]
async fn an_unreachable_broker_fails_start_up_without_the_password() {
    let port = modular_testkit::RefusedPort::new();
    let error = startup_error(json!({ "engines": { "s": { "type": "redis", "url": format!("redis://:hunter2@127.0.0.1:{}/0", port.port()), "connect_timeout": "300ms" } } })).await;
    assert!(error.contains("cannot connect engine `s`"), "{error}");
    assert!(!error.contains("hunter2"), "{error}");
}

#[tokio::test]
async fn binary_mode_on_mqtt_is_rejected_with_its_path() {
    let error = startup_error(json!({ "engines": { "m": { "type": "mqtt", "url": "mqtt://u:hunter2@127.0.0.1:1883", "mode": "binary" } } })).await;
    assert!(
        error.contains("eventbus.engines.m.mode: `binary` is not available on the mqtt engine"),
        "{error}"
    );
    assert!(error.contains("no headers"), "{error}");
    assert!(!error.contains("hunter2"), "{error}");
}

#[tokio::test]
async fn engine_fields_of_another_engine_type_are_rejected_with_their_path() {
    let error = startup_error(
        json!({ "engines": { "q": { "type": "amqp", "url": "amqp://127.0.0.1:5672/%2f", "max_len": 10 } } }),
    )
    .await;
    assert!(
        error.contains("eventbus.engines.q.max_len: is used by the redis engine only"),
        "{error}"
    );
    let error = startup_error(
        json!({ "engines": { "s": { "type": "redis", "url": "redis://127.0.0.1:6379", "max_len": 0 } } }),
    )
    .await;
    assert!(
        error.contains("eventbus.engines.s.max_len: must be > 0"),
        "{error}"
    );
    let error = startup_error(
        json!({ "engines": { "q": { "type": "amqp", "url": "amqps://127.0.0.1:5671/%2f" } } }),
    )
    .await;
    assert!(
        error.contains("eventbus.engines.q.url: has scheme `amqps`"),
        "{error}"
    );
}

#[tokio::test]
async fn a_bad_core_topic_pattern_is_rejected_with_its_index() {
    let error = startup_error(json!({ "engines": { "n": {
        "type": "nats", "url": "nats://127.0.0.1:4222", "core_topics": ["metrics.*", "presence.>.x"]
    } } }))
    .await;
    assert!(
        error.contains("eventbus.engines.n.core_topics[1]"),
        "{error}"
    );
    assert!(error.contains("`>` may only be the last token"), "{error}");
}

#[tokio::test]
async fn a_bad_qos0_topic_pattern_is_rejected_with_its_index() {
    let error = startup_error(json!({ "engines": { "m": {
        "type": "mqtt", "url": "mqtt://127.0.0.1:1883", "qos0_topics": ["gauge.x*"]
    } } }))
    .await;
    assert!(
        error.contains("eventbus.engines.m.qos0_topics[0]"),
        "{error}"
    );
}

#[tokio::test]
async fn core_and_qos0_topics_on_the_wrong_engine_are_rejected() {
    let error = startup_error(json!({ "engines": {
        "m": { "type": "mqtt", "url": "mqtt://127.0.0.1:1883", "core_topics": ["a.*"] },
        "n": { "type": "nats", "url": "nats://127.0.0.1:4222", "qos0_topics": ["a.*"] }
    } }))
    .await;
    assert!(
        error.contains("eventbus.engines.m.core_topics: is used by the nats engine only"),
        "{error}"
    );
    assert!(
        error.contains("eventbus.engines.n.qos0_topics: is used by the mqtt engine only"),
        "{error}"
    );
}
