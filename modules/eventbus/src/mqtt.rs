//! The `mqtt` engine: MQTT 3.1.1 through rumqttc (no TLS). A topic `a.b` travels as MQTT topic
//! `<prefix>/a/b` (default prefix `eventbus`); bus wildcards map to MQTT ones (`*` → `+`,
//! `>` → `#`, and a delivered topic is checked against the bus pattern, since `#` also matches
//! the parent level). Publishes and subscriptions are QoS 1, except for topics matching
//! `qos0_topics`, which use QoS 0 (at-most-once: a publish returns once the client handed the
//! packet to its connection, with no `PUBACK`; a subscription whose pattern one of them covers
//! subscribes with QoS 0, so the broker never resends to it). A consumer group is a shared
//! subscription (`$share/<group>/<filter>`) whose members each hold a connection of their own;
//! a fan-out subscriber is a plain subscription on its own connection.
//!
//! A publish returns once the broker's `PUBACK` came back (publishes of one engine are
//! confirmed one at a time on its publishing connection). A delivery is acknowledged
//! (`PUBACK`) after its handler succeeded or it was dead-lettered; members keep a persistent
//! session while they run, so what a member held unacknowledged when its connection broke is
//! sent again when it reconnects (and the session is discarded when the member stops).
//!
//! What MQTT cannot give, compared with the other durable engines: no negative
//! acknowledgement (a nack leaves the event unacknowledged; the broker resends it only when
//! that member's session reconnects), no visibility timeout (an event a stuck member holds is
//! never handed to another member), no group position while no member is subscribed (events
//! published then are not kept for the group), no lag figure (the broker reports none), no
//! headers (so no CloudEvents binary mode) and no `/`, `+` or `#` inside a topic token.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use cloudevents::Event;
use rumqttc::{
    AsyncClient, ConnectReturnCode, Event as MqttEvent, EventLoop, MqttOptions, Outgoing, Packet,
    Publish, QoS, SubscribeReasonCode,
};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::broker::{Started, Stoppable};
use crate::config::{EngineConfig, EngineType};
use crate::engine::{
    Acker, Engine, EngineStats, Incoming, PendingSubscription, SubscribeSpec, SubscriptionStats,
};
use crate::error::EventbusError;
use crate::topic::Pattern;

/// The default topic prefix.
pub(crate) const DEFAULT_PREFIX: &str = "eventbus";
/// The wait after a failed poll (the connection broke) before reconnecting.
const RETRY: Duration = Duration::from_millis(200);
/// The largest packet either way (rumqttc's default, 10 KiB, is too small for events).
const MAX_PACKET: usize = 4 * 1024 * 1024;
/// Requests a client may queue before its event loop runs.
const CLIENT_QUEUE: usize = 64;

/// Where and as whom to connect.
#[derive(Clone)]
struct Target {
    host: String,
    port: u16,
    credentials: Option<(String, String)>,
    connect_timeout: Duration,
}

impl Target {
    fn parse(url: &str, connect_timeout: Duration) -> Self {
        let rest = url.split_once("://").map_or(url, |(_, r)| r);
        let authority = rest.split(['/', '?']).next().unwrap_or_default();
        let (userinfo, host_port) = match authority.rsplit_once('@') {
            Some((u, h)) => (Some(u), h),
            None => (None, authority),
        };
        let (host, port) = match host_port.rsplit_once(':') {
            Some((h, p)) if !host_port.ends_with(']') => (h, p.parse().unwrap_or(1883)),
            _ => (host_port, 1883),
        };
        let credentials = userinfo.map(|u| match u.split_once(':') {
            Some((user, password)) => (user.to_owned(), password.to_owned()),
            None => (u.to_owned(), String::new()),
        });
        Self {
            host: host
                .trim_start_matches('[')
                .trim_end_matches(']')
                .to_owned(),
            port,
            credentials,
            connect_timeout,
        }
    }

