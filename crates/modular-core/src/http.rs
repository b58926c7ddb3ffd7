//! The HTTP seam between modules (feature `http`): modules contribute `axum` routes through a
//! [`RouteRegistry`], the router module builds the application's router from them and
//! publishes it as a [`ServedRouter`], and the HTTP server serves whatever that holds.
//!
//! The [`AccessPolicy`] seam lets a module (auth) decide who may use `/admin/*` and see
//! health details, without the router depending on it.
//!
//! A module describes its endpoints for `GET /admin/openapi.json` with
//! [`RouteRegistry::document`]: an OpenAPI fragment (usually `MyApi::openapi()` of a
//! `#[derive(utoipa::OpenApi)]` over the handlers' `#[utoipa::path]` annotations) that the router
//! merges into the application's spec.
//!
//! Both types live here so that no module depends on another module's crate: a module that
//! wants to answer HTTP looks the registry up in the service registry, and the server looks up
//! the served router the same way.
//!
//! ```
//! use axum::routing::get;
//! use modular_core::ServiceRegistry;
//! use modular_core::http::RouteRegistry;
//!
//! let services = ServiceRegistry::new();
//! // In a module's `init`: `RouteRegistry::shared(ctx.services())`.
//! let routes = RouteRegistry::shared(&services);
//! routes.route("orders", "/orders", get(|| async { "[]" }));
//! routes.route("orders", "/orders/{id}", get(|| async { "{}" }));
//! assert_eq!(routes.paths(), ["/orders", "/orders/{id}"]);
//! ```

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use arc_swap::ArcSwap;
use axum::Router;
use axum::routing::MethodRouter;
use tokio::sync::watch;

use crate::registry::ServiceRegistry;

/// Routes contributed by modules, keyed by the owning module.
///
/// Contributions may arrive in any module's `init` (or later): the router module merges every
/// contribution when it starts, and rebuilds its router when the set changes afterwards
/// ([`RouteRegistry::subscribe`]). Routes added with [`RouteRegistry::route`] are recorded by
/// path, so the router can count them and toggle them by name; a whole `Router` added with
/// [`RouteRegistry::add`] is merged as it is, with its paths unknown unless given with
/// [`RouteRegistry::add_with_paths`].
pub struct RouteRegistry {
    contributions: Mutex<Vec<RouteContribution>>,
    documents: Mutex<Vec<(String, utoipa::openapi::OpenApi)>>,
    changed: watch::Sender<u64>,
}

/// One module's contribution: a router and the paths it is known to serve.
#[derive(Clone)]
pub struct RouteContribution {
    owner: String,
    router: Router,
    paths: Vec<String>,
    admin: bool,
}

impl RouteContribution {
    /// The module that contributed it.
    pub fn owner(&self) -> &str {
        &self.owner
    }

    /// The routes.
    pub fn router(&self) -> &Router {
        &self.router
    }

    /// The route paths (as registered, `/orders/{id}`) known to be served; empty when the
    /// contribution is an opaque router.
    pub fn paths(&self) -> &[String] {
        &self.paths
    }

    /// Whether it is an admin endpoint ([`RouteRegistry::admin_route`]): the router serves it
    /// behind the admin guard, with the built-in `/admin/*` endpoints.
    pub fn is_admin(&self) -> bool {
        self.admin
    }
}

impl fmt::Debug for RouteContribution {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RouteContribution")
            .field("owner", &self.owner)
            .field("paths", &self.paths)
            .field("admin", &self.admin)
            .finish_non_exhaustive()
    }
}

impl Default for RouteRegistry {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Debug for RouteRegistry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RouteRegistry")
            .field("contributions", &*lock(&self.contributions))
            .field(
                "documented",
                &lock(&self.documents)
                    .iter()
                    .map(|(owner, _)| owner.as_str())
                    .collect::<Vec<_>>(),
            )
            .field("generation", &self.generation())
            .finish()
    }
}

impl RouteRegistry {
    /// An empty registry at generation 0.
    pub fn new() -> Self {
        Self {
            contributions: Mutex::new(Vec::new()),
            documents: Mutex::new(Vec::new()),
            changed: watch::Sender::new(0),
        }
    }

    /// The application's registry: the one in `services`, registered there on first use, so
    /// modules may contribute routes in any initialisation order.
    pub fn shared(services: &ServiceRegistry) -> Arc<Self> {
        if let Some(existing) = services.get::<Self>() {
            return existing;
        }
        // Module `init` hooks run one at a time, so no other caller can register in between.
        let registry = Arc::new(Self::new());
        services.register(Arc::clone(&registry));
        registry
    }

