//! The module conformance kit (modular-testkit), with sessions in the real Redis through the
//! cache module behind a fault proxy: cutting the proxy turns the `sessions` component
//! unhealthy, restoring it heals it.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::sync::Arc;
use std::time::Duration;

use modular_auth::{Auth, AuthModule};
use modular_cache::CacheModule;
use modular_testkit::Service;
use modular_testkit::conformance::{Conformance, Probe, ProbeContext, health_optional_is, probe};
use serde_json::json;
use support::{SECRET, SECRET2};

fn live(ctx: &ProbeContext) -> Auth {
    (*ctx.services().get::<Auth>().expect("the Auth service")).clone()
}

/// A probe over the live service.
fn check(f: impl Fn(Auth) -> Result<(), String> + Send + Sync + Clone + 'static) -> Probe {
    probe(move |ctx| {
        let f = f.clone();
        async move { f(live(&ctx)) }
    })
}

#[tokio::test]
async fn the_auth_module_passes_the_conformance_kit() {
    let Some(url) = modular_testkit::service(Service::Redis) else {
        return;
    };
    let authority = url
        .split_once("://")
        .map_or(url.as_str(), |(_, r)| r)
        .split('/')
        .next()
        .unwrap()
        .to_owned();
    let host_port = authority
        .rsplit_once('@')
        .map_or(authority.as_str(), |(_, hp)| hp)
        .to_owned();
    let upstream = tokio::net::lookup_host(host_port)
        .await
        .unwrap()
        .next()
        .unwrap();
    let proxy = Arc::new(modular_testkit::FaultProxy::start(upstream).await.unwrap());
    let proxied = format!("redis://{}/0", proxy.addr());
    Conformance::new("auth", |b| {
        b.module(CacheModule::new()).module(AuthModule::new())
    })
    .valid(json!({
        "cache": { "engine": "redis", "redis": {
            "url": proxied, "key_prefix": format!("auth-conformance:{}:", uuid::Uuid::new_v4()),
            "connect_timeout": "1s", "command_timeout": "200ms" } },
        "auth": {
            "issuer": "https://issuer.test",
            "audience": ["api"],
            "signing_key": "k1",
            "keys": {
                "k1": { "algorithm": "HS256", "secret": SECRET },
                "k2": { "algorithm": "HS512", "secret": SECRET },
            },
            "passwords": { "memory_kib": 256, "iterations": 1 },
            "sessions": { "store": "shared" },
        },
    }))
    .invalid("auth.keys.k1.secret", json!("too-short"))
    .invalid("auth.keys.k1.algorithm", json!("none"))
    .invalid("auth.signing_key", json!("k9"))
    .invalid("auth.leeway", json!("1h"))
    .invalid("auth.sessions.cookie.same_site", json!("sometimes"))
    .invalid("auth.passwords.min_classes", json!(9))
    .change(
        "signing_key",
        [("auth.signing_key", json!("k2"))],
        check(|auth| {
            let token = auth
                .issue_access("ada", &[], &[])
                .map_err(|e| e.to_string())?;
            let kid = jsonwebtoken::decode_header(&token)
                .map_err(|e| e.to_string())?
                .kid;
            (kid.as_deref() == Some("k2"))
                .then_some(())
                .ok_or(format!("signed by {kid:?}"))
        }),
    )
    .change(
        "keys (a secret rotated)",
        [("auth.keys.k1.secret", json!(SECRET2))],
        check(|auth| {
            // A token signed with the new secret under kid k1 verifies.
            let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256);
            header.kid = Some("k1".to_owned());
            let claims = support::claims("ada");
            let key = jsonwebtoken::EncodingKey::from_secret(SECRET2.as_bytes());
            let token = jsonwebtoken::encode(&header, &claims, &key).map_err(|e| e.to_string())?;
            auth.verify(&token).map(|_| ()).map_err(|e| e.to_string())
        }),
    )
    .change(
        "issuer",
        [("auth.issuer", json!("https://other.test"))],
        check(|auth| {
            let token = auth
                .issue_access("ada", &[], &[])
                .map_err(|e| e.to_string())?;
            let iss = auth.verify(&token).map_err(|e| e.to_string())?.iss;
            (iss == "https://other.test").then_some(()).ok_or(iss)
        }),
    )
    .change(
        "access_ttl",
        [("auth.access_ttl", json!("90s"))],
        check(|auth| {
            let pair = auth.issue("ada", &[], &[]).map_err(|e| e.to_string())?;
            (pair.expires_in == 90)
                .then_some(())
                .ok_or(format!("{}", pair.expires_in))
        }),
    )
    .change(
        "admin_roles",
        [("auth.admin_roles", json!(["ops"]))],
        check(|auth| {
            use modular_core::http::{AccessPolicy, Decision, Right};
            let token = auth
                .issue_access("ada", &["ops".to_owned()], &[])
                .map_err(|e| e.to_string())?;
            let mut headers = axum::http::HeaderMap::new();
            headers.insert("authorization", format!("Bearer {token}").parse().unwrap());
            let decision = modular_auth::RolePolicy::new(auth).decide(Right::Admin, &headers);
            (decision == Decision::Granted)
                .then_some(())
                .ok_or(format!("{decision:?}"))
        }),
    )
    .change(
        "passwords.min_length",
        [("auth.passwords.min_length", json!(30))],
        check(|auth| {
            let problems = auth.password_policy_violations("Long-Enough-Before-1");
            (!problems.is_empty())
                .then_some(())
                .ok_or("accepted".to_owned())
        }),
    )
    .change(
        "sessions.cookie.name",
        [("auth.sessions.cookie.name", json!("sid"))],
        check(|auth| {
            let id = auth.session_id_from_cookies("sid=abc");
            (id.as_deref() == Some("abc"))
                .then_some(())
                .ok_or(format!("{id:?}"))
        }),
    )
    .change(
        "health.optional",
        [("auth.health.optional", json!(true))],
        health_optional_is("auth", true),
    )
    .fault(proxy)
    .secret(SECRET)
    .secret(SECRET2)
    .recover_within(Duration::from_secs(15))
    .run()
    .await
    .assert_passed();
}
