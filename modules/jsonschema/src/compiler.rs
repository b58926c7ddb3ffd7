//! One recompilation of the whole set, aside, from a config section: read the files, fetch
//! the allowed remote documents, compile; and the commit that publishes it with its events,
//! metrics and health state. Used at start, by the config reload and by the file watcher.

use std::time::Duration;

use modular_core::ModuleContext;
use serde_json::json;

use crate::config::JsonSchemaConfig;
use crate::engine::{self, CompileOptions};
use crate::error::{JsonSchemaError, LoadProblem};
use crate::loader;
use crate::schemas::{JsonSchemas, Rejection, SchemaSet};

/// A set compiled aside, not yet published.
#[derive(Debug)]
pub(crate) struct Compiled {
    pub(crate) set: SchemaSet,
    pub(crate) fingerprint: u64,
}

/// Compiles every schema `config` names, as generation `generation`.
pub(crate) async fn compile(
    config: &JsonSchemaConfig,
    generation: u64,
) -> Result<Compiled, JsonSchemaError> {
    let fingerprint = loader::fingerprint(&config.schemas);
    let files = loader::read_sources(&config.schemas, config.draft()).map_err(|errors| {
        JsonSchemaError::Load(
            errors
                .into_iter()
                .map(|e| LoadProblem {
                    path: e.path,
                    file: e.file.map(|f| f.display().to_string()),
                    message: e.message,
                })
                .collect(),
        )
    })?;
    let remote =
        crate::remote::prefetch(&files, &config.remote.allowed_hosts, config.remote.timeout)
            .await?;
    let options = CompileOptions {
        draft: config.draft(),
        formats: config.formats,
        allowed_hosts: config.remote.allowed_hosts.clone(),
        remote,
    };
    let set = engine::compile(&files, &options, generation)?;
    Ok(Compiled { set, fingerprint })
}

/// The bound of a whole recompilation: remote fetches have their own deadline, each; this
/// caps a set that references many.
pub(crate) const COMPILE_TIMEOUT: Duration = Duration::from_secs(30);

/// How a publication relates to the config's options.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Epoch {
    /// A config commit: new options from now on.
    Bump,
    /// A watcher compilation under the options of this epoch: dropped when a config
    /// commit came in between (that commit compiled the files itself).
    Expect(u64),
}

/// Publishes `compiled`: swaps the set in, clears a recorded rejection, emits
/// `schemas.reloaded`. Returns false (publishing nothing) for a stale [`Epoch::Expect`].
pub(crate) fn publish(
    schemas: &JsonSchemas,
    context: &ModuleContext,
    compiled: Compiled,
    trigger: &str,
    epoch: Epoch,
) -> bool {
    let names = compiled.set.names();
    let generation = compiled.set.generation();
    {
        let mut state = schemas.state();
        match epoch {
            Epoch::Bump => state.options_epoch += 1,
            Epoch::Expect(e) if e != state.options_epoch => return false,
            Epoch::Expect(_) => {}
        }
        schemas
            .shared
            .current
            .store(std::sync::Arc::new(compiled.set));
        state.fingerprint = Some(compiled.fingerprint);
        state.rejection = None;
    }
    crate::metrics::compiled(true);
    tracing::info!(module = "jsonschema", trigger, generation, schemas = ?names, "schemas reloaded");
    context.emit(
        "schemas.reloaded",
        json!({ "trigger": trigger, "generation": generation, "schemas": names }),
    );
    true
}

/// What a failed recompilation was about.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Failed {
    /// The files changed on disk (content `fingerprint`) and do not compile: the running set
    /// is no longer what the files say, so health is degraded until they compile again.
    Files { fingerprint: u64 },
    /// A config reload's candidate does not compile: the reload fails and the running config
    /// and set stay, both current; the outcome, the event and core's breaker record it.
    Candidate,
}

/// Records a failed recompilation (the running set stays) and emits `schemas.rejected`.
pub(crate) fn reject(
    schemas: &JsonSchemas,
    context: &ModuleContext,
    error: &JsonSchemaError,
    failed: Failed,
    trigger: &str,
) {
    let rejection = Rejection {
        file: error.file().map(str::to_owned),
        error: error.to_string(),
        trigger: trigger.to_owned(),
    };
    {
        let mut state = schemas.state();
        state.rejected_total += 1;
        state.last_rejection = Some(rejection.clone());
        if let Failed::Files { fingerprint } = failed {
            state.fingerprint = Some(fingerprint);
            state.rejection = Some(rejection.clone());
        }
    }
    crate::metrics::compiled(false);
    tracing::warn!(module = "jsonschema", trigger, %error, "schemas rejected; the running set keeps validating");
    context.emit(
        "schemas.rejected",
        json!({ "trigger": trigger, "file": rejection.file, "error": rejection.error }),
    );
}
