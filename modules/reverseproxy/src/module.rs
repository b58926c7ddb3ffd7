//! [`ReverseProxyModule`]: loads the `reverseproxy` section into a [`Proxy`], contributes
//! its route prefixes to the route registry, reloads the table two-phase, checks backends
//! and reports health per pool.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use axum::routing::any;
use modular_core::health::{
    HealthAggregator, HealthContext, HealthError, HealthProvider, HealthReport, HealthStatus,
    ProviderOptions,
};
use modular_core::http::RouteRegistry;
use modular_core::{
    BoxError, ConfigChange, InitContext, Module, ModuleContext, PreparedReload, ReloadContext,
    Reloadable,
};
use serde_json::{Map, json};
use tokio::time::Instant;

use crate::config::ReverseProxyConfig;
use crate::error::ReverseProxyError;
use crate::proxy::{Emit, Proxy};
use crate::table::Table;

/// The module's name, its section and its health registration.
const NAME: &str = "reverseproxy";

/// Building a table is CPU work of microseconds; this bounds a pathological one.
const RELOAD_TIMEOUT: Duration = Duration::from_secs(5);

/// The reverse proxy module, named `reverseproxy`.
///
/// `init` compiles the section into a routing table, registers the [`Proxy`] as a service,
/// contributes one catch-all route per distinct prefix to the
/// [`RouteRegistry`](modular_core::http::RouteRegistry) (the router module serves them), and
/// registers its reload hook and health check; `start` starts the active health checks.
#[derive(Debug, Default)]
pub struct ReverseProxyModule {
    live: Option<Arc<Live>>,
}

impl ReverseProxyModule {
    /// The module.
    pub fn new() -> Self {
        Self::default()
    }
}

/// What the module's hooks share.
#[derive(Debug)]
struct Live {
    proxy: Arc<Proxy>,
    context: ModuleContext,
    routes: Arc<RouteRegistry>,
    /// The prefixes contributed to the route registry now.
    prefixes: Mutex<BTreeSet<String>>,
    health: Option<Arc<HealthAggregator>>,
    /// The config the running table was built from (a TLS rotation rebuilds from it).
    built_from: Mutex<Arc<ReverseProxyConfig>>,
    /// Held while a table is built from the running one and swapped in: a reload's commit
    /// and a TLS rotation never interleave.
    swap: Mutex<()>,
    /// Woken when a table is swapped in (the TLS watcher re-arms on its files).
    swapped: tokio::sync::Notify,
    /// Why the TLS files last failed to load, while they do.
    tls_rejection: Mutex<Option<String>>,
    /// Per pool with TLS files: whether the watcher watches all of them now (set when it
    /// arms, read by health).
    tls_watched: Mutex<std::collections::BTreeMap<String, bool>>,
}

fn provider_options(config: &ReverseProxyConfig) -> ProviderOptions {
    ProviderOptions::new().with_optional(config.health.optional)
}

/// Route paths serving `prefix` and everything below it.
fn paths_for(prefix: &str) -> Vec<String> {
    if prefix == "/" {
        vec!["/".to_owned(), "/{*reverseproxy_rest}".to_owned()]
    } else {
        vec![
            prefix.to_owned(),
            format!("{prefix}/"),
            format!("{prefix}/{{*reverseproxy_rest}}"),
        ]
    }
}

