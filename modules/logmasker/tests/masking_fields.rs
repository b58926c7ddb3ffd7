//! Field-name rules (exact, glob, case-insensitive; events and spans), every strategy, and no
//! false positives on ordinary log lines.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use modular_logmasker::{Builtin, LogMaskerConfig, MaskRule, Masker, REDACTED, Strategy};

#[test]
fn default_field_rules_mask_passwords_tokens_and_authorization_whatever_the_case() {
    let output = support::text(&LogMaskerConfig::default(), || {
        tracing::info!(
            password = "hunter2",
            refresh_token = "r-123-abc",
            Authorization = "Basic dXNlcjpwYXNz",
            // A number no timestamp can contain (a two-digit one matched the seconds).
            client_secret = 918_273_645_u64,
            user = "bob",
            "login"
        );
    });
    for secret in ["hunter2", "r-123-abc", "dXNlcjpwYXNz", "918273645"] {
        assert!(!output.contains(secret), "{secret} written: {output}");
    }
    assert!(output.contains("password=[REDACTED]"), "{output}");
    assert!(output.contains("refresh_token=[REDACTED]"), "{output}");
    assert!(output.contains("Authorization=[REDACTED]"), "{output}");
    assert!(output.contains("user=\"bob\""), "{output}");
}

#[test]
fn field_rules_apply_to_span_fields() {
    let output = support::text(&LogMaskerConfig::default(), || {
        let span = tracing::info_span!("session", api_token = "tok-999", user = "bob");
        let _entered = span.enter();
        tracing::info!("working");
    });
    assert!(!output.contains("tok-999"), "{output}");
    assert!(
        output.contains("session{api_token=[REDACTED] user=\"bob\"}"),
        "{output}"
    );
}

#[test]
fn a_custom_exact_field_rule_matches_only_that_name() {
    let config = support::config(vec![MaskRule::field("customer", Strategy::Redact)]);
    let output = support::text(&config, || {
        tracing::info!(customer = "ACME", customers = 3, "order");
    });
    assert!(output.contains("customer=[REDACTED]"), "{output}");
    assert!(output.contains("customers=3"), "{output}");
}

#[test]
fn the_first_matching_field_rule_wins() {
    let config = support::config(vec![MaskRule::field("password", Strategy::Hash)]);
    let output = support::text(&config, || tracing::info!(password = "hunter2", "login"));
    assert!(output.contains("password=[HASH:"), "{output}");
}

#[test]
fn redact_replaces_the_value() {
    let config = support::config(vec![MaskRule::field("pin", Strategy::Redact)]);
    let output = support::text(&config, || tracing::info!(pin = 1234, "card"));
    assert!(output.contains(&format!("pin={REDACTED}")), "{output}");
}

#[test]
fn partial_keeps_the_first_and_last_characters() {
    let config = support::config(vec![
        MaskRule::field("account", Strategy::Redact).keeping(2, 3),
    ]);
    let output = support::text(&config, || {
        tracing::info!(account = "AB12345678XYZ", "paid")
    });
    assert!(output.contains("account=\"AB********XYZ\""), "{output}");
}

#[test]
fn partial_on_a_builtin_pattern_keeps_the_last_four_digits() {
    let config = support::config(vec![
        MaskRule::builtin(Builtin::CreditCard, Strategy::Redact).keeping(0, 4),
    ]);
    let output = support::text(&config, || tracing::info!("charged 4111111111111111 ok"));
    assert!(output.contains("charged ************1111 ok"), "{output}");
}

#[test]
fn partial_redacts_a_value_too_short_to_hide_more_than_it_keeps() {
    let config = support::config(vec![
        MaskRule::field("code", Strategy::Redact).keeping(2, 2),
    ]);
    let output = support::text(&config, || tracing::info!(code = "abcde", "sent"));
    assert!(output.contains("code=[REDACTED]"), "{output}");
}

