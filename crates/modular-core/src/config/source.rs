//! Configuration sources, layered with figment: defaults < files < environment < overrides.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use figment::providers::{Env, Format, Serialized, Toml};
use figment::value::{Dict, Map};
use figment::{Figment, Metadata, Profile, Provider};
use serde_json::Value;

use super::errors::{ValidationError, from_figment};

/// The default environment prefix.
pub const DEFAULT_ENV_PREFIX: &str = "MODULAR_";

/// The largest config file or configuration text read (4 MiB): a larger one is refused before
/// it is parsed.
pub const MAX_SOURCE_BYTES: u64 = 4 * 1024 * 1024;

/// YAML alias expansion allowed per byte of input: an alias may replay at most this many
/// parser events per byte of the text it is in (with a floor for tiny inputs), so a few
/// hundred bytes of alias chains ("billion laughs") are refused at once instead of expanding
/// to millions of nodes.
pub const YAML_ALIAS_EVENTS_PER_BYTE: usize = 16;
const YAML_ALIAS_EVENTS_FLOOR: usize = 4096;

/// The ordered list of configuration sources of an application.
#[derive(Clone, Debug)]
pub struct ConfigSources {
    layers: Vec<Layer>,
    env_prefix: Option<String>,
}

#[derive(Clone)]
enum Layer {
    Defaults {
        name: String,
        value: Value,
    },
    Text {
        name: String,
        format: TextFormat,
        text: String,
    },
    File {
        path: PathBuf,
        required: bool,
    },
    Remote {
        source: Arc<dyn RemoteSource>,
    },
}

/// A configuration layer fed from outside the process: a key-value store, a config server.
///
/// The source keeps its latest document in memory (its own task watches the remote end and
/// triggers a reload with [`ReloadTrigger::Remote`](crate::ReloadTrigger::Remote) when it
/// changes); every load of the configuration reads [`RemoteSource::snapshot`], so a candidate
/// sees one revision whole. It layers where it was added among the files
/// ([`ConfigSources::remote`]): after a file it wins over that file, before it the file wins.
/// The environment and runtime overrides stay above it.
///
/// Values it sets are attributed to `"<name> (revision <r>)"` in errors, and every version's
/// history entry and reload outcome carry the revision each remote layer was at
/// (`source_revisions`).
pub trait RemoteSource: Send + Sync + 'static {
    /// The name errors and provenance show: where the document comes from, never with
    /// credentials (`nats://127.0.0.1:4222/kv/app`).
    fn name(&self) -> String;
    /// The latest document (top-level sections as keys) and its revision.
    fn snapshot(&self) -> RemoteSnapshot;
}

/// What a [`RemoteSource`] holds now.
#[derive(Clone, Debug, Default)]
pub struct RemoteSnapshot {
    /// The document: top-level keys are sections (`{"cache": {"max_items": 10}}`).
    pub value: Value,
    /// The revision it was read at, when the source has revisions.
    pub revision: Option<String>,
    /// Parts of the document the source could not read (a key whose text is not YAML), by
    /// the dotted config path they would set: each rejects the candidate with that path and
    /// the source, like a syntax error in a file.
    pub errors: Vec<super::FieldError>,
}

/// The metadata name marking a remote layer: `remote:<name>\n<revision>`.
const REMOTE_MARK: &str = "remote:";

/// The revision of every remote layer `figment` was built from, by source name.
pub fn source_revisions(figment: &Figment) -> BTreeMap<String, String> {
    figment
        .metadata()
        .filter_map(|m| {
            let rest = m.name.strip_prefix(REMOTE_MARK)?;
            let (name, revision) = rest.split_once('\n')?;
            Some((name.to_owned(), revision.to_owned()))
        })
        .collect()
}

// Configuration text and default values may hold secrets (a password in embedded YAML), so
// `Debug` names each layer without its content.
impl std::fmt::Debug for Layer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Defaults { name, .. } => f
                .debug_struct("Defaults")
                .field("name", name)
                .finish_non_exhaustive(),
            Self::Text { name, format, text } => f
                .debug_struct("Text")
                .field("name", name)
                .field("format", format)
                .field("bytes", &text.len())
                .finish(),
            Self::File { path, required } => f
                .debug_struct("File")
                .field("path", path)
                .field("required", required)
                .finish(),
            Self::Remote { source } => f
                .debug_struct("Remote")
                .field("name", &source.name())
                .finish_non_exhaustive(),
        }
    }
}

