//! [`MessageBus`]: routing publishes to engines, running subscriptions (dispatcher, bounded
//! handler pool, retries with back-off, dead-lettering), and swapping engines on reload.

use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock, PoisonError, Weak};
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use cloudevents::{AttributesReader as _, Event};
use futures::FutureExt as _;
use modular_core::ModuleContext;
use serde::Serialize;
use serde_json::json;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::config::{EngineConfig, EngineType, EventbusConfig};
use crate::engine::{Engine, Incoming, PendingSubscription, SubscribeSpec};
use crate::error::EventbusError;
use crate::metrics::Series;
use crate::topic::Pattern;

/// What a handler receives.
#[derive(Clone, Debug)]
pub struct Delivery {
    /// The event.
    pub event: Event,
    /// The concrete topic it was published to.
    pub topic: String,
    /// 1 for the first attempt, then 2, 3, … up to `delivery.max_attempts`.
    pub attempt: u32,
}

/// A handler's refusal of a delivery: retried with back-off, or dead-lettered at once.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Nack {
    /// Why (carried into the dead-lettered copy as `deadletterreason`).
    pub reason: String,
    /// Whether another attempt may succeed.
    pub retry: bool,
}

impl Nack {
    /// A failure worth retrying (until `delivery.max_attempts`).
    pub fn retry(reason: impl Into<String>) -> Self {
        Self {
            reason: reason.into(),
            retry: true,
        }
    }

    /// A failure no retry will fix: dead-lettered at once.
    pub fn reject(reason: impl Into<String>) -> Self {
        Self {
            reason: reason.into(),
            retry: false,
        }
    }
}

impl<E: std::error::Error> From<E> for Nack {
    fn from(error: E) -> Self {
        Self::retry(error.to_string())
    }
}

/// What a handler returns: `Ok(())` acknowledges, `Err(Nack)` refuses.
pub type HandlerResult = Result<(), Nack>;

type BoxFuture = Pin<Box<dyn Future<Output = HandlerResult> + Send + 'static>>;
type HandlerFn = Arc<dyn Fn(Delivery) -> BoxFuture + Send + Sync>;

/// How a subscription shares events.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum Delivering {
    /// Every fan-out subscriber gets every event.
    #[default]
    FanOut,
    /// Each event goes to one member of the named group (durable engines keep the group's
    /// position while no member runs).
    Group(String),
}

/// A running subscription; dropping the handle keeps it running, [`Subscription::unsubscribe`]
/// stops it (handlers already running finish).
#[derive(Debug)]
pub struct Subscription {
    shared: Arc<SubscriptionShared>,
}

impl Subscription {
    /// Stops delivering; queued events on a durable engine stay with the broker.
    pub fn unsubscribe(&self) {
        self.shared.cancel.cancel();
        if let Some(attached) = self
            .shared
            .attached
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take()
        {
            attached.stop.cancel();
        }
    }

    /// The engine this subscription currently reads from.
    pub fn engine(&self) -> String {
        self.shared
            .attached
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .as_ref()
            .map(|a| a.engine_name.clone())
            .unwrap_or_default()
    }
}

pub(crate) struct SubscriptionShared {
    pattern: Pattern,
    group: String,
    fan_out: bool,
    handler: HandlerFn,
    semaphore: Arc<Semaphore>,
    concurrency: AtomicUsize,
    cancel: CancellationToken,
    attached: Mutex<Option<Attached>>,
}

impl std::fmt::Debug for SubscriptionShared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Subscription")
            .field("pattern", &self.pattern.as_str())
            .field("group", &self.group)
            .finish_non_exhaustive()
    }
}

struct Attached {
    engine_name: String,
    engine: Arc<dyn Engine>,
    stop: CancellationToken,
}

/// One configured engine, live.
pub(crate) struct EngineSlot {
    pub(crate) name: String,
    pub(crate) config: EngineConfig,
    pub(crate) engine: Arc<dyn Engine>,
    /// Whether the last publish or probe reached the broker.
    pub(crate) connected: AtomicBool,
    pub(crate) dropped_seen: AtomicU64,
}

/// The live routing table and engines: replaced whole by a reload.
pub(crate) struct State {
    pub(crate) config: Arc<EventbusConfig>,
    pub(crate) engines: BTreeMap<String, Arc<EngineSlot>>,
    routes: Vec<(Pattern, String)>,
    default: String,
}

