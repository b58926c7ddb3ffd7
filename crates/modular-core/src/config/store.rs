//! The application's configuration: its sources, runtime overrides, typed sections and version.

use std::any::Any;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::sync::{Arc, Mutex, RwLock};

use figment::Figment;
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

use super::epoch::{ConfigSnapshot, Epoch};
use super::errors::{ValidationError, ValidationErrors, from_figment};
use super::handle::ConfigHandle;
use super::source::{ConfigSources, TextFormat};
use super::{ConfigChange, DynamicConfig, FieldError};

pub use super::epoch::AnySection;

/// The top-level sections core itself reads, known without a module:
/// `admin`, `health`, `reload` and `metrics`.
pub const CORE_SECTIONS: &[&str] = &["admin", "health", "reload", "metrics"];

/// What a configuration section type needs: typed diff and validation, serde both ways.
pub trait SectionConfig:
    DynamicConfig + DeserializeOwned + Serialize + Clone + Send + Sync + 'static
{
}
impl<T: DynamicConfig + DeserializeOwned + Serialize + Clone + Send + Sync + 'static> SectionConfig
    for T
{
}

/// One registered section, type-erased so the reload pipeline can drive every section alike.
pub trait SectionBinding: Send + Sync {
    /// The section key (a module's name).
    fn name(&self) -> &str;
    /// The module that owns the section, if any.
    fn owner(&self) -> Option<&str>;
    /// Deserializes and validates the section from a candidate figment.
    fn load(&self, figment: &Figment) -> Result<AnySection, Vec<ValidationError>>;
    /// The running value.
    fn current(&self) -> AnySection;
    /// The section's place in the config epoch.
    fn index(&self) -> usize;
    /// Typed diff from `old` to `new`, with `section` set on every change.
    fn diff(&self, old: &AnySection, new: &AnySection) -> Vec<ConfigChange>;
    /// The serde form of a value with secrets and sensitive fields redacted.
    fn redacted_json(&self, value: &AnySection) -> Value;
    /// A clone of the typed `ConfigHandle<T>`, boxed.
    fn handle_any(&self) -> Box<dyn Any + Send>;
    /// `value` as set at `path` (segments inside the section, empty for the whole section),
    /// with whatever lies in a sensitive or secret field redacted: what
    /// `GET /admin/config/overrides` shows. The default redacts the whole value.
    fn redacted_value_at(&self, _path: &[&str], _value: &Value) -> Value {
        Value::String(super::REDACTED.to_owned())
    }
}

/// A check of one section's raw value, run in reload step 2 beside the typed `validate()`
/// hook: how a module (jsonschema) or the application attaches rules to a section it does not
/// own, without core knowing what the rules are.
///
/// It receives the section as the candidate sets it, as JSON (an empty object when the
/// candidate has no such section), and returns field errors with paths relative to the
/// section (`pool.max`, `items.0.name`; empty for the section itself). The store prefixes
/// them with the section and adds the source that set each one, like a type error. A plain
/// `Fn(&Value) -> Result<(), Vec<FieldError>>` is a check.
pub trait SectionCheck: Send + Sync {
    /// Checks the section's candidate value.
    fn check(&self, value: &Value) -> Result<(), Vec<FieldError>>;
}

impl<F> SectionCheck for F
where
    F: Fn(&Value) -> Result<(), Vec<FieldError>> + Send + Sync,
{
    fn check(&self, value: &Value) -> Result<(), Vec<FieldError>> {
        self(value)
    }
}

/// The raw value of section `name` in `figment` (an empty object when absent) checked by
/// `check`, its errors as validation errors with the full path and their source.
fn run_check(name: &str, check: &dyn SectionCheck, figment: &Figment) -> Vec<ValidationError> {
    let value = match figment.extract_inner::<Value>(name) {
        Ok(value) => value,
        Err(e) if is_missing_section(&e, name) => Value::Object(serde_json::Map::new()),
        // Not JSON-shaped at all: the typed section (if any) or figment reports it.
        Err(e) => return from_figment(e, Some(name)),
    };
    match check.check(&value) {
        Ok(()) => Vec::new(),
        Err(errors) => in_section(name, figment, errors),
    }
}

