//! Application lifecycle: dependency order, graph errors, failures, panics, the shutdown
//! deadline, lifecycle events and owned tasks.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use cloudevents::AttributesReader as _;
use modular_core::events::{EventBus, EventFilter, EventStream, event_data, types};
use modular_core::{
    Application, ApplicationBuilder, BoxError, Error, InitContext, Module, ModuleContext, Phase,
};
use serde_json::json;

/// Shared record of hook calls, as `"<hook>:<module>"`.
#[derive(Clone, Debug, Default)]
struct Journal(Arc<Mutex<Vec<String>>>);

impl Journal {
    fn record(&self, hook: &str, module: &str) {
        self.0.lock().unwrap().push(format!("{hook}:{module}"));
    }

    fn calls(&self) -> Vec<String> {
        self.0.lock().unwrap().clone()
    }

    /// The modules whose `hook` ran, in call order.
    fn of(&self, hook: &str) -> Vec<String> {
        let prefix = format!("{hook}:");
        self.calls()
            .iter()
            .filter_map(|c| c.strip_prefix(&prefix).map(str::to_owned))
            .collect()
    }
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
enum Fault {
    #[default]
    None,
    InitPanics,
    StartFails,
    StopHangs,
    StopFails,
}

/// A module that records its hooks and misbehaves as told.
#[derive(Debug)]
struct Recorder {
    name: String,
    dependencies: Vec<String>,
    journal: Journal,
    fault: Fault,
    last: bool,
}

impl Recorder {
    fn new(name: &str, dependencies: &[&str], journal: &Journal) -> Self {
        Self {
            name: name.to_owned(),
            dependencies: dependencies.iter().map(|d| (*d).to_owned()).collect(),
            journal: journal.clone(),
            fault: Fault::None,
            last: false,
        }
    }

    /// Asks to start after every other module (as a server does).
    fn serving(mut self) -> Self {
        self.last = true;
        self
    }

    fn with_fault(mut self, fault: Fault) -> Self {
        self.fault = fault;
        self
    }
}

#[modular_core::async_trait]
impl Module for Recorder {
    fn name(&self) -> &str {
        &self.name
    }

    fn dependencies(&self) -> Vec<String> {
        self.dependencies.clone()
    }

    async fn init(&mut self, ctx: &mut InitContext<'_>) -> Result<(), BoxError> {
        self.journal.record("init", &self.name);
        if self.last {
            ctx.start_after_others();
        }
        if self.fault == Fault::InitPanics {
            panic!("init of {} exploded", self.name);
        }
        Ok(())
    }

    async fn start(&self, _ctx: &ModuleContext) -> Result<(), BoxError> {
        self.journal.record("start", &self.name);
        if self.fault == Fault::StartFails {
            return Err("port 8080 already in use".into());
        }
        Ok(())
    }

