//! The module conformance kit: one call a module's tests make to check the module contract
//! (DESIGN.md §4) the same way for every module.
//!
//! A module's test describes the module ([`Conformance::new`] with a function that adds it, and
//! whatever it needs, to an application builder), a valid configuration, invalid ones with the
//! key path each must be rejected at, one change per dynamic field with a probe that observes the
//! live effect, a fault handle for its backend, and the secret values that must never leave.
//! [`Conformance::run`] then checks, against the real backend:
//!
//! 1. every invalid configuration is refused by `build()` and by a reload, naming its path, and
//!    the running config stays as it was;
//! 2. for every dynamic change, a reload in which a later module fails to prepare leaves the
//!    live resource untouched (the probe does not see the change, the module is reported
//!    `aborted`, or `rolled_back` for a module that applies in place, and the version does not
//!    move);
//! 3. the same change, reloaded alone, is committed and the probe observes it live;
//! 4. health turns not-healthy when the fault is injected and healthy again when it is
//!    removed;
//! 5. no secret value appears in `Debug` output, reload outcomes, events, the history, the
//!    `/admin/config` view, health answers or the logs captured during the run.
//!
//! ```no_run
//! # async fn demo() {
//! use modular_testkit::conformance::{Conformance, probe};
//! use serde_json::json;
//!
//! Conformance::new("greeter", |builder| builder /* .module(GreeterModule::new()) */)
//!     .valid(json!({ "greeter": { "greeting": "hello" } }))
//!     .invalid("greeter.greeting", json!(42))
//!     .change("greeting", [("greeter.greeting", json!("bonjour"))], probe(|ctx| async move {
//!         let _ = ctx; // look the live resource up in ctx.services() and check it says "bonjour"
//!         Ok(())
//!     }))
//!     .secret("hunter2")
//!     .run()
//!     .await
//!     .assert_passed();
//! # }
//! ```

use std::fmt::Write as _;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use modular_core::config::ConfigStore;
use modular_core::events::{AttributesReader, EventFilter, EventStream};
use modular_core::health::HealthStatus;
use modular_core::reload::ReloadOrchestrator;
use modular_core::{
    Application, ApplicationBuilder, BoxError, ConfigChange, InitContext, Module, PreparedReload,
    ReloadContext, ReloadOutcome, ReloadStatus, Reloadable, ServiceRegistry,
};
use serde_json::{Value, json};

/// A boxed future, as probes and faults return.
pub type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send + 'static>>;

/// What a probe or a fault can reach of the running application.
#[derive(Clone, Debug)]
pub struct ProbeContext {
    services: Arc<ServiceRegistry>,
    store: Arc<ConfigStore>,
}

impl ProbeContext {
    /// The application's services (look the module's live resource up here).
    pub fn services(&self) -> &Arc<ServiceRegistry> {
        &self.services
    }

    /// The application's configuration.
    pub fn config(&self) -> &Arc<ConfigStore> {
        &self.store
    }
}

type ProbeFn = Arc<dyn Fn(ProbeContext) -> BoxFuture<Result<(), String>> + Send + Sync>;

/// A check that a change is live: `Ok` when the module's running resource shows it, `Err` with
/// what it saw otherwise. Built with [`probe`].
#[derive(Clone)]
pub struct Probe(ProbeFn);

impl std::fmt::Debug for Probe {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Probe")
    }
}

/// Wraps an async closure as a [`Probe`].
pub fn probe<F, Fut>(f: F) -> Probe
where
    F: Fn(ProbeContext) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<(), String>> + Send + 'static,
{
    Probe(Arc::new(move |ctx| Box::pin(f(ctx))))
}

/// A probe that passes when `module`'s health report says `optional: expected`: what every
/// module's `health.optional` change observes (the aggregator's registration, refreshed).
pub fn health_optional_is(module: &'static str, expected: bool) -> Probe {
    probe(move |ctx| async move {
        let health = ctx
            .services()
            .get::<modular_core::health::HealthAggregator>()
            .ok_or("no health aggregator")?;
        let optional = health
            .force_refresh()
            .await
            .reports
            .iter()
            .find(|r| r.module == module)
            .map(|r| r.optional);
        (optional == Some(expected)).then_some(()).ok_or(format!(
            "{module}: optional is {optional:?}, expected {expected}"
        ))
    })
}