/// Field errors of section `name` (paths relative to it) as validation errors with the full
/// path and the source that set each one.
fn in_section(name: &str, figment: &Figment, errors: Vec<FieldError>) -> Vec<ValidationError> {
    errors
        .into_iter()
        .map(|e| {
            let path = if e.path.is_empty() {
                name.to_owned()
            } else {
                format!("{name}.{}", e.path)
            };
            let source = source_of(figment, &path);
            ValidationError {
                path,
                source,
                message: e.message,
            }
        })
        .collect()
}

struct TypedSection<T> {
    name: String,
    owner: Option<String>,
    handle: ConfigHandle<T>,
}

impl<T: SectionConfig> TypedSection<T> {
    fn extract(&self, figment: &Figment) -> Result<T, Vec<ValidationError>> {
        extract_section(&self.name, figment)
    }
}

/// Deserializes and validates section `name` of a figment.
pub(crate) fn extract_section<T: SectionConfig>(
    name: &str,
    figment: &Figment,
) -> Result<T, Vec<ValidationError>> {
    {
        // One lookup: figment clones its whole merged map on every `contains`/`find`.
        let value: T = match figment.extract_inner::<T>(name) {
            Ok(value) => value,
            Err(e) if !is_missing_section(&e, name) => {
                return Err(redact_sensitive_errors::<T>(
                    name,
                    from_figment(e, Some(name)),
                ));
            }
            Err(_) => {
                serde_json::from_value(Value::Object(serde_json::Map::new())).map_err(|e| {
                    vec![ValidationError {
                        path: name.to_owned(),
                        source: "defaults".to_owned(),
                        message: format!("section missing and has no defaults: {e}"),
                    }]
                })?
            }
        };
        let mut errors = Vec::new();
        value.validate_into(None, &mut errors);
        if errors.is_empty() {
            return Ok(value);
        }
        Err(in_section(name, figment, errors))
    }
}

/// Deserialization messages quote the offending value (`found string "hunter2"`); for a
/// sensitive or secret field keep only what was expected.
fn redact_sensitive_errors<T: SectionConfig>(
    name: &str,
    errors: Vec<ValidationError>,
) -> Vec<ValidationError> {
    errors
        .into_iter()
        .map(|mut e| {
            let relative = e
                .path
                .strip_prefix(name)
                .map(|rest| rest.trim_start_matches('.'))
                .unwrap_or(&e.path);
            let segments: Vec<&str> = relative.split('.').filter(|s| !s.is_empty()).collect();
            if T::is_sensitive_path(&segments) {
                e.message = match e.message.find(", expected ") {
                    Some(i) => format!(
                        "invalid value {} (sensitive){}",
                        super::REDACTED,
                        &e.message[i..]
                    ),
                    None => format!("invalid value {} (sensitive)", super::REDACTED),
                };
            }
            e
        })
        .collect()
}

/// Whether figment reports the section itself as absent (not a field inside it).
fn is_missing_section(error: &figment::Error, name: &str) -> bool {
    matches!(&error.kind, figment::error::Kind::MissingField(field) if field == name)
        && error.metadata.is_none()
}

/// Which source set the value at `path` (the nearest enclosing key that has metadata).
pub(crate) fn source_of(figment: &Figment, path: &str) -> String {
    let mut key = path;
    loop {
        if let Some(md) = figment.find_metadata(key) {
            return match &md.source {
                Some(figment::Source::File(file)) => file.display().to_string(),
                Some(figment::Source::Custom(name)) => name.clone(),
                _ => {
                    if md.name.contains("environment") {
                        let parts: Vec<&str> = path.split('.').collect();
                        format!("env {}", md.interpolate(&figment::Profile::Default, &parts))
                    } else {
                        md.name.to_string()
                    }
                }
            };
        }
        match key.rfind('.') {
            Some(i) => key = &key[..i],
            None => return "defaults".to_owned(),
        }
    }
}

fn downcast<T: 'static>(value: &AnySection) -> &T {
    match value.downcast_ref::<T>() {
        Some(v) => v,
        // Sections are only ever stored by their own binding, so the type always matches.
        None => unreachable!("config section holds a value of another type"),
    }
}

impl<T: SectionConfig> SectionBinding for TypedSection<T> {
    fn name(&self) -> &str {
        &self.name
    }

    fn owner(&self) -> Option<&str> {
        self.owner.as_deref()
    }

    fn load(&self, figment: &Figment) -> Result<AnySection, Vec<ValidationError>> {
        self.extract(figment).map(|v| Arc::new(v) as AnySection)
    }

