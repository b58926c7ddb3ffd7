//! The `redis` engine: an auto-reconnecting `ConnectionManager`, every key under a prefix, every
//! command under a deadline.

use std::future::Future;
use std::path::{Path, PathBuf};
use std::time::Duration;

use modular_core::Secret;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{IntoConnectionInfo as _, RedisResult};

use crate::config::RedisConfig;
use crate::error::CacheError;

/// Reconnect back-off of the `ConnectionManager`: attempts start 100 ms apart and double up to
/// 1 s, so a Redis that comes back is used again within about a second.
const RECONNECT_MIN_DELAY: Duration = Duration::from_millis(100);
const RECONNECT_MAX_DELAY: Duration = Duration::from_secs(1);
/// Attempts per reconnect round; a failed round is followed by a new one on the next command.
const RECONNECT_RETRIES: usize = 6;
/// Keys asked for per `SCAN` step of `clear`.
const SCAN_COUNT: usize = 1000;

/// One Redis connection with its namespace and deadlines. Cheap to clone: clones share the
/// connection.
#[derive(Clone)]
pub(crate) struct RedisStore {
    conn: ConnectionManager,
    url: Secret<String>,
    ca_file: Option<PathBuf>,
    address: String,
    key_prefix: String,
    connect_timeout: Duration,
    command_timeout: Duration,
    series: crate::metrics::CacheSeries,
}

/// How long a `get_or_load` lock holder may take before the waiters load themselves.
const LOAD_LOCK_TTL: Duration = Duration::from_secs(10);

