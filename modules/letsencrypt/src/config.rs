//! [`LetsEncryptConfig`]: the `letsencrypt` section, which fields reload at runtime and why
//! the others do not.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use modular_core::health::ProviderConfig;
use modular_core::{DynamicConfig, FieldError, Secret};
use serde::{Deserialize, Serialize};

/// Let's Encrypt's production directory (the default).
pub const LETS_ENCRYPT_PRODUCTION: &str = "https://acme-v02.api.letsencrypt.org/directory";
/// Let's Encrypt's staging directory (untrusted certificates, generous rate limits).
pub const LETS_ENCRYPT_STAGING: &str = "https://acme-staging-v02.api.letsencrypt.org/directory";

/// The `letsencrypt` configuration section.
///
/// | field | dynamic | why |
/// |---|---|---|
/// | `directory_url`, `directory_ca` | no | the account belongs to one CA; moving to another is a new account and new certificates |
/// | `storage_dir` | no | the account key and the certificates live there; moving it would orphan them |
/// | `external_account` | no | External Account Binding is used once, when the account is created |
/// | `resolver_name` | no | the resolver is registered once; httpserver binds it at start |
/// | `certificates` | yes | an added certificate or domain is ordered at once while the old certificate keeps serving; a removed certificate leaves the resolver |
/// | `contact_email` | yes | the account's contact is updated at the CA by the next renewal round |
/// | `challenge` | yes | the next order answers this challenge type (wildcard names always use dns-01) |
/// | `self_signed_fallback` | yes | the resolver's next table serves (or drops) the fallback certificates |
/// | `dns` | yes | the next order publishes its DNS-01 records through this server and key |
/// | `key_type` | yes | the next issuance generates this key type |
/// | `renew_before`, `check_interval`, `retry.*`, `startup_grace` | yes | read by the renewal task at its next round (a reload wakes it) and by the health check |
/// | `health.timeout`, `health.optional` | yes | the health registration's options are replaced at commit |
///
/// ```yaml
/// letsencrypt:
///   directory_url: https://acme-v02.api.letsencrypt.org/directory
///   # directory_ca: /etc/pebble/ca.pem   # trust for a private CA's HTTPS (pebble)
///   contact_email: ops@example.com
///   storage_dir: /var/lib/myapp/acme
///   challenge: http-01
///   key_type: ecdsa_p256          # or ecdsa_p384, rsa2048
///   renew_before: 30days
///   check_interval: 1h
///   retry: { initial: 1m, max: 1h }
///   startup_grace: 10m
///   certificates:
///     web:
///       domains: [example.com, www.example.com]
///     wild:                       # a wildcard name is validated by dns-01
///       domains: ["*.example.com"]
///   dns:                          # DNS-01 by RFC 2136 dynamic updates
///     provider: rfc2136
///     server: 192.0.2.53:53       # the zone's primary (IP and port)
///     zone: example.com
///     tsig: { name: acme-key, algorithm: hmac-sha256, secret: "${TSIG_SECRET}" }
///     ttl: 60
/// ```
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, DynamicConfig)]
#[serde(deny_unknown_fields, default)]
#[config(validate = "Self::validate_config")]
pub struct LetsEncryptConfig {
    /// The ACME directory (https). Static.
    pub directory_url: String,
    /// A PEM CA certificate to trust for the directory's HTTPS, for a private CA; unset, the
    /// platform's roots. Static.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub directory_ca: Option<PathBuf>,
    /// External Account Binding, for CAs that need it. Static.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub external_account: Option<ExternalAccount>,
    /// The account's contact (`mailto:` is added).
    #[config(dynamic)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub contact_email: Option<String>,
    /// Account, certificates and keys. Created 0700. Static.
    pub storage_dir: PathBuf,
    /// The challenge orders are answered with.
    #[config(dynamic)]
    pub challenge: ChallengeType,
    /// The certificate key type of new issuances.
    #[config(dynamic)]
    pub key_type: KeyType,
    /// A certificate is renewed once it is this close to its expiry.
    #[config(dynamic)]
    #[serde(with = "modular_core::humantime_serde")]
    pub renew_before: Duration,
    /// How often the renewal task looks at every certificate (it also wakes at reloads and
    /// retry times).
    #[config(dynamic)]
    #[serde(with = "modular_core::humantime_serde")]
    pub check_interval: Duration,
    /// Backoff of failed issuances.
    #[config(nested)]
    pub retry: RetryConfig,
    /// How long a certificate may be missing after start before health is unhealthy.
    #[config(dynamic)]
    #[serde(with = "modular_core::humantime_serde")]
    pub startup_grace: Duration,
    /// Register the resolver under this name (httpserver `tls.service`); unset, unnamed.
    /// Static.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub resolver_name: Option<String>,
    /// Certificate name → what it covers.
    #[config(dynamic, nested)]
    pub certificates: BTreeMap<String, CertificateConfig>,
    /// Serve a self-signed certificate for a certificate's domains until its first issuance
    /// succeeds (off: such handshakes fail with an alert).
    #[config(dynamic)]
    pub self_signed_fallback: bool,
    /// Where DNS-01 records are published (needed by wildcard names and `challenge: dns-01`).
    #[config(dynamic)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dns: Option<DnsConfig>,
    /// Health registration.
    #[config(nested)]
    pub health: ProviderConfig,
}

