//! [`MemoryStore`]: the in-process [`KeyValue`] used when `sessions.store` is `memory`, and
//! the clock every stored time is read from.

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

/// Unix milliseconds on tokio's clock: the wall clock moved by how far tokio's clock is from
/// the monotonic one (nothing in production; the advanced time under a paused clock), so
/// stored session times follow paused time in tests and are comparable across processes
/// (within their clock skew) in production. No state is kept: each runtime's clock is its
/// own (a first reading cached by one test's runtime would be wrong for the next test's).
pub(crate) fn now_ms() -> u64 {
    let wall = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i128::try_from(d.as_nanos()).unwrap_or(i128::MAX));
    let tokio_now = Instant::now().into_std();
    let std_now = std::time::Instant::now();
    let ahead = match tokio_now.checked_duration_since(std_now) {
        Some(ahead) => i128::try_from(ahead.as_nanos()).unwrap_or(i128::MAX),
        None => -i128::try_from(std_now.duration_since(tokio_now).as_nanos()).unwrap_or(i128::MAX),
    };
    // In nanoseconds, rounded once: two readings a paused clock sees as equal stay equal.
    u64::try_from(wall.saturating_add(ahead) / 1_000_000).unwrap_or(0)
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

    /// Each runtime's paused clock moves `now_ms` by exactly what it advances, whatever
    /// another runtime (another test) did before.
    #[test]
    fn now_ms_follows_each_runtimes_own_paused_clock() {
        let paused = || {
            tokio::runtime::Builder::new_current_thread()
                .enable_time()
                .start_paused(true)
                .build()
                .unwrap()
        };
        let first = paused().block_on(async {
            tokio::time::advance(Duration::from_secs(20 * 60)).await;
            now_ms()
        });
        let (before, after) = paused().block_on(async {
            let before = now_ms();
            tokio::time::advance(Duration::from_secs(25 * 60)).await;
            (before, now_ms())
        });
        assert!(
            before < first,
            "the second runtime's clock starts at the wall clock"
        );
        assert!(
            after.abs_diff(before + 25 * 60 * 1000) <= 1,
            "{}",
            after - before
        );
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
