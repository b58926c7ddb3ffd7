//! `#[derive(DynamicConfig)]`: the changes a derived diff reports, their paths and flags, the
//! field table, validation, and the `ConfigDiff` views over them.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{BTreeMap, HashMap};

use modular_core::config::{DiffContext, DynamicConfig, FieldError, FieldInfo};
use modular_core::{ChangeType, ConfigChange, ConfigDiff, Secret};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, modular_core::DynamicConfig)]
#[serde(deny_unknown_fields)]
#[config(validate = "RetryConfig::check")]
struct RetryConfig {
    #[config(dynamic)]
    max_attempts: u32,
    backoff_ms: u64,
}

impl RetryConfig {
    fn check(&self) -> Result<(), Vec<FieldError>> {
        if self.max_attempts == 0 {
            return Err(vec![FieldError::new("max_attempts", "must be > 0, got 0")]);
        }
        Ok(())
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, modular_core::DynamicConfig)]
#[serde(deny_unknown_fields)]
#[config(validate = "ReplicaConfig::check")]
struct ReplicaConfig {
    #[config(dynamic)]
    max_conns: u32,
    host: String,
}

impl ReplicaConfig {
    fn check(&self) -> Result<(), Vec<FieldError>> {
        if self.host.is_empty() {
            return Err(vec![FieldError::new("host", "must not be empty")]);
        }
        Ok(())
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, modular_core::DynamicConfig)]
#[serde(deny_unknown_fields)]
#[config(validate = "PoolConfig::check")]
struct PoolConfig {
    url: Secret<String>,
    #[config(dynamic)]
    max_conns: u32,
    #[config(sensitive)]
    password: String,
    #[config(nested)]
    retry: RetryConfig,
    #[config(nested)]
    connections: HashMap<String, ReplicaConfig>,
    #[config(dynamic)]
    labels: BTreeMap<String, String>,
    #[config(dynamic)]
    timeout_ms: Option<u64>,
    #[config(nested)]
    fallback: Option<RetryConfig>,
    hosts: Vec<String>,
}

impl PoolConfig {
    fn check(&self) -> Result<(), Vec<FieldError>> {
        if self.max_conns == 0 {
            return Err(vec![FieldError::new("max_conns", "must be > 0, got 0")]);
        }
        Ok(())
    }
}

fn pool() -> PoolConfig {
    PoolConfig {
        url: Secret::new("postgres://app:hunter2@db/app".to_owned()),
        max_conns: 10,
        password: "hunter2".to_owned(),
        retry: RetryConfig {
            max_attempts: 3,
            backoff_ms: 100,
        },
        connections: HashMap::from([(
            "replica".to_owned(),
            ReplicaConfig {
                max_conns: 5,
                host: "replica.internal".to_owned(),
            },
        )]),
        labels: BTreeMap::from([("env".to_owned(), "prod".to_owned())]),
        timeout_ms: None,
        fallback: None,
        hosts: vec!["a".to_owned(), "b".to_owned()],
    }
}

fn paths(changes: &[ConfigChange]) -> Vec<&str> {
    changes.iter().map(|c| &*c.field_path).collect()
}

fn only(changes: &[ConfigChange]) -> &ConfigChange {
    assert_eq!(changes.len(), 1, "expected one change, got {changes:#?}");
    &changes[0]
}

#[test]
fn an_unchanged_config_has_no_changes() {
    assert!(pool().diff(&pool()).is_empty());
}

#[test]
fn a_changed_leaf_is_one_modified_change_with_both_values() {
    let mut new = pool();
    new.max_conns = 20;
    let changes = pool().diff(&new);
    let change = only(&changes);
    assert_eq!(change.field_path, "max_conns");
    assert_eq!(change.change_type, ChangeType::Modified);
    assert_eq!(change.old_value, json!(10));
    assert_eq!(change.new_value, json!(20));
    assert_eq!(change.section, "");
    assert!(!change.sensitive && !change.secret);
}

#[test]
fn the_dynamic_flag_decides_whether_a_change_is_static() {
    let mut new = pool();
    new.max_conns = 20;
    new.hosts.push("c".to_owned());
    let changes = pool().diff(&new);
    assert_eq!(paths(&changes), ["max_conns", "hosts"]);
    assert!(changes[0].dynamic, "max_conns is #[config(dynamic)]");
    assert!(!changes[1].dynamic, "hosts is static");
}

