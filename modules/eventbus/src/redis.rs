//! The `redis` engine: one Redis Stream per topic (`<prefix><topic>`), consumer groups per
//! subscription group, `XADD` to publish, `XREADGROUP` to consume, `XACK` to settle, and
//! `XPENDING` + `XCLAIM` to take over entries left unacknowledged past the visibility timeout:
//! another member's (it died or is stuck), or this member's own once its handler gave them back
//! (a nack). A member never claims an entry its own handler is still working on, so a stuck
//! handler cannot keep resetting the idle time of the entry it holds and starve the others. Wildcard subscriptions follow a registry set (`<prefix>_topics`) of every topic
//! published to, so a stream created after the subscription is picked up within a second.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use cloudevents::Event;
use redis::AsyncCommands as _;
use redis::aio::{ConnectionManager, ConnectionManagerConfig, MultiplexedConnection};
use redis::streams::{
    StreamClaimReply, StreamMaxlen, StreamPendingCountReply, StreamReadOptions, StreamReadReply,
};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::broker::{Started, Stoppable};
use crate::config::{EngineConfig, EngineType, WireMode};
use crate::engine::{
    Acker, Engine, EngineStats, Incoming, PendingSubscription, SubscribeSpec, SubscriptionStats,
};
use crate::error::EventbusError;

/// The default key prefix.
pub(crate) const DEFAULT_PREFIX: &str = "modular:eventbus:";
/// How long one `XREADGROUP` blocks on the server.
const BLOCK: Duration = Duration::from_millis(500);
/// How often a pump looks for new streams its pattern matches.
const REFRESH: Duration = Duration::from_secs(1);
/// Entries per read or claim.
const BATCH: usize = 64;
/// The wait after a failed read before the next attempt.
const RETRY: Duration = Duration::from_millis(200);

pub(crate) struct RedisEngine {
    name: String,
    client: redis::Client,
    conn: ConnectionManager,
    address: String,
    prefix: String,
    publish_timeout: Duration,
    connect_timeout: Duration,
    visibility_timeout: Duration,
    mode: WireMode,
    max_len: Option<u64>,
    known: Mutex<HashSet<String>>,
    subscriptions: Started<Tracked>,
}

/// A started subscription, for stats.
struct Tracked {
    spec: SubscribeSpec,
    streams: Arc<Mutex<Vec<String>>>,
    stop: CancellationToken,
}

impl Stoppable for Tracked {
    fn stop_token(&self) -> &CancellationToken {
        &self.stop
    }
}

impl RedisEngine {
    pub(crate) async fn connect(name: &str, config: &EngineConfig) -> Result<Self, EventbusError> {
        let url = config.url_exposed();
        let address = crate::broker::address_of(url);
        let connect_error = |reason: String| EventbusError::Connect {
            engine: name.to_owned(),
            address: address.clone(),
            timeout: config.connect_timeout,
            reason,
        };
        let client = redis::Client::open(url).map_err(|e| connect_error(describe(&e)))?;
        let manager_config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(config.connect_timeout))
            .set_response_timeout(Some(config.publish_timeout))
            .set_number_of_retries(6)
            .set_min_delay(Duration::from_millis(100))
            .set_max_delay(Duration::from_secs(1));
        let mut conn = tokio::time::timeout(
            config.connect_timeout,
            ConnectionManager::new_with_config(client.clone(), manager_config),
        )
        .await
        .map_err(|_| connect_error("no answer in time".to_owned()))?
        .map_err(|e| connect_error(describe(&e)))?;
        let pong: Result<Result<String, _>, _> = tokio::time::timeout(
            config.connect_timeout,
            redis::cmd("PING").query_async(&mut conn),
        )
        .await;
        match pong {
            Ok(Ok(_)) => {}
            Ok(Err(e)) => return Err(connect_error(describe(&e))),
            Err(_) => return Err(connect_error("no answer to PING in time".to_owned())),
        }
        Ok(Self {
            name: name.to_owned(),
            client,
            conn,
            address,
            prefix: config
                .prefix
                .clone()
                .unwrap_or_else(|| DEFAULT_PREFIX.to_owned()),
            publish_timeout: config.publish_timeout,
            connect_timeout: config.connect_timeout,
            visibility_timeout: config.visibility_timeout,
            mode: config.mode,
            max_len: config.max_len,
            known: Mutex::new(HashSet::new()),
            subscriptions: Started::new(),
        })
    }

    fn key(&self, topic: &str) -> String {
        format!("{}{topic}", self.prefix)
    }

    fn registry(&self) -> String {
        format!("{}_topics", self.prefix)
    }

    fn timeout(&self, operation: &'static str) -> EventbusError {
        EventbusError::Timeout {
            engine: self.name.clone(),
            operation,
            timeout: self.publish_timeout,
        }
    }

    /// Streams whose topic `spec` matches, with their group created (`start` is the id the
    /// group starts after when it is new: `$` at subscribe time, `0` for streams found later).
    async fn join_streams(
        conn: &mut ConnectionManager,
        prefix: &str,
        spec: &SubscribeSpec,
        known: &[String],
        start: &str,
    ) -> Result<Vec<String>, redis::RedisError> {
        let topics: HashSet<String> = conn.smembers(format!("{prefix}_topics")).await?;
        let mut added = Vec::new();
        let mut topics: Vec<String> = topics
            .into_iter()
            .filter(|t| spec.pattern.matches(t))
            .collect();
        topics.sort();
        for topic in topics {
            let key = format!("{prefix}{topic}");
            if known.contains(&key) {
                continue;
            }
            let created: Result<(), redis::RedisError> =
                conn.xgroup_create_mkstream(&key, &spec.group, start).await;
            match created {
                Ok(()) => {}
                Err(e) if e.code() == Some("BUSYGROUP") => {}
                Err(e) => return Err(e),
            }
            added.push(key);
        }
        Ok(added)
    }
}

