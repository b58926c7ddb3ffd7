//! Layered configuration: files by extension < environment < runtime overrides, errors that
//! name the key path and the source, typo rejection, secrets, and consistent snapshots.
//!
//! The environment is process-global: every test that sets a variable does it inside a
//! `figment::Jail` (which serializes jails and restores the variables) and uses a section
//! name no other test uses.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use modular_core::config::{
    ConfigSources, ConfigStore, SectionConfig, TextFormat, ValidationErrors,
};
use modular_core::{
    Application, ApplicationBuilder, BoxError, ConfigHandle, DynamicConfig, Error, InitContext,
    Module, Secret,
};
use serde::{Deserialize, Serialize};
use serde_json::json;

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, DynamicConfig)]
#[serde(default, deny_unknown_fields)]
struct PoolConfig {
    #[config(dynamic)]
    size: u32,
}

/// A typical module section: every key optional, typos rejected.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, DynamicConfig)]
#[serde(default, deny_unknown_fields)]
struct DemoConfig {
    #[config(dynamic)]
    max_conns: u32,
    #[config(dynamic)]
    label: String,
    #[config(nested)]
    pool: PoolConfig,
}

impl Default for DemoConfig {
    fn default() -> Self {
        Self {
            max_conns: 10,
            label: "default".to_owned(),
            pool: PoolConfig { size: 1 },
        }
    }
}

/// A module that reads its own section in `init` and hands the handle to the test.
struct Reader<T> {
    name: String,
    slot: Arc<Mutex<Option<ConfigHandle<T>>>>,
}

impl<T> std::fmt::Debug for Reader<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Reader").field("name", &self.name).finish()
    }
}

#[modular_core::async_trait]
impl<T: SectionConfig> Module for Reader<T> {
    fn name(&self) -> &str {
        &self.name
    }

    async fn init(&mut self, ctx: &mut InitContext<'_>) -> Result<(), BoxError> {
        let handle = ctx.config::<T>()?;
        *self.slot.lock().unwrap() = Some(handle);
        Ok(())
    }
}

/// Adds a [`Reader`] of section `name` and returns the slot its handle lands in.
fn reader<T: SectionConfig>(
    builder: ApplicationBuilder,
    name: &str,
) -> (ApplicationBuilder, Arc<Mutex<Option<ConfigHandle<T>>>>) {
    let slot = Arc::new(Mutex::new(None));
    let module = Reader {
        name: name.to_owned(),
        slot: Arc::clone(&slot),
    };
    (builder.module(module), slot)
}

fn handle<T>(slot: &Mutex<Option<ConfigHandle<T>>>) -> ConfigHandle<T> {
    slot.lock().unwrap().clone().expect("the module's init ran")
}

fn quiet() -> ApplicationBuilder {
    Application::builder()
        .env_prefix(None)
        .handle_signals(false)
}

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

/// The configuration errors inside a build error (the module's `init` wraps them).
fn config_errors(error: &Error) -> ValidationErrors {
    match error {
        Error::Config(errors) => errors.clone(),
        Error::Module { source, .. } => match source.downcast_ref::<Error>() {
            Some(Error::Config(errors)) => errors.clone(),
            _ => panic!("not a configuration error: {error}"),
        },
        other => panic!("not a configuration error: {other}"),
    }
}

/// Runs `f` with a `figment::Jail`: environment variables it sets are restored afterwards,
/// and jails run one at a time.
// figment's `Jail` closures return `figment::Result`, whose error is large; nothing to do.
#[allow(clippy::result_large_err)]
fn in_jail(f: impl FnOnce(&mut figment::Jail)) {
    figment::Jail::expect_with(|jail| {
        f(jail);
        Ok(())
    });
}

fn block_on<F: std::future::Future>(future: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(future)
}

