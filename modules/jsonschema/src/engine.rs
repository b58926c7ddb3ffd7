//! Compiling a schema set with the `jsonschema` crate: every file under its `file://` URI, so
//! a relative `$ref` between files resolves; a retriever that serves only the set's own
//! files, files beside them, and the remote documents fetched beforehand from allow-listed
//! hosts; formats asserted when enabled.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde_json::Value;

use crate::error::JsonSchemaError;
use crate::loader::{self, SchemaFile};
use crate::schemas::{Schema, SchemaSet};

/// What a compilation needs besides the files.
#[derive(Clone, Debug)]
pub(crate) struct CompileOptions {
    pub(crate) draft: jsonschema::Draft,
    pub(crate) formats: bool,
    pub(crate) allowed_hosts: Vec<String>,
    /// Remote documents fetched before compiling, by URL without fragment.
    pub(crate) remote: BTreeMap<String, Value>,
}

/// Every file compiled, or the first that fails (its config path, file and why).
pub(crate) fn compile(
    files: &[SchemaFile],
    options: &CompileOptions,
    generation: u64,
) -> Result<SchemaSet, JsonSchemaError> {
    let mut local: HashMap<String, Value> = HashMap::new();
    let mut roots: Vec<PathBuf> = Vec::new();
    for file in files {
        local.insert(file_uri(&file.file), file.document.clone());
        if let Some(parent) = file.file.parent() {
            roots.push(parent.to_path_buf());
        }
    }
    roots.sort();
    roots.dedup();
    let retriever = Arc::new(SetRetriever {
        local,
        roots,
        remote: options.remote.clone(),
        allowed_hosts: options.allowed_hosts.clone(),
    });
    let mut schemas = HashMap::new();
    for file in files {
        let mut builder = jsonschema::options();
        // `$schema` names the draft when present; `with_draft` would override it.
        if file.document.get("$schema").is_none() {
            builder = builder.with_draft(options.draft);
        }
        let validator = builder
            .should_validate_formats(options.formats)
            .with_base_uri(file_uri(&file.file))
            .with_retriever(SharedRetriever(Arc::clone(&retriever)))
            .build(&file.document)
            .map_err(|e| JsonSchemaError::Compile {
                path: file.path.clone(),
                file: file.file.display().to_string(),
                message: describe(&e),
            })?;
        schemas.insert(
            file.name.clone(),
            Arc::new(Schema::new(file.name.clone(), file.file.clone(), validator)),
        );
    }
    Ok(SchemaSet::new(schemas, generation))
}

/// The meta-schema check of a document without `$schema`, against `draft`'s meta-schema.
pub(crate) fn meta_validate(
    document: &Value,
    draft: jsonschema::Draft,
) -> Result<(), jsonschema::ValidationError<'_>> {
    match draft {
        jsonschema::Draft::Draft4 => jsonschema::draft4::meta::validate(document),
        jsonschema::Draft::Draft6 => jsonschema::draft6::meta::validate(document),
        jsonschema::Draft::Draft7 => jsonschema::draft7::meta::validate(document),
        jsonschema::Draft::Draft201909 => jsonschema::draft201909::meta::validate(document),
        _ => jsonschema::draft202012::meta::validate(document),
    }
}

/// `file:///abs/path`, with the characters a URI cannot hold percent-encoded.
pub(crate) fn file_uri(path: &Path) -> String {
    let mut uri = String::from("file://");
    for c in path.to_string_lossy().chars() {
        match c {
            ' ' => uri.push_str("%20"),
            '#' => uri.push_str("%23"),
            '?' => uri.push_str("%3F"),
            '%' => uri.push_str("%25"),
            c => uri.push(c),
        }
    }
    uri
}

fn path_of(uri: &str) -> Option<PathBuf> {
    let rest = uri.strip_prefix("file://")?;
    let decoded = rest
        .replace("%20", " ")
        .replace("%23", "#")
        .replace("%3F", "?")
        .replace("%25", "%");
    Some(PathBuf::from(decoded))
}

/// A build error's reason with its location in the schema.
fn describe(error: &jsonschema::ValidationError<'_>) -> String {
    let at = error.instance_path().to_string();
    let text = if at.is_empty() {
        error.to_string()
    } else {
        format!("at {at}: {error}")
    };
    crate::remote::redact_userinfo(&text)
}

/// Serves `$ref` targets: the set's own files, schema files in their directories, and the
/// remote documents fetched in advance. Anything else is refused with the reason.
#[derive(Debug)]
struct SetRetriever {
    local: HashMap<String, Value>,
    roots: Vec<PathBuf>,
    remote: BTreeMap<String, Value>,
    allowed_hosts: Vec<String>,
}

struct SharedRetriever(Arc<SetRetriever>);

impl jsonschema::Retrieve for SharedRetriever {
    fn retrieve(
        &self,
        uri: &jsonschema::Uri<String>,
    ) -> Result<Value, Box<dyn std::error::Error + Send + Sync>> {
        self.0.get(uri.as_str()).map_err(Into::into)
    }
}

impl SetRetriever {
    fn get(&self, uri: &str) -> Result<Value, String> {
        let uri = uri.split('#').next().unwrap_or(uri);
        if let Some(document) = self.local.get(uri) {
            return Ok(document.clone());
        }
        if let Some(path) = path_of(uri) {
            let inside = self.roots.iter().any(|root| path.starts_with(root));
            if !inside
                || path
                    .components()
                    .any(|c| c == std::path::Component::ParentDir)
            {
                return Err(format!(
                    "{} is outside the schema directories; only files beside the configured schemas may be referenced",
                    path.display()
                ));
            }
            return loader::read_document(&path);
        }
        if let Some(document) = self.remote.get(uri) {
            return Ok(document.clone());
        }
        match crate::remote::host_of(uri) {
            Some(host) if crate::remote::allowed(&host, &self.allowed_hosts) => {
                Err(format!("{uri} could not be fetched"))
            }
            Some(host) => Err(format!(
                "remote $ref to {uri} refused: host \"{host}\" is not in jsonschema.remote.allowed_hosts"
            )),
            None => Err(format!("cannot resolve $ref to {uri}")),
        }
    }
}
