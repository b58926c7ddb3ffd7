//! The `memory` engine: a moka future cache with TinyLFU eviction and per-entry TTL.

use std::cmp::Reverse;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use moka::Expiry;
use moka::future::Cache;

/// One in-process cache, bounded by `max_items`.
///
/// Cheap to clone: clones share the entries.
#[derive(Clone)]
pub(crate) struct MemoryStore {
    cache: Cache<String, Arc<Entry>>,
    max_items: u64,
    /// `modular_cache_evictions_total` (metrics on), passed on to a rebuilt cache.
    evictions: Option<metrics::Counter>,
}

/// A stored value with its absolute expiry and a read counter.
///
/// The counter is how a `max_items` rebuild ranks entries ("hottest first"): moka keeps its own
/// TinyLFU frequency sketch private, so each entry counts the reads it served since it was
/// written. A rewrite starts a new entry at zero.
pub(crate) struct Entry {
    value: Box<[u8]>,
    expires_at: Option<Instant>,
    reads: AtomicU64,
}

/// What a rebuild did with the old entries.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Carried {
    /// Entries copied into the new cache.
    pub(crate) kept: u64,
    /// Live entries left behind because the new cache is smaller.
    pub(crate) dropped: u64,
}

/// Tells moka each entry's remaining lifetime from the expiry stored in it, so a TTL given at
/// write time is kept by updates and survives a rebuild.
struct EntryExpiry;

impl Expiry<String, Arc<Entry>> for EntryExpiry {
    fn expire_after_create(
        &self,
        _key: &String,
        entry: &Arc<Entry>,
        created_at: Instant,
    ) -> Option<Duration> {
        entry.remaining(created_at)
    }

    fn expire_after_update(
        &self,
        _key: &String,
        entry: &Arc<Entry>,
        updated_at: Instant,
        _duration_until_expiry: Option<Duration>,
    ) -> Option<Duration> {
        // An overwrite carries its own TTL; the old entry's expiry must not stick.
        entry.remaining(updated_at)
    }
}

impl Entry {
    fn new(value: &[u8], ttl: Option<Duration>) -> Self {
        let now = Instant::now();
        Self {
            value: value.into(),
            // A TTL too large for `Instant` means "never" in practice.
            expires_at: ttl.and_then(|ttl| now.checked_add(ttl)),
            reads: AtomicU64::new(0),
        }
    }

    fn remaining(&self, now: Instant) -> Option<Duration> {
        self.expires_at.map(|at| at.saturating_duration_since(now))
    }

    fn is_live(&self, now: Instant) -> bool {
        self.expires_at.is_none_or(|at| at > now)
    }
}

impl MemoryStore {
    /// An empty cache holding at most `max_items` entries.
    #[cfg(test)]
    pub(crate) fn new(max_items: u64) -> Self {
        Self::with_evictions(max_items, None)
    }

    /// An empty cache that counts the entries it evicts for size into `evictions`, if any.
    ///
    /// Without a counter no eviction listener is installed: moka serialises every write of a
    /// cache with a listener through a per-key lock (to deliver notifications in order), which
    /// more than doubles the cost of a `set`.
    pub(crate) fn with_evictions(max_items: u64, evictions: Option<metrics::Counter>) -> Self {
        let builder = Cache::builder()
            .max_capacity(max_items)
            .expire_after(EntryExpiry);
        let cache = match evictions.clone() {
            Some(counter) => builder
                .eviction_listener(move |_key, _value, cause| {
                    if cause == moka::notification::RemovalCause::Size {
                        counter.increment(1);
                    }
                })
                .build(),
            None => builder.build(),
        };
        Self {
            cache,
            max_items,
            evictions,
        }
    }

    /// The bound.
    pub(crate) fn max_items(&self) -> u64 {
        self.max_items
    }

    pub(crate) async fn get(&self, key: &str) -> Option<Vec<u8>> {
        let entry = self.cache.get(key).await?;
        entry.reads.fetch_add(1, Ordering::Relaxed);
        Some(entry.value.to_vec())
    }

    /// The value under `key`, or `loader`'s stored with `ttl`; concurrent misses share one
    /// load (moka's `try_get_with`). `true` when this call's loader ran.
    pub(crate) async fn get_or_load(
        &self,
        key: &str,
        ttl: Option<Duration>,
        loader: crate::service::Loader<'_>,
    ) -> Result<(Vec<u8>, bool), Arc<modular_core::BoxError>> {
        let loaded = std::sync::atomic::AtomicBool::new(false);
        let entry = self
            .cache
            .try_get_with_by_ref(key, async {
                let value = loader.await?;
                loaded.store(true, Ordering::Relaxed);
                Ok::<_, modular_core::BoxError>(Arc::new(Entry::new(&value, ttl)))
            })
            .await?;
        entry.reads.fetch_add(1, Ordering::Relaxed);
        Ok((entry.value.to_vec(), loaded.load(Ordering::Relaxed)))
    }

    /// Stores `value`; `ttl` `None` never expires.
    pub(crate) async fn set(&self, key: &str, value: &[u8], ttl: Option<Duration>) {
        self.cache
            .insert(key.to_owned(), Arc::new(Entry::new(value, ttl)))
            .await;
    }

