//! The `amqp` engine: RabbitMQ through lapin. One durable topic exchange (`<prefix>`, default
//! `eventbus`) takes every topic as its routing key; bus wildcards map to AMQP ones (`*` → `*`,
//! `>` → `#`, and a delivered topic is checked against the bus pattern, since `#` also matches
//! zero tokens). A consumer group is a durable queue `<prefix>.<group>.<pattern>` shared by its
//! members; a fan-out subscriber gets an exclusive, auto-deleted queue of its own. Publishes are
//! persistent and wait for the publisher confirm within `publish_timeout`; deliveries are
//! settled with manual acks (`basic.ack`, `basic.nack` with requeue).
//!
//! RabbitMQ has no per-message ack deadline short enough for a visibility timeout, so the
//! engine keeps one: a delivery not settled within `visibility_timeout` is requeued
//! (`basic.nack`) and goes to a member of the group again; a late ack of it is a no-op. A
//! connection lost is re-opened by the next publish, probe or reader (which re-declares its
//! queue and binding); the broker requeues what the lost connection had unacknowledged.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use cloudevents::Event;
use futures::StreamExt as _;
use lapin::options::{
    BasicAckOptions, BasicConsumeOptions, BasicGetOptions, BasicNackOptions, BasicPublishOptions,
    BasicQosOptions, ConfirmSelectOptions, ExchangeDeclareOptions, QueueBindOptions,
    QueueDeclareOptions,
};
use lapin::types::{AMQPValue, FieldTable};
use lapin::{
    BasicProperties, Channel, Confirmation, Connection, ConnectionProperties, ExchangeKind,
};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::broker::{Started, Stoppable};
use crate::config::{EngineConfig, EngineType, WireMode};
use crate::engine::{
    Acker, Engine, EngineStats, Incoming, PendingSubscription, SubscribeSpec, SubscriptionStats,
};
use crate::error::EventbusError;
use crate::topic::Pattern;

/// The default exchange name (and queue name prefix).
pub(crate) const DEFAULT_PREFIX: &str = "eventbus";
/// The wait after a failed (re)connection or consume before the next attempt.
const RETRY: Duration = Duration::from_millis(200);

pub(crate) struct AmqpEngine {
    name: String,
    link: Arc<Link>,
    prefix: String,
    publish_timeout: Duration,
    connect_timeout: Duration,
    visibility_timeout: Duration,
    mode: WireMode,
    subscriptions: Started<Tracked>,
}

/// A started subscription, for stats.
struct Tracked {
    spec: SubscribeSpec,
    queue: String,
    pending: Arc<AtomicU64>,
    stop: CancellationToken,
}

impl Stoppable for Tracked {
    fn stop_token(&self) -> &CancellationToken {
        &self.stop
    }
}

/// The engine's connection, re-opened on demand after it broke.
struct Link {
    name: String,
    url: String,
    address: String,
    exchange: String,
    connect_timeout: Duration,
    live: tokio::sync::Mutex<Option<Arc<Live>>>,
}

/// One open connection and its publishing channel (confirm mode).
struct Live {
    connection: Connection,
    publisher: Channel,
}

impl Live {
    fn usable(&self) -> bool {
        self.connection.status().connected() && self.publisher.status().connected()
    }
}

impl Link {
    /// The open connection, re-opened (within `connect_timeout`) when it broke.
    async fn get(&self) -> Result<Arc<Live>, EventbusError> {
        let mut live = self.live.lock().await;
        if let Some(current) = live.as_ref()
            && current.usable()
        {
            return Ok(Arc::clone(current));
        }
        let opened = Arc::new(self.open().await?);
        if let Some(old) = live.replace(Arc::clone(&opened)) {
            tokio::spawn(async move {
                let _ = old.connection.close(200, "replaced".into()).await;
            });
        }
        Ok(opened)
    }

    /// Drops `broken` (a publish on it timed out) so the next [`Link::get`] re-opens.
    async fn discard(&self, broken: &Arc<Live>) {
        let mut live = self.live.lock().await;
        if live.as_ref().is_some_and(|l| Arc::ptr_eq(l, broken)) {
            live.take();
        }
    }

