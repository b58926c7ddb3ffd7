//! Typed configuration diffs: [`DynamicConfig`], [`ConfigChange`] and [`ConfigDiff`].
//!
//! `#[derive(DynamicConfig)]` generates a field-by-field comparison: an unchanged field costs
//! one `PartialEq`, and only a changed field allocates a [`ConfigChange`].

use std::borrow::Cow;
use std::fmt;

use serde::de::DeserializeOwned;
use serde::{Serialize, Serializer};
use serde_json::Value;

use super::secret::{REDACTED, fingerprint_json, redacted_with_fingerprint};

/// The longest duration a configuration may hold: 100 years (of 365.25 days, humantime's
/// `100years`). Every `Duration` field of a derived config (also in an `Option`, a `Vec` or a
/// map's values) longer than this fails validation with its path: such a value is a typo or
/// an attack, and deadline arithmetic (`Instant + d`) would overflow on it.
pub const MAX_DURATION: std::time::Duration = std::time::Duration::from_secs(3_155_760_000);

/// Static description of one field, as the derive records it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FieldInfo {
    /// The serde name (after `rename` / `rename_all`): the key a user writes in YAML.
    pub name: &'static str,
    /// Reloadable at runtime.
    pub dynamic: bool,
    /// Redacted in every diff, event, log and HTTP answer.
    pub sensitive: bool,
    /// A `Secret<T>` field: its changes carry fingerprints only.
    pub secret: bool,
    /// The field's type also derives `DynamicConfig`.
    pub nested: bool,
}

/// One validation failure inside a section, with its path relative to the section.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct FieldError {
    /// Dotted path relative to the section, in serde names (`pool.max_connections`).
    pub path: String,
    /// Lowercase message that names the value (`must be > 0, got 0`).
    pub message: String,
}

impl FieldError {
    /// A failure at `path`.
    pub fn new(path: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            path: path.into(),
            message: message.into(),
        }
    }
}

impl FieldError {
    /// `Ok(())` when no error was found, else every error: the usual end of a `validate` hook.
    pub fn collect(errors: Vec<FieldError>) -> Result<(), Vec<FieldError>> {
        if errors.is_empty() {
            Ok(())
        } else {
            Err(errors)
        }
    }
}

impl fmt::Display for FieldError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.path.is_empty() {
            f.write_str(&self.message)
        } else {
            write!(f, "{}: {}", self.path, self.message)
        }
    }
}

/// A configuration type that knows how to diff and validate itself field by field.
///
/// Derive it with `#[derive(DynamicConfig)]`; implement it by hand only for unusual types.
pub trait DynamicConfig {
    /// Every field of this struct, in declaration order.
    const FIELDS: &'static [FieldInfo];

    /// Appends the changes from `self` (running) to `new` (candidate) to `out`.
    fn diff_into(&self, new: &Self, ctx: DiffContext<'_>, out: &mut Vec<ConfigChange>);

    /// Appends validation failures to `out`, with paths under `ctx.prefix`.
    ///
    /// The derive calls the function named by `#[config(validate = "path")]`, then validates
    /// nested fields.
    fn validate_into(&self, _prefix: Option<&str>, _out: &mut Vec<FieldError>) {}

    /// Redacts the sensitive and `Secret` fields of this type's serde form in place (what
    /// `GET /admin/config` shows). The derive also recurses into `nested` fields.
    fn redact_json(json: &mut Value) {
        __private::redact_fields(json, Self::FIELDS);
    }

    /// Whether the field at `path` (segments relative to this type, map keys included) is
    /// sensitive or secret, or lies inside one. Used to keep values out of error messages.
    fn is_sensitive_path(path: &[&str]) -> bool {
        __private::sensitive_field(path, Self::FIELDS)
    }

    /// The changes from `self` (running) to `new` (candidate).
    fn diff(&self, new: &Self) -> Vec<ConfigChange> {
        let mut out = Vec::new();
        self.diff_into(new, DiffContext::ROOT, &mut out);
        out
    }

    /// Every validation failure of this value.
    fn validate(&self) -> Result<(), Vec<FieldError>> {
        let mut out = Vec::new();
        self.validate_into(None, &mut out);
        if out.is_empty() { Ok(()) } else { Err(out) }
    }
}

/// Where a diff is taking place: the path prefix and flags inherited from enclosing fields.
#[derive(Clone, Copy, Debug, Default)]
pub struct DiffContext<'a> {
    /// Dotted path of the enclosing field, `None` at the root of a section.
    pub prefix: Option<&'a str>,
    /// An enclosing field is dynamic, so every field below is.
    pub dynamic: bool,
    /// An enclosing field is sensitive, so every field below is.
    pub sensitive: bool,
}

impl DiffContext<'_> {
    /// The root of a section.
    pub const ROOT: DiffContext<'static> = DiffContext {
        prefix: None,
        dynamic: false,
        sensitive: false,
    };

    /// The full path of a field named `name` here.
    pub fn path(&self, name: &'static str) -> Cow<'static, str> {
        match self.prefix {
            None => Cow::Borrowed(name),
            Some(prefix) => Cow::Owned(join(prefix, name)),
        }
    }
}

