//! The health contract scenarios (tests/features/health_contract.feature), on paused time.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use cloudevents::AttributesReader;
use cucumber::{World, given, then, when};
use modular_core::events::types::{HEALTH_EVALUATED, HEALTH_STATUS_CHANGED};
use modular_core::events::{Event, EventBus, EventFilter, EventStream, event_data};
use modular_core::health::{
    AggregatedHealth, HealthAggregator, HealthContext, HealthError, HealthOptions, HealthProvider,
    HealthReport, HealthStatus, ProviderOptions,
};
use tokio::time::Instant;

/// What a scripted provider does on its next check.
#[derive(Clone, Debug)]
enum Behaviour {
    Report(HealthStatus),
    Sleep(Duration),
    Panic(String),
    Temporary(String),
    Fail(String),
}

#[derive(Debug)]
struct Scripted {
    calls: AtomicUsize,
    behaviour: Mutex<Behaviour>,
}

#[async_trait::async_trait]
impl HealthProvider for Scripted {
    async fn health_check(&self, ctx: &HealthContext) -> Result<Vec<HealthReport>, HealthError> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        let behaviour = self.behaviour.lock().unwrap().clone();
        match behaviour {
            Behaviour::Report(status) => Ok(vec![ctx.report(status)]),
            Behaviour::Sleep(duration) => {
                tokio::time::sleep(duration).await;
                Ok(vec![ctx.report(HealthStatus::Healthy)])
            }
            Behaviour::Panic(message) => panic!("{message}"),
            Behaviour::Temporary(message) => Err(HealthError::temporary(message)),
            Behaviour::Fail(message) => Err(HealthError::failed(message)),
        }
    }
}

#[derive(World)]
#[world(init = Self::new)]
struct HealthWorld {
    aggregator: Arc<HealthAggregator>,
    bus: EventBus,
    providers: HashMap<String, Arc<Scripted>>,
    events: Option<EventStream>,
    seen: Vec<Event>,
    answer: Option<Arc<AggregatedHealth>>,
    took: Duration,
}

impl std::fmt::Debug for HealthWorld {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HealthWorld")
            .field("providers", &self.providers.keys().collect::<Vec<_>>())
            .field("answer", &self.answer)
            .finish()
    }
}

impl HealthWorld {
    fn new() -> Self {
        let bus = EventBus::new();
        Self {
            aggregator: HealthAggregator::new(HealthOptions::default(), bus.clone()),
            bus,
            providers: HashMap::new(),
            events: None,
            seen: Vec::new(),
            answer: None,
            took: Duration::ZERO,
        }
    }

    fn add(&mut self, name: &str, behaviour: Behaviour, options: ProviderOptions) {
        let provider = Arc::new(Scripted {
            calls: AtomicUsize::new(0),
            behaviour: Mutex::new(behaviour),
        });
        self.aggregator.register_health_provider(
            name,
            Arc::clone(&provider) as Arc<dyn HealthProvider>,
            options,
        );
        self.providers.insert(name.to_owned(), provider);
    }

    fn answer(&self) -> &AggregatedHealth {
        self.answer.as_deref().expect("no check has run")
    }

    fn report(&self, name: &str) -> &HealthReport {
        self.answer()
            .report(name, name)
            .unwrap_or_else(|| panic!("no report for {name}: {:?}", self.answer().reports))
    }

    /// The data of every event of type `ty` seen so far.
    fn events_of(&mut self, ty: &str) -> Vec<serde_json::Value> {
        let stream = self.events.as_mut().expect("events are not observed");
        self.seen.extend(stream.drain());
        self.seen
            .iter()
            .filter(|event| event.ty() == ty)
            .map(|event| event_data(event).cloned().unwrap_or_default())
            .collect()
    }
}

fn status(word: &str) -> HealthStatus {
    match word {
        "healthy" => HealthStatus::Healthy,
        "degraded" => HealthStatus::Degraded,
        "unhealthy" => HealthStatus::Unhealthy,
        "unknown" => HealthStatus::Unknown,
        other => panic!("unknown status {other}"),
    }
}

#[given(expr = "a health aggregator with a cache TTL of {int} ms")]
fn aggregator_with_ttl(world: &mut HealthWorld, ttl: u64) {
    let options = HealthOptions::default().with_cache_ttl(Duration::from_millis(ttl));
    world.aggregator = HealthAggregator::new(options, world.bus.clone());
}