fn owner_of(prefix: &str) -> String {
    format!("{NAME}:{prefix}")
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Live {
    /// Swaps `table` in (the caller holds `swap`): its routes contributed, the old table's
    /// checkers stopped and its own started. Requests running on the old table finish there.
    fn install(&self, table: Table, config: Arc<ReverseProxyConfig>) -> Arc<Table> {
        let table = Arc::new(table);
        self.sync_routes(&table);
        let old = self.proxy.table.swap(Arc::clone(&table));
        old.checkers.cancel();
        crate::checker::start(
            &table,
            self.context.tasks(),
            self.context.cancellation(),
            &self.proxy.emit,
        );
        *lock(&self.built_from) = config;
        self.swapped.notify_waiters();
        table
    }

    /// Contributes the prefixes `table` needs and withdraws those it no longer has; a
    /// prefix kept is never withdrawn, so its requests never miss a route.
    fn sync_routes(&self, table: &Table) {
        let wanted: BTreeSet<String> = table.prefixes().into_iter().collect();
        let mut current = lock(&self.prefixes);
        for prefix in wanted.difference(&current) {
            let proxy = Arc::clone(&self.proxy);
            let handler = any(move |request: axum::extract::Request| {
                let proxy = Arc::clone(&proxy);
                async move { proxy.handle(request).await }
            });
            let paths = paths_for(prefix);
            let mut router = axum::Router::new();
            for path in &paths {
                router = router.route(path, handler.clone());
            }
            self.routes.add_with_paths(owner_of(prefix), router, paths);
        }
        for prefix in current.difference(&wanted) {
            self.routes.remove(&owner_of(prefix));
        }
        *current = wanted;
    }

    fn emit(context: &ModuleContext) -> Emit {
        let context = context.clone();
        Arc::new(move |noun_verb: &str, data| context.emit(noun_verb, data))
    }
}

#[async_trait::async_trait]
impl Module for ReverseProxyModule {
    fn name(&self) -> &str {
        NAME
    }

    async fn init(&mut self, ctx: &mut InitContext<'_>) -> Result<(), BoxError> {
        let config: Arc<ReverseProxyConfig> = ctx.config::<ReverseProxyConfig>()?.get();
        let table = Table::build(&config, None)?;
        let context = ctx.context();
        let proxy = Arc::new(Proxy::new(table, Live::emit(&context)));
        ctx.services().register(Arc::clone(&proxy));
        let live = Arc::new(Live {
            proxy,
            context,
            routes: RouteRegistry::shared(ctx.services()),
            prefixes: Mutex::new(BTreeSet::new()),
            health: ctx.services().get::<HealthAggregator>(),
            built_from: Mutex::new(Arc::clone(&config)),
            swap: Mutex::new(()),
            swapped: tokio::sync::Notify::new(),
            tls_rejection: Mutex::new(None),
            tls_watched: Mutex::new(std::collections::BTreeMap::new()),
        });
        live.sync_routes(&live.proxy.table());
        ctx.register_reloadable(Arc::new(ProxyReloader(Arc::clone(&live))));
        ctx.register_health_provider(
            NAME,
            Arc::new(ProxyHealth(Arc::clone(&live))) as Arc<dyn HealthProvider>,
            provider_options(&config),
        );
        let table = live.proxy.table();
        tracing::info!(
            module = NAME,
            routes = table.routes.len(),
            pools = table.pools.len(),
            "reverse proxy ready"
        );
        self.live = Some(live);
        Ok(())
    }

    async fn start(&self, ctx: &ModuleContext) -> Result<(), BoxError> {
        if let Some(live) = &self.live {
            let listen = lock(&live.built_from).listen.clone();
            if let Some(listen) = listen {
                let listener = tokio::net::TcpListener::bind(listen.as_str())
                    .await
                    .map_err(|e| format!("reverseproxy.listen: cannot listen on {listen}: {e}"))?;
                let addr = listener.local_addr()?;
                let _ = live.proxy.listen_addr.set(addr);
                tracing::info!(module = NAME, %addr, "reverse proxy listening");
                ctx.spawn(crate::fast::serve(
                    listener,
                    Arc::clone(&live.proxy),
                    ctx.cancellation().clone(),
                ));
            }
            let table = live.proxy.table();
            crate::checker::start(&table, ctx.tasks(), ctx.cancellation(), &live.proxy.emit);
            ctx.spawn(crate::tls_watch::run(
                Arc::clone(live),
                ctx.cancellation().clone(),
            ));
        }
        Ok(())
    }

    async fn stop(&self, _ctx: &ModuleContext) -> Result<(), BoxError> {
        if let Some(live) = &self.live {
            live.proxy.table().checkers.cancel();
        }
        Ok(())
    }
}

impl crate::tls_watch::Rotate for Live {
    fn built_from(&self) -> Arc<ReverseProxyConfig> {
        Arc::clone(&lock(&self.built_from))
    }

    fn swapped(&self) -> tokio::sync::futures::Notified<'_> {
        self.swapped.notified()
    }

    fn watching(&self, dirs: &[std::path::PathBuf]) {
        let config = self.built_from();
        let watched = config
            .pools
            .iter()
            .filter_map(|(name, pool)| {
                let files = crate::tls_watch::pool_directories(pool);
                (!files.is_empty())
                    .then(|| (name.clone(), files.iter().all(|dir| dirs.contains(dir))))
            })
            .collect();
        *lock(&self.tls_watched) = watched;
    }

    /// Rebuilds the table from the files as they are now; swaps it in when a pool's TLS
    /// material changed. A failure keeps the running table and is reported until it clears.
    fn rotate(&self) {
        let _swap = lock(&self.swap);
        let config = Arc::clone(&lock(&self.built_from));
        let current = self.proxy.table();
        let table = match Table::build(&config, Some(&current)) {
            Ok(table) => table,
            Err(error) => {
                let message = error.to_string();
                let mut rejection = lock(&self.tls_rejection);
                if rejection.as_deref() != Some(message.as_str()) {
                    tracing::warn!(module = NAME, error = %message, "rotated TLS files rejected; the running clients are kept");
                    self.context
                        .emit("tls.rejected", json!({ "error": message }));
                    *rejection = Some(message);
                }
                return;
            }
        };
        if lock(&self.tls_rejection).take().is_some() {
            tracing::info!(module = NAME, "TLS files load again");
        }
        // A pool whose files' content changed got a new client; the others kept theirs.
        let pools: Vec<String> = table
            .pools
            .iter()
            .filter(|(name, pool)| {
                let before = current.pools.get(*name).and_then(|p| p.tls.as_ref());
                match (before, pool.tls.as_ref()) {
                    (Some(before), Some(now)) => !Arc::ptr_eq(before, now),
                    (None, None) => false,
                    _ => true,
                }
            })
            .map(|(name, _)| name.clone())
            .collect();
        if pools.is_empty() {
            return;
        }
        self.install(table, config);
        tracing::info!(module = NAME, pools = ?pools, "rotated TLS files loaded");
        self.context.emit("tls.rotated", json!({ "pools": pools }));
    }
}

