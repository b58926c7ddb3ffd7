//! Shared fixtures: a stand-in `router` module that publishes a `ServedRouter` (so these tests
//! need no other module crate), an application on a temp config file, and a TLS client that
//! records the server's certificate.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context as _;
use axum::Router;
use axum::body::Body;
use axum::extract::State;
use axum::routing::{get, post};
use hyper_util::rt::TokioIo;
use modular_core::config::ConfigHandle;
use modular_core::health::HealthOptions;
use modular_core::http::ServedRouter;
use modular_core::reload::ReloadOptions;
use modular_core::{
    Application, BoxError, ConfigChange, DynamicConfig, InitContext, Module, ReloadContext,
    Reloadable,
};
use modular_httpserver::{HttpServerHandle, HttpServerModule};
use serde::{Deserialize, Serialize};
use tokio::sync::Semaphore;
use tokio_rustls::rustls;
use tokio_rustls::rustls::client::danger::{
    HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier,
};
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use tokio_rustls::rustls::{DigitallySignedStruct, SignatureScheme};

/// The `router` section of the stand-in router.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, DynamicConfig)]
#[serde(deny_unknown_fields, default)]
pub struct FakeRouterConfig {
    #[config(dynamic)]
    pub greeting: String,
}

impl Default for FakeRouterConfig {
    fn default() -> Self {
        Self {
            greeting: "hello".to_owned(),
        }
    }
}

/// Lets a test hold a request inside its handler: `GET /wait` signals `entered`, then waits
/// for a permit on `release`.
#[derive(Debug)]
pub struct Gate {
    pub entered: Semaphore,
    pub release: Semaphore,
}

impl Default for Gate {
    fn default() -> Self {
        Self {
            entered: Semaphore::new(0),
            release: Semaphore::new(0),
        }
    }
}

impl Gate {
    pub async fn wait_entered(&self) {
        self.entered.acquire().await.expect("gate open").forget();
    }

    pub fn open(&self) {
        self.release.add_permits(1);
    }
}

/// A module named `router` that serves a few routes through a `ServedRouter`, and rebuilds
/// them when `router.greeting` changes.
pub struct FakeRouter {
    pub gate: Arc<Gate>,
}

fn routes(greeting: &str, gate: Arc<Gate>) -> Router {
    let greeting = greeting.to_owned();
    Router::new()
        .route("/hello", get(move || async move { greeting }))
        .route(
            "/slow",
            get(|| async {
                tokio::time::sleep(Duration::from_millis(500)).await;
                "slow"
            }),
        )
        .route(
            "/wait",
            get(|State(gate): State<Arc<Gate>>| async move {
                gate.entered.add_permits(1);
                gate.release.acquire().await.expect("gate open").forget();
                "released"
            }),
        )
        .route(
            "/echo",
            post(|body: axum::body::Bytes| async move { body.len().to_string() }),
        )
        .with_state(gate)
}

struct FakeReload {
    served: Arc<ServedRouter>,
    gate: Arc<Gate>,
}

#[modular_core::async_trait]
impl Reloadable for FakeReload {
    async fn prepare(
        &self,
        ctx: &ReloadContext,
        _changes: &[ConfigChange],
    ) -> Result<modular_core::PreparedReload, BoxError> {
        let config = ctx
            .new_config::<FakeRouterConfig>()
            .ok_or("no router section")?;
        let router = routes(&config.greeting, Arc::clone(&self.gate));
        let served = Arc::clone(&self.served);
        Ok(modular_core::PreparedReload::new(move || {
            served.replace(router)
        }))
    }
}

#[modular_core::async_trait]
impl Module for FakeRouter {
    fn name(&self) -> &str {
        "router"
    }

    async fn init(&mut self, ctx: &mut InitContext<'_>) -> Result<(), BoxError> {
        let config: ConfigHandle<FakeRouterConfig> = ctx.config()?;
        let served = Arc::new(ServedRouter::new(routes(
            &config.get().greeting,
            Arc::clone(&self.gate),
        )));
        ctx.services().register(Arc::clone(&served));
        ctx.register_reloadable(Arc::new(FakeReload {
            served,
            gate: Arc::clone(&self.gate),
        }));
        Ok(())
    }
}

