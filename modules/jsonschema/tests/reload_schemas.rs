//! Reloads: schema files edited while the application runs (through the watcher), every
//! dynamic field through a config reload, a prepare that fails and leaves the running set,
//! bad config rejected with its path, and config sections validated against a schema.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::path::Path;

use modular_core::health::HealthStatus;
use modular_core::{Application, ReloadStatus};
use modular_jsonschema::JsonSchemas;
use serde_json::{Value, json};
use support::{builder, next_event, subscribe, write};

const TITLE_MAX_5: &str = r#"{"properties": {"title": {"type": "string", "maxLength": 5}}}"#;
const TITLE_MAX_2: &str = r#"{"properties": {"title": {"type": "string", "maxLength": 2}}}"#;

async fn schemas_health(app: &Application) -> (HealthStatus, String, Value) {
    let answer = app.health().unwrap().force_refresh().await;
    let report = answer
        .reports
        .iter()
        .find(|r| r.module == "jsonschema")
        .expect("a jsonschema report");
    (report.status, report.message.clone(), json!(report.details))
}

/// A YAML config file in `dir` (so errors carry its name as the source).
fn config_file(dir: &Path, yaml: &str) -> std::path::PathBuf {
    write(dir, "config.yaml", yaml)
}

fn app_over(file: &Path) -> modular_core::ApplicationBuilder {
    builder(json!({})).config_file(file)
}

fn yaml(schemas: &Path, extra: &str) -> String {
    format!(
        "jsonschema:\n  schemas:\n    dir: {}\n  watch:\n    enabled: false\n{extra}",
        schemas.display()
    )
}

#[tokio::test]
async fn an_edited_schema_file_applies_a_broken_edit_keeps_the_old_set_and_degrades_and_a_fix_recovers()
 {
    let f = support::fixture(
        &[("note.json", TITLE_MAX_5)],
        json!({"jsonschema": {"watch": {"enabled": true, "debounce": "20ms"}}}),
    )
    .await;
    let mut events = subscribe(&f.app);
    let title = |t: &str| json!({ "title": t });
    assert!(f.schemas.is_valid("note", &title("abcd")));

    write(f.dir.path(), "note.json", TITLE_MAX_2);
    let reloaded = next_event(&mut events, "com.modular.jsonschema.schemas.reloaded").await;
    assert_eq!(reloaded["trigger"], "watch");
    assert_eq!(reloaded["schemas"], json!(["note"]));
    assert!(!f.schemas.is_valid("note", &title("abcd")));
    assert_eq!(schemas_health(&f.app).await.0, HealthStatus::Healthy);

    write(f.dir.path(), "note.json", "{\"properties\": {\"title\": ");
    let rejected = next_event(&mut events, "com.modular.jsonschema.schemas.rejected").await;
    let error = rejected["error"].as_str().unwrap();
    assert!(
        error.contains("note.json: invalid JSON at line 1"),
        "{error}"
    );
    assert!(
        rejected["file"].as_str().unwrap().ends_with("note.json"),
        "{rejected}"
    );
    // The last good set keeps validating.
    assert!(f.schemas.is_valid("note", &title("ab")));
    assert!(!f.schemas.is_valid("note", &title("abcd")));
    let (status, message, details) = schemas_health(&f.app).await;
    assert_eq!(status, HealthStatus::Degraded);
    assert!(message.contains("note.json: invalid JSON"), "{message}");
    assert!(
        details["file"].as_str().unwrap().ends_with("note.json"),
        "{details}"
    );

    write(f.dir.path(), "note.json", TITLE_MAX_5);
    next_event(&mut events, "com.modular.jsonschema.schemas.reloaded").await;
    assert!(f.schemas.is_valid("note", &title("abcd")));
    assert_eq!(schemas_health(&f.app).await.0, HealthStatus::Healthy);
}