fn join(prefix: &str, name: &str) -> String {
    let mut path = String::with_capacity(prefix.len() + 1 + name.len());
    path.push_str(prefix);
    path.push('.');
    path.push_str(name);
    path
}

/// Added, modified or removed.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ChangeType {
    /// The value did not exist and now does (a map entry, an `Option` that became `Some`).
    Added,
    /// The value changed.
    Modified,
    /// The value existed and now does not.
    Removed,
}

impl ChangeType {
    /// The change that undoes this one.
    pub fn inverse(self) -> Self {
        match self {
            Self::Added => Self::Removed,
            Self::Modified => Self::Modified,
            Self::Removed => Self::Added,
        }
    }

    /// `added`, `modified` or `removed`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Added => "added",
            Self::Modified => "modified",
            Self::Removed => "removed",
        }
    }
}

/// One changed field.
///
/// A `sensitive` change keeps its values for the module ([`ConfigChange::new_as`]) but shows
/// `[REDACTED] (fp:…)` in `Debug`, `Display` and `Serialize`. A `Secret<T>` field's change
/// carries only fingerprints: read the new secret from the typed section. A change whose value
/// is a whole config type (a field of a type that derives `DynamicConfig`, an added map entry)
/// is shown with that type's sensitive fields redacted, and read in full through the accessors.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Clone)]
pub struct ConfigChange {
    /// The config section (the module name); empty until the reload pipeline sets it.
    pub section: Cow<'static, str>,
    /// Dotted path relative to the section, in serde names.
    pub field_path: Cow<'static, str>,
    /// Added, modified or removed.
    pub change_type: ChangeType,
    /// The running value (`null` when added).
    pub old_value: Value,
    /// The candidate value (`null` when removed).
    pub new_value: Value,
    /// Reloadable without a restart.
    pub dynamic: bool,
    /// Redacted when shown.
    pub sensitive: bool,
    /// The values are fingerprints of a `Secret<T>`, never the secret.
    // Not serialized (`sensitive` shows `sensitive || secret`).
    #[cfg_attr(feature = "openapi", schema(ignore))]
    pub secret: bool,
    /// Redacts the sensitive parts of a value before it is shown (the value's config type's
    /// `redact_json`), when the value is a config type or a list of them.
    #[cfg_attr(feature = "openapi", schema(ignore))]
    pub(crate) redact: Option<Redactor>,
}

/// Redacts a value's sensitive parts in place.
pub(crate) type Redactor = fn(&mut Value);

// The redactor only decides how a value is shown; two changes with the same values are equal.
impl PartialEq for ConfigChange {
    fn eq(&self, other: &Self) -> bool {
        self.section == other.section
            && self.field_path == other.field_path
            && self.change_type == other.change_type
            && self.old_value == other.old_value
            && self.new_value == other.new_value
            && self.dynamic == other.dynamic
            && self.sensitive == other.sensitive
            && self.secret == other.secret
    }
}

impl ConfigChange {
    /// The new value as `T` (`None` when removed or of another shape).
    pub fn new_as<T: DeserializeOwned>(&self) -> Option<T> {
        if self.secret || (self.new_value.is_null() && self.change_type == ChangeType::Removed) {
            return None;
        }
        serde_json::from_value(self.new_value.clone()).ok()
    }

    /// The old value as `T` (`None` when added or of another shape).
    pub fn old_as<T: DeserializeOwned>(&self) -> Option<T> {
        if self.secret || (self.old_value.is_null() && self.change_type == ChangeType::Added) {
            return None;
        }
        serde_json::from_value(self.old_value.clone()).ok()
    }

    /// `section.field_path`, or the field path alone when the section is unset.
    pub fn full_path(&self) -> String {
        if self.section.is_empty() {
            self.field_path.to_string()
        } else {
            join(&self.section, &self.field_path)
        }
    }

    /// The change that undoes this one.
    pub fn inverse(&self) -> Self {
        Self {
            section: self.section.clone(),
            field_path: self.field_path.clone(),
            change_type: self.change_type.inverse(),
            old_value: self.new_value.clone(),
            new_value: self.old_value.clone(),
            dynamic: self.dynamic,
            sensitive: self.sensitive,
            secret: self.secret,
            redact: self.redact,
        }
    }

    /// Whether `field_path` is `prefix` or lies below it.
    pub fn is_under(&self, prefix: &str) -> bool {
        let path: &str = &self.field_path;
        prefix.is_empty()
            || path == prefix
            || (path.starts_with(prefix) && path.as_bytes().get(prefix.len()) == Some(&b'.'))
    }

    /// The old value as it may be shown (redacted when sensitive).
    pub fn display_old(&self) -> Value {
        self.shown(&self.old_value)
    }

    /// The new value as it may be shown (redacted when sensitive).
    pub fn display_new(&self) -> Value {
        self.shown(&self.new_value)
    }