    fn connect_error(&self, reason: String) -> EventbusError {
        EventbusError::Connect {
            engine: self.name.clone(),
            address: self.address.clone(),
            timeout: self.connect_timeout,
            reason,
        }
    }

    async fn open(&self) -> Result<Live, EventbusError> {
        let opened = tokio::time::timeout(self.connect_timeout, async {
            let connection = Connection::connect(
                &self.url,
                ConnectionProperties::default()
                    .with_connection_name(format!("modular-eventbus/{}", self.name).into()),
            )
            .await
            .map_err(|e| scrub(&e.to_string(), &self.url))?;
            let publisher = connection
                .create_channel()
                .await
                .map_err(|e| e.to_string())?;
            publisher
                .confirm_select(ConfirmSelectOptions::default())
                .await
                .map_err(|e| e.to_string())?;
            publisher
                .exchange_declare(
                    self.exchange.as_str().into(),
                    ExchangeKind::Topic,
                    ExchangeDeclareOptions {
                        durable: true,
                        ..ExchangeDeclareOptions::default()
                    },
                    FieldTable::default(),
                )
                .await
                .map_err(|e| format!("exchange `{}`: {e}", self.exchange))?;
            Ok::<_, String>(Live {
                connection,
                publisher,
            })
        })
        .await;
        match opened {
            Ok(Ok(live)) => Ok(live),
            Ok(Err(reason)) => Err(self.connect_error(reason)),
            Err(_) => Err(self.connect_error("no answer in time".to_owned())),
        }
    }
}

impl AmqpEngine {
    pub(crate) async fn connect(name: &str, config: &EngineConfig) -> Result<Self, EventbusError> {
        let url = config.url_exposed().to_owned();
        let prefix = config
            .prefix
            .clone()
            .unwrap_or_else(|| DEFAULT_PREFIX.to_owned());
        let link = Arc::new(Link {
            name: name.to_owned(),
            address: crate::broker::address_of(&url),
            url,
            exchange: prefix.clone(),
            connect_timeout: config.connect_timeout,
            live: tokio::sync::Mutex::new(None),
        });
        link.get().await?;
        Ok(Self {
            name: name.to_owned(),
            link,
            prefix,
            publish_timeout: config.publish_timeout,
            connect_timeout: config.connect_timeout,
            visibility_timeout: config.visibility_timeout,
            mode: config.mode,
            subscriptions: Started::new(),
        })
    }

    fn publish_error(&self, topic: &str, reason: String) -> EventbusError {
        EventbusError::Publish {
            engine: self.name.clone(),
            topic: topic.to_owned(),
            reason,
        }
    }

    /// Publishes `message` (body and properties) and waits for the confirm.
    async fn send(
        &self,
        exchange: &str,
        routing_key: &str,
        topic: &str,
        message: (Vec<u8>, BasicProperties),
        timeout: Duration,
        operation: &'static str,
    ) -> Result<Arc<Live>, EventbusError> {
        let (payload, properties) = message;
        let result = tokio::time::timeout(timeout, async {
            let live = self.link.get().await?;
            let confirm = live
                .publisher
                .basic_publish(
                    exchange.into(),
                    routing_key.into(),
                    BasicPublishOptions::default(),
                    &payload,
                    properties,
                )
                .await
                .map_err(|e| self.publish_error(topic, e.to_string()))?;
            let confirmation = confirm
                .await
                .map_err(|e| self.publish_error(topic, e.to_string()))?;
            Ok::<_, EventbusError>((live, confirmation))
        })
        .await;
        match result {
            Ok(Ok((live, Confirmation::Ack(_) | Confirmation::NotRequested))) => Ok(live),
            Ok(Ok((_, Confirmation::Nack(_)))) => Err(self.publish_error(
                topic,
                "the broker refused the event (publisher nack)".to_owned(),
            )),
            Ok(Err(error)) => Err(error),
            Err(_) => {
                // A connection that sat on a publish this long is not trusted again.
                if let Ok(live) = self.link.live.try_lock().map(|l| l.clone())
                    && let Some(live) = live
                {
                    self.link.discard(&live).await;
                }
                Err(EventbusError::Timeout {
                    engine: self.name.clone(),
                    operation,
                    timeout,
                })
            }
        }
    }
}