    fn client(&self, id: &str, clean_session: bool, manual_acks: bool) -> (AsyncClient, EventLoop) {
        let mut options = MqttOptions::new(id, self.host.clone(), self.port);
        options
            .set_keep_alive(Duration::from_secs(30))
            .set_clean_session(clean_session)
            .set_manual_acks(manual_acks)
            .set_max_packet_size(MAX_PACKET, MAX_PACKET);
        if let Some((user, password)) = &self.credentials {
            options.set_credentials(user.clone(), password.clone());
        }
        let (client, mut events) = AsyncClient::new(options, CLIENT_QUEUE);
        let mut network = events.network_options();
        network.set_connection_timeout(self.connect_timeout.as_secs().max(1));
        events.set_network_options(network);
        (client, events)
    }
}

pub(crate) struct MqttEngine {
    name: String,
    target: Target,
    address: String,
    prefix: String,
    publish_timeout: Duration,
    connect_timeout: Duration,
    /// `qos0_topics`: published and subscribed with QoS 0.
    qos0: Vec<Pattern>,
    /// The publishing connection, polled by whoever holds the lock; `None` after a failure
    /// (the next publish opens a fresh one, so no stale acknowledgement is ever matched).
    publisher: tokio::sync::Mutex<Option<Publisher>>,
    subscriptions: Started<Tracked>,
}

struct Tracked {
    spec: SubscribeSpec,
    pending: Arc<AtomicU64>,
    stop: CancellationToken,
}

impl Stoppable for Tracked {
    fn stop_token(&self) -> &CancellationToken {
        &self.stop
    }
}

struct Publisher {
    client: AsyncClient,
    events: EventLoop,
    /// Where the health probe's messages come back to (subscribed after every connect).
    probe_filter: String,
}

impl MqttEngine {
    pub(crate) async fn connect(name: &str, config: &EngineConfig) -> Result<Self, EventbusError> {
        let url = config.url_exposed();
        let engine = Self {
            name: name.to_owned(),
            target: Target::parse(url, config.connect_timeout),
            address: crate::broker::address_of(url),
            prefix: config
                .prefix
                .clone()
                .unwrap_or_else(|| DEFAULT_PREFIX.to_owned()),
            publish_timeout: config.publish_timeout,
            connect_timeout: config.connect_timeout,
            qos0: config
                .qos0_topics
                .iter()
                .map(|p| Pattern::parse(p).map_err(EventbusError::Topic))
                .collect::<Result<Vec<_>, _>>()?,
            publisher: tokio::sync::Mutex::new(None),
            subscriptions: Started::new(),
        };
        let publisher = engine.open_publisher().await?;
        *engine.publisher.lock().await = Some(publisher);
        Ok(engine)
    }

    fn connect_error(&self, reason: String) -> EventbusError {
        EventbusError::Connect {
            engine: self.name.clone(),
            address: self.address.clone(),
            timeout: self.connect_timeout,
            reason,
        }
    }

    /// A publishing connection, connected and with the probe subscription acknowledged.
    async fn open_publisher(&self) -> Result<Publisher, EventbusError> {
        let id = format!("eb-p-{}", uuid::Uuid::now_v7().simple());
        let (client, mut events) = self.target.client(&id, true, false);
        let probe_filter = format!("{}/_probe/{id}", self.prefix);
        let ready = tokio::time::timeout(self.connect_timeout, async {
            subscribe_and_wait(&client, &mut events, &probe_filter, QoS::AtLeastOnce).await
        })
        .await;
        match ready {
            Ok(Ok(())) => Ok(Publisher {
                client,
                events,
                probe_filter,
            }),
            Ok(Err(reason)) => Err(self.connect_error(reason)),
            Err(_) => Err(self.connect_error("no answer in time".to_owned())),
        }
    }

    fn publish_error(&self, topic: &str, reason: String) -> EventbusError {
        EventbusError::Publish {
            engine: self.name.clone(),
            topic: topic.to_owned(),
            reason,
        }
    }

