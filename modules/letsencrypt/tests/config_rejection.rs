//! Bad config is refused by `build()` with the key path; the EAB key never shows.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use serde_json::{Value, json};
use support::merge;

async fn build_error(extra: Value) -> String {
    let storage = tempfile::tempdir().unwrap();
    let mut config = json!({ "letsencrypt": {
        "directory_url": "https://127.0.0.1:14000/dir",
        "storage_dir": storage.path().join("acme"),
        "certificates": { "web": { "domains": ["a.test"] } },
    } });
    merge(&mut config, extra);
    let built = modular_testkit::test_builder()
        .config_defaults(config)
        .module(modular_letsencrypt::LetsEncryptModule::new())
        .build()
        .await;
    match built {
        Ok(mut app) => {
            let _ = app.stop().await;
            panic!("the build succeeded")
        }
        Err(error) => error.to_string(),
    }
}

#[tokio::test]
async fn a_domain_that_is_not_a_dns_name_is_refused_with_its_path() {
    let error = build_error(json!({ "letsencrypt": { "certificates": { "web": { "domains": ["a.test", "not a name"] } } } })).await;
    assert!(
        error.contains("letsencrypt.certificates.web.domains.1"),
        "{error}"
    );
    assert!(error.contains("not a valid DNS name"), "{error}");
}

#[tokio::test]
async fn an_empty_domain_list_is_refused_with_its_path() {
    let error =
        build_error(json!({ "letsencrypt": { "certificates": { "web": { "domains": [] } } } }))
            .await;
    assert!(
        error.contains("letsencrypt.certificates.web.domains"),
        "{error}"
    );
    assert!(error.contains("at least one domain"), "{error}");
}

#[tokio::test]
async fn an_unwritable_storage_dir_is_refused_with_its_path() {
    let error =
        build_error(json!({ "letsencrypt": { "storage_dir": "/proc/modular-acme" } })).await;
    assert!(error.contains("letsencrypt.storage_dir"), "{error}");
    assert!(error.contains("/proc/modular-acme"), "{error}");
}

#[tokio::test]
async fn a_directory_url_that_is_not_https_is_refused_with_its_path() {
    let error =
        build_error(json!({ "letsencrypt": { "directory_url": "http://127.0.0.1:14000/dir" } }))
            .await;
    assert!(error.contains("letsencrypt.directory_url"), "{error}");
    assert!(error.contains("https"), "{error}");
}

#[tokio::test]
async fn nested_wildcards_unknown_challenges_and_zero_durations_are_refused() {
    let error = build_error(
        json!({ "letsencrypt": { "certificates": { "web": { "domains": ["*.*.a.test"] } } } }),
    )
    .await;
    assert!(
        error.contains("letsencrypt.certificates.web.domains.0"),
        "{error}"
    );
    let error = build_error(json!({ "letsencrypt": { "challenge": "carrier-pigeon" } })).await;
    assert!(error.contains("letsencrypt.challenge"), "{error}");
    let error = build_error(json!({ "letsencrypt": { "renew_before": "0s" } })).await;
    assert!(error.contains("letsencrypt.renew_before"), "{error}");
}

#[tokio::test]
async fn the_external_account_key_never_shows_in_debug_or_errors() {
    let error = build_error(json!({ "letsencrypt": {
        "directory_url": "ftp://x",
        "external_account": { "key_id": "kid-1", "hmac_key": "c2VjcmV0LWhtYWMta2V5" },
    } }))
    .await;
    assert!(!error.contains("c2VjcmV0LWhtYWMta2V5"), "{error}");
    let config: modular_letsencrypt::LetsEncryptConfig = serde_json::from_value(json!({
        "external_account": { "key_id": "kid-1", "hmac_key": "c2VjcmV0LWhtYWMta2V5" },
    }))
    .unwrap();
    let debug = format!("{config:?}");
    assert!(!debug.contains("c2VjcmV0LWhtYWMta2V5"), "{debug}");
    assert!(debug.contains("kid-1"));
}

#[tokio::test]
async fn a_wildcard_domain_without_a_dns_provider_is_refused() {
    let error = build_error(
        json!({ "letsencrypt": { "certificates": { "web": { "domains": ["*.a.test"] } } } }),
    )
    .await;
    assert!(error.contains("letsencrypt.dns"), "{error}");
    assert!(error.contains("dns-01"), "{error}");
}

#[tokio::test]
async fn a_bad_dns_provider_is_refused_with_each_path_and_the_secret_never_shows() {
    let secret = "not base64 !!";
    let error = build_error(json!({ "letsencrypt": {
        "challenge": "dns-01",
        "dns": {
            "provider": "rfc2136",
            "server": "dns.example.test",
            "zone": "not a zone",
            "tsig": { "name": "acme-key", "secret": secret },
        },
    } }))
    .await;
    for path in [
        "letsencrypt.dns.server",
        "letsencrypt.dns.zone",
        "letsencrypt.dns.tsig.secret",
    ] {
        assert!(error.contains(path), "{path}: {error}");
    }
    assert!(!error.contains(secret), "{error}");
}
