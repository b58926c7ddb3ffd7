//! Shared fixtures: an application running the cache module, unique Redis namespaces, a module
//! whose reload always fails (to force rollbacks), and polling helpers.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

pub mod suite;
pub mod tls_redis;

use std::future::Future;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use cloudevents::AttributesReader as _;
use modular_cache::{Cache, CacheModule, CacheService};
use modular_core::Application;
use modular_core::events::{Event, EventBus, EventFilter, EventStream, event_data};
use modular_core::health::{HealthReport, HealthStatus};
use modular_core::reload::ReloadOptions;
use modular_testkit::Service;
use serde_json::{Value, json};

/// An application running the cache module, with its services and events at hand.
pub struct Harness {
    pub app: Application,
    pub cache: Arc<dyn Cache>,
    pub service: Arc<CacheService>,
    pub events: EventStream,
    /// Every event seen so far (filled by [`Harness::wait_for_event`] and [`Harness::seen`]).
    pub seen: Vec<Event>,
    /// The Redis key prefix (empty on the memory engine).
    pub prefix: String,
}

/// A Redis key prefix no other test (or earlier run) uses.
pub fn unique_prefix(test: &str) -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or_default();
    format!(
        "modular-test:{test}:{}-{nanos}-{}:",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    )
}

/// Merges `patch` into `base`, object by object.
pub fn merge(base: &mut Value, patch: Value) {
    match (base, patch) {
        (Value::Object(base), Value::Object(patch)) => {
            for (key, value) in patch {
                merge(base.entry(key).or_insert(Value::Null), value);
            }
        }
        (base, patch) => *base = patch,
    }
}

/// Reload options for tests: no file watcher, no health gate.
pub fn quiet_reload() -> ReloadOptions {
    ReloadOptions {
        watch_files: false,
        health_gate: false,
        ..ReloadOptions::default()
    }
}

/// Starts an application whose `cache` section is `cache` (layered as defaults).
pub async fn start(cache: Value) -> anyhow::Result<Harness> {
    start_with(json!({ "cache": cache }), None, false).await
}

/// Starts an application over `defaults`, optionally a config file, optionally with the
/// conformance kit's `Tripwire` module.
pub async fn start_with(
    defaults: Value,
    file: Option<&Path>,
    tripwire: bool,
) -> anyhow::Result<Harness> {
    modular_testkit::init_tracing();
    let bus = EventBus::new();
    let events = bus.subscribe(EventFilter::prefix("com.modular.cache."));
    let mut builder = Application::builder()
        .env_prefix(None)
        .config_defaults(defaults)
        .event_bus(bus)
        .module(CacheModule::new())
        .with_reload_options(quiet_reload())
        .with_health_aggregator()
        .handle_signals(false);
    if let Some(file) = file {
        builder = builder.config_file(file);
    }
    if tripwire {
        builder = builder.module(modular_testkit::conformance::Tripwire::after("cache"));
    }
    let mut app = builder.build().await?;
    app.start().await?;
    let cache = app.services().require::<dyn Cache>()?;
    let service = app.services().require::<CacheService>()?;
    Ok(Harness {
        app,
        cache,
        service,
        events,
        seen: Vec::new(),
        prefix: String::new(),
    })
}

/// The memory engine with `extra` merged into its section.
pub async fn memory(extra: Value) -> anyhow::Result<Harness> {
    let mut section = json!({ "engine": "memory", "default_ttl": "1h" });
    merge(&mut section, extra);
    start(section).await
}

/// The Redis section for `url` under a fresh prefix, with `extra` merged in.
pub fn redis_section(test: &str, url: &str, extra: Value) -> (Value, String) {
    let prefix = unique_prefix(test);
    let mut section = json!({
        "engine": "redis",
        "default_ttl": "1h",
        "redis": { "url": url, "key_prefix": prefix },
    });
    merge(&mut section, extra);
    (section, prefix)
}

/// The Redis engine on the shared server under a fresh prefix, or `None` (skip) without
/// `MODULAR_TEST_REDIS_URL`.
pub async fn redis(test: &str, extra: Value) -> anyhow::Result<Option<Harness>> {
    let Some(url) = modular_testkit::service(Service::Redis) else {
        return Ok(None);
    };
    let (section, prefix) = redis_section(test, &url, extra);
    let mut harness = start(section).await?;
    harness.prefix = prefix;
    Ok(Some(harness))
}

