//! Start-up, events, configuration errors, reloads and rollbacks, over real sockets.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::time::Duration;

use modular_core::ReloadStatus;
use modular_core::events::{AttributesReader as _, EventFilter, event_data};
use modular_httpserver::HttpServerHandle;
use support::{build, client, server_yaml, server_yaml_on};

#[tokio::test]
async fn the_server_serves_the_router_and_announces_start_and_stop() -> anyhow::Result<()> {
    let test = build(&server_yaml()).await?;
    let mut events = test
        .app
        .events()
        .subscribe(EventFilter::prefix("com.modular.httpserver."));
    let mut test = test.start().await?;

    let body = client()
        .get(test.url("/hello"))
        .send()
        .await?
        .text()
        .await?;
    assert_eq!(body, "hello");
    let handle = test.app.services().require::<HttpServerHandle>()?;
    assert_eq!(handle.local_addr().map(|a| a.port()), Some(test.port));
    assert_eq!(handle.scheme(), "http");

    test.app.stop().await?;
    let seen: Vec<String> = events.drain().iter().map(|e| e.ty().to_owned()).collect();
    assert_eq!(
        seen,
        [
            "com.modular.httpserver.server.started",
            "com.modular.httpserver.server.stopped"
        ]
    );
    Ok(())
}

#[tokio::test]
async fn invalid_settings_fail_the_build_with_their_paths() -> anyhow::Result<()> {
    let yaml = format!(
        "{}  max_connections: 0\n  tls:\n    enabled: true\n",
        server_yaml()
    );
    let error = match build(&yaml).await {
        Ok(_) => anyhow::bail!("a server with max_connections 0 was built"),
        Err(error) => error.to_string(),
    };
    assert!(
        error.contains("httpserver.max_connections: must be > 0, got 0"),
        "{error}"
    );
    assert!(error.contains("httpserver.tls.domains"), "{error}");
    Ok(())
}

#[tokio::test]
async fn a_zero_health_timeout_fails_the_build_with_its_path() -> anyhow::Result<()> {
    let yaml = format!("{}  health:\n    timeout: 0s\n", server_yaml());
    let error = match build(&yaml).await {
        Ok(_) => anyhow::bail!("a server with health.timeout 0s was built"),
        Err(error) => error.to_string(),
    };
    assert!(
        error.contains("httpserver.health.timeout: must be > 0s, got 0s"),
        "{error}"
    );
    Ok(())
}

#[tokio::test]
async fn a_taken_port_fails_start_naming_the_address() -> anyhow::Result<()> {
    let taken = std::net::TcpListener::bind("127.0.0.1:0")?;
    let port = taken.local_addr()?.port();
    let mut test = build(&server_yaml_on(port)).await?;
    let error = test
        .app
        .start()
        .await
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
    assert!(
        error.contains(&format!("cannot listen on 127.0.0.1:{port}")),
        "{error}"
    );
    Ok(())
}

#[tokio::test]
async fn a_request_timeout_change_applies_to_new_connections_only() -> anyhow::Result<()> {
    let test = build(&server_yaml()).await?.start().await?;
    // One keep-alive connection, opened under the old (60 s) timeout.
    let old = client();
    assert_eq!(old.get(test.url("/slow")).send().await?.status(), 200);

    test.write_config(&format!("{}  request_timeout: 100ms\n", server_yaml()))?;
    let outcome = test.app.reload().await?;
    assert_eq!(outcome.status, ReloadStatus::Applied, "{outcome:?}");

    // The open connection keeps its limits; a new one gets the new timeout.
    assert_eq!(old.get(test.url("/slow")).send().await?.status(), 200);
    let fresh = client().get(test.url("/slow")).send().await?;
    assert_eq!(fresh.status(), 503);
    assert!(fresh.text().await?.contains("timed out after 100ms"));
    Ok(())
}

