//! The `nats` engine: JetStream. One stream (`<PREFIX>`, subjects `<prefix>.>`) holds every
//! topic as subject `<prefix>.<topic>`; each subscription group is a durable pull consumer
//! filtered by its pattern (NATS wildcards are the bus's wildcards), fan-out subscribers get
//! an ephemeral consumer each. Publishes wait for the JetStream ack; deliveries are settled
//! with explicit acks, and unacknowledged ones come back after `ack_wait`
//! (`visibility_timeout`). Stream and consumers are created when missing.
//!
//! Topics matching `core_topics` skip JetStream: they travel as core NATS subjects
//! `_core.<prefix>.<topic>` (outside the stream's `<prefix>.>`, so the stream never stores
//! them). A core publish returns once the client flushed it to the server (an error when the
//! client is not connected or the flush does not finish within `publish_timeout`); a group is
//! a core queue group, a fan-out subscriber a plain subscription; deliveries have no ack, so a
//! handler that fails is retried in the subscriber and dead-lettered like on the memory engine,
//! but nothing is ever redelivered by the server (at-most-once). A subscription whose pattern
//! overlaps both kinds of topics reads from both.

use std::time::Duration;

use async_nats::jetstream::{self, AckKind, consumer, stream};
use cloudevents::Event;
use futures::StreamExt as _;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::broker::{Started, Stoppable};
use crate::config::{EngineConfig, EngineType, WireMode};
use crate::engine::{
    Acker, Engine, EngineStats, Incoming, PendingSubscription, SubscribeSpec, SubscriptionStats,
};
use crate::error::EventbusError;
use crate::topic::Pattern;

/// The default subject prefix (stream `EVENTBUS`).
pub(crate) const DEFAULT_PREFIX: &str = "eventbus";
/// The wait after a failed consumer read before the next attempt.
const RETRY: Duration = Duration::from_millis(200);
/// How long an idle fan-out consumer survives its subscriber (a crash leaves nothing behind).
const FAN_OUT_INACTIVE: Duration = Duration::from_secs(30);

pub(crate) struct NatsEngine {
    name: String,
    client: async_nats::Client,
    js: jetstream::Context,
    stream: stream::Stream,
    address: String,
    prefix: String,
    publish_timeout: Duration,
    connect_timeout: Duration,
    visibility_timeout: Duration,
    mode: WireMode,
    /// `core_topics`: published and subscribed as core NATS subjects.
    core: Vec<Pattern>,
    subscriptions: Started<Tracked>,
}

struct Tracked {
    spec: SubscribeSpec,
    /// The JetStream consumer; `None` for a subscription on core subjects only.
    consumer: Option<consumer::PullConsumer>,
    stop: CancellationToken,
}

impl Stoppable for Tracked {
    fn stop_token(&self) -> &CancellationToken {
        &self.stop
    }
}

