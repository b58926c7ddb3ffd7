//! Validation through the `JsonSchemas` service: every draft 2020-12 applicator and
//! validation keyword the module relies on, the older drafts, formats, `$ref` between local
//! files (JSON and YAML), remote `$ref` refused unless allow-listed, and bad files rejected
//! with their path and file.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use serde_json::{Value, json};
use support::{build_error, builder, built, config, fixture, write};

/// Asserts `valid` passes `schema` and `invalid` fails with an error at `instance_path`
/// whose schema path ends with `keyword`.
#[track_caller]
fn check(
    schemas: &modular_jsonschema::JsonSchemas,
    schema: &str,
    valid: Value,
    invalid: Value,
    instance_path: &str,
    keyword: &str,
) {
    assert_eq!(
        schemas.validate(schema, &valid),
        Ok(()),
        "{schema}: {valid} should be valid"
    );
    let errors = schemas
        .validate(schema, &invalid)
        .expect_err(&format!("{schema}: {invalid} should be invalid"));
    assert!(
        errors
            .iter()
            .any(|e| e.instance_path == instance_path && e.schema_path.ends_with(keyword)),
        "{schema}: no error at {instance_path} from {keyword}: {errors:?}"
    );
}

fn schema(body: Value) -> String {
    let mut body = body;
    body["$schema"] = json!("https://json-schema.org/draft/2020-12/schema");
    body.to_string()
}

#[tokio::test]
async fn object_keywords_are_enforced() {
    let f = fixture(
        &[
            (
                "props.json",
                &schema(json!({"type": "object", "properties": {"n": {"type": "integer"}}})),
            ),
            ("req.json", &schema(json!({"required": ["id"]}))),
            (
                "addl.json",
                &schema(json!({"properties": {"a": true}, "additionalProperties": false})),
            ),
            (
                "pattern_props.json",
                &schema(json!({"patternProperties": {"^x-": {"type": "string"}}})),
            ),
            (
                "names.json",
                &schema(json!({"propertyNames": {"maxLength": 3}})),
            ),
            (
                "dep_req.json",
                &schema(json!({"dependentRequired": {"card": ["cvc"]}})),
            ),
            (
                "dep_schemas.json",
                &schema(json!({"dependentSchemas": {"card": {"required": ["zip"]}}})),
            ),
            (
                "count.json",
                &schema(json!({"minProperties": 1, "maxProperties": 2})),
            ),
            (
                "uneval.json",
                &schema(
                    json!({"allOf": [{"properties": {"a": true}}], "unevaluatedProperties": false}),
                ),
            ),
        ],
        json!({}),
    )
    .await;
    let s = &f.schemas;
    check(
        s,
        "props",
        json!({"n": 1}),
        json!({"n": "1"}),
        "/n",
        "/properties/n/type",
    );
    check(s, "req", json!({"id": 1}), json!({}), "", "/required");
    check(
        s,
        "addl",
        json!({"a": 1}),
        json!({"a": 1, "b": 2}),
        "",
        "/additionalProperties",
    );
    check(
        s,
        "pattern_props",
        json!({"x-a": "s", "y": 1}),
        json!({"x-a": 1}),
        "/x-a",
        "/patternProperties/^x-/type",
    );
    check(
        s,
        "names",
        json!({"abc": 1}),
        json!({"abcd": 1}),
        "",
        "/propertyNames/maxLength",
    );
    check(
        s,
        "dep_req",
        json!({"card": 1, "cvc": 2}),
        json!({"card": 1}),
        "",
        "/dependentRequired",
    );
    check(
        s,
        "dep_schemas",
        json!({"card": 1, "zip": 2}),
        json!({"card": 1}),
        "",
        "/dependentSchemas/card/required",
    );
    check(s, "count", json!({"a": 1}), json!({}), "", "/minProperties");
    check(
        s,
        "count",
        json!({"a": 1}),
        json!({"a": 1, "b": 2, "c": 3}),
        "",
        "/maxProperties",
    );
    check(
        s,
        "uneval",
        json!({"a": 1}),
        json!({"a": 1, "b": 2}),
        "",
        "/unevaluatedProperties",
    );
}

