//! Reloads against the real pebble: a domain added to a certificate yields a certificate
//! covering it without a restart (the old one serves meanwhile); an added certificate is
//! issued, a removed one leaves the resolver at commit; `key_type` and `contact_email` apply
//! to the next order.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use modular_core::ReloadStatus;
use serde_json::json;
use support::*;
use x509_parser::public_key::PublicKey;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn certificates_domains_key_type_and_contact_reload_live() {
    let Some(pebble) = pebble() else { return };
    let _port = challenge_port().await;
    let storage = tempfile::tempdir().unwrap();
    let extra = json!({ "letsencrypt": { "certificates": { "web": { "domains": ["a.test"] } } } });
    let mut app = builder(config(&pebble, &pebble.url, storage.path(), extra))
        .build()
        .await
        .unwrap();
    let mut events = subscribe(&app);
    app.start().await.unwrap();
    next_event(&mut events, "com.modular.letsencrypt.certificate.issued").await;
    let le = service(&app);
    let resolver = le.resolver();
    assert!(resolver.lookup("c.test").is_none());

    // A domain added: the old certificate keeps serving a.test, a new one covers c.test.
    let outcome = app
        .set_override(
            "letsencrypt.certificates.web.domains",
            json!(["a.test", "c.test"]),
        )
        .await
        .unwrap();
    assert_eq!(outcome.status, ReloadStatus::Applied, "{outcome:?}");
    assert!(
        resolver.lookup("a.test").is_some(),
        "the old certificate serves meanwhile"
    );
    next_event(&mut events, "com.modular.letsencrypt.certificate.renewed").await;
    let web = le.certificate("web").unwrap();
    assert!(web.names.contains(&"c.test".to_owned()), "{web:?}");
    assert!(resolver.lookup("c.test").is_some());

    // A certificate added, then removed.
    let outcome = app
        .set_override(
            "letsencrypt.certificates.api",
            json!({ "domains": ["d.test"] }),
        )
        .await
        .unwrap();
    assert_eq!(outcome.status, ReloadStatus::Applied, "{outcome:?}");
    let issued = next_event(&mut events, "com.modular.letsencrypt.certificate.issued").await;
    assert_eq!(issued["certificate"], "api");
    assert!(resolver.lookup("d.test").is_some());
    let outcome = app
        .remove_override("letsencrypt.certificates.api")
        .await
        .unwrap();
    assert_eq!(outcome.status, ReloadStatus::Applied, "{outcome:?}");
    assert!(resolver.lookup("d.test").is_none(), "removed at commit");
    assert!(le.certificate("api").is_none());

    // key_type and contact_email: the next order uses them.
    let mut overrides = std::collections::BTreeMap::new();
    overrides.insert("letsencrypt.key_type".to_owned(), json!("rsa2048"));
    overrides.insert(
        "letsencrypt.contact_email".to_owned(),
        json!("new@example.test"),
    );
    let outcome = app.set_overrides(overrides).await.unwrap();
    assert_eq!(outcome.status, ReloadStatus::Applied, "{outcome:?}");
    assert!(le.renew("web"));
    next_event(&mut events, "com.modular.letsencrypt.certificate.renewed").await;
    let key = resolver.lookup("a.test").unwrap();
    let (_, leaf) = x509_parser::parse_x509_certificate(key.cert[0].as_ref()).unwrap();
    assert!(
        matches!(leaf.public_key().parsed(), Ok(PublicKey::RSA(_))),
        "the renewed certificate has an RSA key"
    );
    assert_eq!(
        le.account_contacts(),
        Some(vec!["mailto:new@example.test".to_owned()])
    );
    app.stop().await.unwrap();
}