impl NatsEngine {
    pub(crate) async fn connect(name: &str, config: &EngineConfig) -> Result<Self, EventbusError> {
        modular_core::install_default_crypto_provider();
        let url = config.url_exposed();
        let address = crate::broker::address_of(url);
        let connect_error = |reason: String| EventbusError::Connect {
            engine: name.to_owned(),
            address: address.clone(),
            timeout: config.connect_timeout,
            reason,
        };
        let prefix = config
            .prefix
            .clone()
            .unwrap_or_else(|| DEFAULT_PREFIX.to_owned());
        let stream_name: String = prefix
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() {
                    c.to_ascii_uppercase()
                } else {
                    '_'
                }
            })
            .collect();
        let connected = tokio::time::timeout(config.connect_timeout, async {
            let client = async_nats::ConnectOptions::new()
                .connection_timeout(config.connect_timeout)
                .request_timeout(Some(config.publish_timeout))
                .connect(url)
                .await
                .map_err(|e| connect_error(scrub(&e.to_string(), url)))?;
            let js = jetstream::new(client.clone());
            let stream = js
                .get_or_create_stream(stream::Config {
                    name: stream_name,
                    subjects: vec![format!("{prefix}.>")],
                    ..Default::default()
                })
                .await
                .map_err(|e| connect_error(format!("jetstream stream: {e}")))?;
            Ok::<_, EventbusError>((client, js, stream))
        })
        .await
        .map_err(|_| connect_error("no answer in time".to_owned()))??;
        let (client, js, stream) = connected;
        let core = config
            .core_topics
            .iter()
            .map(|p| Pattern::parse(p).map_err(EventbusError::Topic))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Self {
            name: name.to_owned(),
            client,
            js,
            stream,
            address,
            prefix,
            publish_timeout: config.publish_timeout,
            connect_timeout: config.connect_timeout,
            visibility_timeout: config.visibility_timeout,
            mode: config.mode,
            core,
            subscriptions: Started::new(),
        })
    }

    fn subject(&self, topic: &str) -> String {
        format!("{}.{topic}", self.prefix)
    }

    /// The core NATS subject of a `core_topics` topic (or pattern).
    fn core_subject(&self, topic: &str) -> String {
        format!("_core.{}.{topic}", self.prefix)
    }

    fn is_core(&self, topic: &str) -> bool {
        self.core.iter().any(|p| p.matches(topic))
    }

    /// A core NATS publish: at-most-once, flushed so a broken connection is an error.
    async fn publish_core(
        &self,
        topic: &str,
        headers: Option<async_nats::HeaderMap>,
        payload: Vec<u8>,
    ) -> Result<(), EventbusError> {
        if self.client.connection_state() != async_nats::connection::State::Connected {
            return Err(self.publish_error(topic, "not connected to the server".to_owned()));
        }
        let subject = self.core_subject(topic);
        let result = tokio::time::timeout(self.publish_timeout, async {
            match headers {
                Some(headers) => {
                    self.client
                        .publish_with_headers(subject, headers, payload.into())
                        .await
                }
                None => self.client.publish(subject, payload.into()).await,
            }
            .map_err(|e| e.to_string())?;
            self.client.flush().await.map_err(|e| e.to_string())
        })
        .await;
        match result {
            Ok(Ok(())) => Ok(()),
            Ok(Err(reason)) => Err(self.publish_error(topic, reason)),
            Err(_) => Err(EventbusError::Timeout {
                engine: self.name.clone(),
                operation: "publish",
                timeout: self.publish_timeout,
            }),
        }
    }

    /// The core NATS subscription of `spec`: a queue group, or a plain one for fan-out.
    async fn subscribe_core(&self, spec: &SubscribeSpec) -> Result<async_nats::Subscriber, String> {
        let subject = self.core_subject(spec.pattern.as_str());
        let subscriber = tokio::time::timeout(self.connect_timeout, async {
            let subscriber = if spec.fan_out {
                self.client.subscribe(subject).await
            } else {
                self.client
                    .queue_subscribe(subject, spec.group.clone())
                    .await
            }
            .map_err(|e| e.to_string())?;
            // The server has the subscription once the flush is through.
            self.client.flush().await.map_err(|e| e.to_string())?;
            Ok::<_, String>(subscriber)
        })
        .await
        .map_err(|_| "no answer in time".to_owned())??;
        Ok(subscriber)
    }

    fn publish_error(&self, topic: &str, reason: String) -> EventbusError {
        EventbusError::Publish {
            engine: self.name.clone(),
            topic: topic.to_owned(),
            reason,
        }
    }
}

#[async_trait::async_trait]
impl Engine for NatsEngine {
    fn kind(&self) -> EngineType {
        EngineType::Nats
    }

    fn address(&self) -> Option<String> {
        Some(self.address.clone())
    }