#[tokio::test]
async fn array_keywords_are_enforced() {
    let f = fixture(
        &[
            ("items.json", &schema(json!({"items": {"type": "string"}}))),
            (
                "prefix.json",
                &schema(json!({"prefixItems": [{"type": "integer"}], "items": false})),
            ),
            (
                "contains.json",
                &schema(json!({"contains": {"const": 7}, "minContains": 2, "maxContains": 3})),
            ),
            ("len.json", &schema(json!({"minItems": 1, "maxItems": 2}))),
            (
                "contains_one.json",
                &schema(json!({"contains": {"type": "integer"}})),
            ),
            ("unique.json", &schema(json!({"uniqueItems": true}))),
            (
                "uneval_items.json",
                &schema(json!({"prefixItems": [true], "unevaluatedItems": false})),
            ),
        ],
        json!({}),
    )
    .await;
    let s = &f.schemas;
    check(
        s,
        "items",
        json!(["a"]),
        json!(["a", 2]),
        "/1",
        "/items/type",
    );
    check(
        s,
        "prefix",
        json!([1]),
        json!(["1"]),
        "/0",
        "/prefixItems/0/type",
    );
    check(s, "prefix", json!([1]), json!([1, 2]), "/1", "/items");
    check(
        s,
        "contains",
        json!([7, 7]),
        json!([7, 1]),
        "",
        "/minContains",
    );
    check(
        s,
        "contains",
        json!([7, 7]),
        json!([7, 7, 7, 7]),
        "",
        "/maxContains",
    );
    check(
        s,
        "contains_one",
        json!(["a", 1]),
        json!(["a", "b"]),
        "",
        "/contains",
    );
    check(s, "len", json!([1]), json!([]), "", "/minItems");
    check(s, "len", json!([1]), json!([1, 2, 3]), "", "/maxItems");
    check(
        s,
        "unique",
        json!([1, 2]),
        json!([1, 1]),
        "",
        "/uniqueItems",
    );
    check(
        s,
        "uneval_items",
        json!([1]),
        json!([1, 2]),
        "",
        "/unevaluatedItems",
    );
}

#[tokio::test]
async fn scalar_keywords_are_enforced() {
    let f = fixture(
        &[
            ("type.json", &schema(json!({"type": ["string", "null"]}))),
            ("enum.json", &schema(json!({"enum": ["a", "b"]}))),
            ("const.json", &schema(json!({"const": {"v": 1}}))),
            (
                "strlen.json",
                &schema(json!({"minLength": 2, "maxLength": 3})),
            ),
            (
                "pattern.json",
                &schema(json!({"pattern": "^[a-z]+-[0-9]+$"})),
            ),
            ("range.json", &schema(json!({"minimum": 1, "maximum": 10}))),
            (
                "xrange.json",
                &schema(json!({"exclusiveMinimum": 0, "exclusiveMaximum": 1})),
            ),
            ("multiple.json", &schema(json!({"multipleOf": 0.5}))),
        ],
        json!({}),
    )
    .await;
    let s = &f.schemas;
    check(s, "type", json!(null), json!(1), "", "/type");
    check(s, "enum", json!("a"), json!("c"), "", "/enum");
    check(s, "const", json!({"v": 1}), json!({"v": 2}), "", "/const");
    check(s, "strlen", json!("ab"), json!("a"), "", "/minLength");
    check(s, "strlen", json!("ab"), json!("abcd"), "", "/maxLength");
    check(s, "pattern", json!("ab-12"), json!("AB-12"), "", "/pattern");
    check(s, "range", json!(1), json!(0), "", "/minimum");
    check(s, "range", json!(10), json!(11), "", "/maximum");
    check(s, "xrange", json!(0.5), json!(0), "", "/exclusiveMinimum");
    check(s, "xrange", json!(0.5), json!(1), "", "/exclusiveMaximum");
    check(s, "multiple", json!(2.5), json!(2.25), "", "/multipleOf");
}