#[async_trait::async_trait]
impl Engine for RedisEngine {
    fn kind(&self) -> EngineType {
        EngineType::Redis
    }

    fn address(&self) -> Option<String> {
        Some(self.address.clone())
    }

    async fn publish(&self, topic: &str, event: &Event) -> Result<(), EventbusError> {
        let fields = entry_fields(event, self.mode)?;
        let key = self.key(topic);
        let mut conn = self.conn.clone();
        let first = !self
            .known
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .contains(topic);
        let result = tokio::time::timeout(self.publish_timeout, async {
            let mut pipe = redis::pipe();
            if first {
                pipe.sadd(self.registry(), topic).ignore();
            }
            match self.max_len {
                Some(n) => pipe.xadd_maxlen(
                    &key,
                    StreamMaxlen::Approx(usize::try_from(n).unwrap_or(usize::MAX)),
                    "*",
                    &fields,
                ),
                None => pipe.xadd(&key, "*", &fields),
            }
            .ignore();
            let _: () = pipe.query_async(&mut conn).await?;
            Ok::<(), redis::RedisError>(())
        })
        .await;
        match result {
            Ok(Ok(())) => {
                if first {
                    self.known
                        .lock()
                        .unwrap_or_else(PoisonError::into_inner)
                        .insert(topic.to_owned());
                }
                Ok(())
            }
            Ok(Err(e)) => Err(EventbusError::Publish {
                engine: self.name.clone(),
                topic: topic.to_owned(),
                reason: describe(&e),
            }),
            Err(_) => Err(self.timeout("publish")),
        }
    }

    async fn subscribe(&self, spec: &SubscribeSpec) -> Result<PendingSubscription, EventbusError> {
        let mut conn = self.conn.clone();
        let streams = tokio::time::timeout(
            self.connect_timeout,
            Self::join_streams(&mut conn, &self.prefix, spec, &[], "$"),
        )
        .await
        .map_err(|_| self.timeout("subscribe"))?
        .map_err(|e| EventbusError::Subscribe {
            engine: self.name.clone(),
            pattern: spec.pattern.to_string(),
            reason: describe(&e),
        })?;
        let (tx, rx) = mpsc::channel(crate::engine::PUMP_BUFFER);
        let stop = CancellationToken::new();
        let streams = Arc::new(Mutex::new(streams));
        let pump = Pump {
            engine: self.name.clone(),
            client: self.client.clone(),
            conn,
            prefix: self.prefix.clone(),
            spec: spec.clone(),
            consumer: format!("c-{}", uuid::Uuid::now_v7().simple()),
            streams: Arc::clone(&streams),
            in_flight: InFlight::default(),
            visibility_timeout: self.visibility_timeout,
            connect_timeout: self.connect_timeout,
            publish_timeout: self.publish_timeout,
            tx,
            stop: stop.clone(),
        };
        let tracked = Tracked {
            spec: spec.clone(),
            streams,
            stop: stop.clone(),
        };
        Ok(self.subscriptions.pending(rx, stop, tracked, move |tasks| {
            tasks.spawn(pump.run());
        }))
    }

