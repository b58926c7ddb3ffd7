//! The eventbus module of modular: CloudEvents 1.0 publish/subscribe on an in-process memory
//! engine, Redis Streams and NATS JetStream, several engines at once with routing rules,
//! reloadable without a restart and health-checked per engine.
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
//!       type: nats                          # memory | redis | nats; static
//!       url: nats://user:pass@nats:4222     # dynamic; a secret
//!       connect_timeout: 2s                 # dynamic
//!       publish_timeout: 5s                 # dynamic
//!       visibility_timeout: 30s             # dynamic (JetStream ack_wait / Redis XAUTOCLAIM idle)
//!       prefix: eventbus                    # static (subject prefix, stream EVENTBUS)
//!     streams: { type: redis, url: "redis://127.0.0.1:6379/0" }
//!   default: fast                           # dynamic; unset: the first engine by name
//!   routes:                                 # dynamic; first match wins
//!     - { topics: ["orders.*", "payments.>"], engine: durable }
//!     - { topics: ["audit.>"], engine: streams }
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
//! `type` (or one this build lacks), a route or `default` naming a missing engine, a wildcard
//! syntax error in `routes[i].topics[j]`, a URL without a host or with the wrong scheme, zero
//! sizes or timeouts, and unknown keys.
//!
//! # Delivery semantics
//!
//! | engine | guarantee | publish returns | redelivery |
//! |---|---|---|---|
//! | `memory` | at-most-once | once queued for every matching subscription; a full queue drops (counted, `Dropped` error), blocks, or blocks up to `block_timeout` | none: an event whose handler fails for good is dead-lettered |
//! | `redis` | at-least-once | after `XADD` answered | unacknowledged entries are re-claimed (`XAUTOCLAIM`) by a group member after `visibility_timeout` |
//! | `nats` | at-least-once | after the JetStream publish ack | unacknowledged messages are redelivered after `ack_wait` (`visibility_timeout`) |
//!
//! Events travel as CloudEvents structured-mode JSON; every event carries `id`, `source`,
//! `type`, `time` and `datacontenttype` (missing ones are filled in at publish).
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
//! - `nats` (off by default): the `nats` engine (JetStream, durable pull consumers; TLS on
//!   aws-lc-rs, the workspace's one crypto provider).
//!
//! # Not yet
//!
//! RabbitMQ (`amqp`, lapin) and MQTT (rumqttc) engines; NATS core (fire-and-forget) subjects
//! (every `nats` topic goes through JetStream); CloudEvents binary mode (structured JSON
//! everywhere); trimming of Redis streams (`XADD` without `MAXLEN`: trim them with a retention
//! job of your own).

#[cfg(feature = "amqp")]
mod amqp;
mod binary;
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
