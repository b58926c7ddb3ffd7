//! The engine seam: what every backend (memory, Redis Streams, NATS JetStream) does for the
//! bus. The bus owns routing, retries, dead-lettering and concurrency; an engine moves bytes.

use std::sync::Arc;
use std::time::Duration;

use cloudevents::Event;
use tokio::sync::{Mutex, mpsc};
use tokio_util::sync::CancellationToken;

use crate::config::EngineType;
use crate::error::EventbusError;
use crate::topic::Pattern;

/// An event taken from an engine, with the handle that settles it.
pub(crate) struct Incoming {
    pub(crate) topic: String,
    pub(crate) event: Event,
    pub(crate) acker: Option<Box<dyn Acker>>,
}

/// Settles one delivery on a durable engine.
#[async_trait::async_trait]
pub(crate) trait Acker: Send + Sync {
    /// Done: the broker forgets the event for this group.
    async fn ack(self: Box<Self>) -> Result<(), EventbusError>;
    /// Not done: the broker delivers it again (after the visibility timeout at the latest).
    async fn nack(self: Box<Self>) -> Result<(), EventbusError>;
}

/// Where a subscription's dispatcher reads from; members of a memory consumer group share one.
pub(crate) type Source = Arc<Mutex<mpsc::Receiver<Incoming>>>;

/// What a subscription asks an engine for.
#[derive(Clone, Debug)]
pub(crate) struct SubscribeSpec {
    pub(crate) pattern: Pattern,
    /// The consumer group: the user's group, or a unique one for a fan-out subscriber.
    pub(crate) group: String,
    /// Whether `group` is a unique fan-out group (removed from the broker when it stops).
    pub(crate) fan_out: bool,
}

/// A subscription set up on an engine, not yet started.
pub(crate) struct PendingSubscription {
    pub(crate) source: Source,
    /// Stops the engine side (pump, memory group); the dispatcher then drains what is queued.
    pub(crate) stop: CancellationToken,
    /// Starts delivering (spawns the pump on the bus's task tracker, so shutdown waits for it);
    /// called at commit, or at once for a new subscription.
    pub(crate) start: Box<dyn FnOnce(&tokio_util::task::TaskTracker) + Send>,
}

/// One subscription's backlog, as the broker reports it.
#[derive(Clone, Debug, Default, serde::Serialize)]
pub(crate) struct SubscriptionStats {
    pub(crate) pattern: String,
    pub(crate) group: String,
    /// Events not yet delivered to the group.
    pub(crate) lag: u64,
    /// Events delivered but not acknowledged.
    pub(crate) pending: u64,
}

/// An engine's counters.
#[derive(Clone, Debug, Default)]
pub(crate) struct EngineStats {
    pub(crate) dropped: u64,
    /// The memory engine's queue length per subscription.
    pub(crate) queue_size: Option<usize>,
    pub(crate) subscriptions: Vec<SubscriptionStats>,
}

/// A backend.
#[async_trait::async_trait]
pub(crate) trait Engine: Send + Sync + 'static {
    fn kind(&self) -> EngineType;
    /// `host:port` of a broker engine.
    fn address(&self) -> Option<String>;
    /// Publishes; returns once the broker accepted it (durable engines) or it is queued.
    async fn publish(&self, topic: &str, event: &Event) -> Result<(), EventbusError>;
    /// Sets up a subscription (consumer group, durable consumer) without delivering yet.
    async fn subscribe(&self, spec: &SubscribeSpec) -> Result<PendingSubscription, EventbusError>;
    /// A publish → read round trip on `topic`, within `timeout`.
    async fn probe(&self, topic: &str, timeout: Duration) -> Result<(), EventbusError>;
    /// Dropped events and each subscription's backlog.
    async fn stats(&self) -> EngineStats;
}

/// Encodes an event as CloudEvents structured-mode JSON.
#[cfg_attr(
    not(any(
        feature = "redis",
        feature = "nats",
        feature = "amqp",
        feature = "mqtt"
    )),
    allow(dead_code)
)]
pub(crate) fn encode(event: &Event) -> Result<Vec<u8>, EventbusError> {
    serde_json::to_vec(event).map_err(|e| EventbusError::Encode(e.to_string()))
}

/// Decodes CloudEvents structured-mode JSON.
#[cfg_attr(
    not(any(
        feature = "redis",
        feature = "nats",
        feature = "amqp",
        feature = "mqtt"
    )),
    allow(dead_code)
)]
pub(crate) fn decode(bytes: &[u8]) -> Result<Event, String> {
    serde_json::from_slice(bytes).map_err(|e| e.to_string())
}

/// The channel between a broker pump and its dispatcher: small, so a slow handler pool
/// leaves events on the broker (where another member may take them) rather than in memory.
#[cfg_attr(
    not(any(
        feature = "redis",
        feature = "nats",
        feature = "amqp",
        feature = "mqtt"
    )),
    allow(dead_code)
)]
pub(crate) const PUMP_BUFFER: usize = 64;
