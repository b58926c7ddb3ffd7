//! Shared fixtures: the pebble CA from `cargo xtask services`, applications with the module,
//! the router and the HTTP server on pebble's HTTP-01 port, and TLS clients trusting
//! pebble's issuing root.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use modular_core::events::{AttributesReader as _, EventFilter, EventStream};
use modular_core::{Application, ApplicationBuilder};
use modular_httpserver::HttpServerModule;
use modular_letsencrypt::{LetsEncrypt, LetsEncryptModule};
use modular_router::RouterModule;
use rustls_pki_types::pem::PemObject as _;
use rustls_pki_types::{CertificateDer, ServerName};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio_rustls::rustls;

/// Where pebble validates HTTP-01 (its `httpPort`): the test app's HTTP server listens here.
pub const CHALLENGE_PORT: u16 = 5002;

/// The pebble instance `cargo xtask services` started.
#[derive(Clone, Debug)]
pub struct Pebble {
    /// The directory URL.
    pub url: String,
    /// The CA of pebble's own HTTPS listener.
    pub ca: PathBuf,
    /// The management endpoint (`/roots/0`).
    pub management: String,
}

/// pebble, or `None` (one skip line) without `MODULAR_TEST_PEBBLE_URL`; a failure under
/// `CI=true`, as modular-testkit does for the other services.
pub fn pebble() -> Option<Pebble> {
    let var = |name: &str| std::env::var(name).ok().filter(|v| !v.trim().is_empty());
    match (
        var("MODULAR_TEST_PEBBLE_URL"),
        var("MODULAR_TEST_PEBBLE_CA"),
        var("MODULAR_TEST_PEBBLE_MANAGEMENT_URL"),
    ) {
        (Some(url), Some(ca), Some(management)) => Some(Pebble {
            url,
            ca: PathBuf::from(ca),
            management,
        }),
        _ => {
            let in_ci = var("CI").is_some_and(|v| v.eq_ignore_ascii_case("true") || v == "1");
            assert!(
                !in_ci,
                "MODULAR_TEST_PEBBLE_URL not set and CI=true: run `cargo xtask services`"
            );
            let _ = std::io::stderr()
                .lock()
                .write_all(b"skipped: MODULAR_TEST_PEBBLE_URL not set\n");
            None
        }
    }
}

/// Port 5002 is pebble's one HTTP-01 port: tests that answer challenges take turns.
pub async fn challenge_port() -> tokio::sync::MutexGuard<'static, ()> {
    static PORT: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());
    PORT.lock().await
}

/// Merges `extra` into `base`, object by object.
pub fn merge(base: &mut Value, extra: Value) {
    match (base, extra) {
        (Value::Object(base), Value::Object(extra)) => {
            for (key, value) in extra {
                merge(base.entry(key).or_insert(Value::Null), value);
            }
        }
        (slot, value) => *slot = value,
    }
}

/// The module against `directory` (pebble or a proxy in front of it) storing in `storage`,
/// with the router and the HTTP server on the challenge port, plus `extra`.
pub fn config(pebble: &Pebble, directory: &str, storage: &Path, extra: Value) -> Value {
    let mut config = json!({
        "letsencrypt": {
            "directory_url": directory,
            "directory_ca": pebble.ca,
            "storage_dir": storage,
            "contact_email": "ops@example.test",
            "retry": { "initial": "200ms", "max": "800ms" },
            "certificates": { "web": { "domains": ["a.test", "b.test"] } },
        },
        "httpserver": { "host": "127.0.0.1", "port": CHALLENGE_PORT, "drain_delay": "0s", "shutdown_timeout": "1s" },
    });
    merge(&mut config, extra);
    config
}

/// An application with the module, the router and the HTTP server over `config`.
pub fn builder(config: Value) -> ApplicationBuilder {
    modular_testkit::install_crypto_provider();
    modular_testkit::test_builder()
        .config_defaults(config)
        .module(LetsEncryptModule::new())
        .module(RouterModule::new())
        .module(HttpServerModule::new())
}

/// The module's service.
pub fn service(app: &Application) -> Arc<LetsEncrypt> {
    app.services().require::<LetsEncrypt>().unwrap()
}