#[derive(Clone, Debug, PartialEq, Serialize, modular_core::DynamicConfig)]
#[config(allow_unknown_fields)]
#[config(dynamic)]
struct AllDynamic {
    level: u8,
    name: String,
}

#[test]
fn struct_level_dynamic_makes_every_field_dynamic() {
    let old = AllDynamic {
        level: 1,
        name: "a".to_owned(),
    };
    let new = AllDynamic {
        level: 2,
        name: "b".to_owned(),
    };
    let changes = old.diff(&new);
    assert_eq!(paths(&changes), ["level", "name"]);
    assert!(changes.iter().all(|c| c.dynamic));
    assert!(AllDynamic::FIELDS.iter().all(|f| f.dynamic));
}

#[test]
fn nested_fields_are_reported_under_the_parent_path_with_their_own_flags() {
    let mut new = pool();
    new.retry.max_attempts = 5;
    new.retry.backoff_ms = 200;
    let changes = pool().diff(&new);
    assert_eq!(paths(&changes), ["retry.max_attempts", "retry.backoff_ms"]);
    assert!(
        changes[0].dynamic,
        "max_attempts is dynamic inside RetryConfig"
    );
    assert!(
        !changes[1].dynamic,
        "backoff_ms is static inside RetryConfig"
    );
    assert_eq!(changes[0].new_as::<u32>(), Some(5));
}

#[derive(Clone, Debug, PartialEq, Serialize, modular_core::DynamicConfig)]
#[config(allow_unknown_fields)]
struct Leaf {
    value: u32,
}

#[derive(Clone, Debug, PartialEq, Serialize, modular_core::DynamicConfig)]
#[config(allow_unknown_fields)]
struct Middle {
    #[config(nested)]
    leaf: Leaf,
    other: u32,
}

#[derive(Clone, Debug, PartialEq, Serialize, modular_core::DynamicConfig)]
#[config(allow_unknown_fields)]
struct Top {
    #[config(nested, dynamic, sensitive)]
    middle: Middle,
}

#[test]
fn a_nested_field_passes_its_dynamic_and_sensitive_flags_down_every_level() {
    let old = Top {
        middle: Middle {
            leaf: Leaf { value: 1 },
            other: 1,
        },
    };
    let mut new = old.clone();
    new.middle.leaf.value = 2;
    new.middle.other = 2;
    let changes = old.diff(&new);
    assert_eq!(paths(&changes), ["middle.leaf.value", "middle.other"]);
    assert!(
        changes.iter().all(|c| c.dynamic && c.sensitive),
        "{changes:#?}"
    );
    assert_eq!(changes[0].new_as::<u32>(), Some(2));
}

#[test]
fn diff_into_prefixes_paths_and_inherits_flags_from_its_context() {
    let mut new = pool();
    new.hosts.clear();
    let mut out = Vec::new();
    pool().diff_into(
        &new,
        DiffContext {
            prefix: Some("database.primary"),
            dynamic: true,
            sensitive: false,
        },
        &mut out,
    );
    let change = only(&out);
    assert_eq!(change.field_path, "database.primary.hosts");
    assert!(change.dynamic);
}

#[test]
fn a_modified_entry_of_a_nested_map_reports_the_field_inside_it() {
    let mut new = pool();
    new.connections.get_mut("replica").unwrap().max_conns = 8;
    let changes = pool().diff(&new);
    let change = only(&changes);
    assert_eq!(change.field_path, "connections.replica.max_conns");
    assert_eq!(change.change_type, ChangeType::Modified);
    assert!(change.dynamic);
    assert_eq!(change.new_as::<u32>(), Some(8));
}

#[test]
fn nested_map_entries_are_added_and_removed_whole() {
    let mut new = pool();
    new.connections.remove("replica");
    new.connections.insert(
        "analytics".to_owned(),
        ReplicaConfig {
            max_conns: 2,
            host: "olap.internal".to_owned(),
        },
    );
    let changes = pool().diff(&new);
    assert_eq!(
        paths(&changes),
        ["connections.analytics", "connections.replica"]
    );
    assert_eq!(changes[0].change_type, ChangeType::Added);
    assert_eq!(changes[0].old_value, Value::Null);
    assert_eq!(
        changes[0].new_value,
        json!({"max_conns": 2, "host": "olap.internal"})
    );
    assert_eq!(changes[1].change_type, ChangeType::Removed);
    assert_eq!(changes[1].new_value, Value::Null);
    assert_eq!(
        changes[1].old_as::<ReplicaConfig>().map(|r| r.host),
        Some("replica.internal".to_owned())
    );
}

