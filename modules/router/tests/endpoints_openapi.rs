//! `GET /admin/openapi.json`: the spec of what the router serves, behind the admin guard, with
//! the modules' fragments merged in.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use modular_core::http::RouteRegistry;
use modular_core::{BoxError, InitContext, Module};
use support::{TOKEN, admin_yaml, json, start, start_with};
use utoipa::openapi::path::{HttpMethod, OperationBuilder, PathItem, PathsBuilder};
use utoipa::openapi::{OpenApiBuilder, ResponseBuilder};

/// Describes the greeter's `/greet` the way a module would.
struct DescribesGreet;

#[modular_core::async_trait]
impl Module for DescribesGreet {
    fn name(&self) -> &str {
        "describes-greet"
    }

    async fn init(&mut self, ctx: &mut InitContext<'_>) -> Result<(), BoxError> {
        let operation = OperationBuilder::new()
            .summary(Some("The greeting"))
            .response("200", ResponseBuilder::new().description("the greeting"))
            .build();
        let fragment = OpenApiBuilder::new()
            .paths(PathsBuilder::new().path("/greet", PathItem::new(HttpMethod::Get, operation)))
            .build();
        RouteRegistry::shared(ctx.services()).document("greeter", fragment);
        Ok(())
    }
}

#[tokio::test]
async fn the_spec_needs_the_admin_token() -> anyhow::Result<()> {
    let test = start(&admin_yaml()).await?;
    let (status, body) = json(test.get("/admin/openapi.json")).await?;
    assert_eq!(status, 401, "{body}");
    let (status, _) = json(test.get("/admin/openapi.json").bearer_auth("x".repeat(30))).await?;
    assert_eq!(status, 403);
    Ok(())
}

#[tokio::test]
async fn the_spec_describes_the_built_in_endpoints_with_admin_security() -> anyhow::Result<()> {
    let test = start(&admin_yaml()).await?;
    let (status, spec) = json(test.get("/admin/openapi.json").bearer_auth(TOKEN)).await?;
    assert_eq!(status, 200);
    assert_eq!(spec["openapi"], "3.1.0");
    let paths = spec["paths"].as_object().unwrap();
    for path in [
        "/health",
        "/health/ready",
        "/health/live",
        "/health/checks/{module}",
        "/readyz",
        "/livez",
        "/startupz",
        "/admin/reload",
        "/admin/reload/plan",
        "/admin/config",
        "/admin/config/history",
        "/admin/config/rollback/{version}",
        "/admin/config/overrides",
        "/admin/config/overrides/{key}",
        "/admin/openapi.json",
    ] {
        assert!(
            paths.contains_key(path),
            "{path} missing from {:?}",
            paths.keys()
        );
    }
    assert_eq!(
        spec["components"]["securitySchemes"]["admin_token"]["scheme"],
        "bearer"
    );
    for (path, item) in paths {
        for (method, operation) in item.as_object().unwrap() {
            let secured = operation["security"][0].get("admin_token").is_some();
            assert_eq!(secured, path.starts_with("/admin/"), "{method} {path}");
            // The guard's own answers, described once by the router for every secured
            // operation: 401 and 403 with the error body.
            for status in ["401", "403"] {
                let answer = &operation["responses"][status];
                assert_eq!(
                    answer.is_object(),
                    secured,
                    "{method} {path} {status}: {answer}"
                );
                if secured {
                    assert_eq!(
                        answer["content"]["application/json"]["schema"]["$ref"],
                        "#/components/schemas/ErrorBody",
                        "{method} {path} {status}"
                    );
                }
            }
        }
    }
    // Schemas come from the answer types.
    let outcome = &spec["components"]["schemas"]["ReloadOutcome"];
    assert!(outcome["properties"]["status"].is_object(), "{outcome}");
    assert!(spec["components"]["schemas"]["HealthAnswer"]["properties"]["checks"].is_object());
    Ok(())
}

#[tokio::test]
async fn module_fragments_are_merged_into_the_spec() -> anyhow::Result<()> {
    let test = start_with(&admin_yaml(), |b| b.module(DescribesGreet)).await?;
    let (_, spec) = json(test.get("/admin/openapi.json").bearer_auth(TOKEN)).await?;
    assert_eq!(spec["paths"]["/greet"]["get"]["summary"], "The greeting");
    // The built-in paths are still there.
    assert!(spec["paths"]["/admin/reload"]["post"].is_object());
    Ok(())
}
