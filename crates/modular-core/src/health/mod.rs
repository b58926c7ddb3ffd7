//! Health aggregation (DESIGN.md §3.5): parallel checks with per-check timeouts, panic
//! isolation, a cache with single-flight refresh, and distinct readiness, liveness and startup
//! answers.
//!
//! - A module implements [`HealthProvider`] (or uses [`from_fn`] / [`static_provider`]) and
//!   returns [`HealthReport`]s; a failure is a [`HealthError`] (`Temporary` reports degraded).
//! - A [`HealthAggregator`] holds the registrations ([`ProviderOptions`]: timeout, optional,
//!   probes, tags, isolation) and answers [`AggregatedHealth`]. A module reads the timeout and
//!   optionality of its own registration from its section's `health` key ([`ProviderConfig`]),
//!   and replaces them on reload with [`HealthAggregator::set_provider_options`].
//! - [`render`] turns an answer into the native JSON, the IETF `application/health+json`
//!   format or the kube-apiserver text, applying the [`DetailsPolicy`].
//!
//! Semantics, HTTP shapes and the design choices are in `docs/health.md`.
//!
//! ```
//! use std::sync::Arc;
//!
//! use modular_core::events::EventBus;
//! use modular_core::health::{
//!     self, HealthAggregator, HealthError, HealthOptions, HealthStatus, Probe, ProviderOptions,
//! };
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! let aggregator = HealthAggregator::new(HealthOptions::default(), EventBus::new());
//! aggregator.register_health_provider(
//!     "db",
//!     Arc::new(health::static_provider(HealthStatus::Healthy)),
//!     ProviderOptions::default(),
//! );
//! aggregator.register_health_provider(
//!     "cache",
//!     Arc::new(health::from_fn(|| async { Err::<(), _>(HealthError::failed("connection refused")) })),
//!     ProviderOptions::default().with_optional(true),
//! );
//! aggregator.set_started(true);
//!
//! let answer = aggregator.check().await;
//! assert_eq!(answer.health, HealthStatus::Unhealthy); // the optional cache counts here
//! assert_eq!(answer.readiness, HealthStatus::Healthy); // but never fails readiness
//! assert_eq!(answer.status_code(Probe::Readiness), 200);
//!
//! let text = health::render::render_kube(&answer, Probe::Readiness, &Default::default(), false);
//! assert_eq!(text.body, "ok");
//! # }
//! ```

mod aggregator;
mod config;
mod fold;
mod options;
mod provider;
pub mod render;
mod runtime;
mod types;

pub use aggregator::HealthAggregator;
pub use config::{MAX_PROVIDER_TIMEOUT, ProviderConfig};
pub use options::{DEFAULT_PROVIDER_TIMEOUT, HealthOptions, Isolation, Probes, ProviderOptions};
pub use provider::{
    FnProvider, HealthContext, HealthProvider, IntoHealthReports, StaticProvider, from_fn,
    static_provider,
};
pub use render::DetailsPolicy;
pub use runtime::{RUNTIME_COMPONENT, RUNTIME_MODULE};
pub use types::{AggregatedHealth, HealthError, HealthReport, HealthStatus, Probe};