impl RedisStore {
    /// Opens a connection for `config` with keys under `key_prefix`, and checks it with `PING`,
    /// all within `config.connect_timeout`.
    ///
    /// A `rediss://` URL connects over TLS, verifying the server against
    /// `config.tls.ca_file` when set (else the system's roots).
    pub(crate) async fn connect(
        config: &RedisConfig,
        key_prefix: &str,
        series: crate::metrics::CacheSeries,
    ) -> Result<Self, CacheError> {
        let connect_timeout = config.connect_timeout;
        let deadline = tokio::time::Instant::now() + connect_timeout;
        let info = config
            .url
            .expose()
            .as_str()
            .into_connection_info()
            .map_err(|error| CacheError::Connect {
                address: "(unparsable url)".to_owned(),
                timeout: connect_timeout,
                reason: crate::config::url_error_description(&error),
            })?;
        let address = info.addr().to_string();
        let connect_error = |reason: String| CacheError::Connect {
            address: address.clone(),
            timeout: connect_timeout,
            reason,
        };
        let client = match (
            &config.tls.ca_file,
            crate::config::is_tls_url(config.url.expose()),
        ) {
            (Some(ca_file), true) => {
                let root_cert = read_ca_file(ca_file).await.map_err(&connect_error)?;
                modular_core::install_default_crypto_provider();
                redis::Client::build_with_tls(
                    info,
                    redis::TlsCertificates {
                        client_tls: None,
                        root_cert: Some(root_cert),
                    },
                )
            }
            (_, tls) => {
                if tls {
                    modular_core::install_default_crypto_provider();
                }
                redis::Client::open(info)
            }
        }
        .map_err(|e| connect_error(e.to_string()))?;

        // One direct attempt first: the manager retries every failure with back-off, which
        // would hide why the connection fails (refused, an untrusted certificate, a wrong
        // password) behind "no answer in time". It is dropped once it has answered.
        let probe_config = redis::AsyncConnectionConfig::new()
            .set_connection_timeout(Some(connect_timeout))
            .set_response_timeout(Some(connect_timeout));
        let probe = tokio::time::timeout_at(deadline, async {
            let mut probe = client
                .get_multiplexed_async_connection_with_config(&probe_config)
                .await?;
            redis::cmd("PING").query_async::<String>(&mut probe).await
        })
        .await;
        match probe {
            Ok(Ok(_)) => {}
            Ok(Err(error)) => return Err(connect_error(describe_connect_error(&error))),
            Err(_) => return Err(connect_error("no answer in time".to_owned())),
        }

        let manager_config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(connect_timeout))
            .set_response_timeout(Some(config.command_timeout))
            .set_number_of_retries(RECONNECT_RETRIES)
            .set_min_delay(RECONNECT_MIN_DELAY)
            .set_max_delay(RECONNECT_MAX_DELAY);
        let conn = ConnectionManager::new_lazy_with_config(client, manager_config)
            .map_err(|e| connect_error(e.to_string()))?;
        let store = Self {
            conn,
            url: config.url.clone(),
            ca_file: config.tls.ca_file.clone(),
            address: address.clone(),
            key_prefix: key_prefix.to_owned(),
            connect_timeout,
            command_timeout: config.command_timeout,
            series,
        };
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        match store.ping(left.max(Duration::from_millis(1))).await {
            Ok(_) => Ok(store),
            Err(CacheError::Timeout { .. }) => {
                Err(connect_error("no answer to PING in time".to_owned()))
            }
            Err(error) => Err(connect_error(error.to_string())),
        }
    }

    /// `host:port` or the socket path.
    pub(crate) fn address(&self) -> &str {
        &self.address
    }

    pub(crate) fn key_prefix(&self) -> &str {
        &self.key_prefix
    }

    pub(crate) fn connect_timeout(&self) -> Duration {
        self.connect_timeout
    }

    /// Whether `config` needs another connection than this one (URL or timeouts changed).
    pub(crate) fn differs_from(&self, config: &RedisConfig) -> bool {
        self.url != config.url
            || self.ca_file != config.tls.ca_file
            || self.connect_timeout != config.connect_timeout
            || self.command_timeout != config.command_timeout
    }

    fn key(&self, key: &str) -> String {
        let mut full = String::with_capacity(self.key_prefix.len() + key.len());
        full.push_str(&self.key_prefix);
        full.push_str(key);
        full
    }

    /// Runs one command future under `timeout`.
    async fn run<T>(
        &self,
        operation: &'static str,
        timeout: Duration,
        command: impl Future<Output = RedisResult<T>>,
    ) -> Result<T, CacheError> {
        let started = tokio::time::Instant::now();
        let result = tokio::time::timeout(timeout, command).await;
        self.series.redis_command(operation, started.elapsed());
        match result {
            Ok(Ok(value)) => Ok(value),
            // The connection's own response timeout (the command timeout) reads the same.
            Ok(Err(source)) if source.is_timeout() => Err(CacheError::Timeout {
                operation,
                timeout: timeout.min(self.command_timeout),
            }),
            Ok(Err(source)) => Err(CacheError::Redis { operation, source }),
            Err(_) => Err(CacheError::Timeout { operation, timeout }),
        }
    }

    /// Sends `PING`; `Ok` carries nothing but proves a round trip.
    pub(crate) async fn ping(&self, timeout: Duration) -> Result<(), CacheError> {
        let mut conn = self.conn.clone();
        let _: String = self
            .run("ping", timeout, async move {
                redis::cmd("PING").query_async(&mut conn).await
            })
            .await?;
        Ok(())
    }

    pub(crate) async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, CacheError> {
        let mut conn = self.conn.clone();
        let mut cmd = redis::cmd("GET");
        cmd.arg(self.key(key));
        self.run("get", self.command_timeout, async move {
            cmd.query_async(&mut conn).await
        })
        .await
    }

    /// Stores `value`; `ttl` `None` never expires.
    pub(crate) async fn set(
        &self,
        key: &str,
        value: &[u8],
        ttl: Option<Duration>,
    ) -> Result<(), CacheError> {
        let mut conn = self.conn.clone();
        let cmd = set_command(self.key(key), value, ttl);
        self.run("set", self.command_timeout, async move {
            cmd.query_async(&mut conn).await
        })
        .await
    }

    /// `INCRBY`, with `PEXPIRE … NX` in the same `MULTI` when `ttl` is set, so a key the
    /// increment creates gets its window and a live one keeps its own (Redis 7).
    pub(crate) async fn increment(
        &self,
        key: &str,
        by: i64,
        ttl: Option<Duration>,
    ) -> Result<i64, CacheError> {
        let mut conn = self.conn.clone();
        let full = self.key(key);
        let mut pipe = redis::pipe();
        pipe.atomic().cmd("INCRBY").arg(&full).arg(by);
        if let Some(ttl) = ttl.filter(|t| !t.is_zero()) {
            let millis = u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX).max(1);
            pipe.cmd("PEXPIRE")
                .arg(&full)
                .arg(millis)
                .arg("NX")
                .ignore();
        }
        let (value,): (i64,) = self
            .run("increment", self.command_timeout, async move {
                pipe.query_async(&mut conn).await
            })
            .await?;
        Ok(value)
    }

    /// See [`crate::Cache::get_or_load`]: a lock key makes concurrent misses (in any process)
    /// load once. `true` when this call's loader ran.
    pub(crate) async fn get_or_load(
        &self,
        key: &str,
        ttl: Option<Duration>,
        loader: crate::service::Loader<'_>,
    ) -> Result<(Vec<u8>, bool), CacheError> {
        if let Some(value) = self.get(key).await? {
            return Ok((value, false));
        }
        let load_error = |error: modular_core::BoxError| CacheError::Load {
            key: key.to_owned(),
            message: error.to_string(),
        };
        let lock = self.key(&format!("{key}:__lock"));
        // The holder's own token: a release deletes the lock only while it still holds this
        // value, never a lock another caller took after this one's expired.
        let token = lock_token();
        let lock_ttl = LOAD_LOCK_TTL.as_millis() as u64;
        let deadline = tokio::time::Instant::now() + LOAD_LOCK_TTL;
        let mut delay = Duration::from_millis(5);
        loop {
            let mut conn = self.conn.clone();
            let mut cmd = redis::cmd("SET");
            cmd.arg(&lock).arg(&token).arg("NX").arg("PX").arg(lock_ttl);
            let acquired: Option<String> = self
                .run("get_or_load", self.command_timeout, async move {
                    cmd.query_async(&mut conn).await
                })
                .await?;
            if acquired.is_some() {
                let result = async {
                    // Another caller may have stored it between our miss and the lock.
                    if let Some(value) = self.get(key).await? {
                        return Ok((value, false));
                    }
                    let value = loader.await.map_err(load_error)?;
                    self.set(key, &value, ttl).await?;
                    Ok((value, true))
                }
                .await;
                let mut conn = self.conn.clone();
                let mut release = redis::cmd("EVAL");
                release.arg(RELEASE_LOCK).arg(1).arg(&lock).arg(&token);
                let _: Result<u64, CacheError> = self
                    .run("get_or_load", self.command_timeout, async move {
                        release.query_async(&mut conn).await
                    })
                    .await;
                return result;
            }
            tokio::time::sleep(delay).await;
            delay = (delay * 2).min(Duration::from_millis(100));
            if let Some(value) = self.get(key).await? {
                return Ok((value, false));
            }
            if tokio::time::Instant::now() >= deadline {
                break;
            }
        }
        // The holder neither stored a value nor released the lock in time: load here.
        let value = loader.await.map_err(load_error)?;
        self.set(key, &value, ttl).await?;
        Ok((value, true))
    }

    pub(crate) async fn delete(&self, key: &str) -> Result<bool, CacheError> {
        let mut conn = self.conn.clone();
        let mut cmd = redis::cmd("UNLINK");
        cmd.arg(self.key(key));
        let removed: u64 = self
            .run("delete", self.command_timeout, async move {
                cmd.query_async(&mut conn).await
            })
            .await?;
        Ok(removed > 0)
    }

    pub(crate) async fn get_many(&self, keys: &[&str]) -> Result<Vec<Option<Vec<u8>>>, CacheError> {
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        let mut conn = self.conn.clone();
        let mut cmd = redis::cmd("MGET");
        for key in keys {
            cmd.arg(self.key(key));
        }
        self.run("get_many", self.command_timeout, async move {
            cmd.query_async(&mut conn).await
        })
        .await
    }

    /// Stores every entry in one pipelined round trip.
    pub(crate) async fn set_many(
        &self,
        entries: &[(&str, &[u8])],
        ttl: Option<Duration>,
    ) -> Result<(), CacheError> {
        if entries.is_empty() {
            return Ok(());
        }
        let mut conn = self.conn.clone();
        let mut pipe = redis::pipe();
        for (key, value) in entries {
            pipe.add_command(set_command(self.key(key), value, ttl))
                .ignore();
        }
        self.run("set_many", self.command_timeout, async move {
            pipe.query_async(&mut conn).await
        })
        .await
    }

    /// Removes every key under the prefix with `SCAN` + `UNLINK` (never `FLUSHDB`), returning
    /// how many were removed. Each step has its own deadline.
    pub(crate) async fn clear(&self) -> Result<u64, CacheError> {
        let pattern = format!("{}*", escape_glob(&self.key_prefix));
        let mut cursor: u64 = 0;
        let mut removed: u64 = 0;
        loop {
            let mut conn = self.conn.clone();
            let mut scan = redis::cmd("SCAN");
            scan.arg(cursor)
                .arg("MATCH")
                .arg(&pattern)
                .arg("COUNT")
                .arg(SCAN_COUNT);
            let (next, keys): (u64, Vec<Vec<u8>>) = self
                .run("clear", self.command_timeout, async move {
                    scan.query_async(&mut conn).await
                })
                .await?;
            if !keys.is_empty() {
                let mut conn = self.conn.clone();
                let mut unlink = redis::cmd("UNLINK");
                unlink.arg(keys);
                let count: u64 = self
                    .run("clear", self.command_timeout, async move {
                        unlink.query_async(&mut conn).await
                    })
                    .await?;
                removed += count;
            }
            if next == 0 {
                return Ok(removed);
            }
            cursor = next;
        }
    }
}