impl State {
    /// The engine `topic` goes to.
    fn route(&self, topic: &str) -> Option<&Arc<EngineSlot>> {
        let name = self
            .routes
            .iter()
            .find(|(p, _)| p.matches(topic))
            .map_or(self.default.as_str(), |(_, e)| e.as_str());
        self.engines.get(name)
    }

    /// The engine a subscription on `pattern` reads from: the first route whose patterns cover
    /// it, else the default.
    fn route_pattern(&self, pattern: &Pattern) -> Option<&Arc<EngineSlot>> {
        let name = self
            .routes
            .iter()
            .find(|(p, _)| p.covers(pattern))
            .map_or(self.default.as_str(), |(_, e)| e.as_str());
        self.engines.get(name)
    }
}

/// A subscription moving to another engine: its pending engine subscription, not started.
type Attachment = (
    Arc<SubscriptionShared>,
    String,
    Arc<dyn Engine>,
    PendingSubscription,
);

/// A prepared next state (reload phase one).
pub(crate) struct PreparedState {
    state: Arc<State>,
    attachments: Vec<Attachment>,
    pub(crate) reconnected: Vec<String>,
}

/// The event bus service other modules and the application publish and subscribe through.
///
/// Registered as `Arc<MessageBus>`. Cheap to clone (clones share everything).
#[derive(Clone)]
pub struct MessageBus {
    inner: Arc<Inner>,
}

struct Inner {
    state: ArcSwap<State>,
    subscriptions: Mutex<Vec<Weak<SubscriptionShared>>>,
    context: OnceLock<ModuleContext>,
    tasks: TaskTracker,
    cancel: CancellationToken,
    series: Series,
}

impl std::fmt::Debug for MessageBus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let state = self.inner.state.load();
        f.debug_struct("MessageBus")
            .field("engines", &state.engines.keys().collect::<Vec<_>>())
            .field("default", &state.default)
            .finish_non_exhaustive()
    }
}

impl MessageBus {
    /// Connects every engine of `config` (each broker checked within its `connect_timeout`).
    pub async fn new(config: &EventbusConfig) -> Result<Self, EventbusError> {
        let state = build_state(config, None).await?;
        Ok(Self {
            inner: Arc::new(Inner {
                state: ArcSwap::from_pointee(state.0),
                subscriptions: Mutex::new(Vec::new()),
                context: OnceLock::new(),
                tasks: TaskTracker::new(),
                cancel: CancellationToken::new(),
                series: Series::new(),
            }),
        })
    }

    /// Lets the bus emit its events on the application's bus (called by the module's init).
    pub(crate) fn attach(&self, context: ModuleContext) {
        let _ = self.inner.context.set(context);
    }

    pub(crate) fn emit(&self, noun_verb: &str, data: serde_json::Value) {
        if let Some(context) = self.inner.context.get() {
            context.emit(noun_verb, data);
        }
    }

    pub(crate) fn state(&self) -> Arc<State> {
        self.inner.state.load_full()
    }

    /// The running configuration.
    pub fn config(&self) -> Arc<EventbusConfig> {
        Arc::clone(&self.inner.state.load().config)
    }

    /// The engine name `topic` is routed to.
    pub fn engine_for(&self, topic: &str) -> Option<String> {
        self.inner.state.load().route(topic).map(|s| s.name.clone())
    }

    /// `host:port` the named engine is connected to (none for memory).
    pub fn engine_address(&self, engine: &str) -> Option<String> {
        self.inner
            .state
            .load()
            .engines
            .get(engine)
            .and_then(|s| s.engine.address())
    }

    /// Publishes a CloudEvents 1.0 event to `topic` (a concrete topic, no wildcards). A
    /// missing `time` or `datacontenttype` is filled in. On a durable engine this returns once
    /// the broker accepted the event; an error means it may not have been published.
    pub async fn publish(&self, topic: &str, mut event: Event) -> Result<(), EventbusError> {
        quick_check_topic(topic)?;
        crate::event::complete(&mut event);
        let state = self.inner.state.load_full();
        let slot = state.route(topic).ok_or(EventbusError::Stopped)?;
        let result = slot.engine.publish(topic, &event).await;
        self.observe(slot, &result);
        match &result {
            Ok(()) => self.inner.series.published(&slot.name),
            Err(EventbusError::Dropped { dropped, .. }) => {
                self.inner.series.dropped(&slot.name, *dropped as u64);
            }
            Err(_) => self.inner.series.publish_failed(&slot.name),
        }
        result
    }