    async fn stop(&self, _ctx: &ModuleContext) -> Result<(), BoxError> {
        self.journal.record("stop", &self.name);
        match self.fault {
            Fault::StopHangs => std::future::pending().await,
            Fault::StopFails => Err("flush failed".into()),
            _ => Ok(()),
        }
    }
}

fn builder() -> ApplicationBuilder {
    Application::builder()
        .env_prefix(None)
        .handle_signals(false)
}

async fn build_error(builder: ApplicationBuilder) -> Error {
    match builder.build().await {
        Ok(app) => panic!("build succeeded: {app:?}"),
        Err(error) => error,
    }
}

#[tokio::test]
async fn init_and_start_follow_dependency_order_and_stop_runs_in_reverse() {
    let journal = Journal::default();
    // Registered out of order: router needs server, server needs cache.
    let mut app = builder()
        .module(Recorder::new("router", &["server"], &journal))
        .module(Recorder::new("cache", &[], &journal))
        .module(Recorder::new("server", &["cache"], &journal))
        .build()
        .await
        .unwrap();
    assert_eq!(app.module_names(), ["cache", "server", "router"]);
    assert_eq!(journal.of("init"), ["cache", "server", "router"]);
    assert!(journal.of("start").is_empty(), "build only initialises");

    app.start().await.unwrap();
    assert_eq!(journal.of("start"), ["cache", "server", "router"]);
    assert!(journal.of("stop").is_empty());

    app.stop().await.unwrap();
    assert_eq!(journal.of("stop"), ["router", "server", "cache"]);
    assert_eq!(
        journal.calls(),
        [
            "init:cache",
            "init:server",
            "init:router",
            "start:cache",
            "start:server",
            "start:router",
            "stop:router",
            "stop:server",
            "stop:cache",
        ]
    );
}

#[tokio::test]
async fn a_server_starts_after_every_other_module_and_stops_before_them() {
    let journal = Journal::default();
    // The server is registered first and depends only on the router, yet the modules that
    // answer its requests (db, notes) must be up before it serves and still up while it drains.
    let mut app = builder()
        .module(Recorder::new("server", &["router"], &journal).serving())
        .module(Recorder::new("router", &[], &journal))
        .module(Recorder::new("db", &[], &journal))
        .module(Recorder::new("notes", &["db"], &journal))
        .build()
        .await
        .unwrap();
    assert_eq!(journal.of("init"), ["router", "server", "db", "notes"]);
    app.start().await.unwrap();
    assert_eq!(journal.of("start"), ["router", "db", "notes", "server"]);
    app.stop().await.unwrap();
    assert_eq!(journal.of("stop"), ["server", "notes", "db", "router"]);
}

#[tokio::test]
async fn start_after_others_is_ignored_for_a_module_others_depend_on() {
    let journal = Journal::default();
    let mut app = builder()
        .module(Recorder::new("base", &[], &journal).serving())
        .module(Recorder::new("user", &["base"], &journal))
        .build()
        .await
        .unwrap();
    app.start().await.unwrap();
    assert_eq!(journal.of("start"), ["base", "user"]);
    app.stop().await.unwrap();
}

#[tokio::test]
async fn a_dependency_cycle_is_a_typed_error_naming_every_module_on_it() {
    let journal = Journal::default();
    let error = build_error(
        builder()
            .module(Recorder::new("standalone", &[], &journal))
            .module(Recorder::new("alpha", &["beta"], &journal))
            .module(Recorder::new("beta", &["gamma"], &journal))
            .module(Recorder::new("gamma", &["alpha"], &journal)),
    )
    .await;
    let message = error.to_string();
    let Error::DependencyCycle { cycle } = error else {
        panic!("not a cycle error: {error:?}")
    };
    assert_eq!(cycle, ["alpha", "beta", "gamma", "alpha"]);
    assert_eq!(message, "dependency cycle: alpha -> beta -> gamma -> alpha");
    assert!(
        journal.calls().is_empty(),
        "no module is initialised: {:?}",
        journal.calls()
    );
}

#[tokio::test]
async fn a_missing_dependency_is_a_typed_error_naming_both_modules() {
    let journal = Journal::default();
    let error =
        build_error(builder().module(Recorder::new("router", &["httpserver"], &journal))).await;
    let message = error.to_string();
    let Error::MissingDependency { module, dependency } = error else {
        panic!("wrong error: {error:?}")
    };
    assert_eq!(
        (module.as_str(), dependency.as_str()),
        ("router", "httpserver")
    );
    assert!(
        message.contains("`router`") && message.contains("`httpserver`"),
        "{message}"
    );
    assert!(journal.calls().is_empty());
}

#[tokio::test]
async fn a_duplicate_module_name_is_a_typed_error_naming_it() {
    let journal = Journal::default();
    let error = build_error(
        builder()
            .module(Recorder::new("cache", &[], &journal))
            .module(Recorder::new("cache", &[], &journal)),
    )
    .await;
    let message = error.to_string();
    let Error::DuplicateModule { name } = error else {
        panic!("wrong error: {error:?}")
    };
    assert_eq!(name, "cache");
    assert!(message.contains("`cache`"), "{message}");
    assert!(journal.calls().is_empty());
}

#[tokio::test]
async fn a_module_failing_to_start_stops_the_modules_already_started_in_reverse() {
    let journal = Journal::default();
    let mut app = builder()
        .module(Recorder::new("a", &[], &journal))
        .module(Recorder::new("b", &["a"], &journal))
        .module(Recorder::new("c", &["b"], &journal).with_fault(Fault::StartFails))
        .module(Recorder::new("d", &["c"], &journal))
        .build()
        .await
        .unwrap();

    let error = app.start().await.unwrap_err();
    let message = error.to_string();
    let Error::Module { module, phase, .. } = error else {
        panic!("wrong error: {error:?}")
    };
    assert_eq!((module.as_str(), phase), ("c", Phase::Start));
    assert!(message.contains("port 8080 already in use"), "{message}");
    assert_eq!(journal.of("start"), ["a", "b", "c"], "d is never started");
    assert_eq!(
        journal.of("stop"),
        ["b", "a"],
        "only started modules are stopped, in reverse"
    );

    // The application is stopped now: it cannot be started again, and stopping is a no-op.
    assert!(matches!(app.start().await, Err(Error::InvalidState { .. })));
    app.stop().await.unwrap();
    assert_eq!(journal.of("stop"), ["b", "a"]);
}

#[tokio::test]
async fn a_panicking_init_is_a_module_panicked_error_with_the_message() {
    let journal = Journal::default();
    let error = build_error(
        builder()
            .module(Recorder::new("a", &[], &journal))
            .module(Recorder::new("b", &["a"], &journal).with_fault(Fault::InitPanics))
            .module(Recorder::new("c", &["b"], &journal)),
    )
    .await;
    let Error::ModulePanicked {
        module,
        phase,
        message,
    } = error
    else {
        panic!("wrong error: {error:?}")
    };
    assert_eq!((module.as_str(), phase), ("b", Phase::Init));
    assert_eq!(message, "init of b exploded");
    assert_eq!(
        journal.of("init"),
        ["a", "b"],
        "initialisation stops at the panic"
    );
}

#[tokio::test(start_paused = true)]
async fn shutdown_finishes_within_its_deadline_when_a_stop_hangs() {
    let journal = Journal::default();
    let deadline = Duration::from_secs(5);
    let bus = EventBus::new();
    let mut failed = bus.subscribe(EventFilter::exact(types::MODULE_FAILED));
    // Stop order: last, hangs, first.
    let mut app = builder()
        .event_bus(bus)
        .shutdown_timeout(deadline)
        .module(Recorder::new("first", &[], &journal))
        .module(Recorder::new("hangs", &["first"], &journal).with_fault(Fault::StopHangs))
        .module(Recorder::new("last", &["hangs"], &journal))
        .build()
        .await
        .unwrap();
    app.start().await.unwrap();

    let began = tokio::time::Instant::now();
    let result = tokio::time::timeout(deadline * 2, app.stop())
        .await
        .expect("stop() must return by its own deadline");
    let took = began.elapsed();
    assert!(
        took <= deadline + Duration::from_millis(1),
        "stop took {took:?}"
    );

    let Err(Error::ShutdownTimeout {
        deadline: reported,
        pending,
    }) = result
    else {
        panic!("expected a shutdown timeout, got {result:?}");
    };
    assert_eq!(reported, deadline);
    assert_eq!(
        pending.first().map(String::as_str),
        Some("hangs"),
        "{pending:?}"
    );
    // The module after the hung one in stop order was either stopped or reported as pending.
    let first_stopped = journal.of("stop").contains(&"first".to_owned());
    let first_reported = pending.contains(&"first".to_owned());
    assert!(
        first_stopped || first_reported,
        "first: stopped {first_stopped}, reported {first_reported}"
    );
    assert_eq!(journal.of("stop")[..2], ["last", "hangs"]);
    let message = Error::ShutdownTimeout {
        deadline: reported,
        pending,
    }
    .to_string();
    assert!(message.contains("hangs"), "{message}");

    // Every module that missed the deadline is also announced as failed.
    let events = collect(&mut failed);
    let hung = events
        .iter()
        .find(|(_, source, _)| source == "/modular/modules/hangs");
    let (_, _, data) =
        hung.unwrap_or_else(|| panic!("no failed event for the hung module: {events:?}"));
    assert_eq!(data["module"], "hangs");
    let error = data["error"].as_str().unwrap_or_default();
    assert!(error.contains("shutdown deadline of 5s"), "{error}");
    if first_reported {
        assert!(
            events
                .iter()
                .any(|(_, source, _)| source == "/modular/modules/first"),
            "{events:?}"
        );
    }
}

#[tokio::test]
async fn a_failing_stop_is_reported_after_the_others_are_stopped() {
    let journal = Journal::default();
    let mut app = builder()
        .module(Recorder::new("a", &[], &journal))
        .module(Recorder::new("b", &["a"], &journal).with_fault(Fault::StopFails))
        .module(Recorder::new("c", &["b"], &journal))
        .build()
        .await
        .unwrap();
    app.start().await.unwrap();
    let error = app.stop().await.unwrap_err();
    let Error::Module { module, phase, .. } = error else {
        panic!("wrong error: {error:?}")
    };
    assert_eq!((module.as_str(), phase), ("b", Phase::Stop));
    assert_eq!(
        journal.of("stop"),
        ["c", "b", "a"],
        "a failing stop does not skip the rest"
    );
}

fn collect(stream: &mut EventStream) -> Vec<(String, String, serde_json::Value)> {
    stream
        .drain()
        .iter()
        .map(|event| {
            (
                event.ty().to_owned(),
                event.source().to_string(),
                event_data(event).cloned().unwrap_or_default(),
            )
        })
        .collect()
}

#[tokio::test]
async fn lifecycle_events_carry_the_module_source_and_data_keys() {
    let journal = Journal::default();
    let bus = EventBus::new();
    let mut stream = bus.subscribe(EventFilter::prefix("com.modular.module."));
    let mut app = builder()
        .event_bus(bus)
        .module(Recorder::new("cache", &[], &journal))
        .module(Recorder::new("server", &["cache"], &journal))
        .build()
        .await
        .unwrap();
    app.start().await.unwrap();
    app.stop().await.unwrap();

    let events = collect(&mut stream);
    let seen: Vec<(&str, &str)> = events
        .iter()
        .map(|(t, s, _)| (t.as_str(), s.as_str()))
        .collect();
    assert_eq!(
        seen,
        [
            (types::MODULE_INITIALIZED, "/modular/modules/cache"),
            (types::MODULE_INITIALIZED, "/modular/modules/server"),
            (types::MODULE_STARTED, "/modular/modules/cache"),
            (types::MODULE_STARTED, "/modular/modules/server"),
            (types::MODULE_STOPPED, "/modular/modules/server"),
            (types::MODULE_STOPPED, "/modular/modules/cache"),
        ]
    );
    assert_eq!(types::MODULE_INITIALIZED, "com.modular.module.initialized");
    assert_eq!(types::MODULE_STARTED, "com.modular.module.started");
    assert_eq!(types::MODULE_STOPPED, "com.modular.module.stopped");
    assert_eq!(events[0].2, json!({ "module": "cache", "error": null }));
    assert_eq!(events[5].2, json!({ "module": "cache", "error": null }));
}

#[tokio::test]
async fn a_module_failing_to_start_emits_a_failed_event_with_the_error() {
    let journal = Journal::default();
    let bus = EventBus::new();
    let mut stream = bus.subscribe(EventFilter::exact("com.modular.module.failed"));
    let mut app = builder()
        .event_bus(bus)
        .module(Recorder::new("server", &[], &journal).with_fault(Fault::StartFails))
        .build()
        .await
        .unwrap();
    assert!(app.start().await.is_err());

    let events = collect(&mut stream);
    assert_eq!(events.len(), 1, "{events:?}");
    let (ty, source, data) = &events[0];
    assert_eq!(
        (ty.as_str(), source.as_str()),
        (types::MODULE_FAILED, "/modular/modules/server")
    );
    assert_eq!(data["module"], "server");
    let error = data["error"].as_str().unwrap_or_default();
    assert!(error.contains("port 8080 already in use"), "{error}");
}

/// Spawns an owned task in `start` that needs a while to wind down after cancellation.
#[derive(Debug)]
struct Spawner {
    finished: Arc<AtomicBool>,
}

#[modular_core::async_trait]
impl Module for Spawner {
    fn name(&self) -> &str {
        "spawner"
    }