/// A way to take the module's backend away and bring it back.
pub trait Fault: Send + Sync {
    /// Makes the backend unreachable (or the module's health otherwise fail).
    fn cut(&self, ctx: &ProbeContext) -> BoxFuture<()>;
    /// Undoes [`Fault::cut`].
    fn restore(&self, ctx: &ProbeContext) -> BoxFuture<()>;
}

impl Fault for crate::FaultProxy {
    fn cut(&self, _ctx: &ProbeContext) -> BoxFuture<()> {
        crate::FaultProxy::cut(self);
        Box::pin(async {})
    }

    fn restore(&self, _ctx: &ProbeContext) -> BoxFuture<()> {
        crate::FaultProxy::restore(self);
        Box::pin(async {})
    }
}

impl<F: Fault + ?Sized> Fault for Arc<F> {
    fn cut(&self, ctx: &ProbeContext) -> BoxFuture<()> {
        (**self).cut(ctx)
    }

    fn restore(&self, ctx: &ProbeContext) -> BoxFuture<()> {
        (**self).restore(ctx)
    }
}

struct FnFault<C, R> {
    cut: C,
    restore: R,
}

impl<C, R> Fault for FnFault<C, R>
where
    C: Fn(ProbeContext) -> BoxFuture<()> + Send + Sync,
    R: Fn(ProbeContext) -> BoxFuture<()> + Send + Sync,
{
    fn cut(&self, ctx: &ProbeContext) -> BoxFuture<()> {
        (self.cut)(ctx.clone())
    }

    fn restore(&self, ctx: &ProbeContext) -> BoxFuture<()> {
        (self.restore)(ctx.clone())
    }
}

/// A fault from two async closures (for a module whose "backend" is not behind a TCP proxy).
pub fn fault_fn<C, CF, R, RF>(cut: C, restore: R) -> Box<dyn Fault>
where
    C: Fn(ProbeContext) -> CF + Send + Sync + 'static,
    CF: Future<Output = ()> + Send + 'static,
    R: Fn(ProbeContext) -> RF + Send + Sync + 'static,
    RF: Future<Output = ()> + Send + 'static,
{
    Box::new(FnFault {
        cut: move |ctx| Box::pin(cut(ctx)) as BoxFuture<()>,
        restore: move |ctx| Box::pin(restore(ctx)) as BoxFuture<()>,
    })
}

type Build = Arc<dyn Fn(ApplicationBuilder) -> ApplicationBuilder + Send + Sync>;

struct Invalid {
    set: Vec<(String, Value)>,
    path: String,
}

struct Change {
    field: String,
    set: Vec<(String, Value)>,
    probe: Probe,
}

/// The description of one module's conformance run; see the [module docs](self).
pub struct Conformance {
    module: String,
    build: Build,
    valid: Value,
    invalid: Vec<Invalid>,
    changes: Vec<Change>,
    fault: Option<Box<dyn Fault>>,
    no_fault_reason: Option<String>,
    secrets: Vec<String>,
    recover_within: Duration,
}

impl std::fmt::Debug for Conformance {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Conformance")
            .field("module", &self.module)
            .field("changes", &self.changes.len())
            .field("invalid", &self.invalid.len())
            .finish_non_exhaustive()
    }
}

/// The name of the kit's own module, which fails to prepare on demand.
pub const TRIPWIRE: &str = "conformance_tripwire";

impl Conformance {
    /// A run for the module named `module` (its config section); `build` adds it (and anything
    /// it needs, such as a router for the HTTP server) to the builder.
    pub fn new(
        module: &str,
        build: impl Fn(ApplicationBuilder) -> ApplicationBuilder + Send + Sync + 'static,
    ) -> Self {
        Self {
            module: module.to_owned(),
            build: Arc::new(build),
            valid: json!({}),
            invalid: Vec::new(),
            changes: Vec::new(),
            fault: None,
            no_fault_reason: None,
            secrets: Vec::new(),
            recover_within: Duration::from_secs(30),
        }
    }

