//! [`HttpServerConfig`]: the `httpserver` section, which fields reload at runtime and why the
//! others do not.

use std::path::PathBuf;
use std::time::Duration;

use modular_core::health::ProviderConfig;
use modular_core::{DynamicConfig, FieldError};
use serde::{Deserialize, Serialize};

/// The `httpserver` configuration section.
///
/// | field | dynamic | why |
/// |---|---|---|
/// | `host`, `port` | no | the listening socket is bound once; moving it would drop every connection |
/// | `request_timeout`, `header_read_timeout`, `idle_timeout` | yes | read when a connection is accepted: new connections get the new values, open ones keep theirs |
/// | `max_body_size` | yes | as the timeouts: applies to connections accepted after the reload |
/// | `max_connections` | yes | read by the accept loop before every accept |
/// | `drain_delay`, `shutdown_timeout` | yes | read when the server stops |
/// | `tls.enabled` | no | switching between HTTP and HTTPS changes what clients must speak on the port |
/// | `tls.source`, `tls.service` | no | the TLS acceptor is built once with its certificate resolver; with `source: service` the registered resolver (letsencrypt) swaps certificates itself |
/// | `tls.cert_file`, `tls.key_file`, `tls.domains` | yes | the new certificate is loaded aside and swapped in; open connections keep their session, new handshakes see the new certificate |
/// | `tls.watch_interval`, `tls.expiry_warning` | yes | read by the file watcher and the health check at each round |
/// | `tls.client_ca`, `tls.client_auth` | yes | the CA is loaded aside and a new TLS configuration swapped in; new handshakes are verified against it, open connections keep their session |
/// | `health.timeout`, `health.optional` | yes | the health registration's options are replaced at commit; the next check runs under them |
///
/// ```yaml
/// httpserver:
///   host: 0.0.0.0
///   port: 8443
///   request_timeout: 60s        # time to answer a request's headers; 0s: none
///   header_read_timeout: 10s    # time for a client to send its request headers
///   idle_timeout: 60s           # a keep-alive connection idle this long is closed; 0s: never
///   max_body_size: 2097152      # bytes
///   max_connections: 10000
///   drain_delay: 5s             # keep serving after readiness fails, so load balancers drain
///   shutdown_timeout: 20s       # then wait this long for in-flight requests
///   tls:
///     enabled: true
///     cert_file: /etc/tls/tls.crt   # PEM chain, leaf first
///     key_file: /etc/tls/tls.key    # PEM private key (PKCS#8, PKCS#1 or SEC1)
///     # or, without cert_file: a self-signed certificate for these names
///     domains: [localhost]
///     watch_interval: 30s       # re-read the files when their content changes; 0s: never
///     expiry_warning: 14days    # health turns degraded this long before expiry
///     client_ca: /etc/tls/clients-ca.crt  # mutual TLS: client certificates must chain to it
///     client_auth: required     # or optional: asked for, verified when sent
///   health:
///     timeout: 500ms            # the check's deadline (default 500ms); > 0s, at most 60s
///     optional: false           # true: a failing listener check never fails readiness
/// ```
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, DynamicConfig)]
#[serde(deny_unknown_fields, default)]
#[config(validate = "Self::validate_config")]
pub struct HttpServerConfig {
    /// The address to listen on (`0.0.0.0`, `::`, `127.0.0.1`). Static.
    pub host: String,
    /// The port to listen on; `0` picks a free one. Static.
    pub port: u16,
    /// The longest a request may take to produce its response headers (`503` past it);
    /// `0s` turns it off.
    #[config(dynamic)]
    #[serde(with = "humantime_serde")]
    pub request_timeout: Duration,
    /// The longest a client may take to send a request's headers (HTTP/1), the HTTP/2
    /// connection preface or, with TLS, to finish the handshake; the connection is closed past
    /// it. HTTP/2 frames between requests (PING, WINDOW_UPDATE) are not timed by it: an HTTP/2
    /// connection with no request in flight is governed by `idle_timeout`.
    #[config(dynamic)]
    #[serde(with = "humantime_serde")]
    pub header_read_timeout: Duration,
    /// A connection with no request in flight for this long is closed gracefully (HTTP/2:
    /// GOAWAY), whatever frames the client sends meanwhile; `0s` keeps it open.
    #[config(dynamic)]
    #[serde(with = "humantime_serde")]
    pub idle_timeout: Duration,
    /// The largest request body in bytes (`413 Payload Too Large` beyond it).
    #[config(dynamic)]
    pub max_body_size: u64,
    /// The most connections served at once; further clients wait in the listen backlog.
    #[config(dynamic)]
    pub max_connections: usize,
    /// How long the server keeps serving after readiness turns unhealthy, before it stops
    /// accepting (load balancers need this to take the instance out of rotation).
    #[config(dynamic)]
    #[serde(with = "humantime_serde")]
    pub drain_delay: Duration,
    /// After the drain delay, how long in-flight requests may take to finish before their
    /// connections are closed.
    #[config(dynamic)]
    #[serde(with = "humantime_serde")]
    pub shutdown_timeout: Duration,
    /// HTTPS.
    #[config(nested)]
    pub tls: TlsConfig,
    /// The health registration: the check's deadline (default [`DEFAULT_HEALTH_TIMEOUT`];
    /// the self-connection must be accepted within it) and whether a failure leaves readiness
    /// alone. Dynamic.
    #[config(nested)]
    pub health: ProviderConfig,
}