/// The AMQP binding key of a bus pattern: `*` stays, `>` becomes `#`.
pub(crate) fn binding_key(pattern: &Pattern) -> String {
    pattern
        .as_str()
        .split('.')
        .map(|t| if t == ">" { "#" } else { t })
        .collect::<Vec<_>>()
        .join(".")
}

/// The queue a subscription reads: shared by a group, the subscriber's own for fan-out.
fn queue_name(prefix: &str, spec: &SubscribeSpec) -> String {
    format!("{prefix}.{}.{}", spec.group, spec.pattern.as_str())
}

/// Declares the subscription's queue and binds it to the exchange.
async fn declare(
    channel: &Channel,
    exchange: &str,
    queue: &str,
    spec: &SubscribeSpec,
) -> Result<u32, lapin::Error> {
    let options = if spec.fan_out {
        QueueDeclareOptions {
            exclusive: true,
            auto_delete: true,
            ..QueueDeclareOptions::default()
        }
    } else {
        QueueDeclareOptions {
            durable: true,
            ..QueueDeclareOptions::default()
        }
    };
    let declared = channel
        .queue_declare(queue.into(), options, FieldTable::default())
        .await?;
    channel
        .queue_bind(
            queue.into(),
            exchange.into(),
            binding_key(&spec.pattern).as_str().into(),
            QueueBindOptions::default(),
            FieldTable::default(),
        )
        .await?;
    Ok(declared.message_count())
}

#[async_trait::async_trait]
impl Engine for AmqpEngine {
    fn kind(&self) -> EngineType {
        EngineType::Amqp
    }

    fn address(&self) -> Option<String> {
        Some(self.link.address.clone())
    }

    async fn publish(&self, topic: &str, event: &Event) -> Result<(), EventbusError> {
        let (payload, properties) = encode(event, self.mode)?;
        self.send(
            &self.prefix,
            topic,
            topic,
            (payload, properties),
            self.publish_timeout,
            "publish",
        )
        .await
        .map(drop)
    }

    async fn subscribe(&self, spec: &SubscribeSpec) -> Result<PendingSubscription, EventbusError> {
        let queue = queue_name(&self.prefix, spec);
        let subscribe_error = |reason: String| EventbusError::Subscribe {
            engine: self.name.clone(),
            pattern: spec.pattern.to_string(),
            reason,
        };
        // Declared now, so events published once `subscribe` returns are kept for it.
        tokio::time::timeout(self.connect_timeout, async {
            let live = self.link.get().await.map_err(|e| e.to_string())?;
            let channel = live
                .connection
                .create_channel()
                .await
                .map_err(|e| e.to_string())?;
            declare(&channel, &self.prefix, &queue, spec)
                .await
                .map_err(|e| e.to_string())?;
            let _ = channel.close(200, "declared".into()).await;
            Ok::<(), String>(())
        })
        .await
        .map_err(|_| subscribe_error("no answer in time".to_owned()))?
        .map_err(subscribe_error)?;
        let (tx, rx) = mpsc::channel(crate::engine::PUMP_BUFFER);
        let stop = CancellationToken::new();
        let pending = Arc::new(AtomicU64::new(0));
        let pump = Pump {
            engine: self.name.clone(),
            link: Arc::clone(&self.link),
            queue: queue.clone(),
            spec: spec.clone(),
            pending: Arc::clone(&pending),
            visibility_timeout: self.visibility_timeout,
            timeout: self.publish_timeout,
            tx,
            stop: stop.clone(),
        };
        let tracked = Tracked {
            spec: spec.clone(),
            queue,
            pending,
            stop: stop.clone(),
        };
        Ok(self.subscriptions.pending(rx, stop, tracked, move |tasks| {
            tasks.spawn(pump.run());
        }))
    }

