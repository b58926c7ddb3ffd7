//! The behaviour every engine must show, run against each by [`behaviour_suite!`].
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use modular_cache::{CacheError, CacheExt as _};
use modular_core::kv::KeyValue;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::{Harness, eventually};

/// Generates one `#[tokio::test]` per behaviour, each on a fresh cache from
/// `$start(test_name, section_patch) -> anyhow::Result<Option<Harness>>` (`None` skips).
#[macro_export]
macro_rules! behaviour_suite {
    ($start:path) => {
        $crate::behaviour_suite!(@tests $start;
            a_value_set_is_read_back,
            a_missing_key_reads_as_none,
            an_entry_expires_after_its_ttl,
            entries_without_a_ttl_expire_after_the_default_ttl,
            delete_removes_only_that_key,
            get_many_and_set_many_keep_the_order_of_keys,
            clear_empties_the_namespace,
            typed_values_round_trip_as_json,
            a_value_of_another_type_is_a_decode_error,
            hits_and_misses_are_counted_in_health_details,
            key_value_increments_are_atomic_under_concurrency,
            key_value_an_increment_opens_a_window_that_later_ones_keep,
            key_value_set_without_a_ttl_ignores_the_default_ttl,
            key_value_an_increment_on_text_is_an_error_naming_the_key,
            concurrent_misses_of_get_or_load_run_the_loader_once,
            a_failing_loader_stores_nothing_and_every_waiter_gets_the_error,
        );
    };
    (@tests $start:path; $($name:ident),* $(,)?) => {
        $(
            #[tokio::test]
            async fn $name() -> anyhow::Result<()> {
                let patch = $crate::support::suite::config_for(stringify!($name));
                let Some(harness) = $start(stringify!($name), patch).await? else {
                    return Ok(());
                };
                $crate::support::suite::$name(&harness).await?;
                harness.finish().await
            }
        )*
    };
}

/// The section patch a behaviour needs.
pub fn config_for(test: &str) -> Value {
    match test {
        "entries_without_a_ttl_expire_after_the_default_ttl"
        | "key_value_set_without_a_ttl_ignores_the_default_ttl" => {
            json!({ "default_ttl": "300ms" })
        }
        _ => json!({}),
    }
}

/// Generous bound for expiries to be seen: they are due after a few hundred milliseconds.
const EXPIRY_WAIT: Duration = Duration::from_secs(10);

pub async fn a_value_set_is_read_back(h: &Harness) -> anyhow::Result<()> {
    h.cache.set("greeting", b"hello", None).await?;
    assert_eq!(
        h.cache.get("greeting").await?.as_deref(),
        Some(&b"hello"[..])
    );
    h.cache.set("greeting", b"bonjour", None).await?;
    assert_eq!(
        h.cache.get("greeting").await?.as_deref(),
        Some(&b"bonjour"[..])
    );
    let binary = [0_u8, 159, 146, 150, 255];
    h.cache.set("binary", &binary, None).await?;
    assert_eq!(h.cache.get("binary").await?.as_deref(), Some(&binary[..]));
    h.cache.set("empty", b"", None).await?;
    assert_eq!(h.cache.get("empty").await?.as_deref(), Some(&b""[..]));
    Ok(())
}

pub async fn a_missing_key_reads_as_none(h: &Harness) -> anyhow::Result<()> {
    assert_eq!(h.cache.get("never-written").await?, None);
    assert_eq!(h.cache.get_json::<Value>("never-written").await?, None);
    Ok(())
}

pub async fn an_entry_expires_after_its_ttl(h: &Harness) -> anyhow::Result<()> {
    h.cache
        .set("short", b"1", Some(Duration::from_millis(200)))
        .await?;
    h.cache.set("long", b"2", None).await?; // default_ttl 1h
    h.cache.set("forever", b"3", Some(Duration::ZERO)).await?;
    let expired = eventually(EXPIRY_WAIT, || async {
        h.cache.get("short").await.ok() == Some(None)
    })
    .await;
    assert!(
        expired,
        "the 200ms entry was still there after {EXPIRY_WAIT:?}"
    );
    assert_eq!(h.cache.get("long").await?.as_deref(), Some(&b"2"[..]));
    assert_eq!(h.cache.get("forever").await?.as_deref(), Some(&b"3"[..]));
    Ok(())
}

pub async fn entries_without_a_ttl_expire_after_the_default_ttl(h: &Harness) -> anyhow::Result<()> {
    h.cache.set("defaulted", b"1", None).await?; // default_ttl 300ms
    h.cache
        .set("explicit", b"2", Some(Duration::from_secs(3600)))
        .await?;
    let expired = eventually(EXPIRY_WAIT, || async {
        h.cache.get("defaulted").await.ok() == Some(None)
    })
    .await;
    assert!(
        expired,
        "the entry under default_ttl 300ms was still there after {EXPIRY_WAIT:?}"
    );
    assert_eq!(h.cache.get("explicit").await?.as_deref(), Some(&b"2"[..]));
    Ok(())
}