    /// The configuration the application starts with (the whole document, every section).
    pub fn valid(mut self, config: Value) -> Self {
        self.valid = config;
        self
    }

    /// A configuration made invalid by setting the dotted `path` to `value`; it must be
    /// rejected with an error at `path`.
    pub fn invalid(self, path: &str, value: Value) -> Self {
        self.invalid_at(path, [(path, value)])
    }

    /// A configuration made invalid by several values, rejected with an error at `path`.
    pub fn invalid_at<'a>(
        mut self,
        path: &str,
        set: impl IntoIterator<Item = (&'a str, Value)>,
    ) -> Self {
        self.invalid.push(Invalid {
            set: set.into_iter().map(|(k, v)| (k.to_owned(), v)).collect(),
            path: path.to_owned(),
        });
        self
    }

    /// One change of the dynamic field `field`: the dotted values to set, and a probe that
    /// is `Ok` only once the change is live. Changes apply one after another, in order.
    pub fn change<'a>(
        mut self,
        field: &str,
        set: impl IntoIterator<Item = (&'a str, Value)>,
        probe: Probe,
    ) -> Self {
        self.changes.push(Change {
            field: field.to_owned(),
            set: set.into_iter().map(|(k, v)| (k.to_owned(), v)).collect(),
            probe,
        });
        self
    }

    /// The fault that must turn the module's health not-healthy, and back.
    pub fn fault(mut self, fault: impl Fault + 'static) -> Self {
        self.fault = Some(Box::new(fault));
        self
    }

    /// Like [`Conformance::fault`], boxed (from [`fault_fn`]).
    pub fn boxed_fault(mut self, fault: Box<dyn Fault>) -> Self {
        self.fault = Some(fault);
        self
    }

    /// No fault can be injected for this module; `reason` says why (reported, not hidden).
    pub fn without_fault(mut self, reason: &str) -> Self {
        self.no_fault_reason = Some(reason.to_owned());
        self
    }

    /// A literal secret value that must never appear in anything the run observes.
    pub fn secret(mut self, value: impl Into<String>) -> Self {
        self.secrets.push(value.into());
        self
    }

    /// How long health may take to turn healthy again after the fault is removed (default
    /// 30 s; checks poll every 100 ms).
    pub fn recover_within(mut self, within: Duration) -> Self {
        self.recover_within = within;
        self
    }

    fn builder(&self, config: Value) -> ApplicationBuilder {
        let builder = crate::test_builder().config_defaults(config);
        (self.build)(builder).module(Tripwire::after(&self.module))
    }

    /// Runs every check and returns the report (call [`ConformanceReport::assert_passed`]).
    pub async fn run(self) -> ConformanceReport {
        let logs = LogBuffer::default();
        let subscriber = tracing_subscriber::fmt()
            .with_writer(logs.clone())
            .with_ansi(false)
            .with_max_level(tracing::Level::TRACE)
            .finish();
        let _guard = tracing::subscriber::set_default(subscriber);
        let mut report = ConformanceReport {
            module: self.module.clone(),
            checks: Vec::new(),
        };
        let mut seen = Seen::default();

        self.check_invalid_builds(&mut report, &mut seen).await;

        let mut app = match self.builder(self.valid.clone()).build().await {
            Ok(app) => app,
            Err(error) => {
                report.fail(
                    "start",
                    format!("the valid configuration failed to build: {error}"),
                );
                return report;
            }
        };
        let mut events = app
            .events()
            .subscribe_with_capacity(EventFilter::prefix(""), 65_536);
        if let Err(error) = app.start().await {
            report.fail(
                "start",
                format!("the valid configuration failed to start: {error}"),
            );
            return report;
        }
        report.pass("start");
        let ctx = ProbeContext {
            services: Arc::clone(app.services()),
            store: Arc::clone(app.config()),
        };

        self.check_invalid_reloads(&app, &mut report, &mut seen)
            .await;
        self.check_changes(&app, &ctx, &mut report, &mut seen).await;
        self.check_health(&app, &ctx, &mut report, &mut seen).await;

        seen.observe_app(&app, &mut events);
        if let Err(error) = app.stop().await {
            report.fail("stop", error.to_string());
        }
        seen.observe_events(&mut events);
        seen.logs = logs.text();
        self.check_secrets(&seen, &mut report);
        report
    }

