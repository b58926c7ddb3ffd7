//! The core error type.

use std::fmt;

use crate::config::ValidationErrors;

/// A boxed error from module code: every module keeps its own error enum and converts with `?`.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// A lifecycle phase of a module.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Phase {
    /// `Module::init`.
    Init,
    /// `Module::start`.
    Start,
    /// `Module::stop`.
    Stop,
}

impl fmt::Display for Phase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Init => "init",
            Self::Start => "start",
            Self::Stop => "stop",
        })
    }
}

/// Everything that can go wrong building, running or stopping an application.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Two modules share a name.
    #[error("duplicate module name `{name}`")]
    DuplicateModule {
        /// The shared name.
        name: String,
    },
    /// A module depends on a module that is not registered.
    #[error("module `{module}` depends on `{dependency}`, which is not registered")]
    MissingDependency {
        /// The dependent module.
        module: String,
        /// The missing dependency.
        dependency: String,
    },
    /// Modules depend on each other in a cycle.
    #[error("dependency cycle: {}", cycle.join(" -> "))]
    DependencyCycle {
        /// The modules on the cycle, the first repeated at the end.
        cycle: Vec<String>,
    },
    /// The configuration is invalid (every error, with its path and source).
    #[error(transparent)]
    Config(#[from] ValidationErrors),
    /// A module hook failed.
    #[error("module `{module}` failed to {phase}: {source}")]
    Module {
        /// The module.
        module: String,
        /// The hook.
        phase: Phase,
        /// What it returned.
        #[source]
        source: BoxError,
    },
    /// A module hook panicked.
    #[error("module `{module}` panicked during {phase}: {message}")]
    ModulePanicked {
        /// The module.
        module: String,
        /// The hook.
        phase: Phase,
        /// The panic message.
        message: String,
    },
    /// A requested service is not registered.
    #[error("service `{type_name}`{} is not registered", name.as_ref().map(|n| format!(" named `{n}`")).unwrap_or_default())]
    ServiceNotFound {
        /// The requested type.
        type_name: &'static str,
        /// The requested name, if any.
        name: Option<String>,
    },
    /// Modules did not stop before the shutdown deadline.
    #[error("shutdown deadline of {deadline:?} passed while stopping: {}", pending.join(", "))]
    ShutdownTimeout {
        /// The deadline.
        deadline: std::time::Duration,
        /// Modules that had not stopped.
        pending: Vec<String>,
    },
    /// The application is not in a state that allows this call.
    #[error("application is {state}, cannot {action}")]
    InvalidState {
        /// The current state.
        state: &'static str,
        /// What was asked.
        action: &'static str,
    },
    /// An OS signal handler could not be installed.
    #[error("could not listen for signals: {0}")]
    Signal(#[source] std::io::Error),
    /// The file watcher could not be started.
    #[error("could not watch {path}: {message}")]
    Watch {
        /// The watched path.
        path: String,
        /// Why.
        message: String,
    },
}
