//! The bounded history of committed configuration versions.

use std::collections::{BTreeMap, VecDeque};

use serde::Serialize;
use serde_json::Value;

use crate::config::{AnySection, ConfigChange};

use super::ReloadTrigger;

/// One committed version.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Clone, Serialize)]
pub struct HistoryEntry {
    /// The version number.
    pub version: u64,
    /// What produced it.
    pub trigger: Option<ReloadTrigger>,
    /// When it was committed.
    pub time: chrono::DateTime<chrono::Utc>,
    /// The diff id of the reload that produced it.
    pub diff_id: Option<uuid::Uuid>,
    /// The changes from the version before (redacted when serialized).
    pub changes: Vec<ConfigChange>,
    /// `initial`, `applied`, `reverted`, …
    pub outcome: String,
    /// The health gate's verdict on this version, once it has one: `passed`, `reverted`
    /// (with the reason), `superseded` (a later reload came within the window), or
    /// `revert_failed`. `None` when no gate watched it or its window is still open.
    pub health_gate: Option<String>,
    /// Why the gate reverted it.
    pub health_gate_reason: Option<String>,
    /// The revision of each remote config layer it was read at, by source name.
    #[serde(skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub source_revisions: BTreeMap<String, String>,
    /// The typed sections of this version (kept for rollback, never serialized).
    #[serde(skip)]
    pub(crate) sections: Vec<(String, AnySection)>,
    /// The runtime overrides in force when it was committed (restored by a rollback to it;
    /// never serialized, they may hold secrets).
    #[serde(skip)]
    pub(crate) overrides: BTreeMap<String, Value>,
}

impl std::fmt::Debug for HistoryEntry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HistoryEntry")
            .field("version", &self.version)
            .field("trigger", &self.trigger)
            .field("outcome", &self.outcome)
            .field("health_gate", &self.health_gate)
            .field("changes", &self.changes)
            .finish()
    }
}

#[derive(Debug)]
pub(crate) struct History {
    entries: VecDeque<HistoryEntry>,
    capacity: usize,
}

impl History {
    pub(crate) fn new(capacity: usize) -> Self {
        Self {
            entries: VecDeque::new(),
            capacity: capacity.max(1),
        }
    }

    pub(crate) fn push(&mut self, entry: HistoryEntry) {
        if self.entries.len() == self.capacity {
            self.entries.pop_front();
        }
        self.entries.push_back(entry);
    }

    pub(crate) fn get(&self, version: u64) -> Option<&HistoryEntry> {
        self.entries.iter().find(|e| e.version == version)
    }

    pub(crate) fn set_gate(&mut self, version: u64, verdict: &str, reason: Option<&str>) {
        if let Some(entry) = self.entries.iter_mut().find(|e| e.version == version) {
            entry.health_gate = Some(verdict.to_owned());
            entry.health_gate_reason = reason.map(str::to_owned);
        }
    }

    pub(crate) fn entries(&self) -> Vec<HistoryEntry> {
        self.entries.iter().cloned().collect()
    }
}
