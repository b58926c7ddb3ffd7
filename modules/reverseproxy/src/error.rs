//! [`ReverseProxyError`]: what building a routing table or a reload can fail with.

/// A table that cannot be built, or a reload without its section.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ReverseProxyError {
    /// A value that validation lets through but the table cannot use; `path` is relative
    /// to the `reverseproxy` section.
    #[error("reverseproxy.{path}: {message}")]
    Invalid {
        /// `pools.api.backends.0.url`, ...
        path: String,
        /// Why.
        message: String,
    },
    /// A reload hook was called without its section.
    #[error("reload of `{module}` carried no `reverseproxy` section")]
    MissingSection {
        /// The module being reloaded.
        module: String,
    },
}
