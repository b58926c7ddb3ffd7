//! modular core.

pub mod config;
pub mod events;

pub use config::{ChangeType, ConfigChange, ConfigDiff, DynamicConfig, FieldError, Secret};
pub use modular_macros::DynamicConfig;