    fn shown(&self, value: &Value) -> Value {
        if value.is_null() {
            return Value::Null;
        }
        if self.secret {
            // Already a fingerprint.
            let fp = value.as_str().unwrap_or_default();
            return Value::String(redacted_with_fingerprint(fp));
        }
        if self.sensitive {
            return Value::String(redacted_with_fingerprint(&fingerprint_json(value)));
        }
        let mut shown = value.clone();
        if let Some(redact) = self.redact {
            redact(&mut shown);
        }
        shown
    }
}

impl fmt::Debug for ConfigChange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ConfigChange")
            .field("section", &self.section)
            .field("field_path", &self.field_path)
            .field("change_type", &self.change_type)
            .field("old_value", &self.display_old())
            .field("new_value", &self.display_new())
            .field("dynamic", &self.dynamic)
            .field("sensitive", &self.sensitive)
            .finish()
    }
}

impl fmt::Display for ConfigChange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let path = self.full_path();
        match self.change_type {
            ChangeType::Added => write!(f, "{path} added: {}", self.display_new()),
            ChangeType::Removed => write!(f, "{path} removed (was {})", self.display_old()),
            ChangeType::Modified => {
                write!(
                    f,
                    "{path}: {} -> {}",
                    self.display_old(),
                    self.display_new()
                )
            }
        }
    }
}

impl Serialize for ConfigChange {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct;
        let mut s = serializer.serialize_struct("ConfigChange", 7)?;
        s.serialize_field("section", &self.section)?;
        s.serialize_field("field_path", &self.field_path)?;
        s.serialize_field("change_type", &self.change_type)?;
        s.serialize_field("old_value", &self.display_old())?;
        s.serialize_field("new_value", &self.display_new())?;
        s.serialize_field("dynamic", &self.dynamic)?;
        s.serialize_field("sensitive", &(self.sensitive || self.secret))?;
        s.end()
    }
}

/// A set of changes with an id, as one reload sees them.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ConfigDiff {
    /// UUIDv7 of this diff; reload events carry it.
    pub diff_id: uuid::Uuid,
    /// The changes, section by section in the order they were diffed.
    pub changes: Vec<ConfigChange>,
}

impl Default for ConfigDiff {
    fn default() -> Self {
        Self::new(Vec::new())
    }
}

impl ConfigDiff {
    /// A diff with a fresh id.
    pub fn new(changes: Vec<ConfigChange>) -> Self {
        Self {
            diff_id: uuid::Uuid::now_v7(),
            changes,
        }
    }

    /// Whether anything changed.
    pub fn has_changes(&self) -> bool {
        !self.changes.is_empty()
    }

    /// Number of changes.
    pub fn len(&self) -> usize {
        self.changes.len()
    }

    /// Whether the diff is empty.
    pub fn is_empty(&self) -> bool {
        self.changes.is_empty()
    }

    /// `"1 added, 2 modified"`; `"no changes"` when empty.
    pub fn summary(&self) -> String {
        let mut counts = [0usize; 3];
        for change in &self.changes {
            counts[match change.change_type {
                ChangeType::Added => 0,
                ChangeType::Modified => 1,
                ChangeType::Removed => 2,
            }] += 1;
        }
        let parts: Vec<String> = [
            ("added", counts[0]),
            ("modified", counts[1]),
            ("removed", counts[2]),
        ]
        .into_iter()
        .filter(|(_, n)| *n > 0)
        .map(|(word, n)| format!("{n} {word}"))
        .collect();
        if parts.is_empty() {
            "no changes".to_owned()
        } else {
            parts.join(", ")
        }
    }

    /// Changes to fields that are not dynamic (a restart is needed to apply them).
    pub fn static_changes(&self) -> Vec<&ConfigChange> {
        self.changes.iter().filter(|c| !c.dynamic).collect()
    }

    /// Changes to dynamic fields.
    pub fn dynamic_changes(&self) -> Vec<&ConfigChange> {
        self.changes.iter().filter(|c| c.dynamic).collect()
    }

    /// Changes whose `section.field_path` is `prefix` or lies below it
    /// (`filter_prefix("database.pool")`, `filter_prefix("cache")`).
    pub fn filter_prefix(&self, prefix: &str) -> ConfigDiff {
        ConfigDiff {
            diff_id: self.diff_id,
            changes: self
                .changes
                .iter()
                .filter(|c| {
                    let full = c.full_path();
                    prefix.is_empty()
                        || full == prefix
                        || (full.starts_with(prefix)
                            && full.as_bytes().get(prefix.len()) == Some(&b'.'))
                })
                .cloned()
                .collect(),
        }
    }

    /// Changes of one section.
    pub fn section(&self, section: &str) -> Vec<&ConfigChange> {
        self.changes
            .iter()
            .filter(|c| c.section == section)
            .collect()
    }

    /// The diff that undoes this one: same id, each change inverted, in the same order.
    ///
    /// The changes of one derived diff touch disjoint paths, so their order does not matter
    /// when applying them; keeping it makes `diff(a, b).inverse()` list exactly the changes of
    /// `diff(b, a)`.
    pub fn inverse(&self) -> ConfigDiff {
        ConfigDiff {
            diff_id: self.diff_id,
            changes: self.changes.iter().map(ConfigChange::inverse).collect(),
        }
    }
}

