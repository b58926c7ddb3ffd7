//! What the broker engines (Redis, NATS, AMQP, MQTT) share: their URL, its printable address,
//! and the list of started subscriptions their stats read. Unused in a build without any of
//! them.
#![cfg_attr(
    not(any(
        feature = "redis",
        feature = "nats",
        feature = "amqp",
        feature = "mqtt"
    )),
    allow(dead_code)
)]

use std::sync::Arc;

use tokio::sync::{Mutex, mpsc};
use tokio_util::sync::CancellationToken;

use crate::config::EngineConfig;
use crate::engine::{Incoming, PendingSubscription};

impl EngineConfig {
    /// The broker URL with its credentials (empty for the memory engine), for connecting only:
    /// show [`address_of`] of it instead.
    pub(crate) fn url_exposed(&self) -> &str {
        self.url
            .as_ref()
            .map(|u| u.expose().as_str())
            .unwrap_or_default()
    }
}

/// `host:port` of a URL, for messages and health details (never the credentials).
pub(crate) fn address_of(url: &str) -> String {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    let authority = rest.split(['/', '?']).next().unwrap_or_default();
    authority
        .rsplit_once('@')
        .map_or(authority, |(_, h)| h)
        .to_owned()
}

/// The subscriptions a broker engine has started, kept for its stats. An entry whose stop token
/// has fired is dropped the next time the list is read or grown.
pub(crate) struct Started<T>(Arc<std::sync::Mutex<Vec<T>>>);

/// An entry of [`Started`]: it knows the token that stops its subscription.
pub(crate) trait Stoppable {
    fn stop_token(&self) -> &CancellationToken;
}

impl<T: Stoppable + Send + 'static> Started<T> {
    pub(crate) fn new() -> Self {
        Self(Arc::new(std::sync::Mutex::new(Vec::new())))
    }

    fn live(&self) -> std::sync::MutexGuard<'_, Vec<T>> {
        let mut subs = self
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        subs.retain(|t| !t.stop_token().is_cancelled());
        subs
    }

    /// Maps every live subscription (the lock is not held by the caller afterwards).
    pub(crate) fn map<R>(&self, f: impl FnMut(&T) -> R) -> Vec<R> {
        self.live().iter().map(f).collect()
    }

    /// A subscription reading from `rx`: starting it records `tracked` here, then runs `spawn`
    /// (which spawns the engine's pumps on the bus's task tracker).
    pub(crate) fn pending(
        &self,
        rx: mpsc::Receiver<Incoming>,
        stop: CancellationToken,
        tracked: T,
        spawn: impl FnOnce(&tokio_util::task::TaskTracker) + Send + 'static,
    ) -> PendingSubscription {
        let started = Self(Arc::clone(&self.0));
        PendingSubscription {
            source: Arc::new(Mutex::new(rx)),
            stop,
            start: Box::new(move |tasks| {
                started.live().push(tracked);
                spawn(tasks);
            }),
        }
    }
}