#[test]
fn hash_is_stable_for_equal_values_and_differs_for_others() {
    let config = support::config(vec![
        MaskRule::field("user_id", Strategy::Hash),
        MaskRule::builtin(Builtin::Email, Strategy::Hash),
    ]);
    let masker = Masker::from_config(&config).unwrap();
    let output = support::text_with(&masker, || {
        tracing::info!(user_id = "u-1", "first from alice@example.com");
        tracing::info!(user_id = "u-1", "again from alice@example.com");
        tracing::info!(user_id = "u-2", "other from bob@example.com");
    });
    let hashes: Vec<Vec<&str>> = output
        .lines()
        .map(|line| {
            line.match_indices("[HASH:")
                .map(|(i, _)| &line[i..i + 23])
                .collect()
        })
        .collect();
    assert_eq!(hashes.len(), 3, "{output}");
    assert_eq!(hashes[0].len(), 2, "{output}");
    assert_eq!(hashes[0], hashes[1], "equal values, equal hashes: {output}");
    assert_ne!(hashes[0][0], hashes[2][0], "{output}");
    assert_ne!(hashes[0][1], hashes[2][1], "{output}");
    assert!(
        !output.contains("u-1") && !output.contains("alice"),
        "{output}"
    );
}

#[test]
fn drop_removes_the_field_from_text_and_json() {
    let config = support::config(vec![MaskRule::field("session_id", Strategy::Drop)]);
    let output = support::text(&config, || {
        tracing::info!(session_id = "s-42", user = "bob", "hit")
    });
    assert!(!output.contains("session_id"), "{output}");
    assert!(!output.contains("s-42"), "{output}");
    assert!(output.contains("hit user=\"bob\""), "{output}");
    let lines = support::json(&config, || {
        tracing::info!(session_id = "s-42", user = "bob", "hit")
    });
    assert!(lines[0]["fields"].get("session_id").is_none(), "{lines:?}");
    assert_eq!(lines[0]["fields"]["user"], "bob");
}

#[test]
fn json_field_rules_match_keys_case_insensitively() {
    let config = support::config(vec![
        MaskRule::field("*_TOKEN", Strategy::Redact).keeping(1, 1),
    ]);
    let lines = support::json(&config, || {
        tracing::info!(access_token = "abcdefgh", "call")
    });
    assert_eq!(lines[0]["fields"]["access_token"], "a******h", "{lines:?}");
}

#[test]
fn a_custom_regex_rule_masks_only_its_secret_group() {
    let config = support::config(vec![MaskRule::regex(
        r"order=(?P<secret>ORD-\d{6})",
        Strategy::Redact,
    )]);
    let output = support::text(&config, || tracing::info!("paid order=ORD-123456 ok"));
    assert!(output.contains("paid order=[REDACTED] ok"), "{output}");
}

/// Ordinary lines: nothing in them may be masked, with the IP patterns on or off (except
/// dotted version strings, which look like IPv4 and are why IPv4 is opt-in).
const ORDINARY: &[&str] = &[
    "started at 2026-12-02T05:07:50.123456Z in 1.234ms",
    "request 550e8400-e29b-41d4-a716-446655440000 took 250ms",
    "trace 01890a5d-ac96-774b-bcce-b302099a8057 span 123e4567-e89b-12d3-a456-426614174000",
    "epoch 1764650870123 nanos 1764650870123456789",
    "modular v1.2.3 on rustc 1.95.0 (2026-01-01), tokio 1.54",
    "retry 3 of 5 after 2s, backoff 4s, deadline 12:30:45",
    "modular_core::app::reload done, tokio::time paused",
    "sha deadbeefcafebabe0123456789abcdef build 20261202",
    "order 12345678 and invoice 987654321098 paid, port 5432",
    "user bob from team backend has 10000 items, ratio 0.75",
];

#[test]
fn ordinary_lines_are_written_unchanged() {
    let mut config = support::with_ips(LogMaskerConfig::default());
    // Dotted version strings are the one thing IPv4 matches among these.
    config
        .rules
        .retain(|r| r.builtin.as_deref() != Some("ipv4"));
    for line in ORDINARY {
        let output = support::text(&config, || tracing::info!(detail = *line, "{line}"));
        assert!(
            !output.contains(REDACTED) && !output.contains("[HASH:"),
            "false positive: {output}"
        );
        assert_eq!(output.matches(line).count(), 2, "{output}");
    }
}

#[test]
fn ordinary_lines_pass_the_default_rules_unchanged() {
    for line in ORDINARY {
        let masker = Masker::new();
        assert_eq!(masker.mask(line), *line);
    }
}
