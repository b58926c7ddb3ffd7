//! [`EventbusError`]: everything a publish, a subscription, start-up or a reload can fail with.

use std::time::Duration;

/// A failed publish, subscription, start-up or reload.
///
/// Messages never contain an engine URL (it may hold a password) nor event data.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum EventbusError {
    /// A topic or pattern that does not parse.
    #[error("invalid topic or pattern: {0}")]
    Topic(String),
    /// The broker did not accept the event; the caller must assume it was not published.
    #[error("publish to `{topic}` on engine `{engine}` failed: {reason}")]
    Publish {
        /// The engine's name.
        engine: String,
        /// The topic.
        topic: String,
        /// Why (broker error or timeout), without the URL.
        reason: String,
    },
    /// A memory queue was full and the event was dropped for at least one subscription.
    #[error("publish to `{topic}` dropped for {dropped} subscription(s): queue full")]
    Dropped {
        /// The topic.
        topic: String,
        /// Subscriptions that did not get it.
        dropped: usize,
    },
    /// The broker did not answer in time.
    #[error("{operation} on engine `{engine}` timed out after {timeout:?}")]
    Timeout {
        /// The engine's name.
        engine: String,
        /// What timed out.
        operation: &'static str,
        /// The deadline.
        timeout: Duration,
    },
    /// A connection could not be opened and checked.
    #[error("cannot connect engine `{engine}` to {address} within {timeout:?}: {reason}")]
    Connect {
        /// The engine's name.
        engine: String,
        /// `host:port` (never the URL).
        address: String,
        /// `connect_timeout`.
        timeout: Duration,
        /// Why.
        reason: String,
    },
    /// A subscription could not be set up on the broker.
    #[error("subscribe to `{pattern}` on engine `{engine}` failed: {reason}")]
    Subscribe {
        /// The engine's name.
        engine: String,
        /// The pattern.
        pattern: String,
        /// Why.
        reason: String,
    },
    /// An event could not be encoded as CloudEvents JSON.
    #[error("cannot encode the event as cloudevents json: {0}")]
    Encode(String),
    /// The bus is shut down.
    #[error("the event bus is stopped")]
    Stopped,
    /// A reload hook was called without its section.
    #[error("reload of `{module}` carried no `eventbus` section")]
    MissingSection {
        /// The module being reloaded.
        module: String,
    },
}

impl EventbusError {
    /// Whether the broker could not be reached (as opposed to a bad topic or event).
    pub fn is_connection_error(&self) -> bool {
        matches!(
            self,
            Self::Publish { .. } | Self::Timeout { .. } | Self::Connect { .. }
        )
    }
}
