//! Against bind9 and the pebble that resolves through it (`cargo xtask services`): the RFC
//! 2136 provider publishes and removes TXT records with a TSIG-signed update, refuses to
//! work with a wrong key (without quoting it), and a wildcard certificate is issued end to
//! end by real DNS-01 validation, then served for any name one label below.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::sync::Arc;

use modular_letsencrypt::{
    DnsConfig, DnsProvider as _, LetsEncryptError, LetsEncryptModule, Rfc2136Provider,
    TsigAlgorithm, TsigConfig,
};
use serde_json::json;
use support::*;

fn provider(setup: &DnsSetup, secret: &str) -> Rfc2136Provider {
    Rfc2136Provider::new(&DnsConfig {
        server: setup.server.clone(),
        zone: "example.test".to_owned(),
        tsig: TsigConfig {
            name: setup.key_name.clone(),
            algorithm: TsigAlgorithm::HmacSha256,
            secret: modular_core::Secret::new(secret.to_owned()),
        },
        ..DnsConfig::default()
    })
    .unwrap()
}

#[tokio::test]
async fn the_rfc2136_provider_adds_and_removes_one_txt_value_at_a_time() {
    let Some(setup) = dns_setup() else { return };
    let dns = provider(&setup, &setup.secret);
    let name = "_acme-challenge.provider.example.test";
    dns.publish(name, "first").await.unwrap();
    dns.publish(name, "second").await.unwrap();
    let mut values = txt_records(&setup.server, name).await;
    values.sort();
    assert_eq!(values, ["first", "second"]);
    dns.remove(name, "first").await.unwrap();
    assert_eq!(txt_records(&setup.server, name).await, ["second"]);
    dns.remove(name, "second").await.unwrap();
    assert!(txt_records(&setup.server, name).await.is_empty());
}

