//! [`RouterModule`]: owns the application's router, rebuilds it on reload and when routes are
//! contributed, and reports its routes' health.

use std::sync::{Arc, Mutex, PoisonError};

use arc_swap::ArcSwap;
use axum::Router;
use http::StatusCode;
use modular_core::config::{ConfigChange, ConfigHandle};
use modular_core::health::{
    HealthAggregator, HealthContext, HealthError, HealthProvider, HealthReport, ProviderOptions,
};
use modular_core::http::{RouteRegistry, ServedRouter};
use modular_core::{BoxError, InitContext, Module, ModuleContext, ReloadContext, Reloadable};
use serde_json::json;
use tokio::sync::watch;

use crate::assemble::{self, BuildSummary};
use crate::config::{AdminConfig, HealthEndpointsConfig, RouterConfig};
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
        let started = self.build.lock().unwrap_or_else(PoisonError::into_inner);
        let config = config.unwrap_or_else(|| self.active.load_full());
        if !*started {
            // Not started yet: remember the section; `start` builds with it.
            self.active.store(config);
            return Ok(());
        }
        let contributions = self.routes.contributions();
        let (router, summary) = match assemble::build(&config, &contributions, &self.endpoints) {
            Ok(built) => built,
            Err(error) => {
                self.ctx.emit(
                    "routes.rebuild_failed",
                    json!({ "trigger": trigger, "error": error.to_string() }),
                );
                return Err(error);
            }
        };
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
            contribution_error: None,
        }));
        Ok(())
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
            Arc::new(RouterHealth(Arc::clone(&shared))),
            ProviderOptions::default(),
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

/// The router's reload hook: builds a whole new router aside and swaps it in.
struct RouterReload(Arc<Shared>);

#[modular_core::async_trait]
impl Reloadable for RouterReload {
    async fn reload(&self, ctx: &ReloadContext, _changes: &[ConfigChange]) -> Result<(), BoxError> {
        let config = ctx
            .new_config::<RouterConfig>()
            .ok_or(RouterError::MissingSection)?;
        let trigger = if ctx.is_rollback() {
            "rollback"
        } else {
            "reload"
        };
        self.0.rebuild(Some(config), trigger)?;
        Ok(())
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
        let admin = self.0.endpoints.admin.load().is_enabled();
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
