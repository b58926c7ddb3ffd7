//! The console's errors.

/// What can go wrong setting the console up.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConsoleError {
    /// The `console` section could not be read.
    #[error("console: {0}")]
    Config(#[from] modular_core::Error),
}
