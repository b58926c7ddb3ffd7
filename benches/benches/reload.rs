//! Reload benchmarks (DESIGN.md §6):
//! - `reload/5_modules_one_change`: the whole pipeline (load sources, validate, diff, plan,
//!   apply to 5 modules, commit) with one changed field, no file I/O, health gate off.
//! - `config/snapshot_two_sections`: one consistent read of two sections from one config
//!   epoch (`ConfigStore::snapshot` then `ConfigSnapshot::get` twice); `config/handle_get`
//!   is one section through its own handle, for comparison.
//! - `reload/file_change_to_applied`: wall time from writing the config file to the module's
//!   reload hook having run, with the default 250 ms debounce.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group, criterion_main};
use modular_core::config::{ConfigSources, ConfigStore};
use modular_core::events::EventBus;
use modular_core::reload::{ConfigWatcher, ReloadOptions, ReloadOrchestrator, ReloadTarget};
use modular_core::{
    BoxError, ConfigChange, ConfigHandle, DynamicConfig, PreparedReload, ReloadContext,
    ReloadStatus, ReloadTrigger, Reloadable,
};
use serde::{Deserialize, Serialize};
use tokio::sync::Notify;

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, DynamicConfig)]
#[serde(default, deny_unknown_fields)]
struct Section {
    #[config(dynamic)]
    level: u32,
    #[config(dynamic)]
    label: String,
    #[config(dynamic)]
    ratio: f64,
    enabled: bool,
    port: u16,
}

impl Default for Section {
    fn default() -> Self {
        Self {
            level: 1,
            label: "x".into(),
            ratio: 0.5,
            enabled: true,
            port: 80,
        }
    }
}

struct Noop(Arc<Notify>);

#[async_trait::async_trait]
impl Reloadable for Noop {
    async fn prepare(
        &self,
        _ctx: &ReloadContext,
        _changes: &[ConfigChange],
    ) -> Result<PreparedReload, BoxError> {
        let notify = Arc::clone(&self.0);
        Ok(PreparedReload::new(move || notify.notify_one()))
    }
}

fn options() -> ReloadOptions {
    ReloadOptions {
        watch_files: false,
        health_gate: false,
        history: 20,
        ..ReloadOptions::default()
    }
}

fn setup(
    sources: ConfigSources,
    modules: usize,
    notify: Arc<Notify>,
) -> (Arc<ConfigStore>, ReloadOrchestrator) {
    let store = Arc::new(ConfigStore::new(sources));
    store.load_initial().unwrap();
    let mut targets = Vec::new();
    for i in 0..modules {
        let name = format!("m{i}");
        store.register::<Section>(&name, Some(&name)).unwrap();
        targets.push(ReloadTarget {
            module: name,
            reloadable: Some(Arc::new(Noop(notify.clone())) as Arc<dyn Reloadable>),
        });
    }
    let orchestrator =
        ReloadOrchestrator::new(store.clone(), targets, EventBus::new(), None, options());
    (store, orchestrator)
}

/// One reload of 5 modules with one changed field. The orchestrator's worker and the caller
/// share a current-thread runtime, so this measures the pipeline itself.
fn reload_five_modules(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    bench_reload(c, &runtime, "reload/5_modules_one_change");
}

/// The same reload requested from a thread outside a multi-thread runtime: adds the cost of
/// waking the worker thread and the caller (two cross-thread wake-ups per reload).
fn reload_five_modules_cross_thread(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    bench_reload(c, &runtime, "reload/5_modules_one_change_cross_thread");
}

fn bench_reload(c: &mut Criterion, runtime: &tokio::runtime::Runtime, name: &str) {
    let (store, orchestrator) = runtime.block_on(async {
        setup(
            ConfigSources::new().env_prefix(None),
            5,
            Arc::new(Notify::new()),
        )
    });
    let _ = Section::FIELDS;
    let mut level = 1u32;
    c.bench_function(name, |b| {
        b.to_async(runtime).iter(|| {
            level = if level == 1 { 2 } else { 1 };
            store.set_overrides(BTreeMap::from([(
                "m2.level".to_owned(),
                serde_json::json!(level),
            )]));
            let orchestrator = orchestrator.clone();
            async move {
                let outcome = orchestrator.reload(ReloadTrigger::Programmatic).await;
                assert_eq!(outcome.status, ReloadStatus::Applied);
            }
        })
    });
}

fn file_change_to_applied(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("config.yaml");
    std::fs::write(&file, "m0:\n  level: 1\n").unwrap();
    let notify = Arc::new(Notify::new());
    let debounce = ReloadOptions::default().debounce;
    let (_store, orchestrator, _watcher) = runtime.block_on(async {
        let (store, orchestrator) = setup(
            ConfigSources::new().env_prefix(None).file(&file),
            1,
            notify.clone(),
        );
        let watcher =
            ConfigWatcher::start(vec![file.clone()], debounce, orchestrator.clone()).unwrap();
        (store, orchestrator, watcher)
    });
    let mut group = c.benchmark_group("reload");
    group.sample_size(10);
    group.measurement_time(Duration::from_secs(8));
    let mut level = 1u32;
    group.bench_function("file_change_to_applied", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                level += 1;
                let text = format!("m0:\n  level: {level}\n");
                let started = Instant::now();
                std::fs::write(&file, text).unwrap();
                runtime.block_on(async {
                    tokio::time::timeout(Duration::from_secs(10), notify.notified())
                        .await
                        .expect("reloaded")
                });
                total += started.elapsed();
            }
            total
        })
    });
    group.finish();
    drop(orchestrator);
}

/// A consistent read of two sections: one epoch load, two typed lookups.
fn snapshot_reads(c: &mut Criterion) {
    let store = Arc::new(ConfigStore::new(ConfigSources::new().env_prefix(None)));
    store.load_initial().unwrap();
    let a: ConfigHandle<Section> = store.register("a", Some("a")).unwrap();
    let b: ConfigHandle<Section> = store.register("b", Some("b")).unwrap();
    c.bench_function("config/snapshot_two_sections", |bench| {
        bench.iter(|| {
            let snapshot = store.snapshot();
            let first = snapshot.get(std::hint::black_box(&a)).map(|s| s.level);
            let second = snapshot.get(std::hint::black_box(&b)).map(|s| s.level);
            std::hint::black_box((first, second))
        })
    });
    c.bench_function("config/handle_get", |bench| {
        bench.iter(|| std::hint::black_box(std::hint::black_box(&a).get().level))
    });
    // The physical reference, in the same run: a bare `ArcSwap` read of one value, as a
    // short-lived guard and as an owned `Arc`.
    let raw = arc_swap::ArcSwap::from_pointee(Section::default());
    c.bench_function("config/raw_arcswap_load", |bench| {
        bench.iter(|| std::hint::black_box(std::hint::black_box(&raw).load().level))
    });
    c.bench_function("config/raw_arcswap_load_full", |bench| {
        bench.iter(|| std::hint::black_box(std::hint::black_box(&raw).load_full().level))
    });
}

criterion_group!(
    benches,
    snapshot_reads,
    reload_five_modules,
    reload_five_modules_cross_thread,
    file_change_to_applied
);
criterion_main!(benches);
