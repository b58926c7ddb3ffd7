//! `cargo xtask ci`: the single command that decides whether the workspace is fit to land.

use std::time::{Duration, Instant};

use anyhow::{Result, bail};
use xshell::Shell;

use crate::{api_test, duplicates, test_suite, workspace};

type Step = fn(&Shell) -> Result<()>;

/// Runs fmt, clippy, the duplicate-major check, the docs, the tests (the spec-drift test among
/// them), schemathesis against the quickstart (`api-test`) and the quickstart's end-to-end tests
/// on PostgreSQL, MariaDB and Redis, stopping at the first failure; prints
/// each step's name and elapsed time, then a summary.
pub fn run(sh: &Shell) -> Result<()> {
    let steps: [(&str, Step); 7] = [
        ("fmt", fmt),
        ("clippy", clippy),
        ("duplicate majors", duplicates::check),
        ("docs", docs),
        ("tests", test_suite::run),
        ("api test", api_test::run),
        ("quickstart on servers", quickstart_on_servers),
    ];
    let started = Instant::now();
    let mut finished: Vec<(&str, Duration, &str)> = Vec::new();
    for (index, (name, step)) in steps.iter().enumerate() {
        eprintln!("==> [{}/{}] {name}", index + 1, steps.len());
        let step_started = Instant::now();
        let result = step(sh);
        let elapsed = step_started.elapsed();
        if let Err(error) = result {
            eprintln!("<== {name} failed after {}", format_elapsed(elapsed));
            finished.push((name, elapsed, "failed"));
            print_summary(&finished, started.elapsed());
            bail!("ci step `{name}` failed: {error:#}");
        }
        eprintln!("<== {name} ok in {}", format_elapsed(elapsed));
        finished.push((name, elapsed, "ok"));
    }
    print_summary(&finished, started.elapsed());
    Ok(())
}

fn fmt(sh: &Shell) -> Result<()> {
    workspace::cargo(sh)
        .args(["fmt", "--all", "--check"])
        .run()?;
    Ok(())
}

fn clippy(sh: &Shell) -> Result<()> {
    workspace::cargo(sh)
        .args([
            "clippy",
            "--workspace",
            "--all-targets",
            "--",
            "-D",
            "warnings",
        ])
        .run()?;
    Ok(())
}

/// The quickstart's end-to-end tests that need servers (`servers_*`), built once more with
/// `--features postgres,mysql,redis,fleet`: the README walkthrough on PostgreSQL (a fresh schema per
/// run) and Redis (a fresh key prefix), and the notes API on MariaDB (a fresh database). The
/// `tests` step before it ensured the services and exported their `MODULAR_TEST_*` URLs into
/// `sh`; its default build runs the same file on SQLite and the memory cache only.
fn quickstart_on_servers(sh: &Shell) -> Result<()> {
    workspace::cargo(sh)
        .args([
            "test",
            "-p",
            "quickstart",
            "--features",
            "postgres,mysql,redis,fleet",
            "--test",
            "quickstart_e2e",
            "--",
            "servers_",
        ])
        .run()?;
    Ok(())
}

/// `cargo doc` of every workspace crate with rustdoc warnings denied, once with the default
/// features and once with all of them: an intra-doc link to a feature-gated item breaks in
/// only one of the two.
fn docs(sh: &Shell) -> Result<()> {
    let _rustdocflags = sh.push_env("RUSTDOCFLAGS", "-D warnings");
    for features in [None, Some("--all-features")] {
        workspace::cargo(sh)
            .args(["doc", "--workspace", "--no-deps"])
            .args(features)
            .run()?;
    }
    Ok(())
}

fn print_summary(finished: &[(&str, Duration, &str)], total: Duration) {
    eprintln!("ci summary:");
    for (name, elapsed, outcome) in finished {
        eprintln!("  {name:<18} {:>8}  {outcome}", format_elapsed(*elapsed));
    }
    eprintln!("  {:<18} {:>8}", "total", format_elapsed(total));
}

/// `4.2s`, `3m07s`.
fn format_elapsed(elapsed: Duration) -> String {
    let seconds = elapsed.as_secs();
    if seconds < 60 {
        format!("{:.1}s", elapsed.as_secs_f64())
    } else {
        format!("{}m{:02}s", seconds / 60, seconds % 60)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn format_elapsed_switches_to_minutes_at_one_minute() {
        assert_eq!(format_elapsed(Duration::from_millis(4_240)), "4.2s");
        assert_eq!(format_elapsed(Duration::from_secs(187)), "3m07s");
    }
}
