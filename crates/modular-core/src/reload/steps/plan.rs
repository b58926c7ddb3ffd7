//! Step 5, plan: the modules whose own section has dynamic changes, in dependency order
//! (the order of the targets). Each receives only its own section's changes.

use std::sync::Arc;

use super::validate::Candidate;
use crate::config::{AnySection, ConfigChange, ConfigDiff};
use crate::reload::{ReloadTarget, Reloadable};

/// One module of the plan.
pub(crate) struct Planned {
    pub(crate) module: String,
    pub(crate) reloadable: Arc<dyn Reloadable>,
    pub(crate) changes: Vec<ConfigChange>,
    /// The section the module runs now (for an undo).
    pub(crate) old: AnySection,
    /// The candidate section it prepares from.
    pub(crate) new: AnySection,
}

pub(crate) fn plan(
    targets: &[ReloadTarget],
    diff: &ConfigDiff,
    candidate: &Candidate,
) -> Vec<Planned> {
    let mut plan = Vec::new();
    for target in targets {
        let Some(reloadable) = &target.reloadable else {
            // No hook: the module reads its handle, which the commit updates.
            continue;
        };
        let changes: Vec<ConfigChange> = diff
            .changes
            .iter()
            .filter(|c| c.dynamic && c.section == target.module.as_str())
            .cloned()
            .collect();
        if changes.is_empty() {
            continue;
        }
        let Some((binding, new)) = candidate.iter().find(|(b, _)| b.name() == target.module) else {
            continue;
        };
        plan.push(Planned {
            module: target.module.clone(),
            reloadable: Arc::clone(reloadable),
            changes,
            old: binding.current(),
            new: Arc::clone(new),
        });
    }
    plan
}
