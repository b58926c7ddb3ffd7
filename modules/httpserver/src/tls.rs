//! TLS: loading a certificate (PEM files or self-signed), inspecting it, and a rustls
//! certificate resolver whose certificate can be replaced while the server runs.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use arc_swap::ArcSwap;
use chrono::{DateTime, Utc};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use serde::Serialize;
use tokio_rustls::rustls::RootCertStore;
use tokio_rustls::rustls::ServerConfig;
use tokio_rustls::rustls::crypto::CryptoProvider;
use tokio_rustls::rustls::server::danger::ClientCertVerifier;
use tokio_rustls::rustls::server::{ClientHello, ResolvesServerCert, WebPkiClientVerifier};
use tokio_rustls::rustls::sign::CertifiedKey;

use crate::config::{CertificateSource, ClientAuth, TlsConfig};
use crate::error::HttpServerError;

/// What the served leaf certificate says about itself.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct CertificateInfo {
    /// The serial number, lowercase hex without separators.
    pub serial: String,
    /// The subject distinguished name.
    pub subject: String,
    /// Start of validity.
    pub not_before: DateTime<Utc>,
    /// End of validity.
    pub not_after: DateTime<Utc>,
    /// `files` or `self_signed`.
    pub source: &'static str,
    /// The certificate file, for `files`.
    pub path: Option<PathBuf>,
}

/// A loaded certificate with its key, ready for rustls.
#[derive(Debug)]
pub(crate) struct LoadedCertificate {
    pub(crate) key: Arc<CertifiedKey>,
    pub(crate) info: CertificateInfo,
    /// Content fingerprint of the files it came from (`None` when self-signed).
    pub(crate) fingerprint: Option<u64>,
}

/// [`load`] on a blocking thread: file reads and key generation stay off the async workers.
pub(crate) async fn load_off_runtime(
    tls: &TlsConfig,
) -> Result<LoadedCertificate, HttpServerError> {
    let tls = tls.clone();
    match tokio::task::spawn_blocking(move || load(&tls)).await {
        Ok(result) => result,
        // The closure does not panic on any input; a cancelled runtime is the only way here.
        Err(error) => Err(HttpServerError::InvalidCertificate {
            path: PathBuf::from("(loader)"),
            message: error.to_string(),
        }),
    }
}

/// Loads the certificate `tls` names: its files, or a new self-signed one.
pub(crate) fn load(tls: &TlsConfig) -> Result<LoadedCertificate, HttpServerError> {
    match tls.source() {
        CertificateSource::Files { cert, key } => load_files(cert, key),
        CertificateSource::SelfSigned { domains } => self_signed(domains),
    }
}

/// The fingerprint of the certificate files' current content (`None` when self-signed).
pub(crate) fn fingerprint(tls: &TlsConfig) -> Option<u64> {
    match tls.source() {
        CertificateSource::Files { cert, key } => {
            Some(modular_core::reload::content_fingerprint(&[
                cert.clone(),
                key.clone(),
            ]))
        }
        CertificateSource::SelfSigned { .. } => None,
    }
}

fn provider() -> Result<Arc<CryptoProvider>, HttpServerError> {
    modular_core::install_default_crypto_provider();
    CryptoProvider::get_default()
        .cloned()
        .ok_or(HttpServerError::NoCryptoProvider)
}

fn load_files(cert_path: &Path, key_path: &Path) -> Result<LoadedCertificate, HttpServerError> {
    // Fingerprint first: if the files change while we read them, the watcher sees a
    // difference next round and loads again.
    let fingerprint =
        modular_core::reload::content_fingerprint(&[cert_path.to_owned(), key_path.to_owned()]);
    let file_error =
        |what: &'static str, path: &Path, message: String| HttpServerError::CertificateFile {
            what,
            path: path.to_owned(),
            message,
        };
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert_path)
        .map_err(|e| file_error("certificate", cert_path, e.to_string()))?
        .collect::<Result<_, _>>()
        .map_err(|e| file_error("certificate", cert_path, e.to_string()))?;
    if chain.is_empty() {
        return Err(file_error(
            "certificate",
            cert_path,
            "no CERTIFICATE block in the file".to_owned(),
        ));
    }
    let key = PrivateKeyDer::from_pem_file(key_path)
        .map_err(|e| file_error("private key", key_path, e.to_string()))?;
    certified(
        chain,
        key,
        "files",
        Some((cert_path.to_owned(), key_path.to_owned())),
        Some(fingerprint),
    )
}

