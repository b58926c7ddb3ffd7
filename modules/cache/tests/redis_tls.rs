//! `rediss://` against a real `redis-server` started by each test with only a TLS port (no
//! plain-text port at all, so anything that works went over TLS), its certificate signed by a
//! test CA from rcgen, and a password.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::time::Duration;

use modular_cache::{CacheConfig, CacheEngine, CacheService};
use modular_core::health::HealthStatus;
use modular_core::{ReloadStatus, Secret};
use serde_json::json;
use support::tls_redis::{PASSWORD, TestPki, TlsRedis};

/// The cache section for `server`, trusting its CA.
fn section(test: &str, server: &TlsRedis) -> (serde_json::Value, String) {
    support::redis_section(
        test,
        &server.url(),
        json!({ "redis": { "tls": { "ca_file": server.ca_file() } } }),
    )
}

/// A `CacheConfig` for `url`, with a short connect timeout.
fn config(url: &str, ca_file: Option<&std::path::Path>) -> CacheConfig {
    let mut config = CacheConfig {
        engine: CacheEngine::Redis,
        ..CacheConfig::default()
    };
    config.redis.url = Secret::new(url.to_owned());
    config.redis.key_prefix = support::unique_prefix("tls");
    config.redis.connect_timeout = Duration::from_secs(3);
    config.redis.tls.ca_file = ca_file.map(Into::into);
    config
}

#[tokio::test]
async fn get_and_set_work_over_rediss_with_a_private_ca() -> anyhow::Result<()> {
    let Some(server) = TlsRedis::start()? else {
        return Ok(());
    };
    let (section, prefix) = section("tls_round_trip", &server);
    let mut h = support::start(section).await?;
    h.prefix = prefix;
    h.cache.set("greeting", b"over tls", None).await?;
    assert_eq!(
        h.cache.get("greeting").await?.as_deref(),
        Some(&b"over tls"[..])
    );
    h.cache
        .set_many(&[("a", b"1"), ("b", b"2")], Some(Duration::from_secs(60)))
        .await?;
    assert_eq!(
        h.cache.get_many(&["b", "a"]).await?,
        vec![Some(b"2".to_vec()), Some(b"1".to_vec())]
    );
    let report = h.cache_report().await;
    assert_eq!(report.status, HealthStatus::Healthy, "{report:?}");
    assert_eq!(
        report.details.get("address"),
        Some(&json!(format!("127.0.0.1:{}", server.port)))
    );
    let connected = h
        .wait_for_event("engine.connected", Duration::from_secs(1), |d| {
            d["reason"] == "start"
        })
        .await;
    assert!(!connected.to_string().contains(PASSWORD), "{connected}");
    h.finish().await
}

#[tokio::test]
async fn a_client_without_the_ca_is_refused_with_a_clear_error_that_keeps_the_password()
-> anyhow::Result<()> {
    let Some(server) = TlsRedis::start()? else {
        return Ok(());
    };
    // No ca_file: the system roots do not know the test CA.
    let error = CacheService::new(&config(&server.url(), None))
        .await
        .expect_err("an untrusted server certificate");
    let text = error.to_string();
    assert!(
        text.contains(&format!(
            "cannot connect to redis at 127.0.0.1:{}",
            server.port
        )),
        "{text}"
    );
    assert!(
        text.contains("invalid peer certificate") && text.contains("UnknownIssuer"),
        "says why: {text}"
    );
    assert!(!text.contains(PASSWORD), "{text}");
    assert!(!format!("{error:?}").contains(PASSWORD), "{error:?}");

    // Another CA's certificate is no better.
    let other = TestPki::new("other")?;
    let error = CacheService::new(&config(&server.url(), Some(&other.ca_file)))
        .await
        .expect_err("a CA that did not sign the server certificate");
    assert!(error.to_string().contains("UnknownIssuer"), "{error}");

    // The same through the module: start-up fails with the reason.
    let section = json!({
        "engine": "redis",
        "redis": { "url": server.url(), "connect_timeout": "3s" },
    });
    let built = modular_core::Application::builder()
        .env_prefix(None)
        .config_defaults(json!({ "cache": section }))
        .module(modular_cache::CacheModule::new())
        .handle_signals(false)
        .build()
        .await;
    let text = built.err().map(|e| e.to_string()).unwrap_or_default();
    assert!(text.contains("invalid peer certificate"), "{text}");
    assert!(!text.contains(PASSWORD), "{text}");
    Ok(())
}