    /// Adds `by` to the decimal integer under `key` (missing or expired: 0) in one atomic
    /// compute; a key the increment creates expires after `ttl`, a live one keeps its expiry.
    pub(crate) async fn increment(
        &self,
        key: &str,
        by: i64,
        ttl: Option<Duration>,
    ) -> Result<i64, modular_core::kv::KvError> {
        use moka::ops::compute::{CompResult, Op};
        let now = Instant::now();
        let result = self
            .cache
            .entry_by_ref(key)
            .and_try_compute_with(|current| async move {
                let (base, expires_at) = match current.map(|e| e.into_value()) {
                    Some(entry) if entry.is_live(now) => (
                        modular_core::kv::parse_counter(key, &entry.value)?,
                        entry.expires_at,
                    ),
                    _ => (0, ttl.and_then(|ttl| now.checked_add(ttl))),
                };
                let next =
                    base.checked_add(by)
                        .ok_or_else(|| modular_core::kv::KvError::Overflow {
                            key: key.to_owned(),
                        })?;
                Ok::<_, modular_core::kv::KvError>(Op::Put(Arc::new(Entry {
                    value: next.to_string().into_bytes().into_boxed_slice(),
                    expires_at,
                    reads: AtomicU64::new(0),
                })))
            })
            .await?;
        match result {
            CompResult::Inserted(entry) | CompResult::ReplacedWith(entry) => {
                modular_core::kv::parse_counter(key, &entry.into_value().value)
            }
            // The closure always puts.
            _ => Err(modular_core::kv::KvError::NotAnInteger {
                key: key.to_owned(),
            }),
        }
    }

    pub(crate) async fn delete(&self, key: &str) -> bool {
        self.cache.remove(key).await.is_some()
    }

    pub(crate) async fn clear(&self) {
        self.cache.invalidate_all();
        self.cache.run_pending_tasks().await;
    }

    /// The number of live entries, after moka has applied pending evictions and expiries.
    pub(crate) async fn entry_count(&self) -> u64 {
        self.cache.run_pending_tasks().await;
        self.cache.entry_count()
    }

    /// A new cache bounded by `max_items`, holding the hottest live entries of this one (by
    /// reads since written; see [`Entry`]), each with its remaining TTL.
    ///
    /// The caller must keep writers out while this runs (the service's write gate), or a write
    /// made to this cache after its key was copied would be lost in the new one.
    pub(crate) async fn rebuild(&self, max_items: u64) -> (MemoryStore, Carried) {
        let now = Instant::now();
        let mut entries: Vec<(Arc<String>, Arc<Entry>)> = self
            .cache
            .iter()
            .filter(|(_, entry)| entry.is_live(now))
            .collect();
        entries.sort_by_key(|(_, entry)| Reverse(entry.reads.load(Ordering::Relaxed)));
        let keep = usize::try_from(max_items)
            .unwrap_or(usize::MAX)
            .min(entries.len());
        let next = MemoryStore::with_evictions(max_items, self.evictions.clone());
        for (key, entry) in &entries[..keep] {
            // The entry itself moves over: value, expiry and read count.
            next.cache
                .insert(key.as_ref().clone(), Arc::clone(entry))
                .await;
        }
        next.cache.run_pending_tasks().await;
        let carried = Carried {
            kept: keep as u64,
            dropped: (entries.len() - keep) as u64,
        };
        (next, carried)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_rebuild_keeps_the_most_read_entries() {
        let store = MemoryStore::new(100);
        for i in 0..10 {
            store.set(&format!("k{i}"), b"v", None).await;
        }
        // k7, k8 and k9 are read most, k9 most of all.
        for (key, reads) in [("k7", 1), ("k8", 2), ("k9", 3)] {
            for _ in 0..reads {
                assert!(store.get(key).await.is_some());
            }
        }
        let (next, carried) = store.rebuild(3).await;
        assert_eq!(
            carried,
            Carried {
                kept: 3,
                dropped: 7
            }
        );
        assert_eq!(next.max_items(), 3);
        for key in ["k7", "k8", "k9"] {
            assert_eq!(next.get(key).await.as_deref(), Some(&b"v"[..]), "{key}");
        }
        assert_eq!(next.get("k0").await, None);
        assert_eq!(next.entry_count().await, 3);
    }

    #[tokio::test]
    async fn a_rebuild_keeps_each_entrys_expiry() {
        let store = MemoryStore::new(10);
        store.set("forever", b"1", None).await;
        store
            .set("hour", b"2", Some(Duration::from_secs(3600)))
            .await;
        let (next, _) = store.rebuild(10).await;
        let now = Instant::now();
        let forever = next.cache.get("forever").await.map(|e| e.remaining(now));
        assert_eq!(forever, Some(None));
        let hour = next.cache.get("hour").await.and_then(|e| e.remaining(now));
        assert!(hour.is_some_and(
            |left| left > Duration::from_secs(3500) && left <= Duration::from_secs(3600)
        ));
    }

    #[tokio::test]
    async fn an_overwrite_replaces_the_expiry() {
        let store = MemoryStore::new(10);
        store.set("k", b"1", Some(Duration::from_millis(1))).await;
        store.set("k", b"2", None).await;
        std::thread::sleep(Duration::from_millis(5));
        assert_eq!(store.get("k").await.as_deref(), Some(&b"2"[..]));
    }
}
