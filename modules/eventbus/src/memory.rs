//! The `memory` engine: in-process bounded queues, one per subscription group; at-most-once.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use cloudevents::Event;
use tokio::sync::{Mutex, mpsc};
use tokio_util::sync::CancellationToken;

use crate::config::{EngineConfig, EngineType, Overflow};
use crate::engine::{
    Engine, EngineStats, Incoming, PendingSubscription, SubscribeSpec, SubscriptionStats,
};
use crate::error::EventbusError;

/// One group's queue: every member's dispatcher reads the same receiver, so each event goes to
/// one member; fan-out subscribers each have a group of their own.
struct Group {
    spec: SubscribeSpec,
    tx: mpsc::Sender<Incoming>,
    source: crate::engine::Source,
    members: AtomicU64,
    capacity: usize,
}

/// The memory engine.
pub(crate) struct MemoryEngine {
    groups: Arc<RwLock<Vec<Arc<Group>>>>,
    queue_size: usize,
    when_full: Overflow,
    block_timeout: Duration,
    dropped: AtomicU64,
}

impl MemoryEngine {
    pub(crate) fn new(config: &EngineConfig) -> Self {
        Self {
            groups: Arc::new(RwLock::new(Vec::new())),
            queue_size: config.queue_size,
            when_full: config.when_full,
            block_timeout: config.block_timeout,
            dropped: AtomicU64::new(0),
        }
    }

    fn matching(&self, topic: &str) -> Vec<Arc<Group>> {
        let groups = self
            .groups
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        groups
            .iter()
            .filter(|g| g.spec.pattern.matches(topic))
            .cloned()
            .collect()
    }

    fn incoming(topic: &str, event: &Event) -> Incoming {
        Incoming {
            topic: topic.to_owned(),
            event: event.clone(),
            acker: None,
        }
    }
}

#[async_trait::async_trait]
impl Engine for MemoryEngine {
    fn kind(&self) -> EngineType {
        EngineType::Memory
    }

    fn address(&self) -> Option<String> {
        None
    }

    async fn publish(&self, topic: &str, event: &Event) -> Result<(), EventbusError> {
        let mut dropped = 0;
        for group in self.matching(topic) {
            let message = Self::incoming(topic, event);
            let sent = match self.when_full {
                Overflow::Drop => group.tx.try_send(message).is_ok(),
                Overflow::Block => group.tx.send(message).await.is_ok(),
                Overflow::BlockTimeout => group
                    .tx
                    .send_timeout(message, self.block_timeout)
                    .await
                    .is_ok(),
            };
            if !sent {
                dropped += 1;
            }
        }
        if dropped > 0 {
            self.dropped.fetch_add(dropped as u64, Ordering::Relaxed);
            return Err(EventbusError::Dropped {
                topic: topic.to_owned(),
                dropped,
            });
        }
        Ok(())
    }

    async fn subscribe(&self, spec: &SubscribeSpec) -> Result<PendingSubscription, EventbusError> {
        let group = {
            let mut groups = self
                .groups
                .write()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            let existing = groups
                .iter()
                .find(|g| {
                    !spec.fan_out && g.spec.group == spec.group && g.spec.pattern == spec.pattern
                })
                .cloned();
            match existing {
                Some(group) => group,
                None => {
                    let (tx, rx) = mpsc::channel(self.queue_size);
                    let group = Arc::new(Group {
                        spec: spec.clone(),
                        tx,
                        source: Arc::new(Mutex::new(rx)),
                        members: AtomicU64::new(0),
                        capacity: self.queue_size,
                    });
                    groups.push(Arc::clone(&group));
                    group
                }
            }
        };
        group.members.fetch_add(1, Ordering::Relaxed);
        let stop = CancellationToken::new();
        let groups = Arc::clone(&self.groups);
        let source = Arc::clone(&group.source);
        let watched = stop.clone();
        Ok(PendingSubscription {
            source,
            stop,
            start: Box::new(move |tasks| {
                // The last member leaving removes the group: its sender goes, so the
                // dispatchers drain what is queued and end.
                tasks.spawn(async move {
                    watched.cancelled().await;
                    if group.members.fetch_sub(1, Ordering::Relaxed) == 1 {
                        groups
                            .write()
                            .unwrap_or_else(std::sync::PoisonError::into_inner)
                            .retain(|g| !Arc::ptr_eq(g, &group));
                    }
                });
            }),
        })
    }

    async fn probe(&self, topic: &str, timeout: Duration) -> Result<(), EventbusError> {
        // A real round trip through a queue of this engine, outside the routing table.
        let (tx, mut rx) = mpsc::channel(1);
        let event = crate::event::probe_event(topic);
        tx.try_send(Self::incoming(topic, &event))
            .map_err(|_| EventbusError::Stopped)?;
        match tokio::time::timeout(timeout, rx.recv()).await {
            Ok(Some(_)) => Ok(()),
            _ => Err(EventbusError::Timeout {
                engine: "memory".to_owned(),
                operation: "health probe",
                timeout,
            }),
        }
    }

    async fn stats(&self) -> EngineStats {
        let groups: Vec<Arc<Group>> = self
            .groups
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone();
        EngineStats {
            dropped: self.dropped.load(Ordering::Relaxed),
            queue_size: Some(self.queue_size),
            subscriptions: groups
                .iter()
                .map(|g| SubscriptionStats {
                    pattern: g.spec.pattern.to_string(),
                    group: g.spec.group.clone(),
                    lag: (g.capacity - g.tx.capacity()) as u64,
                    pending: 0,
                })
                .collect(),
        }
    }
}
