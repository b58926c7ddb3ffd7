//! [`HttpServerError`]: why the server could not start, stop or load a certificate.

use std::path::PathBuf;

/// Why the HTTP server failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum HttpServerError {
    /// The listening socket could not be bound.
    #[error("cannot listen on {address}: {source}")]
    Bind {
        /// `host:port`.
        address: String,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// No router to serve: the `router` module (or another provider of core's `ServedRouter`)
    /// is missing.
    #[error(
        "no ServedRouter in the service registry: add the router module (or register a modular_core::http::ServedRouter)"
    )]
    NoRouter,
    /// A certificate or key file could not be read or parsed.
    #[error("cannot load {what} from {path}: {message}")]
    CertificateFile {
        /// `certificate` or `private key`.
        what: &'static str,
        /// The file.
        path: PathBuf,
        /// What went wrong.
        message: String,
    },
    /// The certificate and key do not belong together, or rustls refused them.
    #[error("certificate {path} cannot be used: {message}")]
    InvalidCertificate {
        /// The certificate file, or `self-signed` for a generated one.
        path: PathBuf,
        /// What went wrong.
        message: String,
    },
    /// The client CA (`tls.client_ca`) could not be read or holds no usable certificate.
    #[error("httpserver.tls.client_ca: cannot use {path} as the client CA: {message}")]
    ClientCa {
        /// The CA file.
        path: PathBuf,
        /// What went wrong.
        message: String,
    },
    /// A self-signed certificate could not be generated.
    #[error("cannot generate a self-signed certificate for {domains:?}: {message}")]
    SelfSigned {
        /// The requested names.
        domains: Vec<String>,
        /// rcgen's error.
        message: String,
    },
    /// No rustls crypto provider is installed (`modular_core::install_default_crypto_provider`).
    #[error("no rustls crypto provider is installed")]
    NoCryptoProvider,
    /// Reading configuration failed.
    #[error(transparent)]
    Config(#[from] modular_core::Error),
    /// The reload context carried no `httpserver` section.
    #[error("the reload carried no httpserver section")]
    MissingSection,
    /// `tls.source: service`, but no module registered a certificate resolver.
    #[error(
        "httpserver.tls.source is service, but no certificate resolver is registered{}",
        .name.as_deref().map(|n| format!(" under the name {n:?} (tls.service)")).unwrap_or_default()
    )]
    NoCertificateResolver {
        /// `tls.service`.
        name: Option<String>,
    },
    /// A change needs a restart (`host`, `port`, `tls.enabled`).
    #[error("httpserver.{0} cannot change while the server runs")]
    StaticField(&'static str),
}