#[tokio::test]
async fn a_yaml_file_value_reaches_the_module_section_and_missing_keys_keep_defaults() {
    let dir = tempfile::tempdir().unwrap();
    let file = write(
        dir.path(),
        "app.yaml",
        "demo:\n  max_conns: 25\n  pool:\n    size: 4\n",
    );
    let (builder, slot) = reader::<DemoConfig>(quiet().config_file(&file), "demo");
    let _app = builder.build().await.unwrap();
    let config = handle(&slot).get();
    assert_eq!(config.max_conns, 25);
    assert_eq!(config.pool.size, 4);
    assert_eq!(config.label, "default", "an absent key keeps its default");
}

#[tokio::test]
async fn toml_and_json_files_are_read_by_their_extension_and_later_files_win() {
    let dir = tempfile::tempdir().unwrap();
    let toml = write(
        dir.path(),
        "base.toml",
        "[demo]\nmax_conns = 30\nlabel = \"from toml\"\n",
    );
    let json = write(
        dir.path(),
        "local.json",
        r#"{"demo": {"label": "from json", "pool": {"size": 8}}}"#,
    );
    let yml = write(dir.path(), "extra.yml", "other: {}\n");
    let (builder, slot) = reader::<DemoConfig>(
        quiet()
            .config_file(&toml)
            .config_file(&json)
            .config_file(&yml)
            .free_section("other"),
        "demo",
    );
    let _app = builder.build().await.unwrap();
    let config = handle(&slot).get();
    assert_eq!(config.max_conns, 30, "from the TOML file");
    assert_eq!(
        config.label, "from json",
        "the JSON file is layered above the TOML file"
    );
    assert_eq!(config.pool.size, 8);
}

#[tokio::test]
async fn a_file_with_an_unknown_extension_is_an_error_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let file = write(dir.path(), "app.ini", "[demo]\nmax_conns = 3\n");
    let error = quiet().config_file(&file).build().await.unwrap_err();
    let errors = config_errors(&error);
    assert_eq!(errors.errors().len(), 1, "{errors}");
    assert!(errors.errors()[0].source.ends_with("app.ini"), "{errors}");
    assert!(error.to_string().contains("app.ini"), "{error}");
}

#[test]
fn an_environment_variable_beats_the_file_value() {
    in_jail(|jail| {
        jail.set_env("MODULAR_LAYERING_ENV__MAX_CONNS", "42");
        jail.set_env("MODULAR_LAYERING_ENV__POOL__SIZE", "9");
        let file = write(
            jail.directory(),
            "app.yaml",
            "layering_env:\n  max_conns: 25\n  label: from file\n  pool:\n    size: 4\n",
        );
        // The default prefix `MODULAR_`, `__` between levels.
        let builder = Application::builder()
            .handle_signals(false)
            .config_file(&file);
        let (builder, slot) = reader::<DemoConfig>(builder, "layering_env");
        let _app = block_on(builder.build()).unwrap();
        let config = handle(&slot).get();
        assert_eq!(config.max_conns, 42, "the environment beats the file");
        assert_eq!(config.pool.size, 9, "`__` nests below the section");
        assert_eq!(
            config.label, "from file",
            "keys the environment does not set keep the file's value"
        );
    });
}

#[test]
fn an_environment_layer_with_a_custom_prefix_ignores_other_prefixes() {
    in_jail(|jail| {
        jail.set_env("MODTEST_PREFIX_LAYERING_PREFIX__MAX_CONNS", "7");
        jail.set_env("MODULAR_LAYERING_PREFIX__LABEL", "ignored");
        let builder = Application::builder()
            .handle_signals(false)
            .env_prefix(Some("MODTEST_PREFIX_"));
        let (builder, slot) = reader::<DemoConfig>(builder, "layering_prefix");
        let _app = block_on(builder.build()).unwrap();
        let config = handle(&slot).get();
        assert_eq!(config.max_conns, 7);
        assert_eq!(
            config.label, "default",
            "variables under another prefix are not read"
        );
    });
}