#[tokio::test]
async fn applicators_combine_subschemas() {
    let f = fixture(
        &[
            ("all.json", &schema(json!({"allOf": [{"type": "integer"}, {"minimum": 3}]}))),
            ("any.json", &schema(json!({"anyOf": [{"type": "string"}, {"type": "integer"}]}))),
            ("one.json", &schema(json!({"oneOf": [{"type": "integer"}, {"minimum": 2}]}))),
            ("not.json", &schema(json!({"not": {"type": "string"}}))),
            (
                "cond.json",
                &schema(json!({
                    "if": {"properties": {"kind": {"const": "card"}}},
                    "then": {"required": ["number"]},
                    "else": {"required": ["iban"]}
                })),
            ),
            (
                "refs.json",
                &schema(json!({
                    "$defs": {"id": {"type": "string", "minLength": 3}},
                    "properties": {"id": {"$ref": "#/$defs/id"}}
                })),
            ),
            (
                "anchor.json",
                &schema(json!({
                    "$defs": {"ident": {"$anchor": "ident", "type": "string", "pattern": "^[a-z]+$"}},
                    "properties": {"id": {"$ref": "#ident"}}
                })),
            ),
            (
                "tree.json",
                &schema(json!({
                    "$dynamicAnchor": "node",
                    "properties": {"kids": {"type": "array", "items": {"$dynamicRef": "#node"}}, "v": {"type": "integer"}}
                })),
            ),
        ],
        json!({}),
    )
    .await;
    let s = &f.schemas;
    check(s, "all", json!(3), json!(2), "", "/allOf/1/minimum");
    check(s, "any", json!("x"), json!(1.5), "", "/anyOf");
    // 2.5 matches only the second branch; 3 matches both.
    check(s, "one", json!(2.5), json!(3), "", "/oneOf");
    check(s, "not", json!(1), json!("x"), "", "/not");
    check(
        s,
        "cond",
        json!({"kind": "card", "number": 1}),
        json!({"kind": "card"}),
        "",
        "/then/required",
    );
    check(
        s,
        "cond",
        json!({"kind": "iban", "iban": 1}),
        json!({"kind": "x"}),
        "",
        "/else/required",
    );
    check(
        s,
        "refs",
        json!({"id": "abc"}),
        json!({"id": "ab"}),
        "/id",
        "/minLength",
    );
    check(
        s,
        "anchor",
        json!({"id": "abc"}),
        json!({"id": "ABC"}),
        "/id",
        "/pattern",
    );
    check(
        s,
        "tree",
        json!({"kids": [{"v": 1, "kids": [{"v": 2}]}]}),
        json!({"kids": [{"kids": [{"v": "x"}]}]}),
        "/kids/0/kids/0/v",
        "/type",
    );
}

#[tokio::test]
async fn formats_are_asserted_when_enabled() {
    let body = schema(json!({
        "properties": {
            "email": {"format": "email"},
            "at": {"format": "date-time"},
            "link": {"format": "uri"},
            "id": {"format": "uuid"}
        }
    }));
    let f = fixture(&[("fmt.json", &body)], json!({})).await;
    let s = &f.schemas;
    let good = json!({
        "email": "ada@example.com",
        "at": "2026-12-02T07:30:00Z",
        "link": "https://example.com/a?b=c",
        "id": "0193a0e4-7b7c-7d2e-9b1a-2f3c4d5e6f70"
    });
    check(
        s,
        "fmt",
        good.clone(),
        json!({"email": "not an address"}),
        "/email",
        "/format",
    );
    check(
        s,
        "fmt",
        good.clone(),
        json!({"at": "yesterday"}),
        "/at",
        "/format",
    );
    check(
        s,
        "fmt",
        good.clone(),
        json!({"link": "no scheme"}),
        "/link",
        "/format",
    );
    check(s, "fmt", good, json!({"id": "0193a0e4"}), "/id", "/format");

    // Off: `format` is an annotation only.
    let off = fixture(
        &[("fmt.json", &body)],
        json!({"jsonschema": {"formats": false}}),
    )
    .await;
    assert_eq!(
        off.schemas
            .validate("fmt", &json!({"email": "not an address"})),
        Ok(())
    );
}

