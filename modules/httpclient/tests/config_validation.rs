//! Bad configuration is rejected with its path, at start-up and on reload.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use modular_core::config::ValidationError;
use modular_core::{Error, ReloadStatus};
use modular_httpclient::HttpClient;
use serde_json::json;

/// The validation errors that stop an application from building with `yaml`.
async fn rejected(yaml: &str) -> Vec<ValidationError> {
    let error = match support::app_with(yaml).await {
        Err(error) => error,
        Ok(_) => panic!("config was accepted:\n{yaml}"),
    };
    // The section is read in the module's init, so the config error arrives wrapped in it.
    let text = error.to_string();
    let config = match error {
        Error::Config(errors) => Some(errors),
        Error::Module { module, source, .. } => {
            assert_eq!(module, "httpclient");
            source
                .downcast::<Error>()
                .ok()
                .and_then(|inner| match *inner {
                    Error::Config(errors) => Some(errors),
                    _ => None,
                })
        }
        _ => None,
    };
    match config {
        Some(errors) => errors.0,
        None => panic!("expected a config error, got {text}"),
    }
}

fn paths(errors: &[ValidationError]) -> Vec<&str> {
    errors.iter().map(|e| e.path.as_str()).collect()
}

#[tokio::test]
async fn zero_timeouts_are_rejected_with_their_paths() {
    let errors = rejected("httpclient:\n  request_timeout: 0s\n  connect_timeout: 0ms\n").await;

    assert_eq!(
        paths(&errors),
        ["httpclient.request_timeout", "httpclient.connect_timeout"]
    );
    assert_eq!(errors[0].message, "must be > 0, got 0s");
    // The source that set the value is named too.
    assert!(
        errors[0]
            .to_string()
            .starts_with("httpclient.request_timeout: must be > 0, got 0s ("),
        "{}",
        errors[0]
    );
}

#[tokio::test]
async fn a_zero_health_timeout_is_rejected_with_its_path() {
    let errors = rejected("httpclient:\n  health:\n    timeout: 0s\n").await;

    assert_eq!(paths(&errors), ["httpclient.health.timeout"]);
    assert_eq!(errors[0].message, "must be > 0s, got 0s");
}

#[tokio::test]
async fn a_negative_timeout_is_rejected_with_its_path() {
    let errors = rejected("httpclient:\n  pool_idle_timeout: -5s\n").await;

    assert_eq!(paths(&errors), ["httpclient.pool_idle_timeout"]);
    assert!(errors[0].message.contains("\"-5s\""), "{}", errors[0]);
}

#[tokio::test]
async fn max_retries_above_the_cap_is_rejected() {
    let errors = rejected("httpclient:\n  retry:\n    max_retries: 11\n").await;

    assert_eq!(paths(&errors), ["httpclient.retry.max_retries"]);
    assert_eq!(errors[0].message, "must be at most 10, got 11");
}

#[tokio::test]
async fn malformed_probe_urls_are_rejected_with_the_probe_index() {
    let errors = rejected(
        "httpclient:\n  health_probe:\n    - name: fine\n      url: http://127.0.0.1:9/health\n    - name: broken\n      url: not a url\n    - name: ftp\n      url: ftp://example.com/\n",
    )
    .await;

    assert_eq!(
        paths(&errors),
        [
            "httpclient.health_probe.1.url",
            "httpclient.health_probe.2.url"
        ]
    );
    assert!(
        errors[0]
            .message
            .starts_with("must be an absolute http or https url"),
        "{}",
        errors[0]
    );
    assert!(!errors[0].message.contains("not a url"), "{}", errors[0]);
    assert_eq!(
        errors[1].message,
        "must be an absolute http or https url (unsupported scheme)"
    );
}

/// A probe URL with a password and a token in its query.
const SECRET_PROBE_URL: &str =
    "https://probe-user:pw-hunter2@billing.internal/health?token=tok-s3cr3t";

/// Parts of [`SECRET_PROBE_URL`] that must never be shown.
const PROBE_SECRETS: [&str; 3] = ["pw-hunter2", "tok-s3cr3t", "probe-user"];

fn assert_no_probe_secret(text: &str) {
    for secret in PROBE_SECRETS {
        assert!(!text.contains(secret), "{secret:?} leaked into:\n{text}");
    }
}

