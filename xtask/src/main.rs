//! Automation for the modular workspace, run as `cargo xtask <command>`.
//!
//! - `cargo xtask services`: start the backing services that are installed but stopped, print a
//!   status table (stderr) and the `MODULAR_TEST_*` URLs as `export` lines (stdout), so
//!   `eval "$(cargo xtask services)"` prepares a shell for service-backed tests.
//! - `cargo xtask test`: ensure the services, then run every test and doc test with the
//!   `MODULAR_TEST_*` variables set.
//! - `cargo xtask ci`: fmt check, clippy with `-D warnings`, the duplicate-major check, the
//!   docs (`cargo doc --workspace --no-deps` with `RUSTDOCFLAGS="-D warnings"`, default and
//!   all features), then `test`, then `api-test`, then the quickstart's end-to-end tests once more with its
//!   `postgres,mysql,redis,fleet` features against those servers; each step's name and time are
//!   printed.
//! - `cargo xtask api-test`: schemathesis (installed from PyPI into a venv under the target
//!   dir) against the quickstart from `docs/openapi.json`, with and without the admin token
//!   (part of `ci`, after the tests).
//! - `cargo xtask openapi`: regenerate `docs/openapi.json` from the quickstart's served spec.
//! - `cargo xtask bench [--table] [ARGS]...`: run the criterion benchmarks (ARGS go to
//!   `cargo bench`), then print the `docs/PERFORMANCE.md` table; `--table` only prints it.
//!
//! Child cargo commands use `CARGO_TARGET_DIR` when it is set, else `$HOME/.cache/modular-target`,
//! so runs from different clones share one build cache outside the work tree.

// Tests may unwrap: a panic there is the test failing. Non-test builds still deny it.
#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used))]

mod api_test;
mod bench;
mod ci;
mod duplicates;
mod pebble;
mod services;
mod test_suite;
mod workspace;

use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(
    name = "xtask",
    bin_name = "cargo xtask",
    about = "Automation for the modular workspace"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Start installed-but-stopped services, print their status and the MODULAR_TEST_* exports.
    Services,
    /// Ensure services, then run all tests and doc tests with the MODULAR_TEST_* variables set.
    Test,
    /// fmt check, clippy -D warnings, duplicate-major check, docs with -D warnings, then the tests.
    Ci,
    /// schemathesis against the quickstart from docs/openapi.json, with and without the admin token.
    ApiTest,
    /// Regenerate docs/openapi.json from the spec the quickstart serves.
    Openapi,
    /// Run the criterion benchmarks of modular-benches, then print the PERFORMANCE.md table.
    Bench {
        /// Only print the table from the last results; run nothing.
        #[arg(long)]
        table: bool,
        /// Passed to `cargo bench -p modular-benches` as they are
        /// (e.g. `cargo xtask bench -- --bench diff -- --quick`).
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let sh = workspace::shell()?;
    match cli.command {
        Command::Services => services::command(),
        Command::Test => test_suite::run(&sh),
        Command::Ci => ci::run(&sh),
        Command::ApiTest => api_test::run(&sh),
        Command::Openapi => openapi(&sh),
        Command::Bench { table, args } => bench::run(&sh, args, table),
    }
}

/// Runs the spec-drift test with `UPDATE_OPENAPI=1`, which writes the served spec to
/// `docs/openapi.json`.
fn openapi(sh: &xshell::Shell) -> anyhow::Result<()> {
    let _update = sh.push_env("UPDATE_OPENAPI", "1");
    workspace::cargo(sh)
        .args(["test", "-p", "quickstart", "--test", "quickstart_e2e", "--"])
        .arg("the_served_openapi_spec_is_the_checked_in_one")
        .run()?;
    eprintln!("docs/openapi.json regenerated");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bench_args(argv: &[&str]) -> Vec<String> {
        let cli = Cli::try_parse_from(argv).unwrap();
        match cli.command {
            Command::Bench { args, .. } => args,
            other => panic!("parsed as {other:?}"),
        }
    }

    #[test]
    fn bench_passes_its_arguments_through() {
        assert_eq!(
            bench_args(&["xtask", "bench", "--bench", "diff", "--", "--quick"]),
            ["--bench", "diff", "--", "--quick"]
        );
        assert_eq!(
            bench_args(&["xtask", "bench", "--", "--bench", "diff"]),
            ["--bench", "diff"]
        );
        assert!(bench_args(&["xtask", "bench"]).is_empty());
    }
}
