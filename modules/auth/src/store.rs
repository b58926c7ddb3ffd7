//! [`MemoryStore`]: the in-process [`KeyValue`] used when `sessions.store` is `memory`, and
//! the clock every stored time is read from.

use std::sync::OnceLock;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use dashmap::DashMap;
use modular_core::kv::{KeyValue, KvError, parse_counter};
use tokio::time::Instant;

/// An in-process key-value map with per-entry expiry on tokio's clock (so paused-time tests
/// see entries expire). Expired entries are dropped when read.
#[derive(Debug, Default)]
pub struct MemoryStore {
    entries: DashMap<String, (Vec<u8>, Option<Instant>)>,
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    /// How many entries (expired ones not yet read included).
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether it holds nothing.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

fn live(expires: Option<Instant>) -> bool {
    expires.is_none_or(|at| Instant::now() < at)
}

#[async_trait::async_trait]
impl KeyValue for MemoryStore {
    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, KvError> {
        let value = self.entries.get(key).map(|e| (live(e.1), e.0.clone()));
        match value {
            Some((true, value)) => Ok(Some(value)),
            Some((false, _)) => {
                self.entries.remove_if(key, |_, e| !live(e.1));
                Ok(None)
            }
            None => Ok(None),
        }
    }

    async fn set(&self, key: &str, value: &[u8], ttl: Option<Duration>) -> Result<(), KvError> {
        let expires = ttl.map(|ttl| Instant::now() + ttl);
        self.entries
            .insert(key.to_owned(), (value.to_vec(), expires));
        Ok(())
    }

    async fn delete(&self, key: &str) -> Result<bool, KvError> {
        Ok(self
            .entries
            .remove(key)
            .is_some_and(|(_, (_, expires))| live(expires)))
    }

    async fn increment(&self, key: &str, by: i64, ttl: Option<Duration>) -> Result<i64, KvError> {
        let mut entry = self
            .entries
            .entry(key.to_owned())
            .or_insert_with(|| (b"0".to_vec(), ttl.map(|t| Instant::now() + t)));
        if !live(entry.1) {
            *entry = (b"0".to_vec(), ttl.map(|t| Instant::now() + t));
        }
        let current = parse_counter(key, &entry.0)?;
        let next = current.checked_add(by).ok_or_else(|| KvError::Overflow {
            key: key.to_owned(),
        })?;
        entry.0 = next.to_string().into_bytes();
        Ok(next)
    }
}

/// Unix milliseconds on tokio's clock: the wall clock when first read, advanced by tokio's
/// `Instant` since, so stored session times follow paused time in tests and are comparable
/// across processes (within their clock skew) in production.
pub(crate) fn now_ms() -> u64 {
    static BASE: OnceLock<(Instant, u64)> = OnceLock::new();
    let (instant, wall) = BASE.get_or_init(|| {
        let wall = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
            .unwrap_or(0);
        (Instant::now(), wall)
    });
    wall + u64::try_from(instant.elapsed().as_millis()).unwrap_or(u64::MAX)
}

/// Wall-clock Unix seconds (token `iat`, `exp`, `nbf` are checked against it by jsonwebtoken).
pub(crate) fn unix_now() -> u64 {
    jsonwebtoken::get_current_timestamp()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn entries_expire_on_tokio_time() {
        let store = MemoryStore::new();
        store
            .set("k", b"v", Some(Duration::from_secs(5)))
            .await
            .ok();
        assert_eq!(
            store.get("k").await.ok().flatten().as_deref(),
            Some(&b"v"[..])
        );
        tokio::time::advance(Duration::from_secs(6)).await;
        assert_eq!(store.get("k").await.ok().flatten(), None);
    }

    #[tokio::test(start_paused = true)]
    async fn increments_count_in_a_fixed_window() {
        let store = MemoryStore::new();
        let ttl = Some(Duration::from_secs(10));
        assert_eq!(store.increment("c", 1, ttl).await.ok(), Some(1));
        tokio::time::advance(Duration::from_secs(5)).await;
        assert_eq!(store.increment("c", 2, ttl).await.ok(), Some(3));
        tokio::time::advance(Duration::from_secs(6)).await;
        assert_eq!(store.increment("c", 1, ttl).await.ok(), Some(1));
        assert!(store.delete("c").await.unwrap_or(false));
    }
}
