//! Shared fixtures: an application with the scheduler over a config file it can rewrite,
//! a recording job handler and event helpers.
#![allow(
    dead_code,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::type_complexity
)]

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use modular_core::events::{AttributesReader as _, EventFilter, EventStream};
use modular_core::health::{HealthOptions, HealthReport};
use modular_core::{Application, ApplicationBuilder};
use modular_scheduler::{Clock, JobContext, Scheduler, SchedulerModule};
use serde_json::{Value, json};

/// What a recording handler saw: one entry per attempt.
#[derive(Clone, Debug, PartialEq)]
pub struct Call {
    pub scheduled_at: DateTime<Utc>,
    pub attempt: u32,
    pub at: tokio::time::Instant,
    pub trigger: String,
}

/// A handler that records every attempt, then behaves as `behave` says.
#[derive(Clone, Default)]
pub struct Recorder {
    pub calls: Arc<Mutex<Vec<Call>>>,
}

impl Recorder {
    pub fn calls(&self) -> Vec<Call> {
        self.calls.lock().unwrap().clone()
    }

    pub fn count(&self) -> usize {
        self.calls.lock().unwrap().len()
    }

    pub fn scheduled(&self) -> Vec<DateTime<Utc>> {
        self.calls().iter().map(|c| c.scheduled_at).collect()
    }

    /// A handler that records and succeeds.
    pub fn ok(&self) -> impl Fn(JobContext) -> futures_ready::Ready + Send + Sync + 'static {
        self.with(|_| Ok(()))
    }

    /// A handler that records and returns `result(ctx)`.
    pub fn with(
        &self,
        result: impl Fn(&JobContext) -> Result<(), String> + Send + Sync + 'static,
    ) -> impl Fn(JobContext) -> futures_ready::Ready + Send + Sync + 'static {
        let calls = Arc::clone(&self.calls);
        move |ctx: JobContext| {
            calls.lock().unwrap().push(Call {
                scheduled_at: ctx.scheduled_at,
                attempt: ctx.attempt,
                at: tokio::time::Instant::now(),
                trigger: ctx.trigger.as_str().to_owned(),
            });
            futures_ready::Ready(Some(result(&ctx).map_err(Into::into)))
        }
    }

    /// A handler that records, then sleeps `for_` (tokio time) and succeeds.
    pub fn sleeping(
        &self,
        for_: Duration,
    ) -> impl Fn(
        JobContext,
    ) -> std::pin::Pin<
        Box<dyn std::future::Future<Output = modular_scheduler::JobResult> + Send>,
    > + Send
    + Sync
    + 'static {
        let calls = Arc::clone(&self.calls);
        move |ctx: JobContext| {
            calls.lock().unwrap().push(Call {
                scheduled_at: ctx.scheduled_at,
                attempt: ctx.attempt,
                at: tokio::time::Instant::now(),
                trigger: ctx.trigger.as_str().to_owned(),
            });
            Box::pin(async move {
                tokio::time::sleep(for_).await;
                Ok(())
            })
        }
    }
}

pub mod futures_ready {
    /// A future ready at once (keeps handlers `Fn`).
    pub struct Ready(pub Option<modular_scheduler::JobResult>);
    impl std::future::Future for Ready {
        type Output = modular_scheduler::JobResult;
        fn poll(
            mut self: std::pin::Pin<&mut Self>,
            _: &mut std::task::Context<'_>,
        ) -> std::task::Poll<Self::Output> {
            std::task::Poll::Ready(self.0.take().unwrap_or(Ok(())))
        }
    }
}

/// A wall time, `2026-03-28T00:00:00Z` style.
pub fn utc(text: &str) -> DateTime<Utc> {
    text.parse().unwrap()
}

/// Merges `extra` into `base`, object by object.
pub fn merge(base: &mut Value, extra: Value) {
    match (base, extra) {
        (Value::Object(base), Value::Object(extra)) => {
            for (key, value) in extra {
                merge(base.entry(key).or_insert(Value::Null), value);
            }
        }
        (slot, value) => *slot = value,
    }
}

/// A config file an application reads and a test rewrites before `reload()`.
pub struct ConfigFile {
    pub dir: tempfile::TempDir,
    pub path: PathBuf,
}

impl ConfigFile {
    pub fn new(config: &Value) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config.json");
        std::fs::write(&path, serde_json::to_vec_pretty(config).unwrap()).unwrap();
        Self { dir, path }
    }

    pub fn write(&self, config: &Value) {
        std::fs::write(&self.path, serde_json::to_vec_pretty(config).unwrap()).unwrap();
    }
}

/// The application builder over the config file with `module`.
pub fn builder(file: &ConfigFile, module: SchedulerModule) -> ApplicationBuilder {
    // No runtime ticker: paused time then jumps straight from one job timer to the next.
    modular_testkit::test_builder()
        .with_health_options(HealthOptions::new().with_runtime_check(false))
        .config_file(&file.path)
        .module(module)
}

