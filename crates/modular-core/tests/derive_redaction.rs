//! A `#[config(sensitive)]` field or a `Secret<T>` never shows its value in a derived diff:
//! not in `Debug`, `Display` or JSON. Sensitive values stay readable through the typed
//! accessors; secrets carry fingerprints only.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashMap;

use modular_core::config::{DynamicConfig, REDACTED};
use modular_core::{ConfigChange, ConfigDiff, ConfigHandle, Secret};
use serde::{Deserialize, Serialize};

const OLD_PASSWORD: &str = "hunter2-old";
const NEW_PASSWORD: &str = "correct-horse-new";
const OLD_URL: &str = "postgres://app:s3cr3t-old@db/app";
const NEW_URL: &str = "postgres://app:s3cr3t-new@db/app";

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, modular_core::DynamicConfig)]
#[serde(deny_unknown_fields)]
struct Credentials {
    user: String,
    token: String,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, modular_core::DynamicConfig)]
#[serde(deny_unknown_fields)]
struct DatabaseConfig {
    #[config(dynamic, sensitive)]
    password: String,
    url: Secret<String>,
    replica_url: Option<Secret<String>>,
    #[config(sensitive)]
    headers: HashMap<String, String>,
    #[config(nested, sensitive)]
    credentials: Credentials,
    #[config(dynamic)]
    max_conns: u32,
}

fn config(password: &str, url: &str) -> DatabaseConfig {
    DatabaseConfig {
        password: password.to_owned(),
        url: Secret::new(url.to_owned()),
        replica_url: None,
        headers: HashMap::new(),
        credentials: Credentials {
            user: "app".to_owned(),
            token: "tok-old-123".to_owned(),
        },
        max_conns: 10,
    }
}

/// Every way a change can be shown: its Debug, its Display, its JSON, and the same for a diff.
fn renderings(changes: &[ConfigChange]) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for change in changes {
        out.push(("debug".to_owned(), format!("{change:?}")));
        out.push(("pretty debug".to_owned(), format!("{change:#?}")));
        out.push(("display".to_owned(), change.to_string()));
        out.push(("json".to_owned(), serde_json::to_string(change).unwrap()));
    }
    let diff = ConfigDiff::new(changes.to_vec());
    out.push(("diff debug".to_owned(), format!("{diff:?}")));
    out.push((
        "diff json".to_owned(),
        serde_json::to_string(&diff).unwrap(),
    ));
    out
}

fn assert_hidden(changes: &[ConfigChange], secrets: &[&str]) {
    for (how, text) in renderings(changes) {
        for secret in secrets {
            assert!(!text.contains(secret), "{how} shows {secret:?}: {text}");
        }
        assert!(
            text.contains(REDACTED),
            "{how} does not say {REDACTED}: {text}"
        );
    }
}

#[test]
fn a_sensitive_field_is_redacted_in_debug_display_and_json() {
    let changes = config(OLD_PASSWORD, OLD_URL).diff(&config(NEW_PASSWORD, OLD_URL));
    assert_eq!(changes.len(), 1);
    assert!(changes[0].sensitive && !changes[0].secret);
    assert_hidden(&changes, &[OLD_PASSWORD, NEW_PASSWORD]);
    // "changed" stays visible: old and new are shown with different fingerprints.
    assert_ne!(changes[0].display_old(), changes[0].display_new());
}

#[test]
fn a_sensitive_value_stays_readable_through_the_typed_accessors() {
    let changes = config(OLD_PASSWORD, OLD_URL).diff(&config(NEW_PASSWORD, OLD_URL));
    assert_eq!(changes[0].new_as::<String>().as_deref(), Some(NEW_PASSWORD));
    assert_eq!(changes[0].old_as::<String>().as_deref(), Some(OLD_PASSWORD));
}

