//! The cache module of modular: an in-process cache ([moka], TinyLFU eviction) or a Redis
//! cache, behind one [`Cache`] service that reloads without a restart and reports its health.
//!
//! # A guided tour
//!
//! Add [`CacheModule`] to an application; other modules find the cache in the service
//! registry as `Arc<dyn Cache>` (or as the concrete [`CacheService`]), and [`CacheExt`] adds
//! typed JSON helpers to it. [`Cache::get_or_load`] fills a miss from a loader with stampede
//! protection (concurrent misses of a key load once, on both engines), and the cache also
//! implements core's key-value seam (`Arc<dyn modular_core::kv::KeyValue>`: atomic
//! increments with fixed windows, entries without a default TTL) for sessions and rate limits:
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use std::sync::Arc;
//! use std::time::Duration;
//!
//! use modular_cache::{Cache, CacheExt as _, CacheModule};
//! use modular_core::Application;
//!
//! let mut app = Application::builder()
//!     .config_defaults(serde_json::json!({ "cache": { "max_items": 1000, "default_ttl": "1m" } }))
//!     .env_prefix(None)
//!     .module(CacheModule::new())
//!     .handle_signals(false)
//!     .build()
//!     .await?;
//! app.start().await?;
//!
//! let cache: Arc<dyn Cache> = app.services().require::<dyn Cache>()?;
//! cache.set("greeting", b"hello", None).await?; // expires after default_ttl
//! cache.set_json("user:1", &serde_json::json!({ "name": "ada" }), Some(Duration::from_secs(5))).await?;
//! assert_eq!(cache.get("greeting").await?.as_deref(), Some(&b"hello"[..]));
//! let user: Option<serde_json::Value> = cache.get_json("user:1").await?;
//! assert_eq!(user.unwrap()["name"], "ada");
//!
//! app.stop().await?;
//! # Ok(()) }
//! ```
//!
//! # Configuration
//!
//! The `cache` section ([`CacheConfig`]):
//!
//! ```yaml
//! cache:
//!   engine: redis              # memory (default) | redis; static
//!   default_ttl: 5m            # dynamic; 0s = never expire
//!   max_items: 10000           # dynamic; memory engine bound
//!   redis:
//!     url: redis://127.0.0.1:6379   # dynamic; a secret (may hold a password); rediss:// is TLS
//!     key_prefix: "myapp:cache:"    # static; every key lives under it
//!     connect_timeout: 2s           # dynamic
//!     command_timeout: 500ms        # dynamic
//!     tls:
//!       ca_file: /etc/myapp/redis-ca.pem  # dynamic; a private CA for rediss:// (unset: system roots)
//!   health:
//!     latency_threshold: 50ms  # dynamic
//!     timeout: 150ms           # static
//!     optional: false          # static
//! ```
//!
//! Rejected at load and at reload, with the key path: `max_items: 0`, an unknown `engine`, a
//! malformed `redis.url` (when `engine` is `redis`), an empty `redis.key_prefix` (it scopes
//! `clear`), a `redis.tls.ca_file` without a `rediss://` URL, zero timeouts, and unknown keys.
//!
//! # TLS (`rediss://`)
//!
//! A `rediss://` URL connects over TLS (rustls on aws-lc-rs, the workspace's one crypto
//! provider, installed by the first TLS connection if the application has not). The server's
//! certificate is always verified and must name the URL's host; `redis.tls.ca_file` (PEM, one
//! or more certificates) replaces the system roots for a private CA. A refused handshake fails
//! start-up or the reload with the reason and the address, never the URL or its password:
//! `cannot connect to redis at 10.0.0.5:6380 within 2s: … invalid peer certificate: UnknownIssuer`.
//! Every first connection (start-up, a reconnecting reload) is tried once directly before the
//! auto-reconnecting connection manager takes over, so such a reason is reported rather than
//! hidden behind retries and a timeout.
//!
//! # Dynamic fields
//!
//! Every reload builds the next engine aside and swaps it in (an `ArcSwap`); operations
//! already running finish on the engine they started with, and a failure leaves the running
//! engine untouched.
//!
//! - `default_ttl`: applies to entries written after the reload; existing entries keep the
//!   expiry they were written with.
//! - `max_items` (memory): a new moka cache with the new bound is built and the hottest live
//!   entries, up to the new bound, are copied over with their remaining TTL. moka keeps its
//!   TinyLFU frequency sketch private, so "hottest" is approximated by the number of reads each
//!   entry served since it was last written. Writers wait while the copy runs (readers do not),
//!   so no write is lost or left stale.
//! - `redis.url`, `redis.tls.ca_file`, `redis.connect_timeout`, `redis.command_timeout`: a
//!   new `ConnectionManager` is opened and checked with `PING` within the (new)
//!   `connect_timeout`, then swapped in; when that fails the reload fails and the old
//!   connection keeps serving. The new engine is
//!   prepared aside and swapped in only when every module of the reload has prepared; an aborted
//!   reload drops it (emitting `com.modular.cache.reload.aborted`).
//! - `health.latency_threshold`: read by the next check.
//! - `health.timeout`, `health.optional`: the next check's `PING` deadline, and the health
//!   registration's timeout and optionality, replaced at commit
//!   (`HealthAggregator::set_provider_options`).
//!
//! `engine` and `redis.key_prefix` are static: changing them needs a restart (see
//! [`CacheConfig`] for why).
//!
//! # Health
//!
//! One report, module `cache`, component `memory` or `redis`:
//!
//! - memory: `healthy`, with `entries` against `max_items`, `hits`, `misses` and `hit_ratio`.
//! - redis: a `PING` under its own deadline `health.timeout` (150 ms): `healthy` within
//!   `health.latency_threshold` (50 ms), `degraded` above it, `unhealthy` when it fails or times
//!   out; details carry `latency_ms`, `hits`, `misses`, `hit_ratio`. The redis crate's
//!   `ConnectionManager` reconnects by itself (back-off 100 ms doubling to 1 s), so a Redis
//!   that comes back turns the check healthy again without a restart.
//!
//! # Events
//!
//! From `/modular/modules/cache`:
//!
//! | type | when | data |
//! |---|---|---|
//! | `com.modular.cache.engine.connected` | a Redis connection opened at start-up or by a reload, or the server is reachable again after a failure | `engine`, `address`, `reason` (`start`, `reload`, `recovered`) |
//! | `com.modular.cache.engine.disconnected` | an operation or health check could not reach Redis after the last one could | `engine`, `address`, `error` |
//! | `com.modular.cache.engine.reloaded` | a reload was committed | `engine`, `fields`, `version`, `rebuilt`, `carried_over`, `dropped`, `reconnected` |
//! | `com.modular.cache.reload.aborted` | a prepared engine was dropped (another module failed) | `version` |
//!
//! Reachability is observed by operations and health checks, not by a background poller: with
//! the health aggregator refreshing in the background, that is at least once per refresh.
//!
//! # Metrics
//!
//! Recorded through the `metrics` facade when the application has metrics on
//! (`metrics.enabled`); series handles are registered once, so a hit costs one atomic add:
//!
//! | series | type | labels |
//! |---|---|---|
//! | `modular_cache_hits_total`, `modular_cache_misses_total` | counter | `engine` |
//! | `modular_cache_evictions_total` | counter | `engine` (memory: entries evicted for size) |
//! | `modular_cache_redis_command_duration_seconds` | histogram | `operation` (`get`, `set`, `delete`, `get_many`, `set_many`, `clear`, `ping`, `increment`, `get_or_load`) |
//!
//! # Feature flags
//!
//! - `redis` (off by default): the `redis` engine, through the redis crate's
//!   `ConnectionManager`, `rediss://` included. Without it, `engine: redis` is rejected at load
//!   with the reason.
//!
//! [moka]: https://docs.rs/moka

mod config;
mod error;
mod health;
mod memory;
mod metrics;
mod module;
#[cfg(feature = "redis")]
mod redis;
mod reload;
mod service;

pub use crate::config::{
    CacheConfig, CacheEngine, CacheHealthConfig, DEFAULT_KEY_PREFIX, RedisConfig, RedisTlsConfig,
};
pub use crate::error::CacheError;
pub use crate::module::CacheModule;
pub use crate::service::{Cache, CacheExt, CacheService, CacheStats, Loader};
