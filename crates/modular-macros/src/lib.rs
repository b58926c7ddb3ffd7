//! `#[derive(DynamicConfig)]` for modular. Use it through `modular_core::DynamicConfig`, which
//! re-exports it next to the trait it implements (`modular_core::config::DynamicConfig`).
//!
//! The macro's logic is a plain function, `expand::expand(DeriveInput) -> syn::Result<TokenStream>`,
//! unit-tested in this crate; the entry point below is a thin shim over it.
use proc_macro::TokenStream;

mod attr;
mod case;
mod expand;
mod shape;

/// Derives `modular_core::config::DynamicConfig`: a field-by-field diff, a `const` field table
/// and validation.
///
/// ```
/// use std::collections::HashMap;
///
/// use modular_core::config::FieldError;
/// // The derive and the trait share a name, so one import brings both.
/// use modular_core::{DynamicConfig, Secret};
/// use serde::{Deserialize, Serialize};
///
/// #[derive(Clone, Debug, PartialEq, Serialize, Deserialize, DynamicConfig)]
/// #[serde(deny_unknown_fields)]
/// #[config(dynamic)] // every field is reloadable
/// struct ReplicaConfig {
///     max_conns: u32,
/// }
///
/// #[derive(Clone, Debug, PartialEq, Serialize, Deserialize, DynamicConfig)]
/// #[serde(deny_unknown_fields)]
/// #[config(validate = "PoolConfig::check")]
/// struct PoolConfig {
///     url: Secret<String>, // static: a change needs a restart
///     #[config(dynamic)]
///     max_conns: u32,
///     #[config(nested)]
///     connections: HashMap<String, ReplicaConfig>,
/// }
///
/// impl PoolConfig {
///     fn check(&self) -> Result<(), Vec<FieldError>> {
///         if self.max_conns == 0 {
///             return Err(vec![FieldError::new("max_conns", "must be > 0, got 0")]);
///         }
///         Ok(())
///     }
/// }
///
/// let old = PoolConfig {
///     url: Secret::new("postgres://db/app".to_owned()),
///     max_conns: 10,
///     connections: HashMap::from([("replica".to_owned(), ReplicaConfig { max_conns: 5 })]),
/// };
/// let mut new = old.clone();
/// new.connections.get_mut("replica").unwrap().max_conns = 8;
///
/// let changes = old.diff(&new);
/// assert_eq!(changes[0].field_path, "connections.replica.max_conns");
/// assert!(changes[0].dynamic);
/// assert_eq!(changes[0].new_as::<u32>(), Some(8));
/// assert_eq!(PoolConfig::FIELDS[0].name, "url");
/// assert!(PoolConfig::FIELDS[0].secret);
/// ```
///
/// # Attributes
///
/// On a field, inside `#[config(..)]`:
/// - `dynamic`: reloadable at runtime; a change to any other field needs a restart.
/// - `sensitive`: the values are redacted (`[REDACTED]` plus a fingerprint) wherever a change
///   is shown, and stay readable through `ConfigChange::new_as`.
/// - `nested`: the field's type derives `DynamicConfig` too and is diffed field by field
///   (`retry.max_attempts`). Works on `T`, `Option<T>` and string-keyed `HashMap`/`BTreeMap`
///   values (`connections.replica.max_conns`).
///
/// On the struct: `#[config(dynamic)]` makes every field dynamic, and
/// `#[config(validate = "path::to::check")]` names a `fn(&Self) -> Result<(), Vec<FieldError>>`
/// that `validate()` runs before validating nested fields, with their paths prefixed.
///
/// # How fields are diffed
///
/// The helper is chosen from the field type's last path segment: `Secret<T>` and
/// `Option<Secret<T>>` report fingerprints only; `Option<T>` reports added / modified / removed;
/// `HashMap` / `BTreeMap` one change per entry; anything else (including `Vec<T>`) is compared
/// as a whole. Paths are serde names: `#[serde(rename)]` and `#[serde(rename_all)]` are honoured,
/// `#[serde(skip)]` fields are left out, and `#[serde(flatten)]` is rejected.
///
/// A change's values are the field's serde form: a field with `#[serde(with = "m")]` or
/// `#[serde(serialize_with = "f")]` is serialized through `m::serialize` / `f` (a
/// `humantime_serde` duration shows as `"10s"`), and is compared and reported whole (such a map
/// yields one change for the field, not one per entry).
///
/// A field whose type derives `DynamicConfig` is redacted by that type's rules (its
/// `sensitive` and `Secret` fields show `[REDACTED]`) whether or not it is marked `nested`:
/// as a whole, in an `Option`, as a map's values or a `Vec`'s items. The derive finds out at
/// compile time (autoref specialization), so plain types cost nothing.
///
/// Every field type needs `PartialEq` and `Serialize` (a nested one `PartialEq` and
/// `DynamicConfig`). An enum, a union, a tuple struct, an unknown flag, or `nested` on a type
/// that does not implement `DynamicConfig` is a compile error pointing at the offending token.
#[proc_macro_derive(DynamicConfig, attributes(config))]
pub fn derive_dynamic_config(input: TokenStream) -> TokenStream {
    let input = syn::parse_macro_input!(input as syn::DeriveInput);
    expand::expand(input)
        .unwrap_or_else(syn::Error::into_compile_error)
        .into()
}