#[test]
fn a_secret_change_carries_fingerprints_only() {
    let changes = config(OLD_PASSWORD, OLD_URL).diff(&config(OLD_PASSWORD, NEW_URL));
    assert_eq!(changes.len(), 1);
    let change = &changes[0];
    assert_eq!(change.field_path, "url");
    assert!(change.secret && change.sensitive);
    assert_eq!(change.new_as::<String>(), None);
    assert_eq!(change.old_as::<String>(), None);
    for value in [&change.old_value, &change.new_value] {
        let fingerprint = value.as_str().unwrap();
        assert_eq!(fingerprint.len(), 8, "{fingerprint}");
        assert!(
            fingerprint.chars().all(|c| c.is_ascii_hexdigit()),
            "{fingerprint}"
        );
    }
    assert_ne!(change.old_value, change.new_value);
    assert_hidden(&changes, &[OLD_URL, NEW_URL, "s3cr3t"]);
}

#[test]
fn an_unchanged_secret_reports_nothing() {
    assert!(
        config(OLD_PASSWORD, OLD_URL)
            .diff(&config(OLD_PASSWORD, OLD_URL))
            .is_empty()
    );
}

#[test]
fn an_optional_secret_that_appears_carries_a_fingerprint_only() {
    let old = config(OLD_PASSWORD, OLD_URL);
    let mut new = old.clone();
    new.replica_url = Some(Secret::new(NEW_URL.to_owned()));
    let changes = old.diff(&new);
    assert_eq!(changes.len(), 1);
    assert!(changes[0].secret);
    assert_eq!(changes[0].new_as::<String>(), None);
    assert_hidden(&changes, &[NEW_URL, "s3cr3t"]);
}

#[test]
fn sensitive_map_entries_and_nested_fields_are_redacted() {
    let old = config(OLD_PASSWORD, OLD_URL);
    let mut new = old.clone();
    new.headers
        .insert("authorization".to_owned(), "Bearer abc.def.ghi".to_owned());
    new.credentials.token = "tok-new-456".to_owned();
    let changes = old.diff(&new);
    let paths: Vec<&str> = changes.iter().map(|c| &*c.field_path).collect();
    assert_eq!(paths, ["headers.authorization", "credentials.token"]);
    assert!(changes.iter().all(|c| c.sensitive));
    assert_hidden(
        &changes,
        &["Bearer abc.def.ghi", "tok-old-123", "tok-new-456"],
    );
    assert_eq!(
        changes[1].new_as::<String>().as_deref(),
        Some("tok-new-456")
    );
}

#[test]
fn a_plain_field_next_to_sensitive_ones_is_shown() {
    let old = config(OLD_PASSWORD, OLD_URL);
    let mut new = old.clone();
    new.max_conns = 20;
    let changes = old.diff(&new);
    assert_eq!(changes[0].to_string(), "max_conns: 10 -> 20");
    assert!(!format!("{:?}", changes[0]).contains(REDACTED));
}

#[test]
fn a_config_handle_debug_redacts_sensitive_fields_not_only_secrets() {
    let handle = ConfigHandle::new(config(OLD_PASSWORD, OLD_URL));
    for text in [format!("{handle:?}"), format!("{handle:#?}")] {
        for hidden in [OLD_PASSWORD, OLD_URL, "tok-old-123"] {
            assert!(
                !text.contains(hidden),
                "the handle's Debug shows {hidden:?}: {text}"
            );
        }
        assert!(text.contains(REDACTED), "{text}");
        assert!(
            text.contains("max_conns"),
            "plain fields stay visible: {text}"
        );
    }
}

mod nested_redaction {
    use std::collections::BTreeMap;

    use modular_core::config::{ConfigSources, ConfigStore, TextFormat};
    use modular_core::{DynamicConfig, Secret};
    use serde::{Deserialize, Serialize};

    #[derive(Clone, Debug, PartialEq, Serialize, Deserialize, DynamicConfig)]
    #[serde(deny_unknown_fields)]
    struct Credentials {
        user: String,
        #[config(sensitive)]
        token: String,
        password: Secret<String>,
    }

    #[derive(Clone, Debug, PartialEq, Serialize, Deserialize, DynamicConfig)]
    #[serde(deny_unknown_fields)]
    struct Outer {
        #[config(nested)]
        credentials: Credentials,
        #[config(nested)]
        replicas: BTreeMap<String, Credentials>,
        #[config(nested)]
        fallback: Option<Credentials>,
    }

