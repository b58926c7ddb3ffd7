//! Layered configuration: sources, typed sections, snapshots, diffs and secrets.

pub mod diff;
pub mod secret;

pub use diff::{ChangeType, ConfigChange, ConfigDiff, DiffContext, DynamicConfig, FieldError, FieldInfo, apply_changes};
pub use secret::{REDACTED, Secret};
