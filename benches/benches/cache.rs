//! Cache benchmarks (issue 8):
//! - `cache/memory_get_hit`, `cache/memory_get_miss`, `cache/memory_set`: the memory engine
//!   through `CacheService` (ArcSwap load, moka, hit/miss counters), 64-byte values.
//! - `cache/redis_get`, `cache/redis_set`: one round trip to the Redis at
//!   `MODULAR_TEST_REDIS_URL` through the `ConnectionManager`, 64-byte values; skipped when the
//!   variable is unset.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use modular_cache::{Cache, CacheConfig, CacheEngine, CacheService};
use modular_core::Secret;

const VALUE: [u8; 64] = [7; 64];

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

fn memory(c: &mut Criterion) {
    let rt = runtime();
    let config = CacheConfig {
        max_items: 100_000,
        default_ttl: Duration::from_secs(3600),
        ..CacheConfig::default()
    };
    let cache = rt.block_on(CacheService::new(&config)).unwrap();
    let keys: Vec<String> = (0..10_000).map(|i| format!("key:{i}")).collect();
    rt.block_on(async {
        for key in &keys {
            cache.set(key, &VALUE, None).await.unwrap();
        }
    });

    let mut group = c.benchmark_group("cache");
    let next = AtomicU64::new(0);
    group.bench_function("memory_get_hit", |b| {
        b.to_async(&rt).iter(|| {
            let i = next.fetch_add(1, Ordering::Relaxed) as usize % keys.len();
            let cache = &cache;
            let key = keys[i].as_str();
            async move { std::hint::black_box(cache.get(key).await.unwrap()) }
        });
    });
    group.bench_function("memory_get_miss", |b| {
        b.to_async(&rt)
            .iter(|| async { std::hint::black_box(cache.get("absent").await.unwrap()) });
    });
    group.bench_function("memory_set", |b| {
        b.to_async(&rt).iter(|| {
            let i = next.fetch_add(1, Ordering::Relaxed) as usize % keys.len();
            let cache = &cache;
            let key = keys[i].as_str();
            async move { cache.set(key, &VALUE, None).await.unwrap() }
        });
    });
    group.finish();
}

fn redis(c: &mut Criterion) {
    let Some(url) = std::env::var("MODULAR_TEST_REDIS_URL")
        .ok()
        .filter(|u| !u.is_empty())
    else {
        eprintln!("skipped: cache/redis_* (MODULAR_TEST_REDIS_URL not set)");
        return;
    };
    let rt = runtime();
    let mut config = CacheConfig {
        engine: CacheEngine::Redis,
        default_ttl: Duration::from_secs(600),
        ..CacheConfig::default()
    };
    config.redis.url = Secret::new(url);
    config.redis.key_prefix = format!("modular-bench:{}:", std::process::id());
    let cache = rt.block_on(CacheService::new(&config)).unwrap();
    rt.block_on(cache.set("hot", &VALUE, None)).unwrap();

    let mut group = c.benchmark_group("cache");
    group.bench_function("redis_get", |b| {
        b.to_async(&rt)
            .iter(|| async { std::hint::black_box(cache.get("hot").await.unwrap()) });
    });
    group.bench_function("redis_set", |b| {
        b.to_async(&rt)
            .iter(|| async { cache.set("hot", &VALUE, None).await.unwrap() });
    });
    group.finish();
    rt.block_on(cache.clear()).unwrap();
}

criterion_group!(benches, memory, redis);
criterion_main!(benches);