    fn current(&self) -> AnySection {
        self.handle.get() as AnySection
    }

    fn index(&self) -> usize {
        self.handle.index
    }

    fn diff(&self, old: &AnySection, new: &AnySection) -> Vec<ConfigChange> {
        let mut changes = downcast::<T>(old).diff(downcast::<T>(new));
        for change in &mut changes {
            change.section = std::borrow::Cow::Owned(self.name.clone());
        }
        changes
    }

    fn handle_any(&self) -> Box<dyn Any + Send> {
        Box::new(self.handle.clone())
    }

    fn redacted_json(&self, value: &AnySection) -> Value {
        super::handle::redacted_json(downcast::<T>(value))
    }

    fn redacted_value_at(&self, path: &[&str], value: &Value) -> Value {
        if T::is_sensitive_path(path) {
            return Value::String(super::REDACTED.to_owned());
        }
        // Wrap the value in the objects its path names, redact that as a partial section
        // (so sensitive fields inside an object value are caught too), and unwrap it again.
        let mut wrapped = value.clone();
        for segment in path.iter().rev() {
            wrapped = Value::Object(serde_json::Map::from_iter([(
                (*segment).to_owned(),
                wrapped,
            )]));
        }
        T::redact_json(&mut wrapped);
        for segment in path {
            wrapped = match wrapped {
                Value::Object(mut map) => map.remove(*segment).unwrap_or(Value::Null),
                _ => Value::Null,
            };
        }
        wrapped
    }
}

/// Every registered section with a candidate value, in registration order.
pub type CandidateSections = Vec<(Arc<dyn SectionBinding>, AnySection)>;

/// A fully loaded and validated candidate configuration.
pub struct Candidate {
    /// The figment it was read from (for provenance).
    pub figment: Figment,
    /// Every registered section's candidate value, in registration order.
    pub sections: CandidateSections,
}

impl fmt::Debug for Candidate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Candidate")
            .field(
                "sections",
                &self
                    .sections
                    .iter()
                    .map(|(b, _)| b.name())
                    .collect::<Vec<_>>(),
            )
            .finish()
    }
}

/// The configuration of one application.
pub struct ConfigStore {
    sources: ConfigSources,
    overrides: Mutex<BTreeMap<String, Value>>,
    sections: RwLock<Vec<Arc<dyn SectionBinding>>>,
    initial: RwLock<Option<Figment>>,
    epoch: Arc<Epoch>,
    loaded_fingerprint: Mutex<Option<u64>>,
    // `Some` once the application has said which sections exist: every other top-level key
    // is then an error.
    known_sections: RwLock<Option<BTreeSet<String>>>,
    checks: RwLock<Vec<(String, Arc<dyn SectionCheck>)>>,
    revisions: Mutex<BTreeMap<String, String>>,
}

impl fmt::Debug for ConfigStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ConfigStore")
            .field("sources", &self.sources)
            .field("sections", &self.section_names())
            .field("version", &self.version())
            .finish()
    }
}

impl ConfigStore {
    /// A store over these sources, at version 1 once loaded.
    pub fn new(sources: ConfigSources) -> Self {
        Self {
            sources,
            overrides: Mutex::new(BTreeMap::new()),
            sections: RwLock::new(Vec::new()),
            initial: RwLock::new(None),
            epoch: Epoch::new(1, Vec::new()),
            loaded_fingerprint: Mutex::new(None),
            known_sections: RwLock::new(None),
            checks: RwLock::new(Vec::new()),
            revisions: Mutex::new(BTreeMap::new()),
        }
    }

    /// Attaches `check` to section `section` (any section: a module's, a free one): from now
    /// on every candidate's section must pass it, or the reload is rejected with the errors'
    /// paths and sources. The configuration loaded at start-up is checked at once; when it
    /// fails, the errors are returned and the check is not attached (a module calling this in
    /// `init` fails `build()` with them).
    pub fn add_section_check(
        &self,
        section: &str,
        check: Arc<dyn SectionCheck>,
    ) -> Result<(), ValidationErrors> {
        if let Some(figment) = read(&self.initial).as_ref() {
            let errors = run_check(section, check.as_ref(), figment);
            if !errors.is_empty() {
                return Err(ValidationErrors(errors));
            }
        }
        write(&self.checks).push((section.to_owned(), check));
        Ok(())
    }