#[test]
fn plain_map_entries_are_added_modified_and_removed_one_by_one() {
    let old = pool();
    let mut new = pool();
    new.labels.insert("env".to_owned(), "staging".to_owned());
    new.labels.insert("team".to_owned(), "core".to_owned());
    let changes = old.diff(&new);
    assert_eq!(paths(&changes), ["labels.env", "labels.team"]);
    assert_eq!(changes[0].change_type, ChangeType::Modified);
    assert_eq!(changes[1].change_type, ChangeType::Added);
    assert!(changes.iter().all(|c| c.dynamic));

    let removed = new.diff(&old);
    assert_eq!(removed[1].field_path, "labels.team");
    assert_eq!(removed[1].change_type, ChangeType::Removed);
    assert_eq!(removed[1].old_value, json!("core"));
}

#[test]
fn an_option_reports_added_modified_and_removed() {
    let unset = pool();
    let mut set = pool();
    set.timeout_ms = Some(500);
    let mut other = pool();
    other.timeout_ms = Some(900);

    let added = unset.diff(&set);
    assert_eq!(only(&added).change_type, ChangeType::Added);
    assert_eq!(added[0].field_path, "timeout_ms");
    assert_eq!(added[0].new_as::<u64>(), Some(500));
    assert_eq!(added[0].old_as::<u64>(), None);

    let modified = set.diff(&other);
    assert_eq!(only(&modified).change_type, ChangeType::Modified);
    assert_eq!(
        (modified[0].old_as::<u64>(), modified[0].new_as::<u64>()),
        (Some(500), Some(900))
    );

    let removed = set.diff(&unset);
    assert_eq!(only(&removed).change_type, ChangeType::Removed);
    assert_eq!(removed[0].new_as::<u64>(), None);
    assert_eq!(removed[0].old_as::<u64>(), Some(500));
}

#[test]
fn a_nested_option_is_added_whole_and_diffed_inside_when_both_are_set() {
    let unset = pool();
    let mut set = pool();
    set.fallback = Some(RetryConfig {
        max_attempts: 1,
        backoff_ms: 10,
    });
    let added = unset.diff(&set);
    assert_eq!(only(&added).field_path, "fallback");
    assert_eq!(added[0].change_type, ChangeType::Added);
    assert_eq!(
        added[0].new_value,
        json!({"max_attempts": 1, "backoff_ms": 10})
    );

    let mut changed = set.clone();
    changed.fallback.as_mut().unwrap().backoff_ms = 20;
    let inside = set.diff(&changed);
    assert_eq!(only(&inside).field_path, "fallback.backoff_ms");
    assert_eq!(inside[0].change_type, ChangeType::Modified);

    let removed = set.diff(&unset);
    assert_eq!(only(&removed).field_path, "fallback");
    assert_eq!(removed[0].change_type, ChangeType::Removed);
}

#[test]
fn a_vec_is_compared_as_a_whole() {
    let mut new = pool();
    new.hosts[1] = "c".to_owned();
    new.hosts.push("d".to_owned());
    let changes = pool().diff(&new);
    let change = only(&changes);
    assert_eq!(change.field_path, "hosts");
    assert_eq!(change.old_value, json!(["a", "b"]));
    assert_eq!(change.new_value, json!(["a", "c", "d"]));
    assert_eq!(change.new_as::<Vec<String>>(), Some(new.hosts.clone()));
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, modular_core::DynamicConfig)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct Renamed {
    max_conns: u32,
    #[serde(rename = "URL")]
    url: String,
    #[config(nested)]
    retry_policy: RetryConfig,
    #[serde(skip)]
    cache_hits: u64,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, modular_core::DynamicConfig)]
#[serde(rename_all = "SCREAMING-KEBAB-CASE", deny_unknown_fields)]
struct Shouting {
    max_conns: u32,
}

