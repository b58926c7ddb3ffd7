//! HTTPS: self-signed start-up, certificate rotation by config and by file, expiry health.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::time::Duration;

use modular_core::ReloadStatus;
use modular_core::events::{EventFilter, event_data};
use modular_core::health::HealthStatus;
use modular_httpserver::HttpServerHandle;
use support::{build, days_from_now, server_yaml, tls_connect, tls_yaml, write_certificate};

#[tokio::test]
async fn a_self_signed_certificate_is_served_for_the_configured_domains() -> anyhow::Result<()> {
    let yaml = format!(
        "{}  tls:\n    enabled: true\n    domains: [localhost]\n",
        server_yaml()
    );
    let test = build(&yaml).await?.start().await?;
    let mut connection = tls_connect(test.port).await?;
    assert_eq!(connection.get("/hello").await?, (200, "hello".to_owned()));
    let handle = test.app.services().require::<HttpServerHandle>()?;
    let served = handle.certificate().expect("a certificate");
    assert_eq!(served.source, "self_signed");
    assert_eq!(served.serial, connection.serial);
    Ok(())
}

#[tokio::test]
async fn a_certificate_rotated_by_config_reaches_new_handshakes_while_open_connections_keep_working()
-> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let (cert_a, key_a) =
        write_certificate(dir.path(), "a", &[0x0a, 0x01], (2020, 1, 1), (2099, 1, 1));
    let (cert_b, key_b) =
        write_certificate(dir.path(), "b", &[0x0b, 0x02], (2020, 1, 1), (2099, 1, 1));
    let test = build(&tls_yaml(&cert_a, &key_a, "")).await?.start().await?;
    let mut events = test
        .app
        .events()
        .subscribe(EventFilter::exact("com.modular.httpserver.tls.reloaded"));

    let mut open = tls_connect(test.port).await?;
    assert_eq!(open.serial, "0a01");
    assert_eq!(open.get("/hello").await?.0, 200);

    test.write_config(&tls_yaml(&cert_b, &key_b, ""))?;
    let outcome = test.app.reload().await?;
    assert_eq!(outcome.status, ReloadStatus::Applied, "{outcome:?}");

    let mut fresh = tls_connect(test.port).await?;
    assert_eq!(fresh.serial, "0b02");
    assert_eq!(fresh.get("/hello").await?.0, 200);
    // The keep-alive connection opened before the rotation still answers.
    assert_eq!(open.get("/hello").await?, (200, "hello".to_owned()));

    let event = events.try_recv().expect("tls.reloaded event");
    let data = event_data(&event).expect("event data");
    assert_eq!(data["serial"], "0b02");
    assert_eq!(data["previous_serial"], "0a01");
    assert_eq!(data["trigger"], "config");
    Ok(())
}

#[tokio::test]
async fn certificate_files_replaced_in_place_are_picked_up_by_the_watcher() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let (cert, key) = write_certificate(dir.path(), "tls", &[0x01], (2020, 1, 1), (2099, 1, 1));
    let test = build(&tls_yaml(&cert, &key, "    watch_interval: 50ms\n"))
        .await?
        .start()
        .await?;
    let mut events = test
        .app
        .events()
        .subscribe(EventFilter::exact("com.modular.httpserver.tls.reloaded"));
    let mut open = tls_connect(test.port).await?;
    assert_eq!(open.serial, "01");

    // Kubernetes-style: the same paths get new content.
    write_certificate(dir.path(), "tls", &[0x02], (2020, 1, 1), (2099, 1, 1));
    let event = tokio::time::timeout(Duration::from_secs(10), events.recv())
        .await?
        .expect("tls.reloaded event");
    assert_eq!(
        event_data(&event).map(|d| d["trigger"].clone()),
        Some("file".into())
    );

    assert_eq!(tls_connect(test.port).await?.serial, "02");
    assert_eq!(open.get("/hello").await?.0, 200);
    Ok(())
}

