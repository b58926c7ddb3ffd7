//! `httpclient.tls`: a private CA is trusted after a reload adds it (and only it with
//! `ca_only`), a client certificate is presented to a server that requires one, and a file that
//! cannot be used fails the reload with its key path while the running client stays.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

use modular_core::ReloadStatus;
use modular_httpclient::HttpClient;
use rustls::RootCertStore;
use rustls::server::WebPkiClientVerifier;
use rustls_pki_types::pem::PemObject as _;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use serde_json::json;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpListener;

use modular_testkit::TestCa as Ca;

/// The names the test leaves are for.
const LOCAL: &[&str] = &["127.0.0.1", "localhost"];

/// An HTTPS server on port 0 that answers every request with `client-cert: yes|no`. With
/// `client_ca` it requires a client certificate signed by that CA.
struct TlsServer {
    addr: SocketAddr,
    task: tokio::task::JoinHandle<()>,
}

impl TlsServer {
    async fn start(cert: &Path, key: &Path, client_ca: Option<&Path>) -> TlsServer {
        modular_core::install_default_crypto_provider();
        let chain = CertificateDer::pem_file_iter(cert)
            .unwrap()
            .collect::<Result<Vec<_>, _>>()
            .unwrap();
        let key = PrivateKeyDer::from_pem_file(key).unwrap();
        let builder = rustls::ServerConfig::builder();
        let config = match client_ca {
            None => builder.with_no_client_auth(),
            Some(ca) => {
                let mut roots = RootCertStore::empty();
                for cert in CertificateDer::pem_file_iter(ca).unwrap() {
                    roots.add(cert.unwrap()).unwrap();
                }
                let verifier = WebPkiClientVerifier::builder(Arc::new(roots))
                    .build()
                    .unwrap();
                builder.with_client_cert_verifier(verifier)
            }
        }
        .with_single_cert(chain, key)
        .unwrap();
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                let acceptor = acceptor.clone();
                tokio::spawn(async move {
                    let Ok(mut tls) = acceptor.accept(stream).await else {
                        return;
                    };
                    let presented = tls.get_ref().1.peer_certificates().is_some();
                    let mut head = Vec::new();
                    let mut buf = [0u8; 1024];
                    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                        match tls.read(&mut buf).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => head.extend_from_slice(&buf[..n]),
                        }
                    }
                    let body = if presented {
                        "client-cert: yes"
                    } else {
                        "client-cert: no"
                    };
                    let answer = format!(
                        "HTTP/1.1 200 OK\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                        body.len()
                    );
                    let _ = tls.write_all(answer.as_bytes()).await;
                    let _ = tls.shutdown().await;
                });
            }
        });
        TlsServer { addr, task }
    }

    fn url(&self) -> String {
        format!("https://{}/", self.addr)
    }
}

impl Drop for TlsServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn reload(app: &modular_core::Application, key: &str, value: serde_json::Value) {
    let outcome = app.set_override(key, value).await.unwrap();
    assert_eq!(outcome.status, ReloadStatus::Applied, "{outcome:?}");
}

fn overrides<const N: usize>(
    pairs: [(&str, serde_json::Value); N],
) -> std::collections::BTreeMap<String, serde_json::Value> {
    pairs.into_iter().map(|(k, v)| (k.to_owned(), v)).collect()
}

fn path(p: &Path) -> serde_json::Value {
    json!(p.display().to_string())
}

#[tokio::test]
async fn a_private_ca_added_by_reload_is_trusted_by_the_next_request() {
    let ca = Ca::new("private root");
    let (cert, key) = ca.leaf("server", LOCAL);
    let server = TlsServer::start(&cert, &key, None).await;
    let app = support::app_with("httpclient:\n  retry:\n    max_retries: 0\n")
        .await
        .unwrap();
    let client = app.services().get::<HttpClient>().unwrap();

    // The platform's roots do not know the private CA.
    let error = client.get(server.url()).send().await.unwrap_err();
    assert!(error.is_connect(), "{error}");

    reload(
        &app,
        "httpclient.tls.ca_files",
        json!([path(&ca.ca_file())]),
    )
    .await;
    let answer = client.get(server.url()).send().await.unwrap();
    assert_eq!(answer.text().await.unwrap(), "client-cert: no");

    // `ca_only` trusts the listed CAs alone: another CA's server is refused even though the
    // first CA stays trusted.
    let other = Ca::new("other root");
    let (other_cert, other_key) = other.leaf("server", LOCAL);
    let other_server = TlsServer::start(&other_cert, &other_key, None).await;
    reload(&app, "httpclient.tls.ca_only", json!(true)).await;
    assert!(client.get(other_server.url()).send().await.is_err());
    assert_eq!(client.get(server.url()).send().await.unwrap().status(), 200);
}

