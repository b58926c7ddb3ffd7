//! [`KeyValue`]: the small key-value seam. The cache module implements it (memory or Redis);
//! modules that need sessions, throttling counters or rate-limit windows (auth, router limits)
//! look it up as `Arc<dyn KeyValue>` in the [`ServiceRegistry`](crate::ServiceRegistry) without
//! depending on the cache module.
//!
//! Keys are the caller's; prefix them with the module name (`auth:session:…`) so two users
//! never collide. A `ttl` of `None` keeps the entry until it is deleted.

use std::fmt;
use std::time::Duration;

use crate::BoxError;

/// Get, set with a TTL, delete and atomic increment, on some shared store.
#[async_trait::async_trait]
pub trait KeyValue: Send + Sync + fmt::Debug + 'static {
    /// The value under `key`, or `None` when missing or expired.
    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, KvError>;

    /// Stores `value` under `key`, replacing any earlier value and its expiry; `ttl` `None`
    /// keeps it until deleted.
    async fn set(&self, key: &str, value: &[u8], ttl: Option<Duration>) -> Result<(), KvError>;

    /// Removes `key`; `true` when it was there.
    async fn delete(&self, key: &str) -> Result<bool, KvError>;

    /// Adds `by` to the integer under `key` (a missing key counts as 0) and returns the new
    /// value, atomically: concurrent increments are never lost. When the increment creates
    /// the key, it expires after `ttl` (a fixed window: later increments keep that expiry).
    /// A value that is not an integer is [`KvError::NotAnInteger`].
    async fn increment(&self, key: &str, by: i64, ttl: Option<Duration>) -> Result<i64, KvError>;
}

/// Why a key-value operation failed. Never carries a stored value.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum KvError {
    /// The value under the key is not a decimal integer (an increment on a string).
    #[error("the value under key {key:?} is not an integer")]
    NotAnInteger {
        /// The key.
        key: String,
    },
    /// The increment would overflow an `i64`.
    #[error("incrementing key {key:?} would overflow")]
    Overflow {
        /// The key.
        key: String,
    },
    /// The store could not be reached or answered an error.
    #[error("key-value store unavailable: {0}")]
    Unavailable(#[source] BoxError),
}

/// Parses a stored counter (decimal ASCII, as Redis `INCRBY` keeps it).
pub fn parse_counter(key: &str, bytes: &[u8]) -> Result<i64, KvError> {
    std::str::from_utf8(bytes)
        .ok()
        .and_then(|s| s.trim().parse::<i64>().ok())
        .ok_or_else(|| KvError::NotAnInteger {
            key: key.to_owned(),
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_are_decimal_text() {
        assert_eq!(parse_counter("k", b"42").ok(), Some(42));
        assert_eq!(parse_counter("k", b"-7").ok(), Some(-7));
        assert!(matches!(
            parse_counter("k", b"forty"),
            Err(KvError::NotAnInteger { .. })
        ));
    }
}
