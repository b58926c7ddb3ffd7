//! The module conformance kit (modular-testkit) for the router, served by the real HTTP
//! server: every change is observed over HTTP.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::sync::Arc;

use modular_core::http::RouteRegistry;
use modular_httpserver::{HttpServerHandle, HttpServerModule};
use modular_router::RouterModule;
use modular_testkit::conformance::{Conformance, ProbeContext, fault_fn, probe};
use serde_json::json;
use support::{Gate, Greeter, TOKEN};

const ORIGIN: &str = "https://app.example.com";

fn base(ctx: &ProbeContext) -> Result<String, String> {
    let addr = ctx
        .services()
        .get::<HttpServerHandle>()
        .ok_or("no http server")?
        .local_addr()
        .ok_or("not listening")?;
    Ok(format!("http://{addr}"))
}

fn client() -> Result<reqwest::Client, String> {
    // Raw answers: the compression probe reads `content-encoding`, which a decoding client
    // removes (the workspace's reqwest has gzip, brotli and zstd on for the httpclient).
    reqwest::Client::builder()
        .no_proxy()
        .no_gzip()
        .no_brotli()
        .no_zstd()
        .build()
        .map_err(|e| e.to_string())
}

async fn get(
    ctx: &ProbeContext,
    path: &str,
    accept_gzip: bool,
) -> Result<reqwest::Response, String> {
    let mut request = client()?.get(format!("{}{path}", base(ctx)?));
    if accept_gzip {
        request = request.header("accept-encoding", "gzip");
    }
    request.send().await.map_err(|e| e.to_string())
}

#[tokio::test]
async fn the_router_passes_the_conformance_kit() {
    modular_testkit::install_crypto_provider();
    let gate = Arc::new(Gate::default());
    Conformance::new("router", move |b| {
        b.module(Greeter(Arc::clone(&gate)))
            .module(RouterModule::new())
            .module(HttpServerModule::new())
    })
    .valid(json!({
        "httpserver": { "host": "127.0.0.1", "port": 0, "drain_delay": "0s" },
        "admin": { "token": TOKEN },
        "router": { "request_id_header": "x-request-id", "compression": false },
    }))
    .invalid("router.request_timeout", json!("soon"))
    .invalid("router.request_id_header", json!("not a header"))
    .change(
        "request_id_header",
        [("router.request_id_header", json!("x-correlation-id"))],
        probe(|ctx| async move {
            let answer = get(&ctx, "/greet", false).await?;
            answer
                .headers()
                .contains_key("x-correlation-id")
                .then_some(())
                .ok_or("no x-correlation-id in the answer".to_owned())
        }),
    )
    .change(
        "compression",
        [("router.compression", json!(true))],
        probe(|ctx| async move {
            let answer = get(&ctx, "/big", true).await?;
            let encoding = answer
                .headers()
                .get("content-encoding")
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
                .to_owned();
            (encoding == "gzip")
                .then_some(())
                .ok_or(format!("content-encoding {encoding:?}"))
        }),
    )
    .change(
        "routes (a toggle)",
        [
            ("router.routes./greet/{name}.enabled", json!(false)),
            ("router.routes./greet/{name}.disabled_status", json!(503)),
        ],
        probe(|ctx| async move {
            let status = get(&ctx, "/greet/ada", false).await?.status().as_u16();
            (status == 503)
                .then_some(())
                .ok_or(format!("/greet/ada answered {status}"))
        }),
    )
    .change(
        "request_timeout",
        [("router.request_timeout", json!("100ms"))],
        probe(|ctx| async move {
            // `/slow` takes 300 ms: cut at the new timeout.
            let status = get(&ctx, "/slow", false).await?.status().as_u16();
            (status == 503)
                .then_some(())
                .ok_or(format!("/slow answered {status}"))
        }),
    )
    .change(
        "body_limit",
        [("router.body_limit", json!(1000))],
        probe(|ctx| async move {
            let status = client()?
                .post(format!("{}/echo", base(&ctx)?))
                .body(vec![b'x'; 5000])
                .send()
                .await
                .map_err(|e| e.to_string())?
                .status()
                .as_u16();
            (status == 413)
                .then_some(())
                .ok_or(format!("a 5000-byte body got {status}"))
        }),
    )
    .change(
        "cors.allowed_origins",
        [("router.cors.allowed_origins", json!([ORIGIN]))],
        probe(|ctx| async move {
            let answer = client()?
                .get(format!("{}/greet", base(&ctx)?))
                .header("origin", ORIGIN)
                .send()
                .await
                .map_err(|e| e.to_string())?;
            let allowed = answer
                .headers()
                .get("access-control-allow-origin")
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
                .to_owned();
            (allowed == ORIGIN)
                .then_some(())
                .ok_or(format!("access-control-allow-origin {allowed:?}"))
        }),
    )
    .boxed_fault(fault_fn(
        // Two modules claiming one path: the router cannot be rebuilt and reports it.
        |ctx| async move {
            let routes = RouteRegistry::shared(ctx.services());
            routes.route(
                "intruder",
                "/greet",
                axum::routing::get(|| async { "mine" }),
            );
        },
        |ctx| async move {
            RouteRegistry::shared(ctx.services()).remove("intruder");
        },
    ))
    .secret(TOKEN)
    .run()
    .await
    .assert_passed();
}
