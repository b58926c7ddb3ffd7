//! Renewal against the real pebble: a forced `renew_before` renews, the new certificate is
//! served to new handshakes while an open connection keeps working; with the CA cut off
//! (a proxy in front of pebble, which builds its URLs from the request's host) a renewal
//! fails, health turns degraded, retries back off, and the next retry after the CA returns
//! renews and health is healthy again.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::net::SocketAddr;

use modular_core::health::HealthStatus;
use modular_testkit::FaultProxy;
use serde_json::json;
use support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn renewals_swap_the_served_certificate_and_outages_degrade_then_recover() {
    let Some(pebble) = pebble() else { return };
    let _port = challenge_port().await;
    let storage = tempfile::tempdir().unwrap();
    let upstream: SocketAddr = "127.0.0.1:14000".parse().unwrap();
    let proxy = FaultProxy::start(upstream).await.unwrap();
    let directory = format!("https://{}/dir", proxy.addr());
    let mut app = builder(config(&pebble, &directory, storage.path(), json!({})))
        .build()
        .await
        .unwrap();
    let mut events = subscribe(&app);
    app.start().await.unwrap();
    next_event(&mut events, "com.modular.letsencrypt.certificate.issued").await;
    let first = service(&app).certificate("web").unwrap();

    // The same resolver, behind a TLS echo server: one connection stays open throughout.
    let resolver = modular_core::tls::resolver(app.services(), None).unwrap();
    let addr = echo_server(resolver).await;
    let client = tls_client(&pebble_root(&pebble).await);
    let (mut open, chain) = handshake(&client, addr, "a.test").await.unwrap();
    assert_eq!(Some(serial_and_issuer(&chain[0]).0), first.serial);

    // A renew_before longer than the certificate's life puts it in its window: renewed.
    let outcome = app
        .set_override("letsencrypt.renew_before", json!("36500days"))
        .await
        .unwrap();
    assert_eq!(
        outcome.status,
        modular_core::ReloadStatus::Applied,
        "{outcome:?}"
    );
    let expiring = next_event(&mut events, "com.modular.letsencrypt.certificate.expiring").await;
    assert_eq!(expiring["certificate"], "web");
    let renewed = next_event(&mut events, "com.modular.letsencrypt.certificate.renewed").await;
    let second = service(&app).certificate("web").unwrap();
    assert_ne!(second.serial, first.serial);
    assert_eq!(renewed["serial"].as_str(), second.serial.as_deref());
    let (_new, chain) = handshake(&client, addr, "b.test").await.unwrap();
    assert_eq!(
        Some(serial_and_issuer(&chain[0]).0),
        second.serial,
        "new handshakes get the new certificate"
    );
    assert!(echo(&mut open).await, "the open connection keeps working");
    assert_eq!(report(&app, "web").await.status, HealthStatus::Healthy);

    // The CA goes away during a renewal: failures back off, health degrades.
    proxy.cut();
    assert!(service(&app).renew("web"));
    let mut delays = Vec::new();
    for attempt in 1..=3 {
        let failed = next_event(
            &mut events,
            "com.modular.letsencrypt.certificate.renewal_failed",
        )
        .await;
        assert_eq!(failed["attempt"], attempt);
        delays.push(failed["retry_in_ms"].as_u64().unwrap());
    }
    // 200 ms, 400 ms, 800 ms, each ±20 %.
    assert!((160..=240).contains(&delays[0]), "{delays:?}");
    assert!((320..=480).contains(&delays[1]), "{delays:?}");
    assert!((640..=960).contains(&delays[2]), "{delays:?}");
    let degraded = report(&app, "web").await;
    assert_eq!(degraded.status, HealthStatus::Degraded, "{degraded:?}");
    assert!(
        degraded.details["last_error"]
            .as_str()
            .unwrap()
            .contains("ACME")
    );
    assert!(degraded.details["not_after"].is_string());
    assert!(degraded.details["days_left"].is_number());
    // Still serving the current certificate meanwhile.
    let (_s, chain) = handshake(&client, addr, "a.test").await.unwrap();
    assert_eq!(Some(serial_and_issuer(&chain[0]).0), second.serial);

    // The CA returns: the next retry renews, health recovers.
    proxy.restore();
    next_event(&mut events, "com.modular.letsencrypt.certificate.renewed").await;
    let third = service(&app).certificate("web").unwrap();
    assert_ne!(third.serial, second.serial);
    assert_eq!(third.failures, 0);
    assert_eq!(report(&app, "web").await.status, HealthStatus::Healthy);
    assert!(echo(&mut open).await);
    app.stop().await.unwrap();
}
