//! [`NatsKv`]: a NATS JetStream key-value bucket as a [`RemoteSource`] layer, with a local
//! cache of the last revision read.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use async_nats::jetstream::kv;
use futures::StreamExt;
use modular_core::FieldError;
use modular_core::config::{RemoteSnapshot, RemoteSource, parse_yaml};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use tokio::sync::watch;

use crate::error::FleetError;

/// The key prefix of the instances' status entries: `_fleet.<service>.<instance>`.
pub(crate) const STATUS_PREFIX: &str = "_fleet";

/// Where the bucket is and which part of it is this service's.
#[derive(Clone)]
pub struct NatsKvOptions {
    /// `nats://host:port`, optionally with `user:password@` (never shown).
    pub url: String,
    /// The bucket (created with `history` when missing).
    pub bucket: String,
    /// The service's key prefix: key `<service>` holds a whole YAML document and keys
    /// `<service>.<dotted.path>` a YAML value at that config path, layered over the document.
    pub service: String,
    /// Where the last revision read is cached (`None`: no cache, so start-up needs the KV).
    pub cache_path: Option<PathBuf>,
    /// How long start-up waits for the server before it falls back to the cache.
    pub connect_timeout: Duration,
    /// Values kept per key when the bucket is created.
    pub history: i64,
}

impl NatsKvOptions {
    /// The options for `service` in `bucket` at `url`, cached at no path, 5 s to connect.
    pub fn new(
        url: impl Into<String>,
        bucket: impl Into<String>,
        service: impl Into<String>,
    ) -> Self {
        Self {
            url: url.into(),
            bucket: bucket.into(),
            service: service.into(),
            cache_path: None,
            connect_timeout: Duration::from_secs(5),
            history: 5,
        }
    }

    /// Caches the last revision read at `path` (written 0600, atomically).
    pub fn cache_path(mut self, path: impl Into<PathBuf>) -> Self {
        self.cache_path = Some(path.into());
        self
    }

    /// How long start-up waits for the server.
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// The URL without credentials, for names, errors and logs.
    pub fn redacted_url(&self) -> String {
        redact_url(&self.url)
    }
}

impl std::fmt::Debug for NatsKvOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NatsKvOptions")
            .field("url", &self.redacted_url())
            .field("bucket", &self.bucket)
            .field("service", &self.service)
            .field("cache_path", &self.cache_path)
            .field("connect_timeout", &self.connect_timeout)
            .finish()
    }
}

/// The bucket's keys that `keep` accepts, each once: the listing reads the bucket's stream, so
/// a key rewritten while it runs (a heartbeat, a put) can come twice.
pub async fn list_keys(
    store: &kv::Store,
    keep: impl Fn(&str) -> bool,
) -> Result<std::collections::BTreeSet<String>, Box<dyn std::error::Error + Send + Sync>> {
    let mut listing = store.keys().await?;
    let mut keys = std::collections::BTreeSet::new();
    while let Some(key) = listing.next().await {
        let key = key?;
        if keep(&key) {
            keys.insert(key);
        }
    }
    Ok(keys)
}

/// Opens key-value bucket `bucket`, creating it (with `history` values per key) when missing.
///
/// The bucket's stream is created here with the key-value conventions (`KV_<bucket>`,
/// subjects `$KV.<bucket>.>`, rollups allowed, deletes denied, direct get) rather than by
/// `create_key_value`, which first asks for the account's API level and fails on a
/// NATS server 2.9 (Debian 12's).
pub async fn open_bucket(
    js: &async_nats::jetstream::Context,
    bucket: &str,
    history: i64,
) -> Result<kv::Store, async_nats::Error> {
    if let Ok(store) = js.get_key_value(bucket).await {
        return Ok(store);
    }
    js.get_or_create_stream(async_nats::jetstream::stream::Config {
        name: format!("KV_{bucket}"),
        subjects: vec![format!("$KV.{bucket}.>")],
        max_messages_per_subject: history.max(1),
        allow_rollup: true,
        deny_delete: true,
        deny_purge: false,
        allow_direct: true,
        discard: async_nats::jetstream::stream::DiscardPolicy::New,
        num_replicas: 1,
        ..Default::default()
    })
    .await?;
    Ok(js.get_key_value(bucket).await?)
}