    /// Publishes `payload` to `mqtt_topic` and polls until the broker acknowledged it (QoS 1),
    /// the client sent it (QoS 0), or (for the probe) until it came back on the probe
    /// subscription.
    #[allow(clippy::too_many_arguments)]
    async fn send(
        &self,
        topic: &str,
        mqtt_topic: &str,
        payload: Vec<u8>,
        qos: QoS,
        timeout: Duration,
        operation: &'static str,
        read_back: bool,
    ) -> Result<(), EventbusError> {
        let mut slot = self.publisher.lock().await;
        let result = tokio::time::timeout(timeout, async {
            if slot.is_none() {
                *slot = Some(self.open_publisher().await?);
            }
            let Some(publisher) = slot.as_mut() else {
                return Err(self.publish_error(topic, "no connection".to_owned()));
            };
            publisher
                .client
                .try_publish(mqtt_topic, qos, false, payload.clone())
                .map_err(|e| self.publish_error(topic, e.to_string()))?;
            let mut pkid = None;
            let mut acked = false;
            // The probe's copy may come back before or after the broker's PUBACK.
            let mut back = !read_back;
            loop {
                match publisher.events.poll().await {
                    Ok(MqttEvent::Outgoing(Outgoing::Publish(id))) if pkid.is_none() => {
                        pkid = Some(id);
                        if qos == QoS::AtMostOnce && !read_back {
                            // At-most-once: nothing comes back for it.
                            return Ok(());
                        }
                    }
                    Ok(MqttEvent::Incoming(Packet::PubAck(ack))) if Some(ack.pkid) == pkid => {
                        acked = true;
                        if back {
                            return Ok(());
                        }
                    }
                    Ok(MqttEvent::Incoming(Packet::Publish(p)))
                        if !back && p.topic == mqtt_topic && p.payload[..] == payload[..] =>
                    {
                        back = true;
                        if acked {
                            return Ok(());
                        }
                    }
                    Ok(MqttEvent::Incoming(Packet::ConnAck(_))) => {
                        // Reconnected (a clean session): the probe subscription is gone.
                        let _ = publisher
                            .client
                            .try_subscribe(publisher.probe_filter.clone(), QoS::AtLeastOnce);
                    }
                    Ok(_) => {}
                    Err(error) if pkid.is_none() => {
                        // The connection had broken before the event left (an idle timeout):
                        // the request was dropped with it; send it again once reconnected.
                        tracing::debug!(module = "eventbus", engine = %self.name, %error, "mqtt publisher reconnecting");
                        tokio::time::sleep(RETRY).await;
                        publisher
                            .client
                            .try_publish(mqtt_topic, qos, false, payload.clone())
                            .map_err(|e| self.publish_error(topic, e.to_string()))?;
                    }
                    Err(error) => {
                        return Err(self.publish_error(topic, error.to_string()));
                    }
                }
            }
        })
        .await;
        match result {
            Ok(Ok(())) => Ok(()),
            Ok(Err(error)) => {
                slot.take();
                Err(error)
            }
            Err(_) => {
                slot.take();
                Err(EventbusError::Timeout {
                    engine: self.name.clone(),
                    operation,
                    timeout,
                })
            }
        }
    }
}

/// Subscribes `filter` with `qos` and polls until the broker granted it.
async fn subscribe_and_wait(
    client: &AsyncClient,
    events: &mut EventLoop,
    filter: &str,
    qos: QoS,
) -> Result<(), String> {
    client
        .try_subscribe(filter, qos)
        .map_err(|e| e.to_string())?;
    loop {
        match events.poll().await.map_err(|e| e.to_string())? {
            MqttEvent::Incoming(Packet::ConnAck(ack)) if ack.code != ConnectReturnCode::Success => {
                return Err(format!("connection refused: {:?}", ack.code));
            }
            MqttEvent::Incoming(Packet::SubAck(ack)) => {
                return if ack
                    .return_codes
                    .iter()
                    .all(|c| matches!(c, SubscribeReasonCode::Success(_)))
                {
                    Ok(())
                } else {
                    Err(format!("the broker refused the subscription to `{filter}`"))
                };
            }
            _ => {}
        }
    }
}

/// The MQTT topic of a bus topic; `None` when a token holds a character MQTT reserves.
fn mqtt_topic(prefix: &str, topic: &str) -> Option<String> {
    if topic.contains(['/', '+', '#']) {
        return None;
    }
    Some(format!("{prefix}/{}", topic.replace('.', "/")))
}

