//! Each built-in value pattern is masked wherever it appears: in the message, in an event
//! field, in a span field; through the text and the JSON layers.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use modular_logmasker::{Builtin, LogMaskerConfig, REDACTED};

/// A sample of each built-in, and the part of it that must not be written.
const SAMPLES: &[(Builtin, &str, &str)] = &[
    (
        Builtin::Bearer,
        "Bearer abcDEF123456789xyz",
        "abcDEF123456789xyz",
    ),
    (
        Builtin::UrlPassword,
        "postgres://app:s3cr3t-pw@db.internal:5432/notes",
        "s3cr3t-pw",
    ),
    (
        Builtin::Jwt,
        "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U",
        "eyJzdWIiOiIxMjM0NTY3ODkwIn0",
    ),
    (
        Builtin::AwsAccessKey,
        "AKIAIOSFODNN7EXAMPLE",
        "AKIAIOSFODNN7EXAMPLE",
    ),
    (
        Builtin::PrivateKey,
        "-----BEGIN RSA PRIVATE KEY-----\nMIIEowIBAAKCAQEAsecretkeymaterial\n-----END RSA PRIVATE KEY-----",
        "MIIEowIBAAKCAQEAsecretkeymaterial",
    ),
    (Builtin::CreditCard, "4111 1111 1111 1111", "1111 1111"),
    (Builtin::CreditCard, "378282246310005", "378282246310005"),
    (
        Builtin::Iban,
        "DE89 3704 0044 0532 0130 00",
        "3704 0044 0532",
    ),
    (Builtin::Email, "alice.smith@example.com", "alice.smith"),
    (Builtin::Ipv4, "203.0.113.7", "203.0.113.7"),
    (Builtin::Ipv6, "2001:db8::8a2e:370:7334", "8a2e:370:7334"),
];

fn config() -> LogMaskerConfig {
    support::with_ips(LogMaskerConfig::default())
}

fn assert_masked(output: &str, builtin: Builtin, secret: &str, place: &str) {
    assert!(
        !output.contains(secret),
        "{} in the {place} was written: {output}",
        builtin.name()
    );
    assert!(
        output.contains(REDACTED),
        "{} in the {place}: no {REDACTED}: {output}",
        builtin.name()
    );
}

#[test]
fn every_builtin_is_masked_in_the_message() {
    for (builtin, sample, secret) in SAMPLES {
        let output = support::text(&config(), || {
            tracing::info!("the client sent {sample} today")
        });
        assert_masked(&output, *builtin, secret, "message");
        assert!(output.contains("the client sent"), "{output}");
        assert!(output.contains("today"), "{output}");
    }
}

#[test]
fn every_builtin_is_masked_in_event_fields_as_str_and_as_display() {
    for (builtin, sample, secret) in SAMPLES {
        let output = support::text(&config(), || {
            tracing::info!(note = *sample, shown = %sample, "received");
        });
        assert_masked(&output, *builtin, secret, "event fields");
        assert!(output.contains("received"), "{output}");
    }
}

#[test]
fn every_builtin_is_masked_in_span_fields() {
    for (builtin, sample, secret) in SAMPLES {
        let output = support::text(&config(), || {
            let span = tracing::info_span!("request", note = *sample);
            let _entered = span.enter();
            tracing::info!("inside");
        });
        assert_masked(&output, *builtin, secret, "span fields");
        assert!(output.contains("request{note="), "{output}");
    }
}

#[test]
fn a_span_field_recorded_later_is_masked_too() {
    let output = support::text(&config(), || {
        let span = tracing::info_span!("request", user = tracing::field::Empty);
        span.record("user", "alice.smith@example.com");
        let _entered = span.enter();
        tracing::info!("inside");
    });
    assert!(!output.contains("alice.smith"), "{output}");
}

#[test]
fn every_builtin_is_masked_through_the_json_layer() {
    for (builtin, sample, secret) in SAMPLES {
        let lines = support::json(&config(), || {
            let span = tracing::info_span!("request", carried = *sample);
            let _entered = span.enter();
            tracing::info!(note = *sample, "the client sent {sample}");
        });
        assert_eq!(lines.len(), 1, "{lines:?}");
        let text = lines[0].to_string();
        assert_masked(&text, *builtin, secret, "json line");
        let fields = &lines[0]["fields"];
        assert!(
            fields["message"]
                .as_str()
                .unwrap()
                .starts_with("the client sent"),
            "{text}"
        );
        assert!(
            fields["note"].as_str().unwrap().contains(REDACTED),
            "{text}"
        );
        assert!(
            lines[0]["span"]["carried"]
                .as_str()
                .unwrap()
                .contains(REDACTED),
            "{text}"
        );
    }
}

#[test]
fn a_bearer_token_keeps_its_scheme() {
    let output = support::text(&config(), || {
        tracing::info!("header was Bearer abcDEF123456789xyz");
    });
    assert!(output.contains("Bearer [REDACTED]"), "{output}");
}

#[test]
fn a_url_password_is_masked_and_the_rest_of_the_url_kept() {
    let output = support::text(&config(), || {
        tracing::info!("connecting to postgres://app:s3cr3t-pw@db.internal:5432/notes");
    });
    assert!(
        output.contains("postgres://app:[REDACTED]@db.internal:5432/notes"),
        "{output}"
    );
}

#[test]
fn a_cut_private_key_block_is_masked_to_the_end_of_the_value() {
    let output = support::text(&config(), || {
        tracing::info!(
            pem = "-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBgkq",
            "loaded"
        );
    });
    assert!(!output.contains("MIIEvQIBADANBgkq"), "{output}");
}

#[test]
fn numbers_failing_the_luhn_or_mod_97_check_stay() {
    let output = support::text(&config(), || {
        tracing::info!("card 4111 1111 1111 1112 and iban DE89 3704 0044 0532 0130 01");
    });
    assert!(output.contains("4111 1111 1111 1112"), "{output}");
    assert!(output.contains("DE89 3704 0044 0532 0130 01"), "{output}");
}

#[test]
fn disabled_masking_writes_lines_as_they_are() {
    let config = LogMaskerConfig {
        enabled: false,
        ..LogMaskerConfig::default()
    };
    let output = support::text(&config, || {
        tracing::info!(password = "hunter2", "mail alice@example.com");
    });
    assert!(output.contains("alice@example.com"), "{output}");
    assert!(output.contains("password=\"hunter2\""), "{output}");
}
