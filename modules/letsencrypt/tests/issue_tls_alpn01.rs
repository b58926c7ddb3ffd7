//! TLS-ALPN-01 against the real pebble: httpserver listens with `tls.source: service` on
//! pebble's TLS port (5001); pebble's `acme-tls/1` handshakes get the challenge certificate
//! from the resolver, and once issued the same listener serves the pebble certificate to
//! ordinary handshakes. No HTTP listener at all.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use modular_httpserver::HttpServerHandle;
use serde_json::json;
use support::*;

/// pebble's `tlsPort`.
const TLS_PORT: u16 = 5001;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_certificate_is_issued_by_tls_alpn01_on_the_https_listener() {
    let Some(pebble) = pebble() else { return };
    let storage = tempfile::tempdir().unwrap();
    let extra = json!({
        "letsencrypt": { "challenge": "tls-alpn-01" },
        "httpserver": { "port": TLS_PORT, "tls": { "enabled": true, "source": "service" } },
    });
    let mut app = builder(config(&pebble, &pebble.url, storage.path(), extra))
        .build()
        .await
        .unwrap();
    let mut events = subscribe(&app);
    app.start().await.unwrap();
    next_event(&mut events, "com.modular.letsencrypt.certificate.issued").await;
    let status = service(&app).certificate("web").unwrap();
    assert!(
        status.issuer.as_deref().unwrap().contains("Pebble"),
        "{status:?}"
    );

    let addr = app
        .services()
        .require::<HttpServerHandle>()
        .unwrap()
        .local_addr()
        .unwrap();
    let client = tls_client(&pebble_root(&pebble).await);
    let (_stream, chain) = handshake(&client, addr, "b.test").await.unwrap();
    assert_eq!(Some(serial_and_issuer(&chain[0]).0), status.serial);
    app.stop().await.unwrap();
}