#[tokio::test]
async fn a_body_limit_change_applies_to_the_next_connection() -> anyhow::Result<()> {
    let test = build(&server_yaml()).await?.start().await?;
    let body = vec![b'x'; 4096];
    let fresh = || {
        reqwest::Client::builder()
            .no_proxy()
            .pool_max_idle_per_host(0)
            .build()
            .unwrap()
    };
    let answer = fresh()
        .post(test.url("/echo"))
        .body(body.clone())
        .send()
        .await?;
    assert_eq!(answer.text().await?, "4096");

    test.write_config(&format!("{}  max_body_size: 1024\n", server_yaml()))?;
    assert_eq!(test.app.reload().await?.status, ReloadStatus::Applied);
    let answer = fresh().post(test.url("/echo")).body(body).send().await?;
    assert_eq!(answer.status(), 413);
    Ok(())
}

#[tokio::test]
async fn a_port_change_is_refused_as_restart_required() -> anyhow::Result<()> {
    let test = build(&server_yaml()).await?.start().await?;
    // Asked for port 0; naming the bound port is a change of the static field all the same.
    test.write_config(&server_yaml_on(test.port))?;
    let outcome = test.app.reload().await?;
    assert_eq!(outcome.status, ReloadStatus::Rejected);
    assert_eq!(outcome.static_changes, ["httpserver.port"]);
    assert_eq!(client().get(test.url("/hello")).send().await?.status(), 200);
    Ok(())
}

#[tokio::test]
async fn a_failed_certificate_reload_rolls_back_the_modules_applied_before_it() -> anyhow::Result<()>
{
    let dir = tempfile::tempdir()?;
    let (cert, key) =
        support::write_certificate(dir.path(), "first", &[0x01], (2020, 1, 1), (2099, 1, 1));
    let tls = |cert: &std::path::Path, key: &std::path::Path| {
        format!(
            "  tls:\n    enabled: true\n    cert_file: {}\n    key_file: {}\n",
            cert.display(),
            key.display()
        )
    };
    let yaml = format!("{}{}", server_yaml(), tls(&cert, &key));
    let test = build(&yaml).await?.start().await?;
    let mut events = test
        .app
        .events()
        .subscribe(EventFilter::exact("com.modular.config.reload.failed"));

    // The router's greeting is prepared first, then the server's certificate cannot load.
    let missing = dir.path().join("missing.crt");
    test.write_config(&format!(
        "router:\n  greeting: bonjour\n{}{}",
        server_yaml(),
        tls(&missing, &key)
    ))?;
    let outcome = test.app.reload().await?;
    assert_eq!(outcome.status, ReloadStatus::Failed, "{outcome:?}");
    assert_eq!(outcome.failed_module.as_deref(), Some("httpserver"));
    assert_eq!(outcome.aborted, ["router"]);
    assert!(outcome.rolled_back.is_empty(), "{outcome:?}");
    assert!(
        outcome
            .error
            .as_deref()
            .unwrap_or("")
            .contains("missing.crt"),
        "{outcome:?}"
    );
    let event = events.try_recv().expect("reload.failed event");
    assert_eq!(
        event_data(&event).and_then(|d| d["failed_module"].as_str()),
        Some("httpserver")
    );

    // Still the old greeting, over the old certificate.
    let mut connection = support::tls_connect(test.port).await?;
    assert_eq!(connection.serial, "01");
    assert_eq!(connection.get("/hello").await?, (200, "hello".to_owned()));
    Ok(())
}

#[tokio::test]
async fn without_a_router_the_server_refuses_to_start() -> anyhow::Result<()> {
    // A `router` module that publishes nothing.
    struct Empty;
    #[modular_core::async_trait]
    impl modular_core::Module for Empty {
        fn name(&self) -> &str {
            "router"
        }
    }
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("config.yaml");
    std::fs::write(&path, server_yaml())?;
    let mut app = modular_core::Application::builder()
        .config_file(&path)
        .env_prefix(None)
        .module(Empty)
        .module(modular_httpserver::HttpServerModule::new())
        .handle_signals(false)
        .shutdown_timeout(Duration::from_secs(5))
        .build()
        .await?;
    let error = app
        .start()
        .await
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
    assert!(error.contains("no ServedRouter"), "{error}");
    Ok(())
}