fn self_signed(domains: &[String]) -> Result<LoadedCertificate, HttpServerError> {
    let generated = rcgen::generate_simple_self_signed(domains.to_vec()).map_err(|e| {
        HttpServerError::SelfSigned {
            domains: domains.to_vec(),
            message: e.to_string(),
        }
    })?;
    let chain = vec![generated.cert.der().clone()];
    let key = PrivateKeyDer::Pkcs8(generated.signing_key.serialize_der().into());
    certified(chain, key, "self_signed", None, None)
}

fn certified(
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
    source: &'static str,
    paths: Option<(PathBuf, PathBuf)>,
    fingerprint: Option<u64>,
) -> Result<LoadedCertificate, HttpServerError> {
    let (cert_path, key_path) = match paths {
        Some((cert, key)) => (Some(cert), Some(key)),
        None => (None, None),
    };
    let shown =
        |path: &Option<PathBuf>| path.clone().unwrap_or_else(|| PathBuf::from("self-signed"));
    let info = inspect(&chain[0], source, cert_path.clone()).map_err(|message| {
        HttpServerError::InvalidCertificate {
            path: shown(&cert_path),
            message,
        }
    })?;
    let provider = provider()?;
    // The certificate parsed above; what fails here is the key: unusable, or not the
    // certificate's. Reported against the key file.
    let key = CertifiedKey::from_der(chain, key, &provider).map_err(|e| {
        HttpServerError::InvalidCertificate {
            path: shown(&key_path),
            message: format!("private key: {e}"),
        }
    })?;
    Ok(LoadedCertificate {
        key: Arc::new(key),
        info,
        fingerprint,
    })
}

/// Reads serial, subject and validity of a DER certificate.
pub(crate) fn inspect(
    der: &CertificateDer<'_>,
    source: &'static str,
    path: Option<PathBuf>,
) -> Result<CertificateInfo, String> {
    let (_, cert) = x509_parser::parse_x509_certificate(der.as_ref())
        .map_err(|e| format!("not an X.509 certificate: {e}"))?;
    let validity = cert.validity();
    let time = |ts: i64| DateTime::<Utc>::from_timestamp(ts, 0).unwrap_or(DateTime::<Utc>::MIN_UTC);
    Ok(CertificateInfo {
        serial: hex(cert.raw_serial()),
        subject: cert.subject().to_string(),
        not_before: time(validity.not_before.timestamp()),
        not_after: time(validity.not_after.timestamp()),
        source,
        path,
    })
}

/// Lowercase hex of a serial number's bytes, leading zero bytes dropped (DER pads positive
/// serials whose first bit is set).
pub fn hex(bytes: &[u8]) -> String {
    let start = bytes
        .iter()
        .position(|b| *b != 0)
        .unwrap_or(bytes.len().saturating_sub(1));
    bytes[start..].iter().map(|b| format!("{b:02x}")).collect()
}

/// Hands rustls whatever certificate is current; replacing it affects new handshakes only.
#[derive(Debug)]
pub(crate) struct CertResolver {
    current: ArcSwap<LoadedCertificate>,
}

impl CertResolver {
    pub(crate) fn new(certificate: LoadedCertificate) -> Self {
        Self {
            current: ArcSwap::from_pointee(certificate),
        }
    }

    pub(crate) fn current(&self) -> Arc<LoadedCertificate> {
        self.current.load_full()
    }

