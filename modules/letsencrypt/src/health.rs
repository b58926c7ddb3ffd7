//! The health check: one report per configured certificate (component = its name), read
//! from memory (the renewal task keeps the state; the check never calls the CA).
//!
//! - `healthy`: served and valid beyond `renew_before`; or inside the renewal window while
//!   no attempt has failed yet (the renewal is under way);
//! - `degraded`: inside the renewal window (or missing a newly configured domain) with the
//!   last attempt failed; or never issued while the startup grace runs;
//! - `unhealthy`: expired, or never issued once `startup_grace` has passed since start.
//!
//! Details: `domains`, `names`, `serial`, `issuer`, `not_after`, `days_left`, `failures`,
//! `last_error`, `ordering`. Without certificates one `certificates` report is healthy.

use chrono::Utc;
use modular_core::health::{
    HealthContext, HealthError, HealthProvider, HealthReport, HealthStatus,
};
use serde_json::{Map, json};

use crate::manager::{LetsEncrypt, need, renewal_at};
use crate::module::NAME;

pub(crate) struct CertificateHealth {
    pub(crate) service: LetsEncrypt,
}

#[async_trait::async_trait]
impl HealthProvider for CertificateHealth {
    async fn health_check(&self, _ctx: &HealthContext) -> Result<Vec<HealthReport>, HealthError> {
        let config = self.service.config();
        let now = Utc::now();
        let in_grace = now - self.service.inner.started_at
            < chrono::Duration::from_std(config.startup_grace).unwrap_or(chrono::Duration::MAX);
        let reports = self.service.with_states(|states| {
            states
                .iter()
                .map(|(name, state)| {
                    let mut details = Map::new();
                    details.insert("domains".to_owned(), json!(state.domains));
                    details.insert("failures".to_owned(), json!(state.failures));
                    details.insert("last_error".to_owned(), json!(state.last_error));
                    details.insert("ordering".to_owned(), json!(state.ordering));
                    let failed = state.last_error.is_some();
                    let (status, message) = match &state.issued {
                        None if in_grace => (
                            HealthStatus::Degraded,
                            "not issued yet (within the startup grace)".to_owned(),
                        ),
                        None => (
                            HealthStatus::Unhealthy,
                            format!(
                                "never issued{}",
                                state
                                    .last_error
                                    .as_deref()
                                    .map(|e| format!(": {e}"))
                                    .unwrap_or_default()
                            ),
                        ),
                        Some(issued) => {
                            crate::metrics::expiry(name, issued);
                            details.insert("names".to_owned(), json!(issued.names));
                            details.insert("serial".to_owned(), json!(issued.serial));
                            details.insert("issuer".to_owned(), json!(issued.issuer));
                            details.insert(
                                "not_after".to_owned(),
                                json!(issued.not_after.to_rfc3339()),
                            );
                            details.insert(
                                "days_left".to_owned(),
                                json!((issued.not_after - now).num_days()),
                            );
                            if issued.not_after <= now {
                                (
                                    HealthStatus::Unhealthy,
                                    format!("expired at {}", issued.not_after.to_rfc3339()),
                                )
                            } else if need(state, config.renew_before, now).is_some() && failed {
                                (
                                    HealthStatus::Degraded,
                                    format!(
                                        "renewal failed {} time(s), serving the current certificate until {}",
                                        state.failures,
                                        issued.not_after.to_rfc3339()
                                    ),
                                )
                            } else if now >= renewal_at(issued, config.renew_before) {
                                (
                                    HealthStatus::Healthy,
                                    format!("valid until {}, renewal due", issued.not_after.to_rfc3339()),
                                )
                            } else {
                                (
                                    HealthStatus::Healthy,
                                    format!("valid until {}", issued.not_after.to_rfc3339()),
                                )
                            }
                        }
                    };
                    HealthReport::new(NAME, name.clone(), status)
                        .with_message(message)
                        .with_details(details)
                })
                .collect::<Vec<_>>()
        });
        if reports.is_empty() {
            return Ok(vec![
                HealthReport::new(NAME, "certificates", HealthStatus::Healthy)
                    .with_message("no certificates configured"),
            ]);
        }
        Ok(reports)
    }
}