/// The PEM bytes of `redis.tls.ca_file`, checked to hold at least one certificate (the redis
/// crate would otherwise trust nothing and fail every handshake with a vaguer error).
async fn read_ca_file(path: &Path) -> Result<Vec<u8>, String> {
    use rustls_pki_types::CertificateDer;
    use rustls_pki_types::pem::PemObject as _;
    let shown = path.display();
    let pem = tokio::fs::read(path)
        .await
        .map_err(|error| format!("cannot read redis.tls.ca_file `{shown}`: {error}"))?;
    let mut certificates = 0;
    for certificate in CertificateDer::pem_slice_iter(&pem) {
        certificate.map_err(|error| {
            format!("redis.tls.ca_file `{shown}` is not a valid PEM file: {error}")
        })?;
        certificates += 1;
    }
    if certificates == 0 {
        return Err(format!(
            "redis.tls.ca_file `{shown}` holds no PEM certificate"
        ));
    }
    Ok(pem)
}

/// The redis crate's error for a failed first connection, as one line. Its texts name the
/// failure (refused, `invalid peer certificate: UnknownIssuer`, `Password authentication failed`), never the URL.
fn describe_connect_error(error: &redis::RedisError) -> String {
    error.to_string()
}

fn set_command(key: String, value: &[u8], ttl: Option<Duration>) -> redis::Cmd {
    let mut cmd = redis::cmd("SET");
    cmd.arg(key).arg(value);
    if let Some(ttl) = ttl {
        // Redis rejects `PX 0`; anything below a millisecond rounds up to one.
        let millis = u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX).max(1);
        cmd.arg("PX").arg(millis);
    }
    cmd
}

