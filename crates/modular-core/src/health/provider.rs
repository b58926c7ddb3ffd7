//! The provider contract, the context a check receives, and helpers for simple providers.

use std::fmt;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::options::DEFAULT_PROVIDER_TIMEOUT;
use super::types::{HealthError, HealthReport, HealthStatus};

/// A source of health reports, usually one per module.
///
/// The aggregator runs every provider concurrently, enforces the registration's timeout by
/// dropping the check's future at the deadline, and turns a panic into an `unhealthy` report,
/// so an implementation only has to check its resource. Returning no report yields one healthy
/// report named after the registration.
///
/// ```
/// use modular_core::health::{HealthContext, HealthError, HealthProvider, HealthReport};
///
/// struct Pool;
///
/// #[async_trait::async_trait]
/// impl HealthProvider for Pool {
///     async fn health_check(&self, ctx: &HealthContext) -> Result<Vec<HealthReport>, HealthError> {
///         let idle = 3;
///         Ok(vec![HealthReport::healthy(ctx.name(), "pool").with_detail("idle", idle)])
///     }
/// }
/// ```
#[async_trait::async_trait]
pub trait HealthProvider: Send + Sync + 'static {
    /// Checks the resource. Should finish well within `ctx.remaining()`.
    async fn health_check(&self, ctx: &HealthContext) -> Result<Vec<HealthReport>, HealthError>;
}

/// What a check may use: the registration name, the deadline and a cancellation token
/// (cancelled once the evaluation is over, for work a provider hands to other tasks).
#[derive(Clone, Debug)]
pub struct HealthContext {
    name: Arc<str>,
    timeout: Duration,
    deadline: Instant,
    // Shared by every check of an evaluation: cloning an `Arc` is cheaper than cloning a
    // token, which locks its tree node.
    cancel: Arc<CancellationToken>,
}

impl Default for HealthContext {
    fn default() -> Self {
        Self::new("", DEFAULT_PROVIDER_TIMEOUT)
    }
}

impl HealthContext {
    /// A context for the provider registered as `name`, with a deadline `timeout` from now.
    pub fn new(name: impl Into<Arc<str>>, timeout: Duration) -> Self {
        Self::starting_at(
            name.into(),
            timeout,
            Instant::now(),
            Arc::new(CancellationToken::new()),
        )
    }

    pub(crate) fn starting_at(
        name: Arc<str>,
        timeout: Duration,
        start: Instant,
        cancel: Arc<CancellationToken>,
    ) -> Self {
        Self {
            name,
            timeout,
            deadline: crate::util::deadline(start, timeout),
            cancel,
        }
    }

    /// Replaces the cancellation token.
    #[must_use]
    pub fn with_cancellation(mut self, cancel: CancellationToken) -> Self {
        self.cancel = Arc::new(cancel);
        self
    }

    /// The registration name (usually the module's name).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The registration's timeout.
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// When the aggregator stops waiting for this check.
    pub fn deadline(&self) -> Instant {
        self.deadline
    }

    /// Time left until the deadline (zero once passed).
    pub fn remaining(&self) -> Duration {
        self.deadline.saturating_duration_since(Instant::now())
    }

    /// The evaluation's cancellation token.
    pub fn cancellation(&self) -> &CancellationToken {
        &self.cancel
    }

    /// Whether the evaluation is over.
    pub fn is_cancelled(&self) -> bool {
        self.cancel.is_cancelled()
    }

    /// A report named after the registration (`module` and `component` both set to the name).
    pub fn report(&self, status: HealthStatus) -> HealthReport {
        HealthReport::new(self.name(), self.name(), status)
    }
}

/// What a simple provider's closure may return: reports, one report, a bare status, `()`
/// (healthy), or a `Result` of any of these.
pub trait IntoHealthReports {
    /// Converts into the provider result; `ctx` names reports built from a bare status.
    fn into_health_reports(self, ctx: &HealthContext) -> Result<Vec<HealthReport>, HealthError>;
}

impl IntoHealthReports for Vec<HealthReport> {
    fn into_health_reports(self, _ctx: &HealthContext) -> Result<Vec<HealthReport>, HealthError> {
        Ok(self)
    }
}

impl IntoHealthReports for HealthReport {
    fn into_health_reports(self, _ctx: &HealthContext) -> Result<Vec<HealthReport>, HealthError> {
        Ok(vec![self])
    }
}

