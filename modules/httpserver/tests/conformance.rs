//! The module conformance kit (modular-testkit) for the HTTP server, with the stand-in router:
//! changes are observed over real connections, and the fault fills every connection slot.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::sync::{Arc, Mutex};

use modular_core::health::HealthAggregator;
use modular_httpserver::{HttpServerHandle, HttpServerModule};
use modular_testkit::conformance::{Conformance, ProbeContext, fault_fn, probe};
use serde_json::json;
use support::{FakeRouter, Gate};
use tokio::net::TcpStream;

fn addr(ctx: &ProbeContext) -> Result<std::net::SocketAddr, String> {
    ctx.services()
        .get::<HttpServerHandle>()
        .ok_or("no http server")?
        .local_addr()
        .ok_or_else(|| "not listening".to_owned())
}

/// The status code of a `POST /echo` with a body of `len` bytes.
async fn post_echo(ctx: &ProbeContext, len: usize) -> Result<u16, String> {
    let client = reqwest::Client::builder()
        .no_proxy()
        .build()
        .map_err(|e| e.to_string())?;
    let answer = client
        .post(format!("http://{}/echo", addr(ctx)?))
        .body(vec![b'x'; len])
        .send()
        .await
        .map_err(|e| e.to_string())?;
    Ok(answer.status().as_u16())
}

async fn detail(ctx: &ProbeContext, key: &str) -> Option<serde_json::Value> {
    let health = ctx.services().get::<HealthAggregator>()?;
    let answer = health.force_refresh().await;
    answer
        .reports
        .iter()
        .find(|r| r.module == "httpserver" && r.component == "listener")
        .and_then(|r| r.details.get(key).cloned())
}

#[tokio::test]
async fn the_http_server_passes_the_conformance_kit() {
    modular_testkit::install_crypto_provider();
    let gate = Arc::new(Gate::default());
    let held: Arc<Mutex<Vec<TcpStream>>> = Arc::default();
    let (cut_held, restore_held) = (Arc::clone(&held), Arc::clone(&held));
    Conformance::new("httpserver", move |b| {
        b.module(FakeRouter {
            gate: Arc::clone(&gate),
        })
        .module(HttpServerModule::new())
    })
    .valid(json!({
        "httpserver": {
            "host": "127.0.0.1",
            "port": 0,
            "drain_delay": "0s",
            "shutdown_timeout": "5s",
            "max_connections": 4,
            "max_body_size": 1_000_000,
        },
    }))
    .invalid("httpserver.max_connections", json!("plenty"))
    .invalid("httpserver.request_timeout", json!("forever"))
    .change(
        "max_body_size",
        [("httpserver.max_body_size", json!(1000))],
        probe(|ctx| async move {
            let status = post_echo(&ctx, 5000).await?;
            (status == 413)
                .then_some(())
                .ok_or(format!("a 5000-byte body got {status}"))
        }),
    )
    .change(
        "request_timeout",
        [("httpserver.request_timeout", json!("100ms"))],
        probe(|ctx| async move {
            // `/slow` takes 500 ms; a new connection gets the new deadline.
            let client = reqwest::Client::builder()
                .no_proxy()
                .build()
                .map_err(|e| e.to_string())?;
            let answer = client
                .get(format!("http://{}/slow", addr(&ctx)?))
                .send()
                .await
                .map_err(|e| e.to_string())?;
            let status = answer.status().as_u16();
            (status == 503)
                .then_some(())
                .ok_or(format!("/slow answered {status}"))
        }),
    )
    .change(
        "max_connections",
        [("httpserver.max_connections", json!(3))],
        probe(|ctx| async move {
            let max = detail(&ctx, "max_connections").await;
            (max == Some(json!(3)))
                .then_some(())
                .ok_or(format!("max_connections {max:?}"))
        }),
    )
    .boxed_fault(fault_fn(
        // Every connection slot taken by idle clients: new clients wait in the backlog.
        move |ctx| {
            let held = Arc::clone(&cut_held);
            async move {
                let Ok(addr) = addr(&ctx) else { return };
                for _ in 0..3 {
                    if let Ok(stream) = TcpStream::connect(addr).await {
                        held.lock().unwrap().push(stream);
                    }
                }
            }
        },
        move |_ctx| {
            let held = Arc::clone(&restore_held);
            async move {
                held.lock().unwrap().clear();
            }
        },
    ))
    .run()
    .await
    .assert_passed();
}
