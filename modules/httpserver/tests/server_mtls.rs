//! Mutual TLS: `tls.client_ca` with `client_auth: required` or `optional`, client certificates
//! from a test CA (rcgen), a reload that swaps the CA for new handshakes, and bad CA files
//! rejected with their key path at build and on reload.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::path::{Path, PathBuf};
use std::time::Duration;

use modular_core::ReloadStatus;
use modular_core::health::HealthStatus;
use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose,
};
use support::{Identity, TestApp, Ticking, build, server_yaml, tls_connect_as};
use tokio::time::Instant;
use tokio_rustls::rustls::pki_types::PrivateKeyDer;

/// A certificate authority for client certificates, its certificate written to `<name>.crt`.
struct Ca {
    issuer: CertifiedIssuer<'static, KeyPair>,
    path: PathBuf,
}

impl Ca {
    fn new(dir: &Path, name: &str) -> Self {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name.push(DnType::CommonName, name);
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let issuer = CertifiedIssuer::self_signed(params, KeyPair::generate().unwrap()).unwrap();
        let path = dir.join(format!("{name}.crt"));
        std::fs::write(&path, issuer.pem()).unwrap();
        Self { issuer, path }
    }

    /// A client certificate signed by this CA.
    fn client(&self, name: &str) -> Identity {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.distinguished_name.push(DnType::CommonName, name);
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        let key = KeyPair::generate().unwrap();
        let cert = params.signed_by(&key, &self.issuer).unwrap();
        (
            vec![cert.der().clone()],
            PrivateKeyDer::Pkcs8(key.serialize_der().into()),
        )
    }
}

fn clone((chain, key): &Identity) -> Identity {
    (chain.clone(), key.clone_key())
}

fn mtls_yaml(client_ca: &Path, client_auth: &str) -> String {
    format!(
        "{}  tls:\n    enabled: true\n    domains: [localhost]\n    client_ca: {}\n    client_auth: {client_auth}\n",
        server_yaml(),
        client_ca.display()
    )
}

/// `GET /hello` on a new connection presenting `identity`: the answer, or why there was none
/// (with TLS 1.3 the server's refusal arrives after the client's handshake, on the first read).
async fn hello_as(test: &TestApp, identity: Option<Identity>) -> anyhow::Result<(u16, String)> {
    tls_connect_as(test.port, identity)
        .await?
        .get("/hello")
        .await
}

fn served(answer: anyhow::Result<(u16, String)>) -> bool {
    matches!(answer, Ok((200, ref body)) if body == "hello")
}

/// Which of three clients a server with `client_auth: mode` serves: one with a certificate
/// from its CA, one without a certificate, one with another CA's certificate.
async fn who_is_served(mode: &str) -> anyhow::Result<[bool; 3]> {
    let dir = tempfile::tempdir()?;
    let (ours, theirs) = (Ca::new(dir.path(), "ours"), Ca::new(dir.path(), "theirs"));
    let test = build(&mtls_yaml(&ours.path, mode)).await?.start().await?;
    Ok([
        served(hello_as(&test, Some(ours.client("alice"))).await),
        served(hello_as(&test, None).await),
        served(hello_as(&test, Some(theirs.client("mallory"))).await),
    ])
}

#[tokio::test]
async fn required_client_certificates_serve_the_cas_clients_and_refuse_the_others()
-> anyhow::Result<()> {
    assert_eq!(who_is_served("required").await?, [true, false, false]);
    Ok(())
}

#[tokio::test]
async fn optional_client_certificates_serve_clients_without_one_but_still_verify_those_sent()
-> anyhow::Result<()> {
    assert_eq!(who_is_served("optional").await?, [true, true, false]);
    Ok(())
}

#[tokio::test]
async fn a_reload_to_another_ca_refuses_the_old_clients_on_new_handshakes() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let (old, new) = (Ca::new(dir.path(), "old"), Ca::new(dir.path(), "new"));
    let test = build(&mtls_yaml(&old.path, "required"))
        .await?
        .start()
        .await?;
    let alice = old.client("alice");
    let mut open = tls_connect_as(test.port, Some(clone(&alice))).await?;
    assert_eq!(open.get("/hello").await?.0, 200);

    test.write_config(&mtls_yaml(&new.path, "required"))?;
    let outcome = test.app.reload().await?;
    assert_eq!(outcome.status, ReloadStatus::Applied, "{outcome:?}");

    let refused = hello_as(&test, Some(alice)).await;
    assert!(
        refused.is_err(),
        "the old CA's client was served: {refused:?}"
    );
    assert!(served(hello_as(&test, Some(new.client("bob"))).await));
    // The connection authenticated before the reload keeps its session.
    assert_eq!(open.get("/hello").await?, (200, "hello".to_owned()));
    Ok(())
}