/// Escapes the glob characters of `SCAN MATCH`, so a prefix such as `app[1]:` matches itself.
fn escape_glob(prefix: &str) -> String {
    let mut escaped = String::with_capacity(prefix.len() + 4);
    for c in prefix.chars() {
        if matches!(c, '*' | '?' | '[' | ']' | '\\') {
            escaped.push('\\');
        }
        escaped.push(c);
    }
    escaped
}

/// Deletes the lock key only while it holds this caller's token (compare and delete, atomic
/// on the server).
const RELEASE_LOCK: &str = "if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) else return 0 end";

/// A value no other `get_or_load` call (in this process or another) holds at the same time:
/// the process id, a per-process counter and the time.
fn lock_token() -> String {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    format!(
        "{}-{}-{nanos}",
        std::process::id(),
        NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn glob_characters_in_the_prefix_are_escaped() {
        assert_eq!(escape_glob("app:cache:"), "app:cache:");
        assert_eq!(escape_glob("a*b?[c]\\"), "a\\*b\\?\\[c\\]\\\\");
    }

    #[test]
    fn a_sub_millisecond_ttl_rounds_up_to_one_millisecond() {
        let cmd = set_command("k".to_owned(), b"v", Some(Duration::from_micros(10)));
        let args: Vec<Vec<u8>> = cmd
            .args_iter()
            .filter_map(|a| match a {
                redis::Arg::Simple(bytes) => Some(bytes.to_vec()),
                _ => None,
            })
            .collect();
        assert_eq!(
            args,
            [
                b"SET".to_vec(),
                b"k".to_vec(),
                b"v".to_vec(),
                b"PX".to_vec(),
                b"1".to_vec()
            ]
        );
    }
}