#[given(expr = "a provider {string} that reports {word}")]
fn provider_reports(world: &mut HealthWorld, name: String, word: String) {
    world.add(
        &name,
        Behaviour::Report(status(&word)),
        ProviderOptions::default(),
    );
}

#[given(expr = "an optional provider {string} that reports {word}")]
fn optional_provider_reports(world: &mut HealthWorld, name: String, word: String) {
    let options = ProviderOptions::default().with_optional(true);
    world.add(&name, Behaviour::Report(status(&word)), options);
}

#[given(expr = "a provider {string} that panics with {string}")]
fn provider_panics(world: &mut HealthWorld, name: String, message: String) {
    world.add(&name, Behaviour::Panic(message), ProviderOptions::default());
}

#[given(expr = "a provider {string} that fails temporarily with {string}")]
fn provider_fails_temporarily(world: &mut HealthWorld, name: String, message: String) {
    world.add(
        &name,
        Behaviour::Temporary(message),
        ProviderOptions::default(),
    );
}

#[given(expr = "a provider {string} that fails with {string}")]
fn provider_fails(world: &mut HealthWorld, name: String, message: String) {
    world.add(&name, Behaviour::Fail(message), ProviderOptions::default());
}

#[given(expr = "an optional provider {string} that fails with {string}")]
fn optional_provider_fails(world: &mut HealthWorld, name: String, message: String) {
    let options = ProviderOptions::default().with_optional(true);
    world.add(&name, Behaviour::Fail(message), options);
}

#[given(expr = "a provider {string} that sleeps {int} ms with a timeout of {int} ms")]
fn provider_sleeps(world: &mut HealthWorld, name: String, sleep: u64, timeout: u64) {
    let options = ProviderOptions::default().with_timeout(Duration::from_millis(timeout));
    world.add(
        &name,
        Behaviour::Sleep(Duration::from_millis(sleep)),
        options,
    );
}

#[given("health events are observed")]
fn observe_events(world: &mut HealthWorld) {
    world.events = Some(
        world
            .bus
            .subscribe(EventFilter::prefix("com.modular.health.")),
    );
}

#[when("health is checked")]
async fn check(world: &mut HealthWorld) {
    let started = Instant::now();
    world.answer = Some(world.aggregator.check().await);
    world.took = started.elapsed();
}

#[when("health is force refreshed")]
async fn force_refresh(world: &mut HealthWorld) {
    world.answer = Some(world.aggregator.force_refresh().await);
}

#[when(expr = "{int} ms pass")]
async fn time_passes(_world: &mut HealthWorld, millis: u64) {
    tokio::time::sleep(Duration::from_millis(millis)).await;
}

#[when(expr = "{int} checks run concurrently")]
async fn concurrent_checks(world: &mut HealthWorld, count: usize) {
    let aggregator = Arc::clone(&world.aggregator);
    let answers = futures::future::join_all((0..count).map(|_| aggregator.check())).await;
    assert_eq!(answers.len(), count);
    let first = answers.first().cloned().expect("no answer");
    assert!(
        answers.iter().all(|a| Arc::ptr_eq(a, &first)),
        "concurrent callers got different answers"
    );
    world.answer = Some(first);
}

#[when(expr = "provider {string} starts reporting {word}")]
fn provider_changes(world: &mut HealthWorld, name: String, word: String) {
    *world.providers[&name].behaviour.lock().unwrap() = Behaviour::Report(status(&word));
}

#[when("the application starts shutting down")]
fn shutting_down(world: &mut HealthWorld) {
    world.aggregator.set_shutting_down(true);
}

#[then(expr = "health is {word}")]
fn health_is(world: &mut HealthWorld, word: String) {
    assert_eq!(
        world.answer().health,
        status(&word),
        "{:?}",
        world.answer().reports
    );
}

#[then(expr = "readiness is {word}")]
fn readiness_is(world: &mut HealthWorld, word: String) {
    assert_eq!(
        world.answer().readiness,
        status(&word),
        "{:?}",
        world.answer().reports
    );
}

#[then(expr = "readiness is {word} now")]
async fn readiness_is_now(world: &mut HealthWorld, word: String) {
    let answer = world.aggregator.check().await;
    assert_eq!(answer.readiness, status(&word));
}

