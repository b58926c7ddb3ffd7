//! [`CacheConfig`]: the `cache` section, which fields reload at runtime and why the others do not.

use std::path::PathBuf;
use std::time::Duration;

use modular_core::{DynamicConfig, FieldError, Secret};
use serde::{Deserialize, Serialize};

/// The `cache` configuration section.
///
/// | field | dynamic | why |
/// |---|---|---|
/// | `engine` | no | the stored data, the service's backend and its health component all change with it: restart |
/// | `default_ttl` | yes | read at each write, so entries written after a reload get the new expiry |
/// | `max_items` | yes (memory engine) | the memory cache is rebuilt aside and the hottest entries carried over; on the Redis engine a change is refused (the server's `maxmemory` bounds it) |
/// | `redis.url` | yes | a new connection is opened, checked with `PING`, then swapped in |
/// | `redis.tls.ca_file` | yes | read again and a new connection opened with it, like a `redis.url` change |
/// | `redis.key_prefix` | no | entries under the old prefix would become unreachable, and `clear` could no longer remove them |
/// | `redis.connect_timeout`, `redis.command_timeout` | yes | a new connection with the new timeouts is swapped in; the connect timeout also bounds each automatic reconnect after an outage |
/// | `health.latency_threshold` | yes | read at each health check |
/// | `health.timeout`, `health.optional` | yes | the health registration's options are replaced at commit |
///
/// ```yaml
/// cache:
///   engine: redis            # memory (default) | redis
///   default_ttl: 5m          # 0s: entries never expire unless a write says so
///   max_items: 10000         # memory engine only
///   redis:
///     url: rediss://:password@redis.internal:6380   # rediss:// is TLS
///     key_prefix: "myapp:cache:"
///     connect_timeout: 2s
///     command_timeout: 500ms
///     tls:
///       ca_file: /etc/myapp/redis-ca.pem   # a private CA; unset: the system's roots
///   health:
///     latency_threshold: 50ms
///     timeout: 150ms
///     optional: false
/// ```
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, DynamicConfig)]
#[serde(deny_unknown_fields, default)]
#[config(validate = "Self::validate_config")]
pub struct CacheConfig {
    /// Which engine stores the entries. Static.
    pub engine: CacheEngine,
    /// The expiry of entries written without an explicit TTL; `0s` means they never expire.
    #[config(dynamic)]
    #[serde(with = "humantime_serde")]
    pub default_ttl: Duration,
    /// The most entries the memory engine holds; beyond it, TinyLFU picks what to evict.
    #[config(dynamic)]
    pub max_items: u64,
    /// The Redis engine.
    #[config(nested)]
    pub redis: RedisConfig,
    /// Health-check thresholds.
    #[config(nested)]
    pub health: CacheHealthConfig,
}

/// The storage engine.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum CacheEngine {
    /// In-process, bounded by `max_items`, TinyLFU eviction (moka).
    #[default]
    Memory,
    /// A Redis server, keys under `redis.key_prefix` (feature `redis`).
    Redis,
}

impl CacheEngine {
    /// `memory` or `redis`: also the health component's name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Memory => "memory",
            Self::Redis => "redis",
        }
    }
}

impl std::fmt::Display for CacheEngine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// `cache.redis`: where the Redis engine connects and how long it waits.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, DynamicConfig)]
#[serde(deny_unknown_fields, default)]
pub struct RedisConfig {
    /// `redis://[user:password@]host:port[/db]`, `rediss://…` for TLS, or `unix:///path`; may
    /// hold a password, so it is a secret.
    #[config(dynamic)]
    pub url: Secret<String>,
    /// Every key is stored as `<key_prefix><key>`; `clear` removes only keys under it. Static.
    pub key_prefix: String,
    /// The longest a connection (and its first `PING`) may take.
    #[config(dynamic)]
    #[serde(with = "humantime_serde")]
    pub connect_timeout: Duration,
    /// The longest one command may take, waiting for a reconnect included.
    #[config(dynamic)]
    #[serde(with = "humantime_serde")]
    pub command_timeout: Duration,
    /// TLS settings of a `rediss://` URL.
    #[config(nested)]
    pub tls: RedisTlsConfig,
}

/// `cache.redis.tls`: how a `rediss://` connection verifies the server.
///
/// The server certificate is always verified, against `ca_file` when set, else against the
/// system's root certificates; it must name the URL's host (a DNS name or an IP address in
/// its subject alternative names).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, DynamicConfig)]
#[serde(deny_unknown_fields, default)]
pub struct RedisTlsConfig {
    /// A PEM file with the CA certificate(s) that sign the server's certificate (a private
    /// CA); they replace the system roots. Read when a connection is opened (start-up and each
    /// reload that reconnects), so a file replaced in place is picked up by the next reconnect
    /// a reload asks for, not by the automatic reconnects after an outage.
    #[config(dynamic)]
    pub ca_file: Option<PathBuf>,
}

