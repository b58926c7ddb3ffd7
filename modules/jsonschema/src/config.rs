//! [`JsonSchemaConfig`]: the `jsonschema` section.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use modular_core::health::ProviderConfig;
use modular_core::{DynamicConfig, FieldError};
use serde::{Deserialize, Serialize};

use crate::loader;

/// The `jsonschema` configuration section.
///
/// | field | dynamic | what |
/// |---|---|---|
/// | `schemas.dir` | yes | a directory: every `*.json`, `*.yaml`, `*.yml` file in it is a schema, named by its file name without the extensions (`note.schema.json` is `note`) |
/// | `schemas.files` | yes | named schema files (`note: schemas/note.schema.json`) |
/// | `default_draft` | yes | the draft of a schema without `$schema`: `4`, `6`, `7`, `2019-09`, `2020-12` (default) |
/// | `formats` | yes | whether `format` is asserted (`email`, `date-time`, `uri`, `uuid`, ...), default `true` |
/// | `remote.allowed_hosts` | yes | hosts whose `http(s)://` documents a `$ref` may name; empty (the default): no remote `$ref` |
/// | `remote.timeout` | yes | the deadline of one remote fetch |
/// | `watch.enabled`, `watch.debounce` | yes | whether schema files are watched, and the trailing debounce after a change |
/// | `sections` | no | config section → schema name: the section is checked against the schema at every reload (the checks are attached to the config store at start) |
/// | `health.timeout`, `health.optional` | yes | the health registration's options, replaced at commit |
///
/// Every dynamic field is applied by compiling the whole schema set aside and swapping it in.
///
/// ```yaml
/// jsonschema:
///   schemas:
///     dir: schemas/
///     files:
///       note: schemas/extra/note.schema.json
///   default_draft: 2020-12
///   formats: true
///   remote:
///     allowed_hosts: [schemas.example.com]
///     timeout: 5s
///   watch:
///     enabled: true
///     debounce: 100ms
///   sections:
///     app: app-config
/// ```
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, DynamicConfig)]
#[serde(deny_unknown_fields, default)]
#[config(validate = "Self::validate_config")]
pub struct JsonSchemaConfig {
    /// Where the schemas are.
    #[config(nested)]
    pub schemas: SchemaSources,
    /// The draft of a schema without `$schema`.
    #[config(dynamic)]
    pub default_draft: String,
    /// Whether `format` keywords are asserted.
    #[config(dynamic)]
    pub formats: bool,
    /// Remote `$ref`.
    #[config(nested)]
    pub remote: RemoteConfig,
    /// File watching.
    #[config(nested)]
    pub watch: WatchConfig,
    /// Config section → schema name.
    pub sections: BTreeMap<String, String>,
    /// Health registration.
    #[config(nested)]
    pub health: ProviderConfig,
}

impl Default for JsonSchemaConfig {
    fn default() -> Self {
        Self {
            schemas: SchemaSources::default(),
            default_draft: "2020-12".to_owned(),
            formats: true,
            remote: RemoteConfig::default(),
            watch: WatchConfig::default(),
            sections: BTreeMap::new(),
            health: ProviderConfig::default(),
        }
    }
}

/// `jsonschema.schemas`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, DynamicConfig)]
#[serde(deny_unknown_fields, default)]
#[config(dynamic)]
pub struct SchemaSources {
    /// A directory of schema files (not searched recursively).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dir: Option<PathBuf>,
    /// Named schema files.
    pub files: BTreeMap<String, PathBuf>,
}

/// `jsonschema.remote`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, DynamicConfig)]
#[serde(deny_unknown_fields, default)]
#[config(dynamic)]
pub struct RemoteConfig {
    /// Hosts (`schemas.example.com`, `127.0.0.1:8080` for a host with a port) whose
    /// documents may be fetched for a `$ref`.
    pub allowed_hosts: Vec<String>,
    /// The deadline of one fetch.
    #[serde(with = "modular_core::humantime_serde")]
    pub timeout: Duration,
}

impl Default for RemoteConfig {
    fn default() -> Self {
        Self {
            allowed_hosts: Vec::new(),
            timeout: Duration::from_secs(5),
        }
    }
}

/// `jsonschema.watch`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, DynamicConfig)]
#[serde(deny_unknown_fields, default)]
#[config(dynamic)]
pub struct WatchConfig {
    /// Whether the schema files' directories are watched.
    pub enabled: bool,
    /// Quiet time after the last change before the set is recompiled.
    #[serde(with = "modular_core::humantime_serde")]
    pub debounce: Duration,
}

impl Default for WatchConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            debounce: Duration::from_millis(100),
        }
    }
}

/// The drafts `default_draft` accepts.
pub const DRAFTS: &[&str] = &["4", "6", "7", "2019-09", "2020-12"];

impl JsonSchemaConfig {
    /// Everything that can be checked without fetching: the draft, the remote options, every
    /// file present, parsed and valid against its meta-schema, and no name twice. Unresolved
    /// `$ref`s are found when the set is compiled (at start or in the reload's prepare).
    fn validate_config(&self) -> Result<(), Vec<FieldError>> {
        let mut errors = Vec::new();
        if !DRAFTS.contains(&self.default_draft.as_str()) {
            errors.push(FieldError::new(
                "default_draft",
                format!(
                    "unknown draft \"{}\", expected one of {}",
                    self.default_draft,
                    DRAFTS.join(", ")
                ),
            ));
        }
        if self.remote.timeout.is_zero() {
            errors.push(FieldError::new("remote.timeout", "must be > 0s, got 0s"));
        }
        for (i, host) in self.remote.allowed_hosts.iter().enumerate() {
            if host.is_empty() || host.contains('/') {
                errors.push(FieldError::new(
                    format!("remote.allowed_hosts.{i}"),
                    format!("not a host: \"{host}\""),
                ));
            }
        }
        if self.watch.debounce > Duration::from_secs(60) {
            errors.push(FieldError::new(
                "watch.debounce",
                "must be at most 60s".to_owned(),
            ));
        }
        match loader::read_sources(&self.schemas, self.draft()) {
            Ok(_) => {}
            Err(e) => errors.extend(e.into_iter().map(|e| FieldError::new(e.path, e.message))),
        }
        FieldError::collect(errors)
    }

    /// The default draft (2020-12 for a value `validate` would reject).
    pub(crate) fn draft(&self) -> jsonschema::Draft {
        match self.default_draft.as_str() {
            "4" => jsonschema::Draft::Draft4,
            "6" => jsonschema::Draft::Draft6,
            "7" => jsonschema::Draft::Draft7,
            "2019-09" => jsonschema::Draft::Draft201909,
            _ => jsonschema::Draft::Draft202012,
        }
    }
}
