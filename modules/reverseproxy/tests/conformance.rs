//! The module conformance kit (modular-testkit): the backend is a real axum upstream, cut
//! through a `FaultProxy`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use modular_reverseproxy::{Proxy, ReverseProxyModule};
use modular_testkit::FaultProxy;
use modular_testkit::conformance::{
    Conformance, Probe, ProbeContext, fault_fn, health_optional_is, probe,
};
use serde_json::json;
use support::Upstream;

const SECRET: &str = "hunter2-backend-password";

fn live(ctx: &ProbeContext) -> Arc<Proxy> {
    ctx.services().get::<Proxy>().expect("the proxy service")
}

async fn status_of(proxy: &Arc<Proxy>, path: &str) -> u16 {
    let request = http::Request::get(path)
        .header("host", "conformance.test")
        .body(Body::empty())
        .unwrap();
    Arc::clone(proxy).handle(request).await.status().as_u16()
}

/// `path` answers `status` through the live proxy.
fn answers(path: &'static str, status: u16) -> Probe {
    probe(move |ctx| async move {
        let got = status_of(&live(&ctx), path).await;
        (got == status)
            .then_some(())
            .ok_or(format!("{path} answered {got}, expected {status}"))
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_reverse_proxy_passes_the_conformance_kit() {
    let main = Upstream::start("main").await;
    let second = Upstream::start("second").await;
    let cut = Arc::new(FaultProxy::start(main.addr).await.unwrap());
    let (cut_a, cut_b) = (Arc::clone(&cut), Arc::clone(&cut));
    let fault = fault_fn(
        move |_ctx| {
            let cut = Arc::clone(&cut_a);
            async move { cut.cut() }
        },
        move |_ctx| {
            let cut = Arc::clone(&cut_b);
            async move { cut.restore() }
        },
    );
    let main_url = format!("http://{}", cut.addr());
    let main_again = main_url.clone();
    let second_url = second.url();
    let second_hits = second.hits.clone();
    Conformance::new("reverseproxy", |b| b.module(ReverseProxyModule::new()))
        .valid(json!({ "reverseproxy": {
            "routes": [{ "match": { "prefix": "/" }, "pool": "p" }],
            "pools": { "p": {
                "backends": [{ "url": main_url }],
                "health_check": { "path": "/health", "interval": "50ms", "timeout": "200ms",
                                   "unhealthy_threshold": 1, "healthy_threshold": 1 },
            } },
        } }))
        .invalid_at(
            "reverseproxy.pools.p.backends.0.url",
            [(
                "reverseproxy.pools.p.backends",
                json!([{ "url": format!("ftp://admin:{SECRET}@127.0.0.1:21") }]),
            )],
        )
        .invalid_at(
            "reverseproxy.pools.p.backends.0.weight",
            [(
                "reverseproxy.pools.p.backends",
                json!([{ "url": "http://127.0.0.1:1", "weight": 0 }]),
            )],
        )
        .invalid("reverseproxy.pools.p.balance", json!("random"))
        .invalid_at(
            "reverseproxy.routes.0.pool",
            [(
                "reverseproxy.routes",
                json!([{ "match": { "prefix": "/" }, "pool": "ghost" }]),
            )],
        )
        .invalid_at(
            "reverseproxy.routes.0.composite.parts.a.pool",
            [(
                "reverseproxy.routes",
                json!([{ "match": { "prefix": "/" },
                         "composite": { "parts": { "a": { "pool": "ghost" } } } }]),
            )],
        )
        .invalid_at(
            "reverseproxy.pools.p.tls.client_key_file",
            [(
                "reverseproxy.pools.p.tls",
                json!({ "client_cert_file": "/etc/modular/gw.crt" }),
            )],
        )
        .invalid("reverseproxy.retry_budget", json!(2.0))
        .change(
            "routes",
            [(
                "reverseproxy.routes",
                json!([{ "match": { "prefix": "/v2" }, "pool": "p" }]),
            )],
            answers("/v1/x", 404),
        )
        .change(
            "pools",
            [(
                "reverseproxy.pools.p.backends",
                // The cut backend stays, so the fault below still bites (degraded).
                json!([{ "url": main_again }, { "url": second_url }]),
            )],
            probe(move |ctx| {
                let hits = second_hits.clone();
                async move {
                    let before = hits.load(std::sync::atomic::Ordering::SeqCst);
                    let status = status_of(&live(&ctx), "/v2/x").await;
                    let status = status.max(status_of(&live(&ctx), "/v2/y").await);
                    let after = hits.load(std::sync::atomic::Ordering::SeqCst);
                    (status == 200 && after > before)
                        .then_some(())
                        .ok_or(format!(
                            "status {status}, second backend hits {before} -> {after}"
                        ))
                }
            }),
        )
        .change(
            "retry_budget",
            [("reverseproxy.retry_budget", json!(0.5))],
            probe(|ctx| async move {
                let budget = live(&ctx).table().retry_budget();
                (budget == 0.5)
                    .then_some(())
                    .ok_or(format!("retry budget {budget}"))
            }),
        )
        .change(
            "health.optional",
            [("reverseproxy.health.optional", json!(true))],
            health_optional_is("reverseproxy", true),
        )
        .secret(SECRET)
        .boxed_fault(fault)
        .recover_within(Duration::from_secs(10))
        .run()
        .await
        .assert_passed();
}