/// `scheme://user:password@host/...` without `user:password@`.
pub fn redact_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let authority_end = rest.find('/').unwrap_or(rest.len());
    let (authority, path) = rest.split_at(authority_end);
    match authority.rsplit_once('@') {
        Some((_, host)) => format!("{scheme}://{host}{path}"),
        None => url.to_owned(),
    }
}

/// Removes the URL's credentials from a client error's text (it may echo the URL).
pub(crate) fn scrub(text: &str, url: &str) -> String {
    let mut text = text.replace(url, &redact_url(url));
    if let Some((_, rest)) = url.split_once("://")
        && let Some((userinfo, _)) = rest.split('/').next().unwrap_or("").rsplit_once('@')
    {
        text = text.replace(userinfo, "[REDACTED]");
        if let Some((_, password)) = userinfo.split_once(':')
            && !password.is_empty()
        {
            text = text.replace(password, "[REDACTED]");
        }
    }
    text
}

/// One key's text and revision.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub(crate) struct KeyText {
    pub(crate) text: String,
    pub(crate) revision: u64,
}

/// What the cache file holds.
#[derive(Debug, Default, Serialize, Deserialize)]
struct CacheFile {
    service: String,
    revision: u64,
    keys: BTreeMap<String, KeyText>,
}

#[derive(Debug, Default)]
pub(crate) struct State {
    /// The service's keys (relative: `""` is the document, `cache.max_items` a path).
    pub(crate) keys: BTreeMap<String, KeyText>,
    /// The highest revision seen of the service's keys (deletes included).
    pub(crate) revision: u64,
    /// Whether the server answered the last time we asked.
    pub(crate) connected: bool,
    /// The revision came from the local cache (the KV was unreachable at start-up).
    pub(crate) from_cache: bool,
    pub(crate) last_contact: Option<chrono::DateTime<chrono::Utc>>,
    pub(crate) last_error: Option<String>,
}

/// A NATS JetStream key-value bucket as a config layer: add it with
/// [`ApplicationBuilder::config_remote`](modular_core::ApplicationBuilder::config_remote) and
/// add a [`FleetModule`](crate::FleetModule) over the same `Arc` to watch it.
pub struct NatsKv {
    options: NatsKvOptions,
    state: Mutex<State>,
    store: Mutex<Option<kv::Store>>,
    client: Mutex<Option<async_nats::Client>>,
    changed: watch::Sender<u64>,
}

impl std::fmt::Debug for NatsKv {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NatsKv")
            .field("options", &self.options)
            .field("revision", &self.state().revision)
            .finish_non_exhaustive()
    }
}

