//! modular core.

pub mod config;
mod error;
pub mod events;
pub mod health;
pub mod registry;

pub use config::{ChangeType, ConfigChange, ConfigDiff, ConfigHandle, DynamicConfig, FieldError, Secret};
pub use error::{BoxError, Error, Phase};
pub use modular_macros::DynamicConfig;
pub use registry::ServiceRegistry;