#[tokio::test]
async fn certificate_health_degrades_near_expiry_and_fails_once_expired() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let cases = [
        (
            days_from_now(-30),
            days_from_now(5),
            HealthStatus::Degraded,
            "expires in",
        ),
        (
            days_from_now(-30),
            days_from_now(-1),
            HealthStatus::Unhealthy,
            "expired at",
        ),
        (
            days_from_now(-30),
            days_from_now(365),
            HealthStatus::Healthy,
            "valid until",
        ),
    ];
    for (i, (from, until, expected, message)) in cases.into_iter().enumerate() {
        let (cert, key) =
            write_certificate(dir.path(), &format!("c{i}"), &[0x10 + i as u8], from, until);
        let test = build(&tls_yaml(&cert, &key, "")).await?.start().await?;
        let health = test.app.health().expect("aggregator").force_refresh().await;
        let report = health
            .report("httpserver", "certificate")
            .expect("certificate report");
        assert_eq!(report.status, expected, "{report:?}");
        assert!(report.message.contains(message), "{report:?}");
        assert_eq!(report.details["serial"], format!("{:02x}", 0x10 + i));
    }
    Ok(())
}

#[tokio::test]
async fn unreadable_replacement_files_keep_the_old_certificate_and_degrade_health()
-> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let (cert, key) = write_certificate(dir.path(), "tls", &[0x01], (2020, 1, 1), (2099, 1, 1));
    let test = build(&tls_yaml(&cert, &key, "    watch_interval: 50ms\n"))
        .await?
        .start()
        .await?;
    let aggregator = test.app.health().expect("aggregator").clone();

    std::fs::write(&cert, "not a certificate")?;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    let report = loop {
        let health = aggregator.force_refresh().await;
        let report = health
            .report("httpserver", "certificate")
            .cloned()
            .expect("report");
        if report.status != HealthStatus::Healthy || tokio::time::Instant::now() > deadline {
            break report;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(report.status, HealthStatus::Degraded, "{report:?}");
    assert!(
        report.message.contains("serving the previous certificate"),
        "{report:?}"
    );
    assert_eq!(tls_connect(test.port).await?.serial, "01");

    // Good content again: rotated, healthy.
    write_certificate(dir.path(), "tls", &[0x03], (2020, 1, 1), (2099, 1, 1));
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let health = aggregator.force_refresh().await;
        let report = health
            .report("httpserver", "certificate")
            .cloned()
            .expect("report");
        if report.status == HealthStatus::Healthy {
            assert_eq!(report.details["serial"], "03");
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "never recovered: {report:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Ok(())
}

/// A module that registers a certificate resolver in the service registry, as letsencrypt
/// does: the certificate seam.
struct ResolverOwner {
    resolver: std::sync::Arc<dyn tokio_rustls::rustls::server::ResolvesServerCert>,
    name: Option<&'static str>,
}

#[modular_core::async_trait]
impl modular_core::Module for ResolverOwner {
    fn name(&self) -> &str {
        "certificates"
    }

    async fn init(
        &mut self,
        ctx: &mut modular_core::InitContext<'_>,
    ) -> Result<(), modular_core::BoxError> {
        modular_core::tls::register_resolver(ctx.services(), self.name, self.resolver.clone());
        Ok(())
    }
}

/// Always serves one certificate, generated with `serial`.
fn fixed_resolver(
    serial: &[u8],
) -> std::sync::Arc<dyn tokio_rustls::rustls::server::ResolvesServerCert> {
    let mut params = rcgen::CertificateParams::new(vec!["localhost".to_owned()]).unwrap();
    params.serial_number = Some(rcgen::SerialNumber::from_slice(serial));
    let key = rcgen::KeyPair::generate().unwrap();
    let cert = params.self_signed(&key).unwrap();
    let der = rustls_pki_types::PrivateKeyDer::try_from(key.serialize_der()).unwrap();
    modular_testkit::install_crypto_provider();
    let provider = tokio_rustls::rustls::crypto::CryptoProvider::get_default().unwrap();
    let signing = provider.key_provider.load_private_key(der).unwrap();
    let certified = std::sync::Arc::new(tokio_rustls::rustls::sign::CertifiedKey::new(
        vec![cert.der().clone()],
        signing,
    ));
    #[derive(Debug)]
    struct Fixed(std::sync::Arc<tokio_rustls::rustls::sign::CertifiedKey>);
    impl tokio_rustls::rustls::server::ResolvesServerCert for Fixed {
        fn resolve(
            &self,
            _hello: tokio_rustls::rustls::server::ClientHello<'_>,
        ) -> Option<std::sync::Arc<tokio_rustls::rustls::sign::CertifiedKey>> {
            Some(self.0.clone())
        }
    }
    std::sync::Arc::new(Fixed(certified))
}

#[tokio::test]
async fn with_source_service_the_registered_resolver_serves_the_certificate() -> anyhow::Result<()>
{
    let yaml = format!(
        "{}  tls:\n    enabled: true\n    source: service\n    service: web\n",
        server_yaml()
    );
    let resolver = fixed_resolver(&[0x5e, 0x41]);
    let test = support::build_with(&yaml, |b| {
        b.module(ResolverOwner {
            resolver,
            name: Some("web"),
        })
    })
    .await?
    .start()
    .await?;
    let mut connection = tls_connect(test.port).await?;
    assert_eq!(connection.serial, "5e41");
    assert_eq!(connection.get("/hello").await?, (200, "hello".to_owned()));
    // The resolver's owner reports the certificate; the server does not load one itself.
    let handle = test.app.services().require::<HttpServerHandle>()?;
    assert!(handle.certificate().is_none());
    Ok(())
}

#[tokio::test]
async fn with_source_service_and_no_resolver_the_start_fails_naming_it() -> anyhow::Result<()> {
    let yaml = format!(
        "{}  tls:\n    enabled: true\n    source: service\n    service: web\n",
        server_yaml()
    );
    // A resolver under another name does not count.
    let resolver = fixed_resolver(&[0x01]);
    let result = support::build_with(&yaml, |b| {
        b.module(ResolverOwner {
            resolver,
            name: Some("other"),
        })
    })
    .await?
    .start()
    .await;
    let error = format!("{:#}", result.err().expect("the start fails"));
    assert!(
        error.contains("no certificate resolver is registered under the name \"web\""),
        "{error}"
    );
    Ok(())
}

#[tokio::test]
async fn certificate_files_with_source_service_are_rejected_with_their_path() -> anyhow::Result<()>
{
    let yaml = format!(
        "{}  tls:\n    enabled: true\n    source: service\n    domains: [localhost]\n",
        server_yaml()
    );
    let error = format!("{:#}", support::build(&yaml).await.err().expect("rejected"));
    assert!(error.contains("httpserver.tls.domains"), "{error}");
    assert!(error.contains("source: service"), "{error}");
    Ok(())
}

#[tokio::test]
async fn restoring_the_served_files_after_a_bad_rotation_clears_the_degraded_health_at_once()
-> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let (cert, key) = write_certificate(dir.path(), "tls", &[0x07], (2020, 1, 1), (2099, 1, 1));
    let served = std::fs::read(&cert)?;
    let test = build(&tls_yaml(&cert, &key, "    watch_interval: 50ms\n"))
        .await?
        .start()
        .await?;
    let aggregator = test.app.health().expect("aggregator").clone();
    let status_until = |wanted: HealthStatus| {
        let aggregator = aggregator.clone();
        async move {
            let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
            loop {
                let health = aggregator.force_refresh().await;
                let report = health
                    .report("httpserver", "certificate")
                    .cloned()
                    .expect("report");
                if report.status == wanted || tokio::time::Instant::now() > deadline {
                    return report;
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    };
    std::fs::write(&cert, "not a certificate")?;
    let report = status_until(HealthStatus::Degraded).await;
    assert_eq!(report.status, HealthStatus::Degraded, "{report:?}");

    // The operator puts back exactly what is being served: no rotation happens, and nothing
    // failed any more.
    std::fs::write(&cert, served)?;
    let report = status_until(HealthStatus::Healthy).await;
    assert_eq!(report.status, HealthStatus::Healthy, "{report:?}");
    assert_eq!(report.details["serial"], "07");
    assert!(!report.message.contains("cannot be loaded"), "{report:?}");
    Ok(())
}