/// The MQTT topic filter of a bus pattern: `*` → `+`, `>` → `#`.
pub(crate) fn topic_filter(prefix: &str, pattern: &Pattern) -> String {
    let levels: Vec<&str> = pattern
        .as_str()
        .split('.')
        .map(|t| match t {
            "*" => "+",
            ">" => "#",
            other => other,
        })
        .collect();
    format!("{prefix}/{}", levels.join("/"))
}

#[async_trait::async_trait]
impl Engine for MqttEngine {
    fn kind(&self) -> EngineType {
        EngineType::Mqtt
    }

    fn address(&self) -> Option<String> {
        Some(self.address.clone())
    }

    async fn publish(&self, topic: &str, event: &Event) -> Result<(), EventbusError> {
        let Some(target) = mqtt_topic(&self.prefix, topic) else {
            return Err(EventbusError::Topic(format!(
                "`{topic}`: MQTT topics cannot hold `/`, `+` or `#`"
            )));
        };
        let payload = crate::engine::encode(event)?;
        let qos = if self.qos0.iter().any(|p| p.matches(topic)) {
            QoS::AtMostOnce
        } else {
            QoS::AtLeastOnce
        };
        self.send(
            topic,
            &target,
            payload,
            qos,
            self.publish_timeout,
            "publish",
            false,
        )
        .await
    }

    async fn subscribe(&self, spec: &SubscribeSpec) -> Result<PendingSubscription, EventbusError> {
        if spec.pattern.as_str().contains(['/', '+', '#']) {
            return Err(EventbusError::Topic(format!(
                "`{}`: MQTT topics cannot hold `/`, `+` or `#`",
                spec.pattern
            )));
        }
        let plain = topic_filter(&self.prefix, &spec.pattern);
        let filter = if spec.fan_out {
            plain
        } else {
            format!("$share/{}/{plain}", spec.group)
        };
        let qos = if self.qos0.iter().any(|p| p.covers(&spec.pattern)) {
            QoS::AtMostOnce
        } else {
            QoS::AtLeastOnce
        };
        let id = format!("eb-s-{}", uuid::Uuid::now_v7().simple());
        let (client, mut events) = self.target.client(&id, false, true);
        let subscribed = tokio::time::timeout(
            self.connect_timeout,
            subscribe_and_wait(&client, &mut events, &filter, qos),
        )
        .await;
        let subscribe_error = |reason: String| EventbusError::Subscribe {
            engine: self.name.clone(),
            pattern: spec.pattern.to_string(),
            reason,
        };
        match subscribed {
            Ok(Ok(())) => {}
            Ok(Err(reason)) => return Err(subscribe_error(reason)),
            Err(_) => return Err(subscribe_error("no answer in time".to_owned())),
        }
        let (tx, rx) = mpsc::channel(crate::engine::PUMP_BUFFER);
        let stop = CancellationToken::new();
        let pending = Arc::new(AtomicU64::new(0));
        let core = PumpCore {
            engine: self.name.clone(),
            target: self.target.clone(),
            id,
            client,
            filter,
            qos,
            prefix: format!("{}/", self.prefix),
            pattern: spec.pattern.clone(),
            pending: Arc::clone(&pending),
            timeout: self.publish_timeout,
            tx,
            stop: stop.clone(),
        };
        let pump = Pump { core, events };
        let tracked = Tracked {
            spec: spec.clone(),
            pending,
            stop: stop.clone(),
        };
        Ok(self.subscriptions.pending(rx, stop, tracked, move |tasks| {
            tasks.spawn(pump.run());
        }))
    }

    async fn probe(&self, topic: &str, timeout: Duration) -> Result<(), EventbusError> {
        let filter = {
            let mut slot = self.publisher.lock().await;
            if slot.is_none() {
                let opened = tokio::time::timeout(timeout, self.open_publisher())
                    .await
                    .map_err(|_| EventbusError::Timeout {
                        engine: self.name.clone(),
                        operation: "health probe",
                        timeout,
                    })??;
                *slot = Some(opened);
            }
            slot.as_ref()
                .map(|p| p.probe_filter.clone())
                .unwrap_or_default()
        };
        let payload = crate::engine::encode(&crate::event::probe_event(topic))?;
        self.send(
            topic,
            &filter,
            payload,
            QoS::AtLeastOnce,
            timeout,
            "health probe",
            true,
        )
        .await
    }

