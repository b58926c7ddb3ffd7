//! Step 9, the health gate: after a commit the worker watches readiness for the gate window,
//! between requests, never while a caller waits. A reload that arrives during the window runs
//! at once and supersedes the window with its own baseline. If readiness becomes worse than it
//! was just before the reload, the previous version is committed again through the same
//! pipeline (trigger `health_gate`), `reload.reverted` is emitted, an override that caused the
//! reverted version is withdrawn, and `/admin/config` and the `config` health component say
//! that the sources now differ from the running config.

use std::collections::BTreeMap;

use serde_json::{Value, json};
use tokio::time::Instant;

use super::load::CandidateSource;
use crate::events::types;
use crate::health::HealthStatus;
use crate::reload::orchestrator::{RevertedVersion, lock};
use crate::reload::outcome::ReloadStatus;
use crate::reload::worker::Worker;
use crate::reload::{ReloadOptions, ReloadTrigger};

/// The window of one applied reload.
#[derive(Debug)]
pub(crate) struct ActiveGate {
    pub(crate) before: HealthStatus,
    pub(crate) previous_version: u64,
    pub(crate) version: u64,
    pub(crate) deadline: Instant,
    pub(crate) next_check: Instant,
    /// The overrides before the reload, when an override caused it (withdrawn on revert).
    pub(crate) overrides_before: Option<BTreeMap<String, Value>>,
}

impl ActiveGate {
    pub(crate) fn new(
        before: HealthStatus,
        previous_version: u64,
        version: u64,
        options: &ReloadOptions,
    ) -> Self {
        let now = Instant::now();
        Self {
            before,
            previous_version,
            version,
            deadline: crate::util::deadline(now, options.health_gate_window),
            // The first look is as soon as no request is waiting.
            next_check: now,
            overrides_before: None,
        }
    }
}

impl Worker {
    /// Readiness just before a reload, fresh (not cached), when the gate is on.
    pub(crate) async fn gate_baseline(&self, trigger: &ReloadTrigger) -> Option<HealthStatus> {
        match (
            &self.shared.health,
            self.options.health_gate && *trigger != ReloadTrigger::HealthGate,
        ) {
            (Some(health), true) => Some(health.force_refresh().await.readiness),
            _ => None,
        }
    }

    /// One look at readiness for the open window: revert, pass, or look again later.
    pub(crate) async fn check_gate(&mut self) {
        let Some(health) = self.shared.health.clone() else {
            self.gate = None;
            return;
        };
        if self.gate.is_none() {
            return;
        }
        let now_health = health.force_refresh().await;
        // Shutting down turns readiness unhealthy on purpose; that is no regression.
        if self.shared.cancel.is_cancelled() || now_health.shutting_down {
            self.gate = None;
            return;
        }
        let Some(gate) = self.gate.as_mut() else {
            return;
        };
        if now_health.readiness > gate.before {
            let reason = format!(
                "readiness went from {:?} to {:?} after version {}",
                gate.before, now_health.readiness, gate.version
            )
            .to_lowercase();
            if let Some(gate) = self.gate.take() {
                self.revert(gate, reason).await;
            }
            return;
        }
        let now = Instant::now();
        if now >= gate.deadline {
            let version = gate.version;
            let window_ms = self.options.health_gate_window.as_millis() as u64;
            self.gate = None;
            self.gate_verdict(version, "passed", None);
            self.shared.emit(
                types::RELOAD_GATE_PASSED,
                json!({ "version": version, "window_ms": window_ms }),
            );
            return;
        }
        gate.next_check =
            crate::util::deadline(now, self.options.health_gate_interval).min(gate.deadline);
    }

    async fn revert(&mut self, gate: ActiveGate, reason: String) {
        tracing::warn!(version = gate.version, %reason, "health gate: reverting reload");
        let sections = lock(&self.shared.history)
            .get(gate.previous_version)
            .map(|e| e.sections.clone());
        let Some(sections) = sections else {
            self.gate_verdict(gate.version, "expired", Some(&reason));
            return;
        };
        if let Some(overrides) = &gate.overrides_before {
            // The override that caused the reverted version is withdrawn with it.
            self.shared.store.set_overrides(overrides.clone());
        }
        let (outcome, _) = Box::pin(self.pipeline(
            ReloadTrigger::HealthGate,
            CandidateSource::Sections(sections),
            false,
        ))
        .await;
        if outcome.status != ReloadStatus::Applied {
            tracing::error!(version = gate.version, status = outcome.status.as_str(), error = ?outcome.error, "health gate: the revert did not apply");
            self.gate_verdict(gate.version, "revert_failed", Some(&reason));
            return;
        }
        self.gate_verdict(gate.version, "reverted", Some(&reason));
        let sources_differ = self.sources_differ();
        *lock(&self.shared.last_reverted) = Some(RevertedVersion {
            version: gate.version,
            reverted_to: outcome.version,
            at: chrono::Utc::now(),
            reason: reason.clone(),
            sources_differ,
        });
        if let Some(health) = &self.shared.health {
            if sources_differ {
                health.set_component(
                    "config",
                    "reverted",
                    HealthStatus::Degraded,
                    format!(
                        "version {} was reverted by the health gate ({reason}); the config sources still differ from the running config (version {})",
                        gate.version, outcome.version
                    ),
                    true,
                );
            } else {
                health.clear_component("config", "reverted");
            }
        }
        // Announced last: an observer of the event finds the revert recorded everywhere.
        self.shared.emit(
            types::RELOAD_REVERTED,
            json!({
                "from_version": gate.version,
                "to_version": outcome.version,
                "reason": reason,
            }),
        );
    }

    /// Whether the sources as they are now would change the running config.
    fn sources_differ(&self) -> bool {
        let store = std::sync::Arc::clone(&self.shared.store);
        match super::load::load(&store, CandidateSource::Sources(None))
            .and_then(|loaded| super::validate::validate(&store, loaded))
        {
            Ok(candidate) => super::diff::diff(&candidate).has_changes(),
            // Sources that no longer even validate differ from the running config too.
            Err(_) => true,
        }
    }

    /// Writes the gate's verdict into the history entry of `version`.
    pub(crate) fn gate_verdict(&self, version: u64, verdict: &str, reason: Option<&str>) {
        tracing::debug!(version, verdict, "health gate verdict");
        lock(&self.shared.history).set_gate(version, verdict, reason);
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_health_gate_window_of_duration_max_is_a_far_deadline_not_a_panic() {
        let options = ReloadOptions {
            health_gate_window: Duration::MAX,
            ..ReloadOptions::default()
        };
        let gate = ActiveGate::new(HealthStatus::Healthy, 1, 2, &options);
        assert!(gate.deadline > Instant::now() + Duration::from_secs(86_400 * 365));
    }
}