    /// Adds one route, recorded by its path (axum syntax: `/orders/{id}`, `/files/{*rest}`).
    ///
    /// # Panics
    ///
    /// As `axum::Router::route`, when `path` is not a valid route path (for example it lacks
    /// the leading `/`): a programming error, caught by the application as a failed `init`.
    pub fn route(&self, owner: impl Into<String>, path: &str, method_router: MethodRouter) {
        let router = Router::new().route(path, method_router);
        self.push(RouteContribution {
            owner: owner.into(),
            router,
            paths: vec![path.to_owned()],
            admin: false,
        });
    }

    /// Adds an admin endpoint (`path` under `/admin/`): the router serves it behind the same
    /// guard as its own `/admin/*` endpoints (the admin token, or an
    /// [`AccessPolicy`] granting [`Right::Admin`]), outside the application routes' limits
    /// and timeout, and not at all while admin access is off.
    ///
    /// # Panics
    ///
    /// When `path` does not start with `/admin/`, or as [`RouteRegistry::route`]: a
    /// programming error, caught by the application as a failed `init`.
    pub fn admin_route(&self, owner: impl Into<String>, path: &str, method_router: MethodRouter) {
        assert!(
            path.starts_with("/admin/"),
            "admin route {path:?} must be under /admin/"
        );
        let router = Router::new().route(path, method_router);
        self.push(RouteContribution {
            owner: owner.into(),
            router,
            paths: vec![path.to_owned()],
            admin: true,
        });
    }

    /// Adds a whole router whose paths are not recorded (it still serves them; they cannot be
    /// counted or toggled by name).
    pub fn add(&self, owner: impl Into<String>, router: Router) {
        self.add_with_paths(owner, router, Vec::new());
    }

    /// Adds a whole router together with the paths it serves.
    pub fn add_with_paths(&self, owner: impl Into<String>, router: Router, paths: Vec<String>) {
        self.push(RouteContribution {
            owner: owner.into(),
            router,
            paths,
            admin: false,
        });
    }

    /// Adds `owner`'s OpenAPI description of the routes it contributes (paths, their
    /// operations, and the schemas they refer to in `components`). The router merges every
    /// fragment into the spec it serves at `GET /admin/openapi.json`; an admin path's
    /// operations should declare the `admin_token` security scheme, which the router defines.
    pub fn document(&self, owner: impl Into<String>, fragment: utoipa::openapi::OpenApi) {
        lock(&self.documents).push((owner.into(), fragment));
        self.changed.send_modify(|generation| *generation += 1);
    }

    /// Every OpenAPI fragment with its owner, in the order they were added.
    pub fn documents(&self) -> Vec<(String, utoipa::openapi::OpenApi)> {
        lock(&self.documents).clone()
    }

    /// Removes every contribution and OpenAPI fragment of `owner`; returns how many
    /// contributions there were.
    pub fn remove(&self, owner: &str) -> usize {
        let (removed, undocumented) = {
            let mut contributions = lock(&self.contributions);
            let before = contributions.len();
            contributions.retain(|c| c.owner != owner);
            let mut documents = lock(&self.documents);
            let documented = documents.len();
            documents.retain(|(o, _)| o != owner);
            (before - contributions.len(), documented - documents.len())
        };
        if removed + undocumented > 0 {
            self.changed.send_modify(|generation| *generation += 1);
        }
        removed
    }

    /// Every contribution, in the order they were added.
    pub fn contributions(&self) -> Vec<RouteContribution> {
        lock(&self.contributions).clone()
    }

    /// Every recorded path, in the order added.
    pub fn paths(&self) -> Vec<String> {
        lock(&self.contributions)
            .iter()
            .flat_map(|c| c.paths.iter().cloned())
            .collect()
    }

    /// Increases with every change to the contributions.
    pub fn generation(&self) -> u64 {
        *self.changed.borrow()
    }

    /// A receiver that sees every change of [`RouteRegistry::generation`].
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.changed.subscribe()
    }

    fn push(&self, contribution: RouteContribution) {
        lock(&self.contributions).push(contribution);
        self.changed.send_modify(|generation| *generation += 1);
    }
}

/// The router the HTTP server serves, replaced whole when routes or middleware change.
///
/// The server takes a snapshot per request ([`ServedRouter::load`]), so a request that started
/// on one router finishes on it while new requests see the replacement.
pub struct ServedRouter {
    current: ArcSwap<Router>,
    generation: AtomicU64,
}

impl fmt::Debug for ServedRouter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServedRouter")
            .field("generation", &self.generation())
            .finish_non_exhaustive()
    }
}

impl ServedRouter {
    /// Serves `router` (generation 0).
    pub fn new(router: Router) -> Self {
        Self {
            current: ArcSwap::from_pointee(router),
            generation: AtomicU64::new(0),
        }
    }

    /// The router to serve the next request with.
    #[inline]
    pub fn load(&self) -> Arc<Router> {
        self.current.load_full()
    }

