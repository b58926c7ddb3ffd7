//! [`FleetError`]: what connecting to the key-value store can fail with.

/// A fleet-config failure. URLs are shown without credentials.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FleetError {
    /// Start-up could not reach the store and has no cached revision.
    #[error(
        "fleet config: the NATS key-value store at {url} (bucket \"{bucket}\") is unreachable ({error}) and {}",
        match cache {
            Some(path) => format!("no cached revision is at {path}"),
            None => "no cache path is set".to_owned(),
        }
    )]
    Unreachable {
        /// The server, without credentials.
        url: String,
        /// The bucket.
        bucket: String,
        /// What the client said (credentials removed).
        error: String,
        /// The cache path, when one is set.
        cache: Option<String>,
    },
    /// A client operation failed.
    #[error("fleet config: {what} at {url}: {error}")]
    Client {
        /// What was tried (`connect`, `read key`).
        what: String,
        /// The server, without credentials.
        url: String,
        /// What the client said (credentials removed).
        error: String,
    },
    /// A connection option is malformed.
    #[error("fleet config: {option}: {message}")]
    InvalidOption {
        /// The option.
        option: &'static str,
        /// Why.
        message: String,
    },
}
