//! The module conformance kit (modular-testkit) against the real pebble. The backend is the
//! CA, cut by a proxy in front of pebble while a renewal is forced (the valid config's
//! `renew_before` is longer than pebble's certificates live, so the certificate sits in its
//! renewal window and a failed renewal degrades health); restored, the next retry renews.
//! Fields whose effect needs an order (`key_type`, `contact_email`, `retry.*`) or a
//! never-issued certificate (`startup_grace`) are observed in reload_certificates.rs,
//! renewal_outage.rs and health_startup.rs.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use modular_httpserver::HttpServerModule;
use modular_letsencrypt::{LetsEncrypt, LetsEncryptModule};
use modular_router::RouterModule;
use modular_testkit::FaultProxy;
use modular_testkit::conformance::{
    Conformance, ProbeContext, fault_fn, health_optional_is, probe,
};
use serde_json::json;
use support::*;

/// The External Account Binding MAC key of `kid-1` in .ci/pebble/pebble-config.json (pebble
/// does not require EAB but checks it when an account sends one).
const SECRET: &str = "zWNDZM6eQGHWpSRTPal5eIUYFTu7EajVIoguysqZ9wG44nMEtx3MUAsUDkMTQ12W";

fn live(ctx: &ProbeContext) -> Arc<LetsEncrypt> {
    ctx.services()
        .get::<LetsEncrypt>()
        .expect("the LetsEncrypt service")
}

/// The certificate (issued by then: the probe waits for the first issuance) enters its
/// renewal window `days` before it expires.
fn renews_before(days: i64) -> modular_testkit::conformance::Probe {
    probe(move |ctx| async move {
        let le = live(&ctx);
        let mut at = le.renewal_at("web");
        for _ in 0..200 {
            if at.is_some() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
            at = le.renewal_at("web");
        }
        let at = at.ok_or("no certificate")?;
        let not_after = le
            .certificate("web")
            .and_then(|c| c.not_after)
            .ok_or("no expiry")?;
        (not_after - at == chrono::Duration::days(days))
            .then_some(())
            .ok_or(format!("renewal at {at}, expiry {not_after}"))
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_letsencrypt_module_passes_the_conformance_kit() {
    let Some(pebble) = pebble() else { return };
    let _port = challenge_port().await;
    modular_testkit::install_crypto_provider();
    let storage = tempfile::tempdir().unwrap();
    let upstream: SocketAddr = "127.0.0.1:14000".parse().unwrap();
    let proxy = Arc::new(FaultProxy::start(upstream).await.unwrap());
    let directory = format!("https://{}/dir", proxy.addr());
    let valid = config(
        &pebble,
        &directory,
        &storage.path().join("acme"),
        json!({ "letsencrypt": {
            "renew_before": "36500days",
            "external_account": { "key_id": "kid-1", "hmac_key": SECRET },
        } }),
    );
    let (cut, restore) = (Arc::clone(&proxy), Arc::clone(&proxy));
    let fault = fault_fn(
        move |ctx| {
            let proxy = Arc::clone(&cut);
            async move {
                proxy.cut();
                live(&ctx).renew("web");
            }
        },
        move |_ctx| {
            let proxy = Arc::clone(&restore);
            async move { proxy.restore() }
        },
    );
    Conformance::new("letsencrypt", |b| {
        b.module(LetsEncryptModule::new())
            .module(RouterModule::new())
            .module(HttpServerModule::new())
    })
    .valid(valid)
    .invalid(
        "letsencrypt.directory_url",
        json!("http://127.0.0.1:14000/dir"),
    )
    .invalid("letsencrypt.storage_dir", json!("/proc/modular-acme"))
    .invalid("letsencrypt.certificates.web.domains", json!([]))
    .invalid_at(
        "letsencrypt.certificates.web.domains.0",
        [(
            "letsencrypt.certificates.web.domains",
            json!(["not a name"]),
        )],
    )
    .invalid("letsencrypt.renew_before", json!("0s"))
    .change(
        "renew_before",
        [("letsencrypt.renew_before", json!("1day"))],
        renews_before(1),
    )
    .change(
        "renew_before back inside the window",
        [("letsencrypt.renew_before", json!("36500days"))],
        renews_before(36500),
    )
    .change(
        "certificates",
        [(
            "letsencrypt.certificates.api",
            json!({ "domains": ["e.test"] }),
        )],
        probe(|ctx| async move {
            let le = live(&ctx);
            // The new certificate is ordered at once; the probe waits for its issuance.
            for _ in 0..200 {
                if le.resolver().lookup("e.test").is_some() {
                    return Ok(());
                }
                if le.certificate("api").is_none() {
                    return Err("api is not configured".to_owned());
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err("no certificate for e.test".to_owned())
        }),
    )
    .change(
        "health.optional",
        [("letsencrypt.health.optional", json!(true))],
        health_optional_is("letsencrypt", true),
    )
    .boxed_fault(fault)
    .secret(SECRET)
    .recover_within(Duration::from_secs(30))
    .run()
    .await
    .assert_passed();
}
