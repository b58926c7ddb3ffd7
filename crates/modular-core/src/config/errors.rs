//! Configuration errors with their key path and source.

use std::fmt;

use serde::Serialize;

/// One invalid configuration value: where it is, who set it, and what is wrong.
///
/// Displays as `database.pool.max_connections: invalid type: found string "many", expected u32 (config.yaml)`.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ValidationError {
    /// Full dotted key path (`database.pool.max_connections`).
    pub path: String,
    /// The source that set the value: a file path, an environment variable, `override`, or
    /// `default`.
    pub source: String,
    /// Lowercase description.
    pub message: String,
}

impl fmt::Display for ValidationError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.path.is_empty() {
            write!(f, "{}", self.message)?;
        } else {
            write!(f, "{}: {}", self.path, self.message)?;
        }
        if !self.source.is_empty() {
            write!(f, " ({})", self.source)?;
        }
        Ok(())
    }
}

/// Every error found in one configuration.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct ValidationErrors(pub Vec<ValidationError>);

impl ValidationErrors {
    /// The errors.
    pub fn errors(&self) -> &[ValidationError] {
        &self.0
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Display for ValidationErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0.as_slice() {
            [] => f.write_str("invalid configuration"),
            [one] => write!(f, "invalid configuration: {one}"),
            many => {
                write!(f, "invalid configuration ({} errors):", many.len())?;
                for e in many {
                    write!(f, "\n  {e}")?;
                }
                Ok(())
            }
        }
    }
}

impl std::error::Error for ValidationErrors {}

/// Converts a figment error (which may chain several) into validation errors, stripping the
/// profile prefix from paths and naming the source.
pub(crate) fn from_figment(error: figment::Error, section: Option<&str>) -> Vec<ValidationError> {
    error
        .into_iter()
        .map(|e| {
            let mut path: Vec<&str> = e.path.iter().map(String::as_str).collect();
            if let Some(profile) = &e.profile
                && path.first().is_some_and(|p| profile.as_str() == *p)
            {
                path.remove(0);
            }
            // figment's `extract_inner` appends the section to the error path instead of
            // prepending it (`label.cache` for `cache.label`); move it back to the front.
            if let Some(section) = section {
                let tail: Vec<&str> = section.split('.').collect();
                if path.len() > tail.len() && path.ends_with(&tail) {
                    path.truncate(path.len() - tail.len());
                }
            }
            let mut full = path.join(".");
            if let Some(section) = section
                && !(full == section || full.starts_with(&format!("{section}.")))
            {
                full = if full.is_empty() {
                    section.to_owned()
                } else {
                    format!("{section}.{full}")
                };
            }
            let source = match &e.metadata {
                Some(md) => describe_source(md, &full),
                None => String::new(),
            };
            ValidationError {
                path: full,
                source,
                message: e.kind.to_string(),
            }
        })
        .collect()
}

fn describe_source(md: &figment::Metadata, path: &str) -> String {
    match &md.source {
        Some(figment::Source::File(file)) => file.display().to_string(),
        Some(figment::Source::Custom(custom)) => custom.clone(),
        _ => {
            if md.name.contains("environment") {
                // The environment layer's interpolator turns the full key path back into the
                // variable's name (`MODULAR_DATABASE__POOL__SIZE`).
                let keys: Vec<&str> = path.split('.').collect();
                format!("env {}", md.interpolate(&figment::Profile::Default, &keys))
            } else {
                md.name.to_string()
            }
        }
    }
}
