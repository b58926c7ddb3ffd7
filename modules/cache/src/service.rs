//! The [`Cache`] trait, its typed helpers ([`CacheExt`]) and [`CacheService`], the reloadable
//! implementation the module registers.

use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use arc_swap::ArcSwap;
use modular_core::ModuleContext;
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::config::{CacheConfig, CacheEngine};
use crate::error::CacheError;
use crate::memory::{Carried, MemoryStore};
#[cfg(feature = "redis")]
use crate::redis::RedisStore;

/// A key-value cache of bytes: what other modules look up in the registry as `Arc<dyn Cache>`.
///
/// Every key lives in the cache module's own namespace (the Redis engine prefixes it with
/// `redis.key_prefix`), so `clear` never touches anything else.
///
/// A `ttl` of `None` uses the configured `default_ttl`; `Some(Duration::ZERO)` (like a
/// `default_ttl` of `0s`) means the entry never expires.
#[async_trait::async_trait]
pub trait Cache: Send + Sync + 'static {
    /// The value under `key`, or `None` when it is missing or expired.
    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, CacheError>;

    /// Stores `value` under `key`, replacing any earlier value and its expiry.
    async fn set(&self, key: &str, value: &[u8], ttl: Option<Duration>) -> Result<(), CacheError>;

    /// Removes `key`; `true` when it was there.
    async fn delete(&self, key: &str) -> Result<bool, CacheError>;

    /// The values under `keys`, in the same order (one round trip on Redis).
    async fn get_many(&self, keys: &[&str]) -> Result<Vec<Option<Vec<u8>>>, CacheError>;

    /// Stores every entry with the same `ttl` (one round trip on Redis).
    async fn set_many(
        &self,
        entries: &[(&str, &[u8])],
        ttl: Option<Duration>,
    ) -> Result<(), CacheError>;

    /// Removes every entry of this cache's namespace, and nothing else.
    async fn clear(&self) -> Result<(), CacheError>;

    /// The value under `key`, or the one `loader` produces on a miss, stored with `ttl`.
    ///
    /// Concurrent misses of one key run the loader once and all get its value (stampede
    /// protection): on the memory engine through moka's `try_get_with`; on Redis through a
    /// short lock key (`SET <key>:__lock NX PX 10s`) that one caller holds while it loads, the
    /// others polling for the value (5 ms doubling to 100 ms) and loading themselves only if the
    /// holder neither stores a value nor releases the lock within its 10 s. The lock holds the
    /// holder's own token and is released only while it still does. A loader error is
    /// [`CacheError::Load`] and nothing is stored: on memory for every waiter of that load; on
    /// Redis for the caller whose loader failed, after which the next waiter takes the lock and
    /// runs its own loader (no error is shared across processes).
    ///
    /// This default implementation (for other `Cache` implementations) does not coalesce.
    async fn get_or_load(
        &self,
        key: &str,
        ttl: Option<Duration>,
        loader: Loader<'_>,
    ) -> Result<Vec<u8>, CacheError> {
        if let Some(value) = self.get(key).await? {
            return Ok(value);
        }
        let value = loader.await.map_err(|error| CacheError::Load {
            key: key.to_owned(),
            message: error.to_string(),
        })?;
        self.set(key, &value, ttl).await?;
        Ok(value)
    }
}

/// What [`Cache::get_or_load`] runs on a miss: a future producing the value.
///
/// ```
/// # async fn demo(cache: &dyn modular_cache::Cache) -> Result<(), modular_cache::CacheError> {
/// let value = cache
///     .get_or_load("report", None, Box::pin(async { Ok(b"expensive".to_vec()) }))
///     .await?;
/// assert_eq!(value, b"expensive");
/// # Ok(()) }
/// ```
pub type Loader<'a> =
    std::pin::Pin<Box<dyn Future<Output = Result<Vec<u8>, modular_core::BoxError>> + Send + 'a>>;

