//! [`CacheError`]: everything a cache operation, start-up or reload can fail with.

use std::time::Duration;

/// A failed cache operation, start-up or reload.
///
/// Messages never contain the Redis URL (it may hold a password) nor cached values.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CacheError {
    /// The loader of a `get_or_load` failed; nothing was stored.
    #[error("loading cache key `{key}` failed: {message}")]
    Load {
        /// The key.
        key: String,
        /// The loader's error.
        message: String,
    },
    /// A dynamic change to a field the running engine does not use.
    #[error("{field} cannot change on the {engine} engine: {hint}")]
    NotOnThisEngine {
        /// The field's full path.
        field: &'static str,
        /// The running engine.
        engine: &'static str,
        /// What bounds it there instead.
        hint: &'static str,
    },
    /// A backend operation did not finish in time (a reconnect in progress counts against it).
    #[error("cache {operation} timed out after {timeout:?}")]
    Timeout {
        /// `get`, `set`, `delete`, `get_many`, `set_many`, `clear` or `ping`.
        operation: &'static str,
        /// The deadline that passed (`redis.command_timeout`, or `health.timeout` for a check).
        timeout: Duration,
    },
    /// Redis answered with an error, or the connection broke.
    #[cfg(feature = "redis")]
    #[error("redis {operation} failed: {source}")]
    Redis {
        /// The operation.
        operation: &'static str,
        /// What the redis crate reported.
        #[source]
        source: redis::RedisError,
    },
    /// A new Redis connection could not be opened and checked with `PING`.
    #[error("cannot connect to redis at {address} within {timeout:?}: {reason}")]
    Connect {
        /// `host:port` or the socket path (never the URL, which may hold a password).
        address: String,
        /// `redis.connect_timeout`.
        timeout: Duration,
        /// Why.
        reason: String,
    },
    /// A typed value could not be encoded as JSON.
    #[error("cannot encode the value for cache key `{key}` as json: {source}")]
    Encode {
        /// The key.
        key: String,
        /// The serde error.
        #[source]
        source: serde_json::Error,
    },
    /// A stored value is not the JSON of the requested type.
    #[error("cache key `{key}` does not hold json of the requested type: {source}")]
    Decode {
        /// The key.
        key: String,
        /// The serde error.
        #[source]
        source: serde_json::Error,
    },
    /// The configured engine is not compiled in.
    #[error(
        "cache engine `{engine}` needs the `{engine}` feature of modular-cache, which this build lacks"
    )]
    EngineUnavailable {
        /// The engine.
        engine: &'static str,
    },
    /// A reload hook was called without its section.
    #[error("reload of `{module}` carried no `cache` section")]
    MissingSection {
        /// The module being reloaded.
        module: String,
    },
}

impl CacheError {
    /// Whether the error means the backend could not be reached (as opposed to a bad value or
    /// an error answer), which is what turns the connection state to disconnected.
    pub fn is_connection_error(&self) -> bool {
        match self {
            Self::Timeout { .. } | Self::Connect { .. } => true,
            #[cfg(feature = "redis")]
            Self::Redis { source, .. } => {
                source.is_io_error()
                    || source.is_connection_dropped()
                    || source.is_connection_refusal()
            }
            _ => false,
        }
    }
}
