//! Service registry benchmarks (DESIGN.md §6, target ≤ 30 ns per lookup):
//! - `registry/get_trait_object`: `get::<dyn Trait>()` among 32 registered services.
//! - `registry/get_named`: `get_named::<dyn Trait>("replica")` among four names of one type.
//! - `registry/get_missing`: a lookup that finds nothing.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::hint::black_box;
use std::sync::Arc;

use criterion::{Criterion, criterion_group, criterion_main};
use modular_core::ServiceRegistry;

trait Pool: Send + Sync {
    fn id(&self) -> u32;
}

struct Fixed(u32);

impl Pool for Fixed {
    fn id(&self) -> u32 {
        self.0
    }
}

trait Unregistered: Send + Sync {}

/// Distinct service types to fill the registry around the one looked up.
struct Filler<const N: usize>;

fn registry() -> ServiceRegistry {
    let registry = ServiceRegistry::new();
    macro_rules! fill {
        ($($n:literal)*) => { $( registry.register(Arc::new(Filler::<$n>)); )* };
    }
    fill!(0 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19 20 21 22 23 24 25 26 27 28 29 30);
    registry.register::<dyn Pool>(Arc::new(Fixed(1)));
    for (i, name) in ["primary", "replica", "analytics", "archive"]
        .into_iter()
        .enumerate()
    {
        registry.register_named::<dyn Pool>(name, Arc::new(Fixed(i as u32)));
    }
    registry
}

fn lookup(c: &mut Criterion) {
    let registry = registry();
    assert_eq!(registry.get::<dyn Pool>().map(|p| p.id()), Some(1));
    assert_eq!(
        registry.get_named::<dyn Pool>("replica").map(|p| p.id()),
        Some(1)
    );

    let mut group = c.benchmark_group("registry");
    group.bench_function("get_trait_object", |b| {
        b.iter(|| black_box(&registry).get::<dyn Pool>())
    });
    group.bench_function("get_named", |b| {
        b.iter(|| black_box(&registry).get_named::<dyn Pool>(black_box("replica")))
    });
    group.bench_function("get_missing", |b| {
        b.iter(|| black_box(&registry).get::<dyn Unregistered>())
    });
    group.finish();
}

criterion_group!(benches, lookup);
criterion_main!(benches);