/// Typed helpers over any [`Cache`]: values are stored as JSON.
///
/// ```
/// # async fn demo(cache: &dyn modular_cache::Cache) -> Result<(), modular_cache::CacheError> {
/// use modular_cache::CacheExt as _;
///
/// #[derive(serde::Serialize, serde::Deserialize, PartialEq, Debug)]
/// struct Session { user: String }
///
/// cache.set_json("session:1", &Session { user: "ada".into() }, None).await?;
/// let session: Option<Session> = cache.get_json("session:1").await?;
/// assert_eq!(session.map(|s| s.user).as_deref(), Some("ada"));
/// # Ok(()) }
/// ```
pub trait CacheExt: Cache {
    /// The value under `key` decoded from JSON; a value that is not the JSON of `T` is an
    /// error ([`CacheError::Decode`]), not a miss.
    fn get_json<'a, T>(
        &'a self,
        key: &'a str,
    ) -> impl Future<Output = Result<Option<T>, CacheError>> + Send + 'a
    where
        T: DeserializeOwned + 'a,
    {
        async move {
            let Some(bytes) = self.get(key).await? else {
                return Ok(None);
            };
            serde_json::from_slice(&bytes)
                .map(Some)
                .map_err(|source| CacheError::Decode {
                    key: key.to_owned(),
                    source,
                })
        }
    }

    /// Stores `value` encoded as JSON.
    fn set_json<'a, T>(
        &'a self,
        key: &'a str,
        value: &T,
        ttl: Option<Duration>,
    ) -> impl Future<Output = Result<(), CacheError>> + Send + 'a
    where
        T: Serialize + ?Sized,
    {
        // Encoded before the future is built, so `T` need not be `Sync`.
        let encoded = serde_json::to_vec(value).map_err(|source| CacheError::Encode {
            key: key.to_owned(),
            source,
        });
        async move { self.set(key, &encoded?, ttl).await }
    }
}

impl<C: Cache + ?Sized> CacheExt for C {}

/// Counters and sizes of a cache, as shown in its health details.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct CacheStats {
    /// The engine.
    pub engine: CacheEngine,
    /// Lookups that found a value, since start-up (reloads keep counting).
    pub hits: u64,
    /// Lookups that found nothing.
    pub misses: u64,
    /// Live entries (memory engine).
    pub entries: Option<u64>,
    /// The bound on entries (memory engine).
    pub max_items: Option<u64>,
}

/// The cache the module registers, as `Arc<CacheService>` and as `Arc<dyn Cache>`.
///
/// It holds the running engine in an `ArcSwap`: a reload builds the next engine aside and swaps
/// it in, and an operation that already loaded the previous one finishes on it.
pub struct CacheService {
    pub(crate) engine: ArcSwap<Engine>,
    kind: CacheEngine,
    /// Memory engine only: writers share it, a `max_items` rebuild takes it alone, so no write
    /// can land in the old cache after its key was copied (it would be lost, or leave a stale
    /// value in the new cache).
    pub(crate) write_gate: Arc<tokio::sync::RwLock<()>>,
    hits: AtomicU64,
    misses: AtomicU64,
    series: crate::metrics::CacheSeries,
    /// 1 at start, +1 per committed engine.
    generation: AtomicU64,
    /// Redis engine: whether the last operation reached the server.
    #[cfg_attr(not(feature = "redis"), allow(dead_code))]
    connected: AtomicBool,
    context: OnceLock<ModuleContext>,
}

/// One running engine with the dynamic settings it runs with.
#[cfg_attr(not(feature = "redis"), allow(dead_code))]
pub(crate) struct Engine {
    pub(crate) store: Store,
    pub(crate) default_ttl: Duration,
    pub(crate) latency_threshold: Duration,
    /// Static (`health.timeout`).
    pub(crate) health_timeout: Duration,
}

#[derive(Clone)]
pub(crate) enum Store {
    Memory(MemoryStore),
    #[cfg(feature = "redis")]
    Redis(RedisStore),
}

impl Store {
    fn as_memory(&self) -> Option<&MemoryStore> {
        match self {
            Store::Memory(memory) => Some(memory),
            #[cfg(feature = "redis")]
            Store::Redis(_) => None,
        }
    }
}

/// What one reload did, for its event.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Applied {
    pub(crate) rebuilt: Option<Carried>,
    pub(crate) reconnected: bool,
}

