//! The security headers over a real socket: on by default, changed and turned off by a reload,
//! HSTS only when enabled.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use support::start;

#[tokio::test]
async fn every_answer_carries_the_default_security_headers_and_no_hsts() -> anyhow::Result<()> {
    let test = start("").await?;
    for path in ["/greet", "/not-a-route", "/readyz"] {
        let response = test.get(path).send().await?;
        let headers = response.headers();
        assert_eq!(headers["x-content-type-options"], "nosniff", "{path}");
        assert_eq!(headers["x-frame-options"], "DENY", "{path}");
        assert_eq!(headers["referrer-policy"], "no-referrer", "{path}");
        assert!(headers.get("strict-transport-security").is_none(), "{path}");
    }
    Ok(())
}

#[tokio::test]
async fn a_reload_changes_frame_options_referrer_policy_and_hsts_then_turns_them_off()
-> anyhow::Result<()> {
    let test = start("").await?;
    test.write_config(
        "router:\n  security_headers:\n    frame_options: sameorigin\n    referrer_policy: strict-origin-when-cross-origin\n    hsts:\n      enabled: true\n      max_age: 1day\n",
    )?;
    assert!(test.app.reload().await?.is_applied());
    let response = test.get("/greet").send().await?;
    let headers = response.headers();
    assert_eq!(headers["x-frame-options"], "SAMEORIGIN");
    assert_eq!(
        headers["referrer-policy"],
        "strict-origin-when-cross-origin"
    );
    assert_eq!(
        headers["strict-transport-security"],
        "max-age=86400; includeSubDomains"
    );
    assert_eq!(headers["x-content-type-options"], "nosniff");

    test.write_config("router:\n  security_headers:\n    frame_options: off\n")?;
    let outcome = test.app.reload().await?;
    assert!(outcome.is_applied(), "{outcome:?}");
    let response = test.get("/greet").send().await?;
    assert!(response.headers().get("x-frame-options").is_none());
    assert!(
        response
            .headers()
            .get("strict-transport-security")
            .is_none()
    );
    assert_eq!(response.headers()["x-content-type-options"], "nosniff");

    test.write_config("router:\n  security_headers:\n    enabled: false\n")?;
    assert!(test.app.reload().await?.is_applied());
    let response = test.get("/greet").send().await?;
    for name in [
        "x-content-type-options",
        "x-frame-options",
        "referrer-policy",
    ] {
        assert!(response.headers().get(name).is_none(), "{name}");
    }
    Ok(())
}

#[tokio::test]
async fn an_invalid_referrer_policy_is_rejected_with_its_path() -> anyhow::Result<()> {
    let test = start("").await?;
    test.write_config("router:\n  security_headers:\n    referrer_policy: \"bad\\npolicy\"\n")?;
    let outcome = test.app.reload().await?;
    assert!(
        outcome
            .errors
            .iter()
            .any(|e| e.path == "router.security_headers.referrer_policy"),
        "{outcome:?}"
    );
    Ok(())
}