/// The health registration's deadline when `health.timeout` is unset.
pub const DEFAULT_HEALTH_TIMEOUT: Duration = Duration::from_millis(500);

impl Default for HttpServerConfig {
    fn default() -> Self {
        Self {
            host: "0.0.0.0".to_owned(),
            port: 8080,
            request_timeout: Duration::from_secs(60),
            header_read_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(60),
            max_body_size: 2 * 1024 * 1024,
            max_connections: 10_000,
            drain_delay: Duration::from_secs(5),
            shutdown_timeout: Duration::from_secs(20),
            tls: TlsConfig::default(),
            health: ProviderConfig::default(),
        }
    }
}

impl HttpServerConfig {
    fn validate_config(&self) -> Result<(), Vec<FieldError>> {
        let mut errors = Vec::new();
        if self.host.parse::<std::net::IpAddr>().is_err() && self.host != "localhost" {
            errors.push(FieldError::new(
                "host",
                format!("must be an IP address or localhost, got {:?}", self.host),
            ));
        }
        if self.max_connections == 0 {
            errors.push(FieldError::new("max_connections", "must be > 0, got 0"));
        }
        if self.max_body_size == 0 {
            errors.push(FieldError::new("max_body_size", "must be > 0, got 0"));
        }
        if self.header_read_timeout.is_zero() {
            errors.push(FieldError::new(
                "header_read_timeout",
                "must be > 0s, got 0s",
            ));
        }
        FieldError::collect(errors)
    }
}

/// `httpserver.tls`: HTTPS from certificate files or a self-signed certificate.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, DynamicConfig)]
#[serde(deny_unknown_fields, default)]
#[config(validate = "Self::validate_config")]
pub struct TlsConfig {
    /// Serve HTTPS instead of HTTP. Static.
    pub enabled: bool,
    /// Where certificates come from: `config` (the files below, or a self-signed certificate
    /// for `domains`; the default) or `service` (the `ResolvesServerCert` another module
    /// registered in the service registry, such as letsencrypt). Static.
    pub source: TlsSource,
    /// With `source: service`: the name the resolver is registered under; unset for the
    /// unnamed one. Static.
    pub service: Option<String>,
    /// The certificate chain (PEM, leaf first).
    #[config(dynamic)]
    pub cert_file: Option<PathBuf>,
    /// The private key (PEM).
    #[config(dynamic)]
    pub key_file: Option<PathBuf>,
    /// Without `cert_file`: the names of a self-signed certificate generated at start.
    #[config(dynamic)]
    pub domains: Vec<String>,
    /// How often the certificate files are checked for new content; `0s` never.
    #[config(dynamic)]
    #[serde(with = "humantime_serde")]
    pub watch_interval: Duration,
    /// The certificate health turns degraded this long before the certificate expires.
    #[config(dynamic)]
    #[serde(with = "humantime_serde")]
    pub expiry_warning: Duration,
    /// Mutual TLS: the CA bundle (PEM) client certificates must chain to; unset, no client
    /// certificate is asked for. Dynamic: a reload loads it aside and swaps the verifier in,
    /// for new handshakes (open connections keep the session they authenticated).
    #[config(dynamic)]
    pub client_ca: Option<PathBuf>,
    /// With `client_ca`: `required` (a handshake without a client certificate is refused) or
    /// `optional` (asked for, and checked against `client_ca` when one is sent). Dynamic, as
    /// `client_ca`.
    #[config(dynamic)]
    pub client_auth: ClientAuth,
}

