//! `POST /admin/scheduler/jobs/{name}/run|pause|resume` and the job listing, through the real
//! router and HTTP server, behind the admin token.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use modular_httpserver::{HttpServerHandle, HttpServerModule};
use modular_router::RouterModule;
use modular_scheduler::{JobContext, SchedulerModule};
use serde_json::{Value, json};

const TOKEN: &str = "scheduler-admin-token-0123456789";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jobs_are_run_paused_and_resumed_through_the_admin_endpoints() -> anyhow::Result<()> {
    modular_testkit::install_crypto_provider();
    let runs = Arc::new(AtomicU32::new(0));
    let module = SchedulerModule::new();
    let counter = Arc::clone(&runs);
    module.scheduler().job("report", move |_ctx: JobContext| {
        let counter = Arc::clone(&counter);
        async move {
            counter.fetch_add(1, Ordering::SeqCst);
            Ok(())
        }
    });
    let mut app = modular_testkit::test_builder()
        .config_defaults(json!({
            "admin": { "token": TOKEN },
            "httpserver": { "host": "127.0.0.1", "port": 0, "drain_delay": "0s" },
            // Once a year: only the admin trigger runs it during the test.
            "scheduler": { "jobs": { "report": { "cron": "0 0 0 1 1 *" } } },
        }))
        .module(module)
        .module(RouterModule::new())
        .module(HttpServerModule::new())
        .build()
        .await?;
    app.start().await?;
    let addr = app
        .services()
        .require::<HttpServerHandle>()?
        .local_addr()
        .expect("listening");
    let base = format!("http://{addr}/admin/scheduler/jobs");
    let http = reqwest::Client::new();

    // The guard: no token, a wrong one, admin closed.
    let missing = http.post(format!("{base}/report/run")).send().await?;
    assert_eq!(missing.status(), 401);
    let wrong = http
        .post(format!("{base}/report/run"))
        .bearer_auth("not-the-admin-token-0123456789")
        .send()
        .await?;
    assert_eq!(wrong.status(), 403);
    assert_eq!(runs.load(Ordering::SeqCst), 0);

    let run = http
        .post(format!("{base}/report/run"))
        .bearer_auth(TOKEN)
        .send()
        .await?;
    assert_eq!(run.status(), 202);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while runs.load(Ordering::SeqCst) == 0 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the triggered run never ran"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }

    let paused: Value = http
        .post(format!("{base}/report/pause"))
        .bearer_auth(TOKEN)
        .send()
        .await?
        .json()
        .await?;
    assert_eq!(paused["status"], "paused");
    let listed: Value = http
        .get(&base)
        .bearer_auth(TOKEN)
        .send()
        .await?
        .json()
        .await?;
    let report = listed["jobs"]
        .as_array()
        .unwrap()
        .iter()
        .find(|j| j["name"] == "report")
        .unwrap()
        .clone();
    assert_eq!(report["paused"], json!(true), "{listed}");
    let resumed = http
        .post(format!("{base}/report/resume"))
        .bearer_auth(TOKEN)
        .send()
        .await?;
    assert_eq!(resumed.status(), 202);
    let one: Value = http
        .get(format!("{base}/report"))
        .bearer_auth(TOKEN)
        .send()
        .await?
        .json()
        .await?;
    assert_eq!(one["paused"], json!(false), "{one}");

    let unknown = http
        .post(format!("{base}/nope/run"))
        .bearer_auth(TOKEN)
        .send()
        .await?;
    assert_eq!(unknown.status(), 404);

    // The router's spec describes the endpoints, behind the admin security scheme.
    let origin = base.trim_end_matches("/admin/scheduler/jobs");
    let spec: Value = http
        .get(format!("{origin}/admin/openapi.json"))
        .bearer_auth(TOKEN)
        .send()
        .await?
        .json()
        .await?;
    for path in modular_scheduler::ADMIN_PATHS {
        let item = spec["paths"][path].as_object().expect(path);
        for operation in item.values() {
            assert!(operation["security"][0]["admin_token"].is_array(), "{path}");
        }
    }
    assert!(spec["components"]["schemas"]["JobStatus"]["properties"]["paused"].is_object());
    app.stop().await?;
    Ok(())
}