/// The format of configuration text.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum TextFormat {
    /// YAML (read with serde-saphyr).
    Yaml,
    /// TOML.
    Toml,
    /// JSON.
    Json,
}

impl TextFormat {
    /// The format a file's extension names (`.yaml`/`.yml`, `.toml`, `.json`).
    pub fn from_path(path: &Path) -> Option<Self> {
        match path.extension()?.to_str()?.to_ascii_lowercase().as_str() {
            "yaml" | "yml" => Some(Self::Yaml),
            "toml" => Some(Self::Toml),
            "json" => Some(Self::Json),
            _ => None,
        }
    }
}

impl Default for ConfigSources {
    fn default() -> Self {
        Self {
            layers: Vec::new(),
            env_prefix: Some(DEFAULT_ENV_PREFIX.to_owned()),
        }
    }
}

impl ConfigSources {
    /// Defaults only, with the `MODULAR_` environment layer.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a layer of serializable defaults (lowest precedence among what has been added).
    pub fn defaults(mut self, name: impl Into<String>, value: Value) -> Self {
        self.layers.push(Layer::Defaults {
            name: name.into(),
            value,
        });
        self
    }

    /// Adds configuration text, such as embedded defaults (`include_str!("defaults.yaml")`).
    pub fn text(
        mut self,
        name: impl Into<String>,
        format: TextFormat,
        text: impl Into<String>,
    ) -> Self {
        self.layers.push(Layer::Text {
            name: name.into(),
            format,
            text: text.into(),
        });
        self
    }

    /// Adds a file that must exist; its format comes from its extension.
    pub fn file(mut self, path: impl Into<PathBuf>) -> Self {
        self.layers.push(Layer::File {
            path: path.into(),
            required: true,
        });
        self
    }

    /// Adds a file that is read when present.
    pub fn optional_file(mut self, path: impl Into<PathBuf>) -> Self {
        self.layers.push(Layer::File {
            path: path.into(),
            required: false,
        });
        self
    }

    /// Sets the environment prefix (`None` turns the environment layer off).
    pub fn env_prefix(mut self, prefix: Option<String>) -> Self {
        self.env_prefix = prefix;
        self
    }

    /// Adds a remote layer above every layer added so far (see [`RemoteSource`]).
    pub fn remote(mut self, source: Arc<dyn RemoteSource>) -> Self {
        self.layers.push(Layer::Remote { source });
        self
    }

    /// Whether any layer is a remote source.
    pub fn has_remote(&self) -> bool {
        self.layers
            .iter()
            .any(|l| matches!(l, Layer::Remote { .. }))
    }

    /// The files whose changes should trigger a reload.
    pub fn files(&self) -> Vec<PathBuf> {
        self.layers
            .iter()
            .filter_map(|l| match l {
                Layer::File { path, .. } => Some(path.clone()),
                _ => None,
            })
            .collect()
    }