    async fn check_invalid_builds(&self, report: &mut ConformanceReport, seen: &mut Seen) {
        for invalid in &self.invalid {
            let name = format!("invalid config at `{}` refused by build", invalid.path);
            let mut config = self.valid.clone();
            for (path, value) in &invalid.set {
                set_path(&mut config, path, value.clone());
            }
            match self.builder(config).build().await {
                Ok(mut app) => {
                    let _ = app.stop().await;
                    report.fail(&name, "build() accepted it".to_owned());
                }
                Err(error) => {
                    let text = error.to_string();
                    seen.texts.push(format!("{error:?}"));
                    seen.texts.push(text.clone());
                    if text.contains(&invalid.path) {
                        report.pass(&name);
                    } else {
                        report.fail(&name, format!("the error does not name the path: {text}"));
                    }
                }
            }
        }
    }

    async fn check_invalid_reloads(
        &self,
        app: &Application,
        report: &mut ConformanceReport,
        seen: &mut Seen,
    ) {
        let store = app.config();
        for invalid in &self.invalid {
            let name = format!("invalid config at `{}` refused by reload", invalid.path);
            let before = store.version();
            let running = store.redacted_json();
            let outcome = reload_with(app, &invalid.set, false).await;
            seen.outcome(&outcome);
            let named = outcome
                .errors
                .iter()
                .any(|e| e.path.contains(&invalid.path))
                || outcome
                    .error
                    .as_deref()
                    .is_some_and(|e| e.contains(&invalid.path));
            if outcome.status != ReloadStatus::Rejected {
                report.fail(&name, format!("status {:?}, not rejected", outcome.status));
            } else if !named {
                report.fail(
                    &name,
                    format!("no error names the path: {:?}", outcome.errors),
                );
            } else if store.version() != before || store.redacted_json() != running {
                report.fail(&name, "the running config changed".to_owned());
            } else {
                report.pass(&name);
            }
            clear(app, &invalid.set);
        }
    }

    async fn check_changes(
        &self,
        app: &Application,
        ctx: &ProbeContext,
        report: &mut ConformanceReport,
        seen: &mut Seen,
    ) {
        for change in &self.changes {
            // A later module fails to prepare: nothing of this change may go live.
            let name = format!(
                "`{}`: an aborted reload leaves the live resource untouched",
                change.field
            );
            let before = app.config().version();
            let outcome = reload_with(app, &change.set, true).await;
            seen.outcome(&outcome);
            let withdrawn = outcome.aborted.contains(&self.module)
                || outcome.rolled_back.contains(&self.module);
            if outcome.status != ReloadStatus::Failed
                || outcome.failed_module.as_deref() != Some(TRIPWIRE)
            {
                report.fail(
                    &name,
                    format!("the tripwire did not fail the reload: {outcome:?}"),
                );
            } else if !withdrawn {
                report.fail(
                    &name,
                    format!(
                        "`{}` is neither aborted nor rolled back: {:?}",
                        self.module, outcome
                    ),
                );
            } else if app.config().version() != before {
                report.fail(&name, "the config version moved".to_owned());
            } else if (change.probe.0)(ctx.clone()).await.is_ok() {
                report.fail(&name, "the probe sees the aborted change live".to_owned());
            } else {
                report.pass(&name);
            }

            // The same change alone: committed and observed live.
            let name = format!("`{}`: a reload changes the live resource", change.field);
            let outcome = reload_with(app, &change.set, false).await;
            seen.outcome(&outcome);
            if outcome.status != ReloadStatus::Applied {
                report.fail(&name, format!("not applied: {outcome:?}"));
                continue;
            }
            if !outcome.reloaded.contains(&self.module) {
                report.fail(
                    &name,
                    format!("`{}` was not reloaded: {outcome:?}", self.module),
                );
                continue;
            }
            match (change.probe.0)(ctx.clone()).await {
                Ok(()) => report.pass(&name),
                Err(saw) => report.fail(&name, format!("the probe does not see it: {saw}")),
            }
        }
    }

