//! Derived config diffs (DESIGN.md §6), against a generic `serde_json::Value` diff of the same
//! structs.
//!
//! - `diff/simple/one_change`: 5 fields, one changed (target ≤ 40 ns; seed ~1.5 µs)
//! - `diff/simple/no_change`: 5 fields, none changed (target ≤ 15 ns)
//! - `diff/nested/three_changes`: 3 levels, 20 fields, three changed, one of them at the third
//!   level (target ≤ 150 ns; seed ~6.5 µs)
//! - `diff/*_value/*`: the same pairs serialized with `serde_json::to_value` and walked
//!   recursively, producing `(path, old, new)` entries; the derived diff should be ≥ 20x faster.
//!
//! Run: `cargo bench -p modular-benches --bench diff`.
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use modular_core::DynamicConfig;
use serde::Serialize;
use serde_json::Value;

#[derive(Clone, Debug, PartialEq, Serialize, DynamicConfig)]
#[config(allow_unknown_fields)]
struct Simple {
    url: String,
    #[config(dynamic)]
    max_conns: u32,
    #[config(dynamic)]
    min_conns: u32,
    #[config(dynamic)]
    timeout_ms: u64,
    enabled: bool,
}

#[derive(Clone, Debug, PartialEq, Serialize, DynamicConfig)]
#[config(allow_unknown_fields)]
struct Retry {
    #[config(dynamic)]
    max_attempts: u32,
    #[config(dynamic)]
    backoff_ms: u64,
    jitter: bool,
}

#[derive(Clone, Debug, PartialEq, Serialize, DynamicConfig)]
#[config(allow_unknown_fields)]
struct Pool {
    url: String,
    #[config(dynamic)]
    max_conns: u32,
    #[config(dynamic)]
    min_conns: u32,
    #[config(dynamic)]
    idle_timeout_ms: u64,
    #[config(nested)]
    retry: Retry,
}

#[derive(Clone, Debug, PartialEq, Serialize, DynamicConfig)]
#[config(allow_unknown_fields)]
struct Cache {
    #[config(dynamic)]
    max_items: u64,
    #[config(dynamic)]
    ttl_ms: u64,
    #[config(nested)]
    retry: Retry,
}

/// 3 levels (`Nested` > `Pool`/`Cache` > `Retry`), 20 fields in all.
#[derive(Clone, Debug, PartialEq, Serialize, DynamicConfig)]
#[config(allow_unknown_fields)]
struct Nested {
    name: String,
    port: u16,
    enabled: bool,
    #[config(dynamic)]
    workers: u32,
    #[config(nested)]
    pool: Pool,
    #[config(nested)]
    cache: Cache,
}

fn simple() -> Simple {
    Simple {
        url: "postgres://db.internal/app".to_owned(),
        max_conns: 10,
        min_conns: 2,
        timeout_ms: 5_000,
        enabled: true,
    }
}

fn retry() -> Retry {
    Retry {
        max_attempts: 3,
        backoff_ms: 100,
        jitter: true,
    }
}

fn nested() -> Nested {
    Nested {
        name: "orders".to_owned(),
        port: 8080,
        enabled: true,
        workers: 4,
        pool: Pool {
            url: "postgres://db.internal/orders".to_owned(),
            max_conns: 10,
            min_conns: 2,
            idle_timeout_ms: 60_000,
            retry: retry(),
        },
        cache: Cache {
            max_items: 10_000,
            ttl_ms: 30_000,
            retry: retry(),
        },
    }
}

/// A generic diff: serialize both sides and walk the trees, one `(path, old, new)` per changed
/// leaf, added key or removed key.
fn value_diff<T: Serialize>(old: &T, new: &T) -> Vec<(String, Value, Value)> {
    let old = serde_json::to_value(old).unwrap();
    let new = serde_json::to_value(new).unwrap();
    let mut out = Vec::new();
    walk("", &old, &new, &mut out);
    out
}

fn walk(path: &str, old: &Value, new: &Value, out: &mut Vec<(String, Value, Value)>) {
    match (old, new) {
        (Value::Object(a), Value::Object(b)) => {
            for (key, va) in a {
                let child = join(path, key);
                match b.get(key) {
                    Some(vb) => walk(&child, va, vb, out),
                    None => out.push((child, va.clone(), Value::Null)),
                }
            }
            for (key, vb) in b {
                if !a.contains_key(key) {
                    out.push((join(path, key), Value::Null, vb.clone()));
                }
            }
        }
        _ if old == new => {}
        _ => out.push((path.to_owned(), old.clone(), new.clone())),
    }
}

fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_owned()
    } else {
        format!("{path}.{key}")
    }
}

fn bench_diff(c: &mut Criterion) {
    let old_simple = simple();
    let mut new_simple = simple();
    new_simple.max_conns = 20;
    let same_simple = simple();

    let old_nested = nested();
    let mut new_nested = nested();
    new_nested.workers = 8;
    new_nested.pool.max_conns = 20;
    new_nested.pool.retry.max_attempts = 5;

    // The two approaches must agree before their speeds are compared.
    assert_eq!(old_simple.diff(&new_simple).len(), 1);
    assert_eq!(value_diff(&old_simple, &new_simple).len(), 1);
    assert!(old_simple.diff(&same_simple).is_empty());
    let derived: Vec<String> = old_nested
        .diff(&new_nested)
        .iter()
        .map(|c| c.field_path.to_string())
        .collect();
    assert_eq!(
        derived,
        ["workers", "pool.max_conns", "pool.retry.max_attempts"]
    );
    let mut generic: Vec<String> = value_diff(&old_nested, &new_nested)
        .into_iter()
        .map(|(p, _, _)| p)
        .collect();
    generic.sort();
    let mut sorted = derived.clone();
    sorted.sort();
    assert_eq!(generic, sorted);

    let mut group = c.benchmark_group("diff");
    group.bench_function("simple/one_change", |b| {
        b.iter(|| black_box(&old_simple).diff(black_box(&new_simple)))
    });
    group.bench_function("simple/no_change", |b| {
        b.iter(|| black_box(&old_simple).diff(black_box(&same_simple)))
    });
    group.bench_function("nested/three_changes", |b| {
        b.iter(|| black_box(&old_nested).diff(black_box(&new_nested)))
    });
    group.bench_function("simple_value/one_change", |b| {
        b.iter(|| value_diff(black_box(&old_simple), black_box(&new_simple)))
    });
    group.bench_function("simple_value/no_change", |b| {
        b.iter(|| value_diff(black_box(&old_simple), black_box(&same_simple)))
    });
    group.bench_function("nested_value/three_changes", |b| {
        b.iter(|| value_diff(black_box(&old_nested), black_box(&new_nested)))
    });
    group.finish();
}

criterion_group!(benches, bench_diff);
criterion_main!(benches);
