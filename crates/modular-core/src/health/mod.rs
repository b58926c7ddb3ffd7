//! Health aggregation (DESIGN.md §3.5). STUB: the API contract only; being implemented.
#![allow(missing_docs, dead_code, unused_variables)]

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use crate::events::EventBus;

/// healthy < degraded < unhealthy; unknown folds as unhealthy.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HealthStatus {
    Healthy,
    Degraded,
    Unhealthy,
    Unknown,
}

#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct HealthReport {
    pub module: String,
    pub component: String,
    pub status: HealthStatus,
    pub message: String,
    pub optional: bool,
    pub details: serde_json::Map<String, serde_json::Value>,
}

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum HealthError {
    #[error("temporary: {0}")]
    Temporary(String),
    #[error("{0}")]
    Failed(String),
}

/// What a check may use: cancellation and the deadline.
#[derive(Clone, Debug, Default)]
pub struct HealthContext {}

#[async_trait::async_trait]
pub trait HealthProvider: Send + Sync + 'static {
    async fn health_check(&self, ctx: &HealthContext) -> Result<Vec<HealthReport>, HealthError>;
}

/// Which probes a provider counts for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Probes {
    pub readiness: bool,
    pub liveness: bool,
    pub startup: bool,
}

#[derive(Clone, Debug)]
pub struct ProviderOptions {
    pub timeout: Duration,
    pub optional: bool,
    pub probes: Probes,
    pub tags: Vec<String>,
}

impl Default for ProviderOptions {
    fn default() -> Self {
        Self {
            timeout: Duration::from_millis(200),
            optional: false,
            probes: Probes { readiness: true, liveness: false, startup: false },
            tags: Vec::new(),
        }
    }
}

#[derive(Clone, Debug)]
pub struct HealthOptions {
    pub cache_ttl: Duration,
    pub default_timeout: Duration,
    pub background_refresh: Option<Duration>,
    pub runtime_stall_threshold: Duration,
}

impl Default for HealthOptions {
    fn default() -> Self {
        Self {
            cache_ttl: Duration::from_millis(250),
            default_timeout: Duration::from_millis(200),
            background_refresh: None,
            runtime_stall_threshold: Duration::from_secs(1),
        }
    }
}

#[derive(Clone, Debug, serde::Serialize)]
pub struct AggregatedHealth {
    pub health: HealthStatus,
    pub readiness: HealthStatus,
    pub liveness: HealthStatus,
    pub startup: HealthStatus,
    pub reports: Vec<HealthReport>,
    pub config_version: u64,
}

#[derive(Debug)]
pub struct HealthAggregator {}

impl HealthAggregator {
    pub fn new(options: HealthOptions, events: EventBus) -> Arc<Self> {
        Arc::new(Self {})
    }
    pub fn register(&self, name: &str, provider: Arc<dyn HealthProvider>, options: ProviderOptions) {}
    pub fn register_health_provider(&self, name: &str, provider: Arc<dyn HealthProvider>, optional: bool) {}
    pub fn deregister(&self, name: &str) {}
    pub fn set_started(&self, started: bool) {}
    pub fn set_shutting_down(&self, shutting_down: bool) {}
    pub fn set_config_version(&self, version: u64) {}
    /// A synthetic component (no provider), e.g. `reload`/`circuit_breaker` while the breaker is open.
    pub fn set_component(&self, module: &str, component: &str, status: HealthStatus, message: String, optional: bool) {}
    pub fn clear_component(&self, module: &str, component: &str) {}
    pub async fn check(&self) -> Arc<AggregatedHealth> {
        self.force_refresh().await
    }
    pub async fn force_refresh(&self) -> Arc<AggregatedHealth> {
        Arc::new(AggregatedHealth {
            health: HealthStatus::Healthy,
            readiness: HealthStatus::Healthy,
            liveness: HealthStatus::Healthy,
            startup: HealthStatus::Healthy,
            reports: Vec::new(),
            config_version: 0,
        })
    }
    pub fn start_background(self: &Arc<Self>, cancel: tokio_util::sync::CancellationToken, tracker: &tokio_util::task::TaskTracker) {}
}

/// Extra status sources the application feeds in (config pending-restart, reload breaker).
pub type StatusMap = BTreeMap<String, HealthStatus>;