#[test]
fn paths_use_serde_names_from_rename_and_rename_all() {
    let old = Renamed {
        max_conns: 1,
        url: "a".to_owned(),
        retry_policy: RetryConfig {
            max_attempts: 1,
            backoff_ms: 1,
        },
        cache_hits: 0,
    };
    let new = Renamed {
        max_conns: 2,
        url: "b".to_owned(),
        retry_policy: RetryConfig {
            max_attempts: 2,
            backoff_ms: 1,
        },
        cache_hits: 99,
    };
    let changes = old.diff(&new);
    // The nested struct keeps its own (snake_case) names; `cache_hits` is `#[serde(skip)]`.
    assert_eq!(
        paths(&changes),
        ["maxConns", "URL", "retryPolicy.max_attempts"]
    );
    // The paths are the keys of the serialized form.
    let json = serde_json::to_value(&new).unwrap();
    assert_eq!(json["maxConns"], json!(2));
    assert_eq!(json["URL"], json!("b"));
    assert_eq!(json["retryPolicy"]["max_attempts"], json!(2));

    let shouting = Shouting { max_conns: 1 }.diff(&Shouting { max_conns: 2 });
    assert_eq!(paths(&shouting), ["MAX-CONNS"]);
}

#[test]
fn fields_table_describes_every_field_in_declaration_order() {
    let field = |name, dynamic, sensitive, secret, nested| FieldInfo {
        name,
        dynamic,
        sensitive,
        secret,
        nested,
    };
    assert_eq!(
        PoolConfig::FIELDS,
        [
            field("url", false, true, true, false),
            field("max_conns", true, false, false, false),
            field("password", false, true, false, false),
            field("retry", false, false, false, true),
            field("connections", false, false, false, true),
            field("labels", true, false, false, false),
            field("timeout_ms", true, false, false, false),
            field("fallback", false, false, false, true),
            field("hosts", false, false, false, false),
        ]
    );
    let names: Vec<&str> = Renamed::FIELDS.iter().map(|f| f.name).collect();
    assert_eq!(names, ["maxConns", "URL", "retryPolicy"]);
}

#[test]
fn validation_runs_the_hook_then_nested_hooks_under_their_prefixes() {
    let mut bad = pool();
    bad.max_conns = 0;
    bad.retry.max_attempts = 0;
    bad.connections.get_mut("replica").unwrap().host = String::new();
    bad.fallback = Some(RetryConfig {
        max_attempts: 0,
        backoff_ms: 0,
    });
    let errors = bad.validate().unwrap_err();
    let shown: Vec<String> = errors.iter().map(ToString::to_string).collect();
    assert_eq!(
        shown,
        [
            "max_conns: must be > 0, got 0",
            "retry.max_attempts: must be > 0, got 0",
            "connections.replica.host: must not be empty",
            "fallback.max_attempts: must be > 0, got 0",
        ]
    );
    assert!(pool().validate().is_ok());
}

#[test]
fn validate_into_puts_every_error_under_the_given_prefix() {
    let mut bad = pool();
    bad.retry.max_attempts = 0;
    let mut out = Vec::new();
    bad.validate_into(Some("database"), &mut out);
    assert_eq!(
        out,
        [FieldError::new(
            "database.retry.max_attempts",
            "must be > 0, got 0"
        )]
    );
}

#[test]
fn typed_accessors_read_values_of_the_requested_type() {
    let mut new = pool();
    new.max_conns = 42;
    let changes = pool().diff(&new);
    let change = only(&changes);
    assert_eq!(change.new_as::<u32>(), Some(42));
    assert_eq!(change.old_as::<u32>(), Some(10));
    assert_eq!(change.new_as::<String>(), None, "a number is not a string");
}

fn sectioned(section: &'static str, mut changes: Vec<ConfigChange>) -> Vec<ConfigChange> {
    for change in &mut changes {
        change.section = section.into();
    }
    changes
}