#[test]
fn an_invalid_environment_value_is_an_error_naming_the_variable() {
    in_jail(|jail| {
        jail.set_env("MODULAR_LAYERING_BADENV__MAX_CONNS", "lots");
        let (builder, _slot) = reader::<DemoConfig>(
            Application::builder().handle_signals(false),
            "layering_badenv",
        );
        let error = block_on(builder.build()).unwrap_err();
        let errors = config_errors(&error);
        let [e] = errors.errors() else {
            panic!("{errors}")
        };
        assert_eq!(e.path, "layering_badenv.max_conns", "{errors}");
        assert_eq!(
            e.source, "env MODULAR_LAYERING_BADENV__MAX_CONNS",
            "{errors}"
        );
        assert!(e.message.contains("lots"), "{errors}");
    });
}

#[test]
fn a_runtime_override_beats_the_environment() {
    in_jail(|jail| {
        jail.set_env("MODULAR_LAYERING_OVERRIDE__MAX_CONNS", "42");
        let file = write(
            jail.directory(),
            "app.yaml",
            "layering_override:\n  max_conns: 25\n",
        );
        let builder = Application::builder()
            .handle_signals(false)
            .config_file(&file)
            .with_dynamic_reload();
        let (builder, slot) = reader::<DemoConfig>(builder, "layering_override");
        block_on(async {
            let mut app = builder.build().await.unwrap();
            app.start().await.unwrap();
            assert_eq!(handle(&slot).get().max_conns, 42);

            let outcome = app
                .set_override("layering_override.max_conns", json!(7))
                .await
                .unwrap();
            assert_eq!(
                outcome.status,
                modular_core::ReloadStatus::Applied,
                "{outcome:?}"
            );
            assert_eq!(
                handle(&slot).get().max_conns,
                7,
                "the override beats the environment"
            );
            assert_eq!(app.config().version(), 2);
            app.stop().await.unwrap();
        });
    });
}

#[test]
fn runtime_overrides_are_the_top_layer_of_a_candidate() {
    in_jail(|jail| {
        jail.set_env("MODTEST_STORE_LAYERING_STORE__MAX_CONNS", "42");
        let sources = ConfigSources::new()
            .env_prefix(Some("MODTEST_STORE_".to_owned()))
            .text(
                "embedded",
                TextFormat::Yaml,
                "layering_store:\n  max_conns: 25\n",
            );
        let store = ConfigStore::new(sources);
        store.load_initial().unwrap();
        let handle = store
            .register::<DemoConfig>("layering_store", None)
            .unwrap();
        assert_eq!(handle.get().max_conns, 42);

        store.set_overrides(
            [("layering_store.max_conns".to_owned(), json!(3))]
                .into_iter()
                .collect(),
        );
        let candidate = store.load_candidate(None).unwrap();
        let (_, value) = &candidate.sections[0];
        let value = value.downcast_ref::<DemoConfig>().unwrap();
        assert_eq!(value.max_conns, 3);
    });
}

#[tokio::test]
async fn a_wrong_type_names_the_key_path_and_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let file = write(dir.path(), "bad.yaml", "demo:\n  max_conns: many\n");
    let (builder, _slot) = reader::<DemoConfig>(quiet().config_file(&file), "demo");
    let error = builder.build().await.unwrap_err();
    let errors = config_errors(&error);
    let [e] = errors.errors() else {
        panic!("{errors}")
    };
    assert_eq!(e.path, "demo.max_conns");
    assert_eq!(Path::new(&e.source), file.as_path());
    let text = e.to_string();
    assert!(
        text.starts_with(r#"demo.max_conns: invalid type: found string "many", expected u32"#),
        "{text}"
    );
    assert!(text.ends_with(&format!("({})", file.display())), "{text}");
    // The application error shows it too.
    let shown = error.to_string();
    assert!(
        shown.contains("demo.max_conns") && shown.contains("bad.yaml"),
        "{shown}"
    );
}

#[tokio::test]
async fn a_wrong_type_in_a_nested_struct_names_the_full_path() {
    let dir = tempfile::tempdir().unwrap();
    let file = write(dir.path(), "nested.toml", "[demo.pool]\nsize = \"big\"\n");
    let (builder, _slot) = reader::<DemoConfig>(quiet().config_file(&file), "demo");
    let error = builder.build().await.unwrap_err();
    let errors = config_errors(&error);
    let [e] = errors.errors() else {
        panic!("{errors}")
    };
    assert_eq!(e.path, "demo.pool.size", "{errors}");
    assert!(e.source.ends_with("nested.toml"), "{errors}");
}