    async fn check_health(
        &self,
        app: &Application,
        ctx: &ProbeContext,
        report: &mut ConformanceReport,
        seen: &mut Seen,
    ) {
        let Some(health) = app.health() else {
            report.fail("health", "no health aggregator".to_owned());
            return;
        };
        let module_status = |answer: &modular_core::health::AggregatedHealth| {
            answer
                .reports
                .iter()
                .filter(|r| r.module == self.module)
                .map(|r| r.status)
                .max()
        };
        // The change probes may have left the backend briefly strained (a timed-out command,
        // a pool still filling): healthy within the recovery time is healthy.
        let first = poll(self.recover_within, || async {
            let answer = health.force_refresh().await;
            (
                module_status(&answer) == Some(HealthStatus::Healthy),
                answer,
            )
        })
        .await;
        seen.texts
            .push(serde_json::to_string(&*first.1).unwrap_or_default());
        match module_status(&first.1) {
            Some(HealthStatus::Healthy) => report.pass("healthy before the fault"),
            Some(status) => report.fail("healthy before the fault", format!("{status:?}")),
            None => {
                report.fail(
                    "healthy before the fault",
                    format!("no report from `{}`", self.module),
                );
                return;
            }
        }
        let Some(fault) = &self.fault else {
            let reason = self
                .no_fault_reason
                .clone()
                .unwrap_or_else(|| "no fault given".to_owned());
            report.skip("health fails under a fault and recovers", reason);
            return;
        };
        fault.cut(ctx).await;
        let failed = poll(Duration::from_secs(15), || async {
            let answer = health.force_refresh().await;
            let status = module_status(&answer);
            (status.is_some_and(|s| s != HealthStatus::Healthy), answer)
        })
        .await;
        seen.texts
            .push(serde_json::to_string(&*failed.1).unwrap_or_default());
        if failed.0 {
            report.pass("health fails when the backend is cut");
        } else {
            report.fail(
                "health fails when the backend is cut",
                format!("still {:?}", module_status(&failed.1)),
            );
        }
        fault.restore(ctx).await;
        let recovered = poll(self.recover_within, || async {
            let answer = health.force_refresh().await;
            (
                module_status(&answer) == Some(HealthStatus::Healthy),
                answer,
            )
        })
        .await;
        seen.texts
            .push(serde_json::to_string(&*recovered.1).unwrap_or_default());
        if recovered.0 {
            report.pass("health recovers when the backend is back");
        } else {
            report.fail(
                "health recovers when the backend is back",
                format!("still {:?}", module_status(&recovered.1)),
            );
        }
    }

    fn check_secrets(&self, seen: &Seen, report: &mut ConformanceReport) {
        if self.secrets.is_empty() {
            report.skip("no secret leaves", "no secret given".to_owned());
            return;
        }
        let places = [
            (
                "Debug output, errors and health answers",
                seen.texts.join("\n"),
            ),
            ("reload outcomes", seen.outcomes.join("\n")),
            ("events", seen.events.join("\n")),
            ("history", seen.history.clone()),
            ("/admin/config", seen.admin_config.clone()),
            ("logs", seen.logs.clone()),
        ];
        for secret in &self.secrets {
            let leaks: Vec<&str> = places
                .iter()
                .filter(|(_, text)| text.contains(secret.as_str()))
                .map(|(place, _)| *place)
                .collect();
            let name = format!(
                "secret #{} never leaves",
                self.secrets.iter().position(|s| s == secret).unwrap_or(0) + 1
            );
            if leaks.is_empty() {
                report.pass(&name);
            } else {
                report.fail(&name, format!("found in: {}", leaks.join(", ")));
            }
        }
        if seen.logs.is_empty() {
            report.fail("logs captured", "no log line was captured".to_owned());
        }
    }
}