    async fn probe(&self, topic: &str, timeout: Duration) -> Result<(), EventbusError> {
        let key = self.key(topic);
        let mut conn = self.conn.clone();
        let payload = crate::engine::encode(&crate::event::probe_event(topic))?;
        let result = tokio::time::timeout(timeout, async {
            let id: String = redis::cmd("XADD")
                .arg(&key)
                .arg("MAXLEN")
                .arg("~")
                .arg(100)
                .arg("*")
                .arg("event")
                .arg(payload.as_slice())
                .query_async(&mut conn)
                .await?;
            let read: Vec<(String, HashMap<String, redis::Value>)> =
                conn.xrange(&key, &id, &id).await?;
            Ok::<bool, redis::RedisError>(read.len() == 1)
        })
        .await;
        match result {
            Ok(Ok(true)) => Ok(()),
            Ok(Ok(false)) => Err(EventbusError::Publish {
                engine: self.name.clone(),
                topic: topic.to_owned(),
                reason: "the probe entry was not read back".to_owned(),
            }),
            Ok(Err(e)) => Err(EventbusError::Publish {
                engine: self.name.clone(),
                topic: topic.to_owned(),
                reason: describe(&e),
            }),
            Err(_) => Err(EventbusError::Timeout {
                engine: self.name.clone(),
                operation: "health probe",
                timeout,
            }),
        }
    }

    async fn stats(&self) -> EngineStats {
        let tracked: Vec<(SubscribeSpec, Vec<String>)> = self.subscriptions.map(|t| {
            (
                t.spec.clone(),
                t.streams
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .clone(),
            )
        });
        let mut conn = self.conn.clone();
        let mut out = Vec::new();
        for (spec, streams) in tracked {
            let mut stats = SubscriptionStats {
                pattern: spec.pattern.to_string(),
                group: spec.group.clone(),
                lag: 0,
                pending: 0,
            };
            for key in streams {
                let groups: Result<Vec<HashMap<String, redis::Value>>, _> = tokio::time::timeout(
                    self.publish_timeout,
                    redis::cmd("XINFO")
                        .arg("GROUPS")
                        .arg(&key)
                        .query_async(&mut conn),
                )
                .await
                .unwrap_or_else(|_| {
                    Err(redis::RedisError::from((redis::ErrorKind::Io, "timed out")))
                });
                let Ok(groups) = groups else { continue };
                for group in groups {
                    let name: Option<String> = group
                        .get("name")
                        .and_then(|v| redis::from_redis_value(v.clone()).ok());
                    if name.as_deref() != Some(spec.group.as_str()) {
                        continue;
                    }
                    let number = |field: &str| -> u64 {
                        group
                            .get(field)
                            .and_then(|v| redis::from_redis_value::<u64>(v.clone()).ok())
                            .unwrap_or(0)
                    };
                    stats.lag += number("lag");
                    stats.pending += number("pending");
                }
            }
            out.push(stats);
        }
        EngineStats {
            dropped: 0,
            queue_size: None,
            subscriptions: out,
        }
    }
}

/// One subscription member's reader.
struct Pump {
    engine: String,
    client: redis::Client,
    conn: ConnectionManager,
    prefix: String,
    spec: SubscribeSpec,
    consumer: String,
    streams: Arc<Mutex<Vec<String>>>,
    in_flight: InFlight,
    visibility_timeout: Duration,
    connect_timeout: Duration,
    publish_timeout: Duration,
    tx: mpsc::Sender<Incoming>,
    stop: CancellationToken,
}

