//! [`LogMaskerError`]: what compiling a rule set or a reload can fail with.

/// A rule set that cannot be compiled, or a reload without its section.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LogMaskerError {
    /// A rule does not compile; `path` is relative to the `logmasker` section.
    #[error("logmasker.{path}: {message}")]
    Rule {
        /// `rules.<index>.regex`, `compiled_size_limit`, ...
        path: String,
        /// Why (for a regex, the regex crate's error).
        message: String,
    },
    /// A reload hook was called without its section.
    #[error("reload of `{module}` carried no `logmasker` section")]
    MissingSection {
        /// The module being reloaded.
        module: String,
    },
}
