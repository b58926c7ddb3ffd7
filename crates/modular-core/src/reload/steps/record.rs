//! Step 8, record: the history entry of a committed version, pending-restart paths, the
//! breaker, the `config` and `reload` health components, the log line and the events.

use serde_json::json;
use tokio::time::Instant;

use crate::config::{ConfigChange, ConfigDiff};
use crate::events::types;
use crate::health::HealthStatus;
use crate::reload::ReloadTrigger;
use crate::reload::history::HistoryEntry;
use crate::reload::orchestrator::{Shared, current_sections, lock};
use crate::reload::outcome::ReloadOutcome;
use crate::reload::worker::Worker;
use crate::util::format_duration;

/// Records a committed version; returns the paths pending restart.
pub(crate) fn record(
    shared: &Shared,
    trigger: &ReloadTrigger,
    version: u64,
    diff: &ConfigDiff,
    from_sources: bool,
) -> Vec<String> {
    let pending_restart = {
        let mut pending = lock(&shared.pending_restart);
        for change in diff.static_changes() {
            let path = change.full_path();
            match pending.get(&path) {
                Some(original) if *original == change.new_value => {
                    pending.remove(&path);
                }
                Some(_) => {}
                None => {
                    pending.insert(path, change.old_value.clone());
                }
            }
        }
        pending.keys().cloned().collect::<Vec<_>>()
    };
    lock(&shared.history).push(HistoryEntry {
        version,
        trigger: Some(trigger.clone()),
        time: chrono::Utc::now(),
        diff_id: Some(diff.diff_id),
        changes: diff.changes.clone(),
        outcome: if *trigger == ReloadTrigger::HealthGate {
            "reverted".to_owned()
        } else {
            "applied".to_owned()
        },
        health_gate: None,
        health_gate_reason: None,
        source_revisions: shared.store.source_revisions(),
        sections: current_sections(&shared.store),
        overrides: shared.store.overrides(),
    });
    if from_sources {
        sources_match(shared);
    }
    let was_open = lock(&shared.breaker).record_success();
    crate::metrics::record_version(version);
    if let Some(health) = &shared.health {
        health.set_config_version(version);
        if was_open {
            health.clear_component("reload", "circuit_breaker");
        }
        if pending_restart.is_empty() {
            health.clear_component("config", "pending_restart");
        } else {
            health.set_component(
                "config",
                "pending_restart",
                HealthStatus::Degraded,
                format!("restart required to apply: {}", pending_restart.join(", ")),
                true,
            );
        }
    }
    if was_open {
        shared.emit(
            types::CIRCUIT_CLOSED,
            json!({ "failures": 0, "retry_after_ms": 0 }),
        );
    }
    pending_restart
}

/// The running config is what the sources say again: a reverted version no longer makes
/// them differ.
pub(crate) fn sources_match(shared: &Shared) {
    let cleared = lock(&shared.last_reverted)
        .as_mut()
        .is_some_and(|r| std::mem::replace(&mut r.sources_differ, false));
    if cleared && let Some(health) = &shared.health {
        health.clear_component("config", "reverted");
    }
}

/// Logs the committed reload and emits `reload.completed`.
pub(crate) fn announce(shared: &Shared, outcome: &ReloadOutcome, diff: &ConfigDiff) {
    let paths: Vec<String> = diff.changes.iter().map(ConfigChange::full_path).collect();
    tracing::info!(
        version = outcome.version,
        trigger = outcome.trigger.as_str(),
        changed = %paths.join(", "),
        reloaded = %outcome.reloaded.join(", "),
        "config reloaded"
    );
    shared.emit(
        types::RELOAD_COMPLETED,
        json!({
            "trigger": outcome.trigger.as_str(),
            "diff_id": diff.diff_id,
            "version": outcome.version,
            "reloaded": outcome.reloaded,
            "skipped": outcome.skipped,
            "duration_ms": outcome.duration_ms,
        }),
    );
}

impl Worker {
    /// Closes an open or half-open breaker (a trial found nothing failing).
    pub(crate) fn close_breaker(&self) {
        if lock(&self.shared.breaker).record_success() {
            if let Some(health) = &self.shared.health {
                health.clear_component("reload", "circuit_breaker");
            }
            self.shared.emit(
                types::CIRCUIT_CLOSED,
                json!({ "failures": 0, "retry_after_ms": 0 }),
            );
        }
    }

    /// Counts a failed reload; opens the breaker at the threshold.
    pub(crate) fn record_failure(&self, now: Instant) {
        let (opened, failures) = {
            let mut breaker = lock(&self.shared.breaker);
            (breaker.record_failure(now), breaker.failures())
        };
        if let Some(backoff) = opened {
            let retry_after_ms = backoff.as_millis() as u64;
            tracing::warn!(failures, retry_after_ms, "reload circuit breaker opened");
            self.shared.emit(
                types::CIRCUIT_OPENED,
                json!({ "failures": failures, "retry_after_ms": retry_after_ms }),
            );
            if let Some(health) = &self.shared.health {
                health.set_component(
                    "reload",
                    "circuit_breaker",
                    HealthStatus::Degraded,
                    format!(
                        "{failures} consecutive reload failures; retry after {}",
                        format_duration(backoff)
                    ),
                    true,
                );
            }
        }
    }
}