/// Applies changes to a JSON tree (the serde form of a section): sets modified and added
/// values, removes removed ones. Secret changes cannot be applied (they carry fingerprints)
/// and are skipped. Keys that contain `.` are not addressable this way.
pub fn apply_changes(target: &mut Value, changes: &[ConfigChange]) {
    for change in changes.iter().filter(|c| !c.secret) {
        let mut segments: Vec<&str> = change.field_path.split('.').collect();
        let Some(last) = segments.pop() else { continue };
        let mut node = &mut *target;
        for segment in segments {
            if !node.is_object() {
                *node = Value::Object(serde_json::Map::new());
            }
            let Value::Object(map) = node else {
                unreachable!("made an object above")
            };
            node = map.entry(segment.to_owned()).or_insert(Value::Null);
        }
        if !node.is_object() {
            *node = Value::Object(serde_json::Map::new());
        }
        let Value::Object(map) = node else {
            unreachable!("made an object above")
        };
        match change.change_type {
            ChangeType::Removed => {
                // A removed map entry disappears; a removed `Option` disappears too, which
                // serde reads back as `None`.
                map.remove(last);
            }
            ChangeType::Added | ChangeType::Modified => {
                map.insert(last.to_owned(), change.new_value.clone());
            }
        }
    }
}

/// Helpers the derive calls. Not a stable API.
#[doc(hidden)]
pub mod __private {
    use std::borrow::Borrow;
    use std::collections::{BTreeMap, HashMap};
    use std::hash::{BuildHasher, Hash};

    use super::*;
    use crate::config::secret::Secret;

    /// Flags of one field as written on it (the context adds inherited ones).
    #[derive(Clone, Copy, Debug)]
    pub struct Flags {
        pub dynamic: bool,
        pub sensitive: bool,
        /// How a value of this field is redacted when shown ([`Probe::redactor`]).
        pub redact: Option<fn(&mut Value)>,
    }

    #[inline]
    fn change(
        path: Cow<'static, str>,
        change_type: ChangeType,
        old_value: Value,
        new_value: Value,
        flags: Flags,
        ctx: DiffContext<'_>,
        secret: bool,
    ) -> ConfigChange {
        ConfigChange {
            section: Cow::Borrowed(""),
            field_path: path,
            change_type,
            old_value,
            new_value,
            dynamic: flags.dynamic || ctx.dynamic,
            sensitive: flags.sensitive || ctx.sensitive || secret,
            secret,
            redact: flags.redact,
        }
    }

    #[inline]
    fn to_value<T: Serialize + ?Sized>(value: &T) -> Value {
        // Serializing plain config data into a `Value` fails only for maps with non-string
        // keys; such a field is reported as null rather than aborting the diff.
        serde_json::to_value(value).unwrap_or(Value::Null)
    }

    /// A plain field: compared with `PartialEq`, values serialized only when changed.
    #[inline]
    pub fn leaf<T: PartialEq + Serialize>(
        old: &T,
        new: &T,
        name: &'static str,
        flags: Flags,
        ctx: DiffContext<'_>,
        out: &mut Vec<ConfigChange>,
    ) {
        if old != new {
            out.push(change(
                ctx.path(name),
                ChangeType::Modified,
                to_value(old),
                to_value(new),
                flags,
                ctx,
                false,
            ));
        }
    }

    /// The serde_json value serializer, for generated code: `serialize(value, JsonSerializer)`
    /// gives a field's serde form through its `#[serde(with)]` / `serialize_with` function.
    pub use serde_json::value::Serializer as JsonSerializer;

    /// The value a serialize function produced (null if it failed, as the other fields' values are).
    #[inline]
    pub fn json_form(result: Result<Value, serde_json::Error>) -> Value {
        result.unwrap_or(Value::Null)
    }

    /// A field serde serializes through a function (`#[serde(with)]`, `serialize_with`):
    /// compared whole with `PartialEq`, values in that function's serde form.
    #[inline]
    pub fn leaf_as<T: PartialEq>(
        old: &T,
        new: &T,
        name: &'static str,
        flags: Flags,
        ctx: DiffContext<'_>,
        out: &mut Vec<ConfigChange>,
        serialize: impl Fn(&T) -> Value,
    ) {
        if old != new {
            out.push(change(
                ctx.path(name),
                ChangeType::Modified,
                serialize(old),
                serialize(new),
                flags,
                ctx,
                false,
            ));
        }
    }

    /// An `Option<T>` field serde serializes through a function: added / modified / removed,
    /// values in that function's serde form.
    #[inline]
    pub fn option_as<T: PartialEq>(
        old: &Option<T>,
        new: &Option<T>,
        name: &'static str,
        flags: Flags,
        ctx: DiffContext<'_>,
        out: &mut Vec<ConfigChange>,
        serialize: impl Fn(&Option<T>) -> Value,
    ) {
        let change_type = match (old, new) {
            (None, None) => return,
            (Some(a), Some(b)) if a == b => return,
            (None, Some(_)) => ChangeType::Added,
            (Some(_), None) => ChangeType::Removed,
            (Some(_), Some(_)) => ChangeType::Modified,
        };
        let (o, n) = match change_type {
            ChangeType::Added => (Value::Null, serialize(new)),
            ChangeType::Removed => (serialize(old), Value::Null),
            ChangeType::Modified => (serialize(old), serialize(new)),
        };
        out.push(change(ctx.path(name), change_type, o, n, flags, ctx, false));
    }

