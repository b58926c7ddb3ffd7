//! Rate and concurrency limits over a real socket: load shedding while a request is held,
//! limits changed by a reload, unknown routes rejected, and the built-in endpoints exempt.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use support::{start, text};

#[tokio::test]
async fn a_concurrency_limit_of_one_sheds_a_second_request_with_503_and_retry_after()
-> anyhow::Result<()> {
    let test = start("router:\n  limits:\n    global:\n      concurrency: 1\n").await?;
    let held = tokio::spawn(test.get("/wait").send());
    test.gate.wait_entered().await;

    let shed = test.get("/greet").send().await?;
    assert_eq!(shed.status(), 503);
    assert_eq!(shed.headers()["retry-after"], "1");
    // The probes are never limited.
    assert_eq!(test.get("/readyz").send().await?.status(), 200);

    test.gate.open();
    assert_eq!(held.await??.status(), 200);
    assert_eq!(text(test.get("/greet")).await?, (200, "hello".to_owned()));
    Ok(())
}

#[tokio::test]
async fn a_route_rate_limit_added_by_a_reload_answers_429_on_that_route_only() -> anyhow::Result<()>
{
    let test = start("").await?;
    for _ in 0..3 {
        assert_eq!(test.get("/greet/ann").send().await?.status(), 200);
    }
    test.write_config(
        "router:\n  limits:\n    routes:\n      /greet/{name}:\n        rate: {requests: 1, per: 1h}\n",
    )?;
    let outcome = test.app.reload().await?;
    assert!(outcome.is_applied(), "{outcome:?}");

    assert_eq!(test.get("/greet/ann").send().await?.status(), 200);
    let limited = test.get("/greet/bob").send().await?;
    assert_eq!(limited.status(), 429);
    assert_eq!(limited.headers()["retry-after"], "3600");
    assert_eq!(test.get("/greet").send().await?.status(), 200);

    test.write_config("")?;
    assert!(test.app.reload().await?.is_applied());
    assert_eq!(test.get("/greet/bob").send().await?.status(), 200);
    Ok(())
}

#[tokio::test]
async fn a_limit_for_a_route_nobody_registered_fails_the_reload_naming_it() -> anyhow::Result<()> {
    let test = start("").await?;
    test.write_config(
        "router:\n  limits:\n    routes:\n      /nowhere:\n        concurrency: 1\n",
    )?;
    let outcome = test.app.reload().await?;
    assert!(!outcome.is_applied(), "{outcome:?}");
    let error = outcome.error.unwrap_or_default();
    assert!(error.contains("router.limits.routes./nowhere"), "{error}");

    test.write_config("router:\n  limits:\n    global:\n      rate: {requests: 0, per: 0s}\n")?;
    let outcome = test.app.reload().await?;
    let paths: Vec<_> = outcome.errors.iter().map(|e| e.path.as_str()).collect();
    assert_eq!(
        paths,
        [
            "router.limits.global.rate.requests",
            "router.limits.global.rate.per"
        ],
        "{outcome:?}"
    );
    Ok(())
}