    /// Wraps `data` in an event of type `ty` (JSON data, UUIDv7 id, the configured `source`,
    /// the current time) and publishes it to `topic`.
    pub async fn publish_data<T: Serialize + ?Sized>(
        &self,
        topic: &str,
        ty: &str,
        data: &T,
    ) -> Result<Event, EventbusError> {
        let source = self.inner.state.load().config.source.clone();
        let event = crate::event::wrap(ty, &source, data)?;
        self.publish(topic, event.clone()).await?;
        Ok(event)
    }

    /// Subscribes a fan-out handler to `pattern` (`orders.*`, `orders.>`).
    pub async fn subscribe<F, Fut>(
        &self,
        pattern: &str,
        handler: F,
    ) -> Result<Subscription, EventbusError>
    where
        F: Fn(Delivery) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = HandlerResult> + Send + 'static,
    {
        self.subscribe_with(pattern, Delivering::FanOut, handler)
            .await
    }

    /// Subscribes `handler` as a member of consumer group `group`: each event to one member.
    pub async fn subscribe_group<F, Fut>(
        &self,
        pattern: &str,
        group: &str,
        handler: F,
    ) -> Result<Subscription, EventbusError>
    where
        F: Fn(Delivery) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = HandlerResult> + Send + 'static,
    {
        self.subscribe_with(pattern, Delivering::Group(group.to_owned()), handler)
            .await
    }

    /// Subscribes with an explicit [`Delivering`] mode.
    pub async fn subscribe_with<F, Fut>(
        &self,
        pattern: &str,
        delivering: Delivering,
        handler: F,
    ) -> Result<Subscription, EventbusError>
    where
        F: Fn(Delivery) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = HandlerResult> + Send + 'static,
    {
        if self.inner.cancel.is_cancelled() {
            return Err(EventbusError::Stopped);
        }
        let pattern = Pattern::parse(pattern).map_err(EventbusError::Topic)?;
        let (group, fan_out) = match delivering {
            Delivering::FanOut => (format!("fanout-{}", uuid::Uuid::now_v7().simple()), true),
            Delivering::Group(group) => {
                if group.is_empty()
                    || !group
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
                {
                    return Err(EventbusError::Topic(format!(
                        "group `{group}`: use letters, digits, `-` and `_`"
                    )));
                }
                (group, false)
            }
        };
        let state = self.inner.state.load_full();
        let concurrency = state.config.delivery.concurrency;
        let shared = Arc::new(SubscriptionShared {
            pattern,
            group,
            fan_out,
            handler: Arc::new(move |d| Box::pin(handler(d)) as BoxFuture),
            semaphore: Arc::new(Semaphore::new(concurrency)),
            concurrency: AtomicUsize::new(concurrency),
            cancel: self.inner.cancel.child_token(),
            attached: Mutex::new(None),
        });
        let slot = state
            .route_pattern(&shared.pattern)
            .ok_or(EventbusError::Stopped)?;
        let pending = slot.engine.subscribe(&spec(&shared)).await?;
        self.activate(
            &shared,
            slot.name.clone(),
            Arc::clone(&slot.engine),
            pending,
        );
        {
            let mut subs = self
                .inner
                .subscriptions
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            subs.retain(|w| w.strong_count() > 0);
            subs.push(Arc::downgrade(&shared));
        }
        Ok(Subscription { shared })
    }

    /// Starts a pending engine subscription and its dispatcher, and stops whatever the
    /// subscription read from before (whose queued events the old dispatcher still drains).
    fn activate(
        &self,
        shared: &Arc<SubscriptionShared>,
        engine_name: String,
        engine: Arc<dyn Engine>,
        pending: PendingSubscription,
    ) {
        let PendingSubscription {
            source,
            stop,
            start,
        } = pending;
        start(&self.inner.tasks);
        let previous = shared
            .attached
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .replace(Attached {
                engine_name: engine_name.clone(),
                engine,
                stop: stop.clone(),
            });
        if let Some(previous) = previous {
            previous.stop.cancel();
        }
        if shared.cancel.is_cancelled() {
            stop.cancel();
        }
        let bus = self.clone();
        let shared = Arc::clone(shared);
        self.inner.tasks.spawn(async move {
            bus.dispatch(shared, engine_name, source, stop).await;
        });
    }