/// A started application, its config file, its scheduler and an event stream.
pub struct Fixture {
    pub file: ConfigFile,
    pub app: Application,
    pub scheduler: Scheduler,
    pub events: EventStream,
    pub seen: Vec<(String, Value)>,
}

impl Fixture {
    /// Rewrites the config and reloads; returns the outcome's JSON.
    pub async fn reload(&self, config: &Value) -> Value {
        self.file.write(config);
        let outcome = self.app.reload().await.unwrap();
        serde_json::to_value(&outcome).unwrap()
    }

    /// Every event of `kind` (`job.started`) so far, as data (each returned once).
    pub fn drain(&mut self, kind: &str) -> Vec<Value> {
        let ty = format!("com.modular.scheduler.{kind}");
        while let Some(event) = self.events.try_recv() {
            let data = match event.data() {
                Some(cloudevents::Data::Json(value)) => value.clone(),
                _ => Value::Null,
            };
            self.seen.push((event.ty().to_owned(), data));
        }
        let (mine, rest): (Vec<_>, Vec<_>) = std::mem::take(&mut self.seen)
            .into_iter()
            .partition(|(t, _)| *t == ty);
        self.seen = rest;
        mine.into_iter().map(|(_, v)| v).collect()
    }

    /// The scheduler's health report.
    pub async fn health(&self) -> HealthReport {
        let health = self.app.health().unwrap();
        let answer = health.force_refresh().await;
        answer
            .reports
            .iter()
            .find(|r| r.module == "scheduler")
            .cloned()
            .unwrap()
    }
}

/// Starts the module (built by `module` on a clock at `start`) over `config`.
pub async fn fixture(
    config: Value,
    start: DateTime<Utc>,
    module: impl FnOnce(SchedulerModule) -> SchedulerModule,
) -> Fixture {
    let file = ConfigFile::new(&config);
    let module = module(SchedulerModule::with_clock(Clock::starting_at(start)));
    let scheduler = module.scheduler();
    let mut app = builder(&file, module).build().await.unwrap();
    let events = app
        .events()
        .subscribe_with_capacity(EventFilter::prefix("com.modular.scheduler."), 4096);
    app.start().await.unwrap();
    Fixture {
        file,
        app,
        scheduler,
        events,
        seen: Vec::new(),
    }
}

/// A scheduler section with `jobs`.
pub fn section(jobs: Value) -> Value {
    json!({ "scheduler": { "jobs": jobs } })
}

/// Advances paused time by `by` (tokio jumps from timer to timer, running every task woken
/// in between), then lets woken tasks run.
pub async fn advance(by: Duration) {
    settle().await;
    tokio::time::sleep(by).await;
    settle().await;
}

/// Lets spawned tasks run.
pub async fn settle() {
    for _ in 0..20 {
        tokio::task::yield_now().await;
    }
}

/// The build error's text.
pub async fn build_error(builder: ApplicationBuilder) -> String {
    match builder.build().await {
        Ok(mut app) => match app.start().await {
            Ok(()) => {
                let _ = app.stop().await;
                panic!("the build and start succeeded")
            }
            Err(e) => e.to_string(),
        },
        Err(error) => error.to_string(),
    }
}

/// Polls `check` every 20 ms (real time) until it holds or `within` passes.
pub async fn wait_until(within: Duration, mut check: impl FnMut() -> bool) -> bool {
    let deadline = tokio::time::Instant::now() + within;
    loop {
        if check() {
            return true;
        }
        if tokio::time::Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// An application with the database module (one connection `primary` at `url`) and the
/// scheduler persisting on it, over `scheduler` (the section), on the system clock.
pub async fn persisted_app(
    url: &str,
    scheduler: Value,
    module: impl FnOnce(SchedulerModule) -> SchedulerModule,
) -> (Application, Scheduler, EventStream, ConfigFile) {
    let mut section = json!({ "persistence": { "connection": "primary", "lease": "1s" } });
    merge(&mut section, scheduler);
    let config = json!({
        "database": { "connections": { "primary": {
            "url": url, "connect_timeout": "3s", "acquire_timeout": "3s", "ping_timeout": "1s",
        } } },
        "scheduler": section,
    });
    let file = ConfigFile::new(&config);
    let module = module(SchedulerModule::new());
    let scheduler = module.scheduler();
    let mut app = modular_testkit::test_builder()
        .config_file(&file.path)
        .module(modular_database::DatabaseModule::new())
        .module(module)
        .build()
        .await
        .unwrap();
    let events = app
        .events()
        .subscribe_with_capacity(EventFilter::prefix("com.modular.scheduler."), 4096);
    app.start().await.unwrap();
    (app, scheduler, events, file)
}

/// Every event of `kind` in `events` so far, as data.
pub fn drain_of(events: &mut EventStream, kind: &str) -> Vec<Value> {
    let ty = format!("com.modular.scheduler.{kind}");
    let mut out = Vec::new();
    while let Some(event) = events.try_recv() {
        if event.ty() == ty
            && let Some(cloudevents::Data::Json(value)) = event.data()
        {
            out.push(value.clone());
        }
    }
    out
}
