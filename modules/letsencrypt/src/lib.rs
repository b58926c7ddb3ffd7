//! The **letsencrypt** module of modular: certificates from an ACME CA (Let's Encrypt, its
//! staging environment, or any RFC 8555 CA such as pebble), kept in a storage directory,
//! served per SNI name through the TLS resolver seam, renewed before they expire.
//!
//! `docs/letsencrypt.md` says how it fits and why it is built this way.
//!
//! # A guided tour
//!
//! - [`LetsEncryptModule`] reads the `letsencrypt` section ([`LetsEncryptConfig`]). At init
//!   it loads every stored certificate that is still usable and serves it at once, without
//!   contacting the CA, so a restart with the CA unreachable keeps serving.
//! - [`CertificateResolver`] is rustls's `ResolvesServerCert`, registered in the service
//!   registry (`modular_core::tls`); httpserver serves it with `tls.source: service`. A
//!   handshake looks the SNI name up (exact, then the wildcard one label up) in a table that
//!   is swapped whole when a certificate is issued, renewed or removed. A name without a
//!   certificate, and every handshake before the first issuance, fails the handshake with an
//!   alert (or, with `self_signed_fallback: true`, gets a self-signed certificate for the
//!   configured domains until the CA's arrives); nothing panics.
//! - The renewal task orders what is missing, what no longer covers its configured domains
//!   and what is within `renew_before` of expiry, with instant-acme: the account is loaded
//!   from storage or created (External Account Binding when configured) and stored; HTTP-01
//!   challenges are answered at `/.well-known/acme-challenge/{token}`, a route added to the
//!   core route registry (the router module serves it; the CA connects on port 80, or the
//!   CA's configured HTTP port); with `challenge: tls-alpn-01` the resolver answers the CA's
//!   `acme-tls/1` handshakes on the HTTPS listener itself (RFC 8737); with `challenge:
//!   dns-01`, and always for a wildcard name, a TXT record is published through a
//!   [`DnsProvider`] ([`Rfc2136Provider`]: TSIG-signed RFC 2136 updates, `letsencrypt.dns`)
//!   and removed when the order ends. Keys are ECDSA P-256 by default (P-384, RSA 2048
//!   optional).
//!   Failures are retried with exponential backoff and jitter; one order per certificate at
//!   a time.
//! - [`LetsEncrypt`] is the service in the registry: each certificate's
//!   [`CertificateStatus`], [`LetsEncrypt::renew`] to order one again now.
//! - Storage (`storage_dir`): created 0700, every file 0600, written to a synced temporary
//!   file renamed over the old one.
//!
//! ```yaml
//! letsencrypt:
//!   directory_url: https://acme-v02.api.letsencrypt.org/directory   # static, https only
//!   contact_email: ops@example.com
//!   storage_dir: /var/lib/myapp/acme     # static; 0700
//!   renew_before: 30days
//!   certificates:
//!     web:
//!       domains: [example.com, www.example.com]
//!     wild:
//!       domains: ["*.example.com"]        # validated by dns-01
//!   dns:
//!     provider: rfc2136
//!     server: 192.0.2.53:53
//!     zone: example.com
//!     tsig: { name: acme-key, algorithm: hmac-sha256, secret: "${TSIG_SECRET}" }
//! httpserver:
//!   port: 443
//!   tls: { enabled: true, source: service }
//! ```
//!
//! (Port 80 must reach the router for HTTP-01: a second listener, or a port forward.)
//!
//! # Dynamic fields
//!
//! `certificates` (add or remove certificates and domains: a new order while the old
//! certificate keeps serving; a removed certificate leaves the resolver at commit),
//! `contact_email` (updated at the CA), `challenge`, `dns`, `self_signed_fallback`, `key_type`, `renew_before`,
//! `check_interval`, `retry.*`, `startup_grace`, `health.*`. Static: `directory_url`,
//! `directory_ca`, `external_account`, `storage_dir`, `resolver_name` (see
//! [`LetsEncryptConfig`] for why).
//!
//! # Health
//!
//! One report per certificate (component = its name), see `health.rs`: healthy while valid
//! beyond `renew_before` (or while a renewal has not failed yet); degraded inside the
//! renewal window with the last attempt failed, or while not yet issued within
//! `startup_grace`; unhealthy when expired or never issued after the grace. Details carry
//! `not_after`, `days_left`, `serial`, `issuer`, `failures`, `last_error`.
//!
//! # Events
//!
//! From `/modular/modules/letsencrypt`:
//!
//! | type | data |
//! |---|---|
//! | `com.modular.letsencrypt.certificate.issued` | `certificate`, `domains`, `serial`, `not_after` |
//! | `com.modular.letsencrypt.certificate.renewed` | as `issued` |
//! | `com.modular.letsencrypt.certificate.renewal_failed` | `certificate`, `error`, `attempt`, `retry_in_ms` |
//! | `com.modular.letsencrypt.certificate.expiring` | `certificate`, `not_after`, `days_left` (once per certificate when its renewal window opens) |
//!
//! # Metrics
//!
//! See [`metrics`]: `modular_letsencrypt_certificate_expiry_days{certificate}`,
//! `modular_letsencrypt_issuances_total{certificate,outcome}`.
//!
//! # Features
//!
//! None. Not yet offered: ACME Renewal Information (pebble 2.4, the CA tested against, has
//! none).

mod acme;
mod certificate;
mod challenge;
mod config;
mod dns;
mod error;
mod health;
mod manager;
pub mod metrics;
mod module;
mod resolver;
mod rfc2136;
mod storage;

pub use challenge::CHALLENGE_PATH;
pub use config::{
    CertificateConfig, ChallengeType, DnsConfig, DnsProviderKind, ExternalAccount, KeyType,
    LETS_ENCRYPT_PRODUCTION, LETS_ENCRYPT_STAGING, LetsEncryptConfig, RetryConfig, TsigAlgorithm,
    TsigConfig,
};
pub use dns::DnsProvider;
pub use error::LetsEncryptError;
pub use manager::{CertificateStatus, LetsEncrypt};
pub use module::LetsEncryptModule;
pub use resolver::CertificateResolver;
pub use rfc2136::Rfc2136Provider;
