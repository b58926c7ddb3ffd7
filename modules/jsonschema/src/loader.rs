//! Reading the schema files: the directory listing, JSON or YAML by extension, names, and
//! the checks that need no `$ref` resolved (parse errors with their location, meta-schema
//! validity, duplicate names).

use std::collections::BTreeMap;
use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::config::SchemaSources;

/// One schema file, read and parsed.
#[derive(Clone, Debug)]
pub(crate) struct SchemaFile {
    /// The schema's name.
    pub(crate) name: String,
    /// The file, absolute.
    pub(crate) file: PathBuf,
    /// Where the config names it, relative to the section (`schemas.files.note`, `schemas.dir`).
    pub(crate) path: String,
    /// The document.
    pub(crate) document: Value,
}

/// A file that cannot be used, with the config path that brought it in.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct LoadError {
    /// Relative to the `jsonschema` section.
    pub(crate) path: String,
    /// The file, when the error is about one.
    pub(crate) file: Option<PathBuf>,
    /// Names the file and the location.
    pub(crate) message: String,
}

/// The extensions read as schemas.
const EXTENSIONS: &[&str] = &["json", "yaml", "yml"];

/// Every configured file, read and checked, sorted by name; or every problem found.
pub(crate) fn read_sources(
    sources: &SchemaSources,
    draft: jsonschema::Draft,
) -> Result<Vec<SchemaFile>, Vec<LoadError>> {
    let mut errors = Vec::new();
    let mut found: Vec<(String, PathBuf, String)> = Vec::new();
    if let Some(dir) = &sources.dir {
        match list_dir(dir) {
            Ok(files) => {
                for file in files {
                    match schema_name(&file) {
                        Some(name) => found.push((name, file, "schemas.dir".to_owned())),
                        None => errors.push(LoadError {
                            path: "schemas.dir".to_owned(),
                            file: Some(file.clone()),
                            message: format!("{}: no schema name in the file name", file.display()),
                        }),
                    }
                }
            }
            Err(message) => errors.push(LoadError {
                path: "schemas.dir".to_owned(),
                file: Some(dir.clone()),
                message,
            }),
        }
    }
    for (name, file) in &sources.files {
        let path = format!("schemas.files.{name}");
        if name.is_empty() {
            errors.push(LoadError {
                path,
                file: Some(file.clone()),
                message: "a schema name must not be empty".to_owned(),
            });
            continue;
        }
        found.push((name.clone(), file.clone(), path));
    }
    let mut by_name: BTreeMap<String, SchemaFile> = BTreeMap::new();
    for (name, file, path) in found {
        let document = match read_document(&file) {
            Ok(document) => document,
            Err(message) => {
                errors.push(LoadError {
                    path,
                    file: Some(file),
                    message,
                });
                continue;
            }
        };
        if let Err(message) = check_meta(&document, draft) {
            errors.push(LoadError {
                path,
                message: format!("{}: not a valid JSON Schema: {message}", file.display()),
                file: Some(file),
            });
            continue;
        }
        let file = absolute(&file);
        if let Some(existing) = by_name.get(&name) {
            // The directory's file named again under the same name in `files`: one schema.
            if existing.file == file {
                continue;
            }
            errors.push(LoadError {
                path,
                file: Some(file.clone()),
                message: format!(
                    "duplicate schema name \"{name}\": {} and {}",
                    existing.file.display(),
                    file.display()
                ),
            });
            continue;
        }
        by_name.insert(
            name.clone(),
            SchemaFile {
                name,
                file,
                path,
                document,
            },
        );
    }
    if errors.is_empty() {
        Ok(by_name.into_values().collect())
    } else {
        Err(errors)
    }
}

/// The files a change of which means a recompile, and the directories to watch for them.
pub(crate) fn watched_directories(sources: &SchemaSources) -> Vec<PathBuf> {
    let mut dirs: Vec<PathBuf> = Vec::new();
    if let Some(dir) = &sources.dir {
        dirs.push(absolute(dir));
    }
    for file in sources.files.values() {
        let file = absolute(file);
        if let Some(parent) = file.parent() {
            dirs.push(parent.to_path_buf());
        }
    }
    dirs.sort();
    dirs.dedup();
    dirs
}

