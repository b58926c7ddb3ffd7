//! The page over plain HTTP: what is served to whom, and its section's reload.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use modular_core::{ReloadStatus, ReloadTrigger};
use support::{TOKEN, config_yaml, start};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_page_and_its_assets_are_served_without_credentials_under_a_strict_csp()
-> anyhow::Result<()> {
    let app = start(1, 20).await?;
    for (path, content_type) in [
        ("/admin/ui", "text/html"),
        ("/admin/ui/console.js", "text/javascript"),
        ("/admin/ui/console.css", "text/css"),
    ] {
        let response = app.http.get(app.url(path)).send().await?;
        assert_eq!(response.status(), 200, "{path}");
        let headers = response.headers();
        assert!(
            headers["content-type"].to_str()?.starts_with(content_type),
            "{path}"
        );
        assert_eq!(headers["cache-control"], "no-store", "{path}");
        let csp = headers["content-security-policy"].to_str()?;
        assert!(csp.contains("script-src 'self'") && csp.contains("frame-ancestors 'none'"));
        // The shell carries no data: nothing of the configuration, nor the token.
        let body = response.text().await?;
        assert!(!body.contains(TOKEN), "{path}");
    }
    app.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_settings_the_page_reads_are_behind_the_admin_guard() -> anyhow::Result<()> {
    let app = start(1, 20).await?;
    let url = app.url("/admin/ui/settings");
    assert_eq!(app.http.get(&url).send().await?.status(), 401);
    let wrong = app
        .http
        .get(&url)
        .bearer_auth("not-the-token-at-all-000")
        .send()
        .await?;
    assert_eq!(wrong.status(), 403);
    let settings = app.admin_json("/admin/ui/settings").await?;
    assert_eq!(settings["poll_interval_ms"], 200);
    assert_eq!(settings["page_size"], 50);
    app.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reload_that_disables_the_console_answers_404_for_the_page() -> anyhow::Result<()> {
    let app = start(1, 20).await?;
    std::fs::write(&app.config, config_yaml("first", "  enabled: false\n"))?;
    let outcome = app.orchestrator().reload(ReloadTrigger::Programmatic).await;
    // The watcher may have seen the write first; then this reload is a noop on its result.
    assert!(
        matches!(outcome.status, ReloadStatus::Applied | ReloadStatus::Noop),
        "{outcome:?}"
    );
    assert_eq!(
        app.http.get(app.url("/admin/ui")).send().await?.status(),
        404
    );
    let settings = app
        .http
        .get(app.url("/admin/ui/settings"))
        .bearer_auth(TOKEN)
        .send()
        .await?;
    assert_eq!(settings.status(), 404);
    app.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_console_section_is_rejected_with_its_key_path_and_the_page_stays()
-> anyhow::Result<()> {
    let app = start(1, 20).await?;
    let version = app.orchestrator().version();
    std::fs::write(&app.config, config_yaml("first", "  page_size: 0\n"))?;
    let outcome = app.orchestrator().reload(ReloadTrigger::Programmatic).await;
    assert_eq!(outcome.status, ReloadStatus::Rejected, "{outcome:?}");
    let paths: Vec<&str> = outcome.errors.iter().map(|e| e.path.as_str()).collect();
    assert_eq!(paths, ["console.page_size"]);
    assert_eq!(app.orchestrator().version(), version);
    assert_eq!(
        app.http.get(app.url("/admin/ui")).send().await?.status(),
        200
    );
    assert_eq!(app.admin_json("/admin/ui/settings").await?["page_size"], 50);
    app.stop().await
}