impl NatsKv {
    /// Connects, opens (or creates) the bucket and reads the service's keys. When the server
    /// does not answer within the connect timeout, the cached revision is used (the source is
    /// then reported degraded until it reconnects); with no cache, the error names the URL
    /// (without credentials).
    pub async fn connect(options: NatsKvOptions) -> Result<Arc<Self>, FleetError> {
        validate(&options)?;
        let this = Arc::new(Self {
            options,
            state: Mutex::new(State::default()),
            store: Mutex::new(None),
            client: Mutex::new(None),
            changed: watch::Sender::new(0),
        });
        let first = tokio::time::timeout(this.options.connect_timeout, async {
            let store = this.open().await?;
            this.resync(&store).await?;
            Ok::<_, FleetError>(store)
        })
        .await;
        let error = match first {
            Ok(Ok(store)) => {
                this.set_store(Some(store));
                return Ok(this);
            }
            Ok(Err(error)) => error.to_string(),
            Err(_) => format!(
                "no answer within {}",
                humantime::format_duration(this.options.connect_timeout)
            ),
        };
        match this.load_cache() {
            Some(cached) => {
                tracing::warn!(
                    url = %this.options.redacted_url(),
                    bucket = %this.options.bucket,
                    revision = cached.revision,
                    %error,
                    "fleet config: the key-value store is unreachable; serving the cached revision"
                );
                let mut state = this.state();
                state.keys = cached.keys;
                state.revision = cached.revision;
                state.from_cache = true;
                state.last_error = Some(error);
                drop(state);
                Ok(this)
            }
            None => Err(FleetError::Unreachable {
                url: this.options.redacted_url(),
                bucket: this.options.bucket.clone(),
                error,
                cache: this
                    .options
                    .cache_path
                    .as_ref()
                    .map(|p| p.display().to_string()),
            }),
        }
    }

    /// The options.
    pub fn options(&self) -> &NatsKvOptions {
        &self.options
    }

    /// The highest revision of the service's keys read so far.
    pub fn revision(&self) -> u64 {
        self.state().revision
    }

    /// Whether the client is connected and the last contact with the server succeeded.
    pub fn is_connected(&self) -> bool {
        self.state().connected && self.client_connected()
    }

    /// Whether the client's connection is up (it reconnects by itself after a loss).
    pub(crate) fn client_connected(&self) -> bool {
        self.client
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .as_ref()
            .is_some_and(|c| c.connection_state() == async_nats::connection::State::Connected)
    }

    /// Whether a client exists (whatever its connection's state).
    pub(crate) fn has_client(&self) -> bool {
        self.client
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .is_some()
    }

    /// Bumped on every change to the service's keys (what the fleet module watches).
    pub(crate) fn subscribe(&self) -> watch::Receiver<u64> {
        self.changed.subscribe()
    }

