//! [`RouterModule`]: owns the application's router, rebuilds it on reload and when routes are
//! contributed, and reports its routes' health.

use std::sync::{Arc, Mutex, PoisonError};

use arc_swap::ArcSwap;
use axum::Router;
use http::StatusCode;
use modular_core::config::{ConfigChange, ConfigHandle};
use modular_core::health::{
    HealthAggregator, HealthContext, HealthError, HealthProvider, HealthReport,
};
use modular_core::http::{RouteRegistry, ServedRouter};
use modular_core::{
    BoxError, InitContext, Module, ModuleContext, PreparedReload, ReloadContext, Reloadable,
};
use serde_json::json;
use tokio::sync::watch;

use crate::assemble::{self, BuildSummary};
use crate::config::{AdminConfig, DEFAULT_HEALTH_TIMEOUT, HealthEndpointsConfig, RouterConfig};
use crate::endpoints::Endpoints;
use crate::error::RouterError;

/// The module's name, and the key of its configuration section.
pub const MODULE_NAME: &str = "router";

/// The router module. See the [crate docs](crate).
#[derive(Default)]
pub struct RouterModule {
    shared: Option<Arc<Shared>>,
}

impl std::fmt::Debug for RouterModule {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RouterModule")
            .field("initialised", &self.shared.is_some())
            .finish()
    }
}

impl RouterModule {
    /// A router module; everything is read from configuration at `init`.
    pub fn new() -> Self {
        Self::default()
    }
}

/// What a build left behind for the health check.
#[derive(Clone, Debug, Default)]
struct Status {
    built: Option<BuildSummary>,
    /// The last rebuild after a route contribution failed; the previous router still serves.
    contribution_error: Option<String>,
}

struct Shared {
    ctx: ModuleContext,
    routes: Arc<RouteRegistry>,
    served: Arc<ServedRouter>,
    endpoints: Arc<Endpoints>,
    /// The section the served router was built from (or will be, before start).
    active: ArcSwap<RouterConfig>,
    status: ArcSwap<Status>,
    /// Whether the first build has run (`start`). Held during every build, so a reload and a
    /// contribution change never interleave.
    build: Mutex<bool>,
}

impl Shared {
    /// Builds with `config` (or the active section), swaps the result in, records it and
    /// announces it. On error nothing changes.
    fn rebuild(
        &self,
        config: Option<Arc<RouterConfig>>,
        trigger: &'static str,
    ) -> Result<(), RouterError> {
        let config = config.unwrap_or_else(|| self.active.load_full());
        let prepared = self.prepare(config, trigger)?;
        self.commit(prepared);
        Ok(())
    }

    /// Builds a whole router from `config` and the current contributions, aside: nothing
    /// serves from it until [`Shared::commit`]. On error nothing changes.
    fn prepare(
        &self,
        config: Arc<RouterConfig>,
        trigger: &'static str,
    ) -> Result<PreparedRouter, RouterError> {
        let started = *self.build.lock().unwrap_or_else(PoisonError::into_inner);
        if !started {
            // Not started yet: the commit only remembers the section; `start` builds with it.
            return Ok(PreparedRouter {
                config,
                trigger,
                built: None,
                contributions: self.routes.generation(),
            });
        }
        let contributions = self.routes.generation();
        let built = self.assemble(&config, trigger)?;
        Ok(PreparedRouter {
            config,
            trigger,
            built: Some(built),
            contributions,
        })
    }

    fn assemble(
        &self,
        config: &RouterConfig,
        trigger: &'static str,
    ) -> Result<(Router, BuildSummary), RouterError> {
        let contributions = self.routes.contributions();
        let documents = self.routes.documents();
        assemble::build(config, &contributions, &documents, &self.endpoints).inspect_err(|error| {
            self.ctx.emit(
                "routes.rebuild_failed",
                json!({ "trigger": trigger, "error": error.to_string() }),
            );
        })
    }