impl Pump {
    async fn run(mut self) {
        let mut reader: Option<MultiplexedConnection> = None;
        let mut last_refresh = tokio::time::Instant::now();
        let mut last_claim = tokio::time::Instant::now();
        let claim_every = (self.visibility_timeout / 2).max(Duration::from_millis(50));
        while !self.stop.is_cancelled() {
            if last_refresh.elapsed() >= REFRESH {
                last_refresh = tokio::time::Instant::now();
                let known = self.streams();
                if let Ok(Ok(added)) = tokio::time::timeout(
                    self.publish_timeout,
                    RedisEngine::join_streams(
                        &mut self.conn,
                        &self.prefix,
                        &self.spec,
                        &known,
                        "0",
                    ),
                )
                .await
                {
                    self.streams
                        .lock()
                        .unwrap_or_else(PoisonError::into_inner)
                        .extend(added);
                }
            }
            let streams = self.streams();
            if streams.is_empty() {
                self.pause(REFRESH).await;
                last_refresh = tokio::time::Instant::now() - REFRESH;
                continue;
            }
            if last_claim.elapsed() >= claim_every {
                last_claim = tokio::time::Instant::now();
                if !self.claim(&streams).await {
                    self.pause(RETRY).await;
                    continue;
                }
            }
            if reader.is_none() {
                let config = redis::AsyncConnectionConfig::new()
                    .set_connection_timeout(Some(self.connect_timeout))
                    .set_response_timeout(Some(BLOCK + self.publish_timeout));
                match tokio::time::timeout(
                    self.connect_timeout,
                    self.client
                        .get_multiplexed_async_connection_with_config(&config),
                )
                .await
                {
                    Ok(Ok(conn)) => reader = Some(conn),
                    _ => {
                        self.pause(RETRY).await;
                        continue;
                    }
                }
            }
            let Some(conn) = reader.as_mut() else {
                continue;
            };
            let options = StreamReadOptions::default()
                .group(&self.spec.group, &self.consumer)
                .count(BATCH)
                .block(BLOCK.as_millis() as usize);
            let ids: Vec<&str> = streams.iter().map(|_| ">").collect();
            let read: Result<Option<StreamReadReply>, _> = tokio::select! {
                read = conn.xread_options(&streams, &ids, &options) => read,
                () = self.stop.cancelled() => break,
            };
            match read {
                Ok(Some(reply)) => {
                    for key in reply.keys {
                        for entry in key.ids {
                            if !self.forward(&key.key, entry).await {
                                return self.finish().await;
                            }
                        }
                    }
                }
                Ok(None) => {}
                Err(error) => {
                    if error.code() == Some("NOGROUP") {
                        // The stream was deleted: forget it; the refresh re-creates the group.
                        self.streams
                            .lock()
                            .unwrap_or_else(PoisonError::into_inner)
                            .clear();
                    } else {
                        tracing::debug!(module = "eventbus", engine = %self.engine, error = %describe(&error), "redis read failed; retrying");
                        reader = None;
                    }
                    self.pause(RETRY).await;
                }
            }
        }
        self.finish().await;
    }