impl IntoHealthReports for HealthStatus {
    fn into_health_reports(self, ctx: &HealthContext) -> Result<Vec<HealthReport>, HealthError> {
        Ok(vec![ctx.report(self)])
    }
}

impl IntoHealthReports for () {
    fn into_health_reports(self, _ctx: &HealthContext) -> Result<Vec<HealthReport>, HealthError> {
        Ok(Vec::new())
    }
}

impl<T, E> IntoHealthReports for Result<T, E>
where
    T: IntoHealthReports,
    E: Into<HealthError>,
{
    fn into_health_reports(self, ctx: &HealthContext) -> Result<Vec<HealthReport>, HealthError> {
        self.map_err(Into::into)?.into_health_reports(ctx)
    }
}

/// A provider built from an async closure; see [`from_fn`].
pub struct FnProvider<F> {
    check: F,
}

impl<F> fmt::Debug for FnProvider<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FnProvider").finish_non_exhaustive()
    }
}

/// A provider from an async closure returning anything [`IntoHealthReports`] accepts.
///
/// ```
/// use modular_core::health::{self, HealthError, HealthStatus};
///
/// let ping = health::from_fn(|| async {
///     let reachable = true;
///     if reachable { Ok(HealthStatus::Healthy) } else { Err(HealthError::failed("unreachable")) }
/// });
/// # let _ = ping;
/// ```
pub fn from_fn<F, Fut>(check: F) -> FnProvider<F>
where
    F: Fn() -> Fut + Send + Sync + 'static,
    Fut: Future + Send + 'static,
    Fut::Output: IntoHealthReports,
{
    FnProvider { check }
}

#[async_trait::async_trait]
impl<F, Fut> HealthProvider for FnProvider<F>
where
    F: Fn() -> Fut + Send + Sync + 'static,
    Fut: Future + Send + 'static,
    Fut::Output: IntoHealthReports,
{
    async fn health_check(&self, ctx: &HealthContext) -> Result<Vec<HealthReport>, HealthError> {
        (self.check)().await.into_health_reports(ctx)
    }
}

/// A provider that always answers the same status; see [`static_provider`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StaticProvider {
    status: HealthStatus,
    message: String,
}

impl StaticProvider {
    /// Sets the message of the report.
    #[must_use]
    pub fn with_message(mut self, message: impl Into<String>) -> Self {
        self.message = message.into();
        self
    }
}

/// A provider that always reports `status`, named after its registration.
pub fn static_provider(status: HealthStatus) -> StaticProvider {
    StaticProvider {
        status,
        message: String::new(),
    }
}

#[async_trait::async_trait]
impl HealthProvider for StaticProvider {
    async fn health_check(&self, ctx: &HealthContext) -> Result<Vec<HealthReport>, HealthError> {
        Ok(vec![
            ctx.report(self.status).with_message(self.message.clone()),
        ])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_health_timeout_of_duration_max_is_a_far_deadline_not_a_panic() {
        let ctx = HealthContext::new("cache", Duration::MAX);
        let provider = from_fn(|| async { HealthStatus::Healthy });
        let reports = provider.health_check(&ctx).await.unwrap();
        assert_eq!(reports[0].status, HealthStatus::Healthy);
    }

    #[tokio::test]
    async fn fn_providers_name_bare_statuses_after_the_registration() {
        let provider = from_fn(|| async { HealthStatus::Degraded });
        let ctx = HealthContext::new("cache", Duration::from_millis(50));
        let reports = provider.health_check(&ctx).await.unwrap();
        assert_eq!(reports.len(), 1);
        assert_eq!(reports[0].module, "cache");
        assert_eq!(reports[0].component, "cache");
        assert_eq!(reports[0].status, HealthStatus::Degraded);
    }

    #[tokio::test]
    async fn fn_providers_pass_errors_through() {
        let provider = from_fn(|| async { Err::<(), _>(HealthError::temporary("warming up")) });
        let error = provider
            .health_check(&HealthContext::default())
            .await
            .unwrap_err();
        assert!(error.is_temporary());
    }

    #[tokio::test]
    async fn static_providers_repeat_their_status_and_message() {
        let provider = static_provider(HealthStatus::Unhealthy).with_message("maintenance");
        let reports = provider
            .health_check(&HealthContext::new("db", Duration::from_millis(10)))
            .await
            .unwrap();
        assert_eq!(reports[0].status, HealthStatus::Unhealthy);
        assert_eq!(reports[0].message, "maintenance");
    }
}
