//! Step 4, classify: a change to a non-dynamic field needs a restart. Policy `reject` refuses
//! the whole reload and reports the static paths; `apply_dynamic` lets the dynamic changes go
//! ahead and records the static ones as pending restart.

use crate::config::{ConfigChange, ConfigDiff};
use crate::reload::StaticPolicy;

/// The full paths of the static changes: `Ok` when the reload may go ahead, `Err` when the
/// policy refuses it.
pub(crate) fn classify(
    diff: &ConfigDiff,
    policy: StaticPolicy,
) -> Result<Vec<String>, Vec<String>> {
    let paths: Vec<String> = diff
        .static_changes()
        .iter()
        .map(|c: &&ConfigChange| c.full_path())
        .collect();
    if !paths.is_empty() && policy == StaticPolicy::Reject {
        return Err(paths);
    }
    Ok(paths)
}