/// An application with the stand-in router and the HTTP server, on a temp config file.
pub struct TestApp {
    pub app: Application,
    pub dir: tempfile::TempDir,
    pub config: PathBuf,
    /// The bound port, once started (the configs ask for port 0).
    pub port: u16,
    pub gate: Arc<Gate>,
}

/// The server part of every test config: loopback, port 0 (the address is read back from
/// the started server), no drain delay.
pub fn server_yaml() -> String {
    server_yaml_on(0)
}

/// [`server_yaml`] with HTTPS from certificate files, and `extra` lines under `tls:`.
pub fn tls_yaml(cert: &Path, key: &Path, extra: &str) -> String {
    format!(
        "{}  tls:\n    enabled: true\n    cert_file: {}\n    key_file: {}\n{extra}",
        server_yaml(),
        cert.display(),
        key.display()
    )
}

/// [`server_yaml`] on a given port.
pub fn server_yaml_on(port: u16) -> String {
    format!(
        "httpserver:\n  host: 127.0.0.1\n  port: {port}\n  drain_delay: 0s\n  shutdown_timeout: 5s\n"
    )
}

pub async fn build(yaml: &str) -> anyhow::Result<TestApp> {
    build_with(yaml, |b| b).await
}

pub async fn build_with(
    yaml: &str,
    customize: impl FnOnce(modular_core::ApplicationBuilder) -> modular_core::ApplicationBuilder,
) -> anyhow::Result<TestApp> {
    modular_testkit::install_crypto_provider();
    let dir = tempfile::tempdir()?;
    let config = dir.path().join("config.yaml");
    std::fs::write(&config, yaml)?;
    let gate = Arc::new(Gate::default());
    let builder = Application::builder()
        .config_file(&config)
        .env_prefix(None)
        .module(FakeRouter {
            gate: Arc::clone(&gate),
        })
        .module(HttpServerModule::new())
        .with_reload_options(ReloadOptions {
            watch_files: false,
            health_gate: false,
            ..ReloadOptions::default()
        })
        .with_health_options(HealthOptions::default().with_cache_ttl(Duration::ZERO))
        .handle_signals(false);
    let app = customize(builder).build().await?;
    Ok(TestApp {
        app,
        dir,
        config,
        port: 0,
        gate,
    })
}

impl TestApp {
    /// Starts the application and reads the bound port back (the listener is bound once
    /// `start` returns).
    pub async fn start(mut self) -> anyhow::Result<Self> {
        self.app.start().await?;
        self.port = self
            .app
            .services()
            .require::<HttpServerHandle>()?
            .local_addr()
            .context("the server is not listening")?
            .port();
        Ok(self)
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    pub fn write_config(&self, yaml: &str) -> anyhow::Result<()> {
        std::fs::write(&self.config, yaml).context("write config")
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }
}

pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .build()
        .expect("client")
}

/// A certificate for `localhost` with a chosen serial, valid from `not_before` to `not_after`
/// (`(year, month, day)`), written as PEM to `<dir>/<name>.crt` and `<name>.key`.
pub fn write_certificate(
    dir: &Path,
    name: &str,
    serial: &[u8],
    not_before: (i32, u8, u8),
    not_after: (i32, u8, u8),
) -> (PathBuf, PathBuf) {
    let mut params = rcgen::CertificateParams::new(vec!["localhost".to_owned()]).expect("params");
    params.serial_number = Some(rcgen::SerialNumber::from_slice(serial));
    params.not_before = rcgen::date_time_ymd(not_before.0, not_before.1, not_before.2);
    params.not_after = rcgen::date_time_ymd(not_after.0, not_after.1, not_after.2);
    let key = rcgen::KeyPair::generate().expect("key");
    let cert = params.self_signed(&key).expect("certificate");
    let cert_path = dir.join(format!("{name}.crt"));
    let key_path = dir.join(format!("{name}.key"));
    std::fs::write(&cert_path, cert.pem()).expect("write certificate");
    std::fs::write(&key_path, key.serialize_pem()).expect("write key");
    (cert_path, key_path)
}

/// `(year, month, day)` `days` from today.
pub fn days_from_now(days: i64) -> (i32, u8, u8) {
    use chrono::Datelike;
    let date = chrono::Utc::now() + chrono::TimeDelta::days(days);
    (date.year(), date.month() as u8, date.day() as u8)
}