    /// A `Secret<T>` field: only fingerprints are recorded.
    #[inline]
    pub fn secret<T: PartialEq + Hash>(
        old: &Secret<T>,
        new: &Secret<T>,
        name: &'static str,
        flags: Flags,
        ctx: DiffContext<'_>,
        out: &mut Vec<ConfigChange>,
    ) {
        if old != new {
            out.push(change(
                ctx.path(name),
                ChangeType::Modified,
                Value::String(old.fingerprint()),
                Value::String(new.fingerprint()),
                flags,
                ctx,
                true,
            ));
        }
    }

    /// An `Option<Secret<T>>` field.
    pub fn option_secret<T: PartialEq + Hash>(
        old: &Option<Secret<T>>,
        new: &Option<Secret<T>>,
        name: &'static str,
        flags: Flags,
        ctx: DiffContext<'_>,
        out: &mut Vec<ConfigChange>,
    ) {
        let (change_type, o, n) = match (old, new) {
            (None, None) => return,
            (Some(a), Some(b)) if a == b => return,
            (None, Some(b)) => (
                ChangeType::Added,
                Value::Null,
                Value::String(b.fingerprint()),
            ),
            (Some(a), None) => (
                ChangeType::Removed,
                Value::String(a.fingerprint()),
                Value::Null,
            ),
            (Some(a), Some(b)) => (
                ChangeType::Modified,
                Value::String(a.fingerprint()),
                Value::String(b.fingerprint()),
            ),
        };
        out.push(change(ctx.path(name), change_type, o, n, flags, ctx, true));
    }

    /// An `Option<T>` field: `None` to `Some` is added, `Some` to `None` removed.
    #[inline]
    pub fn option<T: PartialEq + Serialize>(
        old: &Option<T>,
        new: &Option<T>,
        name: &'static str,
        flags: Flags,
        ctx: DiffContext<'_>,
        out: &mut Vec<ConfigChange>,
    ) {
        let change_type = match (old, new) {
            (None, None) => return,
            (Some(a), Some(b)) if a == b => return,
            (None, Some(_)) => ChangeType::Added,
            (Some(_), None) => ChangeType::Removed,
            (Some(_), Some(_)) => ChangeType::Modified,
        };
        out.push(change(
            ctx.path(name),
            change_type,
            to_value(old),
            to_value(new),
            flags,
            ctx,
            false,
        ));
    }

    /// A `#[config(nested)]` field: diffed field by field under `name.`.
    #[inline]
    pub fn nested<T: DynamicConfig>(
        old: &T,
        new: &T,
        name: &'static str,
        flags: Flags,
        ctx: DiffContext<'_>,
        out: &mut Vec<ConfigChange>,
    ) {
        let path = ctx.path(name);
        old.diff_into(
            new,
            DiffContext {
                prefix: Some(&path),
                dynamic: ctx.dynamic || flags.dynamic,
                sensitive: ctx.sensitive || flags.sensitive,
            },
            out,
        );
    }

    /// A `#[config(nested)]` `Option<T>`: added/removed as a whole, diffed inside when both set.
    pub fn option_nested<T: DynamicConfig + PartialEq + Serialize>(
        old: &Option<T>,
        new: &Option<T>,
        name: &'static str,
        flags: Flags,
        ctx: DiffContext<'_>,
        out: &mut Vec<ConfigChange>,
    ) {
        match (old, new) {
            (Some(a), Some(b)) => nested(a, b, name, flags, ctx, out),
            _ => option(
                old,
                new,
                name,
                Flags {
                    redact: Some(redact_value::<T>),
                    ..flags
                },
                ctx,
                out,
            ),
        }
    }

    /// A map keyed by strings, read in sorted key order so diffs are deterministic.
    pub trait StringKeyedMap {
        /// The value type.
        type Value;
        /// Keys in ascending order.
        fn sorted_keys(&self) -> Vec<&str>;
        /// The value under a key.
        fn get_str(&self, key: &str) -> Option<&Self::Value>;
    }

    impl<K: Borrow<str> + Hash + Eq, V, S: BuildHasher> StringKeyedMap for HashMap<K, V, S> {
        type Value = V;
        fn sorted_keys(&self) -> Vec<&str> {
            let mut keys: Vec<&str> = self.keys().map(Borrow::borrow).collect();
            keys.sort_unstable();
            keys
        }
        fn get_str(&self, key: &str) -> Option<&V> {
            self.get(key)
        }
    }

    impl<K: Borrow<str> + Ord, V> StringKeyedMap for BTreeMap<K, V> {
        type Value = V;
        fn sorted_keys(&self) -> Vec<&str> {
            self.keys().map(Borrow::borrow).collect()
        }
        fn get_str(&self, key: &str) -> Option<&V> {
            self.get(key)
        }
    }