    /// Swaps the certificate in; returns the previous one.
    pub(crate) fn replace(&self, certificate: LoadedCertificate) -> Arc<LoadedCertificate> {
        self.current.swap(Arc::new(certificate))
    }
}

impl ResolvesServerCert for CertResolver {
    fn resolve(&self, _client_hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(Arc::clone(&self.current.load().key))
    }
}

/// The certificate resolver another module registered (`tls.source: service`), bound when the
/// server starts: every module has initialised by then, whatever the order. Until it is
/// bound, and if the registered resolver has no certificate for a name, the handshake fails
/// (rustls answers with an alert); nothing panics.
#[derive(Debug)]
pub(crate) struct ServiceResolver {
    name: Option<String>,
    bound: std::sync::OnceLock<Arc<dyn ResolvesServerCert>>,
}

impl ServiceResolver {
    pub(crate) fn new(name: Option<String>) -> Self {
        Self {
            name,
            bound: std::sync::OnceLock::new(),
        }
    }

    /// Looks the resolver up in the registry.
    pub(crate) fn bind(
        &self,
        services: &modular_core::ServiceRegistry,
    ) -> Result<(), HttpServerError> {
        let resolver =
            modular_core::tls::resolver(services, self.name.as_deref()).ok_or_else(|| {
                HttpServerError::NoCertificateResolver {
                    name: self.name.clone(),
                }
            })?;
        let _ = self.bound.set(resolver);
        Ok(())
    }
}

impl ResolvesServerCert for ServiceResolver {
    fn resolve(&self, client_hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        self.bound.get()?.resolve(client_hello)
    }
}

/// The client-certificate check `tls.client_ca` and `tls.client_auth` describe.
#[derive(Clone)]
pub(crate) struct ClientCa {
    pub(crate) verifier: Arc<dyn ClientCertVerifier>,
    /// Content fingerprint of the CA file.
    pub(crate) fingerprint: u64,
}

impl std::fmt::Debug for ClientCa {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientCa")
            .field("fingerprint", &self.fingerprint)
            .finish_non_exhaustive()
    }
}

/// The fingerprint of the client CA file's current content (`None` without `client_ca`).
pub(crate) fn client_ca_fingerprint(tls: &TlsConfig) -> Option<u64> {
    tls.client_ca
        .as_ref()
        .map(|path| modular_core::reload::content_fingerprint(std::slice::from_ref(path)))
}

/// [`load_client_ca`] on a blocking thread.
pub(crate) async fn load_client_ca_off_runtime(
    tls: &TlsConfig,
) -> Result<Option<ClientCa>, HttpServerError> {
    let tls = tls.clone();
    let path = tls.client_ca.clone().unwrap_or_default();
    match tokio::task::spawn_blocking(move || load_client_ca(&tls)).await {
        Ok(result) => result,
        Err(error) => Err(HttpServerError::ClientCa {
            path,
            message: error.to_string(),
        }),
    }
}

/// Reads `tls.client_ca` and builds the verifier for `tls.client_auth`; `None` without a CA.
pub(crate) fn load_client_ca(tls: &TlsConfig) -> Result<Option<ClientCa>, HttpServerError> {
    let Some(path) = &tls.client_ca else {
        return Ok(None);
    };
    let fingerprint = modular_core::reload::content_fingerprint(std::slice::from_ref(path));
    let error = |message: String| HttpServerError::ClientCa {
        path: path.clone(),
        message,
    };
    let certificates: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(path)
        .map_err(|e| error(e.to_string()))?
        .collect::<Result<_, _>>()
        .map_err(|e| error(e.to_string()))?;
    if certificates.is_empty() {
        return Err(error("no CERTIFICATE block in the file".to_owned()));
    }
    let mut roots = RootCertStore::empty();
    for certificate in certificates {
        roots
            .add(certificate)
            .map_err(|e| error(format!("not a usable CA certificate: {e}")))?;
    }
    let builder = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider()?);
    let builder = match tls.client_auth {
        ClientAuth::Required => builder,
        ClientAuth::Optional => builder.allow_unauthenticated(),
    };
    let verifier = builder.build().map_err(|e| error(e.to_string()))?;
    Ok(Some(ClientCa {
        verifier,
        fingerprint,
    }))
}