    async fn start(&self, ctx: &ModuleContext) -> Result<(), BoxError> {
        let cancel = ctx.cancellation().clone();
        let finished = Arc::clone(&self.finished);
        ctx.spawn(async move {
            cancel.cancelled().await;
            tokio::time::sleep(Duration::from_secs(2)).await;
            finished.store(true, Ordering::SeqCst);
        });
        Ok(())
    }
}

#[tokio::test(start_paused = true)]
async fn tasks_spawned_through_the_module_context_are_awaited_on_stop() {
    let finished = Arc::new(AtomicBool::new(false));
    let mut app = builder()
        .shutdown_timeout(Duration::from_secs(10))
        .module(Spawner {
            finished: Arc::clone(&finished),
        })
        .build()
        .await
        .unwrap();
    app.start().await.unwrap();
    tokio::time::sleep(Duration::from_secs(60)).await;
    assert!(
        !finished.load(Ordering::SeqCst),
        "the task runs until shutdown"
    );

    app.stop().await.unwrap();
    assert!(
        finished.load(Ordering::SeqCst),
        "stop() returned before the owned task finished"
    );
    assert!(app.cancellation().is_cancelled());
}

#[tokio::test(start_paused = true)]
async fn an_owned_task_that_ignores_cancellation_is_reported_at_the_deadline() {
    #[derive(Debug)]
    struct Stubborn;

    #[modular_core::async_trait]
    impl Module for Stubborn {
        fn name(&self) -> &str {
            "stubborn"
        }

        async fn start(&self, ctx: &ModuleContext) -> Result<(), BoxError> {
            ctx.spawn(std::future::pending::<()>());
            Ok(())
        }
    }

    let mut app = builder()
        .shutdown_timeout(Duration::from_secs(3))
        .module(Stubborn)
        .build()
        .await
        .unwrap();
    app.start().await.unwrap();
    let began = tokio::time::Instant::now();
    let result = app.stop().await;
    assert!(began.elapsed() <= Duration::from_secs(3) + Duration::from_millis(1));
    let Err(Error::ShutdownTimeout { pending, .. }) = result else {
        panic!("{result:?}")
    };
    assert_eq!(pending, ["background tasks"]);
}
