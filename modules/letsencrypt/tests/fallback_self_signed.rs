//! `self_signed_fallback`: without a CA (a refused port), before any issuance, the resolver
//! serves a self-signed certificate for the configured domains instead of failing the
//! handshake; health still says the certificate was never issued; a reload turning the
//! fallback off takes it out of the resolver at commit.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use modular_core::ReloadStatus;
use modular_core::health::HealthStatus;
use serde_json::json;
use support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_self_signed_certificate_serves_until_the_first_issuance_when_asked_for() {
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
        "letsencrypt": { "self_signed_fallback": true, "startup_grace": "1h" },
        "httpserver": { "port": 0 },
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
    next_event(
        &mut events,
        "com.modular.letsencrypt.certificate.renewal_failed",
    )
    .await;

    let resolver = service(&app).resolver();
    let key = resolver.lookup("b.test").expect("the fallback serves");
    let (_, leaf) = x509_parser::parse_x509_certificate(key.cert[0].as_ref()).unwrap();
    assert_eq!(leaf.issuer(), leaf.subject(), "self-signed");
    assert!(leaf.subject().to_string().contains("self-signed fallback"));
    assert!(
        resolver.lookup("other.test").is_none(),
        "only the configured domains"
    );
    // A real TLS client that trusts exactly that certificate completes the handshake.
    let addr = echo_server(resolver.clone()).await;
    let fallback_pem = format!(
        "-----BEGIN CERTIFICATE-----\n{}\n-----END CERTIFICATE-----\n",
        base64_lines(key.cert[0].as_ref())
    );
    let (mut stream, _) = handshake(&tls_client(&fallback_pem), addr, "a.test")
        .await
        .unwrap();
    assert!(echo(&mut stream).await);

    let report_now = report(&app, "web").await;
    assert_eq!(report_now.status, HealthStatus::Degraded, "{report_now:?}");

    let outcome = app
        .set_override("letsencrypt.self_signed_fallback", json!(false))
        .await
        .unwrap();
    assert_eq!(outcome.status, ReloadStatus::Applied, "{outcome:?}");
    assert!(resolver.lookup("a.test").is_none(), "withdrawn at commit");
    app.stop().await.unwrap();
}

/// Standard base64 of `bytes` in 64-column lines, for a PEM block.
fn base64_lines(bytes: &[u8]) -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let n =
            chunk.iter().fold(0u32, |acc, b| (acc << 8) | u32::from(*b)) << (8 * (3 - chunk.len()));
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out.as_bytes()
        .chunks(64)
        .map(|line| String::from_utf8_lossy(line).into_owned())
        .collect::<Vec<_>>()
        .join("\n")
}
