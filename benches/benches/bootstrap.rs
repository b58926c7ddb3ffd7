//! Bootstrap benchmarks (DESIGN.md §6, target ≤ 200 µs):
//! - `bootstrap/build_start_stop_10_modules`: `build()` + `start()` + `stop()` of ten trivial
//!   modules in a dependency chain, with no config files and signal handling off.
//! - `bootstrap/build_10_modules`: `build()` alone (config load, graph order, ten `init`s).
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use criterion::{Criterion, criterion_group, criterion_main};
use modular_core::{Application, ApplicationBuilder, Module};

const MODULES: usize = 10;

/// A module with no config and no work: what the framework itself costs.
#[derive(Debug)]
struct Trivial {
    name: String,
    dependency: Option<String>,
}

#[async_trait::async_trait]
impl Module for Trivial {
    fn name(&self) -> &str {
        &self.name
    }

    fn dependencies(&self) -> Vec<String> {
        self.dependency.iter().cloned().collect()
    }
}

/// Ten modules, registered last-first so the graph has to reorder them: `m9` needs `m8`, …
fn application() -> ApplicationBuilder {
    (0..MODULES).rev().fold(
        Application::builder().handle_signals(false),
        |builder, i| {
            builder.module(Trivial {
                name: format!("m{i}"),
                dependency: i.checked_sub(1).map(|d| format!("m{d}")),
            })
        },
    )
}

fn bootstrap(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let mut group = c.benchmark_group("bootstrap");
    group.bench_function("build_start_stop_10_modules", |b| {
        b.to_async(&runtime).iter(|| async {
            let mut app = application().build().await.unwrap();
            app.start().await.unwrap();
            app.stop().await.unwrap();
            app
        })
    });
    group.bench_function("build_10_modules", |b| {
        b.to_async(&runtime)
            .iter(|| async { application().build().await.unwrap() })
    });
    group.finish();
}

criterion_group!(benches, bootstrap);
criterion_main!(benches);
