//! The router's own series in `GET /metrics`: requests by route template, method and status
//! class, their duration, and limit rejections; never a raw path.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use support::start;

#[tokio::test]
async fn requests_and_limit_rejections_are_counted_by_route_template_never_by_raw_path()
-> anyhow::Result<()> {
    let test = start(
        "metrics:\n  enabled: true\nrouter:\n  limits:\n    routes:\n      /greet/{name}:\n        rate: {requests: 1, per: 1h}\n",
    )
    .await?;
    assert_eq!(test.get("/greet/ann-4711").send().await?.status(), 200);
    assert_eq!(test.get("/greet/bob-4712").send().await?.status(), 429);
    assert_eq!(test.get("/orders/4713").send().await?.status(), 404);
    assert_eq!(
        test.post("/greet").send().await?.status(),
        405,
        "a wrong method"
    );

    let body = test.get("/metrics").send().await?.text().await?;
    for series in [
        "modular_router_requests_total{route=\"/greet/{name}\",method=\"GET\",status_class=\"2xx\"} 1",
        "modular_router_requests_total{route=\"/greet/{name}\",method=\"GET\",status_class=\"4xx\"} 1",
        "modular_router_requests_total{route=\"unmatched\",method=\"GET\",status_class=\"4xx\"} 1",
        "modular_router_requests_total{route=\"/greet\",method=\"POST\",status_class=\"4xx\"} 1",
        "modular_router_request_duration_seconds_bucket{route=\"/greet/{name}\"",
        "modular_router_limit_rejections_total{route=\"/greet/{name}\",limit=\"rate\"} 1",
    ] {
        assert!(body.contains(series), "{series} missing from:\n{body}");
    }
    for raw in ["ann-4711", "bob-4712", "4713"] {
        assert!(
            !body.contains(raw),
            "the raw path {raw} became a label:\n{body}"
        );
    }
    Ok(())
}
