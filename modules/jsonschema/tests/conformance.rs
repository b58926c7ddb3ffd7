//! The module conformance kit (modular-testkit): the "backend" is the schema directory, cut
//! by breaking a schema file (the watcher recompiles, the set is rejected, health degrades)
//! and restored by fixing it. `remote.allowed_hosts` and `remote.timeout` only act while a
//! set compiles; tests/reload_schemas.rs observes them.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use modular_jsonschema::{JsonSchemaModule, JsonSchemas};
use modular_testkit::conformance::{
    Conformance, Probe, ProbeContext, fault_fn, health_optional_is, probe,
};
use serde_json::{Value, json};
use support::write;

const SECRET: &str = "hunter2-in-a-ref";

const NOTE: &str = r#"{"properties": {"title": {"type": "string", "maxLength": 5}}}"#;

fn live(ctx: &ProbeContext) -> Arc<JsonSchemas> {
    ctx.services()
        .get::<JsonSchemas>()
        .expect("the JsonSchemas service")
}

/// The live set says `instance` is `valid` against `schema`.
fn judges(schema: &'static str, instance: Value, valid: bool) -> Probe {
    probe(move |ctx| {
        let instance = instance.clone();
        async move {
            let got = live(&ctx).is_valid(schema, &instance);
            (got == valid)
                .then_some(())
                .ok_or(format!("{schema}: {instance} judged valid={got}"))
        }
    })
}

/// The health report's `watch` detail (the watch in force) has `key` = `expected`.
fn watch_detail(key: &'static str, expected: Value) -> Probe {
    probe(move |ctx| {
        let expected = expected.clone();
        async move {
            let health = ctx
                .services()
                .get::<modular_core::health::HealthAggregator>()
                .ok_or("no aggregator")?;
            let answer = health.force_refresh().await;
            let report = answer
                .reports
                .iter()
                .find(|r| r.module == "jsonschema")
                .ok_or("no report")?;
            let got = json!(report.details)["watch"][key].clone();
            (got == expected)
                .then_some(())
                .ok_or(format!("watch.{key} is {got}"))
        }
    })
}

#[tokio::test]
async fn the_jsonschema_module_passes_the_conformance_kit() {
    let dir = tempfile::tempdir().unwrap();
    let schemas: PathBuf = dir.path().join("schemas");
    write(&schemas, "note.json", NOTE);
    write(&schemas, "mail.json", r#"{"format": "email"}"#);
    // `prefixItems` is a 2020-12 keyword; draft 7 ignores it.
    write(
        &schemas,
        "tuple.json",
        r#"{"prefixItems": [{"type": "integer"}]}"#,
    );
    let extra = write(dir.path(), "extra/label.json", r#"{"type": "string"}"#);
    // A remote `$ref` with credentials in its URL, on an allowed in-process host: the
    // password must not leave (errors, events, logs, health).
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let host = listener.local_addr().unwrap().to_string();
    let remote = axum::Router::new().route(
        "/code.json",
        axum::routing::get(|| async { r#"{"type": "string", "maxLength": 3}"# }),
    );
    tokio::spawn(async move { axum::serve(listener, remote).await });
    write(
        &schemas,
        "code.json",
        &format!(r#"{{"$ref": "http://ada:{SECRET}@{host}/code.json"}}"#),
    );

    let (cut_dir, restore_dir) = (schemas.clone(), schemas.clone());
    let fault = fault_fn(
        move |_ctx| {
            let dir = cut_dir.clone();
            async move {
                write(&dir, "note.json", "{\"properties\": ");
            }
        },
        move |_ctx| {
            let dir = restore_dir.clone();
            async move {
                write(&dir, "note.json", NOTE);
            }
        },
    );
    Conformance::new("jsonschema", |b| b.module(JsonSchemaModule::new()))
        .valid(json!({ "jsonschema": {
            "schemas": { "dir": schemas },
            "watch": { "enabled": true, "debounce": "20ms" },
            "remote": { "allowed_hosts": [host] },
        } }))
        .invalid("jsonschema.schemas.dir", json!("/definitely/not/here"))
        .invalid("jsonschema.default_draft", json!("8"))
        .invalid("jsonschema.remote.timeout", json!("0s"))
        .invalid_at(
            "jsonschema.schemas.files.note",
            [("jsonschema.schemas.files", json!({ "note": extra }))],
        )
        .invalid("jsonschema.formats", json!("sometimes"))
        .change(
            "formats",
            [("jsonschema.formats", json!(false))],
            judges("mail", json!("not an address"), true),
        )
        .change(
            "default_draft",
            [("jsonschema.default_draft", json!("7"))],
            judges("tuple", json!(["x"]), true),
        )
        .change(
            "schemas.files",
            [("jsonschema.schemas.files", json!({ "label": extra }))],
            probe(|ctx| async move {
                let label = live(&ctx).get("label").ok_or("no label schema")?;
                label
                    .validate(&json!(1))
                    .is_err()
                    .then_some(())
                    .ok_or("label accepts a number".to_owned())
            }),
        )
        .change(
            "watch.debounce",
            [("jsonschema.watch.debounce", json!("40ms"))],
            watch_detail("debounce_ms", json!(40)),
        )
        .change(
            "watch.enabled",
            [("jsonschema.watch.enabled", json!(false))],
            watch_detail("enabled", json!(false)),
        )
        .change(
            "watch.enabled back on",
            [("jsonschema.watch.enabled", json!(true))],
            watch_detail("enabled", json!(true)),
        )
        .change(
            "health.optional",
            [("jsonschema.health.optional", json!(true))],
            health_optional_is("jsonschema", true),
        )
        .boxed_fault(fault)
        .secret(SECRET)
        .recover_within(Duration::from_secs(15))
        .run()
        .await
        .assert_passed();
}
