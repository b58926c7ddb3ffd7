//! A reload never leaves a line half under the old rules and half under the new: several
//! threads log while the strategies switch back and forth, and every line is entirely under
//! one rule set.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use modular_logmasker::{Builtin, LogMaskerConfig, MaskRule, Masker, Strategy};
use tracing_subscriber::layer::SubscriberExt as _;

/// Set A hashes the field and redacts the address; set B keeps part of the field and hashes
/// the address. A line mixing the two shows `[HASH:` twice or not at all.
fn set(a: bool) -> LogMaskerConfig {
    let (field, email) = if a {
        (MaskRule::field("account", Strategy::Hash), Strategy::Redact)
    } else {
        (
            MaskRule::field("account", Strategy::Redact).keeping(2, 2),
            Strategy::Hash,
        )
    };
    LogMaskerConfig {
        // Only these two rules, so a reload compiles quickly and many happen meanwhile.
        defaults: false,
        ..support::config(vec![field, MaskRule::builtin(Builtin::Email, email)])
    }
}

fn under_a(line: &str) -> bool {
    line.contains("account=[HASH:") && line.contains("mail [REDACTED] sent")
}

fn under_b(line: &str) -> bool {
    line.contains("account=\"AC**************89\"") && line.contains("mail [HASH:")
}

/// `threads` threads log through `dispatch` (each at least `min_lines` lines, and until the
/// switching ends) while the masker's set switches between A and B 100 times.
fn log_while_switching(
    masker: &Masker,
    dispatch: &tracing::Dispatch,
    threads: u64,
    min_lines: u64,
) {
    let stop = Arc::new(AtomicBool::new(false));
    let handles: Vec<_> = (0..threads)
        .map(|t| {
            let dispatch = dispatch.clone();
            let stop = Arc::clone(&stop);
            std::thread::spawn(move || {
                tracing::dispatcher::with_default(&dispatch, || {
                    let mut n = 0u64;
                    while !stop.load(Ordering::Relaxed) || n < min_lines {
                        tracing::info!(
                            account = "ACCOUNT-1234-56789",
                            thread = t,
                            n,
                            "mail carol.jones@example.com sent"
                        );
                        n += 1;
                    }
                });
            })
        })
        .collect();
    for i in 0..100 {
        masker.apply(&set(i % 2 == 1)).unwrap();
        std::thread::yield_now();
    }
    stop.store(true, Ordering::Relaxed);
    for handle in handles {
        handle.join().unwrap();
    }
}

#[test]
fn every_line_is_masked_entirely_under_one_rule_set_while_strategies_switch() {
    let masker = Masker::from_config(&set(true)).unwrap();
    let capture = support::Capture::default();
    let dispatch =
        tracing::Dispatch::new(tracing_subscriber::registry().with(masker.layer(capture.clone())));
    log_while_switching(&masker, &dispatch, 4, 200);
    let lines = capture.lines();
    assert!(lines.len() >= 800, "{} lines", lines.len());
    let (mut a, mut b) = (0, 0);
    for line in &lines {
        assert!(
            !line.contains("carol") && !line.contains("ACCOUNT-1234"),
            "{line}"
        );
        match (under_a(line), under_b(line)) {
            (true, false) => a += 1,
            (false, true) => b += 1,
            _ => panic!("a line under neither or both rule sets: {line}"),
        }
    }
    assert!(a > 0 && b > 0, "both sets were live: a {a}, b {b}");
}

#[test]
fn every_json_line_is_masked_entirely_under_one_rule_set_while_strategies_switch() {
    let masker = Masker::from_config(&set(true)).unwrap();
    let capture = support::Capture::default();
    let dispatch = tracing::Dispatch::new(
        tracing_subscriber::registry().with(masker.json_layer(capture.clone())),
    );
    log_while_switching(&masker, &dispatch, 3, 100);
    let (mut a, mut b) = (0, 0);
    for line in capture.lines() {
        let value: serde_json::Value = serde_json::from_str(&line).unwrap();
        let account = value["fields"]["account"].as_str().unwrap();
        let message = value["fields"]["message"].as_str().unwrap();
        match (account.starts_with("[HASH:"), message) {
            (true, "mail [REDACTED] sent") => a += 1,
            (false, m) if account == "AC**************89" && m.starts_with("mail [HASH:") => b += 1,
            _ => panic!("a line under neither or both rule sets: {line}"),
        }
    }
    assert!(a > 0 && b > 0, "both sets were live: a {a}, b {b}");
}
