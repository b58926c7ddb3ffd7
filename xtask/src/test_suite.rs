//! `cargo xtask test`: every test and doc test, with the services up and their URLs exported.

use std::env;

use anyhow::{Result, bail};
use xshell::Shell;

use crate::{services, workspace};

/// Ensures the services, exports `MODULAR_TEST_*` for those that are up, then runs
/// `cargo test --workspace --all-targets` and `cargo test --workspace --doc`.
///
/// A service that is down fails the run under `CI=true` (its tests would fail anyway); elsewhere
/// its tests skip, so a machine without, say, RabbitMQ can still run everything else.
pub fn run(sh: &Shell) -> Result<()> {
    let report = services::ensure();
    let down = report.down();
    if !down.is_empty() {
        if in_ci() {
            bail!("services needed by the tests are down: {}", down.join(", "));
        }
        eprintln!(
            "warning: {} down; their tests will be skipped",
            down.join(", ")
        );
    }
    for (name, url) in report.exports() {
        sh.set_var(name, url);
    }
    workspace::cargo(sh)
        .args(["test", "--workspace", "--all-targets"])
        .run()?;
    workspace::cargo(sh)
        .args(["test", "--workspace", "--doc"])
        .run()?;
    Ok(())
}

fn in_ci() -> bool {
    env::var("CI").is_ok_and(|value| {
        let value = value.trim();
        value.eq_ignore_ascii_case("true") || value == "1"
    })
}