    #[test]
    fn sensitive_fields_inside_nested_structs_maps_and_options_are_redacted_in_the_running_config()
    {
        let creds =
            |n: u32| format!("{{user: u{n}, token: tok-secret-{n}, password: pw-secret-{n}}}");
        let text = format!(
            "outer:\n  credentials: {}\n  replicas:\n    east: {}\n  fallback: {}\n",
            creds(1),
            creds(2),
            creds(3)
        );
        let store = ConfigStore::new(ConfigSources::new().env_prefix(None).text(
            "embedded",
            TextFormat::Yaml,
            text,
        ));
        store.load_initial().unwrap();
        store.register::<Outer>("outer", Some("outer")).unwrap();
        let json = store.redacted_json();
        let text = json.to_string();
        assert!(
            !text.contains("tok-secret") && !text.contains("pw-secret"),
            "{text}"
        );
        assert_eq!(
            json["outer"]["credentials"]["user"], "u1",
            "non-sensitive values stay visible"
        );
        assert_eq!(json["outer"]["replicas"]["east"]["token"], "[REDACTED]");
        assert_eq!(json["outer"]["fallback"]["password"], "[REDACTED]");
        let _ = <Outer as DynamicConfig>::FIELDS;
    }
}

mod error_redaction {
    use modular_core::config::{ConfigSources, ConfigStore, TextFormat};
    use modular_core::{DynamicConfig, Secret};
    use serde::{Deserialize, Serialize};
    use std::collections::BTreeMap;

    #[derive(Clone, Debug, PartialEq, Serialize, Deserialize, DynamicConfig)]
    #[serde(deny_unknown_fields)]
    struct Inner {
        #[config(sensitive)]
        api_key: u64,
        port: u16,
    }

    #[derive(Clone, Debug, PartialEq, Serialize, Deserialize, DynamicConfig)]
    #[serde(deny_unknown_fields)]
    struct Section {
        password: Secret<u32>,
        #[config(nested)]
        inner: Inner,
        #[config(nested)]
        replicas: BTreeMap<String, Inner>,
    }

    fn errors_for(yaml: &str) -> String {
        let store = ConfigStore::new(ConfigSources::new().env_prefix(None).text(
            "embedded",
            TextFormat::Yaml,
            yaml.to_owned(),
        ));
        store.load_initial().unwrap();
        let error = store.register::<Section>("svc", Some("svc")).unwrap_err();
        let _ = <Section as DynamicConfig>::FIELDS;
        error.to_string()
    }

    #[test]
    fn a_rejected_secret_or_sensitive_value_is_not_quoted_in_the_error() {
        let text = errors_for(
            "svc:\n  password: hunter-two-secret\n  inner: {api_key: 1, port: 1}\n  replicas: {}\n",
        );
        assert!(text.contains("svc.password"), "{text}");
        assert!(!text.contains("hunter-two-secret"), "{text}");
        assert!(text.contains("[REDACTED]"), "{text}");

        let nested = errors_for(
            "svc:\n  password: 1\n  inner: {api_key: nested-key-value, port: 1}\n  replicas: {east: {api_key: map-key-value, port: 1}}\n",
        );
        assert!(!nested.contains("nested-key-value"), "{nested}");
        let map = errors_for(
            "svc:\n  password: 1\n  inner: {api_key: 1, port: 1}\n  replicas: {east: {api_key: map-key-value, port: 1}}\n",
        );
        assert!(map.contains("svc.replicas.east.api_key"), "{map}");
        assert!(!map.contains("map-key-value"), "{map}");
    }

    #[test]
    fn a_rejected_plain_value_is_still_quoted_to_help_the_user() {
        let text =
            errors_for("svc:\n  password: 1\n  inner: {api_key: 1, port: many}\n  replicas: {}\n");
        assert!(text.contains("svc.inner.port"), "{text}");
        assert!(text.contains("many"), "{text}");
    }
}

/// A field whose type derives `DynamicConfig` is redacted by that type's rules even when it is
/// not marked `nested`: as a whole, inside an `Option`, a map or a `Vec`.
mod unmarked_nested {
    use std::collections::BTreeMap;

