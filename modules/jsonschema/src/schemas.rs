//! [`JsonSchemas`]: the service, the live compiled set behind an `ArcSwap`, and what each
//! validation reports ([`SchemaError`]).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Instant;

use arc_swap::ArcSwap;
use modular_core::FieldError;
use modular_core::config::SectionCheck;
use serde::Serialize;
use serde_json::Value;

use crate::metrics::SchemaSeries;

/// One violation of a schema.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct SchemaError {
    /// Where in the instance, as a JSON pointer (`/items/0/name`; empty for the root).
    pub instance_path: String,
    /// Where in the schema, as a JSON pointer to the failing keyword
    /// (`/properties/items/items/properties/name/type`).
    pub schema_path: String,
    /// Why, as the `jsonschema` crate words it (`42 is not of type "string"`).
    pub message: String,
}

impl std::fmt::Display for SchemaError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.instance_path.is_empty() {
            write!(f, "{}", self.message)
        } else {
            write!(f, "{}: {}", self.instance_path, self.message)
        }
    }
}

/// One compiled schema of the live set.
pub struct Schema {
    name: String,
    file: PathBuf,
    validator: jsonschema::Validator,
    series: SchemaSeries,
}

impl std::fmt::Debug for Schema {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Schema")
            .field("name", &self.name)
            .field("file", &self.file)
            .finish_non_exhaustive()
    }
}

impl Schema {
    pub(crate) fn new(name: String, file: PathBuf, validator: jsonschema::Validator) -> Self {
        let series = SchemaSeries::new(&name);
        Self {
            name,
            file,
            validator,
            series,
        }
    }

    /// The schema's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The file it was compiled from.
    pub fn file(&self) -> &Path {
        &self.file
    }

    /// The compiled validator, for uses this module does not wrap.
    pub fn validator(&self) -> &jsonschema::Validator {
        &self.validator
    }

    /// Checks `instance`: `Ok`, or every violation.
    pub fn validate(&self, instance: &Value) -> Result<(), Vec<SchemaError>> {
        let start = self.series.recording.then(Instant::now);
        // The valid case is the common one: the boolean walk stops at nothing and allocates
        // nothing; errors are only collected for an invalid instance.
        let result = if self.validator.is_valid(instance) {
            Ok(())
        } else {
            Err(self
                .validator
                .iter_errors(instance)
                .map(|e| SchemaError {
                    instance_path: e.instance_path().to_string(),
                    schema_path: e.schema_path().to_string(),
                    message: e.to_string(),
                })
                .collect())
        };
        if let Some(start) = start {
            self.series.duration.record(start.elapsed().as_secs_f64());
            match result {
                Ok(()) => self.series.valid.increment(1),
                Err(_) => self.series.invalid.increment(1),
            }
        }
        result
    }

    /// Whether `instance` is valid (no errors collected).
    pub fn is_valid(&self, instance: &Value) -> bool {
        self.validate_bool(instance)
    }

    fn validate_bool(&self, instance: &Value) -> bool {
        let start = self.series.recording.then(Instant::now);
        let valid = self.validator.is_valid(instance);
        if let Some(start) = start {
            self.series.duration.record(start.elapsed().as_secs_f64());
            if valid {
                self.series.valid.increment(1);
            } else {
                self.series.invalid.increment(1);
            }
        }
        valid
    }
}

/// A compiled set: every schema, by name, from one compilation.
#[derive(Debug, Default)]
pub struct SchemaSet {
    schemas: HashMap<String, Arc<Schema>>,
    generation: u64,
}

impl SchemaSet {
    pub(crate) fn new(schemas: HashMap<String, Arc<Schema>>, generation: u64) -> Self {
        Self {
            schemas,
            generation,
        }
    }

    /// The schema named `name`.
    pub fn get(&self, name: &str) -> Option<&Arc<Schema>> {
        self.schemas.get(name)
    }

    /// The names, sorted.
    pub fn names(&self) -> Vec<String> {
        let mut names: Vec<String> = self.schemas.keys().cloned().collect();
        names.sort();
        names
    }

    /// How many schemas.
    pub fn len(&self) -> usize {
        self.schemas.len()
    }

    /// Whether the set holds no schema.
    pub fn is_empty(&self) -> bool {
        self.schemas.is_empty()
    }

    /// Which compilation made it (1 at start, +1 per committed recompile).
    pub fn generation(&self) -> u64 {
        self.generation
    }

    /// The files, sorted.
    pub fn files(&self) -> Vec<PathBuf> {
        let mut files: Vec<PathBuf> = self.schemas.values().map(|s| s.file.clone()).collect();
        files.sort();
        files
    }
}

/// A recompilation that failed: the running set kept serving.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Rejection {
    /// The schema file that failed, when one did.
    pub file: Option<String>,
    /// The error, naming the file and the location.
    pub error: String,
    /// What started it: `watch` (a file changed) or `reload` (the config changed).
    pub trigger: String,
}

/// The module's service: every configured schema, compiled, by name. Cheap to clone (one
/// `Arc`); registered in the service registry as `JsonSchemas`.
///
/// ```
/// # fn demo(schemas: &modular_jsonschema::JsonSchemas) {
/// let note = serde_json::json!({ "title": 42 });
/// if let Err(errors) = schemas.validate("note", &note) {
///     for e in &errors {
///         println!("{} ({}): {}", e.instance_path, e.schema_path, e.message);
///     }
/// }
/// # }
/// ```
#[derive(Clone)]
pub struct JsonSchemas {
    pub(crate) shared: Arc<Shared>,
}