#[tokio::test]
async fn a_file_added_to_the_watched_directory_becomes_a_schema_and_a_bad_ref_names_its_file() {
    let f = support::fixture(
        &[("note.json", TITLE_MAX_5)],
        json!({"jsonschema": {"watch": {"enabled": true, "debounce": "20ms"}}}),
    )
    .await;
    let mut events = subscribe(&f.app);
    write(f.dir.path(), "tag.yaml", "type: string\nminLength: 2\n");
    next_event(&mut events, "com.modular.jsonschema.schemas.reloaded").await;
    assert_eq!(f.schemas.names(), ["note", "tag"]);
    assert!(!f.schemas.is_valid("tag", &json!("a")));

    write(f.dir.path(), "tag.yaml", "$ref: 'other.yaml'\n");
    let rejected = next_event(&mut events, "com.modular.jsonschema.schemas.rejected").await;
    assert!(
        rejected["file"].as_str().unwrap().ends_with("tag.yaml"),
        "{rejected}"
    );
    assert!(
        rejected["error"]
            .as_str()
            .unwrap()
            .contains("jsonschema.schemas.dir"),
        "{rejected}"
    );
    assert!(
        !f.schemas.is_valid("tag", &json!("a")),
        "the old tag schema stays"
    );
}

#[tokio::test]
async fn with_the_watcher_off_an_edit_is_not_applied_and_health_says_the_set_is_not_current() {
    let f = support::fixture(&[("note.json", TITLE_MAX_5)], json!({})).await;
    write(f.dir.path(), "note.json", TITLE_MAX_2);
    let (status, message, _) = schemas_health(&f.app).await;
    assert_eq!(status, HealthStatus::Degraded, "{message}");
    assert!(message.contains("watcher is off"), "{message}");
    assert!(f.schemas.is_valid("note", &json!({"title": "abcd"})));

    // Turning the watcher on is a dynamic change: the reload recompiles the files.
    set(&f.app, "jsonschema.watch.enabled", json!(true));
    let outcome = f.app.reload().await.unwrap();
    assert_eq!(outcome.status, ReloadStatus::Applied, "{outcome:?}");
    assert!(!f.schemas.is_valid("note", &json!({"title": "abcd"})));
    assert_eq!(schemas_health(&f.app).await.0, HealthStatus::Healthy);

    // And from now on edits are followed.
    let mut events = subscribe(&f.app);
    write(f.dir.path(), "note.json", TITLE_MAX_5);
    next_event(&mut events, "com.modular.jsonschema.schemas.reloaded").await;
    assert!(f.schemas.is_valid("note", &json!({"title": "abcd"})));
}

fn set(app: &Application, key: &str, value: Value) {
    let store = app.config();
    let mut overrides = store.overrides();
    overrides.insert(key.to_owned(), value);
    store.set_overrides(overrides);
}