/// Subscribes to the module's events.
pub fn subscribe(app: &Application) -> EventStream {
    app.events()
        .subscribe_with_capacity(EventFilter::prefix("com.modular.letsencrypt."), 1024)
}

/// The next event of `kind` (full type) within 90 s (an order with three validations).
pub async fn next_event(events: &mut EventStream, kind: &str) -> Value {
    let deadline = Duration::from_secs(90);
    tokio::time::timeout(deadline, async {
        loop {
            let event = events.recv().await.expect("the bus is open");
            let data = match event.data() {
                Some(cloudevents::Data::Json(value)) => value.clone(),
                _ => Value::Null,
            };
            if event.ty() == kind {
                return data;
            }
            eprintln!("(event {} {data})", event.ty());
        }
    })
    .await
    .unwrap_or_else(|_| panic!("no {kind} within {deadline:?}"))
}

/// pebble's issuing root (it changes at every pebble start), PEM.
pub async fn pebble_root(pebble: &Pebble) -> String {
    let ca = std::fs::read(&pebble.ca).unwrap();
    let client = reqwest::Client::builder()
        .tls_certs_only([reqwest::Certificate::from_pem(&ca).unwrap()])
        .build()
        .unwrap();
    client
        .get(format!("{}/roots/0", pebble.management))
        .send()
        .await
        .unwrap()
        .error_for_status()
        .unwrap()
        .text()
        .await
        .unwrap()
}

/// A TLS client trusting only `root_pem`.
pub fn tls_client(root_pem: &str) -> tokio_rustls::TlsConnector {
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(root_pem.as_bytes()) {
        roots.add(cert.unwrap()).unwrap();
    }
    let mut config = rustls::ClientConfig::builder()
        .with_root_certificates(roots)
        .with_no_client_auth();
    // Every handshake is a full one: a resumed session reports the certificate it started
    // with, not the one served now.
    config.resumption = rustls::client::Resumption::disabled();
    tokio_rustls::TlsConnector::from(Arc::new(config))
}

/// The chain a verified handshake with `name` at `addr` presents (DER, leaf first).
pub async fn handshake(
    connector: &tokio_rustls::TlsConnector,
    addr: std::net::SocketAddr,
    name: &str,
) -> std::io::Result<(
    tokio_rustls::client::TlsStream<tokio::net::TcpStream>,
    Vec<CertificateDer<'static>>,
)> {
    let tcp = tokio::net::TcpStream::connect(addr).await?;
    let server_name = ServerName::try_from(name.to_owned()).unwrap();
    let stream = connector.connect(server_name, tcp).await?;
    let chain = stream
        .get_ref()
        .1
        .peer_certificates()
        .unwrap_or_default()
        .to_vec();
    Ok((stream, chain))
}

/// The serial (lowercase hex) and issuer of a DER certificate.
pub fn serial_and_issuer(der: &CertificateDer<'_>) -> (String, String) {
    let (_, cert) = x509_parser::parse_x509_certificate(der.as_ref()).unwrap();
    let serial = cert
        .raw_serial()
        .iter()
        .skip_while(|b| **b == 0)
        .map(|b| format!("{b:02x}"))
        .collect();
    (serial, cert.issuer().to_string())
}