/// A plain connection to the test Redis, to look behind the cache's back.
pub async fn raw_redis(url: &str) -> anyhow::Result<redis::aio::MultiplexedConnection> {
    let client = redis::Client::open(url)?;
    Ok(client.get_multiplexed_async_connection().await?)
}

impl Harness {
    /// The cache's report from a fresh aggregated health check.
    pub async fn cache_report(&self) -> HealthReport {
        let health = self
            .app
            .health()
            .expect("health aggregator on")
            .force_refresh()
            .await;
        health
            .reports
            .iter()
            .find(|r| r.module == "cache")
            .cloned()
            .unwrap_or_else(|| panic!("no cache report in {:?}", health.reports))
    }

    /// Polls the cache's health until it has `status`, for at most `within`.
    pub async fn wait_for_health(&self, status: HealthStatus, within: Duration) -> HealthReport {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            let report = self.cache_report().await;
            if report.status == status {
                return report;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "cache health stayed {} ({}) instead of {status} for {within:?}",
                report.status,
                report.message
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Events received so far.
    pub fn seen(&mut self) -> &[Event] {
        self.seen.extend(self.events.drain());
        &self.seen
    }

    /// The data of every event of `ty` (`connected`, `reloaded`…) received so far.
    pub fn events_of(&mut self, ty: &str) -> Vec<Value> {
        let full = format!("com.modular.cache.{ty}");
        self.seen()
            .iter()
            .filter(|e| e.ty() == full)
            .map(|e| event_data(e).cloned().unwrap_or(Value::Null))
            .collect()
    }

    /// Waits (at most `within`) until an event of `ty` whose data satisfies `matches` arrives.
    pub async fn wait_for_event(
        &mut self,
        ty: &str,
        within: Duration,
        matches: impl Fn(&Value) -> bool,
    ) -> Value {
        let full = format!("com.modular.cache.{ty}");
        if let Some(found) = self
            .seen()
            .iter()
            .filter(|e| e.ty() == full)
            .filter_map(event_data)
            .find(|d| matches(d))
        {
            return found.clone();
        }
        let deadline = tokio::time::Instant::now() + within;
        loop {
            let event = tokio::time::timeout_at(deadline, self.events.recv())
                .await
                .unwrap_or_else(|_| {
                    panic!("no {full} event within {within:?}; seen: {:?}", self.seen)
                })
                .expect("event bus open");
            self.seen.push(event.clone());
            if event.ty() == full
                && let Some(data) = event_data(&event)
                && matches(data)
            {
                return data.clone();
            }
        }
    }

    /// Clears the namespace (so Redis keeps nothing of the test) and stops the application.
    pub async fn finish(mut self) -> anyhow::Result<()> {
        self.cache.clear().await?;
        self.app.stop().await?;
        Ok(())
    }
}

/// Polls `check` every 50 ms until it holds, for at most `within`; `false` when it never did.
pub async fn eventually<F, Fut>(within: Duration, mut check: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + within;
    loop {
        if check().await {
            return true;
        }
        if tokio::time::Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A fault proxy in front of the Redis at `url`, and the URL that goes through it.
pub async fn redis_proxy(url: &str) -> anyhow::Result<(modular_testkit::FaultProxy, String)> {
    let authority = url
        .split_once("://")
        .map_or(url, |(_, rest)| rest)
        .split('/')
        .next()
        .unwrap_or_default();
    let host_port = authority.rsplit_once('@').map_or(authority, |(_, hp)| hp);
    let upstream = tokio::net::lookup_host(host_port)
        .await?
        .next()
        .ok_or_else(|| anyhow::anyhow!("{host_port} resolves to nothing"))?;
    let proxy = modular_testkit::FaultProxy::start(upstream).await?;
    modular_testkit::wait_for_tcp(proxy.addr(), Duration::from_secs(5)).await?;
    let proxied = format!("redis://{}", proxy.addr());
    Ok((proxy, proxied))
}