#[tokio::test]
async fn a_misspelled_key_is_rejected_with_its_path() {
    let dir = tempfile::tempdir().unwrap();
    let file = write(dir.path(), "typo.yaml", "demo:\n  max_con: 5\n");
    let (builder, _slot) = reader::<DemoConfig>(quiet().config_file(&file), "demo");
    let error = builder.build().await.unwrap_err();
    let errors = config_errors(&error);
    let [e] = errors.errors() else {
        panic!("{errors}")
    };
    assert!(
        e.message.contains("unknown field") && e.message.contains("max_con"),
        "{errors}"
    );
    assert_eq!(e.path, "demo.max_con", "{errors}");
    assert!(e.source.ends_with("typo.yaml"), "{errors}");
}

#[tokio::test]
async fn a_misspelled_nested_key_is_rejected_with_its_path() {
    let dir = tempfile::tempdir().unwrap();
    let file = write(
        dir.path(),
        "typo.json",
        r#"{"demo": {"pool": {"sise": 3}}}"#,
    );
    let (builder, _slot) = reader::<DemoConfig>(quiet().config_file(&file), "demo");
    let error = builder.build().await.unwrap_err();
    let errors = config_errors(&error);
    let [e] = errors.errors() else {
        panic!("{errors}")
    };
    assert!(e.message.contains("sise"), "{errors}");
    assert_eq!(e.path, "demo.pool.sise", "{errors}");
    assert!(e.source.ends_with("typo.json"), "{errors}");
}

#[tokio::test]
async fn a_yaml_syntax_error_names_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let file = write(dir.path(), "broken.yaml", "demo:\n  max_conns: [1, 2\n");
    let error = quiet().config_file(&file).build().await.unwrap_err();
    let errors = config_errors(&error);
    let [e] = errors.errors() else {
        panic!("{errors}")
    };
    assert_eq!(Path::new(&e.source), file.as_path(), "{errors}");
    assert!(error.to_string().contains("broken.yaml"), "{error}");
}

#[tokio::test]
async fn a_toml_syntax_error_names_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let file = write(
        dir.path(),
        "broken.toml",
        "[demo
max_conns = 1
",
    );
    let error = quiet().config_file(&file).build().await.unwrap_err();
    let errors = config_errors(&error);
    let [e] = errors.errors() else {
        panic!("{errors}")
    };
    assert_eq!(Path::new(&e.source), file.as_path(), "{errors}");
}

#[tokio::test]
async fn a_missing_required_config_file_is_an_error_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("absent.yaml");
    let error = quiet().config_file(&missing).build().await.unwrap_err();
    let errors = config_errors(&error);
    let [e] = errors.errors() else {
        panic!("{errors}")
    };
    assert_eq!(Path::new(&e.source), missing.as_path());
    assert!(e.message.contains("not found"), "{errors}");
    assert!(error.to_string().contains("absent.yaml"), "{error}");
}

#[tokio::test]
async fn a_missing_optional_config_file_is_skipped() {
    let dir = tempfile::tempdir().unwrap();
    let (builder, slot) = reader::<DemoConfig>(
        quiet().optional_config_file(dir.path().join("absent.yaml")),
        "demo",
    );
    let _app = builder.build().await.unwrap();
    assert_eq!(*handle(&slot).get(), DemoConfig::default());
}

/// A section with a validation hook.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, DynamicConfig)]
#[serde(default, deny_unknown_fields)]
#[config(validate = "LimitsConfig::check")]
struct LimitsConfig {
    max_items: u32,
}

impl Default for LimitsConfig {
    fn default() -> Self {
        Self { max_items: 100 }
    }
}

