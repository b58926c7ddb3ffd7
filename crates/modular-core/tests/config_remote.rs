//! A remote config layer ([`RemoteSource`]): it layers where it was added among the files,
//! below the environment and overrides; a candidate reads one snapshot whole; errors name it
//! with its revision; a reload with trigger `remote` records the revision in the outcome and
//! the history.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::{Arc, Mutex};

use modular_core::config::{RemoteSnapshot, RemoteSource};
use modular_core::reload::{ReloadStatus, ReloadTrigger};
use modular_core::{Application, BoxError, ConfigHandle, DynamicConfig, InitContext, Module};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, DynamicConfig)]
#[serde(default, deny_unknown_fields)]
struct CacheConfig {
    #[config(dynamic)]
    max_items: u32,
    #[config(dynamic)]
    label: String,
}

impl Default for CacheConfig {
    fn default() -> Self {
        Self {
            max_items: 10,
            label: "default".to_owned(),
        }
    }
}

#[derive(Debug, Default)]
struct Cache {
    handle: Arc<Mutex<Option<ConfigHandle<CacheConfig>>>>,
}

#[modular_core::async_trait]
impl Module for Cache {
    fn name(&self) -> &str {
        "cache"
    }

    async fn init(&mut self, ctx: &mut InitContext<'_>) -> Result<(), BoxError> {
        *self.handle.lock().unwrap() = Some(ctx.config::<CacheConfig>()?);
        Ok(())
    }
}

#[derive(Default)]
struct Memory {
    doc: Mutex<RemoteSnapshot>,
}

impl Memory {
    fn put(&self, value: Value, revision: u64) {
        *self.doc.lock().unwrap() = RemoteSnapshot {
            value,
            revision: Some(revision.to_string()),
            errors: Vec::new(),
        };
    }
}

impl RemoteSource for Memory {
    fn name(&self) -> String {
        "memory://fleet/app".to_owned()
    }

    fn snapshot(&self) -> RemoteSnapshot {
        self.doc.lock().unwrap().clone()
    }
}

#[tokio::test]
async fn a_remote_layer_sits_between_the_files_around_it_and_a_remote_reload_records_its_revision()
{
    let dir = tempfile::tempdir().unwrap();
    let below = dir.path().join("below.yaml");
    let above = dir.path().join("above.yaml");
    std::fs::write(&below, "cache: {max_items: 1, label: below}\n").unwrap();
    std::fs::write(&above, "cache: {label: above}\n").unwrap();
    let remote = Arc::new(Memory::default());
    remote.put(json!({ "cache": { "max_items": 5, "label": "remote" } }), 7);
    let cache = Cache::default();
    let handle = Arc::clone(&cache.handle);
    let app = Application::builder()
        .env_prefix(None)
        .handle_signals(false)
        .module(cache)
        .config_file(&below)
        .config_remote(remote.clone())
        .config_file(&above)
        .with_dynamic_reload()
        .build()
        .await
        .unwrap();
    let handle = handle.lock().unwrap().clone().unwrap();
    // The remote layer beats the file below it and loses to the file above it.
    assert_eq!(handle.get().max_items, 5);
    assert_eq!(handle.get().label, "above");
    let reloader = app.reloader().unwrap();
    let initial = reloader.history();
    assert_eq!(
        initial[0].source_revisions.get("memory://fleet/app"),
        Some(&"7".to_owned())
    );

    remote.put(json!({ "cache": { "max_items": 6 } }), 8);
    let outcome = reloader.reload(ReloadTrigger::Remote).await;
    assert_eq!(outcome.status, ReloadStatus::Applied, "{outcome:?}");
    assert_eq!(outcome.trigger.as_str(), "remote");
    assert_eq!(
        outcome.source_revisions.get("memory://fleet/app"),
        Some(&"8".to_owned())
    );
    assert_eq!(handle.get().max_items, 6);
    let history = reloader.history();
    let last = history.last().unwrap();
    assert_eq!(last.trigger, Some(ReloadTrigger::Remote));
    assert_eq!(
        last.source_revisions.get("memory://fleet/app"),
        Some(&"8".to_owned())
    );
    let json = serde_json::to_value(last).unwrap();
    assert_eq!(json["source_revisions"]["memory://fleet/app"], "8");

    // A bad revision is rejected with the remote layer and its revision as the source; the
    // running config and the recorded revision stay.
    remote.put(json!({ "cache": { "max_items": "many" } }), 9);
    let outcome = reloader.reload(ReloadTrigger::Remote).await;
    assert_eq!(outcome.status, ReloadStatus::Rejected, "{outcome:?}");
    let error = &outcome.errors[0];
    assert_eq!(error.path, "cache.max_items");
    assert_eq!(error.source, "memory://fleet/app (revision 9)", "{error:?}");
    assert_eq!(handle.get().max_items, 6);
    assert_eq!(
        app.config().source_revisions().get("memory://fleet/app"),
        Some(&"8".to_owned())
    );

    // A part the source could not read rejects the candidate with its path.
    *remote.doc.lock().unwrap() = RemoteSnapshot {
        value: json!({ "cache": { "max_items": 7 } }),
        revision: Some("10".to_owned()),
        errors: vec![modular_core::FieldError::new(
            "cache.label",
            "not YAML: unclosed quote at line 1",
        )],
    };
    let outcome = reloader.reload(ReloadTrigger::Remote).await;
    assert_eq!(outcome.status, ReloadStatus::Rejected, "{outcome:?}");
    assert_eq!(outcome.errors[0].path, "cache.label");
    assert_eq!(outcome.errors[0].source, "memory://fleet/app (revision 10)");
    assert_eq!(handle.get().max_items, 6);
}

#[tokio::test]
async fn the_environment_and_overrides_stay_above_a_remote_layer() {
    let remote = Arc::new(Memory::default());
    remote.put(json!({ "cache": { "max_items": 5 } }), 1);
    let cache = Cache::default();
    let handle = Arc::clone(&cache.handle);
    let app = Application::builder()
        .env_prefix(None)
        .handle_signals(false)
        .module(cache)
        .config_remote(remote.clone())
        .with_dynamic_reload()
        .build()
        .await
        .unwrap();
    let handle = handle.lock().unwrap().clone().unwrap();
    assert_eq!(handle.get().max_items, 5);
    let outcome = app
        .set_override("cache.max_items", json!(42))
        .await
        .unwrap();
    assert_eq!(outcome.status, ReloadStatus::Applied, "{outcome:?}");
    remote.put(json!({ "cache": { "max_items": 6 } }), 2);
    let outcome = app.reloader().unwrap().reload(ReloadTrigger::Remote).await;
    assert_ne!(outcome.status, ReloadStatus::Rejected, "{outcome:?}");
    assert_eq!(handle.get().max_items, 42);
    // An empty document is no section at all (the defaults show through).
    app.clear_overrides().await.unwrap();
    remote.put(Value::Null, 3);
    let outcome = app.reloader().unwrap().reload(ReloadTrigger::Remote).await;
    assert_eq!(outcome.status, ReloadStatus::Applied, "{outcome:?}");
    assert_eq!(handle.get().max_items, 10);
}