    async fn publish(&self, topic: &str, event: &Event) -> Result<(), EventbusError> {
        let (headers, payload) = encode(event, self.mode)?;
        if self.is_core(topic) {
            return self.publish_core(topic, headers, payload).await;
        }
        let result = tokio::time::timeout(self.publish_timeout, async {
            let ack = match headers {
                Some(headers) => {
                    self.js
                        .publish_with_headers(self.subject(topic), headers, payload.into())
                        .await
                }
                None => self.js.publish(self.subject(topic), payload.into()).await,
            }
            .map_err(|e| e.to_string())?;
            ack.await.map_err(|e| e.to_string())
        })
        .await;
        match result {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(reason)) => Err(self.publish_error(topic, reason)),
            Err(_) => Err(EventbusError::Timeout {
                engine: self.name.clone(),
                operation: "publish",
                timeout: self.publish_timeout,
            }),
        }
    }

    async fn subscribe(&self, spec: &SubscribeSpec) -> Result<PendingSubscription, EventbusError> {
        let config = consumer::pull::Config {
            durable_name: (!spec.fan_out).then(|| spec.group.clone()),
            filter_subject: self.subject(spec.pattern.as_str()),
            ack_policy: consumer::AckPolicy::Explicit,
            ack_wait: self.visibility_timeout,
            deliver_policy: consumer::DeliverPolicy::New,
            inactive_threshold: if spec.fan_out {
                FAN_OUT_INACTIVE
            } else {
                Duration::ZERO
            },
            ..Default::default()
        };
        let subscribe_error = |reason: String| EventbusError::Subscribe {
            engine: self.name.clone(),
            pattern: spec.pattern.to_string(),
            reason,
        };
        // JetStream unless every topic the pattern matches is a core one; core NATS as well
        // when some are.
        let jetstream = !self.core.iter().any(|c| c.covers(&spec.pattern));
        let core = self.core.iter().any(|c| c.intersects(&spec.pattern));
        let created = if jetstream {
            let created = tokio::time::timeout(self.connect_timeout, async {
                if spec.fan_out {
                    self.stream.create_consumer(config).await
                } else {
                    self.stream
                        .get_or_create_consumer(&spec.group, config)
                        .await
                }
            })
            .await
            .map_err(|_| subscribe_error("no answer in time".to_owned()))?
            .map_err(|e| subscribe_error(e.to_string()))?;
            Some(created)
        } else {
            None
        };
        let subscriber = if core {
            Some(self.subscribe_core(spec).await.map_err(subscribe_error)?)
        } else {
            None
        };
        let (tx, rx) = mpsc::channel(crate::engine::PUMP_BUFFER);
        let stop = CancellationToken::new();
        let pump = created.clone().map(|consumer| Pump {
            engine: self.name.clone(),
            prefix: format!("{}.", self.prefix),
            consumer,
            stream: self.stream.clone(),
            fan_out: spec.fan_out,
            tx: tx.clone(),
            stop: stop.clone(),
            timeout: self.publish_timeout,
        });
        let core_pump = subscriber.map(|subscriber| CorePump {
            engine: self.name.clone(),
            prefix: format!("_core.{}.", self.prefix),
            subscriber,
            tx,
            stop: stop.clone(),
        });
        let tracked = Tracked {
            spec: spec.clone(),
            consumer: created,
            stop: stop.clone(),
        };
        Ok(self.subscriptions.pending(rx, stop, tracked, move |tasks| {
            if let Some(pump) = pump {
                tasks.spawn(pump.run());
            }
            if let Some(core_pump) = core_pump {
                tasks.spawn(core_pump.run());
            }
        }))
    }

    async fn probe(&self, topic: &str, timeout: Duration) -> Result<(), EventbusError> {
        if self.client.connection_state() != async_nats::connection::State::Connected {
            return Err(self.publish_error(topic, "not connected to the server".to_owned()));
        }
        let payload = crate::engine::encode(&crate::event::probe_event(topic))?;
        let result = tokio::time::timeout(timeout, async {
            let ack = self
                .js
                .publish(self.subject(topic), payload.into())
                .await
                .map_err(|e| e.to_string())?
                .await
                .map_err(|e| e.to_string())?;
            let read = self
                .stream
                .get_raw_message(ack.sequence)
                .await
                .map_err(|e| e.to_string())?;
            let _ = self.stream.delete_message(ack.sequence).await;
            Ok::<bool, String>(read.sequence == ack.sequence)
        })
        .await;
        match result {
            Ok(Ok(true)) => Ok(()),
            Ok(Ok(false)) => {
                Err(self.publish_error(topic, "the probe was not read back".to_owned()))
            }
            Ok(Err(reason)) => Err(self.publish_error(topic, reason)),
            Err(_) => Err(EventbusError::Timeout {
                engine: self.name.clone(),
                operation: "health probe",
                timeout,
            }),
        }
    }

    async fn stats(&self) -> EngineStats {
        let tracked: Vec<(SubscribeSpec, Option<consumer::PullConsumer>)> = self
            .subscriptions
            .map(|t| (t.spec.clone(), t.consumer.clone()));
        let mut out = Vec::new();
        for (spec, consumer) in tracked {
            let (lag, pending) = match consumer {
                Some(consumer) => {
                    match tokio::time::timeout(self.publish_timeout, consumer.get_info()).await {
                        Ok(Ok(info)) => (info.num_pending, info.num_ack_pending as u64),
                        _ => (0, 0),
                    }
                }
                // Core NATS keeps no backlog to report.
                None => (0, 0),
            };
            out.push(SubscriptionStats {
                pattern: spec.pattern.to_string(),
                group: spec.group.clone(),
                lag,
                pending,
            });
        }
        EngineStats {
            dropped: 0,
            queue_size: None,
            subscriptions: out,
        }
    }
}

