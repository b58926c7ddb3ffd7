//! The module conformance kit (modular-testkit): the scheduler persisting on PostgreSQL
//! (through the database module's pool) behind a fault proxy; every dynamic field is
//! observed on the running scheduler.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::Duration;

use modular_database::DatabaseModule;
use modular_scheduler::{JobContext, JobStatus, MisfirePolicy, Scheduler, SchedulerModule};
use modular_testkit::conformance::{Conformance, Probe, ProbeContext, health_optional_is, probe};
use modular_testkit::{FaultProxy, Service};
use serde_json::json;

const PASSWORD: &str = "scheduler-conformance-pw-51c2";

fn scheduler(ctx: &ProbeContext) -> Arc<Scheduler> {
    ctx.services()
        .get::<Scheduler>()
        .expect("the Scheduler service")
}

fn job_probe(check: impl Fn(&JobStatus) -> Result<(), String> + Send + Sync + 'static) -> Probe {
    let check = Arc::new(check);
    probe(move |ctx| {
        let check = Arc::clone(&check);
        async move {
            let status = scheduler(&ctx).status("report").ok_or("no job report")?;
            check(&status)
        }
    })
}

fn expect<T: PartialEq + std::fmt::Debug>(what: &str, got: T, want: T) -> Result<(), String> {
    (got == want)
        .then_some(())
        .ok_or(format!("{what} is {got:?}, want {want:?}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_scheduler_module_passes_the_conformance_kit() {
    let Some(pg) = modular_testkit::service(Service::Postgres) else {
        return;
    };
    let rest = pg.split_once("://").unwrap().1;
    let (user, rest) = rest.split_once('@').unwrap();
    let (host, database) = rest.split_once('/').unwrap();
    let proxy = FaultProxy::start(host.parse().unwrap()).await.unwrap();
    // Trust auth ignores the password: it stands for the credential a real URL carries.
    let url = format!("postgres://{user}:{PASSWORD}@{}/{database}", proxy.addr());
    let job = "report";
    Conformance::new("scheduler", |b| {
        b.module(DatabaseModule::new()).module(
            SchedulerModule::new().job("report", |_ctx: JobContext| async { Ok(()) }),
        )
    })
    .valid(json!({
        "database": { "connections": { "primary": {
            "url": url, "connect_timeout": "2s", "acquire_timeout": "1s", "ping_timeout": "1s",
        } } },
        "scheduler": {
            "persistence": { "connection": "primary", "instance": "conformance" },
            "jobs": { job: { "cron": "0 0 0 1 1 *" } },
        },
    }))
    .invalid("scheduler.workers", json!(0))
    .invalid("scheduler.jobs.report.cron", json!("0 0 99 * * *"))
    .invalid("scheduler.jobs.report.timezone", json!("Mars/Olympus"))
    .invalid("scheduler.jobs.ghost", json!({ "cron": "* * * * *" }))
    .invalid("scheduler.jobs.report.retry.max_attempts", json!(0))
    .change(
        "workers",
        [("scheduler.workers", json!(7))],
        probe(|ctx| async move { expect("workers", scheduler(&ctx).workers(), 7) }),
    )
    .change(
        "queue_capacity",
        [("scheduler.queue_capacity", json!(9))],
        probe(|ctx| async move { expect("queue_capacity", scheduler(&ctx).queue_capacity(), 9) }),
    )
    .change(
        "failure_threshold",
        [("scheduler.failure_threshold", json!(5))],
        probe(|ctx| async move {
            expect("failure_threshold", scheduler(&ctx).failure_threshold(), 5)
        }),
    )
    .change(
        "persistence.lease",
        [("scheduler.persistence.lease", json!("7s"))],
        probe(|ctx| async move {
            let (lease, _) = scheduler(&ctx).persistence_settings().ok_or("no store")?;
            expect("lease", lease, Duration::from_secs(7))
        }),
    )
    .change(
        "persistence.history",
        [("scheduler.persistence.history", json!(3))],
        probe(|ctx| async move {
            let (_, history) = scheduler(&ctx).persistence_settings().ok_or("no store")?;
            expect("history", history, 3)
        }),
    )
    .change(
        "jobs.report.cron",
        [("scheduler.jobs.report.cron", json!("0 0 0 2 1 *"))],
        job_probe(|s| expect("cron", s.cron.as_deref(), Some("0 0 0 2 1 *"))),
    )
    .change(
        "jobs.report.timezone",
        [("scheduler.jobs.report.timezone", json!("Asia/Tokyo"))],
        job_probe(|s| {
            // Midnight on 1 January in Tokyo is 15:00 UTC the day before.
            let next = s.next_run.ok_or("no next run")?;
            expect("next run hour (UTC)", next.format("%H").to_string(), "15".to_owned())
        }),
    )
    .change(
        "jobs.report.enabled",
        [("scheduler.jobs.report.enabled", json!(false))],
        job_probe(|s| expect("enabled", s.enabled, false)),
    )
    .change(
        "jobs.report.timeout",
        [("scheduler.jobs.report.timeout", json!("3s"))],
        job_probe(|s| expect("timeout", s.timeout, Duration::from_secs(3))),
    )
    .change(
        "jobs.report.max_concurrent",
        [("scheduler.jobs.report.max_concurrent", json!(4))],
        job_probe(|s| expect("max_concurrent", s.max_concurrent, 4)),
    )
    .change(
        "jobs.report.retry",
        [("scheduler.jobs.report.retry.max_attempts", json!(6))],
        job_probe(|s| expect("max_attempts", s.max_attempts, 6)),
    )
    .change(
        "jobs.report.misfire",
        [("scheduler.jobs.report.misfire", json!("skip"))],
        job_probe(|s| expect("misfire", s.misfire, MisfirePolicy::Skip)),
    )
    .change(
        "jobs.report.tolerance",
        [("scheduler.jobs.report.tolerance", json!("9s"))],
        job_probe(|s| expect("tolerance", s.tolerance, Duration::from_secs(9))),
    )
    .change(
        "health.optional",
        [("scheduler.health.optional", json!(true))],
        health_optional_is("scheduler", true),
    )
    .fault(proxy)
    .secret(PASSWORD)
    .recover_within(Duration::from_secs(20))
    .run()
    .await
    .assert_passed();
}