    /// Swaps a prepared router in (one store), records and announces it. When route
    /// contributions changed since it was prepared, the router is assembled again from the new
    /// section and the current contributions (synchronous, no I/O), so no contribution is lost;
    /// should that fail, the prepared router serves and health reports the contribution error.
    fn commit(&self, prepared: PreparedRouter) {
        let PreparedRouter {
            config,
            trigger,
            built,
            contributions,
        } = prepared;
        let _serial = self.build.lock().unwrap_or_else(PoisonError::into_inner);
        let Some(mut built) = built else {
            self.active.store(config);
            return;
        };
        let mut contribution_error = None;
        if self.routes.generation() != contributions {
            match self.assemble(&config, "contribution") {
                Ok(again) => built = again,
                Err(error) => contribution_error = Some(error.to_string()),
            }
        }
        let (router, summary) = built;
        self.served.replace(router);
        self.active.store(config);
        tracing::info!(
            module = MODULE_NAME,
            trigger,
            routes = summary.paths.len(),
            disabled = summary.disabled.len(),
            health_endpoints = summary.health_endpoints,
            "router built"
        );
        self.ctx.emit(
            "routes.rebuilt",
            json!({
                "trigger": trigger,
                "route_count": summary.paths.len(),
                "disabled": summary.disabled.iter().map(|(path, _)| path.as_str()).collect::<Vec<_>>(),
                "generation": self.served.generation(),
            }),
        );
        self.status.store(Arc::new(Status {
            built: Some(summary),
            contribution_error,
        }));
    }

    /// The first build. Returns a receiver of contribution changes taken before building, so
    /// a contribution that lands during the build is rebuilt for afterwards, never missed.
    fn start(&self) -> Result<watch::Receiver<u64>, RouterError> {
        let changes = self.routes.subscribe();
        *self.build.lock().unwrap_or_else(PoisonError::into_inner) = true;
        if let Err(error) = self.rebuild(None, "start") {
            *self.build.lock().unwrap_or_else(PoisonError::into_inner) = false;
            return Err(error);
        }
        Ok(changes)
    }

    /// Rebuilds whenever the route contributions change, until the application stops.
    fn watch_contributions(self: &Arc<Self>, mut changes: watch::Receiver<u64>) {
        let shared = Arc::clone(self);
        let cancel = self.ctx.cancellation().clone();
        self.ctx.spawn(async move {
            loop {
                tokio::select! {
                    () = cancel.cancelled() => return,
                    changed = changes.changed() => {
                        if changed.is_err() {
                            return;
                        }
                        if let Err(error) = shared.rebuild(None, "contribution") {
                            tracing::error!(
                                module = MODULE_NAME,
                                %error,
                                "route contributions changed but the router could not be rebuilt; the previous routes keep serving"
                            );
                            let mut status = (**shared.status.load()).clone();
                            status.contribution_error = Some(error.to_string());
                            shared.status.store(Arc::new(status));
                        }
                    }
                }
            }
        });
    }
}

/// A router assembled aside by a reload, not yet serving.
struct PreparedRouter {
    config: Arc<RouterConfig>,
    trigger: &'static str,
    /// `None` before the first build (the module has not started).
    built: Option<(Router, BuildSummary)>,
    /// The contributions generation it was assembled from.
    contributions: u64,
}

/// Answers every request while the router has not been built yet.
fn starting_router() -> Router {
    Router::new().fallback(|| async { (StatusCode::SERVICE_UNAVAILABLE, "starting") })
}

#[modular_core::async_trait]
impl Module for RouterModule {
    fn name(&self) -> &str {
        MODULE_NAME
    }

