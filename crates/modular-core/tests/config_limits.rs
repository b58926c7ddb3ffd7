//! Hostile or absurd input is refused early, with its path and source: YAML alias bombs,
//! JSON with duplicate keys, oversized sources, and durations beyond the maximum.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::time::Duration;

use modular_core::config::TextFormat;
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
    #[config(dynamic)]
    #[serde(with = "humantime_serde")]
    ttl: Duration,
    #[serde(with = "humantime_serde")]
    idle: Option<Duration>,
}

impl Default for CacheConfig {
    fn default() -> Self {
        Self {
            max_items: 10,
            ttl: Duration::from_secs(60),
            idle: None,
        }
    }
}

#[derive(Debug)]
struct Cache;

#[modular_core::async_trait]
impl Module for Cache {
    fn name(&self) -> &str {
        "cache"
    }

    async fn init(&mut self, ctx: &mut InitContext<'_>) -> Result<(), BoxError> {
        ctx.config::<CacheConfig>()?;
        Ok(())
    }
}

fn app() -> ApplicationBuilder {
    Application::builder()
        .env_prefix(None)
        .handle_signals(false)
        .module(Cache)
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

/// Six levels of nine aliases each: under 300 bytes that expand to over half a million
/// nodes (within serde-saphyr's default absolute limits).
fn alias_bomb() -> String {
    let mut text = String::from("cache:\n  a: &a [x, x, x, x, x, x, x, x, x]\n");
    for (name, previous) in [("b", "a"), ("c", "b"), ("d", "c"), ("e", "d"), ("f", "e")] {
        let refs = vec![format!("*{previous}"); 9].join(", ");
        text.push_str(&format!("  {name}: &{name} [{refs}]\n"));
    }
    text
}

#[tokio::test]
async fn a_yaml_alias_bomb_is_refused_in_proportion_to_its_size() {
    let bomb = alias_bomb();
    assert!(bomb.len() < 500, "{}", bomb.len());
    let app = app().with_dynamic_reload().build().await.unwrap();
    let plan = app
        .reloader()
        .unwrap()
        .plan(
            modular_core::ReloadTrigger::Programmatic,
            Some((TextFormat::Yaml, bomb)),
        )
        .await;
    assert_eq!(plan.status, ReloadStatus::Rejected, "{plan:?}");
    let text = format!("{:?}", plan.errors);
    assert!(text.contains("alias"), "{text}");
    assert!(text.contains("candidate"), "{text}");
}

#[tokio::test]
async fn ordinary_yaml_aliases_still_work() {
    let dir = tempfile::tempdir().unwrap();
    let file = write(
        dir.path(),
        "config.yaml",
        "defaults: &defaults {max_items: 7, ttl: 5s}\ncache: *defaults\n",
    );
    let built = app()
        .free_section("defaults")
        .config_file(&file)
        .build()
        .await;
    assert!(built.is_ok(), "{:?}", built.err().map(|e| e.to_string()));
}

#[tokio::test]
async fn a_json_candidate_with_a_duplicate_key_is_rejected_naming_the_key() {
    let app = app().with_dynamic_reload().build().await.unwrap();
    let plan = app
        .reloader()
        .unwrap()
        .plan(
            modular_core::ReloadTrigger::Programmatic,
            Some((
                TextFormat::Json,
                r#"{"cache": {"max_items": 1, "max_items": 2}}"#.to_owned(),
            )),
        )
        .await;
    assert_eq!(plan.status, ReloadStatus::Rejected, "{plan:?}");
    let text = format!("{:?}", plan.errors);
    assert!(
        text.contains("duplicate key") && text.contains("max_items"),
        "{text}"
    );
}

#[tokio::test]
async fn a_json_file_with_a_duplicate_key_fails_the_build_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let file = write(dir.path(), "config.json", r#"{"a": 1, "a": 2}"#);
    let text = build_error(app().config_file(&file)).await;
    assert!(text.contains(r#"duplicate key "a""#), "{text}");
    assert!(text.contains("config.json"), "{text}");
}

#[tokio::test]
async fn an_oversized_config_file_is_refused_before_it_is_parsed() {
    let dir = tempfile::tempdir().unwrap();
    let mut text = String::from("cache:\n  max_items: 1\n");
    text.push_str(&"# padding\n".repeat(500_000));
    let file = write(dir.path(), "config.yaml", &text);
    let error = build_error(app().config_file(&file)).await;
    assert!(error.contains("larger than the maximum"), "{error}");
    assert!(error.contains("config.yaml"), "{error}");
}

#[tokio::test]
async fn a_duration_beyond_the_maximum_is_rejected_with_its_path() {
    let dir = tempfile::tempdir().unwrap();
    for (body, path) in [
        ("cache:\n  ttl: 200years\n", "cache.ttl"),
        ("cache:\n  idle: 1000000years\n", "cache.idle"),
        ("reload:\n  debounce: 101years\n", "reload.debounce"),
        (
            "reload:\n  breaker:\n    max_backoff: 150years\n",
            "reload.breaker.max_backoff",
        ),
    ] {
        let file = write(dir.path(), "config.yaml", body);
        let text = build_error(app().with_dynamic_reload().config_file(&file)).await;
        assert!(
            text.contains(&format!("{path}: must be at most 100years")),
            "{body:?}: {text}"
        );
        assert!(text.contains("config.yaml"), "{text}");
    }
    // The maximum itself is fine.
    let file = write(dir.path(), "config.yaml", "cache:\n  ttl: 100years\n");
    assert!(app().config_file(&file).build().await.is_ok());
}