/// Accepts any server certificate and records the leaf of every handshake.
#[derive(Debug, Default)]
pub struct RecordingVerifier {
    pub seen: Mutex<Vec<CertificateDer<'static>>>,
}

impl ServerCertVerifier for RecordingVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        self.seen
            .lock()
            .unwrap()
            .push(end_entity.clone().into_owned());
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &provider().signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &provider().signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        provider()
            .signature_verification_algorithms
            .supported_schemes()
    }
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    modular_testkit::install_crypto_provider();
    rustls::crypto::CryptoProvider::get_default()
        .cloned()
        .expect("crypto provider")
}

/// An HTTP/1.1 keep-alive connection over TLS, with the serial of the certificate its
/// handshake saw.
pub struct TlsConnection {
    pub sender: hyper::client::conn::http1::SendRequest<Body>,
    pub serial: String,
}

/// A client certificate chain and its key, for mutual TLS.
pub type Identity = (Vec<CertificateDer<'static>>, PrivateKeyDer<'static>);

/// A TLS connection to the server offering `alpn`, accepting any server certificate: the
/// stream and the serial of the certificate its handshake saw.
pub async fn tls_stream(
    port: u16,
    alpn: &[u8],
) -> anyhow::Result<(
    tokio_rustls::client::TlsStream<tokio::net::TcpStream>,
    String,
)> {
    tls_stream_as(port, alpn, None).await
}

/// [`tls_stream`], presenting `identity` as the client certificate when asked.
pub async fn tls_stream_as(
    port: u16,
    alpn: &[u8],
    identity: Option<Identity>,
) -> anyhow::Result<(
    tokio_rustls::client::TlsStream<tokio::net::TcpStream>,
    String,
)> {
    let verifier = Arc::new(RecordingVerifier::default());
    let builder = rustls::ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()?
        .dangerous()
        .with_custom_certificate_verifier(Arc::clone(&verifier) as Arc<dyn ServerCertVerifier>);
    let mut config = match identity {
        Some((chain, key)) => builder.with_client_auth_cert(chain, key)?,
        None => builder.with_no_client_auth(),
    };
    config.alpn_protocols = vec![alpn.to_vec()];
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let tcp = tokio::net::TcpStream::connect(("127.0.0.1", port)).await?;
    tcp.set_nodelay(true)?;
    let stream = connector
        .connect(ServerName::try_from("localhost")?, tcp)
        .await?;
    let leaf = verifier
        .seen
        .lock()
        .unwrap()
        .last()
        .cloned()
        .context("no certificate seen")?;
    let (_, parsed) = x509_parser::parse_x509_certificate(leaf.as_ref())?;
    Ok((stream, modular_httpserver::serial_hex(parsed.raw_serial())))
}

pub async fn tls_connect(port: u16) -> anyhow::Result<TlsConnection> {
    tls_connect_as(port, None).await
}

/// [`tls_connect`] with a client certificate.
pub async fn tls_connect_as(
    port: u16,
    identity: Option<Identity>,
) -> anyhow::Result<TlsConnection> {
    let (stream, serial) = tls_stream_as(port, b"http/1.1", identity).await?;
    let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
    tokio::spawn(connection);
    Ok(TlsConnection { sender, serial })
}

impl TlsConnection {
    /// `GET path` on this connection: status and body.
    pub async fn get(&mut self, path: &str) -> anyhow::Result<(u16, String)> {
        self.sender.ready().await?;
        let request = http::Request::get(path)
            .header(http::header::HOST, "localhost")
            .body(Body::empty())?;
        let response = self.sender.send_request(request).await?;
        let status = response.status().as_u16();
        let body = axum::body::to_bytes(Body::new(response.into_body()), 1 << 20).await?;
        Ok((status, String::from_utf8(body.to_vec())?))
    }
}

/// Keeps a short timer pending for the life of the guard. Paused time jumps to the next timer
/// whenever the runtime parks, also while a socket read is on its way; with this timer the
/// jump is at most `every`, so the server's timers cannot fire while the client waits on I/O.
pub struct Ticking(tokio::task::JoinHandle<()>);

impl Ticking {
    pub fn every(every: Duration) -> Self {
        Self(tokio::spawn(async move {
            loop {
                tokio::time::sleep(every).await;
            }
        }))
    }
}

impl Drop for Ticking {
    fn drop(&mut self) {
        self.0.abort();
    }
}
