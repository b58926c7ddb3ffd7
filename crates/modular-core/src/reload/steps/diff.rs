//! Step 3, diff: each section's candidate against its running value, with the derived
//! field-by-field diff. A section held back for a module that could not reload still runs
//! its old value, so its pending changes show up here again until they are applied.

use std::collections::HashSet;

use super::validate::Candidate;
use crate::config::{ConfigChange, ConfigDiff};
use crate::reload::ReloadTarget;

pub(crate) fn diff(candidate: &Candidate) -> ConfigDiff {
    let mut changes: Vec<ConfigChange> = Vec::new();
    for (binding, new) in candidate {
        changes.extend(binding.diff(&binding.current(), new));
    }
    ConfigDiff::new(changes)
}

/// Whether every change belongs to a module that was skipped before and still cannot reload:
/// no reason to commit a new version; the changes keep waiting.
pub(crate) fn only_still_skipped(
    diff: &ConfigDiff,
    targets: &[ReloadTarget],
    pending_skipped: &HashSet<String>,
) -> bool {
    if pending_skipped.is_empty() {
        return false;
    }
    diff.changes.iter().all(|change| {
        pending_skipped.contains(change.section.as_ref())
            && targets.iter().any(|t| {
                t.module == change.section.as_ref()
                    && t.reloadable
                        .as_ref()
                        .is_some_and(|r| !super::prepare::guarded_can_reload(r))
            })
    })
}
