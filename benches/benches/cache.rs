//! Cache benchmarks (issues 8 and 15), each beside the raw library it wraps, in one run:
//! - `cache/memory_get_hit`, `cache/memory_get_miss`, `cache/memory_set`: the memory engine
//!   through `CacheService` (ArcSwap load, moka, hit/miss counters), 64-byte values, hits
//!   rotating over 10,000 keys.
//! - `cache/moka_get_hit`, `cache/moka_get_miss`, `cache/moka_set`: the same operations on a
//!   plain `moka::future::Cache<String, Vec<u8>>` with the same bound (`max_capacity`) and the
//!   same expiry (`time_to_live` = the module's `default_ttl`), the same keys and values.
//! - `cache/redis_get`, `cache/redis_set`: one round trip to the Redis at
//!   `MODULAR_TEST_REDIS_URL` through the module (`ConnectionManager`, command timeout, key
//!   prefix, `PX` expiry), 64-byte values; skipped when the variable is unset.
//! - `cache/raw_redis_get`, `cache/raw_redis_set`: the same commands (same full key, same
//!   `PX`) on a redis-rs `ConnectionManager` with its default config, on the same server.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use modular_benches::interleaved;
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

    // The raw library with the same bound and expiry, filled the same way.
    let moka: moka::future::Cache<String, Vec<u8>> = moka::future::Cache::builder()
        .max_capacity(config.max_items)
        .time_to_live(config.default_ttl)
        .build();
    rt.block_on(async {
        for key in &keys {
            moka.insert(key.clone(), VALUE.to_vec()).await;
        }
    });

    let mut group = c.benchmark_group("cache");
    let next = AtomicU64::new(0);
    // The next of the 10,000 keys, in turn.
    let key = || {
        let i = next.fetch_add(1, Ordering::Relaxed) as usize % keys.len();
        keys[i].as_str()
    };
    group.bench_function("memory_get_hit", |b| {
        b.to_async(&rt).iter(|| {
            let (cache, key) = (&cache, key());
            async move { std::hint::black_box(cache.get(key).await.unwrap()) }
        });
    });
    group.bench_function("memory_get_miss", |b| {
        b.to_async(&rt)
            .iter(|| async { std::hint::black_box(cache.get("absent").await.unwrap()) });
    });
    group.bench_function("memory_set", |b| {
        b.to_async(&rt).iter(|| {
            let (cache, key) = (&cache, key());
            async move { cache.set(key, &VALUE, None).await.unwrap() }
        });
    });
    group.bench_function("moka_get_hit", |b| {
        b.to_async(&rt).iter(|| {
            let (moka, key) = (&moka, key());
            async move { std::hint::black_box(moka.get(key).await.unwrap()) }
        });
    });
    group.bench_function("moka_get_miss", |b| {
        b.to_async(&rt)
            .iter(|| async { std::hint::black_box(moka.get("absent").await) });
    });
    group.bench_function("moka_set", |b| {
        b.to_async(&rt).iter(|| {
            let (moka, key) = (&moka, key());
            // What the module does too: an owned key and an owned copy of the value.
            async move { moka.insert(key.to_owned(), VALUE.to_vec()).await }
        });
    });
    group.finish();

    rt.block_on(async {
        interleaved(
            "cache/memory_get_hit",
            (
                "module",
                Box::new(|| {
                    Box::pin(async {
                        black_box(cache.get(key()).await.unwrap());
                    })
                }),
            ),
            (
                "moka",
                Box::new(|| {
                    Box::pin(async {
                        black_box(moka.get(key()).await.unwrap());
                    })
                }),
            ),
            40,
            5_000,
        )
        .await;
        interleaved(
            "cache/memory_set",
            (
                "module",
                Box::new(|| Box::pin(async { cache.set(key(), &VALUE, None).await.unwrap() })),
            ),
            (
                "moka",
                Box::new(|| {
                    Box::pin(async { moka.insert(key().to_owned(), VALUE.to_vec()).await })
                }),
            ),
            40,
            2_000,
        )
        .await;
    });
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

    // The same commands on a plain ConnectionManager (its default config), same server.
    let client = redis::Client::open(config.redis.url.expose().as_str()).unwrap();
    let raw = rt
        .block_on(redis::aio::ConnectionManager::new(client))
        .unwrap();
    let full_key = format!("{}hot", config.redis.key_prefix);
    let px = u64::try_from(config.default_ttl.as_millis()).unwrap();
    group.bench_function("raw_redis_get", |b| {
        b.to_async(&rt).iter(|| {
            let mut raw = raw.clone();
            let mut cmd = redis::cmd("GET");
            cmd.arg(&full_key);
            async move {
                let value: Option<Vec<u8>> = cmd.query_async(&mut raw).await.unwrap();
                std::hint::black_box(value.unwrap())
            }
        });
    });
    group.bench_function("raw_redis_set", |b| {
        b.to_async(&rt).iter(|| {
            let mut raw = raw.clone();
            let mut cmd = redis::cmd("SET");
            cmd.arg(&full_key).arg(&VALUE[..]).arg("PX").arg(px);
            async move {
                let () = cmd.query_async(&mut raw).await.unwrap();
            }
        });
    });
    group.finish();

    let raw_get = || {
        let mut raw = raw.clone();
        let mut cmd = redis::cmd("GET");
        cmd.arg(&full_key);
        async move {
            let value: Option<Vec<u8>> = cmd.query_async(&mut raw).await.unwrap();
            black_box(value.unwrap());
        }
    };
    let raw_set = || {
        let mut raw = raw.clone();
        let mut cmd = redis::cmd("SET");
        cmd.arg(&full_key).arg(&VALUE[..]).arg("PX").arg(px);
        async move {
            let () = cmd.query_async(&mut raw).await.unwrap();
        }
    };
    rt.block_on(async {
        interleaved(
            "cache/redis_get",
            (
                "module",
                Box::new(|| {
                    Box::pin(async {
                        black_box(cache.get("hot").await.unwrap());
                    })
                }),
            ),
            ("redis-rs", Box::new(|| Box::pin(raw_get()))),
            40,
            200,
        )
        .await;
        interleaved(
            "cache/redis_set",
            (
                "module",
                Box::new(|| Box::pin(async { cache.set("hot", &VALUE, None).await.unwrap() })),
            ),
            ("redis-rs", Box::new(|| Box::pin(raw_set()))),
            40,
            200,
        )
        .await;
    });
    rt.block_on(cache.clear()).unwrap();
}

criterion_group!(benches, memory, redis);
criterion_main!(benches);