pub async fn delete_removes_only_that_key(h: &Harness) -> anyhow::Result<()> {
    h.cache.set("a", b"1", None).await?;
    h.cache.set("b", b"2", None).await?;
    assert!(h.cache.delete("a").await?);
    assert!(!h.cache.delete("a").await?, "a second delete finds nothing");
    assert_eq!(h.cache.get("a").await?, None);
    assert_eq!(h.cache.get("b").await?.as_deref(), Some(&b"2"[..]));
    Ok(())
}

pub async fn get_many_and_set_many_keep_the_order_of_keys(h: &Harness) -> anyhow::Result<()> {
    h.cache
        .set_many(&[("a", b"1"), ("b", b"2"), ("c", b"3")], None)
        .await?;
    let values = h.cache.get_many(&["c", "missing", "a"]).await?;
    assert_eq!(values, vec![Some(b"3".to_vec()), None, Some(b"1".to_vec())]);
    assert!(h.cache.get_many(&[]).await?.is_empty());
    h.cache.set_many(&[], None).await?;
    Ok(())
}

pub async fn clear_empties_the_namespace(h: &Harness) -> anyhow::Result<()> {
    for i in 0..50 {
        h.cache.set(&format!("key:{i}"), b"x", None).await?;
    }
    h.cache.clear().await?;
    for i in 0..50 {
        assert_eq!(
            h.cache.get(&format!("key:{i}")).await?,
            None,
            "key:{i} survived clear"
        );
    }
    h.cache.set("after", b"y", None).await?;
    assert_eq!(h.cache.get("after").await?.as_deref(), Some(&b"y"[..]));
    Ok(())
}

#[derive(Debug, PartialEq, Serialize, Deserialize)]
struct Session {
    user: String,
    roles: Vec<String>,
    expires: Option<u64>,
}

pub async fn typed_values_round_trip_as_json(h: &Harness) -> anyhow::Result<()> {
    let session = Session {
        user: "ada".to_owned(),
        roles: vec!["admin".to_owned()],
        expires: None,
    };
    h.cache.set_json("session", &session, None).await?;
    assert_eq!(h.cache.get_json::<Session>("session").await?, Some(session));
    let value = json!({ "n": 1, "list": [true, null] });
    h.cache.set_json("value", &value, None).await?;
    assert_eq!(h.cache.get_json::<Value>("value").await?, Some(value));
    // The JSON is what is stored: a bytes reader sees it.
    h.cache.set_json("number", &42_u32, None).await?;
    assert_eq!(h.cache.get("number").await?.as_deref(), Some(&b"42"[..]));
    Ok(())
}

pub async fn a_value_of_another_type_is_a_decode_error(h: &Harness) -> anyhow::Result<()> {
    h.cache.set("text", b"not json", None).await?;
    let error = h
        .cache
        .get_json::<Session>("text")
        .await
        .expect_err("bytes that are not json");
    assert!(
        matches!(error, CacheError::Decode { ref key, .. } if key == "text"),
        "{error:?}"
    );
    assert!(
        error
            .to_string()
            .starts_with("cache key `text` does not hold json"),
        "{error}"
    );
    Ok(())
}

pub async fn hits_and_misses_are_counted_in_health_details(h: &Harness) -> anyhow::Result<()> {
    h.cache.set("hit", b"1", None).await?;
    h.cache.get("hit").await?;
    h.cache.get("hit").await?;
    h.cache.get("miss").await?;
    h.cache.get_many(&["hit", "miss"]).await?;
    let stats = h.service.stats().await;
    assert_eq!((stats.hits, stats.misses), (3, 2));
    let report = h.cache_report().await;
    assert_eq!(report.details.get("hits"), Some(&json!(3)), "{report:?}");
    assert_eq!(report.details.get("misses"), Some(&json!(2)), "{report:?}");
    assert_eq!(
        report.details.get("hit_ratio"),
        Some(&json!(0.6)),
        "{report:?}"
    );
    Ok(())
}

/// The core key-value seam, as another module finds it in the registry.
fn key_value(h: &Harness) -> std::sync::Arc<dyn KeyValue> {
    h.app
        .services()
        .require::<dyn KeyValue>()
        .expect("the cache registers the key-value seam")
}

pub async fn key_value_increments_are_atomic_under_concurrency(h: &Harness) -> anyhow::Result<()> {
    let kv = key_value(h);
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..8 {
        let kv = std::sync::Arc::clone(&kv);
        tasks.spawn(async move {
            for _ in 0..25 {
                kv.increment("hits", 2, None).await?;
            }
            Ok::<_, modular_core::kv::KvError>(())
        });
    }
    while let Some(done) = tasks.join_next().await {
        done??;
    }
    assert_eq!(kv.increment("hits", 0, None).await?, 400);
    assert_eq!(kv.get("hits").await?.as_deref(), Some(&b"400"[..]));
    assert!(kv.delete("hits").await?);
    assert_eq!(kv.increment("hits", -1, None).await?, -1);
    Ok(())
}

