//! Properties of derived diffs over a nested config with maps, options and vecs:
//! `diff(a, a)` is empty, `diff(a, b)` is empty exactly when `a == b`, applying `diff(a, b)`
//! to `a` through serde yields `b`, and the inverse of `diff(a, b)` is `diff(b, a)`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{BTreeMap, HashMap};

use modular_core::config::{DynamicConfig, apply_changes};
use modular_core::{ConfigDiff, Secret};
use proptest::collection::{btree_map, hash_map, vec};
use proptest::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, modular_core::DynamicConfig)]
#[serde(deny_unknown_fields)]
struct Replica {
    #[config(dynamic)]
    max_conns: u16,
    host: String,
    tags: Vec<String>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, modular_core::DynamicConfig)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct Inner {
    #[config(dynamic)]
    retry_limit: u8,
    #[config(nested)]
    primary_replica: Replica,
    #[config(sensitive)]
    auth_token: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, modular_core::DynamicConfig)]
#[serde(deny_unknown_fields)]
struct Root {
    #[config(dynamic)]
    max_conns: u32,
    enabled: bool,
    #[config(nested)]
    inner: Inner,
    #[config(nested)]
    replicas: BTreeMap<String, Replica>,
    #[config(nested, dynamic)]
    fallback: Option<Replica>,
    labels: HashMap<String, String>,
    timeout_ms: Option<u64>,
    ports: Vec<u16>,
    #[serde(rename = "log-level")]
    log_level: String,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, modular_core::DynamicConfig)]
#[serde(deny_unknown_fields)]
struct WithSecrets {
    #[config(nested)]
    root: Root,
    url: Secret<String>,
    replica_url: Option<Secret<String>>,
}

// Small domains, so that two independent draws often agree field by field and every
// combination (equal, modified, added, removed) shows up.
fn word() -> impl Strategy<Value = String> {
    prop::sample::select(vec!["a", "b", "c"]).prop_map(str::to_owned)
}

fn key() -> impl Strategy<Value = String> {
    prop::sample::select(vec!["primary", "replica", "olap"]).prop_map(str::to_owned)
}

fn replica() -> impl Strategy<Value = Replica> {
    (0..3u16, word(), vec(word(), 0..3)).prop_map(|(max_conns, host, tags)| Replica {
        max_conns,
        host,
        tags,
    })
}

fn inner() -> impl Strategy<Value = Inner> {
    (0..3u8, replica(), prop::option::of(word())).prop_map(
        |(retry_limit, primary_replica, auth_token)| Inner {
            retry_limit,
            primary_replica,
            auth_token,
        },
    )
}

fn root() -> impl Strategy<Value = Root> {
    (
        (
            0..3u32,
            any::<bool>(),
            inner(),
            btree_map(key(), replica(), 0..3),
        ),
        (
            prop::option::of(replica()),
            hash_map(key(), word(), 0..3),
            prop::option::of(0..3u64),
            vec(0..3u16, 0..3),
            word(),
        ),
    )
        .prop_map(
            |(
                (max_conns, enabled, inner, replicas),
                (fallback, labels, timeout_ms, ports, log_level),
            )| Root {
                max_conns,
                enabled,
                inner,
                replicas,
                fallback,
                labels,
                timeout_ms,
                ports,
                log_level,
            },
        )
}

fn with_secrets() -> impl Strategy<Value = WithSecrets> {
    (root(), word(), prop::option::of(word())).prop_map(|(root, url, replica_url)| WithSecrets {
        root,
        url: Secret::new(url),
        replica_url: replica_url.map(Secret::new),
    })
}

/// Two values, equal about a third of the time.
fn pair<T: Clone + std::fmt::Debug, S: Strategy<Value = T>>(
    values: fn() -> S,
) -> impl Strategy<Value = (T, T)> {
    (values(), values(), 0..3u8)
        .prop_map(|(a, b, same)| if same == 0 { (a.clone(), a) } else { (a, b) })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn a_config_diffed_with_itself_has_no_changes(a in with_secrets()) {
        prop_assert!(a.diff(&a).is_empty());
        prop_assert!(a.root.diff(&a.root.clone()).is_empty());
    }

    #[test]
    fn a_diff_is_empty_exactly_when_the_configs_are_equal((a, b) in pair(with_secrets)) {
        prop_assert_eq!(a.diff(&b).is_empty(), a == b);
    }

    #[test]
    fn applying_a_diff_through_serde_turns_a_into_b((a, b) in pair(root)) {
        let mut tree = serde_json::to_value(&a).unwrap();
        apply_changes(&mut tree, &a.diff(&b));
        let applied: Root = serde_json::from_value(tree.clone())
            .map_err(|e| TestCaseError::fail(format!("{e}: {tree}")))?;
        prop_assert_eq!(applied, b);
    }

    #[test]
    fn the_inverse_of_a_diff_is_the_diff_the_other_way((a, b) in pair(with_secrets)) {
        let forward = ConfigDiff::new(a.diff(&b));
        prop_assert_eq!(forward.inverse().changes, b.diff(&a));
    }
}