    /// Reads the source until it closes (the engine side stopped and the queue is drained) or
    /// the subscription is cancelled, running each event in the handler pool.
    async fn dispatch(
        &self,
        shared: Arc<SubscriptionShared>,
        engine: String,
        source: crate::engine::Source,
        stop: CancellationToken,
    ) {
        loop {
            let permit = tokio::select! {
                permit = Arc::clone(&shared.semaphore).acquire_owned() => match permit {
                    Ok(permit) => permit,
                    Err(_) => break,
                },
                () = shared.cancel.cancelled() => break,
            };
            let next = {
                let mut rx = tokio::select! {
                    rx = source.lock() => rx,
                    () = shared.cancel.cancelled() => break,
                };
                tokio::select! {
                    next = rx.recv() => next,
                    () = shared.cancel.cancelled() => break,
                }
            };
            let Some(incoming) = next else { break };
            let bus = self.clone();
            let shared = Arc::clone(&shared);
            let engine = engine.clone();
            self.inner.tasks.spawn(async move {
                bus.deliver(&shared, &engine, incoming).await;
                drop(permit);
            });
        }
        stop.cancel();
    }

    /// Runs the handler with retries and back-off; acknowledges, or dead-letters after
    /// `delivery.max_attempts` (or at once on [`Nack::reject`]).
    async fn deliver(&self, shared: &SubscriptionShared, engine: &str, incoming: Incoming) {
        let Incoming {
            topic,
            event,
            acker,
        } = incoming;
        let mut attempt = 1;
        let outcome = loop {
            let delivery = Delivery {
                event: event.clone(),
                topic: topic.clone(),
                attempt,
            };
            let started = Instant::now();
            let result = std::panic::AssertUnwindSafe((shared.handler)(delivery))
                .catch_unwind()
                .await
                .unwrap_or_else(|panic| Err(Nack::retry(panic_message(&panic))));
            self.inner.series.handled(
                engine,
                shared.pattern.as_str(),
                started.elapsed(),
                result.is_ok(),
            );
            let nack = match result {
                Ok(()) => break Ok(()),
                Err(nack) => nack,
            };
            let delivery = self.inner.state.load().config.delivery.clone();
            if !nack.retry || attempt >= delivery.max_attempts {
                break Err((nack, attempt));
            }
            let wait = delivery.backoff(attempt);
            tokio::select! {
                () = tokio::time::sleep(wait) => {}
                // Shutting down: leave it unacknowledged (a durable broker redelivers it).
                () = self.inner.cancel.cancelled() => {
                    if let Some(acker) = acker {
                        let _ = acker.nack().await;
                    }
                    return;
                }
            }
            attempt += 1;
        };
        match outcome {
            Ok(()) => {
                if let Some(acker) = acker
                    && let Err(error) = acker.ack().await
                {
                    tracing::warn!(module = "eventbus", engine, %error, "ack failed; the broker will deliver the event again");
                }
            }
            Err((nack, attempts)) => {
                let dead_letter_topic = self
                    .inner
                    .state
                    .load()
                    .config
                    .delivery
                    .dead_letter_topic
                    .clone();
                let copy = crate::event::dead_lettered(&event, &topic, attempts, &nack.reason);
                let published = if shared.pattern.matches(&dead_letter_topic) {
                    // Never feed a subscription its own dead letters.
                    Ok(())
                } else {
                    self.publish(&dead_letter_topic, copy).await
                };
                match published {
                    Ok(()) => {
                        self.inner
                            .series
                            .dead_lettered(engine, shared.pattern.as_str());
                        tracing::warn!(module = "eventbus", engine, topic, attempts, reason = %nack.reason, "event dead-lettered");
                        self.emit(
                            "delivery.dead_lettered",
                            json!({
                                "engine": engine,
                                "topic": topic,
                                "pattern": shared.pattern.as_str(),
                                "group": if shared.fan_out { None } else { Some(&shared.group) },
                                "event_id": event.id(),
                                "attempts": attempts,
                                "reason": nack.reason,
                                "dead_letter_topic": dead_letter_topic,
                            }),
                        );
                        if let Some(acker) = acker {
                            let _ = acker.ack().await;
                        }
                    }
                    Err(error) => {
                        tracing::error!(module = "eventbus", engine, topic, %error, "dead-letter publish failed; the event stays unacknowledged");
                        if let Some(acker) = acker {
                            let _ = acker.nack().await;
                        }
                    }
                }
            }
        }
    }