/// Sets the dotted values as runtime overrides (plus the tripwire), reloads, and leaves them
/// set when applied, withdrawn otherwise.
async fn reload_with(app: &Application, set: &[(String, Value)], trip: bool) -> ReloadOutcome {
    let store = app.config();
    let Some(reloader) = app.reloader() else {
        // The kit always builds with dynamic reload on.
        unreachable!("conformance apps are built with dynamic reload")
    };
    let previous = store.overrides();
    let mut next = previous.clone();
    for (path, value) in set {
        next.insert(path.clone(), value.clone());
    }
    next.insert(format!("{TRIPWIRE}.fail"), json!(trip));
    next.insert(format!("{TRIPWIRE}.attempt"), json!(attempt()));
    store.set_overrides(next);
    let outcome = reloader
        .reload(modular_core::ReloadTrigger::Programmatic)
        .await;
    if outcome.status != ReloadStatus::Applied {
        store.set_overrides(previous);
    } else {
        let mut kept = store.overrides();
        kept.insert(format!("{TRIPWIRE}.fail"), json!(false));
        store.set_overrides(kept);
    }
    outcome
}

fn clear(app: &Application, set: &[(String, Value)]) {
    let store = app.config();
    let mut overrides = store.overrides();
    for (path, _) in set {
        overrides.remove(path);
    }
    store.set_overrides(overrides);
}

/// A new value each call, so every tripwire reload has a change of its own to prepare.
fn attempt() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(1);
    NEXT.fetch_add(1, Ordering::Relaxed)
}

async fn poll<F, Fut, T>(within: Duration, mut check: F) -> (bool, T)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = (bool, T)>,
{
    let deadline = tokio::time::Instant::now() + within;
    loop {
        let (done, value) = check().await;
        if done || tokio::time::Instant::now() >= deadline {
            return (done, value);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Sets `path` (dotted) in a JSON document, creating objects on the way.
pub fn set_path(doc: &mut Value, path: &str, value: Value) {
    let mut node = doc;
    let parts: Vec<&str> = path.split('.').collect();
    for (i, part) in parts.iter().enumerate() {
        if !node.is_object() {
            *node = Value::Object(serde_json::Map::new());
        }
        let Value::Object(map) = node else { return };
        if i + 1 == parts.len() {
            map.insert((*part).to_owned(), value);
            return;
        }
        node = map
            .entry((*part).to_owned())
            .or_insert_with(|| Value::Object(serde_json::Map::new()));
    }
}

#[derive(Default)]
struct Seen {
    texts: Vec<String>,
    outcomes: Vec<String>,
    events: Vec<String>,
    history: String,
    admin_config: String,
    logs: String,
}

impl Seen {
    fn outcome(&mut self, outcome: &ReloadOutcome) {
        self.outcomes.push(format!("{outcome:?}"));
        self.outcomes
            .push(serde_json::to_string(outcome).unwrap_or_default());
        if let Some(error) = &outcome.error {
            self.outcomes.push(error.clone());
        }
    }

    fn observe_app(&mut self, app: &Application, events: &mut EventStream) {
        let store = app.config();
        self.texts.push(format!("{store:?}"));
        self.texts.push(format!("{:?}", store.snapshot()));
        self.texts.push(format!("{:?}", app.services()));
        if let Some(reloader) = app.reloader() {
            self.history = serde_json::to_string(&reloader.history()).unwrap_or_default();
            self.history.push_str(&format!("{:?}", reloader.history()));
            self.admin_config = admin_config(store, reloader);
        }
        self.observe_events(events);
    }

    fn observe_events(&mut self, events: &mut EventStream) {
        for event in events.drain() {
            let mut text = String::new();
            let _ = write!(text, "{} {} ", event.ty(), event.source());
            text.push_str(&serde_json::to_string(&event).unwrap_or_default());
            self.events.push(text);
        }
    }
}

/// What `GET /admin/config` answers, built the same way the router builds it.
fn admin_config(store: &ConfigStore, reloader: &ReloadOrchestrator) -> String {
    json!({
        "version": store.version(),
        "config": store.redacted_json(),
        "pending_restart": reloader.pending_restart(),
        "last_rejected": reloader.last_rejected(),
        "last_reverted": reloader.last_reverted(),
        "overrides": store.overrides().keys().collect::<Vec<_>>(),
    })
    .to_string()
}

/// The kit's own module, usable on its own in a module's tests: it depends on the module named
/// `after`, so it prepares after it, and fails to prepare while `conformance_tripwire.fail` is
/// true. A reload that changes both sections and sets `fail` shows what an abort does to the
/// module under test.
#[derive(Debug)]
pub struct Tripwire {
    after: String,
}

impl Tripwire {
    /// A tripwire that prepares after `module`.
    pub fn after(module: &str) -> Self {
        Self {
            after: module.to_owned(),
        }
    }
}

#[derive(
    Clone,
    Debug,
    Default,
    PartialEq,
    serde::Serialize,
    serde::Deserialize,
    modular_core::DynamicConfig,
)]
#[serde(default, deny_unknown_fields)]
#[config(dynamic)]
struct TripwireConfig {
    fail: bool,
    attempt: u64,
}

struct TripwireReload;

#[modular_core::async_trait]
impl Reloadable for TripwireReload {
    async fn prepare(
        &self,
        ctx: &ReloadContext,
        _changes: &[ConfigChange],
    ) -> Result<PreparedReload, BoxError> {
        match ctx.new_config::<TripwireConfig>() {
            Some(config) if config.fail => {
                Err("the conformance tripwire refuses this reload".into())
            }
            _ => Ok(PreparedReload::nothing()),
        }
    }
}

#[modular_core::async_trait]
impl Module for Tripwire {
    fn name(&self) -> &str {
        TRIPWIRE
    }

    fn dependencies(&self) -> Vec<String> {
        vec![self.after.clone()]
    }

    async fn init(&mut self, ctx: &mut InitContext<'_>) -> Result<(), BoxError> {
        let _ = ctx.config::<TripwireConfig>()?;
        ctx.register_reloadable(Arc::new(TripwireReload));
        Ok(())
    }
}

/// The result of a run: one line per check.
#[derive(Debug)]
pub struct ConformanceReport {
    module: String,
    checks: Vec<(String, CheckResult)>,
}

/// How one check ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CheckResult {
    /// It held.
    Passed,
    /// It did not, and why.
    Failed(String),
    /// It could not run for this module, and why.
    Skipped(String),
}