    pub(crate) fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub(crate) fn store(&self) -> Option<kv::Store> {
        self.store
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    pub(crate) fn set_store(&self, store: Option<kv::Store>) {
        *self.store.lock().unwrap_or_else(PoisonError::into_inner) = store;
    }

    /// Connects and opens the bucket, creating it when missing.
    pub(crate) async fn open(&self) -> Result<kv::Store, FleetError> {
        let url = &self.options.url;
        let client = async_nats::ConnectOptions::new()
            .connection_timeout(self.options.connect_timeout)
            .connect(url.as_str())
            .await
            .map_err(|e| self.client_error("connect", &e))?;
        *self.client.lock().unwrap_or_else(PoisonError::into_inner) = Some(client.clone());
        let js = async_nats::jetstream::new(client);
        open_bucket(&js, &self.options.bucket, self.options.history)
            .await
            .map_err(|e| self.client_error("open bucket", &e))
    }

    pub(crate) fn client_error(&self, what: &str, error: &dyn std::fmt::Display) -> FleetError {
        FleetError::Client {
            what: what.to_owned(),
            url: self.options.redacted_url(),
            error: scrub(&error.to_string(), &self.options.url),
        }
    }

    /// Reads every key of the service; returns whether anything changed.
    pub(crate) async fn resync(&self, store: &kv::Store) -> Result<bool, FleetError> {
        let keys = list_keys(store, |key| self.relative(key).is_some())
            .await
            .map_err(|e| self.client_error("list keys", &e))?;
        let mut read = BTreeMap::new();
        for key in keys {
            let Some(relative) = self.relative(&key) else {
                continue;
            };
            let Some(entry) = store
                .entry(key.as_str())
                .await
                .map_err(|e| self.client_error("read key", &e))?
            else {
                continue;
            };
            if entry.operation != kv::Operation::Put {
                continue;
            }
            read.insert(
                relative,
                KeyText {
                    text: String::from_utf8_lossy(&entry.value).into_owned(),
                    revision: entry.revision,
                },
            );
        }
        let changed = {
            let mut state = self.state();
            let max = read.values().map(|k| k.revision).max().unwrap_or(0);
            let changed = state.keys != read;
            state.keys = read;
            // A delete seen while watching may be above every remaining key.
            state.revision = if changed {
                max.max(state.revision)
            } else {
                state.revision
            };
            state.connected = true;
            state.from_cache = false;
            state.last_contact = Some(chrono::Utc::now());
            state.last_error = None;
            changed
        };
        self.save_cache();
        if changed {
            self.changed.send_modify(|n| *n += 1);
        }
        Ok(changed)
    }

    /// Applies one watched entry; returns whether it changed the service's keys.
    pub(crate) fn apply(&self, entry: &kv::Entry) -> bool {
        let Some(relative) = self.relative(&entry.key) else {
            return false;
        };
        let changed = {
            let mut state = self.state();
            state.connected = true;
            state.last_contact = Some(chrono::Utc::now());
            let known = state.keys.get(&relative).map(|k| k.revision);
            let stale = known.is_some_and(|revision| entry.revision <= revision);
            let changed = match entry.operation {
                _ if stale => false,
                kv::Operation::Put => {
                    state.keys.insert(
                        relative,
                        KeyText {
                            text: String::from_utf8_lossy(&entry.value).into_owned(),
                            revision: entry.revision,
                        },
                    );
                    true
                }
                kv::Operation::Delete | kv::Operation::Purge => {
                    state.keys.remove(&relative).is_some()
                }
            };
            if changed {
                state.revision = state.revision.max(entry.revision);
            }
            changed
        };
        if changed {
            self.save_cache();
            self.changed.send_modify(|n| *n += 1);
        }
        changed
    }

    /// Records a failed contact.
    pub(crate) fn lost(&self, error: String) {
        let mut state = self.state();
        state.connected = false;
        state.last_error = Some(error);
    }

    /// `key` relative to the service (`""` for the document key), or `None` when it is not
    /// one of the service's config keys.
    fn relative(&self, key: &str) -> Option<String> {
        let service = &self.options.service;
        if key == service {
            return Some(String::new());
        }
        key.strip_prefix(service.as_str())
            .and_then(|rest| rest.strip_prefix('.'))
            .filter(|rest| !rest.is_empty())
            .map(str::to_owned)
    }

    fn load_cache(&self) -> Option<CacheFile> {
        let path = self.options.cache_path.as_ref()?;
        let text = std::fs::read_to_string(path).ok()?;
        let cached: CacheFile = serde_json::from_str(&text).ok()?;
        (cached.service == self.options.service).then_some(cached)
    }

    fn save_cache(&self) {
        let Some(path) = &self.options.cache_path else {
            return;
        };
        let file = {
            let state = self.state();
            CacheFile {
                service: self.options.service.clone(),
                revision: state.revision,
                keys: state.keys.clone(),
            }
        };
        if let Err(error) = write_private(path, &serde_json::to_vec(&file).unwrap_or_default()) {
            tracing::warn!(path = %path.display(), %error, "fleet config: could not write the cache");
        }
    }
}

/// Writes `bytes` to `path` through a temporary file in the same directory (0600), renamed
/// over it, so a crash never leaves half a cache.
fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir)?;
    let tmp = dir.join(format!(
        ".{}.tmp",
        path.file_name().and_then(|n| n.to_str()).unwrap_or("cache")
    ));
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options.open(&tmp)?;
    file.write_all(bytes)?;
    file.sync_all()?;
    std::fs::rename(&tmp, path)
}

