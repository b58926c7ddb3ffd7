//! The jsonschema module of modular: JSON Schemas loaded from files, compiled once, reloaded
//! when a file or the configuration changes, validating request bodies ([`ValidatedJson`])
//! and configuration sections (a schema per section, checked in reload step 2).
//!
//! # A guided tour
//!
//! [`JsonSchemaModule`] reads the `jsonschema` section, compiles every schema it names with
//! the [`jsonschema`] crate and registers the [`JsonSchemas`] service. Other modules look it
//! up (depend on `jsonschema` to have it in `init`) and validate by name:
//!
//! ```
//! # fn demo(services: &modular_core::ServiceRegistry) -> Result<(), modular_core::Error> {
//! use modular_jsonschema::JsonSchemas;
//!
//! let schemas = services.require::<JsonSchemas>()?;
//! match schemas.validate("note", &serde_json::json!({ "title": 42 })) {
//!     Ok(()) => {}
//!     Err(errors) => {
//!         for e in &errors {
//!             // "/title" "/properties/title/type" "42 is not of type \"string\""
//!             println!("{} {} {}", e.instance_path, e.schema_path, e.message);
//!         }
//!     }
//! }
//! # Ok(()) }
//! ```
//!
//! A handler takes a checked body with [`ValidatedJson<T>`], where `T: SchemaName` names
//! the schema; the route gets the service as its state:
//!
//! ```
//! use axum::routing::post;
//! use modular_core::http::RouteRegistry;
//! use modular_core::{BoxError, InitContext, Module};
//! use modular_jsonschema::{JsonSchemas, SchemaName, ValidatedJson};
//!
//! #[derive(serde::Deserialize)]
//! struct Note { title: String }
//! impl SchemaName for Note { const SCHEMA: &'static str = "note"; }
//!
//! struct Notes;
//!
//! #[modular_core::async_trait]
//! impl Module for Notes {
//!     fn name(&self) -> &str { "notes" }
//!     fn dependencies(&self) -> Vec<String> { vec!["jsonschema".into()] }
//!     async fn init(&mut self, ctx: &mut InitContext<'_>) -> Result<(), BoxError> {
//!         let schemas = JsonSchemas::clone(&*ctx.services().require::<JsonSchemas>()?);
//!         RouteRegistry::shared(ctx.services()).route(
//!             "notes",
//!             "/notes",
//!             post(|ValidatedJson(note): ValidatedJson<Note>| async move { note.title })
//!                 .with_state(schemas),
//!         );
//!         Ok(())
//!     }
//! }
//! ```
//!
//! An invalid body is answered `422` with every violation, in a stable shape:
//!
//! ```json
//! {"error": "request body does not match schema \"note\"", "schema": "note",
//!  "errors": [{"instance_path": "/title", "schema_path": "/properties/title/type",
//!              "message": "42 is not of type \"string\""}]}
//! ```
//!
//! and as RFC 9457 problem details (`application/problem+json`: `type`, `title`, `status`,
//! `detail`, plus `schema` and `errors`) when the request's `Accept` names that type. A body
//! that is not JSON is `400`, a non-JSON `Content-Type` `415` (see [`ValidatedJson`]).
//!
//! # Configuration
//!
//! The `jsonschema` section ([`JsonSchemaConfig`]):
//!
//! ```yaml
//! jsonschema:
//!   schemas:
//!     dir: schemas/             # every *.json, *.yaml, *.yml in it (not recursive);
//!                               # named by the file name: note.schema.json is "note"
//!     files:                    # and/or named files anywhere
//!       invoice: contracts/invoice-v2.json
//!   default_draft: 2020-12      # for a schema without $schema: 4, 6, 7, 2019-09, 2020-12
//!   formats: true               # assert `format` (email, date-time, uri, uuid, ...)
//!   remote:
//!     allowed_hosts: []         # remote $ref is off; list hosts (host or host:port) to allow
//!     timeout: 5s               # per fetch
//!   watch:
//!     enabled: true             # recompile when a schema file changes
//!     debounce: 100ms
//!   sections:                   # config section -> schema: checked at build and every reload
//!     app: app-config
//!   health:
//!     timeout: 500ms
//!     optional: false
//! app:                          # a free section (`ApplicationBuilder::free_section("app")`)
//!   port: 8080
//! ```
//!
//! **Files.** JSON by default, YAML for `.yaml`/`.yml`. Each schema's base URI is its
//! `file://` path, so a relative `$ref` (`common.yaml#/$defs/customer`) resolves to a file
//! beside it, whether or not that file is itself configured; a `$ref` to a file outside the
//! schema directories is refused. A `$schema` names the draft; `default_draft` applies
//! otherwise. Remote `$ref` (`http(s)://`) is refused unless its host is in
//! `remote.allowed_hosts`; allowed documents are fetched (no redirects, `remote.timeout`
//! each, at most 64) before compiling, so compiling never blocks on the network.
//!
//! **Dynamic fields.** Every field but `sections` is dynamic: a config reload compiles the
//! whole new set aside in `prepare` and swaps it in at commit (`ArcSwap`); requests in flight
//! finish on the set they loaded. `sections` is static (the checks are attached to the
//! config store when the module starts): changing it needs a restart.
//!
//! **Rejected with their path** (`jsonschema.<key>`, with the file): a missing directory or
//! file, a file that does not parse (with line and column), a schema invalid against its
//! meta-schema (with the location in the schema), a name used twice, an unknown draft, a zero
//! timeout. These are checked in reload step 2, so such a reload is `rejected` and the running
//! configuration stays. `sections` naming no loaded schema fails `build()`. A `$ref` that cannot be resolved
//! (or a refused remote one) is found when compiling: at start it fails `build()`, in a
//! reload it fails `prepare` (the reload is `failed`), both naming the file.
//!
//! # Config sections checked against a schema
//!
//! `sections` attaches [`JsonSchemas::section_check`] to each named section through core's
//! [`SectionCheck`](modular_core::config::SectionCheck) seam; the application's code does the
//! same with [`JsonSchemaModule::check_section`] on the module it hands the builder (or, in
//! a module's `init`, `ctx.config_store().add_section_check(section, schemas.section_check(name))`). The section is checked against
//! the start-up configuration at once (a violation fails `build()`) and in every reload's
//! validate step, beside the typed `validate()` hooks: a violation rejects the candidate with
//! the key path (the instance location as a dotted path: `app.owners.1`), the source that set
//! it, and the message (with the schema's name and keyword), exactly like a type error. The
//! check uses the live set; a schema edited in the same reload applies to the next one.
//!
//! # Reload
//!
//! The schema directories (not the files: editors save by renaming, Kubernetes swaps
//! symlinks) are watched with `notify`. After `watch.debounce` of quiet, the files' content
//! is fingerprinted; only a real change recompiles the whole set aside. If any schema fails,
//! nothing changes: the running set keeps validating, `schemas.rejected` is emitted and
//! health turns degraded, naming the file and the location. Otherwise every new schema is
//! committed together in one swap, `schemas.reloaded` is emitted and health recovers. A config
//! reload does the same through the two-phase [`Reloadable`](modular_core::Reloadable)
//! (`prepare` compiles aside; an aborted reload drops the prepared set).
//!
//! # Health
//!
//! One report, component `schemas` (readiness; `health.timeout`, `health.optional`):
//! - `degraded` while the schema files on disk do not compile (an edit the watcher picked
//!   up): the message and `details.file`/`details.error` name the file and location; the
//!   last good set keeps validating. Fixing (or reverting) the file makes it healthy. A
//!   config reload whose candidate does not compile fails the reload instead; the running
//!   config and set stay current, so health stays as it was (`details.last_rejection`
//!   keeps the record);
//! - `degraded` when the watcher is off and the files differ from what was compiled (the
//!   running set is not current);
//! - `healthy` otherwise: every configured schema compiled and current.
//!
//! Details: `schemas` (names), `generation`, `rejected_total`, `watch` (`enabled`,
//! `debounce_ms`, `directories` of the watch in force), `file` and `error` (while degraded),
//! `last_rejection`.
//!
//! # Events
//!
//! | type | data |
//! |---|---|
//! | `com.modular.jsonschema.schemas.reloaded` | `trigger` (`watch`, `reload`), `generation`, `schemas` |
//! | `com.modular.jsonschema.schemas.rejected` | `trigger`, `file`, `error` |
//!
//! # Metrics
//!
//! See [`metrics`]: `modular_jsonschema_validations_total{schema,outcome}`,
//! `modular_jsonschema_validation_duration_seconds{schema}`,
//! `modular_jsonschema_compilations_total{outcome}`.
//!
//! # Features
//!
//! None. The `jsonschema` crate is built without its HTTP resolver (`resolve-file` only);
//! remote documents are fetched by this module with the workspace's `reqwest`.
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
