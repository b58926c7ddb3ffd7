//! The health check: the persistence database, overdue and failing jobs, the queue.

use modular_core::health::{
    HealthContext, HealthError, HealthProvider, HealthReport, HealthStatus,
};
use serde_json::{Map, json};

use crate::module::NAME;
use crate::scheduler::Scheduler;

/// One report, component `jobs` (readiness):
///
/// - `unhealthy` when the persistence database (with `persistence.connection`) does not
///   answer a round trip: runs cannot be claimed, so none start;
/// - `degraded` when a job is overdue (its next occurrence passed more than its `tolerance`
///   ago without running), when the queue is saturated (a due run found it full, until it
///   drains), or when a job failed `failure_threshold` times in a row;
/// - `healthy` otherwise.
///
/// Details: `jobs`, `workers`, `queue_depth`, `queue_capacity`, `overdue` (name →
/// lateness in ms), `failing` (name → consecutive failures), `persistence` (driver, error).
pub(crate) struct SchedulerHealth {
    scheduler: Scheduler,
}

impl SchedulerHealth {
    pub(crate) fn new(scheduler: Scheduler) -> Self {
        Self { scheduler }
    }
}

#[async_trait::async_trait]
impl HealthProvider for SchedulerHealth {
    async fn health_check(&self, _ctx: &HealthContext) -> Result<Vec<HealthReport>, HealthError> {
        let store = self.scheduler.ping_store().await;
        let view = self.scheduler.health_view();
        let mut details = Map::new();
        details.insert("jobs".to_owned(), json!(view.jobs));
        details.insert("workers".to_owned(), json!(view.workers));
        details.insert("queue_depth".to_owned(), json!(view.queued));
        details.insert("queue_capacity".to_owned(), json!(view.capacity));
        details.insert("failure_threshold".to_owned(), json!(view.threshold));
        let overdue: Map<String, serde_json::Value> = view
            .overdue
            .iter()
            .map(|(n, late)| {
                (
                    n.clone(),
                    json!(u64::try_from(late.as_millis()).unwrap_or(u64::MAX)),
                )
            })
            .collect();
        let failing: Map<String, serde_json::Value> = view
            .failing
            .iter()
            .map(|(n, f)| (n.clone(), json!(f)))
            .collect();
        details.insert("overdue".to_owned(), serde_json::Value::Object(overdue));
        details.insert("failing".to_owned(), serde_json::Value::Object(failing));
        if let Some((_, _, driver)) = self.scheduler.store_state() {
            details.insert(
                "persistence".to_owned(),
                json!({ "driver": driver, "error": store.as_ref().and_then(|r| r.as_ref().err()) }),
            );
        }
        let (status, message) = if let Some(Err(error)) = &store {
            (
                HealthStatus::Unhealthy,
                format!("the persistence database is unreachable: {error}"),
            )
        } else if !view.overdue.is_empty() {
            let names: Vec<&str> = view.overdue.iter().map(|(n, _)| n.as_str()).collect();
            (
                HealthStatus::Degraded,
                format!("jobs overdue: {}", names.join(", ")),
            )
        } else if !view.failing.is_empty() {
            let names: Vec<&str> = view.failing.iter().map(|(n, _)| n.as_str()).collect();
            (
                HealthStatus::Degraded,
                format!(
                    "jobs failed {} or more times in a row: {}",
                    view.threshold,
                    names.join(", ")
                ),
            )
        } else if view.saturated {
            (
                HealthStatus::Degraded,
                format!(
                    "the run queue is saturated ({} waiting, capacity {})",
                    view.queued, view.capacity
                ),
            )
        } else {
            (HealthStatus::Healthy, format!("{} jobs", view.jobs))
        };
        Ok(vec![
            HealthReport::new(NAME, "jobs", status)
                .with_message(message)
                .with_details(details),
        ])
    }
}
