//! [`JsonSchemaError`]: what loading or compiling a schema set can fail with.

/// A schema set that cannot be loaded or compiled; a reload without its section.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum JsonSchemaError {
    /// Files that are missing, do not parse, are not valid JSON Schema or repeat a name:
    /// each with its path relative to the section, its file and why.
    #[error("{}", join(.0))]
    Load(Vec<LoadProblem>),
    /// A schema that does not compile (an unresolvable `$ref`, a forbidden remote one).
    #[error("jsonschema.{path}: {file}: {message}")]
    Compile {
        /// Relative to the section (`schemas.files.note`, `schemas.dir`).
        path: String,
        /// The schema file.
        file: String,
        /// Why, with the location in the schema.
        message: String,
    },
    /// A reload hook was called without its section.
    #[error("reload of `{module}` carried no `jsonschema` section")]
    MissingSection {
        /// The module being reloaded.
        module: String,
    },
}

/// One file that cannot be used.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LoadProblem {
    /// Relative to the `jsonschema` section (`schemas.files.note`, `schemas.dir`).
    pub path: String,
    /// The file or directory.
    pub file: Option<String>,
    /// Why, naming the file and the location.
    pub message: String,
}

fn join(errors: &[LoadProblem]) -> String {
    errors
        .iter()
        .map(|e| format!("jsonschema.{}: {}", e.path, e.message))
        .collect::<Vec<_>>()
        .join("; ")
}

impl JsonSchemaError {
    /// The schema file the error is about, when there is one.
    pub fn file(&self) -> Option<&str> {
        match self {
            Self::Compile { file, .. } => Some(file),
            Self::Load(problems) => problems.iter().find_map(|p| p.file.as_deref()),
            Self::MissingSection { .. } => None,
        }
    }
}
