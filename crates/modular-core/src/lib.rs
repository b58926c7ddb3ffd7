//! The core of **modular**: applications built from plug-in modules, with layered
//! configuration, dynamic reload and health aggregation.
//!
//! # A guided tour
//!
//! - [`Application`] collects [`Module`]s and config sources with a builder, initialises the
//!   modules in dependency order ([`Application::builder`] … `build().await`), starts them,
//!   waits for SIGINT/SIGTERM and stops them in reverse within a shutdown deadline
//!   ([`Application::run`]).
//! - A [`Module`] has one required method, `name`; `init` receives an [`InitContext`] to read its
//!   typed config section ([`InitContext::config`] returns a lock-free [`ConfigHandle`]),
//!   register services in the typed [`ServiceRegistry`], and register its [`Reloadable`] and
//!   [`health::HealthProvider`]s.
//! - [`config`]: sources layered with figment (defaults < YAML/TOML/JSON files < `MODULAR_`
//!   environment < runtime overrides); errors name the key path and the source;
//!   [`Secret`] never prints itself; `#[derive(DynamicConfig)]` gives each config type a
//!   field-by-field diff ([`ConfigChange`], [`ConfigDiff`]) and a validation hook.
//! - [`reload`]: the [`reload::ReloadOrchestrator`] runs every trigger (file watcher, SIGHUP,
//!   admin API, [`Application::reload`], [`Application::set_override`]) through one pipeline:
//!   load, validate, diff, classify static changes, plan in dependency order, prepare every
//!   module's new state aside (two-phase, [`PreparedReload`]) with timeouts and caught panics,
//!   drop every prepared state on the first failure, or commit them all and publish every
//!   section in one atomic swap ([`config::ConfigSnapshot`]), and revert when the health gate
//!   sees readiness get worse. A circuit breaker stops reload storms.
//! - [`health`]: the [`health::HealthAggregator`] polls every provider concurrently with
//!   per-provider timeouts, isolates panics, caches answers with single-flight refresh, and folds
//!   readiness, liveness and startup; [`health::render`] produces the HTTP answers.
//! - [`events`]: CloudEvents 1.0 on an in-process bus where slow observers never block
//!   publishers.
//! - Seams between modules that do not depend on each other: [`live::Live`] (a resource a
//!   reload swaps, such as a database pool, registered by name), [`kv::KeyValue`] (get, set
//!   with TTL, delete, atomic increment; the cache module implements it), [`tls`] (rustls's
//!   `ResolvesServerCert` in the registry), `http::AccessPolicy` (who may use the admin
//!   endpoints and see health details) and [`metrics`] (the `metrics` facade and the
//!   process's Prometheus exporter).
//!
//! ```
//! use modular_core::{Application, BoxError, InitContext, Module};
//!
//! struct Hello;
//!
//! #[modular_core::async_trait]
//! impl Module for Hello {
//!     fn name(&self) -> &str { "hello" }
//!     async fn init(&mut self, ctx: &mut InitContext<'_>) -> Result<(), BoxError> {
//!         ctx.services().register(std::sync::Arc::new(String::from("hi")));
//!         Ok(())
//!     }
//! }
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), modular_core::Error> {
//! let mut app = Application::builder()
//!     .module(Hello)
//!     .with_dynamic_reload()
//!     .with_health_aggregator()
//!     .handle_signals(false)
//!     .build()
//!     .await?;
//! app.start().await?;
//! assert_eq!(app.services().get::<String>().as_deref().map(String::as_str), Some("hi"));
//! app.stop().await?;
//! # Ok(())
//! # }
//! ```
//!
//! The guides in `docs/` explain the design: `architecture.md`, `reload.md`, `health.md`, and
//! [`guide::writing_a_module`], which is compiled as a doc test.
//!
//! # Feature flags
//!
//! - `http` (off by default): `http::RouteRegistry` and `http::ServedRouter`, the seam
//!   through which modules contribute axum routes to the router module without depending on it,
//!   and their OpenAPI fragments (`http::RouteRegistry::document`). Turns on `openapi`.
//! - `openapi` (off by default): `utoipa::ToSchema` on the types the HTTP endpoints answer
//!   (`ReloadOutcome`, `reload::HistoryEntry`, `health::HealthStatus`, ...).

// The derive names `::modular_core`; this lets core derive it for its own config sections.
extern crate self as modular_core;

pub mod app;
pub mod config;
mod crypto;
mod error;
pub mod events;
pub mod health;
#[cfg(feature = "http")]
pub mod http;
pub mod kv;
pub mod live;
pub mod metrics;
mod module;
pub mod registry;
pub mod reload;
pub mod tls;
mod util;

pub use app::{Application, ApplicationBuilder};
pub use async_trait::async_trait;
pub use config::{
    ChangeType, ConfigChange, ConfigDiff, ConfigHandle, ConfigSnapshot, DynamicConfig, FieldError,
    Secret,
};
pub use crypto::install_default_crypto_provider;
pub use error::{BoxError, Error, Phase};
/// Serde helpers for human-readable durations (`250ms`, `2m`): `#[serde(with =
/// "modular_core::humantime_serde")]`, so a module needs no dependency of its own for them.
pub use humantime_serde;
pub use modular_macros::DynamicConfig;
pub use module::{InitContext, Module, ModuleContext};
pub use registry::ServiceRegistry;
pub use reload::{
    PreparedReload, ReloadContext, ReloadOutcome, ReloadStatus, ReloadTrigger, Reloadable,
};
pub use util::panic_message;

/// Guides from `docs/`, compiled and run as doc tests so they cannot drift from the code.
pub mod guide {
    #[doc = include_str!("../../../docs/writing-a-module.md")]
    pub mod writing_a_module {}
}