#[tokio::test]
async fn a_client_certificate_added_by_reload_is_presented_to_a_server_that_requires_one() {
    let server_ca = Ca::new("server root");
    let client_ca = Ca::new("client root");
    let (cert, key) = server_ca.leaf("server", LOCAL);
    let server = TlsServer::start(&cert, &key, Some(&client_ca.ca_file())).await;
    let yaml = format!(
        "httpclient:\n  retry:\n    max_retries: 0\n  tls:\n    ca_files: [{}]\n",
        server_ca.ca_file().display()
    );
    let app = support::app_with(&yaml).await.unwrap();
    let client = app.services().get::<HttpClient>().unwrap();

    // Without a certificate the server ends the handshake.
    assert!(client.get(server.url()).send().await.is_err());

    let (client_cert, client_key) = client_ca.leaf("client", LOCAL);
    let outcome = app
        .set_overrides(overrides([
            ("httpclient.tls.client_cert_file", path(&client_cert)),
            ("httpclient.tls.client_key_file", path(&client_key)),
        ]))
        .await
        .unwrap();
    assert_eq!(outcome.status, ReloadStatus::Applied, "{outcome:?}");
    let answer = client.get(server.url()).send().await.unwrap();
    assert_eq!(answer.text().await.unwrap(), "client-cert: yes");

    // A certificate from a CA the server does not trust is refused again.
    let stranger = Ca::new("stranger root");
    let (stranger_cert, stranger_key) = stranger.leaf("client", LOCAL);
    let outcome = app
        .set_overrides(overrides([
            ("httpclient.tls.client_cert_file", path(&stranger_cert)),
            ("httpclient.tls.client_key_file", path(&stranger_key)),
        ]))
        .await
        .unwrap();
    assert_eq!(outcome.status, ReloadStatus::Applied, "{outcome:?}");
    assert!(client.get(server.url()).send().await.is_err());
}

#[tokio::test]
async fn an_unusable_tls_file_fails_the_reload_with_its_key_path_and_keeps_the_running_client() {
    let ca = Ca::new("private root");
    let (cert, key) = ca.leaf("server", LOCAL);
    let server = TlsServer::start(&cert, &key, None).await;
    // Four failed reloads in a row: the breaker must not open on the way.
    let yaml = format!(
        "reload:\n  breaker: {{ threshold: 10 }}\nhttpclient:\n  tls:\n    ca_files: [{}]\n",
        ca.ca_file().display()
    );
    let app = support::app_with(&yaml).await.unwrap();
    let client = app.services().get::<HttpClient>().unwrap();
    let generation = client.generation();

    let missing = ca.dir.path().join("missing.pem");
    let not_pem = ca.dir.path().join("not.pem");
    std::fs::write(&not_pem, "just text\n").unwrap();
    let key_text = std::fs::read_to_string(&key).unwrap();
    for (key_path, value, field) in [
        (
            "httpclient.tls.ca_files",
            json!([path(&ca.ca_file()), path(&missing)]),
            "tls.ca_files.1",
        ),
        (
            "httpclient.tls.ca_files",
            json!([path(&not_pem)]),
            "tls.ca_files.0",
        ),
    ] {
        let outcome = app.set_override(key_path, value).await.unwrap();
        assert_eq!(outcome.status, ReloadStatus::Failed, "{outcome:?}");
        let error = outcome.error.clone().unwrap_or_default();
        assert!(error.contains(field), "{field} in {error}");
    }
    // A key file that holds a certificate, not a key: named as the key file, its contents
    // never quoted.
    let outcome = app
        .set_overrides(overrides([
            ("httpclient.tls.client_cert_file", path(&cert)),
            ("httpclient.tls.client_key_file", path(&cert)),
        ]))
        .await
        .unwrap();
    assert_eq!(outcome.status, ReloadStatus::Failed, "{outcome:?}");
    let error = outcome.error.clone().unwrap_or_default();
    assert!(error.contains("tls.client_key_file"), "{error}");
    assert!(!error.contains("BEGIN"), "{error}");
    assert!(!error.contains(key_text.lines().nth(1).unwrap()), "{error}");

    // A certificate without its key is refused by validation, with the missing key's path.
    let outcome = app
        .set_override("httpclient.tls.client_cert_file", path(&cert))
        .await
        .unwrap();
    assert_eq!(outcome.status, ReloadStatus::Rejected, "{outcome:?}");
    assert!(
        outcome
            .errors
            .iter()
            .any(|e| e.to_string().contains("tls.client_key_file")),
        "{outcome:?}"
    );

    assert_eq!(client.generation(), generation);
    assert_eq!(client.get(server.url()).send().await.unwrap().status(), 200);
}