    async fn stats(&self) -> EngineStats {
        let subs = self.subscriptions.map(|t| SubscriptionStats {
            pattern: t.spec.pattern.to_string(),
            group: t.spec.group.clone(),
            lag: 0,
            pending: t.pending.load(Ordering::Relaxed),
        });
        EngineStats {
            dropped: 0,
            queue_size: None,
            subscriptions: subs,
        }
    }
}

/// One subscription member: its own connection and persistent session, polled here.
struct Pump {
    core: PumpCore,
    events: EventLoop,
}

/// A pump without its event loop (which is `Send` but not `Sync`, so is kept apart from what
/// is borrowed across awaits).
struct PumpCore {
    engine: String,
    target: Target,
    id: String,
    client: AsyncClient,
    filter: String,
    qos: QoS,
    prefix: String,
    pattern: Pattern,
    pending: Arc<AtomicU64>,
    timeout: Duration,
    tx: mpsc::Sender<Incoming>,
    stop: CancellationToken,
}

impl Pump {
    async fn run(self) {
        let Pump { core, mut events } = self;
        loop {
            let polled = tokio::select! {
                polled = events.poll() => polled,
                () = core.stop.cancelled() => break,
            };
            match polled {
                Ok(MqttEvent::Incoming(Packet::Publish(publish))) => {
                    if !core.forward(publish).await {
                        break;
                    }
                }
                Ok(MqttEvent::Incoming(Packet::ConnAck(ack))) if !ack.session_present => {
                    // The broker lost the session: subscribe again.
                    let _ = core.client.try_subscribe(core.filter.clone(), core.qos);
                }
                Ok(_) => {}
                Err(error) => {
                    tracing::debug!(module = "eventbus", engine = %core.engine, %error, "mqtt subscriber reconnecting");
                    tokio::select! {
                        () = tokio::time::sleep(RETRY) => {}
                        () = core.stop.cancelled() => break,
                    }
                }
            }
        }
        core.finish(events).await;
    }
}

impl PumpCore {
    /// Hands one message to the dispatcher; `false` when the subscription is gone.
    async fn forward(&self, publish: Publish) -> bool {
        self.forward_until(publish, true).await
    }

    /// `forward`; with `stoppable` false it waits for the dispatcher even after the
    /// stop (while draining what the broker sent before the unsubscribe took effect).
    async fn forward_until(&self, publish: Publish, stoppable: bool) -> bool {
        let topic = publish
            .topic
            .strip_prefix(&self.prefix)
            .unwrap_or(&publish.topic)
            .replace('/', ".");
        let acker = MqttAcker::new(self.client.clone(), publish, Arc::clone(&self.pending));
        if !self.pattern.matches(&topic) {
            let _ = Box::new(acker).ack().await;
            return true;
        }
        let event = match crate::engine::decode(&acker.publish.payload) {
            Ok(event) => event,
            Err(reason) => {
                tracing::warn!(module = "eventbus", engine = %self.engine, topic, %reason, "undecodable message acknowledged and skipped");
                let _ = Box::new(acker).ack().await;
                return true;
            }
        };
        let incoming = Incoming {
            topic,
            event,
            acker: Some(Box::new(acker)),
        };
        if !stoppable {
            return self.tx.send(incoming).await.is_ok();
        }
        tokio::select! {
            sent = self.tx.send(incoming) => sent.is_ok(),
            () = self.stop.cancelled() => false,
        }
    }