#[tokio::test(start_paused = true)]
async fn new_content_in_the_client_ca_file_is_picked_up_by_the_file_watcher() -> anyhow::Result<()>
{
    let _ticking = Ticking::every(Duration::from_millis(10));
    let dir = tempfile::tempdir()?;
    let (old, new) = (Ca::new(dir.path(), "old"), Ca::new(dir.path(), "new"));
    let served_path = dir.path().join("clients.crt");
    std::fs::copy(&old.path, &served_path)?;
    let yaml = format!(
        "{}    watch_interval: 2s\n",
        mtls_yaml(&served_path, "required")
    );
    let test = build(&yaml).await?.start().await?;
    assert!(served(hello_as(&test, Some(old.client("alice"))).await));

    // A bad replacement is ignored: the CA in force stays, and health says so until a good
    // one arrives.
    let aggregator = test.app.health().expect("aggregator").clone();
    let client_ca = || async {
        let health = aggregator.force_refresh().await;
        health
            .report("httpserver", "client_ca")
            .cloned()
            .expect("a client_ca report")
    };
    assert_eq!(client_ca().await.status, HealthStatus::Healthy);
    std::fs::write(&served_path, "not a certificate")?;
    let began = Instant::now();
    let degraded = loop {
        let report = client_ca().await;
        if report.status == HealthStatus::Degraded {
            break report;
        }
        assert!(
            began.elapsed() < Duration::from_secs(10),
            "the watcher never saw the bad file: {report:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(
        degraded.message.contains("cannot be loaded"),
        "{degraded:?}"
    );
    assert!(served(hello_as(&test, Some(old.client("alice"))).await));

    // Kubernetes-style: the same path gets the new CA.
    std::fs::copy(&new.path, &served_path)?;
    let began = Instant::now();
    while hello_as(&test, Some(old.client("alice"))).await.is_ok() {
        assert!(
            began.elapsed() < Duration::from_secs(10),
            "the watcher never swapped the CA"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    assert!(served(hello_as(&test, Some(new.client("bob"))).await));
    assert_eq!(client_ca().await.status, HealthStatus::Healthy);
    Ok(())
}

#[tokio::test]
async fn a_bad_client_ca_fails_the_build_with_its_key_path() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let garbage = dir.path().join("garbage.crt");
    std::fs::write(&garbage, "not a certificate")?;
    for path in [garbage, dir.path().join("missing.crt")] {
        let error = match build(&mtls_yaml(&path, "required")).await {
            Ok(_) => anyhow::bail!("built with client_ca {}", path.display()),
            Err(error) => format!("{error:#}"),
        };
        assert!(error.contains("httpserver.tls.client_ca"), "{error}");
        assert!(error.contains(&*path.to_string_lossy()), "{error}");
    }
    Ok(())
}

#[tokio::test]
async fn a_bad_client_ca_fails_the_reload_with_its_key_path_and_the_running_ca_stays()
-> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let ours = Ca::new(dir.path(), "ours");
    let test = build(&mtls_yaml(&ours.path, "required"))
        .await?
        .start()
        .await?;
    let garbage = dir.path().join("garbage.crt");
    std::fs::write(&garbage, "not a certificate")?;

    test.write_config(&mtls_yaml(&garbage, "optional"))?;
    let outcome = test.app.reload().await?;
    assert_eq!(outcome.status, ReloadStatus::Failed, "{outcome:?}");
    let error = outcome.error.clone().unwrap_or_default();
    assert!(error.contains("httpserver.tls.client_ca"), "{error}");

    // Still the old CA, still required.
    assert!(served(hello_as(&test, Some(ours.client("alice"))).await));
    assert!(hello_as(&test, None).await.is_err());
    Ok(())
}

#[tokio::test]
async fn a_client_ca_without_tls_is_rejected_with_its_path() -> anyhow::Result<()> {
    let yaml = format!("{}  tls:\n    client_ca: /etc/ca.crt\n", server_yaml());
    let error = format!("{:#}", build(&yaml).await.err().expect("rejected"));
    assert!(
        error.contains("httpserver.tls.client_ca: is only read with enabled: true"),
        "{error}"
    );
    Ok(())
}
