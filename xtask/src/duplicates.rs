//! The duplicate-major check: two semver-incompatible versions of a core crate in the normal or
//! build graph mean two runtimes, two HTTP stacks or two TLS configurations that cannot interoperate.

use std::collections::{BTreeMap, BTreeSet};

use anyhow::{Context as _, Result, bail};
use xshell::Shell;

use crate::workspace;

/// Crates that must appear in one semver-compatible version only.
const WATCHED: [&str; 6] = ["tokio", "hyper", "http", "rustls", "reqwest", "axum"];

/// Fails when a [`WATCHED`] crate appears in two incompatible versions.
pub fn check(sh: &Shell) -> Result<()> {
    let tree = workspace::cargo(sh)
        .args(["tree", "--workspace", "--edges", "normal,build"])
        .args(["--prefix", "none", "--format", "{p}"])
        .read()
        .context("cannot list the dependency graph with cargo tree")?;
    let conflicts = conflicts(&tree);
    if conflicts.is_empty() {
        eprintln!("no duplicate majors among {}", WATCHED.join(", "));
        return Ok(());
    }
    for (name, versions) in &conflicts {
        eprintln!("{name}: {}", versions.join(", "));
    }
    bail!(
        "incompatible versions of {} in the dependency graph (see `cargo tree -i <crate>`)",
        conflicts
            .iter()
            .map(|(name, _)| name.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    )
}

/// Watched crates with more than one semver-compatibility class, each with its versions.
fn conflicts(tree: &str) -> Vec<(String, Vec<String>)> {
    let mut versions: BTreeMap<&str, BTreeSet<&str>> = BTreeMap::new();
    for line in tree.lines() {
        let mut words = line.split_whitespace();
        let (Some(name), Some(version)) = (words.next(), words.next()) else {
            continue;
        };
        let Some(version) = version.strip_prefix('v') else {
            continue;
        };
        if WATCHED.contains(&name) {
            versions.entry(name).or_default().insert(version);
        }
    }
    versions
        .into_iter()
        .filter(|(_, found)| {
            found
                .iter()
                .map(|version| compatibility_class(version))
                .collect::<BTreeSet<_>>()
                .len()
                > 1
        })
        .map(|(name, found)| {
            (
                name.to_owned(),
                found.into_iter().map(str::to_owned).collect(),
            )
        })
        .collect()
}

/// The part of a version that cargo treats as the major: `1.54.1` → `1`, `0.23.4` → `0.23`,
/// `0.0.3` → `0.0.3`.
fn compatibility_class(version: &str) -> String {
    let core = version.split(['-', '+']).next().unwrap_or(version);
    let mut parts = core.split('.');
    let major = parts.next().unwrap_or("0");
    let minor = parts.next().unwrap_or("0");
    let patch = parts.next().unwrap_or("0");
    match (major, minor) {
        ("0", "0") => format!("0.0.{patch}"),
        ("0", _) => format!("0.{minor}"),
        _ => major.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compatibility_class_follows_cargo_semver() {
        assert_eq!(compatibility_class("1.54.1"), "1");
        assert_eq!(compatibility_class("0.23.46"), "0.23");
        assert_eq!(compatibility_class("0.0.3"), "0.0.3");
        assert_eq!(compatibility_class("1.0.0-rc.1"), "1");
    }

    #[test]
    fn one_version_per_class_is_no_conflict() {
        let tree = "\
modular-core v0.1.0 (/work/main/crates/modular-core)
tokio v1.54.1
tokio v1.54.1 (*)
tokio v1.40.0
http v1.3.1
";
        assert!(conflicts(tree).is_empty());
    }

    #[test]
    fn two_majors_of_a_watched_crate_conflict() {
        let tree = "\
reqwest v0.12.9
reqwest v0.13.1 (*)
hyper v0.14.32
hyper v1.6.0
serde v1.0.200
serde v0.9.15
";
        assert_eq!(
            conflicts(tree),
            vec![
                (
                    "hyper".to_owned(),
                    vec!["0.14.32".to_owned(), "1.6.0".to_owned()]
                ),
                (
                    "reqwest".to_owned(),
                    vec!["0.12.9".to_owned(), "0.13.1".to_owned()]
                ),
            ]
        );
    }
}
