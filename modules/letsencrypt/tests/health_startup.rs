//! Without a CA (a refused port), before any issuance: handshakes fail cleanly (no panic,
//! no certificate), health is degraded within `startup_grace` and unhealthy after it (a
//! reload of `startup_grace` is read by the next check), the order failures are reported.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use modular_core::ReloadStatus;
use modular_core::health::HealthStatus;
use modular_httpserver::HttpServerHandle;
use serde_json::json;
use support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_certificate_never_issued_is_degraded_in_the_grace_and_unhealthy_after() {
    modular_testkit::install_crypto_provider();
    let storage = tempfile::tempdir().unwrap();
    let ca = storage.path().join("ca.pem");
    // Any PEM will do: the CA is never reached.
    let generated = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
    std::fs::write(&ca, generated.cert.pem()).unwrap();
    let refused = modular_testkit::RefusedPort::new();
    let pebble = Pebble {
        url: String::new(),
        ca,
        management: String::new(),
    };
    let directory = format!("https://127.0.0.1:{}/dir", refused.port());
    let extra = json!({
        "letsencrypt": { "startup_grace": "1h" },
        "httpserver": { "port": 0, "tls": { "enabled": true, "source": "service" } },
    });
    let mut app = builder(config(
        &pebble,
        &directory,
        &storage.path().join("acme"),
        extra,
    ))
    .build()
    .await
    .unwrap();
    let mut events = subscribe(&app);
    app.start().await.unwrap();
    let failed = next_event(
        &mut events,
        "com.modular.letsencrypt.certificate.renewal_failed",
    )
    .await;
    assert!(
        failed["error"].as_str().unwrap().contains("ACME account"),
        "{failed}"
    );

    let addr = app
        .services()
        .require::<HttpServerHandle>()
        .unwrap()
        .local_addr()
        .unwrap();
    let client = tls_client(&generated.cert.pem());
    assert!(
        handshake(&client, addr, "a.test").await.is_err(),
        "no certificate yet"
    );

    let report_now = report(&app, "web").await;
    assert_eq!(report_now.status, HealthStatus::Degraded, "{report_now:?}");
    assert!(report_now.details["last_error"].is_string());

    let outcome = app
        .set_override("letsencrypt.startup_grace", json!("1ms"))
        .await
        .unwrap();
    assert_eq!(outcome.status, ReloadStatus::Applied, "{outcome:?}");
    let report_now = report(&app, "web").await;
    assert_eq!(report_now.status, HealthStatus::Unhealthy, "{report_now:?}");
    assert!(report_now.message.contains("never issued"));
    app.stop().await.unwrap();
}
