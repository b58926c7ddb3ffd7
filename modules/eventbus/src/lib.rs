//! The eventbus module of modular: CloudEvents 1.0 publish/subscribe on an in-process memory
//! engine, Redis Streams, NATS JetStream, RabbitMQ (AMQP 0-9-1) and MQTT 3.1.1, several engines
//! at once with routing rules, reloadable without a restart and health-checked per engine.
//!
//! # A guided tour
//!
//! Add [`EventbusModule`] to an application; other modules find the [`MessageBus`] in the
//! service registry. Publish a CloudEvents event (or a serializable payload the bus wraps in
//! one), subscribe with topic wildcards (`orders.*` one token, `orders.>` one or more), as a
//! fan-out subscriber (every subscriber gets every event) or as a member of a consumer group
//! (each event to one member). A handler acknowledges with `Ok(())` and refuses with a
//! [`Nack`]: retried with exponential back-off, then dead-lettered.
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use std::sync::Arc;
//! use modular_core::Application;
//! use modular_eventbus::{EventbusModule, MessageBus, Nack};
//!
//! let mut app = Application::builder()
//!     .env_prefix(None)
//!     .config_defaults(serde_json::json!({ "eventbus": { "engines": { "fast": { "type": "memory" } } } }))
//!     .module(EventbusModule::new())
//!     .handle_signals(false)
//!     .build()
//!     .await?;
//! app.start().await?;
//! let bus: Arc<MessageBus> = app.services().require::<MessageBus>()?;
//!
//! let (tx, mut rx) = tokio::sync::mpsc::channel(1);
//! let _sub = bus
//!     .subscribe_group("orders.*", "billing", move |delivery| {
//!         let tx = tx.clone();
//!         async move {
//!             tx.send(delivery.topic).await.map_err(|_| Nack::reject("receiver gone"))
//!         }
//!     })
//!     .await?;
//! bus.publish_data("orders.created", "com.example.order.created", &serde_json::json!({ "id": 7 }))
//!     .await?;
//! assert_eq!(rx.recv().await.as_deref(), Some("orders.created"));
//! app.stop().await?;
//! # Ok(()) }
//! ```
//!
//! # Configuration
//!
//! The `eventbus` section ([`EventbusConfig`]):
//!
//! ```yaml
//! eventbus:
//!   engines:
//!     fast: { type: memory, queue_size: 1024, when_full: block_timeout, block_timeout: 1s }
//!     durable:
//!       type: nats                          # memory | redis | nats | amqp | mqtt; static
//!       url: nats://user:pass@nats:4222     # dynamic; a secret
//!       connect_timeout: 2s                 # dynamic
//!       publish_timeout: 5s                 # dynamic
//!       visibility_timeout: 30s             # dynamic (JetStream ack_wait / Redis XCLAIM idle / AMQP requeue)
//!       prefix: eventbus                    # static (subject prefix, stream EVENTBUS)
//!       mode: binary                        # dynamic: structured (default) | binary (redis, nats, amqp)
//!       core_topics: ["metrics.*", "presence.>"]  # dynamic (nats only): core NATS, at-most-once
//!     streams: { type: redis, url: "redis://127.0.0.1:6379/0", max_len: 100000 }  # max_len: dynamic, XADD MAXLEN ~
//!     rabbit: { type: amqp, url: "amqp://guest:guest@127.0.0.1:5672/%2f", prefix: eventbus }  # exchange `eventbus`
//!     devices:                              # topics eventbus/a/b
//!       type: mqtt
//!       url: "mqtt://user:pass@127.0.0.1:1883"
//!       prefix: eventbus
//!       qos0_topics: ["sensors.*"]          # dynamic (mqtt only): QoS 0, at-most-once; others QoS 1
//!   default: fast                           # dynamic; unset: the first engine by name
//!   routes:                                 # dynamic; first match wins
//!     - { topics: ["orders.*", "payments.>"], engine: durable }
//!     - { topics: ["audit.>"], engine: streams }
//!     - { topics: ["billing.>"], engine: rabbit }
//!     - { topics: ["sensors.*"], engine: devices }
//!   delivery:                               # all dynamic
//!     max_attempts: 5
//!     initial_backoff: 100ms
//!     max_backoff: 10s
//!     dead_letter_topic: eventbus.dead_letter
//!     concurrency: 16
//!   source: /myapp                          # dynamic: `source` of wrapped payloads
//!   forward: { types: ["com.modular.*"], topic: modular.events }   # dynamic
//!   health: { timeout: 1s, optional: false, max_lag: 10000, max_dropped: 0, topic: eventbus.health }
//! ```
//!
//! Rejected at load and at reload, with the key path and never the URL: an unknown engine
//! `type` (or one this build lacks), `mode: binary` on memory or mqtt, `max_len` on an engine
//! other than redis (or 0), `core_topics` on an engine other than nats and `qos0_topics` on
//! one other than mqtt, a route or `default` naming a missing engine, a wildcard syntax error
//! in `routes[i].topics[j]`, `engines.<name>.core_topics[i]` or
//! `engines.<name>.qos0_topics[i]`, a URL without a host or with the wrong scheme, zero
//! sizes or timeouts, and unknown keys.
//!
//! # Delivery semantics
//!
//! | engine | guarantee | publish returns | redelivery |
//! |---|---|---|---|
//! | `memory` | at-most-once | once queued for every matching subscription; a full queue drops (counted, `Dropped` error), blocks, or blocks up to `block_timeout` | none: an event whose handler fails for good is dead-lettered |
//! | `redis` | at-least-once | after `XADD` answered | unacknowledged entries are re-claimed (`XPENDING` + `XCLAIM`) by a group member after `visibility_timeout`; a member never re-claims what its own handler still holds |
//! | `nats` | at-least-once | after the JetStream publish ack | unacknowledged messages are redelivered after `ack_wait` (`visibility_timeout`) |
//! | `nats`, topics in `core_topics` | at-most-once (core NATS) | once the client flushed it to the server; an error when it is not connected or the flush misses `publish_timeout` (a connection that breaks after the flush loses it silently) | none: no ack; an event whose handler fails for good is dead-lettered, as on `memory` |
//! | `amqp` | at-least-once | after the publisher confirm (persistent message, durable topic exchange `<prefix>`) | a nack requeues at once; a delivery unsettled after `visibility_timeout` is requeued by the engine (a late ack of it is a no-op); a lost connection's unacknowledged deliveries are requeued by RabbitMQ |
//! | `mqtt` | at-least-once (QoS 1) | after the broker's `PUBACK` (one publish at a time per engine) | only when the member's session reconnects: MQTT has no nack and no visibility timeout |
//! | `mqtt`, topics in `qos0_topics` | at-most-once (QoS 0) | once the client handed the packet to its connection (no `PUBACK`); an error when it cannot connect within `publish_timeout` | none: a subscription whose pattern a `qos0_topics` pattern covers subscribes with QoS 0 |
//!
//! Per engine, the topology:
//!
//! - `nats`: topic `a.b` is subject `<prefix>.a.b` in the stream `<PREFIX>` (subjects
//!   `<prefix>.>`). Groups are durable pull consumers named after the group, fan-out
//!   subscribers ephemeral consumers. Topics matching `core_topics` are core NATS subjects
//!   `_core.<prefix>.a.b` instead, outside the stream (never stored); a group subscribes as a
//!   NATS queue group, a fan-out subscriber plainly. A subscription whose pattern a
//!   `core_topics` pattern covers reads core NATS only; one that only overlaps them (`>` with
//!   `core_topics: ["metrics.*"]`) reads both. Core deliveries carry no ack: a failing
//!   handler is counted (`nacked`), logged and retried in the subscriber with the usual
//!   back-off, then dead-lettered; nothing is ever redelivered by the server, and an event
//!   published while no member is subscribed (or during a reconnect) is gone.
//! - `amqp`: topic `a.b` is routing key `a.b` on the durable topic exchange `<prefix>`
//!   (default `eventbus`); `*` maps to `*` and `>` to `#` (a delivered topic is checked against
//!   the pattern, as `#` also matches zero tokens). A consumer group is the durable queue
//!   `<prefix>.<group>.<pattern>` shared by its members (it keeps events while no member runs);
//!   a fan-out subscriber gets an exclusive, auto-deleted queue (events published while its
//!   connection is down are not kept for it). Events published before any queue is bound are
//!   dropped by RabbitMQ (confirmed but unroutable). Connections are re-opened on demand after
//!   an outage; readers re-declare their queue. `amqp://` only (no TLS in this build).
//! - `mqtt`: topic `a.b` is MQTT topic `<prefix>/a/b`; `*` maps to `+`, `>` to `#`. Groups are
//!   shared subscriptions (`$share/<group>/<filter>`, Mosquitto 2 and any MQTT 5 broker), each
//!   member on its own connection with a persistent session while it runs (what it held
//!   unacknowledged when its connection broke is sent again on reconnect; the session is
//!   discarded when it stops). What MQTT cannot give: a nack (a refused event is retried in the
//!   subscriber and dead-lettered like everywhere, but `Nack` at shutdown leaves it to the
//!   session), handing a stuck member's event to another member (no visibility timeout), a
//!   group position while no member is subscribed, a lag figure (reported as 0), headers (no
//!   binary mode: `mode: binary` is rejected at `engines.<name>.mode`), and `/`, `+` or `#`
//!   inside a topic token (rejected at publish and subscribe). `mqtt://` (or `tcp://`) only, no
//!   TLS. Topics matching `qos0_topics` are published with QoS 0 and subscriptions a
//!   `qos0_topics` pattern covers subscribe with QoS 0: the broker sends each event at most
//!   once and keeps nothing for a member whose connection broke.
//!
//! Events travel as CloudEvents structured-mode JSON (`application/cloudevents+json`) or, with
//! `mode: binary` on redis, nats and amqp, in binary mode: each attribute a header
//! (`ce-<name>` NATS headers, `ce_<name>` Redis entry fields, `cloudEvents_<name>` AMQP
//! headers), `datacontenttype` as the content type (`content-type` header / field, AMQP
//! `content_type`) and the data as the body (the `data` field on Redis). Readers accept both
//! modes, so a reload may switch publishers while subscribers run; extension attributes read
//! from binary mode come back as strings. Every event carries `id`, `source`, `type`, `time`
//! and `datacontenttype` (missing ones are filled in at publish).
//! Retries happen in the subscriber: attempt `n` failing waits
//! `min(initial_backoff * 2^(n-1), max_backoff)`; after `max_attempts` (or a
//! [`Nack::reject`]) the event, with extension attributes `deadlettertopic`,
//! `deadletterattempts` and `deadletterreason`, is published to `dead_letter_topic` (routed
//! like any topic) and the original acknowledged. If that publish fails the original stays
//! unacknowledged, so a durable broker delivers it again.
//!
//! # Dynamic fields
//!
//! A reload builds the next routing table aside: engines whose settings changed (or that were
//! added) are connected and checked within their `connect_timeout`; subscriptions whose engine
//! changes are set up on the new one (consumer group, durable consumer) before anything is
//! swapped. Commit swaps the table (new publishes go to the new engines), starts the moved
//! subscriptions and stops their old readers; handlers already running finish and acknowledge
//! on the old connection, and consumers resume from the broker's acknowledged position. A
//! failed prepare leaves everything running untouched. `delivery.concurrency` resizes every
//! subscription's handler pool at commit. Engine `type` and `prefix` are static.
//!
//! # Health
//!
//! One report per engine (module `eventbus`, component the engine's name), see
//! [`MessageBus`]'s `HealthProvider` impl: a publish → read round trip on `health.topic`
//! within `health.timeout` (unhealthy when it fails: the broker is unreachable), degraded
//! when a subscription's lag passes `health.max_lag` or more than `health.max_dropped` events
//! were dropped since the previous check. Details carry `connected`, `round_trip_ms`, `lag`,
//! `pending`, `dropped` and each subscription's backlog.
//!
//! # Events
//!
//! From `/modular/modules/eventbus`:
//!
//! | type | when | data |
//! |---|---|---|
//! | `com.modular.eventbus.connection.established` | an engine connected at start-up | `engine`, `type`, `address` |
//! | `com.modular.eventbus.connection.lost` | a publish or probe could not reach a broker that the last one could | `engine`, `type`, `address`, `error` |
//! | `com.modular.eventbus.connection.restored` | the broker is reachable again | `engine`, `type`, `address` |
//! | `com.modular.eventbus.delivery.dead_lettered` | an event was dead-lettered | `engine`, `topic`, `pattern`, `group`, `event_id`, `attempts`, `reason`, `dead_letter_topic` |
//! | `com.modular.eventbus.engine.reloaded` | a reload was committed | `fields`, `version`, `reconnected` |
//! | `com.modular.eventbus.reload.aborted` | a prepared reload was dropped | `version` |
//!
//! With `forward` set, the framework's events whose type matches are republished unchanged
//! (same id, source, type) to `forward.topic`.
//!
//! # Metrics
//!
//! See the `metrics` module's table: published, publish failures, dropped (per engine);
//! delivered, acked, nacked, dead-lettered and handler duration (per engine and subscription
//! pattern); lag (per engine, pattern and group, set by each health check).
//!
//! # Feature flags
//!
//! - `redis` (off by default): the `redis` engine (Redis Streams, consumer groups).
//! - `nats` (off by default): the `nats` engine (JetStream, durable pull consumers, core NATS
//!   subjects for `core_topics`; TLS on aws-lc-rs, the workspace's one crypto provider).
//! - `amqp` (off by default): the `amqp` engine (RabbitMQ through lapin 4 on tokio, plain
//!   `amqp://`).
//! - `mqtt` (off by default): the `mqtt` engine (MQTT 3.1.1 through rumqttc 0.25 without its
//!   TLS stack, plain `mqtt://`).
//!
//! # Not yet
//!
//! TLS for `amqp` and `mqtt`.

#[cfg(feature = "amqp")]
mod amqp;
mod binary;
mod broker;
mod config;
mod engine;
mod error;
mod event;
mod forward;
mod health;
mod memory;
mod metrics;
mod module;
#[cfg(feature = "mqtt")]
mod mqtt;
#[cfg(feature = "nats")]
mod nats;
#[cfg(feature = "redis")]
mod redis;
mod reload;
mod service;
mod topic;

pub use crate::config::{
    DEFAULT_SOURCE, DeliveryConfig, EngineConfig, EngineType, EventbusConfig, EventbusHealthConfig,
    ForwardConfig, Overflow, RouteConfig, WireMode,
};
pub use crate::error::EventbusError;
pub use crate::event::wrap;
pub use crate::module::EventbusModule;
pub use crate::service::{Delivering, Delivery, HandlerResult, MessageBus, Nack, Subscription};
pub use crate::topic::Pattern;
pub use cloudevents::Event;
