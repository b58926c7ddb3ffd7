use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use arc_swap::ArcSwap;
use cloudevents::{AttributesReader, Event, EventBuilder, EventBuilderV10};
use tokio::sync::mpsc;

/// Which events an observer receives.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum EventFilter {
    /// Every event.
    All,
    /// Events whose type equals this string.
    Exact(String),
    /// Events whose type starts with this string (for example `com.modular.config.reload.`).
    Prefix(String),
}

impl EventFilter {
    /// A filter on one exact type.
    pub fn exact(ty: impl Into<String>) -> Self {
        Self::Exact(ty.into())
    }

    /// A filter on a type prefix.
    pub fn prefix(prefix: impl Into<String>) -> Self {
        Self::Prefix(prefix.into())
    }

    /// A bounded label for this filter: `all`, the exact type, or the prefix with `*`.
    pub fn label(&self) -> String {
        match self {
            Self::All => "all".to_owned(),
            Self::Exact(t) => t.clone(),
            Self::Prefix(p) => format!("{p}*"),
        }
    }

    /// Whether an event of type `ty` passes.
    pub fn matches(&self, ty: &str) -> bool {
        match self {
            Self::All => true,
            Self::Exact(t) => t == ty,
            Self::Prefix(p) => ty.starts_with(p.as_str()),
        }
    }
}

/// The in-process CloudEvents bus. Cheap to clone; clones share observers.
#[derive(Clone, Debug, Default)]
pub struct EventBus {
    inner: Arc<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    observers: ArcSwap<Vec<Arc<Observer>>>,
    published: AtomicU64,
    dropped: AtomicU64,
}

#[derive(Debug)]
struct Observer {
    filter: EventFilter,
    /// The `observer` label of `modular_events_dropped_total`.
    label: String,
    tx: mpsc::Sender<Event>,
    dropped: Arc<AtomicU64>,
}

/// The receiving end of a subscription. Dropping it unsubscribes.
#[derive(Debug)]
pub struct EventStream {
    rx: mpsc::Receiver<Event>,
    // Only the counter is shared: holding the observer (and so its sender) here would keep
    // the channel open after the bus is gone, and `recv` would never return `None`.
    dropped: Arc<AtomicU64>,
}

impl EventStream {
    /// Waits for the next event; `None` once the bus is gone.
    pub async fn recv(&mut self) -> Option<Event> {
        self.rx.recv().await
    }

    /// The next event if one is queued.
    pub fn try_recv(&mut self) -> Option<Event> {
        self.rx.try_recv().ok()
    }

    /// Every event queued now, without waiting.
    pub fn drain(&mut self) -> Vec<Event> {
        let mut out = Vec::new();
        while let Ok(event) = self.rx.try_recv() {
            out.push(event);
        }
        out
    }

    /// How many events this observer lost because its queue was full.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }
}

/// Default queue length of one observer.
pub const DEFAULT_OBSERVER_CAPACITY: usize = 1024;

impl EventBus {
    /// A bus with no observers.
    pub fn new() -> Self {
        Self::default()
    }

    /// Subscribes with the default queue length.
    pub fn subscribe(&self, filter: EventFilter) -> EventStream {
        self.subscribe_with_capacity(filter, DEFAULT_OBSERVER_CAPACITY)
    }

    /// Subscribes with a bounded queue of `capacity` events (at least 1).
    pub fn subscribe_with_capacity(&self, filter: EventFilter, capacity: usize) -> EventStream {
        let label = filter.label();
        self.subscribe_named(label, filter, capacity)
    }

    /// Subscribes as `name`, the `observer` label under which its dropped events are counted
    /// (`modular_events_dropped_total`); a fixed name per observer, never an id.
    pub fn subscribe_named(
        &self,
        name: impl Into<String>,
        filter: EventFilter,
        capacity: usize,
    ) -> EventStream {
        let (tx, rx) = mpsc::channel(capacity.max(1));
        let dropped = Arc::new(AtomicU64::new(0));
        let observer = Arc::new(Observer {
            label: name.into(),
            filter,
            tx,
            dropped: Arc::clone(&dropped),
        });
        self.inner.observers.rcu(|current| {
            let mut next = Vec::with_capacity(current.len() + 1);
            next.extend(current.iter().filter(|o| !o.tx.is_closed()).cloned());
            next.push(Arc::clone(&observer));
            next
        });
        EventStream { rx, dropped }
    }

    /// Publishes an event to every matching observer without waiting.
    pub fn publish(&self, event: Event) {
        self.inner.published.fetch_add(1, Ordering::Relaxed);
        let observers = self.inner.observers.load();
        let mut saw_closed = false;
        for observer in observers.iter() {
            if !observer.filter.matches(event.ty()) {
                continue;
            }
            match observer.tx.try_send(event.clone()) {
                Ok(()) => {}
                Err(mpsc::error::TrySendError::Full(_)) => {
                    let lost = observer.dropped.fetch_add(1, Ordering::Relaxed) + 1;
                    self.inner.dropped.fetch_add(1, Ordering::Relaxed);
                    crate::metrics::record_dropped_event(&observer.label);
                    // Log the first drop and then every 1000th, so a stuck observer cannot
                    // flood the log.
                    if lost == 1 || lost % 1000 == 0 {
                        tracing::warn!(
                            event_type = event.ty(),
                            dropped = lost,
                            "slow event observer: event dropped"
                        );
                    }
                }
                Err(mpsc::error::TrySendError::Closed(_)) => saw_closed = true,
            }
        }
        if saw_closed {
            self.inner.observers.rcu(|current| {
                current
                    .iter()
                    .filter(|o| !o.tx.is_closed())
                    .cloned()
                    .collect::<Vec<_>>()
            });
        }
    }

    /// Builds and publishes an event with JSON data. A build failure (which only an invalid
    /// source could cause) is logged, not raised: events never break the operation they report.
    pub fn emit(&self, ty: &str, source: &str, data: serde_json::Value) {
        // Nobody listens: skip the id, the clock and the event itself (reloads and health
        // evaluations emit on every run).
        if !self.has_observer_for(ty) {
            self.inner.published.fetch_add(1, Ordering::Relaxed);
            return;
        }
        match build_event(ty, source, data) {
            Ok(event) => self.publish(event),
            Err(error) => tracing::error!(event_type = ty, %error, "could not build event"),
        }
    }

    /// Number of events published so far.
    pub fn published(&self) -> u64 {
        self.inner.published.load(Ordering::Relaxed)
    }

    /// Number of deliveries dropped across all observers.
    pub fn dropped(&self) -> u64 {
        self.inner.dropped.load(Ordering::Relaxed)
    }

    /// Whether anyone listens for this type (lets emitters skip building costly data).
    pub fn has_observer_for(&self, ty: &str) -> bool {
        self.inner
            .observers
            .load()
            .iter()
            .any(|o| o.filter.matches(ty) && !o.tx.is_closed())
    }
}

/// Builds a CloudEvents 1.0 event with a UUIDv7 id, the current time and JSON data.
pub fn build_event(
    ty: &str,
    source: &str,
    data: serde_json::Value,
) -> Result<Event, cloudevents::event::EventBuilderError> {
    EventBuilderV10::new()
        .id(uuid::Uuid::now_v7().to_string())
        .ty(ty)
        .source(source)
        .time(chrono::Utc::now())
        .data("application/json", data)
        .build()
}