pub(crate) struct Shared {
    pub(crate) current: ArcSwap<SchemaSet>,
    pub(crate) state: Mutex<State>,
}

/// What health and the reloads read and write beside the set.
#[derive(Debug, Default)]
pub(crate) struct State {
    /// The files' failure to compile, until they compile (what health reports).
    pub(crate) rejection: Option<Rejection>,
    /// The last failure of any recompilation (files or a config candidate).
    pub(crate) last_rejection: Option<Rejection>,
    pub(crate) rejected_total: u64,
    /// Bumped by every config commit, so a watcher compilation begun under older options
    /// does not overwrite a set the config reload just committed.
    pub(crate) options_epoch: u64,
    /// What the files held when last compiled (successfully or not).
    pub(crate) fingerprint: Option<u64>,
    /// The watch in force (set when it is handed to the watcher task).
    pub(crate) watching: Option<crate::watcher::WatchPlan>,
}

impl std::fmt::Debug for JsonSchemas {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let set = self.shared.current.load();
        f.debug_struct("JsonSchemas")
            .field("schemas", &set.names())
            .field("generation", &set.generation)
            .finish()
    }
}

impl JsonSchemas {
    pub(crate) fn new(set: SchemaSet) -> Self {
        Self {
            shared: Arc::new(Shared {
                current: ArcSwap::from_pointee(set),
                state: Mutex::new(State::default()),
            }),
        }
    }

    /// Checks `instance` against the schema named `name`: `Ok`, or every violation. An
    /// unknown name is one error with empty paths (`no schema named "x"`).
    pub fn validate(&self, name: &str, instance: &Value) -> Result<(), Vec<SchemaError>> {
        let set = self.shared.current.load();
        match set.get(name) {
            Some(schema) => schema.validate(instance),
            None => Err(vec![unknown(name)]),
        }
    }

    /// Whether `instance` is valid against `name` (false for an unknown name).
    pub fn is_valid(&self, name: &str, instance: &Value) -> bool {
        let set = self.shared.current.load();
        set.get(name).is_some_and(|s| s.validate_bool(instance))
    }

    /// The schema named `name` in the live set (it stays usable after a swap).
    pub fn get(&self, name: &str) -> Option<Arc<Schema>> {
        self.shared.current.load().get(name).cloned()
    }

    /// The live set.
    pub fn current(&self) -> Arc<SchemaSet> {
        self.shared.current.load_full()
    }

    /// The names of the live set, sorted.
    pub fn names(&self) -> Vec<String> {
        self.shared.current.load().names()
    }

    /// Why the schema files on disk do not compile, while they do not (the running set is
    /// the last one that did).
    pub fn rejection(&self) -> Option<Rejection> {
        self.state().rejection.clone()
    }

    /// The last failed recompilation of any kind (a file change or a config reload's
    /// candidate), kept after later successes.
    pub fn last_rejection(&self) -> Option<Rejection> {
        self.state().last_rejection.clone()
    }

    /// A [`SectionCheck`] that validates a config section against the schema named
    /// `schema` (as the live set holds it at each reload): attach it with
    /// `ConfigStore::add_section_check`. Violations are reported at the dotted path of the
    /// instance location (`/pool/max` is `pool.max`), with the schema's name and keyword.
    pub fn section_check(&self, schema: &str) -> Arc<dyn SectionCheck> {
        Arc::new(SchemaSectionCheck {
            schemas: self.clone(),
            schema: schema.to_owned(),
        })
    }

    pub(crate) fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.shared
            .state
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }
}

fn unknown(name: &str) -> SchemaError {
    SchemaError {
        instance_path: String::new(),
        schema_path: String::new(),
        message: format!("no schema named \"{name}\""),
    }
}

struct SchemaSectionCheck {
    schemas: JsonSchemas,
    schema: String,
}

impl SectionCheck for SchemaSectionCheck {
    fn check(&self, value: &Value) -> Result<(), Vec<FieldError>> {
        self.schemas
            .validate(&self.schema, value)
            .map_err(|errors| {
                errors
                    .into_iter()
                    .map(|e| {
                        FieldError::new(
                            dotted(&e.instance_path),
                            format!(
                                "{} (schema \"{}\" at {})",
                                e.message,
                                self.schema,
                                if e.schema_path.is_empty() {
                                    "/"
                                } else {
                                    &e.schema_path
                                }
                            ),
                        )
                    })
                    .collect()
            })
    }
}

/// A JSON pointer as a dotted config path: `/pool/max` is `pool.max`, `/a~1b` is `a/b`.
pub(crate) fn dotted(pointer: &str) -> String {
    pointer
        .split('/')
        .skip(1)
        .map(|segment| segment.replace("~1", "/").replace("~0", "~"))
        .collect::<Vec<_>>()
        .join(".")
}

#[cfg(test)]
mod tests {
    use super::dotted;

    #[test]
    fn a_json_pointer_becomes_a_dotted_path() {
        assert_eq!(dotted(""), "");
        assert_eq!(dotted("/pool/max"), "pool.max");
        assert_eq!(dotted("/items/0/a~1b~0c"), "items.0.a/b~c");
    }
}