#[test]
fn config_diff_summarises_and_filters_changes() {
    let mut new = pool();
    new.max_conns = 20; // modified, dynamic
    new.hosts = vec![]; // modified, static
    new.timeout_ms = Some(5); // added, dynamic
    new.connections.clear(); // removed, static
    new.retry.backoff_ms = 1; // modified, static
    let diff = ConfigDiff::new(sectioned("database", pool().diff(&new)));

    assert!(diff.has_changes());
    assert_eq!(diff.len(), 5);
    assert_eq!(diff.summary(), "1 added, 3 modified, 1 removed");
    let statics: Vec<String> = diff
        .static_changes()
        .iter()
        .map(|c| c.full_path())
        .collect();
    assert_eq!(
        statics,
        [
            "database.retry.backoff_ms",
            "database.connections.replica",
            "database.hosts"
        ]
    );
    let retry = diff.filter_prefix("database.retry");
    assert_eq!(paths(&retry.changes), ["retry.backoff_ms"]);
    assert_eq!(retry.diff_id, diff.diff_id);
    assert_eq!(diff.filter_prefix("database").len(), 5);
    assert!(
        diff.filter_prefix("database.max").is_empty(),
        "a prefix matches whole segments only"
    );
    assert!(diff.filter_prefix("cache").is_empty());
    assert_eq!(ConfigDiff::default().summary(), "no changes");
}

#[test]
fn a_diff_inverse_swaps_values_and_added_with_removed() {
    let mut new = pool();
    new.max_conns = 20;
    new.timeout_ms = Some(5);
    let diff = ConfigDiff::new(pool().diff(&new));
    let inverse = diff.inverse();
    assert_eq!(inverse.diff_id, diff.diff_id);
    assert_eq!(inverse.changes, new.diff(&pool()));
    assert_eq!(inverse.changes[1].change_type, ChangeType::Removed);
    assert_eq!(inverse.changes[0].new_as::<u32>(), Some(10));
}

/// Values in a change are the field's serde form, `#[serde(with)]` and `serialize_with`
/// included, so a change shows what the user wrote and can be applied back.
mod serde_form {
    use std::time::Duration;

    use modular_core::config::{DynamicConfig, apply_changes};
    use serde::{Deserialize, Serialize, Serializer};
    use serde_json::json;

    fn upper<S: Serializer>(value: &str, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&value.to_uppercase())
    }

    #[derive(Clone, Debug, PartialEq, Serialize, Deserialize, modular_core::DynamicConfig)]
    #[serde(deny_unknown_fields)]
    struct Timeouts {
        #[config(dynamic)]
        #[serde(with = "humantime_serde")]
        connect: Duration,
        #[serde(default, with = "humantime_serde")]
        idle: Option<Duration>,
        #[serde(serialize_with = "upper")]
        mode: String,
    }

    fn timeouts() -> Timeouts {
        Timeouts {
            connect: Duration::from_secs(5),
            idle: None,
            mode: "fast".to_owned(),
        }
    }

    #[test]
    fn a_humantime_duration_change_shows_the_text_the_user_wrote() {
        let mut new = timeouts();
        new.connect = Duration::from_secs(10);
        let changes = timeouts().diff(&new);
        assert_eq!(changes.len(), 1);
        assert_eq!(changes[0].old_value, json!("5s"));
        assert_eq!(changes[0].new_value, json!("10s"));
        assert_eq!(changes[0].to_string(), r#"connect: "5s" -> "10s""#);
        assert_eq!(
            serde_json::to_value(&changes[0]).unwrap()["new_value"],
            json!("10s")
        );
    }

    #[test]
    fn an_optional_duration_and_a_serialize_with_field_use_their_serde_form() {
        let mut new = timeouts();
        new.idle = Some(Duration::from_secs(60));
        new.mode = "safe".to_owned();
        let changes = timeouts().diff(&new);
        let paths: Vec<&str> = changes.iter().map(|c| &*c.field_path).collect();
        assert_eq!(paths, ["idle", "mode"]);
        assert_eq!(changes[0].change_type, modular_core::ChangeType::Added);
        assert_eq!(changes[0].new_value, json!("1m"));
        assert_eq!(changes[1].old_value, json!("FAST"));
        assert_eq!(changes[1].new_value, json!("SAFE"));
    }

    #[test]
    fn changes_applied_to_the_serde_form_give_back_the_new_value() {
        let mut new = timeouts();
        new.connect = Duration::from_millis(1500);
        new.idle = Some(Duration::from_secs(3600));
        let mut json = serde_json::to_value(timeouts()).unwrap();
        apply_changes(&mut json, &timeouts().diff(&new));
        let back: Timeouts = serde_json::from_value(json).unwrap();
        assert_eq!(back.connect, new.connect);
        assert_eq!(back.idle, new.idle);
    }
}
