//! The schema file watcher: a `notify` watch on every directory that holds a schema (the
//! directory, not the file, so editors' atomic saves and symlink swaps are seen), a trailing
//! debounce, then a content fingerprint: only a real change recompiles the whole set aside.
//! A set that fails keeps the running one and degrades health; the next good one recovers.

use std::path::PathBuf;
use std::time::Duration;

use modular_core::{ConfigHandle, ModuleContext};
use tokio::sync::mpsc;

use crate::compiler::{self, COMPILE_TIMEOUT, Epoch};
use crate::config::JsonSchemaConfig;
use crate::error::JsonSchemaError;
use crate::loader;
use crate::schemas::JsonSchemas;

/// What to watch, replaced at every config commit.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct WatchPlan {
    pub(crate) enabled: bool,
    pub(crate) debounce: Duration,
    pub(crate) directories: Vec<PathBuf>,
}

impl WatchPlan {
    pub(crate) fn of(config: &JsonSchemaConfig) -> Self {
        Self {
            enabled: config.watch.enabled,
            debounce: config.watch.debounce,
            directories: loader::watched_directories(&config.schemas),
        }
    }
}

/// A watch set up aside from a plan: the `notify` watcher (watching from the moment it is
/// built; dropping it stops the watch) and its event queue. A config reload prepares one and
/// hands it to the task at commit, so the new watch covers the new files from the commit on.
pub(crate) struct Armed {
    pub(crate) plan: WatchPlan,
    _watcher: Option<modular_core::reload::DirectoryWatch>,
    changed: mpsc::Receiver<()>,
}

impl std::fmt::Debug for Armed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Armed")
            .field("plan", &self.plan)
            .finish_non_exhaustive()
    }
}

/// Builds the watch `plan` describes (none when it is disabled).
pub(crate) fn arm(plan: WatchPlan) -> Armed {
    let (events, changed) = mpsc::channel::<()>(1);
    let watcher = if plan.enabled {
        modular_core::reload::watch_directories(&plan.directories, events, "jsonschema")
    } else {
        None
    };
    Armed {
        plan,
        _watcher: watcher,
        changed,
    }
}

/// Spawns the watcher task over `first`, owned by the module context and stopped by its
/// cancellation; each watch sent on `next` replaces the current one.
pub(crate) fn spawn(
    ctx: &ModuleContext,
    schemas: JsonSchemas,
    config: ConfigHandle<JsonSchemaConfig>,
    first: Armed,
    mut next: mpsc::UnboundedReceiver<Armed>,
) {
    let cancel = ctx.cancellation().clone();
    let context = ctx.clone();
    schemas.state().watching = Some(first.plan.clone());
    ctx.spawn(async move {
        let mut current = first;
        loop {
            tokio::select! {
                () = cancel.cancelled() => return,
                armed = next.recv() => match armed {
                    Some(armed) => current = armed,
                    None => return,
                },
                Some(()) = current.changed.recv() => {
                    // Trailing debounce: wait until the directory is quiet.
                    loop {
                        tokio::select! {
                            () = cancel.cancelled() => return,
                            () = tokio::time::sleep(current.plan.debounce) => break,
                            Some(()) = current.changed.recv() => {}
                        }
                    }
                    recompile(&schemas, &context, &config).await;
                }
            }
        }
    });
}

/// Recompiles the running config's files when their content changed since the last
/// compilation, and publishes or rejects the result.
pub(crate) async fn recompile(
    schemas: &JsonSchemas,
    context: &ModuleContext,
    config: &ConfigHandle<JsonSchemaConfig>,
) {
    let (epoch, last) = {
        let state = schemas.state();
        (state.options_epoch, state.fingerprint)
    };
    let config = config.get();
    let fingerprint = loader::fingerprint(&config.schemas);
    if last == Some(fingerprint) {
        return;
    }
    let generation = schemas.current().generation() + 1;
    let result =
        match tokio::time::timeout(COMPILE_TIMEOUT, compiler::compile(&config, generation)).await {
            Ok(result) => result,
            Err(_) => Err(JsonSchemaError::Load(vec![crate::error::LoadProblem {
                path: "schemas".to_owned(),
                file: None,
                message: format!("compiling took longer than {COMPILE_TIMEOUT:?}"),
            }])),
        };
    match result {
        Ok(compiled) => {
            compiler::publish(schemas, context, compiled, "watch", Epoch::Expect(epoch));
        }
        Err(error) => compiler::reject(
            schemas,
            context,
            &error,
            compiler::Failed::Files { fingerprint },
            "watch",
        ),
    }
}