    /// Tracks reachability per engine and emits `connection.lost` / `connection.restored`.
    pub(crate) fn observe<T>(&self, slot: &EngineSlot, result: &Result<T, EventbusError>) {
        let reached = match result {
            Ok(_) => true,
            Err(error) => !error.is_connection_error(),
        };
        if slot.connected.swap(reached, Ordering::Relaxed) != reached {
            let data = json!({
                "engine": slot.name,
                "type": slot.config.kind.as_str(),
                "address": slot.engine.address(),
                "error": result.as_ref().err().map(ToString::to_string),
            });
            if reached {
                tracing::info!(module = "eventbus", engine = %slot.name, "broker reachable again");
                self.emit("connection.restored", data);
            } else {
                tracing::warn!(module = "eventbus", engine = %slot.name, "broker unreachable");
                self.emit("connection.lost", data);
            }
        }
    }

    /// Reload phase one: connects changed engines aside and sets up every subscription that
    /// moves on its new engine, without delivering from it yet.
    pub(crate) async fn prepare(
        &self,
        config: &EventbusConfig,
    ) -> Result<PreparedState, EventbusError> {
        let current = self.inner.state.load_full();
        let (state, reconnected) = build_state(config, Some(&current)).await?;
        let mut attachments = Vec::new();
        for shared in self.live_subscriptions() {
            let Some(target) = state.route_pattern(&shared.pattern) else {
                continue;
            };
            if self.attached_to(&shared, &target.name, &target.engine) {
                continue;
            }
            let pending = target.engine.subscribe(&spec(&shared)).await?;
            attachments.push((
                shared,
                target.name.clone(),
                Arc::clone(&target.engine),
                pending,
            ));
        }
        Ok(PreparedState {
            state: Arc::new(state),
            attachments,
            reconnected,
        })
    }

    /// Reload phase two: swaps the state in (new publishes go to the new engines), moves the
    /// prepared subscriptions, and resizes every handler pool.
    pub(crate) fn commit(&self, prepared: PreparedState) {
        let PreparedState {
            state, attachments, ..
        } = prepared;
        let concurrency = state.config.delivery.concurrency;
        self.inner.state.store(Arc::clone(&state));
        for (shared, name, engine, pending) in attachments {
            self.activate(&shared, name, engine, pending);
        }
        for shared in self.live_subscriptions() {
            self.resize(&shared, concurrency);
            // Subscribed between prepare and commit: move it the slow way.
            if let Some(target) = state.route_pattern(&shared.pattern)
                && !self.attached_to(&shared, &target.name, &target.engine)
            {
                let bus = self.clone();
                let name = target.name.clone();
                let engine = Arc::clone(&target.engine);
                self.inner.tasks.spawn(async move {
                    match engine.subscribe(&spec(&shared)).await {
                        Ok(pending) => bus.activate(&shared, name, engine, pending),
                        Err(error) => tracing::error!(module = "eventbus", %error, "subscription could not move to its new engine; it keeps the old one"),
                    }
                });
            }
        }
    }

    fn resize(&self, shared: &Arc<SubscriptionShared>, target: usize) {
        let current = shared.concurrency.swap(target, Ordering::Relaxed);
        if target > current {
            shared.semaphore.add_permits(target - current);
        } else if target < current {
            let semaphore = Arc::clone(&shared.semaphore);
            let fewer = (current - target) as u32;
            // Takes the surplus permits as running handlers return them.
            self.inner.tasks.spawn(async move {
                if let Ok(permits) = semaphore.acquire_many(fewer).await {
                    permits.forget();
                }
            });
        }
    }

    /// The handler pool size of subscriptions right now (for tests and health).
    pub fn concurrency(&self) -> usize {
        self.inner.state.load().config.delivery.concurrency
    }

    fn attached_to(
        &self,
        shared: &SubscriptionShared,
        name: &str,
        engine: &Arc<dyn Engine>,
    ) -> bool {
        shared
            .attached
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .as_ref()
            .is_some_and(|a| a.engine_name == name && Arc::ptr_eq(&a.engine, engine))
    }

    fn live_subscriptions(&self) -> Vec<Arc<SubscriptionShared>> {
        self.inner
            .subscriptions
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
            .filter_map(Weak::upgrade)
            .filter(|s| !s.cancel.is_cancelled())
            .collect()
    }