impl std::fmt::Debug for CacheService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CacheService")
            .field("engine", &self.kind)
            .field("hits", &self.hits.load(Ordering::Relaxed))
            .field("misses", &self.misses.load(Ordering::Relaxed))
            .finish_non_exhaustive()
    }
}

impl Engine {
    fn new(store: Store, config: &CacheConfig) -> Self {
        Self {
            store,
            default_ttl: config.default_ttl,
            latency_threshold: config.health.latency_threshold,
            health_timeout: config.health.timeout,
        }
    }

    /// The expiry of a write: the explicit `ttl`, else the default; zero means never.
    fn ttl(&self, ttl: Option<Duration>) -> Option<Duration> {
        Some(ttl.unwrap_or(self.default_ttl)).filter(|ttl| !ttl.is_zero())
    }
}

impl CacheService {
    /// Builds the engine `config` names: an empty memory cache, or a Redis connection checked
    /// with `PING` within `redis.connect_timeout`.
    pub async fn new(config: &CacheConfig) -> Result<Self, CacheError> {
        let series = crate::metrics::CacheSeries::new(config.engine.as_str());
        let store = match config.engine {
            CacheEngine::Memory => Store::Memory(MemoryStore::with_evictions(
                config.max_items,
                series.evictions.clone(),
            )),
            #[cfg(feature = "redis")]
            CacheEngine::Redis => Store::Redis(
                RedisStore::connect(&config.redis, &config.redis.key_prefix, series.clone())
                    .await?,
            ),
            #[cfg(not(feature = "redis"))]
            CacheEngine::Redis => return Err(CacheError::EngineUnavailable { engine: "redis" }),
        };
        Ok(Self {
            engine: ArcSwap::from_pointee(Engine::new(store, config)),
            kind: config.engine,
            write_gate: Arc::new(tokio::sync::RwLock::new(())),
            hits: AtomicU64::new(0),
            misses: AtomicU64::new(0),
            series,
            generation: AtomicU64::new(1),
            connected: AtomicBool::new(true),
            context: OnceLock::new(),
        })
    }

    /// The engine.
    pub fn engine(&self) -> CacheEngine {
        self.kind
    }

    /// The `default_ttl` in force.
    pub fn default_ttl(&self) -> Duration {
        self.engine.load().default_ttl
    }

    /// Hits, misses and (memory engine) entries against the bound.
    pub async fn stats(&self) -> CacheStats {
        let engine = self.engine.load_full();
        let (entries, max_items) = match &engine.store {
            Store::Memory(memory) => (Some(memory.entry_count().await), Some(memory.max_items())),
            #[cfg(feature = "redis")]
            Store::Redis(_) => (None, None),
        };
        CacheStats {
            engine: self.kind,
            hits: self.hits.load(Ordering::Relaxed),
            misses: self.misses.load(Ordering::Relaxed),
            entries,
            max_items,
        }
    }

    /// Gives the service the module context it emits events through.
    pub(crate) fn attach(&self, context: ModuleContext) {
        let _ = self.context.set(context);
    }

    pub(crate) fn emit(&self, noun_verb: &str, data: serde_json::Value) {
        if let Some(context) = self.context.get() {
            context.emit(noun_verb, data);
        }
    }

    /// Hits and misses since start-up.
    pub(crate) fn counters(&self) -> (u64, u64) {
        (
            self.hits.load(Ordering::Relaxed),
            self.misses.load(Ordering::Relaxed),
        )
    }

    fn count(&self, found: bool) {
        let (counter, series) = if found {
            (&self.hits, &self.series.hits)
        } else {
            (&self.misses, &self.series.misses)
        };
        counter.fetch_add(1, Ordering::Relaxed);
        series.increment(1);
    }