/// Builds the new table aside in `prepare` (backends whose pool and URL stay are kept with
/// their health and breaker state) and swaps it in at commit: requests already running hold
/// the old table and finish on their backend; a backend only the old table has gets no new
/// request and is dropped when its last request ends (drained).
struct ProxyReloader(Arc<Live>);

impl std::fmt::Debug for ProxyReloader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProxyReloader").finish_non_exhaustive()
    }
}

#[async_trait::async_trait]
impl Reloadable for ProxyReloader {
    fn reload_timeout(&self) -> Duration {
        RELOAD_TIMEOUT
    }

    async fn prepare(
        &self,
        ctx: &ReloadContext,
        changes: &[ConfigChange],
    ) -> Result<PreparedReload, BoxError> {
        let config = ctx.new_config::<ReverseProxyConfig>().ok_or_else(|| {
            ReverseProxyError::MissingSection {
                module: ctx.module().to_owned(),
            }
        })?;
        let live = Arc::clone(&self.0);
        let current = live.proxy.table();
        let table = Table::build(&config, Some(&current))?;
        let version = ctx.version();
        let fields: Vec<String> = changes.iter().map(|c| c.field_path.to_string()).collect();
        let options = provider_options(&config);
        Ok(PreparedReload::new(move || {
            let table = {
                let _swap = lock(&live.swap);
                live.install(table, config)
            };
            if let Some(health) = &live.health {
                health.set_provider_options(NAME, options);
            }
            tracing::info!(module = NAME, version, fields = ?fields, routes = table.routes.len(), pools = table.pools.len(), "reverse proxy table reloaded");
            live.context.emit(
                "table.reloaded",
                json!({ "version": version, "fields": fields }),
            );
        }))
    }
}

/// One report per pool, component `pool.<name>`: `healthy` when every backend takes
/// requests, `degraded` when some do not (down by checks, ejected, breaker open),
/// `unhealthy` when none does; an `optional` pool is `degraded` at worst. Details per
/// backend: state, breaker, last check and its error, requests in flight, requests.
struct ProxyHealth(Arc<Live>);

#[async_trait::async_trait]
impl HealthProvider for ProxyHealth {
    async fn health_check(&self, _ctx: &HealthContext) -> Result<Vec<HealthReport>, HealthError> {
        let table = self.0.proxy.table();
        let watched = lock(&self.0.tls_watched).clone();
        let now = Instant::now();
        let mut names: Vec<&String> = table.pools.keys().collect();
        names.sort();
        let mut reports = Vec::new();
        for name in names {
            let pool = &table.pools[name];
            let mut backends = Map::new();
            let mut available = 0;
            for backend in &pool.backends {
                if backend.state_name(now) == "up" {
                    available += 1;
                }
                backends.insert(backend.label().to_owned(), backend.details(now));
            }
            let total = pool.backends.len();
            let status = if available == total {
                HealthStatus::Healthy
            } else if available > 0 || pool.optional {
                HealthStatus::Degraded
            } else {
                HealthStatus::Unhealthy
            };
            let mut details = Map::new();
            details.insert("backends".to_owned(), serde_json::Value::Object(backends));
            details.insert("optional".to_owned(), json!(pool.optional));
            if let Some(watched) = watched.get(name.as_str()) {
                details.insert("tls_files_watched".to_owned(), json!(watched));
            }
            reports.push(
                HealthReport::new(NAME, format!("pool.{name}"), status)
                    .with_message(format!("{available} of {total} backends available"))
                    .with_details(details),
            );
        }
        if let Some(rejection) = lock(&self.0.tls_rejection).clone() {
            reports.push(
                HealthReport::new(NAME, "tls_files", HealthStatus::Degraded).with_message(format!(
                    "rotated TLS files rejected, the running clients kept: {rejection}"
                )),
            );
        }
        if reports.is_empty() {
            reports.push(
                HealthReport::new(NAME, "pools", HealthStatus::Healthy).with_message("no pools"),
            );
        }
        Ok(reports)
    }
}