/// `httpserver.tls.client_auth`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ClientAuth {
    /// Every client must present a certificate from `client_ca`.
    #[default]
    Required,
    /// A client may present one; it is verified when it does.
    Optional,
}

impl Default for TlsConfig {
    fn default() -> Self {
        Self {
            enabled: false,
            source: TlsSource::Config,
            service: None,
            cert_file: None,
            key_file: None,
            domains: Vec::new(),
            watch_interval: Duration::from_secs(30),
            expiry_warning: Duration::from_secs(14 * 24 * 60 * 60),
            client_ca: None,
            client_auth: ClientAuth::Required,
        }
    }
}

impl TlsConfig {
    fn validate_config(&self) -> Result<(), Vec<FieldError>> {
        let mut errors = Vec::new();
        if self.client_ca.is_some() && !self.enabled {
            errors.push(FieldError::new(
                "client_ca",
                "is only read with enabled: true",
            ));
        }
        if self.source == TlsSource::Service {
            for (path, set) in [
                ("cert_file", self.cert_file.is_some()),
                ("key_file", self.key_file.is_some()),
                ("domains", !self.domains.is_empty()),
            ] {
                if set {
                    errors.push(FieldError::new(
                        path,
                        "must not be set with source: service (the registered resolver serves the certificates)",
                    ));
                }
            }
            return FieldError::collect(errors);
        }
        if self.service.is_some() {
            errors.push(FieldError::new(
                "service",
                "is only read with source: service",
            ));
        }
        match (&self.cert_file, &self.key_file) {
            (Some(_), None) => errors.push(FieldError::new("key_file", "must be set when cert_file is set")),
            (None, Some(_)) => errors.push(FieldError::new("cert_file", "must be set when key_file is set")),
            (None, None) if self.enabled && self.domains.is_empty() => errors.push(FieldError::new(
                "domains",
                "must name at least one domain for a self-signed certificate when no cert_file is set",
            )),
            _ => {}
        }
        for (i, domain) in self.domains.iter().enumerate() {
            if domain.is_empty() || domain.contains(char::is_whitespace) {
                errors.push(FieldError::new(
                    format!("domains.{i}"),
                    format!("must be a DNS name or IP address, got {domain:?}"),
                ));
            }
        }
        FieldError::collect(errors)
    }

    /// Where the certificate comes from.
    pub fn source(&self) -> CertificateSource<'_> {
        match (&self.cert_file, &self.key_file) {
            (Some(cert), Some(key)) => CertificateSource::Files { cert, key },
            _ => CertificateSource::SelfSigned {
                domains: &self.domains,
            },
        }
    }
}

/// `httpserver.tls.source`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TlsSource {
    /// Certificate files, or a self-signed certificate for `domains`.
    #[default]
    Config,
    /// A `ResolvesServerCert` registered in the service registry by another module.
    Service,
}

/// Where the served certificate comes from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CertificateSource<'a> {
    /// PEM files.
    Files {
        /// The chain.
        cert: &'a PathBuf,
        /// The key.
        key: &'a PathBuf,
    },
    /// Generated at start (and on reload) for these names.
    SelfSigned {
        /// The subject alternative names.
        domains: &'a [String],
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid() {
        assert!(HttpServerConfig::default().validate().is_ok());
    }

    #[test]
    fn tls_needs_a_key_with_a_certificate_and_names_without_one() {
        let tls = TlsConfig {
            enabled: true,
            cert_file: Some(PathBuf::from("tls.crt")),
            ..TlsConfig::default()
        };
        assert_eq!(tls.validate().unwrap_err()[0].path, "key_file");
        let tls = TlsConfig {
            enabled: true,
            ..TlsConfig::default()
        };
        assert_eq!(tls.validate().unwrap_err()[0].path, "domains");
    }

    #[test]
    fn client_auth_reads_required_and_optional() {
        for (text, mode) in [
            ("required", ClientAuth::Required),
            ("optional", ClientAuth::Optional),
        ] {
            let parsed: ClientAuth = serde_json::from_value(serde_json::json!(text)).unwrap();
            assert_eq!(parsed, mode);
        }
        assert!(serde_json::from_value::<ClientAuth>(serde_json::json!("sometimes")).is_err());
    }

    #[test]
    fn zero_connections_are_rejected_with_the_value() {
        let config = HttpServerConfig {
            max_connections: 0,
            ..HttpServerConfig::default()
        };
        let errors = config.validate().unwrap_err();
        assert_eq!(errors[0].path, "max_connections");
        assert_eq!(errors[0].message, "must be > 0, got 0");
    }
}