    /// Unsubscribes, lets running handlers acknowledge, disconnects, and discards the
    /// persistent session (a clean-session connect with the same client id).
    async fn finish(self, mut events: EventLoop) {
        let _ = self.client.try_unsubscribe(self.filter.clone());
        let deadline = tokio::time::Instant::now() + self.timeout;
        // Until the broker confirmed the unsubscribe, what it sent this member is still handed
        // to the dispatcher (the session is discarded below, so nothing may stay unread); then
        // polling goes on so acknowledgements of handlers still running go out.
        let mut unsubscribed = false;
        while (!unsubscribed || self.pending.load(Ordering::Relaxed) > 0)
            && tokio::time::Instant::now() < deadline
        {
            match tokio::time::timeout(Duration::from_millis(50), events.poll()).await {
                Ok(Ok(MqttEvent::Incoming(Packet::Publish(publish)))) => {
                    let left = deadline.saturating_duration_since(tokio::time::Instant::now());
                    let _ = tokio::time::timeout(left, self.forward_until(publish, false)).await;
                }
                Ok(Ok(MqttEvent::Incoming(Packet::UnsubAck(_)))) => unsubscribed = true,
                Ok(Err(_)) => break,
                _ => {}
            }
        }
        let _ = self.client.try_disconnect();
        let _ = tokio::time::timeout(self.timeout, async {
            while let Ok(event) = events.poll().await {
                if matches!(event, MqttEvent::Outgoing(Outgoing::Disconnect)) {
                    break;
                }
            }
        })
        .await;
        drop(events);
        let (client, mut wipe) = self.target.client(&self.id, true, false);
        let _ = tokio::time::timeout(self.timeout, async {
            while let Ok(event) = wipe.poll().await {
                if matches!(event, MqttEvent::Incoming(Packet::ConnAck(_))) {
                    let _ = client.try_disconnect();
                }
                if matches!(event, MqttEvent::Outgoing(Outgoing::Disconnect)) {
                    break;
                }
            }
        })
        .await;
    }
}

struct MqttAcker {
    client: AsyncClient,
    publish: Publish,
    pending: Arc<AtomicU64>,
    settled: AtomicBool,
}

impl MqttAcker {
    fn new(client: AsyncClient, publish: Publish, pending: Arc<AtomicU64>) -> Self {
        pending.fetch_add(1, Ordering::Relaxed);
        Self {
            client,
            publish,
            pending,
            settled: AtomicBool::new(false),
        }
    }

    fn settle(&self) {
        if !self.settled.swap(true, Ordering::AcqRel) {
            self.pending.fetch_sub(1, Ordering::Relaxed);
        }
    }
}

impl Drop for MqttAcker {
    fn drop(&mut self) {
        self.settle();
    }
}

#[async_trait::async_trait]
impl Acker for MqttAcker {
    async fn ack(self: Box<Self>) -> Result<(), EventbusError> {
        let sent = self.client.ack(&self.publish).await;
        self.settle();
        sent.map_err(|e| EventbusError::Publish {
            engine: "mqtt".to_owned(),
            topic: self.publish.topic.clone(),
            reason: format!("PUBACK failed: {e}"),
        })
    }

    async fn nack(self: Box<Self>) -> Result<(), EventbusError> {
        // MQTT has no negative acknowledgement: left unacknowledged, the broker resends it
        // when this member's session reconnects.
        self.settle();
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wildcards_and_topics_map_to_mqtt_levels() {
        let filter =
            |p: &str| topic_filter("eb", &Pattern::parse(p).unwrap_or_else(|e| panic!("{e}")));
        assert_eq!(filter("orders.*"), "eb/orders/+");
        assert_eq!(filter("orders.>"), "eb/orders/#");
        assert_eq!(filter("a.*.c"), "eb/a/+/c");
        assert_eq!(
            mqtt_topic("eb", "orders.created").as_deref(),
            Some("eb/orders/created")
        );
        assert_eq!(mqtt_topic("eb", "a/b"), None);
    }

    #[test]
    fn urls_give_host_port_and_credentials() {
        let t = Target::parse("mqtt://u:p@broker:1884", Duration::from_secs(1));
        assert_eq!((t.host.as_str(), t.port), ("broker", 1884));
        assert_eq!(t.credentials, Some(("u".to_owned(), "p".to_owned())));
        let t = Target::parse("mqtt://127.0.0.1", Duration::from_secs(1));
        assert_eq!(
            (t.host.as_str(), t.port, t.credentials),
            ("127.0.0.1", 1883, None)
        );
    }
}