    async fn init(&mut self, ctx: &mut InitContext<'_>) -> Result<(), BoxError> {
        let config: ConfigHandle<RouterConfig> = ctx.config()?;
        let admin: ConfigHandle<AdminConfig> = ctx.config_section("admin")?;
        let health_config: ConfigHandle<HealthEndpointsConfig> = ctx.config_section("health")?;
        let services = Arc::clone(ctx.services());
        let routes = RouteRegistry::shared(&services);
        let served = Arc::new(ServedRouter::new(starting_router()));
        services.register(Arc::clone(&served));
        let endpoints = Arc::new(Endpoints {
            health: services.get::<HealthAggregator>(),
            store: Arc::clone(ctx.config_store()),
            services,
            admin,
            health_config,
            route_metrics: Arc::default(),
        });
        let shared = Arc::new(Shared {
            ctx: ctx.context(),
            routes,
            served,
            endpoints,
            active: ArcSwap::new(config.get()),
            status: ArcSwap::from_pointee(Status::default()),
            build: Mutex::new(false),
        });
        ctx.register_reloadable(Arc::new(RouterReload(Arc::clone(&shared))));
        ctx.register_health_provider(
            MODULE_NAME,
            Arc::new(RouterHealth(Arc::clone(&shared))),
            config.get().health.options(DEFAULT_HEALTH_TIMEOUT),
        );
        self.shared = Some(shared);
        Ok(())
    }

    async fn start(&self, _ctx: &ModuleContext) -> Result<(), BoxError> {
        let shared = self
            .shared
            .as_ref()
            .ok_or("router module started before init")?;
        let changes = shared.start()?;
        shared.watch_contributions(changes);
        Ok(())
    }
}

/// The router's reload hook: assembles a whole new router aside; the commit swaps it in and,
/// when `health.*` changed, replaces the health registration's options.
struct RouterReload(Arc<Shared>);

#[modular_core::async_trait]
impl Reloadable for RouterReload {
    async fn prepare(
        &self,
        ctx: &ReloadContext,
        changes: &[ConfigChange],
    ) -> Result<PreparedReload, BoxError> {
        let config = ctx
            .new_config::<RouterConfig>()
            .ok_or(RouterError::MissingSection)?;
        let health = self
            .0
            .endpoints
            .health
            .clone()
            .filter(|_| changes.iter().any(|c| c.is_under("health")))
            .map(|aggregator| (aggregator, config.health.options(DEFAULT_HEALTH_TIMEOUT)));
        let prepared = self.0.prepare(config, "reload")?;
        let shared = Arc::clone(&self.0);
        Ok(PreparedReload::new(move || {
            shared.commit(prepared);
            if let Some((aggregator, options)) = health {
                aggregator.set_provider_options(MODULE_NAME, options);
            }
        }))
    }
}

/// The router's health: component `routes`.
///
/// - unhealthy until the first build (the module has not started);
/// - degraded when route contributions changed but the router could not be rebuilt (for
///   example two modules claim one path): the previous routes keep serving;
/// - healthy otherwise, with the route count (admin endpoints counted only while a token is
///   set) and disabled routes in the details.
struct RouterHealth(Arc<Shared>);

#[modular_core::async_trait]
impl HealthProvider for RouterHealth {
    async fn health_check(&self, _ctx: &HealthContext) -> Result<Vec<HealthReport>, HealthError> {
        let status = self.0.status.load();
        let Some(summary) = &status.built else {
            return Ok(vec![
                HealthReport::unhealthy(MODULE_NAME, "routes")
                    .with_message("router not built yet: the module has not started"),
            ]);
        };
        // The admin endpoints exist only while a token is set (read per request).
        let admin = self.0.endpoints.admin_enabled();
        let route_count = summary.paths.len()
            - if admin {
                0
            } else {
                crate::endpoints::admin::PATHS.len()
            };
        let disabled: Vec<_> = summary
            .disabled
            .iter()
            .map(|(path, code)| json!({ "path": path, "status": code }))
            .collect();
        let mut report = HealthReport::healthy(MODULE_NAME, "routes")
            .with_message(format!(
                "{route_count} routes, {} disabled",
                summary.disabled.len()
            ))
            .with_detail("route_count", route_count)
            .with_detail("disabled", disabled)
            .with_detail("owners", summary.owners.clone())
            .with_detail("opaque_owners", summary.opaque_owners.clone())
            .with_detail("health_endpoints", summary.health_endpoints)
            .with_detail("admin_endpoints", admin)
            .with_detail("generation", self.0.served.generation());
        if let Some(error) = &status.contribution_error {
            report = report
                .with_status(modular_core::health::HealthStatus::Degraded)
                .with_message(format!("route contributions not applied: {error}"));
        }
        Ok(vec![report])
    }
}
