//! `httpclient.tls`: private CAs and the client certificate, read into the reqwest builder.

use std::path::Path;

use reqwest::{Certificate, ClientBuilder, Identity};

use crate::config::ClientTlsConfig;
use crate::error::HttpClientError;

/// The trust roots and client identity of `httpclient.tls`, read once per client generation
/// and given to the section's client and every named one (they share the section's `tls`).
#[derive(Clone)]
pub(crate) struct TlsMaterial {
    roots: Vec<Certificate>,
    ca_only: bool,
    identity: Option<Identity>,
}

impl TlsMaterial {
    /// Adds the roots and the identity to `builder`.
    pub(crate) fn apply(&self, mut builder: ClientBuilder) -> ClientBuilder {
        if self.ca_only {
            builder = builder.tls_certs_only(self.roots.iter().cloned());
        } else if !self.roots.is_empty() {
            builder = builder.tls_certs_merge(self.roots.iter().cloned());
        }
        if let Some(identity) = &self.identity {
            builder = builder.identity(identity.clone());
        }
        builder
    }
}

/// Reads the configured trust roots and client identity.
///
/// The files are small and read synchronously: this runs when a client generation is built,
/// at start or in a reload's prepare step, never on a request path.
pub(crate) fn load(tls: &ClientTlsConfig) -> Result<TlsMaterial, HttpClientError> {
    let mut roots = Vec::new();
    for (i, path) in tls.ca_files.iter().enumerate() {
        let field = format!("tls.ca_files.{i}");
        let pem = read(&field, path)?;
        let certs = Certificate::from_pem_bundle(&pem).map_err(|e| unusable(&field, path, e))?;
        if certs.is_empty() {
            return Err(HttpClientError::TlsFile {
                field,
                path: path.clone(),
                reason: "no PEM certificate in the file".to_owned(),
            });
        }
        roots.extend(certs);
    }
    let mut identity = None;
    if let (Some(cert), Some(key)) = (&tls.client_cert_file, &tls.client_key_file) {
        let chain = read("tls.client_cert_file", cert)?;
        if !contains_section(&chain, "CERTIFICATE") {
            return Err(HttpClientError::TlsFile {
                field: "tls.client_cert_file".to_owned(),
                path: cert.clone(),
                reason: "no PEM certificate in the file".to_owned(),
            });
        }
        let key_pem = read("tls.client_key_file", key)?;
        if !contains_section(&key_pem, "PRIVATE KEY") {
            return Err(HttpClientError::TlsFile {
                field: "tls.client_key_file".to_owned(),
                path: key.clone(),
                reason: "no PEM private key in the file".to_owned(),
            });
        }
        // reqwest takes the key and the chain from one PEM buffer.
        let mut both = key_pem;
        both.push(b'\n');
        both.extend_from_slice(&chain);
        identity =
            Some(Identity::from_pem(&both).map_err(|e| unusable("tls.client_key_file", key, e))?);
    }
    Ok(TlsMaterial {
        roots,
        ca_only: tls.ca_only,
        identity,
    })
}

fn read(field: &str, path: &Path) -> Result<Vec<u8>, HttpClientError> {
    std::fs::read(path).map_err(|e| HttpClientError::TlsFile {
        field: field.to_owned(),
        path: path.to_owned(),
        reason: e.to_string(),
    })
}

fn unusable(field: &str, path: &Path, error: reqwest::Error) -> HttpClientError {
    HttpClientError::TlsFile {
        field: field.to_owned(),
        path: path.to_owned(),
        reason: crate::error::chain(&error),
    }
}

/// Whether `pem` has a `-----BEGIN ...<label>-----` line (`PRIVATE KEY` matches the PKCS#8,
/// `RSA PRIVATE KEY` and `EC PRIVATE KEY` labels).
fn contains_section(pem: &[u8], label: &str) -> bool {
    String::from_utf8_lossy(pem).lines().any(|line| {
        line.starts_with("-----BEGIN ") && line.trim_end().ends_with(&format!("{label}-----"))
    })
}
