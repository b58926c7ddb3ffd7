//! Against the real pebble: a certificate for two names through HTTP-01 (pebble-challtestsrv
//! resolves the names to 127.0.0.1, the module's route answers on pebble's HTTP port), then
//! a restart with the CA unreachable serves the stored certificate at once through
//! httpserver (`tls.source: service`) to a rustls client trusting pebble's root and to
//! `openssl s_client`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::os::unix::fs::PermissionsExt as _;

use modular_httpserver::HttpServerHandle;
use serde_json::json;
use support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_names_are_issued_by_http01_and_served_after_a_restart_with_the_ca_down() {
    let Some(pebble) = pebble() else { return };
    let storage = tempfile::tempdir().unwrap();
    let dir = storage.path().join("acme");

    // 1. Issue.
    let port = challenge_port().await;
    let mut app = builder(config(&pebble, &pebble.url, &dir, json!({})))
        .build()
        .await
        .unwrap();
    let mut events = subscribe(&app);
    // Before the first issuance the resolver has nothing; health says so without failing.
    assert_eq!(service(&app).resolver().names(), 0);
    app.start().await.unwrap();
    let issued = next_event(&mut events, "com.modular.letsencrypt.certificate.issued").await;
    assert_eq!(issued["certificate"], "web");
    let status = service(&app).certificate("web").unwrap();
    assert!(status.names.contains(&"a.test".to_owned()), "{status:?}");
    assert!(status.names.contains(&"b.test".to_owned()), "{status:?}");
    assert!(
        status.issuer.as_deref().unwrap().contains("Pebble"),
        "{status:?}"
    );
    assert_eq!(
        report(&app, "web").await.status,
        modular_core::health::HealthStatus::Healthy
    );
    app.stop().await.unwrap();
    drop(port);

    // The storage: 0700, key files 0600.
    let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&dir), 0o700);
    assert_eq!(mode(&dir.join("certificates/web/key.pem")), 0o600);
    assert_eq!(mode(&dir.join("certificates/web/chain.pem")), 0o600);
    let accounts: Vec<_> = std::fs::read_dir(dir.join("accounts")).unwrap().collect();
    assert_eq!(accounts.len(), 1);

    // 2. Restart with the CA unreachable: httpserver serves the stored certificate at once.
    let refused = modular_testkit::RefusedPort::new();
    let down = format!("https://127.0.0.1:{}/dir", refused.port());
    let extra =
        json!({ "httpserver": { "port": 0, "tls": { "enabled": true, "source": "service" } } });
    let mut app = builder(config(&pebble, &down, &dir, extra))
        .build()
        .await
        .unwrap();
    app.start().await.unwrap();
    let addr = app
        .services()
        .require::<HttpServerHandle>()
        .unwrap()
        .local_addr()
        .unwrap();
    let root = pebble_root(&pebble).await;
    let client = tls_client(&root);
    for name in ["a.test", "b.test"] {
        let (_stream, chain) = handshake(&client, addr, name).await.unwrap();
        let (serial, issuer) = serial_and_issuer(&chain[0]);
        assert_eq!(Some(serial), status.serial, "{name}");
        assert!(issuer.contains("Pebble Intermediate"), "{issuer}");
        assert!(chain.len() >= 2, "the chain carries the intermediate");
    }
    // A name no certificate covers fails the handshake (no panic, no wrong certificate).
    assert!(handshake(&client, addr, "c.test").await.is_err());

    // openssl s_client verifies the chain against pebble's root too.
    let root_file = storage.path().join("pebble-root.pem");
    std::fs::write(&root_file, &root).unwrap();
    let output = tokio::process::Command::new("openssl")
        .args([
            "s_client",
            "-connect",
            &addr.to_string(),
            "-servername",
            "a.test",
            "-CAfile",
        ])
        .arg(&root_file)
        .args(["-verify_return_error", "-showcerts"])
        .stdin(std::process::Stdio::null())
        .output()
        .await
        .unwrap();
    let text = String::from_utf8_lossy(&output.stdout);
    assert!(text.contains("Verify return code: 0 (ok)"), "{text}");
    assert!(text.contains("Pebble Intermediate"), "{text}");
    assert_eq!(
        report(&app, "web").await.status,
        modular_core::health::HealthStatus::Healthy
    );
    app.stop().await.unwrap();
}