    fn streams(&self) -> Vec<String> {
        self.streams
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    async fn pause(&self, wait: Duration) {
        tokio::select! {
            () = tokio::time::sleep(wait) => {}
            () = self.stop.cancelled() => {}
        }
    }

    /// Takes over entries idle past the visibility timeout, except those this member's handlers
    /// still hold. `false` when Redis could not be reached.
    async fn claim(&mut self, streams: &[String]) -> bool {
        let idle = self.visibility_timeout.as_millis() as u64;
        for key in streams {
            let pending: Result<Result<StreamPendingCountReply, _>, _> = tokio::time::timeout(
                self.publish_timeout,
                redis::cmd("XPENDING")
                    .arg(key)
                    .arg(&self.spec.group)
                    .arg("IDLE")
                    .arg(idle)
                    .arg("-")
                    .arg("+")
                    .arg(BATCH)
                    .query_async(&mut self.conn),
            )
            .await;
            let ids: Vec<String> = match pending {
                Ok(Ok(reply)) => reply
                    .ids
                    .into_iter()
                    .filter(|p| p.consumer != self.consumer || !self.in_flight.holds(key, &p.id))
                    .map(|p| p.id)
                    .collect(),
                _ => return false,
            };
            if ids.is_empty() {
                continue;
            }
            // XCLAIM checks the idle time again, so a member that claimed first wins.
            let claimed: Result<Result<StreamClaimReply, _>, _> = tokio::time::timeout(
                self.publish_timeout,
                self.conn
                    .xclaim(key.as_str(), &self.spec.group, &self.consumer, idle, &ids),
            )
            .await;
            match claimed {
                Ok(Ok(reply)) => {
                    for entry in reply.ids {
                        if !self.forward(key, entry).await {
                            return true;
                        }
                    }
                }
                _ => return false,
            }
        }
        true
    }

    /// Hands one entry to the dispatcher; `false` when the subscription is gone.
    async fn forward(&self, key: &str, entry: redis::streams::StreamId) -> bool {
        let topic = key.strip_prefix(&self.prefix).unwrap_or(key).to_owned();
        let acker = RedisAcker {
            _held: self.in_flight.hold(key, &entry.id),
            conn: self.conn.clone(),
            key: key.to_owned(),
            group: self.spec.group.clone(),
            id: entry.id.clone(),
            timeout: self.publish_timeout,
            engine: self.engine.clone(),
        };
        let event = match entry_event(&entry) {
            Ok(event) => event,
            Err(reason) => {
                tracing::warn!(module = "eventbus", engine = %self.engine, key, id = %entry.id, %reason, "undecodable stream entry acknowledged and skipped");
                let _ = Box::new(acker).ack().await;
                return true;
            }
        };
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

    /// A fan-out subscriber's group is its own: remove it from the broker when it stops.
    async fn finish(mut self) {
        if !self.spec.fan_out {
            return;
        }
        for key in self.streams() {
            let _: Result<Result<(), _>, _> = tokio::time::timeout(
                self.publish_timeout,
                self.conn.xgroup_destroy(&key, &self.spec.group),
            )
            .await;
        }
    }
}

/// The entries this member's handlers hold, by `(stream key, entry id)`.
#[derive(Clone, Default)]
struct InFlight(Arc<Mutex<HashSet<(String, String)>>>);

impl InFlight {
    fn hold(&self, key: &str, id: &str) -> Held {
        let entry = (key.to_owned(), id.to_owned());
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(entry.clone());
        Held {
            set: self.clone(),
            entry,
        }
    }

    fn holds(&self, key: &str, id: &str) -> bool {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .contains(&(key.to_owned(), id.to_owned()))
    }
}

/// One held entry; released when its acker is settled or dropped.
struct Held {
    set: InFlight,
    entry: (String, String),
}

impl Drop for Held {
    fn drop(&mut self) {
        self.set
            .0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(&self.entry);
    }
}

struct RedisAcker {
    _held: Held,
    conn: ConnectionManager,
    key: String,
    group: String,
    id: String,
    timeout: Duration,
    engine: String,
}

#[async_trait::async_trait]
impl Acker for RedisAcker {
    async fn ack(self: Box<Self>) -> Result<(), EventbusError> {
        let mut conn = self.conn.clone();
        match tokio::time::timeout(
            self.timeout,
            conn.xack::<_, _, _, usize>(&self.key, &self.group, &[&self.id]),
        )
        .await
        {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(e)) => Err(EventbusError::Publish {
                engine: self.engine.clone(),
                topic: self.key.clone(),
                reason: format!("XACK failed: {}", describe(&e)),
            }),
            Err(_) => Err(EventbusError::Timeout {
                engine: self.engine.clone(),
                operation: "ack",
                timeout: self.timeout,
            }),
        }
    }

    async fn nack(self: Box<Self>) -> Result<(), EventbusError> {
        // Left pending: a member claims it again after the visibility timeout.
        Ok(())
    }
}

/// The fields of a stream entry: `event` (structured JSON), or in binary mode one `ce_<name>`
/// field per attribute, `content-type` and `data`.
fn entry_fields(event: &Event, mode: WireMode) -> Result<Vec<(String, Vec<u8>)>, EventbusError> {
    if mode == WireMode::Structured {
        return Ok(vec![("event".to_owned(), crate::engine::encode(event)?)]);
    }
    let message = crate::binary::encode(event, mode, "ce_")?;
    let mut fields: Vec<(String, Vec<u8>)> = message
        .headers
        .into_iter()
        .map(|(k, v)| (k, v.into_bytes()))
        .collect();
    if let Some(content_type) = message.content_type {
        fields.push(("content-type".to_owned(), content_type.into_bytes()));
    }
    fields.push(("data".to_owned(), message.body));
    Ok(fields)
}

/// The event of a stream entry in either mode.
fn entry_event(entry: &redis::streams::StreamId) -> Result<Event, String> {
    let text = |field: &str| -> Option<String> { entry.get(field) };
    if let Some(bytes) = entry.get::<Vec<u8>>("event") {
        return crate::engine::decode(&bytes);
    }
    let headers: Vec<(String, String)> = entry
        .map
        .keys()
        .filter(|k| k.starts_with("ce_") || k.starts_with("ce-"))
        .filter_map(|k| text(k).map(|v| (k.clone(), v)))
        .collect();
    if !crate::binary::is_binary(&headers) {
        return Err("neither an `event` field nor binary-mode `ce_*` fields".to_owned());
    }
    let data: Vec<u8> = entry.get("data").unwrap_or_default();
    crate::binary::from_binary(&headers, text("content-type").as_deref(), &data)
}

/// The redis crate's message, which never quotes the URL.
fn describe(error: &redis::RedisError) -> String {
    error.to_string()
}