fn validate(options: &NatsKvOptions) -> Result<(), FleetError> {
    let valid_token = |s: &str| {
        !s.is_empty()
            && s.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
    };
    if !valid_token(&options.bucket) {
        return Err(FleetError::InvalidOption {
            option: "bucket",
            message: format!(
                "\"{}\" is not a bucket name (letters, digits, '-' and '_')",
                options.bucket
            ),
        });
    }
    if !valid_token(&options.service) {
        return Err(FleetError::InvalidOption {
            option: "service",
            message: format!(
                "\"{}\" is not a key token (letters, digits, '-' and '_')",
                options.service
            ),
        });
    }
    if !options.url.starts_with("nats://") && !options.url.starts_with("tls://") {
        return Err(FleetError::InvalidOption {
            option: "url",
            message: format!(
                "\"{}\" is not a nats:// or tls:// URL",
                redact_url(&options.url)
            ),
        });
    }
    Ok(())
}

impl RemoteSource for NatsKv {
    fn name(&self) -> String {
        format!(
            "{}/kv/{}/{}",
            self.options.redacted_url().trim_end_matches('/'),
            self.options.bucket,
            self.options.service
        )
    }

    fn snapshot(&self) -> RemoteSnapshot {
        let state = self.state();
        let mut errors = Vec::new();
        let mut document = Value::Object(Map::new());
        if let Some(doc) = state.keys.get("") {
            match parse_yaml(&doc.text) {
                Ok(Value::Object(map)) => document = Value::Object(map),
                Ok(Value::Null) => {}
                Ok(_) => errors.push(FieldError::new(
                    "",
                    format!(
                        "key \"{}\" must hold a YAML mapping of sections",
                        self.options.service
                    ),
                )),
                Err(error) => errors.push(FieldError::new(
                    "",
                    format!("key \"{}\" is not YAML: {error}", self.options.service),
                )),
            }
        }
        for (path, key) in state.keys.iter().filter(|(p, _)| !p.is_empty()) {
            match parse_yaml(&key.text) {
                Ok(value) => set_path(&mut document, path, value),
                Err(error) => errors.push(FieldError::new(
                    path.clone(),
                    format!(
                        "key \"{}.{path}\" is not YAML: {error}",
                        self.options.service
                    ),
                )),
            }
        }
        RemoteSnapshot {
            value: document,
            revision: Some(state.revision.to_string()),
            errors,
        }
    }
}

/// Sets `value` at dotted `path` in `doc`, creating maps on the way.
fn set_path(doc: &mut Value, path: &str, value: Value) {
    let mut node = doc;
    let mut parts = path.split('.').peekable();
    while let Some(part) = parts.next() {
        if !node.is_object() {
            *node = Value::Object(Map::new());
        }
        let Value::Object(map) = node else { return };
        if parts.peek().is_none() {
            map.insert(part.to_owned(), value);
            return;
        }
        node = map
            .entry(part.to_owned())
            .or_insert_with(|| Value::Object(Map::new()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_are_removed_from_urls_and_error_text() {
        assert_eq!(
            redact_url("nats://app:hunter2@127.0.0.1:4222"),
            "nats://127.0.0.1:4222"
        );
        assert_eq!(redact_url("nats://127.0.0.1:4222"), "nats://127.0.0.1:4222");
        let text = scrub(
            "failed: nats://app:hunter2@127.0.0.1:4222 said no to hunter2",
            "nats://app:hunter2@127.0.0.1:4222",
        );
        assert!(!text.contains("hunter2"), "{text}");
        assert!(text.contains("nats://127.0.0.1:4222"), "{text}");
    }

    #[test]
    fn dotted_paths_build_nested_sections() {
        let mut doc = serde_json::json!({ "cache": { "ttl": "1s" } });
        set_path(&mut doc, "cache.max_items", serde_json::json!(5));
        set_path(&mut doc, "router.limits.rps", serde_json::json!(9));
        assert_eq!(
            doc,
            serde_json::json!({ "cache": { "ttl": "1s", "max_items": 5 }, "router": { "limits": { "rps": 9 } } })
        );
    }
}