    /// Tracks whether the Redis server is reachable from the outcome of an operation, and
    /// announces each change (`connected` / `disconnected`).
    #[cfg(feature = "redis")]
    pub(crate) fn observe<T>(&self, store: &RedisStore, result: &Result<T, CacheError>) {
        match result {
            Ok(_) => {
                // A plain load first: the hot path only reads the flag.
                if !self.connected.load(Ordering::Relaxed)
                    && !self.connected.swap(true, Ordering::AcqRel)
                {
                    tracing::info!(
                        module = "cache",
                        address = store.address(),
                        "redis reachable again"
                    );
                    self.emit(
                        "engine.connected",
                        serde_json::json!({ "engine": "redis", "address": store.address(), "reason": "recovered" }),
                    );
                }
            }
            Err(error) if error.is_connection_error() => {
                if self.connected.swap(false, Ordering::AcqRel) {
                    tracing::warn!(module = "cache", address = store.address(), %error, "redis unreachable");
                    self.emit(
                        "engine.disconnected",
                        serde_json::json!({ "engine": "redis", "address": store.address(), "error": error.to_string() }),
                    );
                }
            }
            Err(_) => {}
        }
    }

    /// Marks a freshly opened connection (start-up or reload) as reachable and announces it.
    #[cfg(feature = "redis")]
    pub(crate) fn announce_connected(&self, store: &RedisStore, reason: &str) {
        self.connected.store(true, Ordering::Release);
        self.emit(
            "engine.connected",
            serde_json::json!({ "engine": "redis", "address": store.address(), "reason": reason }),
        );
    }

    /// Builds the engine `config`'s dynamic fields ask for, aside: nothing serves from it
    /// until [`PreparedEngine::commit`]; dropping it instead leaves the running engine as it
    /// was (a new Redis connection is closed, a rebuilt memory cache freed).
    ///
    /// A `max_items` rebuild copies the hottest entries into the new memory cache while
    /// holding the write gate alone, and keeps holding it until commit or abort, so no write
    /// can land in the old cache after its key was copied. Reads go on meanwhile; writes wait
    /// at most until the other modules of the reload have prepared.
    ///
    /// Static fields (`engine`, `redis.key_prefix`) are taken from the running engine, so a
    /// candidate applied under the `apply_dynamic` policy cannot change them before a restart.
    pub(crate) async fn prepare_engine(
        &self,
        config: &CacheConfig,
    ) -> Result<PreparedEngine, CacheError> {
        let current = self.engine.load_full();
        let next = |store: Store| Engine {
            store,
            default_ttl: config.default_ttl,
            latency_threshold: config.health.latency_threshold,
            health_timeout: config.health.timeout,
        };
        match &current.store {
            Store::Memory(memory) if memory.max_items() != config.max_items => {
                let exclusive = Arc::clone(&self.write_gate).write_owned().await;
                // Reloads are serialised, so the engine is still `current`; reading it again
                // under the gate keeps that true even for a direct caller.
                let running = self.engine.load_full();
                let Some(memory) = running.store.as_memory() else {
                    return Ok(PreparedEngine::same(next(running.store.clone())));
                };
                let (rebuilt, carried) = memory.rebuild(config.max_items).await;
                Ok(PreparedEngine {
                    engine: Arc::new(next(Store::Memory(rebuilt))),
                    exclusive: Some(exclusive),
                    applied: Applied {
                        rebuilt: Some(carried),
                        reconnected: false,
                    },
                })
            }
            #[cfg(feature = "redis")]
            Store::Redis(redis) if redis.differs_from(&config.redis) => {
                let connected =
                    RedisStore::connect(&config.redis, redis.key_prefix(), self.series.clone())
                        .await?;
                Ok(PreparedEngine {
                    engine: Arc::new(next(Store::Redis(connected))),
                    exclusive: None,
                    applied: Applied {
                        rebuilt: None,
                        reconnected: true,
                    },
                })
            }
            store => Ok(PreparedEngine::same(next(store.clone()))),
        }
    }

    /// Publishes a prepared engine: one swap, then the write gate opens again.
    pub(crate) fn commit_engine(&self, prepared: PreparedEngine) -> Applied {
        let PreparedEngine {
            engine,
            exclusive,
            applied,
        } = prepared;
        #[cfg(feature = "redis")]
        let reconnected = match (&engine.store, applied.reconnected) {
            (Store::Redis(redis), true) => Some(redis.clone()),
            _ => None,
        };
        self.engine.store(engine);
        self.generation.fetch_add(1, Ordering::AcqRel);
        drop(exclusive);
        #[cfg(feature = "redis")]
        if let Some(redis) = reconnected {
            self.announce_connected(&redis, "reload");
        }
        applied
    }

