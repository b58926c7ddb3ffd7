//! TLS to backends: a pool's `https://` backends are reached through a hyper-util pooled
//! client over a tokio-rustls connector built from `pools.<name>.tls` (trusted CAs, server
//! name, client certificate) and the pool's protocol (ALPN `h2` for `h2`, `http/1.1`
//! otherwise).
//!
//! The client is built when the table is built (start, or a reload's prepare step: aside,
//! then swapped with the table). A reload whose TLS material is unchanged (same settings,
//! same file contents) keeps the previous client and so its pooled connections; one with a
//! rotated file or new settings gets a new client, while requests already running finish
//! on the old one.

use std::future::Future;
use std::path::Path;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::Body;
use hyper::body::Incoming;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::{Connected, Connection};
use hyper_util::rt::{TokioExecutor, TokioIo};
use modular_core::FieldError;
use rustls::RootCertStore;
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use sha2::{Digest as _, Sha256};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;

use crate::config::{PoolTlsConfig, Protocol};
use crate::error::ReverseProxyError;
use crate::upstream::SendError;

/// The connect timeout (TCP and the TLS handshake) to a backend.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// One pool's TLS client.
pub(crate) struct PoolTls {
    /// What it was built from: settings, protocol and the files' bytes, hashed.
    fingerprint: [u8; 32],
    pub(crate) client: Client<TlsConnector, Body>,
    server_name: Option<String>,
    custom_ca: bool,
    client_cert: bool,
}

impl std::fmt::Debug for PoolTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the key material: only what is configured.
        f.debug_struct("PoolTls")
            .field("server_name", &self.server_name)
            .field("custom_ca", &self.custom_ca)
            .field("client_cert", &self.client_cert)
            .finish_non_exhaustive()
    }
}

/// Syntax checks of `pools.<name>.tls` (the files are read when the table is built).
pub(crate) fn validate(
    tls: &PoolTlsConfig,
    path: &dyn Fn(&str) -> String,
    errors: &mut Vec<FieldError>,
) {
    if let Some(name) = &tls.server_name
        && ServerName::try_from(name.as_str()).is_err()
    {
        errors.push(FieldError::new(
            path("tls.server_name"),
            format!("`{name}` is not a DNS name or IP address"),
        ));
    }
    match (&tls.client_cert_file, &tls.client_key_file) {
        (Some(_), None) => errors.push(FieldError::new(
            path("tls.client_key_file"),
            "client_cert_file needs client_key_file",
        )),
        (None, Some(_)) => errors.push(FieldError::new(
            path("tls.client_cert_file"),
            "client_key_file needs client_cert_file",
        )),
        _ => {}
    }
}

fn read(pool: &str, field: &str, path: &Path) -> Result<Vec<u8>, ReverseProxyError> {
    std::fs::read(path).map_err(|error| invalid(pool, field, path, &error.to_string()))
}

fn invalid(pool: &str, field: &str, path: &Path, reason: &str) -> ReverseProxyError {
    ReverseProxyError::Invalid {
        path: format!("pools.{pool}.tls.{field}"),
        message: format!("`{}`: {reason}", path.display()),
    }
}

impl PoolTls {
    /// The client of pool `name`, or `previous` when nothing it was built from changed.
    pub(crate) fn build(
        name: &str,
        config: Option<&PoolTlsConfig>,
        protocol: Protocol,
        previous: Option<&Arc<PoolTls>>,
    ) -> Result<Arc<PoolTls>, ReverseProxyError> {
        let default = PoolTlsConfig::default();
        let config = config.unwrap_or(&default);
        let mut hasher = Sha256::new();
        hasher.update(format!("{protocol:?}|{:?}|", config.server_name).as_bytes());
        let ca = match &config.ca_file {
            Some(path) => {
                let pem = read(name, "ca_file", path)?;
                hasher.update(&pem);
                Some((path, pem))
            }
            None => None,
        };
        hasher.update(b"|");
        let identity = match (&config.client_cert_file, &config.client_key_file) {
            (Some(cert), Some(key)) => {
                let chain = read(name, "client_cert_file", cert)?;
                let key_pem = read(name, "client_key_file", key)?;
                hasher.update(&chain);
                hasher.update(b"|");
                hasher.update(&key_pem);
                Some(((cert, chain), (key, key_pem)))
            }
            _ => None,
        };
        let fingerprint: [u8; 32] = hasher.finalize().into();
        if let Some(previous) = previous
            && previous.fingerprint == fingerprint
        {
            return Ok(Arc::clone(previous));
        }

        let mut roots = RootCertStore::empty();
        match &ca {
            Some((path, pem)) => {
                let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(pem)
                    .collect::<Result<_, _>>()
                    .map_err(|e| invalid(name, "ca_file", path, &format!("bad PEM: {e}")))?;
                if certs.is_empty() {
                    return Err(invalid(
                        name,
                        "ca_file",
                        path,
                        "no PEM certificate in the file",
                    ));
                }
                for cert in certs {
                    roots.add(cert).map_err(|e| {
                        invalid(name, "ca_file", path, &format!("unusable certificate: {e}"))
                    })?;
                }
            }
            None => {
                let native = rustls_native_certs::load_native_certs();
                roots.add_parsable_certificates(native.certs);
            }
        }
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let builder = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| ReverseProxyError::Invalid {
                path: format!("pools.{name}.tls"),
                message: e.to_string(),
            })?
            .with_root_certificates(roots);
        let mut tls = match &identity {
            None => builder.with_no_client_auth(),
            Some(((cert, chain), (key, key_pem))) => {
                let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(chain)
                    .collect::<Result<_, _>>()
                    .map_err(|e| {
                        invalid(name, "client_cert_file", cert, &format!("bad PEM: {e}"))
                    })?;
                if chain.is_empty() {
                    return Err(invalid(
                        name,
                        "client_cert_file",
                        cert,
                        "no PEM certificate in the file",
                    ));
                }
                // The key's parse error is not shown: it could quote key material.
                let private = PrivateKeyDer::from_pem_slice(key_pem).map_err(|_| {
                    invalid(name, "client_key_file", key, "no usable PEM private key")
                })?;
                builder.with_client_auth_cert(chain, private).map_err(|e| {
                    invalid(
                        name,
                        "client_key_file",
                        key,
                        &format!("does not match client_cert_file: {e}"),
                    )
                })?
            }
        };
        let h2 = protocol == Protocol::H2;
        tls.alpn_protocols = if h2 {
            vec![b"h2".to_vec()]
        } else {
            vec![b"http/1.1".to_vec()]
        };
        let server_name = match &config.server_name {
            Some(server) => Some(ServerName::try_from(server.clone()).map_err(|_| {
                ReverseProxyError::Invalid {
                    path: format!("pools.{name}.tls.server_name"),
                    message: format!("`{server}` is not a DNS name or IP address"),
                }
            })?),
            None => None,
        };
        let connector = TlsConnector {
            tls: tokio_rustls::TlsConnector::from(Arc::new(tls)),
            server_name,
        };
        let client = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(60))
            .pool_max_idle_per_host(256)
            .http2_only(h2)
            .build(connector);
        Ok(Arc::new(PoolTls {
            fingerprint,
            client,
            server_name: config.server_name.clone(),
            custom_ca: config.ca_file.is_some(),
            client_cert: identity.is_some(),
        }))
    }

    /// Sends `request` (absolute `https://` URI) on the pool's TLS client. A failed
    /// connection or handshake is a connect error carrying its cause.
    pub(crate) async fn send(
        &self,
        request: http::Request<Body>,
    ) -> Result<http::Response<Incoming>, SendError> {
        self.client.request(request).await.map_err(|error| {
            if error.is_connect() {
                SendError::Connect(std::io::Error::other(chain(&error)))
            } else {
                SendError::Legacy(error)
            }
        })
    }
}