    /// Stops every subscription and waits (up to `deadline`) for running handlers.
    pub async fn shutdown(&self, deadline: Duration) {
        for shared in self.live_subscriptions() {
            if let Some(attached) = shared
                .attached
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .take()
            {
                attached.stop.cancel();
            }
        }
        self.inner.cancel.cancel();
        self.inner.tasks.close();
        let _ = tokio::time::timeout(deadline, self.inner.tasks.wait()).await;
    }

    pub(crate) fn tasks(&self) -> &TaskTracker {
        &self.inner.tasks
    }

    pub(crate) fn cancellation(&self) -> &CancellationToken {
        &self.inner.cancel
    }
}

fn spec(shared: &SubscriptionShared) -> SubscribeSpec {
    SubscribeSpec {
        pattern: shared.pattern.clone(),
        group: shared.group.clone(),
        fan_out: shared.fan_out,
    }
}

/// A topic check without allocating: non-empty tokens, no wildcards.
fn quick_check_topic(topic: &str) -> Result<(), EventbusError> {
    let ok = !topic.is_empty()
        && topic
            .split('.')
            .all(|t| !t.is_empty() && !t.contains(['*', '>']) && !t.contains(char::is_whitespace));
    if ok {
        Ok(())
    } else {
        Err(EventbusError::Topic(
            crate::topic::check_topic(topic)
                .err()
                .unwrap_or_else(|| format!("`{topic}` is not a topic")),
        ))
    }
}

fn panic_message(panic: &Box<dyn std::any::Any + Send>) -> String {
    let text = panic
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "handler panicked".to_owned());
    format!("handler panicked: {text}")
}

/// Builds the engines of `config`, reusing those of `current` whose settings did not change.
async fn build_state(
    config: &EventbusConfig,
    current: Option<&State>,
) -> Result<(State, Vec<String>), EventbusError> {
    let mut engines = BTreeMap::new();
    let mut reconnected = Vec::new();
    for (name, engine_config) in &config.engines {
        if let Some(existing) = current.and_then(|c| c.engines.get(name))
            && existing.config == *engine_config
        {
            engines.insert(name.clone(), Arc::clone(existing));
            continue;
        }
        let engine = connect(name, engine_config).await?;
        if current.is_some() {
            reconnected.push(name.clone());
        }
        engines.insert(
            name.clone(),
            Arc::new(EngineSlot {
                name: name.clone(),
                config: engine_config.clone(),
                engine,
                connected: AtomicBool::new(true),
                dropped_seen: AtomicU64::new(0),
            }),
        );
    }
    let mut routes = Vec::new();
    for route in &config.routes {
        for topic in &route.topics {
            let pattern = Pattern::parse(topic).map_err(EventbusError::Topic)?;
            routes.push((pattern, route.engine.clone()));
        }
    }
    let default = config
        .default_engine()
        .ok_or(EventbusError::Stopped)?
        .to_owned();
    Ok((
        State {
            config: Arc::new(config.clone()),
            engines,
            routes,
            default,
        },
        reconnected,
    ))
}

/// Opens one engine.
async fn connect(name: &str, config: &EngineConfig) -> Result<Arc<dyn Engine>, EventbusError> {
    match config.kind {
        EngineType::Memory => Ok(Arc::new(crate::memory::MemoryEngine::new(config))),
        #[cfg(feature = "redis")]
        EngineType::Redis => Ok(Arc::new(
            crate::redis::RedisEngine::connect(name, config).await?,
        )),
        #[cfg(feature = "nats")]
        EngineType::Nats => Ok(Arc::new(
            crate::nats::NatsEngine::connect(name, config).await?,
        )),
        #[cfg(feature = "amqp")]
        EngineType::Amqp => Ok(Arc::new(
            crate::amqp::AmqpEngine::connect(name, config).await?,
        )),
        #[cfg(feature = "mqtt")]
        EngineType::Mqtt => Ok(Arc::new(
            crate::mqtt::MqttEngine::connect(name, config).await?,
        )),
        #[allow(unreachable_patterns)]
        other => Err(EventbusError::Connect {
            engine: name.to_owned(),
            address: String::new(),
            timeout: config.connect_timeout,
            reason: format!("engine type `{other}` is not compiled in"),
        }),
    }
}
