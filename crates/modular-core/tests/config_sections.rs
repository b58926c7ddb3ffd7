//! The shape of the top level of a configuration: every key is a section some module (or
//! core, or the application) reads, and every section is a map. A typo in a section name or a
//! list where a section belongs is an error with its path and source, at `build()` and on
//! reload, never a section silently loaded as defaults.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};

use modular_core::reload::ReloadStatus;
use modular_core::{
    Application, ApplicationBuilder, BoxError, DynamicConfig, Error, InitContext, Module,
};
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, DynamicConfig)]
#[serde(default, deny_unknown_fields)]
struct CacheConfig {
    #[config(dynamic)]
    max_items: u32,
}

impl Default for CacheConfig {
    fn default() -> Self {
        Self { max_items: 10 }
    }
}

/// A module named `name` that reads its section as a [`CacheConfig`].
#[derive(Debug)]
struct Reader(&'static str);

#[modular_core::async_trait]
impl Module for Reader {
    fn name(&self) -> &str {
        self.0
    }

    async fn init(&mut self, ctx: &mut InitContext<'_>) -> Result<(), BoxError> {
        ctx.config::<CacheConfig>()?;
        Ok(())
    }
}

/// A module with no config section at all.
#[derive(Debug)]
struct Silent;

#[modular_core::async_trait]
impl Module for Silent {
    fn name(&self) -> &str {
        "silent"
    }
}

fn app(file: &Path) -> ApplicationBuilder {
    Application::builder()
        .env_prefix(None)
        .handle_signals(false)
        .module(Reader("cache"))
        .module(Silent)
        .config_text(
            "embedded defaults",
            modular_core::config::TextFormat::Yaml,
            "cache:\n  max_items: 5\n",
        )
        .config_file(file)
}

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

async fn build_error(builder: ApplicationBuilder) -> String {
    match builder.build().await {
        Ok(_) => panic!("expected the build to fail"),
        Err(Error::Config(errors)) => errors.to_string(),
        Err(other) => panic!("not a configuration error: {other}"),
    }
}

#[tokio::test]
async fn a_misspelled_section_fails_the_build_with_a_hint_and_its_file() {
    let dir = tempfile::tempdir().unwrap();
    let file = write(dir.path(), "config.yaml", "cahce:\n  max_items: 7\n");
    let text = build_error(app(&file)).await;
    assert!(
        text.contains(r#"unknown section "cahce" (did you mean "cache"?)"#),
        "{text}"
    );
    assert!(text.contains("config.yaml"), "{text}");
}

#[tokio::test]
async fn an_unknown_section_with_nothing_close_has_no_hint() {
    let dir = tempfile::tempdir().unwrap();
    let file = write(dir.path(), "config.yaml", "zzzzzz:\n  a: 1\n");
    let text = build_error(app(&file)).await;
    assert!(text.contains(r#"unknown section "zzzzzz""#), "{text}");
    assert!(!text.contains("did you mean"), "{text}");
}

#[tokio::test]
async fn core_sections_module_names_and_declared_free_sections_are_known() {
    let dir = tempfile::tempdir().unwrap();
    let file = write(
        dir.path(),
        "config.yaml",
        "admin: {token: t}\nhealth: {}\nreload: {}\nmetrics: {enabled: false}\nsilent: {}\nmy_app: {greeting: hi}\n",
    );
    let built = app(&file).free_section("my_app").build().await;
    assert!(built.is_ok(), "{:?}", built.err().map(|e| e.to_string()));
    // Without the declaration, `my_app` is a typo like any other.
    let text = build_error(app(&file)).await;
    assert!(text.contains(r#"unknown section "my_app""#), "{text}");
}

#[tokio::test]
async fn an_unknown_section_rejects_a_reload_and_a_dry_run() {
    let dir = tempfile::tempdir().unwrap();
    let file = write(dir.path(), "config.yaml", "cache:\n  max_items: 7\n");
    let app = app(&file).with_dynamic_reload().build().await.unwrap();
    let plan = app
        .reloader()
        .unwrap()
        .plan(
            modular_core::ReloadTrigger::Programmatic,
            Some((
                modular_core::config::TextFormat::Yaml,
                "cahce: {max_items: 8}\n".to_owned(),
            )),
        )
        .await;
    assert_eq!(plan.status, ReloadStatus::Rejected, "{plan:?}");
    assert!(
        plan.errors.iter().any(|e| e.message
            == r#"unknown section "cahce" (did you mean "cache"?)"#
            && e.source == "candidate"),
        "{:?}",
        plan.errors
    );

    write(
        dir.path(),
        "config.yaml",
        "cache:\n  max_items: 8\ncahce: {}\n",
    );
    let outcome = app.reload().await.unwrap();
    assert_eq!(outcome.status, ReloadStatus::Rejected, "{outcome:?}");
    let error = outcome
        .errors
        .iter()
        .find(|e| e.path == "cahce")
        .expect("the unknown section is reported");
    assert!(error.source.ends_with("config.yaml"), "{error:?}");
    assert_eq!(app.config().version(), 1, "nothing was applied");
}

#[tokio::test]
async fn a_list_where_a_section_belongs_is_rejected_with_its_path_and_file() {
    let dir = tempfile::tempdir().unwrap();
    let file = write(dir.path(), "config.yaml", "cache: []\n");
    let text = build_error(app(&file)).await;
    assert!(
        text.contains("cache: expected a map, found a sequence"),
        "{text}"
    );
    assert!(text.contains("config.yaml)"), "{text}");
}

#[tokio::test]
async fn a_scalar_or_null_section_is_rejected_not_loaded_as_defaults() {
    let dir = tempfile::tempdir().unwrap();
    for (body, found) in [
        ("cache: 3\n", "found a number"),
        ("cache: ~\n", "found null"),
        ("health: ~\n", "found null"),
        ("cache: many\n", "found a string"),
    ] {
        let file = write(dir.path(), "config.yaml", body);
        let text = build_error(app(&file)).await;
        let section = body.split(':').next().unwrap();
        assert!(
            text.contains(&format!("{section}: expected a map, {found}")),
            "{body:?}: {text}"
        );
    }
}

#[tokio::test]
async fn a_list_where_a_section_belongs_rejects_a_reload_and_a_dry_run() {
    let dir = tempfile::tempdir().unwrap();
    let file = write(dir.path(), "config.yaml", "cache:\n  max_items: 7\n");
    let app = app(&file).with_dynamic_reload().build().await.unwrap();
    let plan = app
        .reloader()
        .unwrap()
        .plan(
            modular_core::ReloadTrigger::Programmatic,
            Some((
                modular_core::config::TextFormat::Json,
                r#"{"cache": [1, 2]}"#.to_owned(),
            )),
        )
        .await;
    assert_eq!(plan.status, ReloadStatus::Rejected, "{plan:?}");
    assert!(
        plan.errors.iter().any(|e| e.path == "cache"
            && e.message == "expected a map, found a sequence"
            && e.source == "candidate"),
        "{:?}",
        plan.errors
    );

    write(dir.path(), "config.yaml", "cache: []\n");
    let outcome = app.reload().await.unwrap();
    assert_eq!(outcome.status, ReloadStatus::Rejected, "{outcome:?}");
    assert!(
        outcome
            .errors
            .iter()
            .any(|e| e.path == "cache" && e.source.ends_with("config.yaml")),
        "{:?}",
        outcome.errors
    );
}

// figment's `Jail` closures return `figment::Result`, whose error is large; nothing to do.
#[allow(clippy::result_large_err)]
#[test]
fn an_environment_scalar_where_a_section_belongs_names_the_variable() {
    figment::Jail::expect_with(|jail| {
        jail.set_env("MODULAR_CACHE", "3");
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let text = runtime.block_on(build_error(
            Application::builder()
                .handle_signals(false)
                .module(Reader("cache")),
        ));
        assert!(
            text.contains("cache: expected a map, found a number (env MODULAR_CACHE)"),
            "{text}"
        );
        Ok(())
    });
}

/// A module that attaches a check to the free section `my_app` in `init`: `limit` must be a
/// number of at most 10 (standing in for what a JSON Schema would say).
#[derive(Debug)]
struct Checker;

fn limit_at_most_ten(value: &serde_json::Value) -> Result<(), Vec<modular_core::FieldError>> {
    match value.get("limit").and_then(serde_json::Value::as_u64) {
        Some(limit) if limit <= 10 => Ok(()),
        _ => Err(vec![modular_core::FieldError::new(
            "limit",
            format!("must be a number <= 10, got {}", value["limit"]),
        )]),
    }
}

#[modular_core::async_trait]
impl Module for Checker {
    fn name(&self) -> &str {
        "checker"
    }

    async fn init(&mut self, ctx: &mut InitContext<'_>) -> Result<(), BoxError> {
        ctx.config_store()
            .add_section_check("my_app", std::sync::Arc::new(limit_at_most_ten))?;
        Ok(())
    }
}

#[tokio::test]
async fn a_section_check_fails_the_build_with_the_key_path_and_file() {
    let dir = tempfile::tempdir().unwrap();
    let file = write(dir.path(), "config.yaml", "my_app: {limit: 11}\n");
    let built = app(&file)
        .free_section("my_app")
        .module(Checker)
        .build()
        .await;
    let text = built.err().map(|e| e.to_string()).unwrap_or_default();
    assert!(text.contains("my_app.limit"), "{text}");
    assert!(text.contains("must be a number <= 10, got 11"), "{text}");
    assert!(text.contains("config.yaml"), "{text}");
}

#[tokio::test]
async fn a_section_check_rejects_a_reload_with_the_key_path_and_file_and_keeps_the_running_config()
{
    let dir = tempfile::tempdir().unwrap();
    let file = write(dir.path(), "config.yaml", "my_app: {limit: 3}\n");
    let app = app(&file)
        .free_section("my_app")
        .module(Checker)
        .with_dynamic_reload()
        .build()
        .await
        .unwrap();
    let version = app.config().version();
    write(dir.path(), "config.yaml", "my_app: {limit: 30}\n");
    let outcome = app.reload().await.unwrap();
    assert_eq!(outcome.status, ReloadStatus::Rejected, "{outcome:?}");
    let error = &outcome.errors[0];
    assert_eq!(error.path, "my_app.limit");
    assert!(error.source.ends_with("config.yaml"), "{error:?}");
    assert_eq!(error.message, "must be a number <= 10, got 30");
    assert_eq!(app.config().version(), version);
    // A value that passes is applied like any other change.
    write(
        dir.path(),
        "config.yaml",
        "my_app: {limit: 4}\ncache: {max_items: 6}\n",
    );
    let outcome = app.reload().await.unwrap();
    assert_eq!(outcome.status, ReloadStatus::Applied, "{outcome:?}");
}

#[tokio::test]
async fn a_section_check_attached_by_the_builder_guards_the_build_and_every_reload() {
    let dir = tempfile::tempdir().unwrap();
    let file = write(dir.path(), "config.yaml", "my_app: {limit: 12}\n");
    let built = app(&file)
        .free_section("my_app")
        .section_check("my_app", std::sync::Arc::new(limit_at_most_ten))
        .build()
        .await;
    let text = built.err().map(|e| e.to_string()).unwrap_or_default();
    assert!(text.contains("my_app.limit"), "{text}");
    assert!(text.contains("config.yaml"), "{text}");

    write(dir.path(), "config.yaml", "my_app: {limit: 2}\n");
    let app = app(&file)
        .free_section("my_app")
        .section_check("my_app", std::sync::Arc::new(limit_at_most_ten))
        .with_dynamic_reload()
        .build()
        .await
        .unwrap();
    let version = app.config().version();
    write(dir.path(), "config.yaml", "my_app: {limit: 99}\n");
    let outcome = app.reload().await.unwrap();
    assert_eq!(outcome.status, ReloadStatus::Rejected, "{outcome:?}");
    assert_eq!(outcome.errors[0].path, "my_app.limit");
    assert_eq!(app.config().version(), version);
    write(
        dir.path(),
        "config.yaml",
        "my_app: {limit: 9}\ncache: {max_items: 6}\n",
    );
    let outcome = app.reload().await.unwrap();
    assert_eq!(outcome.status, ReloadStatus::Applied, "{outcome:?}");
}