    /// Replaces the router; requests already running keep the one they started on.
    pub fn replace(&self, router: Router) {
        self.current.store(Arc::new(router));
        self.generation.fetch_add(1, Ordering::AcqRel);
    }

    /// How many times the router was replaced.
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }
}

// A poisoned lock means a panic elsewhere while pushing to a plain list; the list is intact.
/// A right a request may need: the admin endpoints, or seeing health check messages and
/// details.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Right {
    /// `/admin/*`.
    Admin,
    /// Check messages and details in `/health*` answers (`health.show_details:
    /// when_authorized`).
    HealthDetails,
}

impl Right {
    /// The snake_case name (`admin`, `health_details`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Admin => "admin",
            Self::HealthDetails => "health_details",
        }
    }
}

/// What an [`AccessPolicy`] says about a request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Decision {
    /// The request has the right.
    Granted,
    /// The request carries no credentials this policy knows (`401`).
    Unauthenticated,
    /// The request carries credentials that do not grant the right (`403`).
    Forbidden,
    /// This policy does not decide: another policy (or none) does.
    Abstain,
}

/// The access seam: who may use the admin endpoints and see health details.
///
/// The router checks its own admin bearer token first; when that does not grant the right,
/// it asks the policy registered as `Arc<dyn AccessPolicy>` in the service registry (the auth
/// module registers one that grants rights by role). With a policy registered the admin
/// endpoints are mounted even without an admin token, and the policy alone decides who uses
/// them.
///
/// A policy sees the request's headers (`Authorization`, `Cookie`) and must decide without
/// I/O, since it runs on every health probe: verify a signed token, read a cached session.
pub trait AccessPolicy: Send + Sync + fmt::Debug + 'static {
    /// Whether the request with these headers has `right`.
    fn decide(&self, right: Right, headers: &axum::http::HeaderMap) -> Decision;
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::routing::get;

    #[test]
    fn shared_registers_once_and_returns_the_same_registry() {
        let services = ServiceRegistry::new();
        let a = RouteRegistry::shared(&services);
        let b = RouteRegistry::shared(&services);
        assert!(Arc::ptr_eq(&a, &b));
    }

    #[test]
    fn contributions_are_kept_by_owner_and_bump_the_generation() {
        let routes = RouteRegistry::new();
        let changes = routes.subscribe();
        routes.route("orders", "/orders", get(|| async { "" }));
        routes.add("legacy", Router::new().route("/old", get(|| async { "" })));
        assert_eq!(routes.generation(), 2);
        assert!(changes.has_changed().unwrap_or(false));
        assert_eq!(routes.paths(), ["/orders"]);
        assert_eq!(routes.remove("orders"), 1);
        assert_eq!(routes.remove("orders"), 0);
        assert_eq!(routes.generation(), 3);
        let owners: Vec<String> = routes
            .contributions()
            .iter()
            .map(|c| c.owner().to_owned())
            .collect();
        assert_eq!(owners, ["legacy"]);
    }

    #[test]
    fn admin_contributions_are_flagged_and_must_be_under_admin() {
        let routes = RouteRegistry::new();
        routes.admin_route("fleet", "/admin/fleet", get(|| async { "" }));
        routes.route("orders", "/orders", get(|| async { "" }));
        let flags: Vec<(String, bool)> = routes
            .contributions()
            .iter()
            .map(|c| (c.owner().to_owned(), c.is_admin()))
            .collect();
        assert_eq!(
            flags,
            [("fleet".to_owned(), true), ("orders".to_owned(), false)]
        );
        let outside = std::panic::catch_unwind(|| {
            RouteRegistry::new().admin_route("x", "/fleet", get(|| async { "" }));
        });
        assert!(outside.is_err());
    }

    #[test]
    fn documents_are_kept_by_owner_and_removed_with_its_routes() {
        let routes = RouteRegistry::new();
        let fragment = utoipa::openapi::OpenApiBuilder::new().build();
        routes.route("orders", "/orders", get(|| async { "" }));
        routes.document("orders", fragment.clone());
        routes.document("legacy", fragment);
        assert_eq!(routes.generation(), 3);
        assert_eq!(routes.remove("orders"), 1);
        let owners: Vec<String> = routes.documents().into_iter().map(|(o, _)| o).collect();
        assert_eq!(owners, ["legacy"]);
        assert_eq!(routes.remove("legacy"), 0);
        assert!(routes.documents().is_empty());
        assert_eq!(routes.generation(), 5);
    }

    #[test]
    fn replacing_the_served_router_counts_generations() {
        let served = ServedRouter::new(Router::new());
        let before = served.load();
        served.replace(Router::new().route("/", get(|| async { "" })));
        assert_eq!(served.generation(), 1);
        assert!(!Arc::ptr_eq(&before, &served.load()));
    }
}