    /// Builds the layered figment. `overrides` (dotted path to value) win over everything;
    /// `extra` is layered above the files and below the environment (a dry-run candidate).
    pub fn figment(
        &self,
        overrides: &BTreeMap<String, Value>,
        extra: Option<(TextFormat, &str)>,
    ) -> Result<Figment, Vec<ValidationError>> {
        let mut figment = Figment::new();
        let mut errors = Vec::new();
        for layer in &self.layers {
            figment = match layer {
                Layer::Defaults { name, value } => {
                    figment.merge(SectionMaps(Named::new(name, value.clone())))
                }
                Layer::Remote { source } => {
                    let snapshot = source.snapshot();
                    let name = source.name();
                    let revision = snapshot.revision.unwrap_or_default();
                    let shown = if revision.is_empty() {
                        name.clone()
                    } else {
                        format!("{name} (revision {revision})")
                    };
                    for error in &snapshot.errors {
                        errors.push(ValidationError {
                            path: error.path.clone(),
                            source: shown.clone(),
                            message: error.message.clone(),
                        });
                    }
                    let value = match snapshot.value {
                        Value::Null => Value::Object(serde_json::Map::new()),
                        value => value,
                    };
                    figment.merge(SectionMaps(Named {
                        name: format!("{REMOTE_MARK}{name}\n{revision}"),
                        source: shown,
                        value,
                    }))
                }
                Layer::Text { name, format, text } => {
                    if let Err(error) = check_size(text.len() as u64, name) {
                        errors.push(error);
                        continue;
                    }
                    merge_text(figment, *format, text, Some(name))
                }
                Layer::File { path, required } => {
                    if !path.exists() {
                        if *required {
                            errors.push(ValidationError {
                                path: String::new(),
                                source: path.display().to_string(),
                                message: "config file not found".to_owned(),
                            });
                        }
                        continue;
                    }
                    let size = std::fs::metadata(path).map(|m| m.len()).unwrap_or(0);
                    if let Err(error) = check_size(size, &path.display().to_string()) {
                        errors.push(error);
                        continue;
                    }
                    match TextFormat::from_path(path) {
                        Some(TextFormat::Yaml) => {
                            figment.merge(SectionMaps(Yaml::file_exact(path)))
                        }
                        Some(TextFormat::Toml) => {
                            figment.merge(SectionMaps(Toml::file_exact(path)))
                        }
                        Some(TextFormat::Json) => {
                            figment.merge(SectionMaps(Json::file_exact(path)))
                        }
                        None => {
                            errors.push(ValidationError {
                                path: String::new(),
                                source: path.display().to_string(),
                                message: "unknown config file extension, expected .yaml, .yml, .toml or .json"
                                    .to_owned(),
                            });
                            continue;
                        }
                    }
                }
            };
        }
        if let Some((format, text)) = extra {
            match check_size(text.len() as u64, "candidate") {
                Ok(()) => figment = merge_text(figment, format, text, None),
                Err(error) => errors.push(error),
            }
        }
        if let Some(prefix) = &self.env_prefix {
            // `MODULAR_TEST_*` variables configure the test suite, not the application.
            figment = figment.merge(SectionMaps(EnvLayer {
                env: Env::prefixed(prefix)
                    .filter(|key| !key.as_str().to_ascii_lowercase().starts_with("test_"))
                    .split("__"),
                prefix: prefix.clone(),
            }));
        }
        if !overrides.is_empty() {
            figment = figment.merge(SectionMaps(Named::new("override", nest(overrides))));
        }
        if !errors.is_empty() {
            return Err(errors);
        }
        // Every layer was parsed by `merge`; surface a syntax error now, once, with its file.
        // (`data` clones the merged map; extracting into a `Value` would also walk it.)
        if Provider::data(&figment).is_err() {
            // `data` returns the error without its source; `extract` resolves it to the layer
            // that failed, so the message names the file. Only this failure path pays for it.
            if let Err(e) = figment.extract::<serde::de::IgnoredAny>() {
                return Err(from_figment(e, None));
            }
        }
        Ok(figment)
    }
}

fn check_size(size: u64, source: &str) -> Result<(), ValidationError> {
    if size <= MAX_SOURCE_BYTES {
        return Ok(());
    }
    Err(ValidationError {
        path: String::new(),
        source: source.to_owned(),
        message: format!(
            "configuration is {size} bytes, larger than the maximum of {MAX_SOURCE_BYTES} bytes"
        ),
    })
}

/// Parses YAML text (a remote source's document) into a JSON value, with the same bounds as
/// a config file: at most [`MAX_SOURCE_BYTES`], alias expansion bounded by the input's length.
pub fn parse_yaml(text: &str) -> Result<Value, String> {
    check_size(text.len() as u64, "yaml").map_err(|e| e.message)?;
    <Yaml as Format>::from_str(text).map_err(|e| e.to_string())
}

/// YAML through serde-saphyr, with alias expansion bounded in proportion to the input.
struct Yaml;

impl Format for Yaml {
    type Error = serde_saphyr::Error;

