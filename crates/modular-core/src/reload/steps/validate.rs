//! Step 2, validate: every registered section deserialized from the candidate and run through
//! its `validate()` hook. Any error of any section rejects the whole candidate, with every
//! error's path and source; the running config is untouched.

use std::collections::HashMap;
use std::sync::Arc;

use super::load::Loaded;
use crate::config::{AnySection, ConfigStore, ValidationError};

/// Every registered section with its candidate value, in registration order.
pub(crate) type Candidate = crate::config::CandidateSections;

pub(crate) fn validate(
    store: &Arc<ConfigStore>,
    loaded: Loaded,
) -> Result<Candidate, Vec<ValidationError>> {
    match loaded {
        Loaded::Figment(figment) => store.validate(&figment),
        // An earlier version was valid when it was committed.
        Loaded::Sections(sections) => {
            let by_name: HashMap<String, AnySection> = sections.into_iter().collect();
            Ok(store
                .sections()
                .into_iter()
                .map(|binding| {
                    let value = by_name
                        .get(binding.name())
                        .cloned()
                        .unwrap_or_else(|| binding.current());
                    (binding, value)
                })
                .collect())
        }
    }
}