    fn union_keys<'a, M: StringKeyedMap>(old: &'a M, new: &'a M) -> Vec<&'a str> {
        let mut keys = old.sorted_keys();
        keys.extend(new.sorted_keys());
        keys.sort_unstable();
        keys.dedup();
        keys
    }

    fn entry_path(ctx: DiffContext<'_>, name: &'static str, key: &str) -> String {
        join(&ctx.path(name), key)
    }

    /// A map of plain values: one change per added, removed or modified entry.
    pub fn map<M>(
        old: &M,
        new: &M,
        name: &'static str,
        flags: Flags,
        ctx: DiffContext<'_>,
        out: &mut Vec<ConfigChange>,
    ) where
        M: StringKeyedMap + PartialEq,
        M::Value: PartialEq + Serialize,
    {
        if old == new {
            return;
        }
        for key in union_keys(old, new) {
            let (change_type, o, n) = match (old.get_str(key), new.get_str(key)) {
                (Some(a), Some(b)) if a == b => continue,
                (Some(a), Some(b)) => (ChangeType::Modified, to_value(a), to_value(b)),
                (None, Some(b)) => (ChangeType::Added, Value::Null, to_value(b)),
                (Some(a), None) => (ChangeType::Removed, to_value(a), Value::Null),
                (None, None) => continue,
            };
            out.push(change(
                Cow::Owned(entry_path(ctx, name, key)),
                change_type,
                o,
                n,
                flags,
                ctx,
                false,
            ));
        }
    }

    /// A `#[config(nested)]` map: entries added/removed whole, modified entries diffed inside
    /// (`connections.replica.max_conns`).
    pub fn map_nested<M>(
        old: &M,
        new: &M,
        name: &'static str,
        flags: Flags,
        ctx: DiffContext<'_>,
        out: &mut Vec<ConfigChange>,
    ) where
        M: StringKeyedMap + PartialEq,
        M::Value: DynamicConfig + PartialEq + Serialize,
    {
        if old == new {
            return;
        }
        // An entry added or removed whole is shown with its type's sensitive fields redacted.
        let flags = Flags {
            redact: Some(redact_value::<M::Value>),
            ..flags
        };
        for key in union_keys(old, new) {
            // The entry path is built only for entries that changed.
            match (old.get_str(key), new.get_str(key)) {
                (Some(a), Some(b)) if a == b => {}
                (Some(a), Some(b)) => a.diff_into(
                    b,
                    DiffContext {
                        prefix: Some(&entry_path(ctx, name, key)),
                        dynamic: ctx.dynamic || flags.dynamic,
                        sensitive: ctx.sensitive || flags.sensitive,
                    },
                    out,
                ),
                (None, Some(b)) => {
                    let path = Cow::Owned(entry_path(ctx, name, key));
                    out.push(change(
                        path,
                        ChangeType::Added,
                        Value::Null,
                        to_value(b),
                        flags,
                        ctx,
                        false,
                    ))
                }
                (Some(a), None) => {
                    let path = Cow::Owned(entry_path(ctx, name, key));
                    out.push(change(
                        path,
                        ChangeType::Removed,
                        to_value(a),
                        Value::Null,
                        flags,
                        ctx,
                        false,
                    ))
                }
                (None, None) => {}
            }
        }
    }

    /// Validates a nested field under `prefix.name`.
    pub fn validate_nested<T: DynamicConfig>(
        value: &T,
        name: &'static str,
        prefix: Option<&str>,
        out: &mut Vec<FieldError>,
    ) {
        let path = match prefix {
            None => name.to_owned(),
            Some(p) => join(p, name),
        };
        value.validate_into(Some(&path), out);
    }

    /// Validates an optional nested field.
    pub fn validate_option_nested<T: DynamicConfig>(
        value: &Option<T>,
        name: &'static str,
        prefix: Option<&str>,
        out: &mut Vec<FieldError>,
    ) {
        if let Some(value) = value {
            validate_nested(value, name, prefix, out);
        }
    }

    /// Validates every entry of a nested map under `prefix.name.key`.
    pub fn validate_map_nested<M>(
        value: &M,
        name: &'static str,
        prefix: Option<&str>,
        out: &mut Vec<FieldError>,
    ) where
        M: StringKeyedMap,
        M::Value: DynamicConfig,
    {
        let base = match prefix {
            None => name.to_owned(),
            Some(p) => join(p, name),
        };
        for key in value.sorted_keys() {
            if let Some(entry) = value.get_str(key) {
                entry.validate_into(Some(&join(&base, key)), out);
            }
        }
    }

    /// Runs a user validation hook and prefixes its paths.
    pub fn validate_hook(
        result: Result<(), Vec<FieldError>>,
        prefix: Option<&str>,
        out: &mut Vec<FieldError>,
    ) {
        if let Err(errors) = result {
            out.extend(errors.into_iter().map(|mut e| {
                if let Some(p) = prefix {
                    e.path = if e.path.is_empty() {
                        p.to_owned()
                    } else {
                        join(p, &e.path)
                    };
                }
                e
            }));
        }
    }

