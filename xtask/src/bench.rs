//! `cargo xtask bench`: run the criterion benchmarks, then print the table that
//! `docs/PERFORMANCE.md` holds (reference, target, our median) from criterion's results.

use std::path::{Path, PathBuf};

use anyhow::Result;
use xshell::Shell;

use crate::workspace;

/// How a row's measurement is judged against its target.
enum Target {
    /// The median must be at most this many nanoseconds.
    AtMostNs(f64),
    /// A ratio (computed from two medians) must be at least this.
    AtLeastRatio(f64),
    /// A ratio (ours / the raw library's) must be at most this.
    AtMostRatio(f64),
    /// Recorded, no target.
    None,
}

enum Measure {
    /// One benchmark's median.
    Median(&'static str),
    /// `numerator median / denominator median` (e.g. Value diff time / derived diff time).
    Ratio(&'static str, &'static str),
}

struct Row {
    name: &'static str,
    reference: &'static str,
    measure: Measure,
    target: Target,
}

const ROWS: &[Row] = &[
    Row {
        name: "diff, simple config (5 fields), one change",
        reference: "seed: ~1.5 µs",
        measure: Measure::Median("diff/simple_one_change"),
        target: Target::AtMostNs(40.0),
    },
    Row {
        name: "diff, simple config, no change",
        reference: "-",
        measure: Measure::Median("diff/simple_no_change"),
        target: Target::AtMostNs(15.0),
    },
    Row {
        name: "diff, nested config (3 levels, 20 fields), three changes",
        reference: "seed: ~6.5 µs",
        measure: Measure::Median("diff/nested_three_changes"),
        target: Target::AtMostNs(150.0),
    },
    Row {
        name: "derived diff vs serde_json::Value diff, simple, one change",
        reference: "-",
        measure: Measure::Ratio("diff/simple_value_one_change", "diff/simple_one_change"),
        target: Target::AtLeastRatio(20.0),
    },
    Row {
        name: "derived diff vs serde_json::Value diff, nested, three changes",
        reference: "-",
        measure: Measure::Ratio(
            "diff/nested_value_three_changes",
            "diff/nested_three_changes",
        ),
        target: Target::AtLeastRatio(20.0),
    },
    Row {
        name: "health check, 10 providers, forced",
        reference: "Go plan: < 5 ms",
        measure: Measure::Median("health_forced_10_providers"),
        target: Target::AtMostNs(10_000.0),
    },
    Row {
        name: "health check, 10 providers, forced, with the metrics recorder installed",
        reference: "the row above",
        measure: Measure::Median("metrics_health_forced_10_providers"),
        target: Target::None,
    },
    Row {
        name: "`GET /metrics` body: render the core series of 11 health components",
        reference: "-",
        measure: Measure::Median("metrics_render"),
        target: Target::None,
    },
    Row {
        name: "health check, cached read",
        reference: "-",
        measure: Measure::Median("health_cached_read"),
        target: Target::AtMostNs(60.0),
    },
    Row {
        name: "health check, 1000 providers, forced",
        reference: "-",
        measure: Measure::Median("health_forced_1000_providers"),
        target: Target::AtMostNs(1_000_000.0),
    },
    Row {
        name: "health check, 100 providers each sleeping 20 ms",
        reference: "sequential: 2 s",
        measure: Measure::Median("health/forced_100_providers_sleeping_20ms"),
        target: Target::AtMostNs(22_000_000.0),
    },
    Row {
        name: "reload, 5 modules, one change (no file I/O, no health gate)",
        reference: "Go plan: < 80 ms",
        measure: Measure::Median("reload_5_modules_one_change"),
        target: Target::AtMostNs(25_000.0),
    },
    Row {
        name: "reload, same, requested from outside a multi-thread runtime (2 thread wake-ups)",
        reference: "-",
        measure: Measure::Median("reload_5_modules_one_change_cross_thread"),
        target: Target::None,
    },
    Row {
        name: "consistent read of two sections from one config epoch",
        reference: "ArcSwap load ~21 ns",
        measure: Measure::Median("config_snapshot_two_sections"),
        target: Target::AtMostNs(40.0),
    },
    Row {
        name: "one section through its ConfigHandle (owned snapshot)",
        reference: "-",
        measure: Measure::Median("config_handle_get"),
        target: Target::None,
    },
    Row {
        name: "raw ArcSwap load (guard), same run: the physical reference",
        reference: "DESIGN: ~21 ns",
        measure: Measure::Median("config_raw_arcswap_load"),
        target: Target::None,
    },
    Row {
        name: "raw ArcSwap load_full (owned Arc), same run",
        reference: "-",
        measure: Measure::Median("config_raw_arcswap_load_full"),
        target: Target::None,
    },
    Row {
        name: "file change to all modules reloaded (debounce 250 ms)",
        reference: "Go: never reaches modules",
        measure: Measure::Median("reload/file_change_to_applied"),
        target: Target::AtMostNs(260_000_000.0),
    },
    Row {
        name: "bootstrap 10 trivial modules (build + start + stop)",
        reference: "Go plan: < 150 ms",
        measure: Measure::Median("bootstrap/build_start_stop_10_modules"),
        target: Target::AtMostNs(200_000.0),
    },
    Row {
        name: "service lookup (by type)",
        reference: "Go plan: < 2 µs",
        measure: Measure::Median("registry/get_trait_object"),
        target: Target::AtMostNs(30.0),
    },
    Row {
        name: "service lookup (by type and name)",
        reference: "Go plan: < 2 µs",
        measure: Measure::Median("registry/get_named"),
        target: Target::AtMostNs(30.0),
    },
    Row {
        name: "`GET /readyz` throughput vs a static axum route, same server",
        reference: "-",
        measure: Measure::Ratio("http/static", "http/readyz"),
        target: Target::AtLeastRatio(0.9),
    },
    Row {
        name: "cache, memory get (hit)",
        reference: "-",
        measure: Measure::Median("cache/memory_get_hit"),
        target: Target::None,
    },
    Row {
        name: "cache, memory get (hit) vs raw moka, same bound and TTL",
        reference: "-",
        measure: Measure::Ratio("cache/memory_get_hit", "cache/moka_get_hit"),
        target: Target::AtMostRatio(1.1),
    },
    Row {
        name: "cache, memory set",
        reference: "-",
        measure: Measure::Median("cache/memory_set"),
        target: Target::None,
    },
    Row {
        name: "cache, memory set vs raw moka",
        reference: "-",
        measure: Measure::Ratio("cache/memory_set", "cache/moka_set"),
        target: Target::AtMostRatio(1.1),
    },
    Row {
        name: "cache, Redis get (loopback round trip)",
        reference: "-",
        measure: Measure::Median("cache/redis_get"),
        target: Target::None,
    },
    Row {
        name: "cache, Redis get vs raw redis-rs `ConnectionManager`",
        reference: "-",
        measure: Measure::Ratio("cache/redis_get", "cache/raw_redis_get"),
        target: Target::AtMostRatio(1.1),
    },
    Row {
        name: "cache, Redis set (loopback round trip)",
        reference: "-",
        measure: Measure::Median("cache/redis_set"),
        target: Target::None,
    },
    Row {
        name: "cache, Redis set vs raw redis-rs `ConnectionManager`",
        reference: "-",
        measure: Measure::Ratio("cache/redis_set", "cache/raw_redis_set"),
        target: Target::AtMostRatio(1.1),
    },
    Row {
        name: "httpclient GET (local axum, keep-alive)",
        reference: "-",
        measure: Measure::Median("httpclient/modular_get"),
        target: Target::None,
    },
    Row {
        name: "httpclient GET vs raw reqwest, same server and timeouts",
        reference: "-",
        measure: Measure::Ratio("httpclient/modular_get", "httpclient/reqwest_get"),
        target: Target::AtMostRatio(1.1),
    },
    Row {
        name: "log event with 5 fields through `fmt` alone (sink)",
        reference: "-",
        measure: Measure::Median("logmasker_event_5_fields/fmt"),
        target: Target::None,
    },
    Row {
        name: "the same event through `fmt` + masker (default rules) vs `fmt` alone",
        reference: "plain fmt, same run",
        measure: Measure::Ratio(
            "logmasker_event_5_fields/fmt_masked",
            "logmasker_event_5_fields/fmt",
        ),
        target: Target::AtMostRatio(1.5),
    },
    Row {
        name: "1 KB ordinary message scanned by the masker (nothing to mask)",
        reference: "-",
        measure: Measure::Median("logmasker/scan_1kb"),
        target: Target::AtMostNs(2_000.0),
    },
    Row {
        name: "1 KB message with one e-mail address, masked",
        reference: "-",
        measure: Measure::Median("logmasker/scan_1kb_one_secret"),
        target: Target::None,
    },
    Row {
        name: "a valid 1 KB order through the raw compiled `jsonschema::Validator::is_valid`",
        reference: "-",
        measure: Measure::Median("jsonschema_validate_1kb/raw"),
        target: Target::None,
    },
    Row {
        name: "the same document through the jsonschema module vs raw",
        reference: "raw, same run",
        measure: Measure::Ratio(
            "jsonschema_validate_1kb/module",
            "jsonschema_validate_1kb/raw",
        ),
        target: Target::AtMostRatio(1.1),
    },
    Row {
        name: "a valid 100 KB order, raw `is_valid`",
        reference: "-",
        measure: Measure::Median("jsonschema_validate_100kb/raw"),
        target: Target::None,
    },
    Row {
        name: "the same 100 KB document through the jsonschema module vs raw",
        reference: "raw, same run",
        measure: Measure::Ratio(
            "jsonschema_validate_100kb/module",
            "jsonschema_validate_100kb/raw",
        ),
        target: Target::AtMostRatio(1.1),
    },
    Row {
        name: "fleet config: one NATS KV put to the last of ten instances applied",
        reference: "issue 24: spread < 500 ms",
        measure: Measure::Median("fleet/put_to_ten_applied"),
        target: Target::AtMostNs(500_000_000.0),
    },
    Row {
        name: "scheduler: register and schedule 10,000 one-shot jobs",
        reference: "-",
        measure: Measure::Median("scheduler_schedule/10000_jobs"),
        target: Target::None,
    },
    Row {
        name: "scheduler lateness p99, 1,000 due jobs",
        reference: "-",
        measure: Measure::Median("scheduler_lateness/p99_1000_due"),
        target: Target::AtMostNs(5_000_000.0),
    },
    Row {
        name: "an HS256 access token, raw jsonwebtoken (`decode_header` + `decode`)",
        reference: "-",
        measure: Measure::Median("auth_verify_hs256/raw"),
        target: Target::None,
    },
    Row {
        name: "the same HS256 token through the auth module (`Auth::verify`) vs raw",
        reference: "raw, same run",
        measure: Measure::Ratio("auth_verify_hs256/module", "auth_verify_hs256/raw"),
        target: Target::AtMostRatio(1.1),
    },
    Row {
        name: "an ES256 access token, raw jsonwebtoken",
        reference: "-",
        measure: Measure::Median("auth_verify_es256/raw"),
        target: Target::None,
    },
    Row {
        name: "the same ES256 token through the auth module vs raw",
        reference: "raw, same run",
        measure: Measure::Ratio("auth_verify_es256/module", "auth_verify_es256/raw"),
        target: Target::AtMostRatio(1.1),
    },
    Row {
        name: "argon2id password verify at the OWASP defaults (m=19 MiB, t=2, p=1), through the module",
        reference: "raw argon2, same run",
        measure: Measure::Median("auth_argon2id_verify/module"),
        target: Target::None,
    },
    Row {
        name: "eventbus, memory publish → deliver, per event",
        reference: "-",
        measure: Measure::Median("eventbus/memory_publish_deliver"),
        target: Target::None,
    },
    Row {
        name: "eventbus, NATS JetStream publish (until the ack)",
        reference: "-",
        measure: Measure::Median("eventbus/nats_publish"),
        target: Target::None,
    },
    Row {
        name: "eventbus, NATS publish vs raw async-nats JetStream, same event",
        reference: "the raw library",
        measure: Measure::Ratio("eventbus/nats_publish", "eventbus/raw_nats_publish"),
        target: Target::AtMostRatio(1.1),
    },
    Row {
        name: "eventbus, Redis Streams publish (`XADD`)",
        reference: "-",
        measure: Measure::Median("eventbus/redis_publish"),
        target: Target::None,
    },
    Row {
        name: "eventbus, Redis publish vs raw redis-rs `ConnectionManager`, same event",
        reference: "the raw library",
        measure: Measure::Ratio("eventbus/redis_publish", "eventbus/raw_redis_publish"),
        target: Target::AtMostRatio(1.1),
    },
    Row {
        name: "certificate lookup per TLS handshake (letsencrypt resolver, exact SNI name, 20 certificates)",
        reference: "-",
        measure: Measure::Median("letsencrypt_resolve/exact"),
        target: Target::AtMostNs(100.0),
    },
    Row {
        name: "certificate lookup per TLS handshake, wildcard match",
        reference: "-",
        measure: Measure::Median("letsencrypt_resolve/wildcard"),
        target: Target::AtMostNs(100.0),
    },
    Row {
        name: "certificate lookup per TLS handshake, wildcard match, SNI name with capitals",
        reference: "-",
        measure: Measure::Median("letsencrypt_resolve/wildcard_mixed_case"),
        target: Target::AtMostNs(100.0),
    },
    Row {
        name: "raw `HashMap<String, Arc<CertifiedKey>>` get + clone, same names (the physical reference)",
        reference: "-",
        measure: Measure::Median("letsencrypt_resolve/raw_hashmap"),
        target: Target::None,
    },
    Row {
        name: "64 GETs over 8 keep-alive connections through the reverseproxy vs directly to the same upstream (time ratio)",
        reference: "direct, same run",
        measure: Measure::Ratio("reverseproxy/proxy", "reverseproxy/direct"),
        target: Target::None,
    },
];

/// Runs the benchmarks (unless `table_only`), then prints the table.
pub fn run(sh: &Shell, args: Vec<String>, table_only: bool) -> Result<()> {
    if !table_only {
        // Service-backed benchmarks (Redis round trips) run when their service is up.
        for (name, url) in crate::services::ensure().exports() {
            sh.set_var(name, url);
        }
        workspace::cargo(sh)
            .args(["bench", "--package", "modular-benches"])
            .args(args)
            .run()?;
        proxy_vs_nginx(sh)?;
    }
    let root = workspace::root();
    let criterion = workspace::target_dir(&root).join("criterion");
    println!("{}", table(&criterion));
    Ok(())
}

/// The reverseproxy module vs nginx on the same upstream with wrk (64 keep-alive
/// connections); needs the Debian packages `nginx` and `wrk`, skipped with one line without.
fn proxy_vs_nginx(sh: &Shell) -> Result<()> {
    let missing: Vec<&str> = ["nginx", "wrk"]
        .into_iter()
        .filter(|tool| !on_path(tool))
        .collect();
    if !missing.is_empty() {
        println!(
            "skipping reverseproxy vs nginx: {} not installed (apt-get install nginx wrk)",
            missing.join(" and ")
        );
        return Ok(());
    }
    workspace::cargo(sh)
        .args([
            "run",
            "--release",
            "--package",
            "modular-reverseproxy",
            "--example",
            "nginx_compare",
        ])
        .run()?;
    Ok(())
}

fn on_path(tool: &str) -> bool {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin".into(), "/sbin".into()])
        .any(|dir| dir.join(tool).is_file())
}

/// Criterion stores `group/function` results under `group/function` with any further `/` in the
/// function name turned into `_`; ids here are written in that stored form.
fn median_ns(criterion: &Path, id: &str) -> Option<f64> {
    let path: PathBuf = criterion.join(id).join("new").join("estimates.json");
    let text = std::fs::read_to_string(&path).ok()?;
    let json: serde_json::Value = serde_json::from_str(&text).ok()?;
    json["median"]["point_estimate"].as_f64()
}

fn format_ns(ns: f64) -> String {
    if ns >= 1e9 {
        format!("{:.2} s", ns / 1e9)
    } else if ns >= 1e6 {
        format!("{:.2} ms", ns / 1e6)
    } else if ns >= 1e3 {
        format!("{:.2} µs", ns / 1e3)
    } else {
        format!("{ns:.1} ns")
    }
}

/// The markdown table of every row, with "not measured" where criterion has no result yet.
pub fn table(criterion: &Path) -> String {
    let mut out = String::from(
        "| benchmark | reference | target | our median | verdict |\n|---|---|---|---|---|\n",
    );
    for row in ROWS {
        let (value, measured) = match row.measure {
            Measure::Median(id) => match median_ns(criterion, id) {
                Some(ns) => (format_ns(ns), Some(ns)),
                None => ("not measured".to_owned(), None),
            },
            Measure::Ratio(a, b) => match (median_ns(criterion, a), median_ns(criterion, b)) {
                (Some(a), Some(b)) if b > 0.0 => (format!("{:.2}x", a / b), Some(a / b)),
                _ => ("not measured".to_owned(), None),
            },
        };
        let (target, verdict) = match (&row.target, measured) {
            (Target::AtMostNs(t), Some(m)) => (
                format!("≤ {}", format_ns(*t)),
                if m <= *t { "met" } else { "MISSED" },
            ),
            (Target::AtLeastRatio(t), Some(m)) => {
                (format!("≥ {t}x"), if m >= *t { "met" } else { "MISSED" })
            }
            (Target::AtMostRatio(t), Some(m)) => {
                (format!("≤ {t}x"), if m <= *t { "met" } else { "MISSED" })
            }
            (Target::AtMostNs(t), None) => (format!("≤ {}", format_ns(*t)), "-"),
            (Target::AtLeastRatio(t), None) => (format!("≥ {t}x"), "-"),
            (Target::AtMostRatio(t), None) => (format!("≤ {t}x"), "-"),
            (Target::None, _) => ("-".to_owned(), "recorded"),
        };
        out.push_str(&format!(
            "| {} | {} | {} | {} | {} |\n",
            row.name, row.reference, target, value, verdict
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table_reads_criterion_medians_and_judges_targets() {
        let dir = tempfile_dir();
        let write = |id: &str, ns: f64| {
            let path = dir.join(id).join("new");
            std::fs::create_dir_all(&path).unwrap();
            std::fs::write(
                path.join("estimates.json"),
                format!("{{\"median\":{{\"point_estimate\":{ns}}}}}"),
            )
            .unwrap();
        };
        write("diff/simple_one_change", 18.0);
        write("diff/simple_value_one_change", 540.0);
        write("registry/get_named", 45.0);
        write("cache/memory_get_hit", 320.0);
        write("cache/moka_get_hit", 300.0);
        write("cache/memory_set", 1500.0);
        write("cache/moka_set", 1000.0);
        let table = table(&dir);
        assert!(table.contains("| diff, simple config (5 fields), one change | seed: ~1.5 µs | ≤ 40.0 ns | 18.0 ns | met |"), "{table}");
        assert!(table.contains("| 30.00x | met |"), "{table}");
        assert!(table.contains("45.0 ns | MISSED |"), "{table}");
        assert!(
            table.contains("same bound and TTL | - | ≤ 1.1x | 1.07x | met |"),
            "{table}"
        );
        assert!(
            table.contains("memory set vs raw moka | - | ≤ 1.1x | 1.50x | MISSED |"),
            "{table}"
        );
        assert!(
            table.contains("| diff, simple config, no change | - | ≤ 15.0 ns | not measured | - |"),
            "{table}"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    fn tempfile_dir() -> PathBuf {
        let dir = std::env::temp_dir().join(format!("xtask-bench-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }
}