#[tokio::test]
async fn older_drafts_follow_their_own_rules() {
    let f = fixture(
        &[
            // Draft 4: a boolean exclusiveMaximum modifies maximum.
            ("d4.json", r#"{"$schema": "http://json-schema.org/draft-04/schema#", "maximum": 5, "exclusiveMaximum": true}"#),
            ("d6.json", r#"{"$schema": "http://json-schema.org/draft-06/schema#", "const": 1}"#),
            ("d7.json", r#"{"$schema": "http://json-schema.org/draft-07/schema#", "if": {"type": "string"}, "then": {"minLength": 2}}"#),
            ("d2019.json", r#"{"$schema": "https://json-schema.org/draft/2019-09/schema", "dependentRequired": {"a": ["b"]}}"#),
            // Without `$schema`, `default_draft` decides: in draft 7 `items` as an array is a tuple.
            ("plain.json", r#"{"items": [{"type": "integer"}]}"#),
        ],
        json!({"jsonschema": {"default_draft": "7"}}),
    )
    .await;
    let s = &f.schemas;
    check(s, "d4", json!(4), json!(5), "", "/exclusiveMaximum");
    check(s, "d6", json!(1), json!(2), "", "/const");
    check(s, "d7", json!("ab"), json!("a"), "", "/then/minLength");
    check(
        s,
        "d2019",
        json!({"a": 1, "b": 2}),
        json!({"a": 1}),
        "",
        "/dependentRequired",
    );
    check(s, "plain", json!([1, "x"]), json!(["x"]), "/0", "/type");
}

#[tokio::test]
async fn a_ref_between_local_files_resolves_in_json_and_yaml() {
    let f = fixture(
        &[
            (
                "order.schema.json",
                r#"{"type": "object", "properties": {"customer": {"$ref": "common.yaml#/$defs/customer"}}}"#,
            ),
            (
                "common.yaml",
                "$defs:\n  customer:\n    type: object\n    required: [email]\n    properties:\n      email: {type: string, format: email}\n",
            ),
        ],
        json!({}),
    )
    .await;
    assert_eq!(f.schemas.names(), ["common", "order"]);
    check(
        &f.schemas,
        "order",
        json!({"customer": {"email": "a@example.com"}}),
        json!({"customer": {"email": "nope"}}),
        "/customer/email",
        "/format",
    );
}

#[tokio::test]
async fn named_files_join_the_directory_and_may_reference_files_beside_them() {
    let dir = tempfile::tempdir().unwrap();
    let extra = dir.path().join("extra");
    write(
        &extra,
        "shared.json",
        r#"{"$defs": {"title": {"type": "string", "maxLength": 5}}}"#,
    );
    let note = write(
        &extra,
        "note.schema.json",
        r#"{"properties": {"title": {"$ref": "shared.json#/$defs/title"}}}"#,
    );
    let schemas_dir = dir.path().join("schemas");
    write(&schemas_dir, "tag.json", r#"{"type": "string"}"#);
    let (mut app, schemas) = built(json!({"jsonschema": {
        "schemas": {"dir": schemas_dir, "files": {"note": note}},
        "watch": {"enabled": false}
    }}))
    .await;
    assert_eq!(schemas.names(), ["note", "tag"]);
    check(
        &schemas,
        "note",
        json!({"title": "hi"}),
        json!({"title": "too long"}),
        "/title",
        "/maxLength",
    );
    app.stop().await.unwrap();
}

#[tokio::test]
async fn a_directory_file_named_again_under_its_own_name_is_one_schema() {
    let dir = tempfile::tempdir().unwrap();
    let note = write(dir.path(), "note.json", r#"{"type": "object"}"#);
    let (mut app, schemas) = built(config(
        dir.path(),
        json!({"jsonschema": {"schemas": {"files": {"note": note, "memo": note}}}}),
    ))
    .await;
    assert_eq!(schemas.names(), ["memo", "note"]);
    app.stop().await.unwrap();
}

#[tokio::test]
async fn an_unknown_schema_name_is_one_error() {
    let f = fixture(&[("a.json", "{}")], json!({})).await;
    let errors = f.schemas.validate("nope", &json!({})).unwrap_err();
    assert_eq!(errors.len(), 1);
    assert_eq!(errors[0].message, "no schema named \"nope\"");
    assert!(!f.schemas.is_valid("nope", &json!({})));
}

#[tokio::test]
async fn a_remote_ref_is_refused_unless_its_host_is_allowed() {
    // An in-process server holds the remote schema.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let app = axum::Router::new().route(
        "/defs.json",
        axum::routing::get(|| async {
            r#"{"$defs": {"code": {"type": "string", "pattern": "^[A-Z]{3}$"}}}"#
        }),
    );
    tokio::spawn(async move { axum::serve(listener, app).await });
    let body = format!(
        r#"{{"properties": {{"code": {{"$ref": "http://{addr}/defs.json#/$defs/code"}}}}}}"#
    );
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "remote.json", &body);

    let text = build_error(builder(config(dir.path(), json!({})))).await;
    assert!(text.contains("remote.json"), "{text}");
    assert!(text.contains("jsonschema.schemas.dir"), "{text}");
    assert!(
        text.contains("is not in jsonschema.remote.allowed_hosts"),
        "{text}"
    );

    let allowed = config(
        dir.path(),
        json!({"jsonschema": {"remote": {"allowed_hosts": [addr.to_string()]}}}),
    );
    let (mut app, schemas) = built(allowed).await;
    check(
        &schemas,
        "remote",
        json!({"code": "EUR"}),
        json!({"code": "eur"}),
        "/code",
        "/pattern",
    );
    app.stop().await.unwrap();
}

#[tokio::test]
async fn a_ref_outside_the_schema_directories_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let outside = write(dir.path(), "secret.json", r#"{"type": "string"}"#);
    let schemas = dir.path().join("schemas");
    write(
        &schemas,
        "a.json",
        &format!(r#"{{"$ref": "file://{}"}}"#, outside.display()),
    );
    let text = build_error(builder(config(&schemas, json!({})))).await;
    assert!(text.contains("outside the schema directories"), "{text}");
    assert!(text.contains("a.json"), "{text}");
}

#[tokio::test]
async fn bad_files_fail_the_build_with_the_path_and_the_file() {
    let missing_dir = tempfile::tempdir().unwrap().path().join("gone");
    let text = build_error(builder(config(&missing_dir, json!({})))).await;
    assert!(text.contains("jsonschema.schemas.dir"), "{text}");
    assert!(text.contains("gone"), "{text}");

    let dir = tempfile::tempdir().unwrap();
    let text = build_error(builder(config(
        dir.path(),
        json!({"jsonschema": {"schemas": {"files": {"note": dir.path().join("none.json")}}}}),
    )))
    .await;
    assert!(text.contains("jsonschema.schemas.files.note"), "{text}");
    assert!(text.contains("none.json"), "{text}");

    let broken = tempfile::tempdir().unwrap();
    write(
        broken.path(),
        "broken.json",
        "{\n  \"type\": \"object\",\n  \"properties\": {\n}}}",
    );
    let text = build_error(builder(config(broken.path(), json!({})))).await;
    assert!(
        text.contains("broken.json: invalid JSON at line 4"),
        "{text}"
    );

    let yaml = tempfile::tempdir().unwrap();
    write(yaml.path(), "bad.yaml", "type: [unclosed\n");
    let text = build_error(builder(config(yaml.path(), json!({})))).await;
    assert!(text.contains("bad.yaml: invalid YAML"), "{text}");

    let invalid = tempfile::tempdir().unwrap();
    write(invalid.path(), "wrong.json", r#"{"type": "strnig"}"#);
    let text = build_error(builder(config(invalid.path(), json!({})))).await;
    assert!(
        text.contains("wrong.json: not a valid JSON Schema"),
        "{text}"
    );
    assert!(text.contains("/type"), "{text}");

    let twice = tempfile::tempdir().unwrap();
    write(twice.path(), "note.json", "{}");
    write(twice.path(), "note.schema.yaml", "{}");
    let text = build_error(builder(config(twice.path(), json!({})))).await;
    assert!(text.contains("duplicate schema name \"note\""), "{text}");
    assert!(
        text.contains("note.json") && text.contains("note.schema.yaml"),
        "{text}"
    );

    let unresolved = tempfile::tempdir().unwrap();
    write(
        unresolved.path(),
        "dangling.json",
        r##"{"$ref": "#/$defs/missing"}"##,
    );
    let text = build_error(builder(config(unresolved.path(), json!({})))).await;
    assert!(text.contains("dangling.json"), "{text}");
}

/// The value of the first series line holding every one of `parts`.
fn series(text: &str, parts: &[&str]) -> f64 {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .find(|l| parts.iter().all(|p| l.contains(p)))
        .and_then(|l| l.rsplit(' ').next()?.parse().ok())
        .unwrap_or(0.0)
}

#[tokio::test]
async fn validations_are_counted_by_schema_and_outcome_and_timed() {
    let exporter = modular_core::metrics::MetricsExporter::install().unwrap();
    let f = fixture(&[("metered.json", r#"{"type": "integer"}"#)], json!({})).await;
    assert!(f.schemas.validate("metered", &json!(1)).is_ok());
    assert!(f.schemas.is_valid("metered", &json!(2)));
    assert!(f.schemas.validate("metered", &json!("x")).is_err());
    let text = exporter.render();
    let total = "modular_jsonschema_validations_total";
    assert_eq!(
        series(&text, &[total, "schema=\"metered\"", "outcome=\"valid\""]),
        2.0,
        "{text}"
    );
    assert_eq!(
        series(&text, &[total, "schema=\"metered\"", "outcome=\"invalid\""]),
        1.0,
        "{text}"
    );
    let count = "modular_jsonschema_validation_duration_seconds_count";
    assert_eq!(series(&text, &[count, "schema=\"metered\""]), 3.0, "{text}");
    assert!(
        series(
            &text,
            &[
                "modular_jsonschema_compilations_total",
                "outcome=\"applied\""
            ]
        ) >= 1.0,
        "{text}"
    );
}

#[tokio::test]
async fn credentials_in_a_remote_ref_never_reach_the_error() {
    let dir = tempfile::tempdir().unwrap();
    // Allowed but unreachable (a refused port), and not allowed: both errors name the URL.
    let port = modular_testkit::RefusedPort::new();
    let allowed = format!("127.0.0.1:{}", port.port());
    write(
        dir.path(),
        "a.json",
        &format!(r#"{{"$ref": "http://ada:hunter2@{allowed}/a.json"}}"#),
    );
    let text = build_error(builder(config(
        dir.path(),
        json!({"jsonschema": {"remote": {"allowed_hosts": [allowed]}}}),
    )))
    .await;
    assert!(text.contains("cannot fetch"), "{text}");
    assert!(!text.contains("hunter2"), "{text}");
    write(
        dir.path(),
        "a.json",
        r#"{"$ref": "https://ada:hunter2@elsewhere.example/a.json"}"#,
    );
    let text = build_error(builder(config(dir.path(), json!({})))).await;
    assert!(
        text.contains("not in jsonschema.remote.allowed_hosts"),
        "{text}"
    );
    assert!(!text.contains("hunter2"), "{text}");
}