impl Default for LetsEncryptConfig {
    fn default() -> Self {
        Self {
            directory_url: LETS_ENCRYPT_PRODUCTION.to_owned(),
            directory_ca: None,
            external_account: None,
            contact_email: None,
            storage_dir: PathBuf::from("acme"),
            challenge: ChallengeType::Http01,
            key_type: KeyType::EcdsaP256,
            renew_before: Duration::from_secs(30 * 24 * 3600),
            check_interval: Duration::from_secs(3600),
            retry: RetryConfig::default(),
            startup_grace: Duration::from_secs(600),
            resolver_name: None,
            certificates: BTreeMap::new(),
            self_signed_fallback: false,
            dns: None,
            health: ProviderConfig::default(),
        }
    }
}

/// `letsencrypt.certificates.<name>`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, DynamicConfig)]
#[serde(deny_unknown_fields, default)]
#[config(dynamic)]
pub struct CertificateConfig {
    /// The names the certificate covers (the first is its subject).
    pub domains: Vec<String>,
}

/// `letsencrypt.retry`: a failed issuance is retried after `initial`, doubling up to `max`,
/// each delay with ±20 % jitter.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, DynamicConfig)]
#[serde(deny_unknown_fields, default)]
#[config(dynamic)]
pub struct RetryConfig {
    /// The first delay.
    #[serde(with = "modular_core::humantime_serde")]
    pub initial: Duration,
    /// The longest delay.
    #[serde(with = "modular_core::humantime_serde")]
    pub max: Duration,
}

impl Default for RetryConfig {
    fn default() -> Self {
        Self {
            initial: Duration::from_secs(60),
            max: Duration::from_secs(3600),
        }
    }
}

/// `letsencrypt.external_account`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExternalAccount {
    /// The key identifier the CA gave.
    pub key_id: String,
    /// The MAC key, base64url as the CA gives it.
    pub hmac_key: Secret<String>,
}

/// `letsencrypt.dns`: the DNS server taking the `_acme-challenge` TXT records.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DnsConfig {
    /// The provider (only `rfc2136`).
    pub provider: DnsProviderKind,
    /// The zone's primary server, `IP:port`.
    pub server: String,
    /// The zone the records go into (the UPDATE's zone section).
    pub zone: String,
    /// The key the updates are signed with.
    pub tsig: TsigConfig,
    /// The records' TTL in seconds.
    pub ttl: u32,
    /// How long one update may take.
    #[serde(with = "modular_core::humantime_serde")]
    pub timeout: Duration,
}

impl Default for DnsConfig {
    fn default() -> Self {
        Self {
            provider: DnsProviderKind::Rfc2136,
            server: String::new(),
            zone: String::new(),
            tsig: TsigConfig::default(),
            ttl: 60,
            timeout: Duration::from_secs(10),
        }
    }
}