    const NAME: &'static str = "YAML";

    fn from_str<T: serde::de::DeserializeOwned>(string: &str) -> Result<T, Self::Error> {
        let replayed = string
            .len()
            .saturating_mul(YAML_ALIAS_EVENTS_PER_BYTE)
            .max(YAML_ALIAS_EVENTS_FLOOR);
        serde_saphyr::from_str_with_options(
            string,
            serde_saphyr::options! {
                // figment does not show snippets.
                with_snippet: false,
                alias_limits: serde_saphyr::alias_limits! {
                    max_total_replayed_events: replayed,
                },
            },
        )
    }

    fn from_path<T: serde::de::DeserializeOwned>(path: &Path) -> Result<T, Self::Error> {
        // Read whole (the size was checked), so the alias bound knows the input's length.
        let text = std::fs::read_to_string(path).map_err(|cause| {
            <serde_saphyr::Error as serde::de::Error>::custom(format!("IO error: {cause}"))
        })?;
        Self::from_str(&text)
    }
}

/// JSON through serde_json, refusing a key repeated in one object (`{"a":1,"a":2}`), as the
/// YAML reader does; serde_json alone keeps the last.
struct Json;

impl Format for Json {
    type Error = serde_json::Error;

    const NAME: &'static str = "JSON";

    fn from_str<T: serde::de::DeserializeOwned>(string: &str) -> Result<T, Self::Error> {
        serde_json::from_str::<UniqueKeys>(string)?;
        serde_json::from_str(string)
    }
}

/// Deserializes any JSON value, failing on the first object with a repeated key.
struct UniqueKeys;

impl<'de> serde::Deserialize<'de> for UniqueKeys {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(UniqueKeysVisitor)
    }
}

struct UniqueKeysVisitor;

impl<'de> serde::de::Visitor<'de> for UniqueKeysVisitor {
    type Value = UniqueKeys;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_bool<E>(self, _: bool) -> Result<UniqueKeys, E> {
        Ok(UniqueKeys)
    }
    fn visit_i64<E>(self, _: i64) -> Result<UniqueKeys, E> {
        Ok(UniqueKeys)
    }
    fn visit_u64<E>(self, _: u64) -> Result<UniqueKeys, E> {
        Ok(UniqueKeys)
    }
    fn visit_f64<E>(self, _: f64) -> Result<UniqueKeys, E> {
        Ok(UniqueKeys)
    }
    fn visit_str<E>(self, _: &str) -> Result<UniqueKeys, E> {
        Ok(UniqueKeys)
    }
    fn visit_unit<E>(self) -> Result<UniqueKeys, E> {
        Ok(UniqueKeys)
    }

    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<UniqueKeys, A::Error> {
        while seq.next_element::<UniqueKeys>()?.is_some() {}
        Ok(UniqueKeys)
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<UniqueKeys, A::Error> {
        let mut seen = std::collections::HashSet::new();
        while let Some(key) = map.next_key::<String>()? {
            if !seen.insert(key.clone()) {
                return Err(serde::de::Error::custom(format!("duplicate key \"{key}\"")));
            }
            map.next_value::<UniqueKeys>()?;
        }
        Ok(UniqueKeys)
    }
}

fn merge_text(figment: Figment, format: TextFormat, text: &str, name: Option<&str>) -> Figment {
    let name = name.unwrap_or("candidate").to_owned();
    match format {
        TextFormat::Yaml => figment.merge(SectionMaps(Renamed::new(Yaml::string(text), name))),
        TextFormat::Toml => figment.merge(SectionMaps(Renamed::new(Toml::string(text), name))),
        TextFormat::Json => figment.merge(SectionMaps(Renamed::new(Json::string(text), name))),
    }
}

/// A layer whose every top-level value must be a map (a section).
///
/// figment merges a layer's `database: []` (or `router: 3`, `health: ~`) over every lower
/// layer's `database` map, and the section would then load as its defaults, silently. The
/// check runs on each layer's own data, as figment reads it, so the error names that layer:
/// `database: expected a map, found a sequence (config.yaml)`.
struct SectionMaps<P>(P);

impl<P: Provider> Provider for SectionMaps<P> {
    fn metadata(&self) -> Metadata {
        self.0.metadata()
    }