/// `error: cause: cause ...`.
fn chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let next = cause.to_string();
        if !text.contains(&next) {
            text.push_str(": ");
            text.push_str(&next);
        }
        source = cause.source();
    }
    text
}

/// Connects TCP, then TLS with the pool's settings; the URI's host is the server name
/// unless the pool names one.
#[derive(Clone)]
pub(crate) struct TlsConnector {
    tls: tokio_rustls::TlsConnector,
    server_name: Option<ServerName<'static>>,
}

impl tower::Service<http::Uri> for TlsConnector {
    type Response = TlsIo;
    type Error = std::io::Error;
    type Future = Pin<Box<dyn Future<Output = Result<TlsIo, std::io::Error>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, uri: http::Uri) -> Self::Future {
        let this = self.clone();
        Box::pin(async move {
            let host = uri
                .host()
                .ok_or_else(|| std::io::Error::other("backend URI without host"))?
                .trim_start_matches('[')
                .trim_end_matches(']')
                .to_owned();
            let port = uri.port_u16().unwrap_or(443);
            let name = match this.server_name {
                Some(name) => name,
                None => ServerName::try_from(host.clone()).map_err(|_| {
                    std::io::Error::other(format!("`{host}` is not a TLS server name"))
                })?,
            };
            let connect = async {
                let tcp = TcpStream::connect((host.as_str(), port)).await?;
                let _ = tcp.set_nodelay(true);
                this.tls.connect(name, tcp).await
            };
            let stream = tokio::time::timeout(CONNECT_TIMEOUT, connect)
                .await
                .map_err(|_| {
                    std::io::Error::new(
                        std::io::ErrorKind::TimedOut,
                        format!("no TLS connection within {CONNECT_TIMEOUT:?}"),
                    )
                })??;
            Ok(TlsIo(TokioIo::new(stream)))
        })
    }
}

/// A TLS connection to a backend, telling the client whether ALPN chose HTTP/2.
pub(crate) struct TlsIo(TokioIo<TlsStream<TcpStream>>);

impl Connection for TlsIo {
    fn connected(&self) -> Connected {
        let h2 = self.0.inner().get_ref().1.alpn_protocol() == Some(b"h2");
        let connected = Connected::new();
        if h2 {
            connected.negotiated_h2()
        } else {
            connected
        }
    }
}

impl hyper::rt::Read for TlsIo {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: hyper::rt::ReadBufCursor<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.0).poll_read(cx, buf)
    }
}

impl hyper::rt::Write for TlsIo {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.0).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.0).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.0).poll_shutdown(cx)
    }

    fn is_write_vectored(&self) -> bool {
        self.0.is_write_vectored()
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.0).poll_write_vectored(cx, bufs)
    }
}

/// The TLS client for `backend` of `pool`, when it is an `https://` one.
pub(crate) fn of<'a>(
    pool: &'a crate::table::Pool,
    backend: &crate::backend::Backend,
) -> Option<&'a PoolTls> {
    if backend.https {
        pool.tls.as_deref()
    } else {
        None
    }
}

/// The URI scheme requests to `backend` carry.
pub(crate) fn scheme(backend: &crate::backend::Backend) -> http::uri::Scheme {
    if backend.https {
        http::uri::Scheme::HTTPS
    } else {
        http::uri::Scheme::HTTP
    }
}