pub async fn key_value_an_increment_opens_a_window_that_later_ones_keep(
    h: &Harness,
) -> anyhow::Result<()> {
    let kv = key_value(h);
    let window = Some(Duration::from_millis(300));
    assert_eq!(kv.increment("window", 1, window).await?, 1);
    // A later increment with a long TTL does not extend the window the first one opened.
    assert_eq!(
        kv.increment("window", 1, Some(Duration::from_secs(3600)))
            .await?,
        2
    );
    let expired = eventually(EXPIRY_WAIT, || async {
        kv.get("window").await.ok() == Some(None)
    })
    .await;
    assert!(expired, "the window was still open after {EXPIRY_WAIT:?}");
    assert_eq!(kv.increment("window", 1, window).await?, 1);
    Ok(())
}

pub async fn key_value_set_without_a_ttl_ignores_the_default_ttl(
    h: &Harness,
) -> anyhow::Result<()> {
    let kv = key_value(h);
    kv.set("session", b"s1", None).await?;
    h.cache.set("cached", b"c1", None).await?; // default_ttl 300ms
    let expired = eventually(EXPIRY_WAIT, || async {
        h.cache.get("cached").await.ok() == Some(None)
    })
    .await;
    assert!(expired, "the cached entry outlived its default TTL");
    // Past the default TTL, the key-value entry (no TTL) is still there.
    assert_eq!(kv.get("session").await?.as_deref(), Some(&b"s1"[..]));
    kv.set("short", b"x", Some(Duration::from_millis(100)))
        .await?;
    let gone = eventually(EXPIRY_WAIT, || async {
        kv.get("short").await.ok() == Some(None)
    })
    .await;
    assert!(gone, "a key-value TTL was not applied");
    Ok(())
}

pub async fn key_value_an_increment_on_text_is_an_error_naming_the_key(
    h: &Harness,
) -> anyhow::Result<()> {
    let kv = key_value(h);
    kv.set("name", b"ada", None).await?;
    let error = kv.increment("name", 1, None).await.err();
    assert!(
        matches!(&error, Some(modular_core::kv::KvError::NotAnInteger { key }) if key == "name"),
        "{error:?}"
    );
    // The value is untouched.
    assert_eq!(kv.get("name").await?.as_deref(), Some(&b"ada"[..]));
    Ok(())
}

pub async fn concurrent_misses_of_get_or_load_run_the_loader_once(
    h: &Harness,
) -> anyhow::Result<()> {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};
    let runs = Arc::new(AtomicUsize::new(0));
    // The loader holds until the test opens the gate, so the other callers miss meanwhile.
    let (open, gate) = tokio::sync::watch::channel(false);
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..16 {
        let cache = Arc::clone(&h.cache);
        let runs = Arc::clone(&runs);
        let mut gate = gate.clone();
        tasks.spawn(async move {
            let load = Box::pin(async move {
                runs.fetch_add(1, Ordering::SeqCst);
                let _ = gate.wait_for(|open| *open).await;
                Ok(b"loaded once".to_vec())
            });
            cache.get_or_load("report", None, load).await
        });
    }
    let started = tokio::time::timeout(Duration::from_secs(10), async {
        while runs.load(Ordering::SeqCst) == 0 {
            tokio::task::yield_now().await;
        }
    })
    .await;
    assert!(started.is_ok(), "no loader ran");
    // Let every other caller reach its miss while the loader is held.
    for _ in 0..200 {
        tokio::task::yield_now().await;
    }
    open.send_replace(true);
    let mut values = Vec::new();
    while let Some(result) = tasks.join_next().await {
        values.push(result??);
    }
    assert_eq!(
        runs.load(Ordering::SeqCst),
        1,
        "the loader ran more than once"
    );
    assert!(values.iter().all(|v| v == b"loaded once"), "{values:?}");
    assert_eq!(
        h.cache.get("report").await?.as_deref(),
        Some(&b"loaded once"[..])
    );
    Ok(())
}

pub async fn a_failing_loader_stores_nothing_and_every_waiter_gets_the_error(
    h: &Harness,
) -> anyhow::Result<()> {
    let error = h
        .cache
        .get_or_load(
            "broken",
            None,
            Box::pin(async { Err("upstream down".into()) }),
        )
        .await
        .err();
    assert!(
        matches!(&error, Some(CacheError::Load { key, message }) if key == "broken" && message == "upstream down"),
        "{error:?}"
    );
    assert_eq!(
        h.cache.get("broken").await?,
        None,
        "a failed load stored something"
    );
    let value = h
        .cache
        .get_or_load(
            "broken",
            None,
            Box::pin(async { Ok(b"recovered".to_vec()) }),
        )
        .await?;
    assert_eq!(value, b"recovered");
    Ok(())
}