#[tokio::test]
async fn a_wrong_tsig_key_is_refused_and_the_error_does_not_quote_it() {
    let Some(setup) = dns_setup() else { return };
    let wrong = "d3Jvbmcta2V5LXdyb25nLWtleS13cm9uZy1rZXktISE=";
    let dns = provider(&setup, wrong);
    let error = dns
        .publish("_acme-challenge.refused.example.test", "x")
        .await
        .unwrap_err();
    assert!(matches!(error, LetsEncryptError::Dns { .. }), "{error:?}");
    let shown = format!("{error} {error:?} {dns:?}");
    assert!(
        shown.contains("BADSIG") || shown.contains("NOTAUTH"),
        "{shown}"
    );
    assert!(
        !shown.contains(wrong) && !shown.contains(&setup.secret),
        "{shown}"
    );
    assert!(
        txt_records(&setup.server, "_acme-challenge.refused.example.test")
            .await
            .is_empty()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wildcard_certificate_is_issued_by_dns01_through_bind9_and_served_per_name() {
    let Some(setup) = dns_setup() else { return };
    let storage = tempfile::tempdir().unwrap();
    let config = json!({
        "letsencrypt": {
            "directory_url": setup.pebble.url,
            "directory_ca": setup.pebble.ca,
            "storage_dir": storage.path().join("acme"),
            "challenge": "dns-01",
            "retry": { "initial": "200ms", "max": "800ms" },
            "certificates": { "wild": { "domains": ["*.example.test", "example.test"] } },
            "dns": {
                "provider": "rfc2136",
                "server": setup.server,
                "zone": "example.test",
                "tsig": { "name": setup.key_name, "algorithm": "hmac-sha256", "secret": setup.secret },
                "ttl": 5,
            },
        },
    });
    modular_testkit::install_crypto_provider();
    let mut app = modular_testkit::test_builder()
        .config_defaults(config)
        .module(LetsEncryptModule::new())
        .build()
        .await
        .unwrap();
    let mut events = subscribe(&app);
    app.start().await.unwrap();
    let issued = next_event(&mut events, "com.modular.letsencrypt.certificate.issued").await;
    assert_eq!(issued["certificate"], "wild");
    let status = service(&app).certificate("wild").unwrap();
    assert!(
        status.names.contains(&"*.example.test".to_owned()),
        "{status:?}"
    );
    assert!(
        status.names.contains(&"example.test".to_owned()),
        "{status:?}"
    );
    // Both challenge records were removed once the order was done.
    assert!(
        txt_records(&setup.server, "_acme-challenge.example.test")
            .await
            .is_empty()
    );

    // A verified handshake for a name only the wildcard covers, and for the apex.
    let root = pebble_root(&setup.pebble).await;
    let resolver: Arc<dyn rustls::server::ResolvesServerCert> = service(&app).resolver();
    let addr = echo_server(resolver).await;
    let client = tls_client(&root);
    for name in ["tenant.example.test", "example.test"] {
        let (mut stream, chain) = handshake(&client, addr, name).await.unwrap();
        let (serial, issuer) = serial_and_issuer(&chain[0]);
        assert_eq!(Some(serial), status.serial, "{name}");
        assert!(issuer.contains("Pebble"), "{issuer}");
        assert!(echo(&mut stream).await);
    }
    // Two labels below is not covered (RFC 6125 §6.4.3): no certificate, a failed handshake.
    assert!(handshake(&client, addr, "a.b.example.test").await.is_err());
    app.stop().await.unwrap();
}

/// Where the DNS-01 pebble validates HTTP-01 (its `httpPort`); only this test listens there.
const DNS_PEBBLE_HTTP_PORT: u16 = 5012;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reload_of_the_challenge_type_and_the_dns_key_applies_to_the_next_order() {
    let Some(setup) = dns_setup() else { return };
    let storage = tempfile::tempdir().unwrap();
    let wrong = "d3Jvbmcta2V5LXdyb25nLWtleS13cm9uZy1rZXktISE=";
    let config = json!({
        "letsencrypt": {
            "directory_url": setup.pebble.url,
            "directory_ca": setup.pebble.ca,
            "storage_dir": storage.path().join("acme"),
            "challenge": "http-01",
            "retry": { "initial": "300ms", "max": "300ms" },
            "certificates": { "web": { "domains": ["www.example.test"] } },
            "dns": {
                "provider": "rfc2136",
                "server": setup.server,
                "zone": "example.test",
                "tsig": { "name": setup.key_name, "secret": wrong },
            },
        },
        "httpserver": { "host": "127.0.0.1", "port": DNS_PEBBLE_HTTP_PORT, "drain_delay": "0s", "shutdown_timeout": "1s" },
    });
    let mut app = builder(config).build().await.unwrap();
    let mut events = subscribe(&app);
    app.start().await.unwrap();
    // http-01: bind9 answers www.example.test with 127.0.0.1, the route answers the token;
    // the wrong DNS key is never used.
    next_event(&mut events, "com.modular.letsencrypt.certificate.issued").await;
    let le = service(&app);

    // Switched to dns-01: the next order goes through the DNS provider, which the server
    // refuses; the retry comes after the configured backoff (300 ms ±20 %).
    let outcome = app
        .set_override("letsencrypt.challenge", json!("dns-01"))
        .await
        .unwrap();
    assert_eq!(
        outcome.status,
        modular_core::ReloadStatus::Applied,
        "{outcome:?}"
    );
    assert!(le.renew("web"));
    let failed = next_event(
        &mut events,
        "com.modular.letsencrypt.certificate.renewal_failed",
    )
    .await;
    let error = failed["error"].as_str().unwrap();
    assert!(error.contains("DNS update"), "{error}");
    assert!(!error.contains(wrong), "{error}");
    let retry_in = failed["retry_in_ms"].as_u64().unwrap();
    assert!((240..=360).contains(&retry_in), "{failed}");
    assert!(
        le.resolver().lookup("www.example.test").is_some(),
        "the old certificate serves"
    );

    // The right key, by reload: the next order succeeds through bind9. (A forced renewal is
    // one attempt: the certificate is not due, so it is asked for again.)
    let outcome = app
        .set_override("letsencrypt.dns.tsig.secret", json!(setup.secret))
        .await
        .unwrap();
    assert_eq!(
        outcome.status,
        modular_core::ReloadStatus::Applied,
        "{outcome:?}"
    );
    assert!(le.renew("web"));
    next_event(&mut events, "com.modular.letsencrypt.certificate.renewed").await;
    let web = le.certificate("web").unwrap();
    assert_eq!((web.failures, web.last_error), (0, None));
    assert!(
        txt_records(&setup.server, "_acme-challenge.www.example.test")
            .await
            .is_empty()
    );
    app.stop().await.unwrap();
}