/// `letsencrypt.dns.provider`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DnsProviderKind {
    /// Dynamic updates (RFC 2136) signed with TSIG (RFC 8945).
    #[default]
    Rfc2136,
}

/// `letsencrypt.dns.tsig`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TsigConfig {
    /// The key's name, as the server knows it.
    pub name: String,
    /// The MAC algorithm.
    pub algorithm: TsigAlgorithm,
    /// The key, base64 (as `tsig-keygen` prints it).
    pub secret: Secret<String>,
}

/// `letsencrypt.dns.tsig.algorithm`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum TsigAlgorithm {
    /// HMAC-SHA256.
    #[default]
    HmacSha256,
    /// HMAC-SHA512.
    HmacSha512,
}

/// `letsencrypt.challenge`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum ChallengeType {
    /// A token served at `/.well-known/acme-challenge/{token}` on port 80 (the router).
    #[default]
    #[serde(rename = "http-01")]
    Http01,
    /// A self-signed certificate carrying the key authorization's digest, served by the
    /// resolver to a handshake on port 443 that offers only the `acme-tls/1` protocol
    /// (RFC 8737): no port 80 needed; the HTTPS listener must use `tls.source: service`.
    #[serde(rename = "tls-alpn-01")]
    TlsAlpn01,
    /// A TXT record at `_acme-challenge.<domain>` published through `letsencrypt.dns`: no
    /// listener needed, and the only way to a wildcard name (which uses it whatever this
    /// says).
    #[serde(rename = "dns-01")]
    Dns01,
}

/// `letsencrypt.key_type`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum KeyType {
    /// ECDSA on P-256 with SHA-256.
    #[default]
    EcdsaP256,
    /// ECDSA on P-384 with SHA-384.
    EcdsaP384,
    /// RSA 2048 with PKCS#1 v1.5 SHA-256.
    Rsa2048,
}

impl LetsEncryptConfig {
    fn validate_config(&self) -> Result<(), Vec<FieldError>> {
        let mut errors = Vec::new();
        if !self.directory_url.starts_with("https://") || self.directory_url.len() <= 8 {
            errors.push(FieldError::new(
                "directory_url",
                format!("must be an https:// URL, got {:?}", self.directory_url),
            ));
        }
        if let Some(ca) = &self.directory_ca
            && !ca.is_file()
        {
            errors.push(FieldError::new(
                "directory_ca",
                format!("no such file: {}", ca.display()),
            ));
        }
        if let Some(email) = &self.contact_email
            && (email.is_empty() || !email.contains('@') || email.contains(char::is_whitespace))
        {
            errors.push(FieldError::new(
                "contact_email",
                format!("not an email address: {email:?}"),
            ));
        }
        if let Err(message) = check_storage_dir(&self.storage_dir) {
            errors.push(FieldError::new("storage_dir", message));
        }
        for (path, value) in [
            ("renew_before", self.renew_before),
            ("check_interval", self.check_interval),
            ("retry.initial", self.retry.initial),
            ("retry.max", self.retry.max),
        ] {
            if value.is_zero() {
                errors.push(FieldError::new(path, "must be > 0s, got 0s"));
            }
        }
        if self.retry.max < self.retry.initial {
            errors.push(FieldError::new(
                "retry.max",
                "must be at least retry.initial",
            ));
        }
        let needs_dns = self.challenge == ChallengeType::Dns01
            || self
                .certificates
                .values()
                .flat_map(|c| &c.domains)
                .any(|d| d.starts_with("*."));
        match &self.dns {
            None if needs_dns => errors.push(FieldError::new(
                "dns",
                "dns-01 (challenge: dns-01, or a wildcard domain) needs a dns provider",
            )),
            None => {}
            Some(dns) => check_dns(dns, &mut errors),
        }
        for (name, certificate) in &self.certificates {
            if !is_certificate_name(name) {
                errors.push(FieldError::new(
                    format!("certificates.{name}"),
                    "a certificate name is letters, digits, '-' and '_' (it names its directory)",
                ));
            }
            if certificate.domains.is_empty() {
                errors.push(FieldError::new(
                    format!("certificates.{name}.domains"),
                    "must name at least one domain",
                ));
            }
            for (i, domain) in certificate.domains.iter().enumerate() {
                if let Err(message) = check_domain(domain) {
                    errors.push(FieldError::new(
                        format!("certificates.{name}.domains.{i}"),
                        message,
                    ));
                }
            }
        }
        FieldError::collect(errors)
    }