    async fn probe(&self, topic: &str, timeout: Duration) -> Result<(), EventbusError> {
        let queue = format!("{}.probe.{topic}", self.prefix);
        let started = tokio::time::Instant::now();
        let declared = tokio::time::timeout(timeout, async {
            let live = self.link.get().await?;
            let mut arguments = FieldTable::default();
            arguments.insert("x-max-length".into(), AMQPValue::LongInt(16));
            live.publisher
                .queue_declare(
                    queue.as_str().into(),
                    QueueDeclareOptions::default(),
                    arguments,
                )
                .await
                .map_err(|e| self.publish_error(topic, e.to_string()))?;
            Ok::<_, EventbusError>(live)
        })
        .await
        .map_err(|_| EventbusError::Timeout {
            engine: self.name.clone(),
            operation: "health probe",
            timeout,
        })??;
        let (payload, properties) =
            encode(&crate::event::probe_event(topic), WireMode::Structured)?;
        let left = timeout.saturating_sub(started.elapsed());
        self.send(
            "",
            &queue,
            topic,
            (payload, properties),
            left,
            "health probe",
        )
        .await?;
        let read = tokio::time::timeout(
            timeout.saturating_sub(started.elapsed()),
            declared
                .publisher
                .basic_get(queue.as_str().into(), BasicGetOptions { no_ack: true }),
        )
        .await;
        match read {
            Ok(Ok(Some(_))) => Ok(()),
            Ok(Ok(None)) => {
                Err(self.publish_error(topic, "the probe was not read back".to_owned()))
            }
            Ok(Err(e)) => Err(self.publish_error(topic, e.to_string())),
            Err(_) => Err(EventbusError::Timeout {
                engine: self.name.clone(),
                operation: "health probe",
                timeout,
            }),
        }
    }

    async fn stats(&self) -> EngineStats {
        let tracked: Vec<(SubscribeSpec, String, u64)> = self.subscriptions.map(|t| {
            (
                t.spec.clone(),
                t.queue.clone(),
                t.pending.load(Ordering::Relaxed),
            )
        });
        let mut out = Vec::new();
        let channel = tokio::time::timeout(self.publish_timeout, async {
            let live = self.link.get().await.ok()?;
            live.connection.create_channel().await.ok()
        })
        .await
        .unwrap_or_default();
        for (spec, queue, pending) in tracked {
            let mut lag = 0;
            if let Some(channel) = channel.as_ref().filter(|c| c.status().connected()) {
                // A passive declare: the ready count, and no side effect (a missing queue only
                // closes this throwaway channel).
                let declared = tokio::time::timeout(
                    self.publish_timeout,
                    channel.queue_declare(
                        queue.as_str().into(),
                        QueueDeclareOptions {
                            passive: true,
                            ..QueueDeclareOptions::default()
                        },
                        FieldTable::default(),
                    ),
                )
                .await;
                if let Ok(Ok(queue)) = declared {
                    lag = u64::from(queue.message_count());
                }
            }
            out.push(SubscriptionStats {
                pattern: spec.pattern.to_string(),
                group: spec.group.clone(),
                lag,
                pending,
            });
        }
        if let Some(channel) = channel {
            tokio::spawn(async move {
                let _ = channel.close(200, "stats".into()).await;
            });
        }
        EngineStats {
            dropped: 0,
            queue_size: None,
            subscriptions: out,
        }
    }
}

/// One subscription member's reader: a channel and a consumer on the queue, re-opened after
/// the connection broke.
struct Pump {
    engine: String,
    link: Arc<Link>,
    queue: String,
    spec: SubscribeSpec,
    pending: Arc<AtomicU64>,
    visibility_timeout: Duration,
    timeout: Duration,
    tx: mpsc::Sender<Incoming>,
    stop: CancellationToken,
}

impl Pump {
    async fn run(self) {
        let mut last: Option<(Channel, lapin::types::ShortString)> = None;
        while !self.stop.is_cancelled() {
            let consumer = tokio::select! {
                opened = self.open() => opened,
                () = self.stop.cancelled() => break,
            };
            let (channel, mut consumer) = match consumer {
                Ok(opened) => opened,
                Err(error) => {
                    tracing::debug!(module = "eventbus", engine = %self.engine, queue = %self.queue, %error, "amqp consumer could not start; retrying");
                    self.pause().await;
                    continue;
                }
            };
            last = Some((channel.clone(), consumer.tag()));
            loop {
                let next = tokio::select! {
                    next = consumer.next() => next,
                    () = self.stop.cancelled() => break,
                };
                match next {
                    Some(Ok(delivery)) => {
                        if !self.forward(&channel, delivery).await {
                            self.stop.cancel();
                            break;
                        }
                    }
                    Some(Err(error)) => {
                        tracing::debug!(module = "eventbus", engine = %self.engine, queue = %self.queue, %error, "amqp consumer failed; reconnecting");
                        self.pause().await;
                        break;
                    }
                    None => {
                        self.pause().await;
                        break;
                    }
                }
            }
        }
        let Some((channel, tag)) = last else { return };
        // Stops new deliveries (a fan-out queue, auto-delete, goes with its consumer); the
        // channel stays open until the handlers still running settled what they hold, then
        // closes (anything left unsettled is requeued by the broker).
        let _ = tokio::time::timeout(
            self.timeout,
            channel.basic_cancel(tag, lapin::options::BasicCancelOptions::default()),
        )
        .await;
        let deadline = tokio::time::Instant::now() + self.visibility_timeout + self.timeout;
        while self.pending.load(Ordering::Relaxed) > 0 && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let _ = tokio::time::timeout(self.timeout, channel.close(200, "unsubscribed".into())).await;
    }