    /// The generation of the running engine: 1 at start, +1 per committed reload.
    pub fn engine_generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }
}

/// An engine built aside by a reload, not yet serving.
pub(crate) struct PreparedEngine {
    engine: Arc<Engine>,
    exclusive: Option<tokio::sync::OwnedRwLockWriteGuard<()>>,
    pub(crate) applied: Applied,
}

impl PreparedEngine {
    fn same(engine: Engine) -> Self {
        Self {
            engine: Arc::new(engine),
            exclusive: None,
            applied: Applied::default(),
        }
    }
}

#[async_trait::async_trait]
impl Cache for CacheService {
    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, CacheError> {
        let engine = self.engine.load_full();
        let value = match &engine.store {
            Store::Memory(memory) => memory.get(key).await,
            #[cfg(feature = "redis")]
            Store::Redis(redis) => {
                let result = redis.get(key).await;
                self.observe(redis, &result);
                result?
            }
        };
        self.count(value.is_some());
        Ok(value)
    }

    async fn set(&self, key: &str, value: &[u8], ttl: Option<Duration>) -> Result<(), CacheError> {
        let _shared = self.shared_gate().await;
        let engine = self.engine.load_full();
        let ttl = engine.ttl(ttl);
        match &engine.store {
            Store::Memory(memory) => {
                memory.set(key, value, ttl).await;
                Ok(())
            }
            #[cfg(feature = "redis")]
            Store::Redis(redis) => {
                let result = redis.set(key, value, ttl).await;
                self.observe(redis, &result);
                result
            }
        }
    }

    async fn delete(&self, key: &str) -> Result<bool, CacheError> {
        let _shared = self.shared_gate().await;
        let engine = self.engine.load_full();
        match &engine.store {
            Store::Memory(memory) => Ok(memory.delete(key).await),
            #[cfg(feature = "redis")]
            Store::Redis(redis) => {
                let result = redis.delete(key).await;
                self.observe(redis, &result);
                result
            }
        }
    }

    async fn get_many(&self, keys: &[&str]) -> Result<Vec<Option<Vec<u8>>>, CacheError> {
        let engine = self.engine.load_full();
        let values = match &engine.store {
            Store::Memory(memory) => {
                let mut values = Vec::with_capacity(keys.len());
                for key in keys {
                    values.push(memory.get(key).await);
                }
                values
            }
            #[cfg(feature = "redis")]
            Store::Redis(redis) => {
                let result = redis.get_many(keys).await;
                self.observe(redis, &result);
                result?
            }
        };
        let found = values.iter().filter(|v| v.is_some()).count() as u64;
        self.hits.fetch_add(found, Ordering::Relaxed);
        self.series.hits.increment(found);
        self.series.misses.increment(values.len() as u64 - found);
        self.misses
            .fetch_add(values.len() as u64 - found, Ordering::Relaxed);
        Ok(values)
    }

    async fn set_many(
        &self,
        entries: &[(&str, &[u8])],
        ttl: Option<Duration>,
    ) -> Result<(), CacheError> {
        let _shared = self.shared_gate().await;
        let engine = self.engine.load_full();
        let ttl = engine.ttl(ttl);
        match &engine.store {
            Store::Memory(memory) => {
                for (key, value) in entries {
                    memory.set(key, value, ttl).await;
                }
                Ok(())
            }
            #[cfg(feature = "redis")]
            Store::Redis(redis) => {
                let result = redis.set_many(entries, ttl).await;
                self.observe(redis, &result);
                result
            }
        }
    }