    /// Replaces every sensitive or secret field of `json` (an object) with `[REDACTED]`.
    pub fn redact_fields(json: &mut Value, fields: &[FieldInfo]) {
        let Value::Object(map) = json else { return };
        for field in fields.iter().filter(|f| f.sensitive || f.secret) {
            if let Some(slot) = map.get_mut(field.name)
                && !slot.is_null()
            {
                *slot = Value::String(REDACTED.to_owned());
            }
        }
    }

    /// Whether the first segment of `path` names a sensitive or secret field.
    pub fn sensitive_field(path: &[&str], fields: &[FieldInfo]) -> bool {
        path.first().is_some_and(|first| {
            fields
                .iter()
                .any(|f| f.name == *first && (f.sensitive || f.secret))
        })
    }

    /// Whether `path` lies in a sensitive part of nested field `name` of type `T`.
    pub fn sensitive_nested<T: DynamicConfig>(path: &[&str], name: &str) -> bool {
        path.first() == Some(&name) && T::is_sensitive_path(&path[1..])
    }

    /// Whether `path` lies in a sensitive part of an entry of nested map field `name`.
    pub fn sensitive_map_nested<T: DynamicConfig>(path: &[&str], name: &str) -> bool {
        path.first() == Some(&name) && path.len() > 2 && T::is_sensitive_path(&path[2..])
    }

    /// Redacts inside a nested (or optional nested) field.
    pub fn redact_nested<T: DynamicConfig>(json: &mut Value, name: &str) {
        if let Some(inner) = json.get_mut(name)
            && inner.is_object()
        {
            T::redact_json(inner);
        }
    }

    /// Redacts inside every entry of a nested map field.
    pub fn redact_map_nested<T: DynamicConfig>(json: &mut Value, name: &str) {
        if let Some(Value::Object(entries)) = json.get_mut(name) {
            for entry in entries.values_mut() {
                if entry.is_object() {
                    T::redact_json(entry);
                }
            }
        }
    }

    /// Redacts `value` by `T`'s rules when it is an object (a `T`'s serde form).
    pub fn redact_value<T: DynamicConfig>(value: &mut Value) {
        if value.is_object() {
            T::redact_json(value);
        }
    }

    /// Redacts every element of `value` (a list of `T`) by `T`'s rules.
    pub fn redact_elements<T: DynamicConfig>(value: &mut Value) {
        if let Value::Array(items) = value {
            items.iter_mut().for_each(redact_value::<T>);
        }
    }

    /// Asks, at compile time, whether a field's type `T` derives `DynamicConfig`, so a field
    /// is redacted by its type's rules whether or not it is marked `nested`.
    ///
    /// Generated code calls `(&Probe::<T>::new()).method(..)` with both [`ProbeConfig`] and
    /// [`ProbePlain`] in scope. Method resolution tries the receiver `&Probe<T>` first, where
    /// only `ProbeConfig` applies, and only when `T: DynamicConfig`; otherwise it autorefs to
    /// `&&Probe<T>` and finds `ProbePlain`, whose methods do nothing. (For a generic `T` without
    /// a `DynamicConfig` bound, the plain methods are chosen.)
    pub struct Probe<T>(std::marker::PhantomData<fn() -> T>);

    impl<T> Probe<T> {
        /// The probe of `T`.
        #[inline(always)]
        pub const fn new() -> Self {
            Self(std::marker::PhantomData)
        }
    }

