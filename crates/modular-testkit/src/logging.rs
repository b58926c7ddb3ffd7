//! Tracing output for tests.

use tracing_subscriber::EnvFilter;
use tracing_subscriber::filter::LevelFilter;

/// Installs a global `tracing` subscriber for tests; later calls do nothing.
///
/// Output goes through libtest's capture (shown for failing tests, or with `--nocapture`), and
/// `RUST_LOG` selects what is recorded (default `info`; an invalid directive is skipped).
pub fn init_tracing() {
    let filter = EnvFilter::builder()
        .with_default_directive(LevelFilter::INFO.into())
        .from_env_lossy();
    // `try_init` fails only when a global subscriber is already set: by an earlier call, or by
    // the test itself, and either one is what the caller wants.
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_test_writer()
        .try_init();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn init_tracing_is_idempotent() {
        init_tracing();
        init_tracing();
        tracing::info!(test = "init_tracing_is_idempotent", "subscriber installed");
        assert!(tracing::dispatcher::has_been_set());
    }
}