#[then(expr = "liveness is {word}")]
fn liveness_is(world: &mut HealthWorld, word: String) {
    assert_eq!(
        world.answer().liveness,
        status(&word),
        "{:?}",
        world.answer().reports
    );
}

#[then(regex = r#"^the report of "([^"]+)" is (healthy|degraded|unhealthy|unknown)$"#)]
fn report_is(world: &mut HealthWorld, name: String, word: String) {
    assert_eq!(
        world.report(&name).status,
        status(&word),
        "{:?}",
        world.report(&name)
    );
}

#[then(expr = "the report of {string} is {word} with a message containing {string}")]
fn report_is_with_message(world: &mut HealthWorld, name: String, word: String, fragment: String) {
    let report = world.report(&name);
    assert_eq!(report.status, status(&word), "{report:?}");
    assert!(
        report.message.contains(&fragment),
        "{:?} lacks {fragment:?}",
        report.message
    );
}

#[then(expr = "the report of {string} is optional")]
fn report_is_optional(world: &mut HealthWorld, name: String) {
    assert!(world.report(&name).optional, "{:?}", world.report(&name));
}

#[then(regex = r#"^provider "([^"]+)" was called (\d+) times?$"#)]
fn provider_called(world: &mut HealthWorld, name: String, times: usize) {
    assert_eq!(
        world.providers[&name].calls.load(Ordering::SeqCst),
        times,
        "calls of {name}"
    );
}

#[then(expr = "the check took at most {int} ms")]
fn check_took(world: &mut HealthWorld, millis: u64) {
    assert!(
        world.took <= Duration::from_millis(millis),
        "the check took {:?}",
        world.took
    );
}

#[then(
    regex = r"^exactly (\d+) status-changed events? (?:is|are) emitted for probe (.+) from (\w+) to (\w+)$"
)]
fn probe_changes(world: &mut HealthWorld, count: usize, probe: String, from: String, to: String) {
    let probe = probe.trim_matches('"').to_owned();
    let matching = world
        .events_of(HEALTH_STATUS_CHANGED)
        .into_iter()
        .filter(|data| data["probe"] == probe.as_str())
        .collect::<Vec<_>>();
    assert_eq!(matching.len(), count, "{matching:?}");
    for data in matching {
        assert_eq!(data["previous_status"], from.as_str());
        assert_eq!(data["current_status"], to.as_str());
    }
}

#[then(
    regex = r"^exactly (\d+) status-changed events? (?:is|are) emitted for component (.+) from (\w+) to (\w+)$"
)]
fn component_changes(
    world: &mut HealthWorld,
    count: usize,
    component: String,
    from: String,
    to: String,
) {
    let component = component.trim_matches('"').to_owned();
    let matching = world
        .events_of(HEALTH_STATUS_CHANGED)
        .into_iter()
        .filter(|data| data["probe"] == "component" && data["component"] == component.as_str())
        .collect::<Vec<_>>();
    assert_eq!(matching.len(), count, "{matching:?}");
    for data in matching {
        assert_eq!(data["previous_status"], from.as_str());
        assert_eq!(data["current_status"], to.as_str());
    }
}

#[then(regex = r"^exactly (\d+) status-changed events? (?:is|are) emitted in total$")]
fn all_changes(world: &mut HealthWorld, count: usize) {
    let all = world.events_of(HEALTH_STATUS_CHANGED);
    assert_eq!(all.len(), count, "{all:?}");
}

#[then(regex = r"^exactly (\d+) evaluated events? (?:is|are) emitted$")]
fn evaluated_events(world: &mut HealthWorld, count: usize) {
    let all = world.events_of(HEALTH_EVALUATED);
    assert_eq!(all.len(), count, "{all:?}");
    for data in all {
        assert!(data["report_count"].as_u64().is_some(), "{data}");
        assert!(
            data["health"].is_string()
                && data["readiness"].is_string()
                && data["liveness"].is_string()
        );
    }
}

fn main() {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .start_paused(true)
        .build()
        .expect("tokio runtime");
    runtime.block_on(
        HealthWorld::cucumber()
            .max_concurrent_scenarios(1)
            .fail_on_skipped()
            .run_and_exit(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/tests/features/health_contract.feature"
            )),
    );
}