    impl<T> fmt::Debug for Probe<T> {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            write!(f, "Probe<{}>", std::any::type_name::<T>())
        }
    }

    impl<T> Default for Probe<T> {
        fn default() -> Self {
            Self::new()
        }
    }

    /// The probe's answers for a type that derives `DynamicConfig`.
    pub trait ProbeConfig {
        /// Redacts a value of the type.
        fn redactor(&self) -> Option<fn(&mut Value)>;
        /// Redacts a list of values of the type.
        fn elements_redactor(&self) -> Option<fn(&mut Value)>;
        /// Redacts `json[name]`, a value of the type.
        fn redact_field(&self, json: &mut Value, name: &str);
        /// Redacts every entry of `json[name]`, a map or a list of values of the type.
        fn redact_entries(&self, json: &mut Value, name: &str);
        /// Whether `path` lies in a sensitive part of field `name`, a value of the type.
        fn sensitive_field(&self, path: &[&str], name: &str) -> bool;
        /// Whether `path` lies in a sensitive part of an entry of field `name`, a map or a
        /// list of values of the type.
        fn sensitive_entries(&self, path: &[&str], name: &str) -> bool;
    }

    impl<T: DynamicConfig> ProbeConfig for Probe<T> {
        #[inline(always)]
        fn redactor(&self) -> Option<fn(&mut Value)> {
            Some(redact_value::<T>)
        }
        #[inline(always)]
        fn elements_redactor(&self) -> Option<fn(&mut Value)> {
            Some(redact_elements::<T>)
        }
        fn redact_field(&self, json: &mut Value, name: &str) {
            if let Some(inner) = json.get_mut(name) {
                redact_value::<T>(inner);
            }
        }
        fn redact_entries(&self, json: &mut Value, name: &str) {
            match json.get_mut(name) {
                Some(Value::Object(entries)) => entries.values_mut().for_each(redact_value::<T>),
                Some(list @ Value::Array(_)) => redact_elements::<T>(list),
                _ => {}
            }
        }
        fn sensitive_field(&self, path: &[&str], name: &str) -> bool {
            sensitive_nested::<T>(path, name)
        }
        fn sensitive_entries(&self, path: &[&str], name: &str) -> bool {
            sensitive_map_nested::<T>(path, name)
        }
    }

    /// The probe's answers for any other type: nothing to redact.
    pub trait ProbePlain {
        /// `None`.
        fn redactor(&self) -> Option<fn(&mut Value)> {
            None
        }
        /// `None`.
        fn elements_redactor(&self) -> Option<fn(&mut Value)> {
            None
        }
        /// Nothing.
        fn redact_field(&self, _json: &mut Value, _name: &str) {}
        /// Nothing.
        fn redact_entries(&self, _json: &mut Value, _name: &str) {}
        /// `false`.
        fn sensitive_field(&self, _path: &[&str], _name: &str) -> bool {
            false
        }
        /// `false`.
        fn sensitive_entries(&self, _path: &[&str], _name: &str) -> bool {
            false
        }
    }

    impl<T> ProbePlain for &Probe<T> {}

    /// A field's value, for the compile-time check of durations: `Duration` fields (alone, in
    /// an `Option`, a `Vec` or a map) are checked against [`MAX_DURATION`], any other type
    /// passes. Same autoref technique as [`Probe`]: generated code calls
    /// `(&Bounded(&self.field)).check_bounds(..)` with [`BoundedDuration`] and [`BoundedPlain`]
    /// in scope.
    #[derive(Debug)]
    pub struct Bounded<'a, T>(pub &'a T);

    /// Checks the durations of a field that holds some.
    pub trait BoundedDuration {
        /// Appends an error for every duration above [`MAX_DURATION`].
        fn check_bounds(&self, name: &'static str, prefix: Option<&str>, out: &mut Vec<FieldError>);
    }

    /// Nothing to check for a field without durations.
    pub trait BoundedPlain {
        /// Nothing.
        #[inline(always)]
        fn check_bounds(
            &self,
            _name: &'static str,
            _prefix: Option<&str>,
            _out: &mut Vec<FieldError>,
        ) {
        }
    }

    impl<T> BoundedPlain for &Bounded<'_, T> {}

    fn check_duration(
        value: &std::time::Duration,
        path: impl FnOnce() -> String,
        out: &mut Vec<FieldError>,
    ) {
        if *value > MAX_DURATION {
            out.push(FieldError::new(
                path(),
                format!(
                    "must be at most {}, got {}",
                    humantime_serde::re::humantime::format_duration(MAX_DURATION),
                    humantime_serde::re::humantime::format_duration(*value)
                ),
            ));
        }
    }

    fn field_path(prefix: Option<&str>, name: &str) -> String {
        match prefix {
            None => name.to_owned(),
            Some(p) => join(p, name),
        }
    }

    impl BoundedDuration for Bounded<'_, std::time::Duration> {
        fn check_bounds(
            &self,
            name: &'static str,
            prefix: Option<&str>,
            out: &mut Vec<FieldError>,
        ) {
            check_duration(self.0, || field_path(prefix, name), out);
        }
    }

    impl BoundedDuration for Bounded<'_, Option<std::time::Duration>> {
        fn check_bounds(
            &self,
            name: &'static str,
            prefix: Option<&str>,
            out: &mut Vec<FieldError>,
        ) {
            if let Some(value) = self.0 {
                check_duration(value, || field_path(prefix, name), out);
            }
        }
    }

    impl BoundedDuration for Bounded<'_, Vec<std::time::Duration>> {
        fn check_bounds(
            &self,
            name: &'static str,
            prefix: Option<&str>,
            out: &mut Vec<FieldError>,
        ) {
            for (i, value) in self.0.iter().enumerate() {
                check_duration(
                    value,
                    || join(&field_path(prefix, name), &i.to_string()),
                    out,
                );
            }
        }
    }

    impl<K: Borrow<str> + Hash + Eq, S: BuildHasher> BoundedDuration
        for Bounded<'_, HashMap<K, std::time::Duration, S>>
    {
        fn check_bounds(
            &self,
            name: &'static str,
            prefix: Option<&str>,
            out: &mut Vec<FieldError>,
        ) {
            for key in self.0.sorted_keys() {
                if let Some(value) = self.0.get_str(key) {
                    check_duration(value, || join(&field_path(prefix, name), key), out);
                }
            }
        }
    }

    impl<K: Borrow<str> + Ord> BoundedDuration for Bounded<'_, BTreeMap<K, std::time::Duration>> {
        fn check_bounds(
            &self,
            name: &'static str,
            prefix: Option<&str>,
            out: &mut Vec<FieldError>,
        ) {
            for (key, value) in self.0 {
                check_duration(value, || join(&field_path(prefix, name), key.borrow()), out);
            }
        }
    }

    /// The JSON value type, for generated code (users need not depend on serde_json).
    pub type JsonValue = Value;

    /// What `REDACTED` is, for generated code.
    pub const REDACTED_TEXT: &str = REDACTED;
}