impl ConformanceReport {
    fn pass(&mut self, name: &str) {
        self.checks.push((name.to_owned(), CheckResult::Passed));
    }

    fn fail(&mut self, name: &str, why: String) {
        self.checks
            .push((name.to_owned(), CheckResult::Failed(why)));
    }

    fn skip(&mut self, name: &str, why: String) {
        self.checks
            .push((name.to_owned(), CheckResult::Skipped(why)));
    }

    /// Every check and how it ended.
    pub fn checks(&self) -> &[(String, CheckResult)] {
        &self.checks
    }

    /// How many checks passed.
    pub fn passed(&self) -> usize {
        self.checks
            .iter()
            .filter(|(_, r)| *r == CheckResult::Passed)
            .count()
    }

    /// Panics, listing every failed check, unless all passed; prints the report either way.
    #[allow(clippy::panic)]
    pub fn assert_passed(&self) {
        let mut text = format!("conformance of `{}`:\n", self.module);
        for (name, result) in &self.checks {
            let _ = match result {
                CheckResult::Passed => writeln!(text, "  ok    {name}"),
                CheckResult::Failed(why) => writeln!(text, "  FAIL  {name}: {why}"),
                CheckResult::Skipped(why) => writeln!(text, "  skip  {name}: {why}"),
            };
        }
        println!("{text}");
        let failed = self
            .checks
            .iter()
            .any(|(_, r)| matches!(r, CheckResult::Failed(_)));
        assert!(!failed, "{text}");
        assert!(self.passed() > 0, "no check ran:\n{text}");
    }
}

/// Log lines captured during a run.
#[derive(Clone, Default)]
struct LogBuffer(Arc<Mutex<Vec<u8>>>);

impl LogBuffer {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap_or_else(PoisonError::into_inner)).into_owned()
    }
}

impl io::Write for LogBuffer {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for LogBuffer {
    type Writer = LogBuffer;

    fn make_writer(&'a self) -> Self::Writer {
        self.clone()
    }
}
