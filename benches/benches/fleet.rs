//! Fleet config on the local NATS JetStream (`MODULAR_TEST_NATS_URL`): the time from one
//! `put` in the bucket to the last of ten instances having applied it (ten applications in
//! one process, each with its own connection, watch and reload pipeline, debounce 0).
//!
//! `fleet/put_to_ten_applied`: put a new value of `notes.max_items`, then wait until all ten
//! instances' live config holds it. The instances share the 2 cores with the server.

#![allow(clippy::expect_used, clippy::unwrap_used)]

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group, criterion_main};
use modular_config_nats::{FleetModule, NatsKv, NatsKvOptions, ops};
use modular_core::reload::ReloadOptions;
use modular_core::{Application, BoxError, ConfigHandle, DynamicConfig, InitContext, Module};
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, DynamicConfig)]
#[serde(default, deny_unknown_fields)]
struct NotesConfig {
    #[config(dynamic)]
    max_items: u64,
}

#[derive(Debug, Default)]
struct Notes(Arc<Mutex<Option<ConfigHandle<NotesConfig>>>>);

#[async_trait::async_trait]
impl Module for Notes {
    fn name(&self) -> &str {
        "notes"
    }

    async fn init(&mut self, ctx: &mut InitContext<'_>) -> Result<(), BoxError> {
        *self.0.lock().unwrap_or_else(|p| p.into_inner()) = Some(ctx.config::<NotesConfig>()?);
        Ok(())
    }
}

fn put_to_ten_applied(c: &mut Criterion) {
    let Some(url) = std::env::var("MODULAR_TEST_NATS_URL")
        .ok()
        .filter(|u| !u.is_empty())
    else {
        eprintln!("skipped: fleet/* (MODULAR_TEST_NATS_URL not set)");
        return;
    };
    modular_core::install_default_crypto_provider();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a runtime");
    let bucket = format!("bench_fleet_{}", std::process::id());
    let (store, apps, handles) = runtime.block_on(async {
        let client = async_nats::connect(url.as_str()).await.expect("NATS");
        let js = async_nats::jetstream::new(client);
        let store = ops::open_bucket(&js, &bucket, 1).await.expect("bucket");
        let mut apps = Vec::new();
        let mut handles = Vec::new();
        for i in 0..10 {
            let kv = NatsKv::connect(
                NatsKvOptions::new(&url, &bucket, "bench").connect_timeout(Duration::from_secs(30)),
            )
            .await
            .expect("connect");
            let notes = Notes::default();
            let handle = Arc::clone(&notes.0);
            let mut app = Application::builder()
                .env_prefix(None)
                .handle_signals(false)
                .with_reload_options(ReloadOptions {
                    watch_files: false,
                    health_gate: false,
                    ..ReloadOptions::default()
                })
                .config_remote(kv.clone())
                .config_defaults(serde_json::json!({ "fleet": {
                    "instance_id": format!("b{i}"), "debounce": "0s",
                    "heartbeat": "10s", "ttl": "60s" } }))
                .module(notes)
                .module(FleetModule::new(kv))
                .build()
                .await
                .expect("build");
            app.start().await.expect("start");
            handles.push(
                handle
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .clone()
                    .expect("handle"),
            );
            apps.push(app);
        }
        (store, apps, handles)
    });
    let mut value = 0_u64;
    let mut group = c.benchmark_group("fleet");
    group.sample_size(30);
    group.measurement_time(Duration::from_secs(10));
    group.bench_function("put_to_ten_applied", |b| {
        b.iter_custom(|iters| {
            runtime.block_on(async {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    value += 1;
                    let started = Instant::now();
                    store
                        .put("bench.notes.max_items", value.to_string().into())
                        .await
                        .expect("put");
                    for handle in &handles {
                        while handle.get().max_items != value {
                            tokio::time::sleep(Duration::from_micros(200)).await;
                        }
                    }
                    total += started.elapsed();
                }
                total
            })
        });
    });
    group.finish();
    runtime.block_on(async {
        for mut app in apps {
            let _ = app.stop().await;
        }
    });
}

criterion_group!(benches, put_to_ten_applied);
criterion_main!(benches);