    async fn open(&self) -> Result<(Channel, lapin::Consumer), String> {
        let live = self.link.get().await.map_err(|e| e.to_string())?;
        let channel = live
            .connection
            .create_channel()
            .await
            .map_err(|e| e.to_string())?;
        let prefetch = u16::try_from(crate::engine::PUMP_BUFFER).unwrap_or(u16::MAX);
        channel
            .basic_qos(prefetch, BasicQosOptions::default())
            .await
            .map_err(|e| e.to_string())?;
        declare(&channel, &self.link.exchange, &self.queue, &self.spec)
            .await
            .map_err(|e| e.to_string())?;
        let consumer = channel
            .basic_consume(
                self.queue.as_str().into(),
                format!("c-{}", uuid::Uuid::now_v7().simple()).into(),
                BasicConsumeOptions {
                    exclusive: false,
                    ..BasicConsumeOptions::default()
                },
                FieldTable::default(),
            )
            .await
            .map_err(|e| e.to_string())?;
        Ok((channel, consumer))
    }

    async fn pause(&self) {
        tokio::select! {
            () = tokio::time::sleep(RETRY) => {}
            () = self.stop.cancelled() => {}
        }
    }

    /// Hands one delivery to the dispatcher; `false` when the subscription is gone.
    async fn forward(&self, _channel: &Channel, delivery: lapin::message::Delivery) -> bool {
        let topic = delivery.routing_key.as_str().to_owned();
        let mut acker = AmqpAcker::new(
            delivery.acker.clone(),
            self.engine.clone(),
            topic.clone(),
            self.timeout,
            Arc::clone(&self.pending),
        );
        if !self.spec.pattern.matches(&topic) {
            // `#` matched zero tokens, which `>` does not.
            let _ = Box::new(acker).ack().await;
            return true;
        }
        let event = match decode(&delivery.data, &delivery.properties) {
            Ok(event) => event,
            Err(reason) => {
                tracing::warn!(module = "eventbus", engine = %self.engine, topic, %reason, "undecodable message acknowledged and skipped");
                let _ = Box::new(acker).ack().await;
                return true;
            }
        };
        acker.expire_after(self.visibility_timeout);
        let incoming = Incoming {
            topic,
            event,
            acker: Some(Box::new(acker)),
        };
        tokio::select! {
            sent = self.tx.send(incoming) => sent.is_ok(),
            () = self.stop.cancelled() => false,
        }
    }
}

/// Settles one delivery, once: by the handler's outcome, or by the visibility timeout
/// (requeued), whichever comes first.
struct AmqpAcker {
    state: Arc<AckState>,
    timer: Option<tokio::task::AbortHandle>,
}

struct AckState {
    acker: lapin::Acker,
    engine: String,
    topic: String,
    timeout: Duration,
    settled: AtomicBool,
    pending: Arc<AtomicU64>,
}

impl AmqpAcker {
    fn new(
        acker: lapin::Acker,
        engine: String,
        topic: String,
        timeout: Duration,
        pending: Arc<AtomicU64>,
    ) -> Self {
        pending.fetch_add(1, Ordering::Relaxed);
        Self {
            state: Arc::new(AckState {
                acker,
                engine,
                topic,
                timeout,
                settled: AtomicBool::new(false),
                pending,
            }),
            timer: None,
        }
    }

