//! The module conformance kit (modular-testkit) against a real HTTP upstream behind a fault
//! proxy.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::sync::Arc;

use modular_httpclient::{HttpClient, HttpClientModule};
use modular_testkit::FaultProxy;
use modular_testkit::conformance::{Conformance, ProbeContext, probe};
use serde_json::json;
use support::TestServer;

const PROBE_TOKEN: &str = "probe-token-51c2e8";
const API_KEY: &str = "api-key-9d04b7";
const ROTATED_KEY: &str = "api-key-rotated-3e6f10";

fn client(ctx: &ProbeContext) -> Arc<HttpClient> {
    ctx.services().get::<HttpClient>().expect("http client")
}

/// Sends a request to `/echo` and returns the headers the server saw.
async fn echoed(ctx: &ProbeContext, server: &TestServer, header: &str) -> Result<String, String> {
    client(ctx)
        .get(server.url("/echo"))
        .send()
        .await
        .map_err(|e| e.to_string())?;
    let hit = server
        .hits("/echo")
        .pop()
        .ok_or("no request reached /echo")?;
    Ok(hit
        .headers
        .get(header)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned())
}

#[tokio::test]
async fn the_http_client_passes_the_conformance_kit() {
    let server = Arc::new(TestServer::start().await);
    let proxy = FaultProxy::start(server.addr).await.unwrap();
    let probe_url = format!("http://{}/health?token={PROBE_TOKEN}", proxy.addr());
    let (s1, s2, s3, s4) = (
        server.clone(),
        server.clone(),
        server.clone(),
        server.clone(),
    );
    Conformance::new("httpclient", |b| b.module(HttpClientModule::new()))
        .valid(json!({ "httpclient": {
            "request_timeout": "5s",
            "retry": { "max_retries": 0 },
            "default_headers": { "x-api-key": API_KEY },
            "health_probe": [{ "name": "upstream", "url": probe_url, "timeout": "500ms" }],
        } }))
        .invalid("httpclient.request_timeout", json!("later"))
        .invalid("httpclient.user_agent", json!("bad\nagent"))
        .change(
            "user_agent",
            [("httpclient.user_agent", json!("conformance/2"))],
            probe(move |ctx| {
                let server = s1.clone();
                async move {
                    let seen = echoed(&ctx, &server, "user-agent").await?;
                    (seen == "conformance/2")
                        .then_some(())
                        .ok_or(format!("user-agent {seen}"))
                }
            }),
        )
        .change(
            "default_headers",
            [(
                "httpclient.default_headers",
                json!({ "x-api-key": ROTATED_KEY }),
            )],
            probe(move |ctx| {
                let server = s2.clone();
                async move {
                    let seen = echoed(&ctx, &server, "x-api-key").await?;
                    (seen == ROTATED_KEY)
                        .then_some(())
                        .ok_or("the old key was sent".to_owned())
                }
            }),
        )
        .change(
            "request_timeout",
            [("httpclient.request_timeout", json!("200ms"))],
            probe(move |ctx| {
                let server = s3.clone();
                async move {
                    match client(&ctx).get(server.url("/slow/800")).send().await {
                        Err(error) if error.to_string().to_lowercase().contains("time") => Ok(()),
                        Err(error) => Err(format!("failed otherwise: {error}")),
                        Ok(response) => Err(format!("answered {}", response.status())),
                    }
                }
            }),
        )
        .change(
            "retry",
            [
                ("httpclient.retry.max_retries", json!(2)),
                ("httpclient.retry.base_delay", json!("10ms")),
            ],
            probe(move |ctx| {
                let server = s4.clone();
                async move {
                    // One failure ahead: only a client that retries gets through.
                    static NEXT: std::sync::atomic::AtomicU32 =
                        std::sync::atomic::AtomicU32::new(0);
                    let key = format!(
                        "k{}",
                        NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
                    );
                    server.fail_next(&key, 1);
                    let status = client(&ctx)
                        .get(server.url(&format!("/flaky/{key}")))
                        .send()
                        .await
                        .map_err(|e| e.to_string())?
                        .status()
                        .as_u16();
                    (status == 200)
                        .then_some(())
                        .ok_or(format!("/flaky answered {status}"))
                }
            }),
        )
        .fault(proxy)
        .secret(PROBE_TOKEN)
        .secret(API_KEY)
        .secret(ROTATED_KEY)
        .run()
        .await
        .assert_passed();
}