/// `cache.health`: how the health check judges the backend.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, DynamicConfig)]
#[serde(deny_unknown_fields, default)]
pub struct CacheHealthConfig {
    /// A Redis `PING` slower than this reports `degraded`.
    #[config(dynamic)]
    #[serde(with = "humantime_serde")]
    pub latency_threshold: Duration,
    /// The `PING` deadline; past it the check reports `unhealthy`.
    #[config(dynamic)]
    #[serde(with = "humantime_serde")]
    pub timeout: Duration,
    /// Whether a failing cache leaves readiness alone.
    #[config(dynamic)]
    pub optional: bool,
}

/// The default Redis key prefix.
pub const DEFAULT_KEY_PREFIX: &str = "modular:cache:";

impl Default for CacheConfig {
    fn default() -> Self {
        Self {
            engine: CacheEngine::Memory,
            default_ttl: Duration::from_secs(300),
            max_items: 10_000,
            redis: RedisConfig::default(),
            health: CacheHealthConfig::default(),
        }
    }
}

impl Default for RedisConfig {
    fn default() -> Self {
        Self {
            url: Secret::new("redis://127.0.0.1:6379".to_owned()),
            key_prefix: DEFAULT_KEY_PREFIX.to_owned(),
            connect_timeout: Duration::from_secs(2),
            command_timeout: Duration::from_millis(500),
            tls: RedisTlsConfig::default(),
        }
    }
}

impl Default for CacheHealthConfig {
    fn default() -> Self {
        Self {
            latency_threshold: Duration::from_millis(50),
            timeout: Duration::from_millis(150),
            optional: false,
        }
    }
}

impl CacheConfig {
    /// Every problem a value has that its type cannot express, with its path in the section.
    pub fn validate_config(&self) -> Result<(), Vec<FieldError>> {
        let mut errors = Vec::new();
        if self.max_items == 0 {
            errors.push(FieldError::new("max_items", "must be > 0, got 0"));
        }
        for (path, value) in [
            ("redis.connect_timeout", self.redis.connect_timeout),
            ("redis.command_timeout", self.redis.command_timeout),
            ("health.timeout", self.health.timeout),
            ("health.latency_threshold", self.health.latency_threshold),
        ] {
            if value.is_zero() {
                errors.push(FieldError::new(path, "must be > 0s, got 0s"));
            }
        }
        if self.redis.key_prefix.is_empty() {
            // An empty prefix would make `clear` remove every key of the database.
            errors.push(FieldError::new(
                "redis.key_prefix",
                "must not be empty: it scopes `clear` to this cache's keys",
            ));
        }
        if self.engine == CacheEngine::Redis
            && let Err(message) = check_redis_url(self.redis.url.expose())
        {
            errors.push(FieldError::new("redis.url", message));
        }
        if self.engine == CacheEngine::Redis
            && let Some(path) = &self.redis.tls.ca_file
        {
            if path.as_os_str().is_empty() {
                errors.push(FieldError::new(
                    "redis.tls.ca_file",
                    "must not be empty: leave it unset to use the system's root certificates",
                ));
            } else if !is_tls_url(self.redis.url.expose()) {
                errors.push(FieldError::new(
                    "redis.tls.ca_file",
                    "is only used by a rediss:// url, and redis.url is not one",
                ));
            }
        }
        FieldError::collect(errors)
    }
}

/// Whether `url` asks for TLS (`rediss://`).
pub(crate) fn is_tls_url(url: &str) -> bool {
    url.trim_start()
        .get(..9)
        .is_some_and(|scheme| scheme.eq_ignore_ascii_case("rediss://"))
}

/// Why `url` cannot be used; the message never repeats the URL, which may hold a password.
#[cfg(feature = "redis")]
fn check_redis_url(url: &str) -> Result<(), String> {
    use redis::IntoConnectionInfo as _;
    if url.trim().is_empty() {
        return Err("must not be empty".to_owned());
    }
    if redis::parse_redis_url(url).is_none() {
        return Err(
            "is not a valid redis url (expected redis://[user:password@]host[:port][/db], rediss:// or unix://)"
                .to_owned(),
        );
    }
    match url.into_connection_info() {
        Ok(_) => Ok(()),
        Err(error) => Err(format!(
            "is not a usable redis url: {}",
            url_error_description(&error)
        )),
    }
}

/// The redis crate's URL errors are fixed descriptions ("Missing hostname - InvalidClientConfig")
/// that never quote the URL; this keeps the description, lowercase, without the kind suffix.
#[cfg(feature = "redis")]
pub(crate) fn url_error_description(error: &redis::RedisError) -> String {
    let text = error.to_string();
    text.split(" - ").next().unwrap_or_default().to_lowercase()
}

#[cfg(not(feature = "redis"))]
fn check_redis_url(_url: &str) -> Result<(), String> {
    Err(
        "engine `redis` needs the `redis` feature of modular-cache, which this build lacks"
            .to_owned(),
    )
}
