//! Step 1, load: every source (files, environment, overrides, an optional candidate text)
//! read into one candidate figment, or the sections of an earlier version.

use std::sync::Arc;

use figment::Figment;

use crate::config::{AnySection, ConfigStore, TextFormat, ValidationError};

/// Where a reload's candidate comes from.
pub(crate) enum CandidateSource {
    /// The sources as they are now, plus optional configuration text layered over the files
    /// (a dry run's body).
    Sources(Option<(TextFormat, String)>),
    /// The typed sections of an earlier version (rollback, health-gate revert).
    Sections(Vec<(String, AnySection)>),
}

impl CandidateSource {
    /// Whether the candidate is what the sources say (not an earlier version).
    pub(crate) fn is_sources(&self) -> bool {
        matches!(self, Self::Sources(_))
    }
}

/// What [`load`] read, for [`super::validate::validate`].
pub(crate) enum Loaded {
    Figment(Box<Figment>),
    Sections(Vec<(String, AnySection)>),
}

/// Reads the candidate. An unreadable or unparsable source rejects the reload here, with the
/// file named.
pub(crate) fn load(
    store: &Arc<ConfigStore>,
    source: CandidateSource,
) -> Result<Loaded, Vec<ValidationError>> {
    match source {
        CandidateSource::Sources(extra) => {
            let extra = extra.as_ref().map(|(f, t)| (*f, t.as_str()));
            store.figment(extra).map(|f| Loaded::Figment(Box::new(f)))
        }
        CandidateSource::Sections(sections) => Ok(Loaded::Sections(sections)),
    }
}