struct Pump {
    engine: String,
    prefix: String,
    consumer: consumer::PullConsumer,
    stream: stream::Stream,
    fan_out: bool,
    tx: mpsc::Sender<Incoming>,
    stop: CancellationToken,
    timeout: Duration,
}

impl Pump {
    async fn run(self) {
        'outer: while !self.stop.is_cancelled() {
            let mut messages = match self.consumer.messages().await {
                Ok(messages) => messages,
                Err(error) => {
                    tracing::debug!(module = "eventbus", engine = %self.engine, %error, "jetstream consumer read failed; retrying");
                    self.pause().await;
                    continue;
                }
            };
            loop {
                let next = tokio::select! {
                    next = messages.next() => next,
                    () = self.stop.cancelled() => break 'outer,
                };
                match next {
                    Some(Ok(message)) => {
                        if !self.forward(message).await {
                            break 'outer;
                        }
                    }
                    Some(Err(error)) => {
                        tracing::debug!(module = "eventbus", engine = %self.engine, %error, "jetstream delivery error");
                    }
                    None => {
                        self.pause().await;
                        continue 'outer;
                    }
                }
            }
        }
        if self.fan_out {
            let name = self.consumer.cached_info().name.clone();
            let _ = tokio::time::timeout(self.timeout, self.stream.delete_consumer(&name)).await;
        }
    }

    async fn pause(&self) {
        tokio::select! {
            () = tokio::time::sleep(RETRY) => {}
            () = self.stop.cancelled() => {}
        }
    }

    async fn forward(&self, message: jetstream::Message) -> bool {
        let topic = message
            .subject
            .as_str()
            .strip_prefix(&self.prefix)
            .unwrap_or(message.subject.as_str())
            .to_owned();
        let event = match decode(&message) {
            Ok(event) => event,
            Err(reason) => {
                tracing::warn!(module = "eventbus", engine = %self.engine, topic, %reason, "undecodable message acknowledged and skipped");
                let _ = message.ack().await;
                return true;
            }
        };
        let incoming = Incoming {
            topic,
            event,
            acker: Some(Box::new(NatsAcker {
                message,
                engine: self.engine.clone(),
                timeout: self.timeout,
            })),
        };
        tokio::select! {
            sent = self.tx.send(incoming) => sent.is_ok(),
            () = self.stop.cancelled() => false,
        }
    }
}