    async fn get_or_load(
        &self,
        key: &str,
        ttl: Option<Duration>,
        loader: Loader<'_>,
    ) -> Result<Vec<u8>, CacheError> {
        let engine = self.engine.load_full();
        let resolved = engine.ttl(ttl);
        let (value, loaded) = match &engine.store {
            // Not under the write gate: holding it across the caller's loader would make a
            // `max_items` rebuild, and every write queued behind it, wait for that loader.
            Store::Memory(memory) => {
                let (value, loaded) =
                    memory
                        .get_or_load(key, resolved, loader)
                        .await
                        .map_err(|error| CacheError::Load {
                            key: key.to_owned(),
                            message: error.to_string(),
                        })?;
                // A rebuild that committed while the loader ran left this value in the old
                // engine: store it in the one serving now.
                if loaded && !Arc::ptr_eq(&engine, &self.engine.load()) {
                    self.set(key, &value, ttl).await?;
                }
                (value, loaded)
            }
            #[cfg(feature = "redis")]
            Store::Redis(redis) => {
                let result = redis.get_or_load(key, resolved, loader).await;
                self.observe(redis, &result);
                result?
            }
        };
        self.count(!loaded);
        Ok(value)
    }

    async fn clear(&self) -> Result<(), CacheError> {
        let _shared = self.shared_gate().await;
        let engine = self.engine.load_full();
        match &engine.store {
            Store::Memory(memory) => {
                memory.clear().await;
                Ok(())
            }
            #[cfg(feature = "redis")]
            Store::Redis(redis) => {
                let result = redis.clear().await;
                self.observe(redis, &result);
                let removed = result?;
                tracing::debug!(module = "cache", removed, "cleared the redis namespace");
                Ok(())
            }
        }
    }
}

impl CacheService {
    /// The write gate's shared side on the memory engine; nothing on Redis, which never
    /// copies entries between engines.
    async fn shared_gate(&self) -> Option<tokio::sync::RwLockReadGuard<'_, ()>> {
        match self.kind {
            CacheEngine::Memory => Some(self.write_gate.read().await),
            _ => None,
        }
    }
}

/// The core key-value seam ([`modular_core::kv::KeyValue`]) on this cache: what the auth
/// module's sessions and throttling, and rate limits, use without depending on this crate.
///
/// Keys share the cache's namespace (the Redis `key_prefix`); a `ttl` of `None` never expires
/// (unlike [`Cache::set`], where `None` means `default_ttl`). On Redis an increment is
/// `INCRBY` with `PEXPIRE … NX` in one `MULTI`; in memory it is one atomic compute on the
/// entry. Entries written here count toward `max_items` and are evicted like any other.
#[async_trait::async_trait]
impl modular_core::kv::KeyValue for CacheService {
    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, KvError> {
        Cache::get(self, key).await.map_err(unavailable)
    }

    async fn set(&self, key: &str, value: &[u8], ttl: Option<Duration>) -> Result<(), KvError> {
        Cache::set(self, key, value, Some(ttl.unwrap_or(Duration::ZERO)))
            .await
            .map_err(unavailable)
    }

    async fn delete(&self, key: &str) -> Result<bool, KvError> {
        Cache::delete(self, key).await.map_err(unavailable)
    }

    async fn increment(&self, key: &str, by: i64, ttl: Option<Duration>) -> Result<i64, KvError> {
        let _shared = self.shared_gate().await;
        let engine = self.engine.load_full();
        match &engine.store {
            Store::Memory(memory) => memory.increment(key, by, ttl).await,
            #[cfg(feature = "redis")]
            Store::Redis(redis) => {
                let result = redis.increment(key, by, ttl).await;
                self.observe(redis, &result);
                result.map_err(|error| counter_error(key, error))
            }
        }
    }
}

use modular_core::kv::KvError;

fn unavailable(error: CacheError) -> KvError {
    KvError::Unavailable(Box::new(error))
}

/// Redis answers a non-integer or an overflow with an error reply; name them as the seam does.
#[cfg(feature = "redis")]
fn counter_error(key: &str, error: CacheError) -> KvError {
    let text = error.to_string();
    if text.contains("not an integer") {
        KvError::NotAnInteger {
            key: key.to_owned(),
        }
    } else if text.contains("overflow") {
        KvError::Overflow {
            key: key.to_owned(),
        }
    } else {
        unavailable(error)
    }
}
