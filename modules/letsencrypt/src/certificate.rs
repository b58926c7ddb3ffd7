//! A certificate ready to serve: the rustls key with its chain, and what the leaf says about
//! itself (names, validity, serial).

use std::sync::Arc;

use chrono::{DateTime, Utc};
use rustls::crypto::CryptoProvider;
use rustls::sign::CertifiedKey;
use rustls_pki_types::pem::PemObject as _;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

use crate::error::LetsEncryptError;
use crate::storage::StoredCertificate;

/// An issued certificate.
#[derive(Clone, Debug)]
pub(crate) struct Issued {
    pub(crate) key: Arc<CertifiedKey>,
    /// The leaf's DNS subject alternative names, lowercase.
    pub(crate) names: Vec<String>,
    pub(crate) not_before: DateTime<Utc>,
    pub(crate) not_after: DateTime<Utc>,
    /// Lowercase hex.
    pub(crate) serial: String,
    /// The leaf's issuer distinguished name.
    pub(crate) issuer: String,
}

impl Issued {
    /// Parses a stored chain and key; `what` names the certificate in errors.
    pub(crate) fn parse(what: &str, stored: &StoredCertificate) -> Result<Self, LetsEncryptError> {
        let invalid = |message: String| LetsEncryptError::InvalidCertificate {
            certificate: what.to_owned(),
            message,
        };
        let chain: Vec<CertificateDer<'static>> =
            CertificateDer::pem_slice_iter(stored.chain_pem.as_bytes())
                .collect::<Result<_, _>>()
                .map_err(|e| invalid(format!("chain: {e}")))?;
        let Some(leaf) = chain.first() else {
            return Err(invalid("no CERTIFICATE block in the chain".to_owned()));
        };
        let (_, parsed) = x509_parser::parse_x509_certificate(leaf.as_ref())
            .map_err(|e| invalid(format!("not an X.509 certificate: {e}")))?;
        let mut names = Vec::new();
        if let Ok(Some(san)) = parsed.subject_alternative_name() {
            for name in &san.value.general_names {
                if let x509_parser::extensions::GeneralName::DNSName(dns) = name {
                    names.push(dns.to_ascii_lowercase());
                }
            }
        }
        let time =
            |ts: i64| DateTime::<Utc>::from_timestamp(ts, 0).unwrap_or(DateTime::<Utc>::MIN_UTC);
        let validity = parsed.validity();
        let not_before = time(validity.not_before.timestamp());
        let not_after = time(validity.not_after.timestamp());
        let serial = hex(parsed.raw_serial());
        let issuer = parsed.issuer().to_string();
        let key = PrivateKeyDer::from_pem_slice(stored.key_pem.as_bytes())
            .map_err(|e| invalid(format!("private key: {e}")))?;
        let provider = provider()?;
        let key = CertifiedKey::from_der(chain, key, &provider)
            .map_err(|e| invalid(format!("private key does not fit the certificate: {e}")))?;
        Ok(Self {
            key: Arc::new(key),
            names,
            not_before,
            not_after,
            serial,
            issuer,
        })
    }

    /// Whether the certificate names every one of `domains`.
    pub(crate) fn covers(&self, domains: &[String]) -> bool {
        domains.iter().all(|d| self.names.iter().any(|n| n == d))
    }
}

/// A self-signed certificate for `domains` (a fresh ECDSA P-256 key), served before the first
/// issuance when `self_signed_fallback` is on: clients that do not pin trust see a warning
/// instead of a failed handshake.
pub(crate) fn self_signed(domains: &[String]) -> Result<Arc<CertifiedKey>, LetsEncryptError> {
    let key_error = |e: rcgen::Error| LetsEncryptError::Key(e.to_string());
    let key = rcgen::KeyPair::generate().map_err(key_error)?;
    let mut params = rcgen::CertificateParams::new(domains.to_vec()).map_err(key_error)?;
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "modular self-signed fallback");
    let cert = params.self_signed(&key).map_err(key_error)?;
    let der = rustls_pki_types::PrivateKeyDer::Pkcs8(key.serialize_der().into());
    CertifiedKey::from_der(vec![cert.der().clone()], der, provider()?.as_ref())
        .map(Arc::new)
        .map_err(|e| LetsEncryptError::Key(e.to_string()))
}

pub(crate) fn provider() -> Result<Arc<CryptoProvider>, LetsEncryptError> {
    modular_core::install_default_crypto_provider();
    CryptoProvider::get_default()
        .cloned()
        .ok_or(LetsEncryptError::NoCryptoProvider)
}

fn hex(bytes: &[u8]) -> String {
    let start = bytes
        .iter()
        .position(|b| *b != 0)
        .unwrap_or(bytes.len().saturating_sub(1));
    bytes[start..].iter().map(|b| format!("{b:02x}")).collect()
}