/// A rustls server configuration that asks `resolver` for every handshake, verifies client
/// certificates with `client` (none asked for without it), and offers HTTP/2 and HTTP/1.1 by
/// ALPN.
pub(crate) fn server_config(
    resolver: Arc<dyn ResolvesServerCert>,
    client: Option<&ClientCa>,
) -> Result<Arc<ServerConfig>, HttpServerError> {
    let builder = ServerConfig::builder_with_provider(provider()?)
        .with_safe_default_protocol_versions()
        .map_err(|e| HttpServerError::InvalidCertificate {
            path: PathBuf::from("rustls"),
            message: e.to_string(),
        })?;
    let builder = match client {
        Some(client) => builder.with_client_cert_verifier(Arc::clone(&client.verifier)),
        None => builder.with_no_client_auth(),
    };
    let mut config = builder.with_cert_resolver(resolver);
    // `acme-tls/1` last: only a TLS-ALPN-01 validation (RFC 8737) offers it, and alone; a
    // resolver that answers it (letsencrypt) serves the challenge certificate to it.
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec(), b"acme-tls/1".to_vec()];
    Ok(Arc::new(config))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn self_signed_certificates_name_their_domains_and_are_valid_now() {
        let tls = TlsConfig {
            enabled: true,
            domains: vec!["localhost".to_owned()],
            ..TlsConfig::default()
        };
        let loaded = load(&tls).unwrap();
        assert_eq!(loaded.info.source, "self_signed");
        assert!(loaded.info.not_before <= Utc::now());
        assert!(loaded.info.not_after > Utc::now());
        assert!(!loaded.info.serial.is_empty());
    }

    #[test]
    fn a_missing_certificate_file_is_an_error_naming_it() {
        let tls = TlsConfig {
            enabled: true,
            cert_file: Some(PathBuf::from("/nonexistent/tls.crt")),
            key_file: Some(PathBuf::from("/nonexistent/tls.key")),
            ..TlsConfig::default()
        };
        let error = load(&tls).unwrap_err().to_string();
        assert!(error.contains("/nonexistent/tls.crt"), "{error}");
    }

    #[test]
    fn a_key_that_is_not_the_certificates_is_reported_against_the_key_file() {
        modular_testkit_free_provider();
        let dir = std::env::temp_dir().join(format!("modular-tls-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let write = |name: &str| {
            let key = rcgen::KeyPair::generate().unwrap();
            let cert = rcgen::CertificateParams::new(vec!["localhost".to_owned()])
                .unwrap()
                .self_signed(&key)
                .unwrap();
            let (c, k) = (
                dir.join(format!("{name}.crt")),
                dir.join(format!("{name}.key")),
            );
            std::fs::write(&c, cert.pem()).unwrap();
            std::fs::write(&k, key.serialize_pem()).unwrap();
            (c, k)
        };
        let (cert_a, _) = write("a");
        let (_, key_b) = write("b");
        let tls = TlsConfig {
            enabled: true,
            cert_file: Some(cert_a.clone()),
            key_file: Some(key_b.clone()),
            ..TlsConfig::default()
        };
        let error = load(&tls).unwrap_err().to_string();
        let _ = std::fs::remove_dir_all(&dir);
        assert!(error.contains(&*key_b.to_string_lossy()), "{error}");
        assert!(!error.contains(&*cert_a.to_string_lossy()), "{error}");
        assert!(error.contains("private key"), "{error}");
    }

    /// The process's rustls provider, as the module's users install it.
    fn modular_testkit_free_provider() {
        modular_core::install_default_crypto_provider();
    }

    #[test]
    fn serials_print_as_plain_hex() {
        assert_eq!(hex(&[0x00, 0x8f, 0x01]), "8f01");
        assert_eq!(hex(&[0x00]), "00");
    }
}
