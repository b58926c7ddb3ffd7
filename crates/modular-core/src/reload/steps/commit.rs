//! Step 8, commit: every prepared module commits in dependency order (cheap, synchronous,
//! cannot fail: an `Arc` swap), then every section of the new version is published in one
//! atomic swap of the config epoch. A section held back for a skipped module keeps the value
//! that module last applied.

use std::sync::Arc;

use super::prepare::Prepared;
use super::validate::Candidate;
use crate::config::{ConfigDiff, ConfigStore};

/// Commits and publishes; returns the new version.
pub(crate) fn commit(
    store: &Arc<ConfigStore>,
    prepared: Vec<Prepared>,
    candidate: &Candidate,
    diff: &ConfigDiff,
    skipped: &[String],
) -> u64 {
    for p in prepared {
        p.state.commit();
    }
    let updates = candidate
        .iter()
        .filter(|(binding, _)| {
            let name = binding.name();
            diff.changes.iter().any(|c| c.section == name)
                && !binding
                    .owner()
                    .is_some_and(|owner| skipped.iter().any(|s| s == owner))
        })
        .map(|(binding, value)| (binding.index(), Arc::clone(value)))
        .collect();
    store.publish(updates)
}
