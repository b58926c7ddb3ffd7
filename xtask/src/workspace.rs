//! Where the workspace is, which cargo to run, and where it builds.

use std::env;
use std::ffi::OsString;
use std::path::{Path, PathBuf};

use anyhow::{Context as _, Result};
use xshell::{Cmd, Shell};

/// A shell in the workspace root with `CARGO_TARGET_DIR` set for every child command.
pub fn shell() -> Result<Shell> {
    let sh = Shell::new().context("cannot create a shell")?;
    let root = root();
    sh.change_dir(&root);
    sh.set_var("CARGO_TARGET_DIR", target_dir(&root));
    Ok(sh)
}

/// A `cargo` command: the cargo that runs xtask (so the same toolchain), else `cargo` from PATH.
pub fn cargo(sh: &Shell) -> Cmd<'_> {
    let cargo = env::var_os("CARGO").unwrap_or_else(|| OsString::from("cargo"));
    sh.cmd(cargo)
}

/// The workspace root: the parent of xtask's manifest directory. Cargo sets `CARGO_MANIFEST_DIR`
/// for `cargo run`; the compile-time value covers running the binary directly.
pub fn root() -> PathBuf {
    let manifest_dir = env::var_os("CARGO_MANIFEST_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")));
    manifest_dir
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or(manifest_dir)
}

/// `CARGO_TARGET_DIR` if set, else `$HOME/.cache/modular-target` (kept outside the clone so runs
/// reuse builds), else `<root>/target`.
pub fn target_dir(root: &Path) -> PathBuf {
    if let Some(dir) = env::var_os("CARGO_TARGET_DIR").filter(|dir| !dir.is_empty()) {
        return PathBuf::from(dir);
    }
    match env::var_os("HOME").filter(|home| !home.is_empty()) {
        Some(home) => PathBuf::from(home).join(".cache").join("modular-target"),
        None => root.join("target"),
    }
}