    use modular_core::config::REDACTED;
    use modular_core::{ConfigDiff, ConfigHandle, DynamicConfig, Secret};
    use serde::{Deserialize, Serialize};

    const KEY: &str = "inner-key-value";
    const NEW_KEY: &str = "inner-key-changed";
    const PASSWORD: &str = "inner-password-value";

    #[derive(Clone, Debug, PartialEq, Serialize, Deserialize, DynamicConfig)]
    #[serde(deny_unknown_fields)]
    struct Inner {
        user: String,
        #[config(sensitive)]
        key: String,
        password: Option<Secret<String>>,
    }

    #[derive(Clone, Debug, PartialEq, Serialize, Deserialize, DynamicConfig)]
    #[serde(deny_unknown_fields)]
    struct Outer {
        inner: Inner,
        maybe: Option<Inner>,
        by_name: BTreeMap<String, Inner>,
        list: Vec<Inner>,
        #[config(nested)]
        marked: BTreeMap<String, Inner>,
        port: u16,
    }

    fn inner(key: &str) -> Inner {
        Inner {
            user: "app".to_owned(),
            key: key.to_owned(),
            password: Some(Secret::new(PASSWORD.to_owned())),
        }
    }

    fn outer() -> Outer {
        Outer {
            inner: inner(KEY),
            maybe: Some(inner(KEY)),
            by_name: BTreeMap::from([("east".to_owned(), inner(KEY))]),
            list: vec![inner(KEY)],
            marked: BTreeMap::new(),
            port: 80,
        }
    }

    fn assert_hidden(text: &str) {
        for hidden in [KEY, NEW_KEY, PASSWORD] {
            assert!(!text.contains(hidden), "shows {hidden:?}: {text}");
        }
        assert!(text.contains(REDACTED), "{text}");
    }

    #[test]
    fn the_redacted_view_hides_sensitive_fields_of_unmarked_config_types() {
        let mut json = serde_json::to_value(outer()).unwrap();
        Outer::redact_json(&mut json);
        assert_hidden(&json.to_string());
        assert_eq!(json["inner"]["user"], "app", "plain fields stay visible");
        assert_eq!(json["inner"]["key"], REDACTED);
        assert_eq!(json["maybe"]["key"], REDACTED);
        assert_eq!(json["by_name"]["east"]["key"], REDACTED);
        assert_eq!(json["list"][0]["key"], REDACTED);
        assert_eq!(json["port"], 80);
        assert_hidden(&format!("{:?}", ConfigHandle::new(outer())));
    }

    #[test]
    fn a_change_of_an_unmarked_config_type_is_shown_redacted_and_read_in_full() {
        let old = outer();
        let mut new = old.clone();
        new.inner.key = NEW_KEY.to_owned();
        new.maybe = None;
        new.by_name.insert("west".to_owned(), inner(NEW_KEY));
        new.list.push(inner(NEW_KEY));
        new.marked.insert("north".to_owned(), inner(NEW_KEY));
        let changes = old.diff(&new);
        let paths: Vec<&str> = changes.iter().map(|c| &*c.field_path).collect();
        assert_eq!(
            paths,
            ["inner", "maybe", "by_name.west", "list", "marked.north"]
        );
        for change in &changes {
            assert_hidden(&format!("{change:?}"));
            assert_hidden(&change.to_string());
            assert_hidden(&serde_json::to_string(change).unwrap());
        }
        assert_hidden(&serde_json::to_string(&ConfigDiff::new(changes.clone())).unwrap());
        // The module still reads the whole new value.
        let read: Inner = changes[0].new_as().unwrap();
        assert_eq!(read.key, NEW_KEY);
        assert_eq!(changes[0].display_new()["user"], "app");
    }

    #[test]
    fn error_paths_inside_unmarked_config_types_are_sensitive() {
        for path in [
            &["inner", "key"][..],
            &["maybe", "key"],
            &["by_name", "east", "key"],
            &["list", "0", "key"],
            &["inner", "password"],
        ] {
            assert!(Outer::is_sensitive_path(path), "{path:?}");
        }
        assert!(!Outer::is_sensitive_path(&["inner", "user"]));
        assert!(!Outer::is_sensitive_path(&["port"]));
    }
}
