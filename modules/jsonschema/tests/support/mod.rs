//! Shared fixtures: schema files in a temporary directory and an application over them.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use modular_core::events::{AttributesReader as _, EventFilter, EventStream};
use modular_core::{Application, ApplicationBuilder};
use modular_jsonschema::{JsonSchemaModule, JsonSchemas};
use serde_json::{Value, json};

/// Writes `text` to `dir/name` (creating parents) and returns the path.
pub fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).unwrap();
    }
    // Write aside and rename over, as editors do: a watcher never reads half a file.
    let aside = dir.join(format!(".{}.tmp", name.replace('/', "_")));
    std::fs::write(&aside, text).unwrap();
    std::fs::rename(&aside, &path).unwrap();
    path
}

/// Merges `extra` into `base`, object by object.
pub fn merge(base: &mut Value, extra: Value) {
    match (base, extra) {
        (Value::Object(base), Value::Object(extra)) => {
            for (key, value) in extra {
                merge(base.entry(key).or_insert(Value::Null), value);
            }
        }
        (slot, value) => *slot = value,
    }
}

/// The `jsonschema` section over `dir` with the watcher off, plus `extra`.
pub fn config(dir: &Path, extra: Value) -> Value {
    let mut config =
        json!({ "jsonschema": { "schemas": { "dir": dir }, "watch": { "enabled": false } } });
    merge(&mut config, extra);
    config
}

/// An application with the module (and dynamic reload, health) over `config`, without
/// environment variables or signals.
pub fn builder(config: Value) -> ApplicationBuilder {
    modular_testkit::test_builder()
        .config_defaults(config)
        .module(JsonSchemaModule::new())
}

/// Schema files and a started application over them.
pub struct Fixture {
    pub dir: tempfile::TempDir,
    pub app: Application,
    pub schemas: Arc<JsonSchemas>,
}

/// `files` written into a fresh directory, and the module started over it.
pub async fn fixture(files: &[(&str, &str)], extra: Value) -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    for (name, text) in files {
        write(dir.path(), name, text);
    }
    let (mut app, schemas) = built(config(dir.path(), extra)).await;
    app.start().await.unwrap();
    Fixture { dir, app, schemas }
}

/// The application built (not started) over `config`, and its schemas.
pub async fn built(config: Value) -> (Application, Arc<JsonSchemas>) {
    let app = builder(config).build().await.unwrap();
    let schemas = app.services().require::<JsonSchemas>().unwrap();
    (app, schemas)
}

/// The build error's text.
pub async fn build_error(builder: ApplicationBuilder) -> String {
    match builder.build().await {
        Ok(mut app) => {
            let _ = app.stop().await;
            panic!("the build succeeded")
        }
        Err(error) => error.to_string(),
    }
}

/// The next event of `kind` (full type), within 20 s (a file-system notification and the
/// debounce; never a fixed sleep).
pub async fn next_event(events: &mut EventStream, kind: &str) -> Value {
    let deadline = Duration::from_secs(20);
    tokio::time::timeout(deadline, async {
        loop {
            let event = events.recv().await.expect("the bus is open");
            if event.ty() == kind {
                return match event.data() {
                    Some(cloudevents::Data::Json(value)) => value.clone(),
                    _ => Value::Null,
                };
            }
        }
    })
    .await
    .unwrap_or_else(|_| panic!("no {kind} within {deadline:?}"))
}

/// Subscribes to the module's events.
pub fn subscribe(app: &Application) -> EventStream {
    app.events()
        .subscribe_with_capacity(EventFilter::prefix("com.modular.jsonschema."), 1024)
}