/// Reads one core NATS subscription: no acks, no redelivery.
struct CorePump {
    engine: String,
    /// `_core.<prefix>.`, stripped from subjects to give the topic.
    prefix: String,
    subscriber: async_nats::Subscriber,
    tx: mpsc::Sender<Incoming>,
    stop: CancellationToken,
}

impl CorePump {
    async fn run(mut self) {
        loop {
            let next = tokio::select! {
                next = self.subscriber.next() => next,
                () = self.stop.cancelled() => break,
            };
            let Some(message) = next else {
                break;
            };
            let topic = message
                .subject
                .as_str()
                .strip_prefix(&self.prefix)
                .unwrap_or(message.subject.as_str())
                .to_owned();
            let event = match decode(&message) {
                Ok(event) => event,
                Err(reason) => {
                    tracing::warn!(module = "eventbus", engine = %self.engine, topic, %reason, "undecodable core NATS message skipped");
                    continue;
                }
            };
            let incoming = Incoming {
                topic,
                event,
                acker: None,
            };
            let sent = tokio::select! {
                sent = self.tx.send(incoming) => sent.is_ok(),
                () = self.stop.cancelled() => false,
            };
            if !sent {
                break;
            }
        }
        let _ = self.subscriber.unsubscribe().await;
    }
}

struct NatsAcker {
    message: jetstream::Message,
    engine: String,
    timeout: Duration,
}

impl NatsAcker {
    async fn settle(&self, kind: AckKind) -> Result<(), EventbusError> {
        match tokio::time::timeout(self.timeout, self.message.ack_with(kind)).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(EventbusError::Publish {
                engine: self.engine.clone(),
                topic: self.message.subject.to_string(),
                reason: format!("ack failed: {e}"),
            }),
            Err(_) => Err(EventbusError::Timeout {
                engine: self.engine.clone(),
                operation: "ack",
                timeout: self.timeout,
            }),
        }
    }
}

#[async_trait::async_trait]
impl Acker for NatsAcker {
    async fn ack(self: Box<Self>) -> Result<(), EventbusError> {
        self.settle(AckKind::Ack).await
    }

    async fn nack(self: Box<Self>) -> Result<(), EventbusError> {
        self.settle(AckKind::Nak(None)).await
    }
}

/// The headers (binary mode: `ce-*` and `content-type`) and payload of `event`.
fn encode(
    event: &Event,
    mode: WireMode,
) -> Result<(Option<async_nats::HeaderMap>, Vec<u8>), EventbusError> {
    if mode == WireMode::Structured {
        return Ok((None, crate::engine::encode(event)?));
    }
    let message = crate::binary::encode(event, mode, "ce-")?;
    let mut headers = async_nats::HeaderMap::new();
    for (name, value) in message.headers {
        headers.insert(name.as_str(), value.as_str());
    }
    if let Some(content_type) = message.content_type {
        headers.insert("content-type", content_type.as_str());
    }
    Ok((Some(headers), message.body))
}

/// The event of a message in either mode.
fn decode(message: &async_nats::Message) -> Result<Event, String> {
    let mut headers = Vec::new();
    let mut content_type = None;
    if let Some(map) = &message.headers {
        for (name, values) in map.iter() {
            let Some(value) = values.first() else {
                continue;
            };
            if name.to_string().eq_ignore_ascii_case("content-type") {
                content_type = Some(value.as_str().to_owned());
            } else {
                headers.push((name.to_string(), value.as_str().to_owned()));
            }
        }
    }
    crate::binary::decode(&headers, content_type.as_deref(), &message.payload)
}

/// async-nats errors may quote the server address but not the URL; drop the URL anyway in
/// case a future version does.
fn scrub(message: &str, url: &str) -> String {
    if url.is_empty() {
        message.to_owned()
    } else {
        message.replace(url, "[url]")
    }
}
