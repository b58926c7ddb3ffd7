//! [`LetsEncryptError`]: what loading, ordering or storing a certificate can fail with.

use std::path::PathBuf;

/// A failure of the module; messages never carry key material or the EAB key.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LetsEncryptError {
    /// The storage directory or a file in it cannot be used.
    #[error("letsencrypt storage {path}: {message}")]
    Storage {
        /// The file or directory.
        path: PathBuf,
        /// Why.
        message: String,
    },
    /// A stored or issued certificate that cannot be served.
    #[error("letsencrypt certificate {certificate}: {message}")]
    InvalidCertificate {
        /// The certificate's name.
        certificate: String,
        /// Why.
        message: String,
    },
    /// The CA refused or could not be reached.
    #[error("letsencrypt: ACME {step}: {message}")]
    Acme {
        /// What was being done (`account`, `order`, `challenge`, `finalize`, `download`).
        step: &'static str,
        /// The CA's problem document or the transport error.
        message: String,
    },
    /// A DNS-01 record could not be published or removed (never carries the TSIG secret).
    #[error("letsencrypt: DNS update at {server}: {message}")]
    Dns {
        /// The DNS server.
        server: String,
        /// Why.
        message: String,
    },
    /// A key could not be generated or a CSR built.
    #[error("letsencrypt: key or CSR: {0}")]
    Key(String),
    /// rustls has no process-level crypto provider.
    #[error("letsencrypt: no rustls crypto provider installed")]
    NoCryptoProvider,
    /// A reload hook was called without its section.
    #[error("reload of `{module}` carried no `letsencrypt` section")]
    MissingSection {
        /// The module being reloaded.
        module: String,
    },
}

impl LetsEncryptError {
    pub(crate) fn acme(step: &'static str, error: impl std::fmt::Display) -> Self {
        Self::Acme {
            step,
            message: error.to_string(),
        }
    }

    pub(crate) fn dns(server: impl std::fmt::Display, error: impl std::fmt::Display) -> Self {
        Self::Dns {
            server: server.to_string(),
            message: error.to_string(),
        }
    }

    pub(crate) fn storage(path: impl Into<PathBuf>, error: impl std::fmt::Display) -> Self {
        Self::Storage {
            path: path.into(),
            message: error.to_string(),
        }
    }
}