impl LimitsConfig {
    fn check(&self) -> Result<(), Vec<modular_core::FieldError>> {
        if self.max_items == 0 {
            return Err(vec![modular_core::FieldError::new(
                "max_items",
                "must be > 0, got 0",
            )]);
        }
        Ok(())
    }
}

#[tokio::test]
async fn a_validation_failure_names_the_key_path_and_the_file_that_set_it() {
    let dir = tempfile::tempdir().unwrap();
    let file = write(
        dir.path(),
        "limits.toml",
        "[limits]
max_items = 0
",
    );
    let (builder, _slot) = reader::<LimitsConfig>(quiet().config_file(&file), "limits");
    let error = builder.build().await.unwrap_err();
    let errors = config_errors(&error);
    let [e] = errors.errors() else {
        panic!("{errors}")
    };
    assert_eq!(
        e.to_string(),
        format!("limits.max_items: must be > 0, got 0 ({})", file.display())
    );
}

#[test]
fn a_validation_failure_of_an_environment_value_names_the_variable() {
    in_jail(|jail| {
        jail.set_env("MODULAR_LAYERING_LIMITS__MAX_ITEMS", "0");
        let (builder, _slot) = reader::<LimitsConfig>(
            Application::builder().handle_signals(false),
            "layering_limits",
        );
        let error = block_on(builder.build()).unwrap_err();
        let errors = config_errors(&error);
        let [e] = errors.errors() else {
            panic!("{errors}")
        };
        assert_eq!(e.path, "layering_limits.max_items");
        assert_eq!(e.source, "env MODULAR_LAYERING_LIMITS__MAX_ITEMS");
    });
}

/// A section whose key has no default: absent configuration is an error naming the section.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, DynamicConfig)]
#[serde(deny_unknown_fields)]
struct RequiredConfig {
    url: String,
}

#[tokio::test]
async fn a_section_without_defaults_must_be_configured() {
    let (builder, _slot) = reader::<RequiredConfig>(quiet(), "required");
    let error = builder.build().await.unwrap_err();
    let errors = config_errors(&error);
    let [e] = errors.errors() else {
        panic!("{errors}")
    };
    assert_eq!(e.path, "required", "{errors}");
    assert!(e.message.contains("url"), "{errors}");
}

/// A section holding a secret and a sensitive field.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, DynamicConfig)]
#[serde(deny_unknown_fields)]
struct VaultConfig {
    url: Secret<String>,
    #[config(sensitive)]
    api_key: String,
    user: String,
}

const PASSWORD: &str = "hunter2-s3cr3t";
const API_KEY: &str = "ak_live_0123456789";

