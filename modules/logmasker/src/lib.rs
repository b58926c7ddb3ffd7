//! The logmasker module: masks secrets and personal data in every log line, inside the
//! `tracing-subscriber` pipeline, so no caller has to remember to.
//!
//! (Crate docs are filled in below.)

mod config;
mod error;
mod masker;
pub mod metrics;
mod module;
mod rules;

pub use config::{
    DEFAULT_COMPILED_SIZE_LIMIT, DEFAULT_FIELDS, LogMaskerConfig, LogMaskerHealthConfig, MaskRule,
    Strategy, default_rules,
};
pub use error::LogMaskerError;
pub use masker::{
    Masker, MaskerStats, MaskingFields, MaskingFormat, MaskingLine, MaskingWriter, PreparedRules,
};
pub use module::LogMaskerModule;
pub use rules::{Builtin, REDACTED, RuleSet};

/// Installs the global subscriber: `RUST_LOG` filtering (default `info`) and the masked text
/// layer over [`Masker::global`] writing to stdout. Returns the masker (which
/// [`LogMaskerModule::new`] configures from the `logmasker` section).
pub fn install() -> Result<Masker, tracing_subscriber::util::TryInitError> {
    use tracing_subscriber::layer::SubscriberExt as _;
    use tracing_subscriber::util::SubscriberInitExt as _;
    let masker = Masker::global().clone();
    let filter = tracing_subscriber::EnvFilter::builder()
        .with_default_directive(tracing_subscriber::filter::LevelFilter::INFO.into())
        .from_env_lossy();
    tracing_subscriber::registry()
        .with(filter)
        .with(masker.layer(std::io::stdout))
        .try_init()?;
    Ok(masker)
}
