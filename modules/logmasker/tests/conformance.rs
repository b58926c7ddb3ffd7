//! The module conformance kit (modular-testkit): the "backend" is the log writer, cut by
//! making it fail.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::sync::Arc;

use modular_logmasker::Masker;
use modular_testkit::conformance::{
    Conformance, Probe, ProbeContext, fault_fn, health_optional_is, probe,
};
use serde_json::json;
use tracing_subscriber::layer::SubscriberExt as _;

fn live(ctx: &ProbeContext) -> Arc<Masker> {
    ctx.services().get::<Masker>().expect("the masker service")
}

/// The live masker turns `input` into a text `check` accepts.
fn masks(input: &'static str, check: fn(&str) -> bool) -> Probe {
    probe(move |ctx| async move {
        let output = live(&ctx).mask(input).into_owned();
        check(&output)
            .then_some(())
            .ok_or(format!("`{input}` was written as `{output}`"))
    })
}

#[tokio::test]
async fn the_log_masker_passes_the_conformance_kit() {
    let masker = Masker::new();
    let module_masker = masker.clone();
    let capture = support::Capture::default();
    let (cut_capture, restore_capture) = (capture.clone(), capture.clone());
    let cut_masker = masker.clone();
    let fault = fault_fn(
        move |_ctx| {
            let capture = cut_capture.clone();
            let masker = cut_masker.clone();
            async move {
                capture.set_failing(true);
                let subscriber = tracing_subscriber::registry().with(masker.layer(capture.clone()));
                tracing::subscriber::with_default(subscriber, || {
                    tracing::info!("this line is lost");
                });
            }
        },
        move |_ctx| {
            let capture = restore_capture.clone();
            async move { capture.set_failing(false) }
        },
    );
    Conformance::new("logmasker", move |b| {
        b.module(modular_logmasker::LogMaskerModule::with_masker(
            module_masker.clone(),
        ))
    })
    .valid(json!({ "logmasker": {
        "rules": [{ "builtin": "email", "strategy": "redact" }],
    } }))
    .invalid_at(
        "logmasker.rules.0.regex",
        [("logmasker.rules", json!([{ "regex": "ORD-(\\d+" }]))],
    )
    .invalid_at(
        "logmasker.rules.0.strategy",
        [(
            "logmasker.rules",
            json!([{ "field": "a", "strategy": "scramble" }]),
        )],
    )
    .invalid_at(
        "logmasker.rules.0.keep_last",
        [(
            "logmasker.rules",
            json!([{ "builtin": "email", "strategy": "partial", "keep_last": 12 }]),
        )],
    )
    .invalid("logmasker.enabled", json!("sometimes"))
    .change(
        "rules",
        [(
            "logmasker.rules",
            json!([{ "builtin": "email", "strategy": "hash" }]),
        )],
        masks("mail bob@example.com", |out| out.starts_with("mail [HASH:")),
    )
    .change(
        "enabled",
        [("logmasker.enabled", json!(false))],
        masks("mail bob@example.com", |out| out == "mail bob@example.com"),
    )
    .change(
        "defaults",
        [
            ("logmasker.enabled", json!(true)),
            ("logmasker.defaults", json!(false)),
        ],
        masks("mail bob@example.com key AKIAIOSFODNN7EXAMPLE", |out| {
            // Masking on (the address is hashed), the default AWS rule gone.
            out.starts_with("mail [HASH:") && out.ends_with("key AKIAIOSFODNN7EXAMPLE")
        }),
    )
    .change(
        "compiled_size_limit",
        [("logmasker.compiled_size_limit", json!(8 << 20))],
        probe(|ctx| async move {
            let limit = live(&ctx).stats().compiled_size_limit;
            (limit == 8 << 20)
                .then_some(())
                .ok_or(format!("compiled under {limit}"))
        }),
    )
    .change(
        "health.optional",
        [("logmasker.health.optional", json!(false))],
        health_optional_is("logmasker", false),
    )
    .boxed_fault(fault)
    .run()
    .await
    .assert_passed();
}