    fn data(&self) -> Result<Map<Profile, Dict>, figment::Error> {
        let data = self.0.data()?;
        let mut error: Option<figment::Error> = None;
        for (profile, dict) in &data {
            for (key, value) in dict {
                let found = match value {
                    figment::value::Value::Dict(..) => continue,
                    figment::value::Value::Array(..) => "a sequence",
                    figment::value::Value::String(..) | figment::value::Value::Char(..) => {
                        "a string"
                    }
                    figment::value::Value::Num(..) => "a number",
                    figment::value::Value::Bool(..) => "a boolean",
                    figment::value::Value::Empty(..) => "null",
                };
                let mut this = figment::Error::from(format!("expected a map, found {found}"));
                this.path = vec![key.clone()];
                this.profile = Some(profile.clone());
                error = Some(match error {
                    None => this,
                    Some(previous) => previous.chain(this),
                });
            }
        }
        match error {
            Some(error) => Err(error),
            None => Ok(data),
        }
    }
}

/// A provider shown under a name of ours in errors (`embedded defaults`, `candidate`) instead
/// of figment's `YAML source string`.
struct Renamed<P> {
    inner: P,
    name: String,
}

impl<P> Renamed<P> {
    fn new(inner: P, name: String) -> Self {
        Self { inner, name }
    }
}

impl<P: Provider> Provider for Renamed<P> {
    fn metadata(&self) -> Metadata {
        Metadata::from(
            self.name.clone(),
            figment::Source::Custom(self.name.clone()),
        )
    }

    fn data(&self) -> Result<Map<Profile, Dict>, figment::Error> {
        self.inner.data()
    }
}

/// Turns `{"cache.default_ttl": "5s"}` into `{"cache": {"default_ttl": "5s"}}`.
pub fn nest(flat: &BTreeMap<String, Value>) -> Value {
    let mut root = Value::Object(serde_json::Map::new());
    for (path, value) in flat {
        let mut node = &mut root;
        let mut segments = path.split('.').peekable();
        while let Some(segment) = segments.next() {
            if !node.is_object() {
                *node = Value::Object(serde_json::Map::new());
            }
            let Value::Object(map) = node else {
                unreachable!("made an object above")
            };
            if segments.peek().is_none() {
                map.insert(segment.to_owned(), value.clone());
                break;
            }
            node = map
                .entry(segment.to_owned())
                .or_insert_with(|| Value::Object(serde_json::Map::new()));
        }
    }
    root
}

/// The environment layer. figment's own `Env` metadata turns a key path back into
/// `DATABASE.POOL`, without the prefix or the `__` separator, so errors would name a variable
/// that does not exist; this names the real one (`MODULAR_DATABASE__POOL`).
struct EnvLayer {
    env: Env,
    prefix: String,
}

impl Provider for EnvLayer {
    fn metadata(&self) -> Metadata {
        let prefix = self.prefix.to_ascii_uppercase();
        Metadata::named(format!("`{prefix}` environment variable(s)")).interpolater(
            move |_: &Profile, keys: &[&str]| {
                let keys: Vec<String> = keys.iter().map(|k| k.to_ascii_uppercase()).collect();
                format!("{prefix}{}", keys.join("__"))
            },
        )
    }

    fn data(&self) -> Result<Map<Profile, Dict>, figment::Error> {
        self.env.data()
    }
}

/// A serialized layer whose errors name it (`override`, `defaults`).
struct Named {
    name: String,
    /// What errors show as the source.
    source: String,
    value: Value,
}

impl Named {
    fn new(name: &str, value: Value) -> Self {
        Self {
            name: name.to_owned(),
            source: name.to_owned(),
            value,
        }
    }
}

impl Provider for Named {
    fn metadata(&self) -> Metadata {
        Metadata::from(
            self.name.clone(),
            figment::Source::Custom(self.source.clone()),
        )
    }

    fn data(&self) -> Result<Map<Profile, Dict>, figment::Error> {
        Serialized::defaults(&self.value).data()
    }
}