#[tokio::test]
async fn a_wrong_password_over_tls_is_a_clear_error_without_the_password() -> anyhow::Result<()> {
    let Some(server) = TlsRedis::start()? else {
        return Ok(());
    };
    let url = format!("rediss://:not-the-{PASSWORD}@127.0.0.1:{}", server.port);
    let error = CacheService::new(&config(&url, Some(server.ca_file())))
        .await
        .expect_err("a wrong password");
    let text = error.to_string();
    assert!(text.contains("Password authentication failed"), "{text}");
    assert!(!text.contains(PASSWORD), "{text}");
    Ok(())
}

#[tokio::test]
async fn a_ca_file_that_is_missing_or_holds_no_certificate_is_reported_with_its_key()
-> anyhow::Result<()> {
    let Some(server) = TlsRedis::start()? else {
        return Ok(());
    };
    let missing = server.pki.dir.path().join("missing.pem");
    let error = CacheService::new(&config(&server.url(), Some(&missing)))
        .await
        .expect_err("no such file");
    let text = error.to_string();
    assert!(
        text.contains(&format!(
            "cannot read redis.tls.ca_file `{}`",
            missing.display()
        )),
        "{text}"
    );

    let empty = server.pki.dir.path().join("empty.pem");
    std::fs::write(&empty, "not a certificate\n")?;
    let error = CacheService::new(&config(&server.url(), Some(&empty)))
        .await
        .expect_err("no certificate in it");
    assert!(
        error.to_string().contains(&format!(
            "redis.tls.ca_file `{}` holds no PEM certificate",
            empty.display()
        )),
        "{error}"
    );
    Ok(())
}

#[tokio::test]
async fn health_over_tls_goes_unhealthy_when_the_server_stops_and_recovers_when_it_restarts()
-> anyhow::Result<()> {
    let Some(mut server) = TlsRedis::start()? else {
        return Ok(());
    };
    let (section, prefix) = section("tls_health", &server);
    let mut h = support::start(section).await?;
    h.prefix = prefix;
    h.cache.set("k", b"v", None).await?;
    assert_eq!(h.cache_report().await.status, HealthStatus::Healthy);

    server.stop();
    let report = h
        .wait_for_health(HealthStatus::Unhealthy, Duration::from_secs(10))
        .await;
    assert!(!report.message.contains(PASSWORD), "{report:?}");
    h.wait_for_event("engine.disconnected", Duration::from_secs(1), |_| true)
        .await;

    // A new server (no persistence, so empty) on the same port: the connection manager
    // reconnects over TLS by itself.
    server.restart()?;
    h.wait_for_health(HealthStatus::Healthy, Duration::from_secs(20))
        .await;
    h.wait_for_event("engine.connected", Duration::from_secs(1), |d| {
        d["reason"] == "recovered"
    })
    .await;
    assert_eq!(
        h.cache.get("k").await?,
        None,
        "the restarted server is empty"
    );
    h.cache.set("k", b"again", None).await?;
    assert_eq!(h.cache.get("k").await?.as_deref(), Some(&b"again"[..]));
    h.finish().await
}

#[tokio::test]
async fn a_ca_file_reload_reconnects_and_a_wrong_ca_is_refused_while_the_old_connection_serves()
-> anyhow::Result<()> {
    let Some(server) = TlsRedis::start()? else {
        return Ok(());
    };
    let (section, prefix) = section("tls_ca_reload", &server);
    let mut h = support::start(section).await?;
    h.prefix = prefix;
    h.cache.set("k", b"v", None).await?;
    let generation = h.service.engine_generation();

    let other = TestPki::new("other")?;
    let outcome = h
        .app
        .set_override("cache.redis.tls.ca_file", json!(other.ca_file))
        .await?;
    assert_eq!(outcome.status, ReloadStatus::Failed, "{outcome:?}");
    let error = outcome.error.clone().unwrap_or_default();
    assert!(error.contains("UnknownIssuer"), "{error}");
    assert!(!error.contains(PASSWORD), "{error}");
    assert_eq!(h.service.engine_generation(), generation);
    assert_eq!(h.cache.get("k").await?.as_deref(), Some(&b"v"[..]));

    // A copy of the right CA under another path: a new connection is opened with it.
    let copy = other.dir.path().join("right-ca.pem");
    std::fs::copy(server.ca_file(), &copy)?;
    let outcome = h
        .app
        .set_override("cache.redis.tls.ca_file", json!(copy))
        .await?;
    assert_eq!(outcome.status, ReloadStatus::Applied, "{outcome:?}");
    let reloaded = h
        .wait_for_event("engine.reloaded", Duration::from_secs(1), |_| true)
        .await;
    assert_eq!(reloaded["fields"], json!(["redis.tls.ca_file"]));
    assert_eq!(reloaded["reconnected"], json!(true));
    assert_eq!(h.service.engine_generation(), generation + 1);
    assert_eq!(h.cache.get("k").await?.as_deref(), Some(&b"v"[..]));
    h.finish().await
}
