//! The application builder tests start from.

use modular_core::reload::ReloadOptions;
use modular_core::{Application, ApplicationBuilder};

/// `Application::builder()` for a test: no `MODULAR_` environment variables, no signal
/// handlers, dynamic reload without the file watcher or the health gate (tests reload
/// explicitly and see each outcome at once), and the health aggregator.
pub fn test_builder() -> ApplicationBuilder {
    Application::builder()
        .env_prefix(None)
        .with_reload_options(ReloadOptions {
            watch_files: false,
            health_gate: false,
            ..ReloadOptions::default()
        })
        .with_health_aggregator()
        .handle_signals(false)
}