    /// The revision of each remote layer ([`RemoteSource`](super::RemoteSource)) the running
    /// configuration was read at, by source name (empty without remote layers).
    pub fn source_revisions(&self) -> BTreeMap<String, String> {
        lock(&self.revisions).clone()
    }

    /// Records the remote revisions of a committed candidate (the reload pipeline).
    pub(crate) fn set_source_revisions(&self, revisions: BTreeMap<String, String>) {
        *lock(&self.revisions) = revisions;
    }

    /// The sources.
    pub fn sources(&self) -> &ConfigSources {
        &self.sources
    }

    /// Loads the sources for start-up; sections registered afterwards read from this load.
    pub fn load_initial(&self) -> Result<(), ValidationErrors> {
        let fingerprint = crate::reload::content_fingerprint(&self.sources.files());
        let figment = self.figment(None).map_err(ValidationErrors)?;
        *lock(&self.loaded_fingerprint) = Some(fingerprint);
        *lock(&self.revisions) = super::source::source_revisions(&figment);
        *write(&self.initial) = Some(figment);
        Ok(())
    }

    /// Registers a typed section and returns its handle, read from the initial load.
    pub fn register<T: SectionConfig>(
        &self,
        name: &str,
        owner: Option<&str>,
    ) -> Result<ConfigHandle<T>, ValidationErrors> {
        if let Some(existing) = read(&self.sections).iter().find(|s| s.name() == name) {
            // A second reader of the same section shares the snapshot.
            if let Ok(handle) = existing.handle_any().downcast::<ConfigHandle<T>>() {
                return Ok(*handle);
            }
            return Err(ValidationErrors(vec![ValidationError {
                path: name.to_owned(),
                source: String::new(),
                message: format!(
                    "section is already registered with another type than {}",
                    std::any::type_name::<T>()
                ),
            }]));
        }
        let figment = match read(&self.initial).clone() {
            Some(f) => f,
            None => self.figment(None).map_err(ValidationErrors)?,
        };
        let value = extract_section::<T>(name, &figment).map_err(ValidationErrors)?;
        let mut sections = write(&self.sections);
        let index = self.epoch.append(Arc::new(value) as AnySection);
        let handle = ConfigHandle::bind(Arc::clone(&self.epoch), index);
        let binding = TypedSection {
            name: name.to_owned(),
            owner: owner.map(str::to_owned),
            handle: handle.clone(),
        };
        sections.push(Arc::new(binding));
        Ok(handle)
    }

    /// Registered section names, in registration order.
    pub fn section_names(&self) -> Vec<String> {
        read(&self.sections)
            .iter()
            .map(|s| s.name().to_owned())
            .collect()
    }

    /// Registered sections.
    pub fn sections(&self) -> Vec<Arc<dyn SectionBinding>> {
        read(&self.sections).clone()
    }

    /// The figment of the current sources and overrides (plus an optional candidate text).
    pub fn figment(
        &self,
        extra: Option<(TextFormat, &str)>,
    ) -> Result<Figment, Vec<ValidationError>> {
        let overrides = lock(&self.overrides).clone();
        self.sources.figment(&overrides, extra)
    }

    /// Loads and validates every registered section from the sources as they are now.
    /// Every error of every section is returned, with its path and source.
    pub fn load_candidate(
        &self,
        extra: Option<(TextFormat, &str)>,
    ) -> Result<Candidate, ValidationErrors> {
        self.load_candidate_with(&lock(&self.overrides).clone(), extra)
    }

    /// Like [`ConfigStore::load_candidate`] with a given set of overrides.
    pub fn load_candidate_with(
        &self,
        overrides: &BTreeMap<String, Value>,
        extra: Option<(TextFormat, &str)>,
    ) -> Result<Candidate, ValidationErrors> {
        let figment = self
            .sources
            .figment(overrides, extra)
            .map_err(ValidationErrors)?;
        let sections = self.validate(&figment).map_err(ValidationErrors)?;
        Ok(Candidate { figment, sections })
    }

    /// Deserializes and validates every registered section from `figment`, and runs every
    /// [`SectionCheck`] on its section's raw value; every error of every section is returned,
    /// each with its path and source. Once
    /// [`ConfigStore::require_known_sections`] was called, a top-level key that is no known
    /// section is an error too.
    pub fn validate(&self, figment: &Figment) -> Result<CandidateSections, Vec<ValidationError>> {
        let mut errors = Vec::new();
        let mut sections = Vec::new();
        for binding in self.sections() {
            match binding.load(figment) {
                Ok(value) => sections.push((binding, value)),
                Err(e) => errors.extend(e),
            }
        }
        let checks = read(&self.checks).clone();
        for (section, check) in &checks {
            errors.extend(run_check(section, check.as_ref(), figment));
        }
        errors.extend(self.unknown_sections(figment));
        if errors.is_empty() {
            Ok(sections)
        } else {
            Err(errors)
        }
    }