/// A fingerprint of what the sources hold now: the directory listing and every file's
/// content. Equal fingerprints mean there is nothing to recompile.
pub(crate) fn fingerprint(sources: &SchemaSources) -> u64 {
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    let mut files: Vec<PathBuf> = sources.files.values().cloned().collect();
    if let Some(dir) = &sources.dir {
        files.extend(list_dir(dir).unwrap_or_default());
    }
    for file in files {
        file.hash(&mut hasher);
        match std::fs::read(&file) {
            Ok(bytes) => bytes.hash(&mut hasher),
            Err(_) => 0u8.hash(&mut hasher),
        }
    }
    hasher.finish()
}

/// The schema files of `dir`, sorted.
fn list_dir(dir: &Path) -> Result<Vec<PathBuf>, String> {
    let entries = std::fs::read_dir(dir)
        .map_err(|e| format!("{}: cannot read directory: {e}", dir.display()))?;
    let mut files: Vec<PathBuf> = entries
        .filter_map(Result::ok)
        .map(|entry| entry.path())
        .filter(|path| path.is_file() && extension(path).is_some())
        .collect();
    files.sort();
    Ok(files)
}

fn extension(path: &Path) -> Option<&'static str> {
    let ext = path.extension()?.to_str()?;
    EXTENSIONS
        .iter()
        .copied()
        .find(|e| e.eq_ignore_ascii_case(ext))
}

/// `note.schema.json` and `note.yaml` are `note`.
fn schema_name(file: &Path) -> Option<String> {
    let stem = file.file_stem()?.to_str()?;
    let name = stem.strip_suffix(".schema").unwrap_or(stem);
    (!name.is_empty()).then(|| name.to_owned())
}

/// The document in `file`: YAML for `.yaml`/`.yml`, JSON otherwise.
pub(crate) fn read_document(file: &Path) -> Result<Value, String> {
    let text = std::fs::read_to_string(file)
        .map_err(|e| format!("{}: cannot read: {e}", file.display()))?;
    parse_document(file, &text)
}

/// `text` parsed as `file`'s extension says; the error names the file and the location.
pub(crate) fn parse_document(file: &Path, text: &str) -> Result<Value, String> {
    match extension(file) {
        Some("yaml" | "yml") => serde_saphyr::from_str::<Value>(text)
            .map_err(|e| format!("{}: invalid YAML: {e}", file.display())),
        _ => serde_json::from_str::<Value>(text).map_err(|e| {
            format!(
                "{}: invalid JSON at line {} column {}: {e}",
                file.display(),
                e.line(),
                e.column()
            )
        }),
    }
}

/// `path` made absolute against the working directory.
pub(crate) fn absolute(path: &Path) -> PathBuf {
    if path.is_absolute() {
        return path.to_path_buf();
    }
    std::env::current_dir()
        .map(|d| d.join(path))
        .unwrap_or_else(|_| path.to_path_buf())
}

/// Whether `document` is valid against its meta-schema (`$schema`, else `draft`'s), with the
/// first violation's location in the schema and the reason.
fn check_meta(document: &Value, draft: jsonschema::Draft) -> Result<(), String> {
    if !(document.is_object() || document.is_boolean()) {
        return Err("a schema is an object or a boolean".to_owned());
    }
    let result = if document.get("$schema").is_some() {
        jsonschema::meta::validate(document)
    } else {
        crate::engine::meta_validate(document, draft)
    };
    result.map_err(|e| {
        let at = e.instance_path().to_string();
        if at.is_empty() {
            e.to_string()
        } else {
            format!("at {at}: {e}")
        }
    })
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::schema_name;

    #[test]
    fn a_schema_is_named_by_its_file_name_without_the_extensions() {
        assert_eq!(
            schema_name(Path::new("a/note.schema.json")).as_deref(),
            Some("note")
        );
        assert_eq!(
            schema_name(Path::new("order.yaml")).as_deref(),
            Some("order")
        );
        assert_eq!(
            schema_name(Path::new("v1.order.yml")).as_deref(),
            Some("v1.order")
        );
    }
}