#[test]
fn a_secret_never_appears_in_debug_display_or_serialized_output() {
    let secret: Secret<String> = Secret::new(PASSWORD.to_owned());
    assert_eq!(format!("{secret:?}"), "[REDACTED]");
    assert_eq!(format!("{secret:#?}"), "[REDACTED]");
    assert_eq!(secret.to_string(), "[REDACTED]");
    assert_eq!(serde_json::to_string(&secret).unwrap(), r#""[REDACTED]""#);
    assert_eq!(secret.expose(), PASSWORD);

    let config = VaultConfig {
        url: Secret::new(format!("postgres://app:{PASSWORD}@db/app")),
        api_key: API_KEY.to_owned(),
        user: "app".to_owned(),
    };
    let debug = format!("{config:?} {config:#?}");
    assert!(!debug.contains(PASSWORD), "{debug}");
    let json = serde_json::to_string(&config).unwrap();
    assert!(!json.contains(PASSWORD), "{json}");
    assert!(json.contains("[REDACTED]"), "{json}");
}

#[tokio::test]
async fn a_secret_loaded_from_a_file_is_redacted_everywhere_the_framework_shows_config() {
    let dir = tempfile::tempdir().unwrap();
    let file = write(
        dir.path(),
        "vault.yaml",
        &format!(
            "vault:\n  url: postgres://app:{PASSWORD}@db/app\n  api_key: {API_KEY}\n  user: app\n"
        ),
    );
    let (builder, slot) = reader::<VaultConfig>(quiet().config_file(&file), "vault");
    let app = builder.build().await.unwrap();
    let handle = handle(&slot);
    assert!(
        handle.get().url.expose().contains(PASSWORD),
        "the module can read its secret"
    );

    let redacted = app.config().redacted_json();
    assert_eq!(redacted["vault"]["url"], "[REDACTED]");
    assert_eq!(
        redacted["vault"]["api_key"], "[REDACTED]",
        "a sensitive field is redacted too"
    );
    assert_eq!(redacted["vault"]["user"], "app");
    let shown = [
        redacted.to_string(),
        format!("{handle:?}"),
        format!("{app:?}"),
        format!("{:?}", app.config()),
    ]
    .join("\n");
    assert!(!shown.contains(PASSWORD), "{shown}");
}

#[tokio::test]
async fn secrets_in_embedded_config_text_do_not_leak_through_debug_output() {
    let text = format!(
        "vault:\n  url: postgres://app:{PASSWORD}@db/app\n  api_key: {API_KEY}\n  user: app\n"
    );
    let builder = quiet()
        .config_text("embedded", TextFormat::Yaml, text)
        .config_defaults(json!({ "vault": { "api_key": API_KEY } }));
    let before = format!("{builder:?}");
    let (builder, _slot) = reader::<VaultConfig>(builder, "vault");
    let app = builder.build().await.unwrap();
    let shown = [before, format!("{app:?}"), format!("{:?}", app.config())].join("\n");
    assert!(!shown.contains(PASSWORD), "{shown}");
    assert!(!shown.contains(API_KEY), "{shown}");
}

/// Two fields that every configuration version keeps equal: a reader that ever sees them
/// differ saw half of an update.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, DynamicConfig)]
#[serde(default, deny_unknown_fields)]
struct PairConfig {
    #[config(dynamic)]
    left: u64,
    #[config(dynamic)]
    right: u64,
    #[config(dynamic)]
    name: String,
}

impl Default for PairConfig {
    fn default() -> Self {
        Self {
            left: 0,
            right: 0,
            name: "v0".to_owned(),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_module_reading_through_its_handle_sees_a_consistent_snapshot_during_reloads() {
    let (builder, slot) = reader::<PairConfig>(quiet().with_dynamic_reload(), "pair");
    let mut app = builder.build().await.unwrap();
    app.start().await.unwrap();
    let handle = handle(&slot);
    let before = handle.get();

    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let readers: Vec<_> = (0..2)
        .map(|_| {
            let handle = handle.clone();
            let stop = Arc::clone(&stop);
            tokio::task::spawn_blocking(move || {
                let mut reads = 0u64;
                let mut highest = 0;
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    let snapshot = handle.load();
                    assert_eq!(snapshot.left, snapshot.right, "torn read: {snapshot:?}");
                    assert_eq!(
                        snapshot.name,
                        format!("v{}", snapshot.left),
                        "torn read: {snapshot:?}"
                    );
                    assert!(
                        snapshot.left >= highest,
                        "went back from {highest} to {}",
                        snapshot.left
                    );
                    highest = snapshot.left;
                    reads += 1;
                }
                reads
            })
        })
        .collect();

    for version in 1..=50u64 {
        app.config().set_overrides(
            [
                ("pair.left".to_owned(), json!(version)),
                ("pair.right".to_owned(), json!(version)),
                ("pair.name".to_owned(), json!(format!("v{version}"))),
            ]
            .into_iter()
            .collect(),
        );
        let outcome = app.reload().await.unwrap();
        assert_eq!(
            outcome.status,
            modular_core::ReloadStatus::Applied,
            "{outcome:?}"
        );
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    for reader in readers {
        assert!(reader.await.unwrap() > 0, "the reader ran");
    }

    let after = handle.get();
    assert_eq!(
        (after.left, after.right, after.name.as_str()),
        (50, 50, "v50")
    );
    assert_eq!(
        *before,
        PairConfig::default(),
        "a snapshot taken earlier is never changed"
    );
    assert_eq!(app.config().version(), 51);
    app.stop().await.unwrap();
}