    /// From now on, a top-level key of the configuration that is neither a registered
    /// section, nor one of `names`, nor one of [`CORE_SECTIONS`] is an error
    /// (`unknown section "cahce" (did you mean "cache"?)`, with the source that set it).
    /// The application calls this after every module's `init`, with the module names and the
    /// free sections it declared; a store used on its own checks nothing until told.
    pub fn require_known_sections<I, S>(&self, names: I)
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        let mut known: BTreeSet<String> = CORE_SECTIONS.iter().map(|s| (*s).to_owned()).collect();
        known.extend(names.into_iter().map(Into::into));
        *write(&self.known_sections) = Some(known);
    }

    /// The unknown top-level sections of the configuration loaded at start-up (see
    /// [`ConfigStore::require_known_sections`]).
    pub fn check_initial_sections(&self) -> Result<(), ValidationErrors> {
        let errors = match read(&self.initial).as_ref() {
            Some(figment) => self.unknown_sections(figment),
            None => Vec::new(),
        };
        if errors.is_empty() {
            Ok(())
        } else {
            Err(ValidationErrors(errors))
        }
    }

    /// Every top-level key of `figment` that is no known section, with a hint when a known
    /// one is close. Empty until [`ConfigStore::require_known_sections`] is called.
    pub fn unknown_sections(&self, figment: &Figment) -> Vec<ValidationError> {
        let Some(mut known) = read(&self.known_sections).clone() else {
            return Vec::new();
        };
        known.extend(self.section_names());
        let Ok(data) = figment::Provider::data(figment) else {
            // A figment that does not parse was reported when it was built.
            return Vec::new();
        };
        let keys: BTreeSet<&String> = data.values().flat_map(|dict| dict.keys()).collect();
        keys.into_iter()
            .filter(|key| !known.contains(key.as_str()))
            .map(|key| {
                let message = match closest(key, &known) {
                    Some(hint) => format!("unknown section \"{key}\" (did you mean \"{hint}\"?)"),
                    None => format!("unknown section \"{key}\""),
                };
                ValidationError {
                    path: key.clone(),
                    source: source_of(figment, key),
                    message,
                }
            })
            .collect()
    }

    /// The content fingerprint of the config files when they were loaded at start-up
    /// (what the file watcher compares against).
    pub fn loaded_fingerprint(&self) -> Option<u64> {
        *lock(&self.loaded_fingerprint)
    }

    /// The runtime overrides (dotted path to value).
    pub fn overrides(&self) -> BTreeMap<String, Value> {
        lock(&self.overrides).clone()
    }

    /// The runtime overrides as `GET /admin/config/overrides` shows them: a value that is, or
    /// holds, a sensitive or secret field of its section is redacted. A key outside every
    /// registered section is shown as set (no section says it is sensitive).
    pub fn redacted_overrides(&self) -> BTreeMap<String, Value> {
        let sections = self.sections();
        self.overrides()
            .into_iter()
            .map(|(key, value)| {
                let segments: Vec<&str> = key.split('.').collect();
                let shown = match sections.iter().find(|s| s.name() == segments[0]) {
                    Some(section) => section.redacted_value_at(&segments[1..], &value),
                    None => value,
                };
                (key, shown)
            })
            .collect()
    }

    /// Replaces the runtime overrides.
    pub fn set_overrides(&self, overrides: BTreeMap<String, Value>) {
        *lock(&self.overrides) = overrides;
    }

    /// The config version (1 at start, +1 per committed reload).
    pub fn version(&self) -> u64 {
        self.epoch.load().version()
    }

    /// The whole running configuration at one version: read several sections from it and
    /// they are all from that version (see [`ConfigSnapshot`]). A cheap, short-lived guard
    /// (no reference count is touched); do not hold it across `.await` or for long, use
    /// [`ConfigStore::snapshot_owned`] for that.
    #[inline]
    pub fn snapshot(&self) -> arc_swap::Guard<Arc<ConfigSnapshot>> {
        self.epoch.load()
    }

    /// Like [`ConfigStore::snapshot`], owned: keep it as long as needed.
    #[inline]
    pub fn snapshot_owned(&self) -> Arc<ConfigSnapshot> {
        self.epoch.load_full()
    }

    /// Publishes a new version: every section in `updates` takes its new value, every other
    /// section keeps its own, all in one atomic swap (one epoch). Returns the new version.
    pub(crate) fn publish(&self, updates: Vec<(usize, AnySection)>) -> u64 {
        let current = self.epoch.load_full();
        let mut sections = current.sections.clone();
        for (index, value) in updates {
            if let Some(slot) = sections.get_mut(index) {
                *slot = value;
            }
        }
        let version = current.version() + 1;
        self.epoch.publish(version, sections);
        version
    }

    /// The running configuration as JSON, section by section, with secrets redacted.
    pub fn redacted_json(&self) -> Value {
        self.redacted_versioned().1
    }

    /// The running version and its configuration as JSON, secrets redacted, both from one
    /// config epoch (never a version number beside another version's values).
    pub fn redacted_versioned(&self) -> (u64, Value) {
        let snapshot = self.snapshot();
        let mut map = serde_json::Map::new();
        for section in self.sections() {
            if let Some(value) = snapshot.section(section.index()) {
                map.insert(section.name().to_owned(), section.redacted_json(value));
            }
        }
        (snapshot.version(), Value::Object(map))
    }
}