/// A TLS echo server answering with `resolver`, on a free loopback port.
pub async fn echo_server(
    resolver: Arc<dyn rustls::server::ResolvesServerCert>,
) -> std::net::SocketAddr {
    let config = rustls::ServerConfig::builder()
        .with_no_client_auth()
        .with_cert_resolver(resolver);
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((tcp, _)) = listener.accept().await else {
                return;
            };
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let Ok(mut tls) = acceptor.accept(tcp).await else {
                    return;
                };
                let mut buf = [0u8; 64];
                while let Ok(n) = tls.read(&mut buf).await {
                    if n == 0 || tls.write_all(&buf[..n]).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    addr
}

/// Writes and reads back one message on an open TLS connection.
pub async fn echo(stream: &mut tokio_rustls::client::TlsStream<tokio::net::TcpStream>) -> bool {
    if stream.write_all(b"ping").await.is_err() {
        return false;
    }
    let mut buf = [0u8; 4];
    matches!(
        tokio::time::timeout(Duration::from_secs(5), stream.read_exact(&mut buf)).await,
        Ok(Ok(_))
    ) && &buf == b"ping"
}

/// The health report of certificate `name`.
pub async fn report(app: &Application, name: &str) -> modular_core::health::HealthReport {
    let health = app
        .services()
        .require::<modular_core::health::HealthAggregator>()
        .unwrap();
    health
        .force_refresh()
        .await
        .reports
        .iter()
        .find(|r| r.module == "letsencrypt" && r.component == name)
        .cloned()
        .unwrap_or_else(|| panic!("no report for {name}"))
}

/// The DNS-01 setup `cargo xtask services` started: bind9 with the zone `example.test`
/// taking TSIG-signed updates, and a second pebble resolving through it.
#[derive(Clone, Debug)]
pub struct DnsSetup {
    /// The pebble resolving through bind9.
    pub pebble: Pebble,
    /// bind9's address.
    pub server: String,
    /// The TSIG key's name.
    pub key_name: String,
    /// The TSIG key, base64.
    pub secret: String,
}

/// The DNS-01 setup, or `None` (one skip line) when bind9 or the second pebble is not up;
/// a failure under `CI=true`.
pub fn dns_setup() -> Option<DnsSetup> {
    let var = |name: &str| std::env::var(name).ok().filter(|v| !v.trim().is_empty());
    let (Some(url), Some(ca), Some(management), Some(server), Some(key)) = (
        var("MODULAR_TEST_PEBBLE_DNS_URL"),
        var("MODULAR_TEST_PEBBLE_CA"),
        var("MODULAR_TEST_PEBBLE_DNS_MANAGEMENT_URL"),
        var("MODULAR_TEST_BIND9_ADDR"),
        var("MODULAR_TEST_BIND9_TSIG_KEY"),
    ) else {
        let in_ci = var("CI").is_some_and(|v| v.eq_ignore_ascii_case("true") || v == "1");
        assert!(
            !in_ci,
            "MODULAR_TEST_PEBBLE_DNS_URL / MODULAR_TEST_BIND9_* not set and CI=true: run `cargo xtask services`"
        );
        let _ = std::io::stderr()
            .lock()
            .write_all(b"skipped: MODULAR_TEST_PEBBLE_DNS_URL not set\n");
        return None;
    };
    // `key "modular-acme" { algorithm hmac-sha256; secret "…"; };` as tsig-keygen writes it.
    let text = std::fs::read_to_string(&key).unwrap();
    let quoted = |after: &str| {
        let rest = &text[text.find(after).unwrap() + after.len()..];
        let rest = &rest[rest.find('"').unwrap() + 1..];
        rest[..rest.find('"').unwrap()].to_owned()
    };
    Some(DnsSetup {
        pebble: Pebble {
            url,
            ca: PathBuf::from(ca),
            management,
        },
        server,
        key_name: quoted("key"),
        secret: quoted("secret"),
    })
}

/// The TXT values at `name`, asked of `server` over UDP (a bare RFC 1035 query).
pub async fn txt_records(server: &str, name: &str) -> Vec<String> {
    let mut query = vec![0x12, 0x34, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0];
    for label in name.split('.') {
        query.push(label.len() as u8);
        query.extend_from_slice(label.as_bytes());
    }
    query.extend_from_slice(&[0, 0, 16, 0, 1]);
    let socket = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    socket.send_to(&query, server).await.unwrap();
    let mut buf = vec![0u8; 4096];
    let n = tokio::time::timeout(Duration::from_secs(5), socket.recv(&mut buf))
        .await
        .expect("bind9 answers")
        .unwrap();
    let answer = &buf[..n];
    let count = u16::from_be_bytes([answer[6], answer[7]]);
    let mut at = query.len();
    let mut values = Vec::new();
    for _ in 0..count {
        // The owner: a compression pointer to the question, or labels.
        loop {
            let len = answer[at];
            if len & 0xc0 == 0xc0 {
                at += 2;
                break;
            }
            at += 1 + len as usize;
            if len == 0 {
                break;
            }
        }
        let rdlength = u16::from_be_bytes([answer[at + 8], answer[at + 9]]) as usize;
        let rdata = &answer[at + 10..at + 10 + rdlength];
        values.push(String::from_utf8_lossy(&rdata[1..1 + rdata[0] as usize]).into_owned());
        at += 10 + rdlength;
    }
    values
}
