//! [`Secret<T>`]: a value that never prints, logs or serializes itself.

use std::fmt;
use std::hash::{BuildHasher, Hash};
use std::sync::OnceLock;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// What every redacted value shows instead of itself.
pub const REDACTED: &str = "[REDACTED]";

/// A URL query with every value replaced by [`REDACTED`] and the keys kept, for logs, spans
/// and errors: queries often carry tokens (`access_token=..&page=2` becomes
/// `access_token=[REDACTED]&page=[REDACTED]`). A pair without `=` is a bare key and kept.
///
/// ```
/// assert_eq!(
///     modular_core::config::redact_query("token=abc&page=2&flag"),
///     "token=[REDACTED]&page=[REDACTED]&flag"
/// );
/// ```
pub fn redact_query(query: &str) -> String {
    RedactedQuery(query).to_string()
}

/// [`redact_query`] as a `Display` value: written on demand, so a log field or span field
/// that is disabled costs nothing.
#[derive(Clone, Copy, Debug)]
pub struct RedactedQuery<'a>(pub &'a str);

impl std::fmt::Display for RedactedQuery<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for (i, pair) in self.0.split('&').enumerate() {
            if i > 0 {
                f.write_str("&")?;
            }
            match pair.split_once('=') {
                Some((key, _)) => write!(f, "{key}={REDACTED}")?,
                None => f.write_str(pair)?,
            }
        }
        Ok(())
    }
}

/// A configuration value that must never be shown: `Debug`, `Display` and `Serialize` all
/// produce `[REDACTED]`, and a diff of a secret carries only fingerprints.
///
/// Read the value with [`Secret::expose`]; the name makes every read easy to find in review.
///
/// ```
/// use modular_core::Secret;
/// let url: Secret<String> = Secret::new("postgres://app:hunter2@db/app".to_owned());
/// assert_eq!(format!("{url:?}"), "[REDACTED]");
/// assert_eq!(serde_json::to_string(&url).unwrap(), "\"[REDACTED]\"");
/// assert!(url.expose().contains("hunter2"));
/// ```
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Secret<T>(T);

impl<T> Secret<T> {
    /// Wraps a value.
    pub const fn new(value: T) -> Self {
        Self(value)
    }

    /// The secret value itself.
    pub fn expose(&self) -> &T {
        &self.0
    }

    /// Unwraps the secret value.
    pub fn into_inner(self) -> T {
        self.0
    }
}

impl<T: Hash> Secret<T> {
    /// A short keyed fingerprint: equal values give equal fingerprints within this process,
    /// so "changed" is visible, while the key is random per process so fingerprints cannot be
    /// looked up in a precomputed table.
    pub fn fingerprint(&self) -> String {
        fingerprint_hash(&self.0)
    }
}

impl<T> From<T> for Secret<T> {
    fn from(value: T) -> Self {
        Self(value)
    }
}

impl<T> fmt::Debug for Secret<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(REDACTED)
    }
}

impl<T> fmt::Display for Secret<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(REDACTED)
    }
}

impl<T> Serialize for Secret<T> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(REDACTED)
    }
}

impl<'de, T: Deserialize<'de>> Deserialize<'de> for Secret<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        T::deserialize(deserializer).map(Secret)
    }
}

/// The process's one hashing key, drawn at random on first use.
fn fingerprint_key() -> &'static std::collections::hash_map::RandomState {
    static KEY: OnceLock<std::collections::hash_map::RandomState> = OnceLock::new();
    KEY.get_or_init(std::collections::hash_map::RandomState::new)
}

/// A keyed hash of `value` (SipHash under a key drawn once per process): stable within the
/// process, so equal values correlate, and unreadable outside it. Config fingerprints and the
/// log masker's `hash` strategy both use it.
pub fn keyed_hash<T: Hash + ?Sized>(value: &T) -> u64 {
    fingerprint_key().hash_one(value)
}

/// Keyed fingerprint of a hashable value, 8 hex digits.
pub fn fingerprint_hash<T: Hash + ?Sized>(value: &T) -> String {
    format!("{:08x}", keyed_hash(value) as u32)
}

/// Keyed fingerprint of a JSON value (used for `sensitive` fields, whose types need not be
/// `Hash`), 8 hex digits.
pub fn fingerprint_json(value: &serde_json::Value) -> String {
    let text = value.to_string();
    fingerprint_hash(text.as_str())
}

/// `[REDACTED] (fp:abcd1234)`: how a sensitive value is shown.
pub fn redacted_with_fingerprint(fingerprint: &str) -> String {
    format!("{REDACTED} (fp:{fingerprint})")
}
