//! File changes reach modules: in-place writes, atomic renames and Kubernetes-style
//! ConfigMap `..data` symlink swaps.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use modular_core::config::{ConfigSources, ConfigStore};
use modular_core::events::{EventBus, EventFilter, EventStream, event_data};
use modular_core::reload::{ConfigWatcher, ReloadOptions, ReloadOrchestrator, ReloadTarget};
use modular_core::{ReloadStatus, Reloadable};
use serde_json::json;
use support::reload::{Journal, ModuleConfig, Recorder};

struct Watched {
    orchestrator: ReloadOrchestrator,
    _watcher: ConfigWatcher,
    journal: Journal,
    events: EventStream,
}

fn watch(file: &Path) -> Watched {
    let store = Arc::new(ConfigStore::new(
        ConfigSources::new().env_prefix(None).file(file),
    ));
    store.load_initial().unwrap();
    store.register::<ModuleConfig>("app", Some("app")).unwrap();
    let journal = Journal::default();
    let recorder = Recorder::new("app", support::reload::Behaviour::Succeed, &journal);
    let bus = EventBus::new();
    let events = bus.subscribe(EventFilter::prefix("com.modular.config.reload."));
    let options = ReloadOptions {
        health_gate: false,
        debounce: Duration::from_millis(50),
        ..ReloadOptions::default()
    };
    let orchestrator = ReloadOrchestrator::new(
        store,
        vec![ReloadTarget {
            module: "app".to_owned(),
            reloadable: Some(recorder as Arc<dyn Reloadable>),
        }],
        bus,
        None,
        options.clone(),
    );
    let watcher = ConfigWatcher::start(
        vec![file.to_path_buf()],
        options.debounce,
        orchestrator.clone(),
    )
    .unwrap();
    Watched {
        orchestrator,
        _watcher: watcher,
        journal,
        events,
    }
}

/// Waits (bounded, generously) for the next completed or rejected reload event.
async fn next_reload(events: &mut EventStream) -> (String, serde_json::Value) {
    let wait = async {
        loop {
            let event = events.recv().await.expect("bus open");
            let ty = cloudevents::AttributesReader::ty(&event).to_owned();
            if ty.ends_with(".completed") || ty.ends_with(".rejected") || ty.ends_with(".failed") {
                return (ty, event_data(&event).cloned().unwrap_or_default());
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(20), wait)
        .await
        .expect("a reload within 20 s")
}

fn yaml(level: u32) -> String {
    format!("app:\n  level: {level}\n  label: from-file\n")
}

fn assert_level_reached(w: &Watched, level: u32) {
    let calls = w.journal.calls();
    let last = calls.last().expect("module called");
    assert_eq!(last.level, Some(level));
    let change = last
        .changes
        .iter()
        .find(|c| c.field_path == "level")
        .expect("level change");
    assert_eq!(change.new_as::<u32>(), Some(level));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_in_place_write_reaches_the_module_with_typed_changes() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("config.yaml");
    std::fs::write(&file, yaml(1)).unwrap();
    let mut w = watch(&file);
    std::fs::write(&file, yaml(42)).unwrap();
    let (ty, data) = next_reload(&mut w.events).await;
    assert_eq!(ty, "com.modular.config.reload.completed", "{data}");
    assert_eq!(data["trigger"], json!("file"));
    assert_level_reached(&w, 42);
    assert_eq!(w.orchestrator.version(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_editor_style_atomic_rename_is_seen() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("config.yaml");
    std::fs::write(&file, yaml(1)).unwrap();
    let mut w = watch(&file);
    let tmp = dir.path().join(".config.yaml.swp");
    std::fs::write(&tmp, yaml(7)).unwrap();
    std::fs::rename(&tmp, &file).unwrap();
    let (ty, _) = next_reload(&mut w.events).await;
    assert_eq!(ty, "com.modular.config.reload.completed");
    assert_level_reached(&w, 7);

    // And a second save after the first is seen too (the watch survived the rename).
    std::fs::write(&tmp, yaml(8)).unwrap();
    std::fs::rename(&tmp, &file).unwrap();
    let (ty, _) = next_reload(&mut w.events).await;
    assert_eq!(ty, "com.modular.config.reload.completed");
    assert_level_reached(&w, 8);
}

/// Lays out a ConfigMap volume the way kubelet does: `config.yaml -> ..data/config.yaml`,
/// `..data -> ..<timestamp>`.
fn configmap_version(dir: &Path, stamp: &str, level: u32) -> PathBuf {
    let version = dir.join(format!("..{stamp}"));
    std::fs::create_dir(&version).unwrap();
    std::fs::write(version.join("config.yaml"), yaml(level)).unwrap();
    version
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kubernetes_configmap_symlink_swap_is_seen() {
    let dir = tempfile::tempdir().unwrap();
    let v1 = configmap_version(dir.path(), "2026_11_25_10_00_00.1", 1);
    std::os::unix::fs::symlink(v1.file_name().unwrap(), dir.path().join("..data")).unwrap();
    std::os::unix::fs::symlink("..data/config.yaml", dir.path().join("config.yaml")).unwrap();
    let file = dir.path().join("config.yaml");
    let mut w = watch(&file);

    // kubelet: write the new version, point `..data_tmp` at it, rename it over `..data`,
    // then remove the old version. `config.yaml` itself is never touched.
    let v2 = configmap_version(dir.path(), "2026_11_25_10_05_00.2", 99);
    std::os::unix::fs::symlink(v2.file_name().unwrap(), dir.path().join("..data_tmp")).unwrap();
    std::fs::rename(dir.path().join("..data_tmp"), dir.path().join("..data")).unwrap();
    std::fs::remove_dir_all(&v1).unwrap();

    let (ty, data) = next_reload(&mut w.events).await;
    assert_eq!(ty, "com.modular.config.reload.completed", "{data}");
    assert_level_reached(&w, 99);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broken_file_is_rejected_and_the_running_config_stays() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("config.yaml");
    std::fs::write(&file, yaml(3)).unwrap();
    let mut w = watch(&file);
    std::fs::write(&file, "app:\n  level: many\n").unwrap();
    let (ty, data) = next_reload(&mut w.events).await;
    assert_eq!(ty, "com.modular.config.reload.rejected");
    let error = &data["errors"][0];
    assert_eq!(error["path"], json!("app.level"));
    assert!(
        error["source"].as_str().unwrap().ends_with("config.yaml"),
        "{error}"
    );
    assert!(w.journal.calls().is_empty());
    assert_eq!(w.orchestrator.version(), 1);
    let rejected = w.orchestrator.last_rejected().expect("recorded");
    assert_eq!(rejected.status, ReloadStatus::Rejected);
}