    /// The account's contact URLs.
    pub(crate) fn contacts(&self) -> Vec<String> {
        self.contact_email
            .iter()
            .map(|email| format!("mailto:{email}"))
            .collect()
    }
}

fn is_certificate_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

fn check_dns(dns: &DnsConfig, errors: &mut Vec<FieldError>) {
    if dns.server.parse::<std::net::SocketAddr>().is_err() {
        errors.push(FieldError::new(
            "dns.server",
            format!("must be an IP address and port, got {:?}", dns.server),
        ));
    }
    if let Err(message) = check_domain(&dns.zone) {
        errors.push(FieldError::new("dns.zone", message));
    }
    if dns.tsig.name.is_empty()
        || dns
            .tsig
            .name
            .split('.')
            .any(|l| l.is_empty() || l.len() > 63)
    {
        errors.push(FieldError::new(
            "dns.tsig.name",
            format!("not a key name: {:?}", dns.tsig.name),
        ));
    }
    // The secret itself is never quoted back.
    if crate::acme::base64url_decode(dns.tsig.secret.expose()).is_none_or(|key| key.is_empty()) {
        errors.push(FieldError::new(
            "dns.tsig.secret",
            "must be a non-empty base64 key",
        ));
    }
    if dns.timeout.is_zero() {
        errors.push(FieldError::new("dns.timeout", "must be > 0s, got 0s"));
    }
}

/// A DNS name a public CA would order: labels of letters, digits and inner hyphens, at most 63
/// characters each and 253 in all, at least two labels, lowercase; or `*.` and such a name
/// (a wildcard, validated by dns-01).
pub(crate) fn check_domain(domain: &str) -> Result<(), String> {
    match domain.strip_prefix("*.") {
        Some(base) => check_name(base).map_err(|e| format!("{domain:?}: {e}")),
        None => check_name(domain),
    }
}

fn check_name(domain: &str) -> Result<(), String> {
    let bad = |why: &str| Err(format!("{domain:?} is not a valid DNS name: {why}"));
    if domain.is_empty() || domain.len() > 253 {
        return bad("empty or longer than 253 characters");
    }
    if domain.bytes().any(|b| b.is_ascii_uppercase()) {
        return bad("use lowercase");
    }
    let labels: Vec<&str> = domain.split('.').collect();
    if labels.len() < 2 {
        return bad("needs at least two labels");
    }
    for label in labels {
        if label.is_empty() || label.len() > 63 {
            return bad("a label is empty or longer than 63 characters");
        }
        if label.starts_with('-') || label.ends_with('-') {
            return bad("a label starts or ends with '-'");
        }
        if !label
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-')
        {
            return bad("only letters, digits and '-' are allowed");
        }
    }
    Ok(())
}

/// Creates the directory (0700) if needed and proves it writable with a probe file.
fn check_storage_dir(dir: &Path) -> Result<(), String> {
    crate::storage::ensure_dir(dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    let probe = dir.join(".write-probe");
    std::fs::write(&probe, b"").map_err(|e| format!("{} is not writable: {e}", dir.display()))?;
    let _ = std::fs::remove_file(&probe);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn domains_are_checked_label_by_label() {
        assert!(check_domain("a.test").is_ok());
        assert!(check_domain("xn--bcher-kva.example").is_ok());
        for bad in [
            "",
            "localhost",
            "a..test",
            "-a.test",
            "a_b.test",
            "A.test",
            "a.test.",
        ] {
            assert!(check_domain(bad).is_err(), "{bad}");
        }
        assert!(check_domain("*.a.test").is_ok());
        assert!(check_domain("*.*.a.test").is_err());
        assert!(check_domain("a.*.test").is_err());
    }
}