#[tokio::test]
async fn default_draft_and_formats_are_dynamic() {
    let f = support::fixture(
        &[
            ("tuple.json", r#"{"prefixItems": [{"type": "integer"}]}"#),
            ("mail.json", r#"{"format": "email"}"#),
        ],
        json!({"jsonschema": {"default_draft": "7"}}),
    )
    .await;
    // Draft 7 knows no `prefixItems`; mail is checked.
    assert!(f.schemas.is_valid("tuple", &json!(["x"])));
    assert!(!f.schemas.is_valid("mail", &json!("nope")));

    // In 2020-12 it checks the first item.
    set(&f.app, "jsonschema.default_draft", json!("2020-12"));
    let outcome = f.app.reload().await.unwrap();
    assert_eq!(outcome.status, ReloadStatus::Applied, "{outcome:?}");
    assert!(outcome.reloaded.contains(&"jsonschema".to_owned()));
    assert!(!f.schemas.is_valid("tuple", &json!(["x"])));
    assert!(!f.schemas.is_valid("mail", &json!("nope")));

    set(&f.app, "jsonschema.formats", json!(false));
    let outcome = f.app.reload().await.unwrap();
    assert_eq!(outcome.status, ReloadStatus::Applied, "{outcome:?}");
    assert!(
        f.schemas.is_valid("mail", &json!("nope")),
        "formats are off"
    );
    assert_eq!(f.schemas.current().generation(), 3);
}

#[tokio::test]
async fn schema_sources_are_dynamic() {
    let f = support::fixture(&[("note.json", TITLE_MAX_5)], json!({})).await;
    let other = tempfile::tempdir().unwrap();
    let tag = write(other.path(), "tag.json", r#"{"type": "string"}"#);
    set(&f.app, "jsonschema.schemas.files", json!({"label": tag}));
    let outcome = f.app.reload().await.unwrap();
    assert_eq!(outcome.status, ReloadStatus::Applied, "{outcome:?}");
    assert_eq!(f.schemas.names(), ["label", "note"]);
    assert!(!f.schemas.is_valid("label", &json!(1)));
}

#[tokio::test]
async fn remote_hosts_and_timeout_are_dynamic() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let router = axum::Router::new().route(
        "/code.json",
        axum::routing::get(|| async { r#"{"type": "string", "maxLength": 3}"# }),
    );
    tokio::spawn(async move { axum::serve(listener, router).await });
    // A server that accepts and never answers.
    let silent = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let silent_addr = silent.local_addr().unwrap();
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = silent.accept().await {
            held.push(socket);
        }
    });

    let f = support::fixture(&[("note.json", TITLE_MAX_5)], json!({})).await;
    let remote = tempfile::tempdir().unwrap();
    let code = write(
        remote.path(),
        "code.json",
        &format!(r#"{{"$ref": "http://{addr}/code.json"}}"#),
    );
    set(&f.app, "jsonschema.schemas.files", json!({"code": code}));
    let outcome = f.app.reload().await.unwrap();
    assert_eq!(outcome.status, ReloadStatus::Failed, "{outcome:?}");
    assert!(
        outcome
            .error
            .as_deref()
            .unwrap()
            .contains("not in jsonschema.remote.allowed_hosts"),
        "{outcome:?}"
    );
    assert_eq!(f.schemas.names(), ["note"], "the running set stays");
    // The running config and set stay, and both are current: health is not degraded by a
    // candidate that failed; the failure is on record.
    let (status, _, details) = schemas_health(&f.app).await;
    assert_eq!(status, HealthStatus::Healthy);
    assert!(
        details["last_rejection"]["error"]
            .as_str()
            .unwrap()
            .contains("allowed_hosts"),
        "{details}"
    );

    set(
        &f.app,
        "jsonschema.remote.allowed_hosts",
        json!([addr.to_string()]),
    );
    let outcome = f.app.reload().await.unwrap();
    assert_eq!(outcome.status, ReloadStatus::Applied, "{outcome:?}");
    assert!(f.schemas.is_valid("code", &json!("EUR")));
    assert!(!f.schemas.is_valid("code", &json!("EURO")));

    let slow = write(
        remote.path(),
        "slow.json",
        &format!(r#"{{"$ref": "http://{silent_addr}/x.json"}}"#),
    );
    set(
        &f.app,
        "jsonschema.schemas.files",
        json!({"code": code, "slow": slow}),
    );
    set(
        &f.app,
        "jsonschema.remote.allowed_hosts",
        json!([addr.to_string(), silent_addr.to_string()]),
    );
    set(&f.app, "jsonschema.remote.timeout", json!("100ms"));
    let outcome = f.app.reload().await.unwrap();
    assert_eq!(outcome.status, ReloadStatus::Failed, "{outcome:?}");
    let error = outcome.error.as_deref().unwrap();
    assert!(
        error.contains("slow.json") && error.contains("cannot fetch"),
        "{error}"
    );
}

#[tokio::test]
async fn health_options_are_dynamic() {
    let f = support::fixture(&[("note.json", TITLE_MAX_5)], json!({})).await;
    let optional = |app: &Application| {
        let app = app.health().unwrap().clone();
        async move {
            app.force_refresh()
                .await
                .reports
                .iter()
                .find(|r| r.module == "jsonschema")
                .map(|r| r.optional)
        }
    };
    assert_eq!(optional(&f.app).await, Some(false));
    set(&f.app, "jsonschema.health.optional", json!(true));
    let outcome = f.app.reload().await.unwrap();
    assert_eq!(outcome.status, ReloadStatus::Applied, "{outcome:?}");
    assert_eq!(optional(&f.app).await, Some(true));
}

#[tokio::test]
async fn bad_schema_config_is_rejected_by_a_reload_with_its_path_and_file() {
    let f = support::fixture(&[("note.json", TITLE_MAX_5)], json!({})).await;
    let version = f.app.config().version();
    let cases: [(&str, Value, &str); 4] = [
        (
            "jsonschema.schemas.dir",
            json!("/definitely/not/here"),
            "/definitely/not/here",
        ),
        (
            "jsonschema.schemas.files",
            json!({"x": "/nope/x.json"}),
            "/nope/x.json",
        ),
        (
            "jsonschema.default_draft",
            json!("8"),
            "unknown draft \"8\"",
        ),
        ("jsonschema.remote.timeout", json!("0s"), "must be > 0s"),
    ];
    for (key, value, text) in cases {
        let store = f.app.config();
        store.set_overrides([(key.to_owned(), value)].into_iter().collect());
        let outcome = f.app.reload().await.unwrap();
        assert_eq!(outcome.status, ReloadStatus::Rejected, "{key}: {outcome:?}");
        let error = outcome
            .errors
            .iter()
            .find(|e| key.starts_with(&e.path) || e.path.starts_with(key))
            .unwrap_or_else(|| panic!("{key}: {:?}", outcome.errors));
        assert!(error.message.contains(text), "{key}: {error:?}");
    }
    // A duplicate name and an invalid schema in the directory.
    f.app.config().set_overrides(Default::default());
    write(f.dir.path(), "note.schema.yaml", "type: object\n");
    let outcome = f.app.reload().await.unwrap();
    assert_eq!(outcome.status, ReloadStatus::Rejected, "{outcome:?}");
    assert!(
        outcome.errors[0]
            .message
            .contains("duplicate schema name \"note\""),
        "{outcome:?}"
    );
    std::fs::remove_file(f.dir.path().join("note.schema.yaml")).unwrap();
    write(f.dir.path(), "bad.json", r#"{"minLength": -1}"#);
    let outcome = f.app.reload().await.unwrap();
    assert_eq!(outcome.status, ReloadStatus::Rejected, "{outcome:?}");
    assert_eq!(outcome.errors[0].path, "jsonschema.schemas.dir");
    assert!(
        outcome.errors[0]
            .message
            .contains("bad.json: not a valid JSON Schema"),
        "{outcome:?}"
    );
    assert_eq!(f.app.config().version(), version);
    assert_eq!(f.schemas.names(), ["note"]);
}

const APP_CONFIG: &str = r#"{
  "type": "object",
  "required": ["port"],
  "properties": {
    "port": {"type": "integer", "minimum": 1, "maximum": 65535},
    "owners": {"type": "array", "items": {"type": "string", "format": "email"}}
  }
}"#;

#[tokio::test]
async fn a_config_section_violating_its_schema_fails_the_build_with_the_key_path_and_file() {
    let dir = tempfile::tempdir().unwrap();
    let schemas = dir.path().join("schemas");
    write(&schemas, "app-config.json", APP_CONFIG);
    let file = config_file(
        dir.path(),
        &yaml(
            &schemas,
            "  sections:\n    app: app-config\napp:\n  port: 70000\n",
        ),
    );
    let text = support::build_error(app_over(&file).free_section("app")).await;
    assert!(text.contains("app.port"), "{text}");
    assert!(
        text.contains("70000 is greater than the maximum of 65535"),
        "{text}"
    );
    assert!(text.contains("config.yaml"), "{text}");
}

#[tokio::test]
async fn a_config_section_violating_its_schema_rejects_the_reload_with_the_key_path_and_source() {
    let dir = tempfile::tempdir().unwrap();
    let schemas = dir.path().join("schemas");
    write(&schemas, "app-config.json", APP_CONFIG);
    let head = yaml(&schemas, "  sections:\n    app: app-config\n");
    let file = config_file(dir.path(), &format!("{head}app:\n  port: 8080\n"));
    let mut app = app_over(&file).free_section("app").build().await.unwrap();
    app.start().await.unwrap();
    let version = app.config().version();

    config_file(
        dir.path(),
        &format!("{head}app:\n  port: 8080\n  owners: [ada@example.com, not-an-address]\n"),
    );
    let outcome = app.reload().await.unwrap();
    assert_eq!(outcome.status, ReloadStatus::Rejected, "{outcome:?}");
    let error = &outcome.errors[0];
    assert_eq!(error.path, "app.owners.1");
    assert!(error.source.ends_with("config.yaml"), "{error:?}");
    assert!(error.message.contains("schema \"app-config\""), "{error:?}");
    assert_eq!(app.config().version(), version);

    config_file(dir.path(), &format!("{head}app:\n  owners: []\n"));
    let outcome = app.reload().await.unwrap();
    assert_eq!(outcome.status, ReloadStatus::Rejected, "{outcome:?}");
    assert_eq!(outcome.errors[0].path, "app");
    assert!(
        outcome.errors[0]
            .message
            .contains("\"port\" is a required property"),
        "{outcome:?}"
    );

    // A valid section passes validation (a free section has no typed reader, so nothing
    // else changes: a noop, not a rejection).
    config_file(dir.path(), &format!("{head}app:\n  port: 9090\n"));
    let outcome = app.reload().await.unwrap();
    assert_eq!(outcome.status, ReloadStatus::Noop, "{outcome:?}");
    assert!(outcome.errors.is_empty(), "{outcome:?}");
    app.stop().await.unwrap();
}

#[tokio::test]
async fn the_section_map_is_static_and_must_name_a_loaded_schema() {
    let dir = tempfile::tempdir().unwrap();
    let schemas = dir.path().join("schemas");
    write(&schemas, "app-config.json", APP_CONFIG);
    let file = config_file(dir.path(), &yaml(&schemas, "  sections:\n    app: nope\n"));
    let text = support::build_error(app_over(&file).free_section("app")).await;
    assert!(
        text.contains("jsonschema.sections.app: no schema named \"nope\""),
        "{text}"
    );

    let file = config_file(dir.path(), &yaml(&schemas, "app:\n  port: 1\n"));
    let mut app = app_over(&file).free_section("app").build().await.unwrap();
    app.start().await.unwrap();
    config_file(
        dir.path(),
        &yaml(
            &schemas,
            "  sections:\n    app: app-config\napp:\n  port: 1\n",
        ),
    );
    let outcome = app.reload().await.unwrap();
    assert_eq!(outcome.status, ReloadStatus::Rejected, "{outcome:?}");
    assert_eq!(
        outcome.error.as_deref(),
        Some("restart required: jsonschema.sections.app")
    );
    app.stop().await.unwrap();
}

#[tokio::test]
async fn a_failed_prepare_leaves_the_running_set_emits_rejected_and_a_revert_leaves_nothing_degraded()
 {
    let f = support::fixture(&[("note.json", TITLE_MAX_5)], json!({})).await;
    let mut events = subscribe(&f.app);
    let other = tempfile::tempdir().unwrap();
    let dangling = write(
        other.path(),
        "dangling.json",
        r##"{"$ref": "#/$defs/none"}"##,
    );
    set(
        &f.app,
        "jsonschema.schemas.files",
        json!({"dangling": dangling}),
    );
    let outcome = f.app.reload().await.unwrap();
    assert_eq!(outcome.status, ReloadStatus::Failed, "{outcome:?}");
    assert_eq!(outcome.failed_module.as_deref(), Some("jsonschema"));
    let rejected = next_event(&mut events, "com.modular.jsonschema.schemas.rejected").await;
    assert_eq!(rejected["trigger"], "reload");
    assert!(
        rejected["file"]
            .as_str()
            .unwrap()
            .ends_with("dangling.json"),
        "{rejected}"
    );
    assert_eq!(f.schemas.names(), ["note"]);
    assert_eq!(f.schemas.last_rejection().unwrap().trigger, "reload");
    assert_eq!(
        f.schemas.rejection(),
        None,
        "the files on disk still compile"
    );

    // Reverting the candidate is a noop, and nothing stays degraded.
    f.app.config().set_overrides(Default::default());
    let outcome = f.app.reload().await.unwrap();
    assert_eq!(outcome.status, ReloadStatus::Noop, "{outcome:?}");
    assert_eq!(schemas_health(&f.app).await.0, HealthStatus::Healthy);
    set(&f.app, "jsonschema.formats", json!(false));
    let outcome = f.app.reload().await.unwrap();
    assert_eq!(outcome.status, ReloadStatus::Applied, "{outcome:?}");
    let _: &JsonSchemas = &f.schemas;
}

#[tokio::test]
async fn the_schema_directory_is_dynamic_and_the_watch_follows_it() {
    let f = support::fixture(
        &[("note.json", TITLE_MAX_5)],
        json!({"jsonschema": {"watch": {"enabled": true, "debounce": "20ms"}}}),
    )
    .await;
    let other = tempfile::tempdir().unwrap();
    write(other.path(), "tag.json", r#"{"type": "string"}"#);
    set(&f.app, "jsonschema.schemas.dir", json!(other.path()));
    let outcome = f.app.reload().await.unwrap();
    assert_eq!(outcome.status, ReloadStatus::Applied, "{outcome:?}");
    assert_eq!(f.schemas.names(), ["tag"]);
    let (_, _, details) = schemas_health(&f.app).await;
    assert_eq!(
        details["watch"]["directories"],
        json!([other.path()]),
        "{details}"
    );

    // An edit in the new directory is followed; one in the old is not a schema any more.
    let mut events = subscribe(&f.app);
    write(other.path(), "tag.json", r#"{"type": "integer"}"#);
    next_event(&mut events, "com.modular.jsonschema.schemas.reloaded").await;
    assert!(f.schemas.is_valid("tag", &json!(1)));
}

#[tokio::test]
async fn the_watch_debounce_and_the_health_timeout_are_dynamic() {
    let f = support::fixture(
        &[("note.json", TITLE_MAX_5)],
        json!({"jsonschema": {"watch": {"enabled": true, "debounce": "20ms"}}}),
    )
    .await;
    let (_, _, details) = schemas_health(&f.app).await;
    assert_eq!(details["watch"]["debounce_ms"], 20, "{details}");
    let timeout = || {
        f.app
            .health()
            .unwrap()
            .provider_options("jsonschema")
            .unwrap()
            .timeout
    };
    assert_eq!(timeout(), std::time::Duration::from_millis(500));

    set(&f.app, "jsonschema.watch.debounce", json!("40ms"));
    set(&f.app, "jsonschema.health.timeout", json!("2s"));
    let outcome = f.app.reload().await.unwrap();
    assert_eq!(outcome.status, ReloadStatus::Applied, "{outcome:?}");
    let (_, _, details) = schemas_health(&f.app).await;
    assert_eq!(details["watch"]["debounce_ms"], 40, "{details}");
    assert_eq!(timeout(), std::time::Duration::from_secs(2));
    // The re-armed watch still follows edits.
    let mut events = subscribe(&f.app);
    write(f.dir.path(), "note.json", TITLE_MAX_2);
    next_event(&mut events, "com.modular.jsonschema.schemas.reloaded").await;
    assert!(!f.schemas.is_valid("note", &json!({"title": "abc"})));
}

/// A builder over `file` whose module checks `app` against `schema` from code.
fn app_checking(file: &Path, schema: &str) -> modular_core::ApplicationBuilder {
    modular_testkit::test_builder()
        .config_file(file)
        .free_section("app")
        .module(modular_jsonschema::JsonSchemaModule::new().check_section("app", schema))
}

#[tokio::test]
async fn a_section_check_attached_in_code_fails_the_build_and_rejects_a_reload() {
    let dir = tempfile::tempdir().unwrap();
    let schemas = dir.path().join("schemas");
    write(&schemas, "app-config.json", APP_CONFIG);
    let head = yaml(&schemas, "");

    // A violation at start fails the build with the key path and the source.
    let file = config_file(dir.path(), &format!("{head}app:\n  port: 70000\n"));
    let text = support::build_error(app_checking(&file, "app-config")).await;
    assert!(text.contains("app.port"), "{text}");
    assert!(text.contains("maximum of 65535"), "{text}");
    assert!(text.contains("config.yaml"), "{text}");

    // A valid one builds; a violating reload is rejected and the running config stays.
    let file = config_file(dir.path(), &format!("{head}app:\n  port: 8080\n"));
    let mut app = app_checking(&file, "app-config").build().await.unwrap();
    app.start().await.unwrap();
    let version = app.config().version();
    config_file(dir.path(), &format!("{head}app:\n  port: \"eighty\"\n"));
    let outcome = app.reload().await.unwrap();
    assert_eq!(outcome.status, ReloadStatus::Rejected, "{outcome:?}");
    assert_eq!(outcome.errors[0].path, "app.port");
    assert!(
        outcome.errors[0].message.contains("schema \"app-config\""),
        "{outcome:?}"
    );
    assert_eq!(app.config().version(), version);
    config_file(dir.path(), &format!("{head}app:\n  port: 9090\n"));
    assert!(app.reload().await.unwrap().errors.is_empty());
    app.stop().await.unwrap();

    // An unknown schema fails the build naming the call.
    let text = support::build_error(app_checking(&file, "nope")).await;
    assert!(
        text.contains("JsonSchemaModule::check_section(\"app\"): no schema named \"nope\""),
        "{text}"
    );

    // The same section in jsonschema.sections: the same schema is one check, another fails.
    write(&schemas, "other.json", r#"{"type": "object"}"#);
    let file = config_file(
        dir.path(),
        &yaml(
            &schemas,
            "  sections:\n    app: other\napp:\n  port: 8080\n",
        ),
    );
    let mut app = app_checking(&file, "other").build().await.unwrap();
    app.stop().await.unwrap();
    let text = support::build_error(app_checking(&file, "app-config")).await;
    assert!(
        text.contains("section \"app\" is checked against schema \"other\""),
        "{text}"
    );
}
