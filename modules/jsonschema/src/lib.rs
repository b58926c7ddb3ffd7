//! jsonschema (docs to come)
mod compiler;
mod config;
mod engine;
mod error;
mod extract;
mod health;
mod loader;
pub mod metrics;
mod module;
mod remote;
mod schemas;
mod watcher;

pub use config::{DRAFTS, JsonSchemaConfig, RemoteConfig, SchemaSources, WatchConfig};
pub use error::{JsonSchemaError, LoadProblem};
pub use extract::{SchemaName, SchemaRejection, ValidatedJson};
pub use module::JsonSchemaModule;
pub use schemas::{JsonSchemas, Rejection, Schema, SchemaError, SchemaSet};
