//! JSON Schema benchmarks (issue 17), side by side in one run:
//! - `jsonschema/validate_1kb/raw`: the `jsonschema` crate's compiled validator
//!   (`Validator::is_valid`) over a valid 1 KB order document;
//! - `jsonschema/validate_1kb/module`: the same document through the module's service
//!   (`JsonSchemas::validate("order", ..)`: a lock-free load of the live set, the lookup by
//!   name, the validation); target ≤ 1.1x raw;
//! - `jsonschema/validate_100kb/raw` and `/module`: the same with a 100 KB document.
//!
//! The schema uses `$ref`, `pattern`, `format` (uuid, email), numeric bounds and
//! `additionalProperties: false`; formats are asserted on both sides.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use criterion::{Criterion, criterion_group, criterion_main};
use modular_jsonschema::{JsonSchemaModule, JsonSchemas};
use serde_json::{Value, json};

fn schema() -> Value {
    json!({
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "type": "object",
        "required": ["id", "items"],
        "properties": {
            "id": {"type": "string", "format": "uuid"},
            "items": {"type": "array", "items": {"$ref": "#/$defs/item"}}
        },
        "$defs": {
            "item": {
                "type": "object",
                "required": ["sku", "qty", "price"],
                "additionalProperties": false,
                "properties": {
                    "sku": {"type": "string", "pattern": "^[A-Z]{3}-[0-9]{4}$"},
                    "qty": {"type": "integer", "minimum": 1},
                    "price": {"type": "number", "exclusiveMinimum": 0},
                    "note": {"type": "string", "maxLength": 200},
                    "email": {"type": "string", "format": "email"}
                }
            }
        }
    })
}

/// A valid order of about `bytes` bytes of JSON.
fn document(bytes: usize) -> Value {
    let mut items = Vec::new();
    let mut doc = json!({"id": "0193a0e4-7b7c-7d2e-9b1a-2f3c4d5e6f70", "items": []});
    while doc.to_string().len() < bytes {
        let i = items.len();
        items.push(json!({
            "sku": format!("ABC-{:04}", i % 10_000),
            "qty": i + 1,
            "price": 9.5,
            "note": "gift wrap",
            "email": "ada@example.com"
        }));
        doc["items"] = Value::Array(items.clone());
    }
    doc
}

fn validate(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("order.json"), schema().to_string()).unwrap();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let app = runtime.block_on(async {
        modular_core::Application::builder()
            .env_prefix(None)
            .handle_signals(false)
            .config_defaults(json!({"jsonschema": {
                "schemas": {"dir": dir.path()},
                "watch": {"enabled": false}
            }}))
            .module(JsonSchemaModule::new())
            .build()
            .await
            .unwrap()
    });
    let schemas = app.services().require::<JsonSchemas>().unwrap();
    let raw = jsonschema::options()
        .should_validate_formats(true)
        .build(&schema())
        .unwrap();
    for (name, bytes) in [("validate_1kb", 1024), ("validate_100kb", 100 * 1024)] {
        let doc = document(bytes);
        assert!(raw.is_valid(&doc));
        assert!(schemas.validate("order", &doc).is_ok());
        let mut group = c.benchmark_group(format!("jsonschema/{name}"));
        group.bench_function("raw", |b| {
            b.iter(|| raw.is_valid(std::hint::black_box(&doc)))
        });
        group.bench_function("module", |b| {
            b.iter(|| schemas.validate("order", std::hint::black_box(&doc)))
        });
        group.finish();
    }
    drop(app);
}

criterion_group!(benches, validate);
criterion_main!(benches);
