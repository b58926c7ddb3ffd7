//! modular core.

pub mod app;
pub mod config;
mod crypto;
mod error;
pub mod events;
pub mod health;
#[cfg(feature = "http")]
pub mod http;
mod module;
pub mod registry;
pub mod reload;
mod util;

pub use app::{Application, ApplicationBuilder};
pub use async_trait::async_trait;
pub use config::{
    ChangeType, ConfigChange, ConfigDiff, ConfigHandle, DynamicConfig, FieldError, Secret,
};
pub use crypto::install_default_crypto_provider;
pub use error::{BoxError, Error, Phase};
pub use modular_macros::DynamicConfig;
pub use module::{InitContext, Module, ModuleContext};
pub use registry::ServiceRegistry;
pub use reload::{ReloadContext, ReloadOutcome, ReloadStatus, ReloadTrigger, Reloadable};

/// Guides from `docs/`, compiled and run as doc tests so they cannot drift from the code.
pub mod guide {
    #[doc = include_str!("../../../docs/writing-a-module.md")]
    pub mod writing_a_module {}
}