    /// Requeues the delivery if nobody settled it within `visibility`.
    fn expire_after(&mut self, visibility: Duration) {
        let state = Arc::clone(&self.state);
        let timer = tokio::spawn(async move {
            tokio::time::sleep(visibility).await;
            let _ = state.settle(false).await;
        });
        self.timer = Some(timer.abort_handle());
    }
}

impl AckState {
    async fn settle(&self, ack: bool) -> Result<(), EventbusError> {
        if self.settled.swap(true, Ordering::AcqRel) {
            // Requeued by the visibility timeout already: the broker delivers it again.
            return Ok(());
        }
        self.pending.fetch_sub(1, Ordering::Relaxed);
        let result = if ack {
            tokio::time::timeout(self.timeout, self.acker.ack(BasicAckOptions::default())).await
        } else {
            tokio::time::timeout(
                self.timeout,
                self.acker.nack(BasicNackOptions {
                    requeue: true,
                    ..BasicNackOptions::default()
                }),
            )
            .await
        };
        match result {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(e)) => Err(EventbusError::Publish {
                engine: self.engine.clone(),
                topic: self.topic.clone(),
                reason: format!("{} failed: {e}", if ack { "ack" } else { "nack" }),
            }),
            Err(_) => Err(EventbusError::Timeout {
                engine: self.engine.clone(),
                operation: if ack { "ack" } else { "nack" },
                timeout: self.timeout,
            }),
        }
    }
}

impl Drop for AmqpAcker {
    fn drop(&mut self) {
        if let Some(timer) = self.timer.take() {
            timer.abort();
        }
    }
}

#[async_trait::async_trait]
impl Acker for AmqpAcker {
    async fn ack(self: Box<Self>) -> Result<(), EventbusError> {
        let state = Arc::clone(&self.state);
        drop(self);
        state.settle(true).await
    }

    async fn nack(self: Box<Self>) -> Result<(), EventbusError> {
        let state = Arc::clone(&self.state);
        drop(self);
        state.settle(false).await
    }
}

/// The body and properties of `event` in `mode` (binary: `cloudEvents_*` headers).
fn encode(event: &Event, mode: WireMode) -> Result<(Vec<u8>, BasicProperties), EventbusError> {
    let message = crate::binary::encode(event, mode, "cloudEvents_")?;
    let mut properties = BasicProperties::default().with_delivery_mode(2);
    if !message.headers.is_empty() {
        let mut table = FieldTable::default();
        for (key, value) in message.headers {
            table.insert(key.into(), AMQPValue::LongString(value.into()));
        }
        properties = properties.with_headers(table);
    }
    if let Some(content_type) = message.content_type {
        properties = properties.with_content_type(content_type.into());
    }
    Ok((message.body, properties))
}

/// The event in a delivery, in either mode.
fn decode(body: &[u8], properties: &BasicProperties) -> Result<Event, String> {
    let headers: Vec<(String, String)> = properties
        .headers()
        .as_ref()
        .map(|table| {
            table
                .inner()
                .iter()
                .filter_map(|(k, v)| {
                    let value = match v {
                        AMQPValue::LongString(s) => {
                            String::from_utf8_lossy(s.as_bytes()).into_owned()
                        }
                        AMQPValue::ShortString(s) => s.as_str().to_owned(),
                        _ => return None,
                    };
                    Some((k.as_str().to_owned(), value))
                })
                .collect()
        })
        .unwrap_or_default();
    let content_type = properties
        .content_type()
        .as_ref()
        .map(|c| c.as_str().to_owned());
    crate::binary::decode(&headers, content_type.as_deref(), body)
}

/// lapin errors may quote the URI; drop it.
fn scrub(message: &str, url: &str) -> String {
    if url.is_empty() {
        message.to_owned()
    } else {
        message.replace(url, "[url]")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wildcards_map_to_amqp_binding_keys() {
        let key = |p: &str| binding_key(&Pattern::parse(p).unwrap_or_else(|e| panic!("{e}")));
        assert_eq!(key("orders.*"), "orders.*");
        assert_eq!(key("orders.>"), "orders.#");
        assert_eq!(key("a.*.c.>"), "a.*.c.#");
        assert_eq!(key("orders.created"), "orders.created");
    }
}