/// The known name closest to `name`, if it is close enough to be a likely typo: at most one
/// edit per three characters (at least one), a swap of neighbours counting as one edit.
fn closest<'a>(name: &str, known: &'a BTreeSet<String>) -> Option<&'a str> {
    known
        .iter()
        .map(|candidate| (edit_distance(name, candidate), candidate))
        .filter(|(distance, candidate)| {
            *distance <= (name.chars().count().max(candidate.chars().count()) / 3).max(1)
        })
        .min_by_key(|(distance, _)| *distance)
        .map(|(_, candidate)| candidate.as_str())
}

/// Optimal string alignment distance (Levenshtein plus adjacent transpositions), by chars.
fn edit_distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    // Three rows: two back (for transpositions), previous, current.
    let mut before: Vec<usize> = vec![0; b.len() + 1];
    let mut previous: Vec<usize> = (0..=b.len()).collect();
    let mut current: Vec<usize> = vec![0; b.len() + 1];
    for i in 1..=a.len() {
        current[0] = i;
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            let mut best = (previous[j] + 1)
                .min(current[j - 1] + 1)
                .min(previous[j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                best = best.min(before[j - 2] + 1);
            }
            current[j] = best;
        }
        std::mem::swap(&mut before, &mut previous);
        std::mem::swap(&mut previous, &mut current);
    }
    previous[b.len()]
}

// A poisoned lock only means another thread panicked while holding it; the data (plain maps
// and lists, replaced whole) is still consistent, so keep going.
fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}
fn read<T>(m: &RwLock<T>) -> std::sync::RwLockReadGuard<'_, T> {
    m.read().unwrap_or_else(std::sync::PoisonError::into_inner)
}
fn write<T>(m: &RwLock<T>) -> std::sync::RwLockWriteGuard<'_, T> {
    m.write().unwrap_or_else(std::sync::PoisonError::into_inner)
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::{closest, edit_distance};

    #[test]
    fn edit_distance_counts_a_swap_of_neighbours_as_one_edit() {
        assert_eq!(edit_distance("cache", "cache"), 0);
        assert_eq!(edit_distance("cahce", "cache"), 1);
        assert_eq!(edit_distance("cach", "cache"), 1);
        assert_eq!(edit_distance("databse", "database"), 1);
        assert_eq!(edit_distance("", "abc"), 3);
        assert_eq!(edit_distance("kitten", "sitting"), 3);
    }

    #[test]
    fn the_hint_is_the_closest_known_name_when_it_is_close() {
        let known: BTreeSet<String> = ["cache", "database", "router", "health"]
            .into_iter()
            .map(str::to_owned)
            .collect();
        assert_eq!(closest("cahce", &known), Some("cache"));
        assert_eq!(closest("rout", &known), Some("router"));
        assert_eq!(closest("helth", &known), Some("health"));
        assert_eq!(closest("zzzzzz", &known), None);
        assert_eq!(closest("tls", &known), None);
    }
}