#[tokio::test]
async fn a_rejected_probe_url_is_never_repeated_in_its_error() {
    // Both an invalid scheme and an unparsable URL, each carrying credentials.
    let yaml = "httpclient:\n  health_probe:\n    - name: ftp\n      url: \"ftp://probe-user:pw-hunter2@host/x?token=tok-s3cr3t\"\n    - name: broken\n      url: \"https://probe-user:pw-hunter2@bad host/?token=tok-s3cr3t\"\n";
    let errors = rejected(yaml).await;

    assert_eq!(
        paths(&errors),
        [
            "httpclient.health_probe.0.url",
            "httpclient.health_probe.1.url"
        ]
    );
    for error in &errors {
        assert!(
            error
                .message
                .starts_with("must be an absolute http or https url"),
            "{error}"
        );
        assert_no_probe_secret(&error.to_string());
    }
}

#[tokio::test]
async fn probe_urls_are_redacted_in_the_running_config_and_in_reload_outcomes() {
    let yaml = format!(
        "httpclient:\n  health_probe:\n    - name: billing\n      url: \"{SECRET_PROBE_URL}\"\n"
    );
    let mut app = support::app_with(&yaml).await.unwrap();
    app.start().await.unwrap();
    let client = app.services().get::<HttpClient>().unwrap();
    // The module still has the real URL...
    assert_eq!(client.settings().health_probe[0].url, SECRET_PROBE_URL);
    // ...but `GET /admin/config` (the store's redacted JSON) and `Debug` do not show it.
    let running = app.config().redacted_json();
    assert_eq!(running["httpclient"]["health_probe"], json!("[REDACTED]"));
    assert_no_probe_secret(&running.to_string());
    assert_no_probe_secret(&format!("{:?}", client.settings()));

    // A rejected candidate: neither its errors nor its outcome repeat the URL.
    let bad =
        json!([{ "name": "billing", "url": "ftp://probe-user:pw-hunter2@host/?token=tok-s3cr3t" }]);
    let outcome = app
        .set_override("httpclient.health_probe", bad)
        .await
        .unwrap();
    assert_eq!(outcome.status, ReloadStatus::Rejected, "{outcome:?}");
    assert_eq!(paths(&outcome.errors), ["httpclient.health_probe.0.url"]);
    assert_no_probe_secret(&serde_json::to_string(&outcome).unwrap());
    assert_no_probe_secret(&format!("{outcome:?}"));

    // An applied change: the diff shows fingerprints, never the URLs.
    let good = json!([{ "name": "billing", "url": SECRET_PROBE_URL.replace("tok-s3cr3t", "tok-s3cr3t-2") }]);
    let outcome = app
        .set_override("httpclient.health_probe", good)
        .await
        .unwrap();
    assert_eq!(outcome.status, ReloadStatus::Applied, "{outcome:?}");
    assert_no_probe_secret(&serde_json::to_string(&outcome).unwrap());
    assert_no_probe_secret(&format!("{outcome:?}"));
    assert_no_probe_secret(&app.config().redacted_json().to_string());
    app.stop().await.unwrap();
}

#[tokio::test]
async fn a_misspelt_field_is_an_error_not_a_silent_default() {
    let errors = rejected("httpclient:\n  request_timout: 5s\n").await;

    assert_eq!(errors.len(), 1);
    assert!(errors[0].path.starts_with("httpclient"), "{}", errors[0]);
    assert!(
        errors[0].message.contains("request_timout"),
        "{}",
        errors[0]
    );
}

#[tokio::test]
async fn a_reload_with_a_bad_value_is_rejected_and_the_running_client_is_untouched() {
    let mut app = support::app_with("httpclient:\n  retry:\n    max_retries: 3\n")
        .await
        .unwrap();
    app.start().await.unwrap();
    let client = app.services().get::<HttpClient>().unwrap();

    let outcome = app
        .set_override("httpclient.retry.max_retries", json!(50))
        .await
        .unwrap();

    assert_eq!(outcome.status, ReloadStatus::Rejected, "{outcome:?}");
    assert_eq!(paths(&outcome.errors), ["httpclient.retry.max_retries"]);
    assert_eq!(outcome.errors[0].message, "must be at most 10, got 50");
    assert_eq!(client.settings().retry.max_retries, 3);
    assert_eq!(client.generation(), 1);
    app.stop().await.unwrap();
}
