//! Layered configuration: sources, typed sections, snapshots, diffs and secrets.
//!
//! Sources are layered with figment: struct defaults < files (YAML, TOML, JSON by extension)
//! < environment (`MODULAR_` prefix, `__` between levels) < runtime overrides. Each module's
//! section deserializes into its own typed config, read through a lock-free
//! [`ConfigHandle`].

pub mod diff;
mod epoch;
mod errors;
mod handle;
pub mod secret;
mod source;
mod store;

pub use diff::{
    ChangeType, ConfigChange, ConfigDiff, DiffContext, DynamicConfig, FieldError, FieldInfo,
    MAX_DURATION, apply_changes,
};
pub use epoch::ConfigSnapshot;
pub use errors::{ValidationError, ValidationErrors};
pub use handle::ConfigHandle;
pub use secret::{REDACTED, RedactedQuery, Secret, keyed_hash, redact_query};
pub use source::{
    ConfigSources, DEFAULT_ENV_PREFIX, MAX_SOURCE_BYTES, RemoteSnapshot, RemoteSource, TextFormat,
    YAML_ALIAS_EVENTS_PER_BYTE, nest, parse_yaml, source_revisions,
};
pub use store::{
    AnySection, CORE_SECTIONS, Candidate, CandidateSections, ConfigStore, SectionBinding,
    SectionCheck, SectionConfig,
};
