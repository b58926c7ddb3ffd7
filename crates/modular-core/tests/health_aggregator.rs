//! The aggregator on paused time: timeouts, single-flight, optionality, tracking, synthetic
//! components, probes, events and the background refresh.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use cloudevents::AttributesReader;
use modular_core::events::types::{HEALTH_EVALUATED, HEALTH_STATUS_CHANGED};
use modular_core::events::{EventBus, EventFilter, EventStream, event_data};
use modular_core::health::{
    HealthAggregator, HealthContext, HealthError, HealthOptions, HealthProvider, HealthReport,
    HealthStatus, Isolation, Probe, Probes, ProviderOptions,
};
use serde_json::json;
use tokio::time::{Instant, sleep};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

type Script = Box<dyn Fn(&HealthContext) -> Result<Vec<HealthReport>, HealthError> + Send + Sync>;

/// A provider that sleeps `delay` (paused time), then answers what `script` says; counts calls.
struct Scripted {
    calls: AtomicUsize,
    delay: Mutex<Duration>,
    script: Mutex<Script>,
}

impl Scripted {
    fn new(
        script: impl Fn(&HealthContext) -> Result<Vec<HealthReport>, HealthError>
        + Send
        + Sync
        + 'static,
    ) -> Arc<Self> {
        Arc::new(Self {
            calls: AtomicUsize::new(0),
            delay: Mutex::new(Duration::ZERO),
            script: Mutex::new(Box::new(script)),
        })
    }

    fn status(status: HealthStatus) -> Arc<Self> {
        Self::new(move |ctx| Ok(vec![ctx.report(status)]))
    }

    fn sleeping(delay: Duration) -> Arc<Self> {
        let provider = Self::status(HealthStatus::Healthy);
        *provider.delay.lock().unwrap() = delay;
        provider
    }

    fn set(
        &self,
        script: impl Fn(&HealthContext) -> Result<Vec<HealthReport>, HealthError>
        + Send
        + Sync
        + 'static,
    ) {
        *self.script.lock().unwrap() = Box::new(script);
    }

    fn calls(&self) -> usize {
        self.calls.load(Ordering::SeqCst)
    }
}

#[async_trait::async_trait]
impl HealthProvider for Scripted {
    async fn health_check(&self, ctx: &HealthContext) -> Result<Vec<HealthReport>, HealthError> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        let delay = *self.delay.lock().unwrap();
        if !delay.is_zero() {
            sleep(delay).await;
        }
        (self.script.lock().unwrap())(ctx)
    }
}

fn quiet() -> HealthOptions {
    HealthOptions::default().with_runtime_check(false)
}

fn aggregator(options: HealthOptions) -> (Arc<HealthAggregator>, EventBus) {
    let bus = EventBus::new();
    (HealthAggregator::new(options, bus.clone()), bus)
}

fn add(
    aggregator: &HealthAggregator,
    name: &str,
    provider: &Arc<Scripted>,
    options: ProviderOptions,
) {
    aggregator.register_health_provider(
        name,
        Arc::clone(provider) as Arc<dyn HealthProvider>,
        options,
    );
}

fn changes(stream: &mut EventStream) -> Vec<serde_json::Value> {
    stream
        .drain()
        .iter()
        .filter(|e| e.ty() == HEALTH_STATUS_CHANGED)
        .map(|e| event_data(e).cloned().unwrap())
        .collect()
}

#[tokio::test(start_paused = true)]
async fn a_provider_past_its_timeout_is_unhealthy_while_a_fast_ones_report_is_kept() {
    let (aggregator, _) = aggregator(quiet());
    let slow = Scripted::sleeping(Duration::from_secs(30));
    let fast = Scripted::status(HealthStatus::Healthy);
    add(&aggregator, "slow", &slow, ProviderOptions::default());
    add(&aggregator, "fast", &fast, ProviderOptions::default());

    let started = Instant::now();
    let health = aggregator.check().await;
    let took = started.elapsed();

    assert!(
        took >= Duration::from_millis(200),
        "returned before the timeout: {took:?}"
    );
    assert!(
        took <= Duration::from_millis(205),
        "took {took:?}, more than timeout + 5 ms"
    );
    let slow_report = health.report("slow", "slow").unwrap();
    assert_eq!(slow_report.status, HealthStatus::Unhealthy);
    assert_eq!(slow_report.message, "timed out after 200ms");
    assert_eq!(slow_report.duration, Duration::from_millis(200));
    let fast_report = health.report("fast", "fast").unwrap();
    assert_eq!(fast_report.status, HealthStatus::Healthy);
    assert_eq!(fast_report.duration, Duration::ZERO);
    assert_eq!(health.readiness, HealthStatus::Unhealthy);
}

#[tokio::test(start_paused = true)]
async fn each_provider_has_its_own_timeout() {
    let (aggregator, _) = aggregator(quiet());
    let patient = Scripted::sleeping(Duration::from_millis(300));
    add(
        &aggregator,
        "patient",
        &patient,
        ProviderOptions::default().with_timeout(Duration::from_millis(500)),
    );
    let health = aggregator.check().await;
    assert_eq!(
        health.report("patient", "patient").unwrap().status,
        HealthStatus::Healthy
    );
    assert_eq!(health.duration, Duration::from_millis(300));
}

#[tokio::test(start_paused = true)]
async fn fifty_concurrent_checks_on_a_cold_cache_call_each_provider_once() {
    let (aggregator, _) = aggregator(quiet());
    let providers: Vec<Arc<Scripted>> = (0..5)
        .map(|i| Scripted::sleeping(Duration::from_millis(10 * (i + 1))))
        .collect();
    for (i, provider) in providers.iter().enumerate() {
        add(
            &aggregator,
            &format!("p{i}"),
            provider,
            ProviderOptions::default(),
        );
    }

    let answers = futures::future::join_all((0..50).map(|_| {
        let aggregator = Arc::clone(&aggregator);
        tokio::spawn(async move { aggregator.check().await })
    }))
    .await;

    for provider in &providers {
        assert_eq!(provider.calls(), 1);
    }
    assert_eq!(aggregator.evaluations(), 1);
    let first = answers[0].as_ref().unwrap();
    assert!(
        answers
            .iter()
            .all(|a| Arc::ptr_eq(a.as_ref().unwrap(), first))
    );
}

#[tokio::test(start_paused = true)]
async fn force_refreshes_arriving_during_an_evaluation_share_the_next_one() {
    let (aggregator, _) = aggregator(quiet());
    let provider = Scripted::sleeping(Duration::from_millis(50));
    add(&aggregator, "db", &provider, ProviderOptions::default());

    // The first starts evaluation 1; the nine others arrive while it runs, so its (older)
    // answer will not do for them: they share evaluation 2.
    let together = futures::future::join_all((0..10).map(|_| aggregator.force_refresh())).await;
    let evaluations: Vec<u64> = together.iter().map(|a| a.evaluation).collect();
    assert_eq!(evaluations, [1, 2, 2, 2, 2, 2, 2, 2, 2, 2]);
    assert_eq!(provider.calls(), 2);

    let running = tokio::spawn({
        let aggregator = Arc::clone(&aggregator);
        async move { aggregator.force_refresh().await }
    });
    sleep(Duration::from_millis(300)).await;
    assert_eq!(running.await.unwrap().evaluation, 3);

    // A check (not forced) on a stale cache that arrives while an evaluation runs takes that
    // evaluation's answer.
    let forced = tokio::spawn({
        let aggregator = Arc::clone(&aggregator);
        async move { aggregator.force_refresh().await }
    });
    sleep(Duration::from_millis(10)).await;
    let checked = aggregator.check().await;
    assert_eq!(checked.evaluation, 4);
    assert_eq!(forced.await.unwrap().evaluation, 4);
    assert_eq!(provider.calls(), 4);
}

#[tokio::test(start_paused = true)]
async fn the_cache_answers_within_the_ttl_and_reevaluates_after_it() {
    let (aggregator, _) = aggregator(quiet().with_cache_ttl(Duration::from_millis(100)));
    let provider = Scripted::status(HealthStatus::Healthy);
    add(&aggregator, "db", &provider, ProviderOptions::default());

    let first = aggregator.check().await;
    sleep(Duration::from_millis(99)).await;
    let cached = aggregator.check().await;
    assert!(Arc::ptr_eq(&first, &cached));
    assert!(aggregator.cached().is_some());
    sleep(Duration::from_millis(1)).await;
    assert!(aggregator.cached().is_none());
    let fresh = aggregator.check().await;
    assert!(!Arc::ptr_eq(&first, &fresh));
    assert_eq!(provider.calls(), 2);
}

#[tokio::test(start_paused = true)]
async fn the_default_cache_ttl_is_250ms() {
    let (aggregator, _) = aggregator(quiet());
    let provider = Scripted::status(HealthStatus::Healthy);
    add(&aggregator, "db", &provider, ProviderOptions::default());

    let first = aggregator.check().await;
    sleep(Duration::from_millis(249)).await;
    assert!(
        Arc::ptr_eq(&first, &aggregator.check().await),
        "cached at 249 ms"
    );
    sleep(Duration::from_millis(1)).await;
    assert!(
        !Arc::ptr_eq(&first, &aggregator.check().await),
        "stale at 250 ms"
    );
    assert_eq!(provider.calls(), 2);
}

#[tokio::test(start_paused = true)]
async fn registering_a_provider_invalidates_the_cache() {
    let (aggregator, _) = aggregator(quiet());
    let db = Scripted::status(HealthStatus::Healthy);
    add(&aggregator, "db", &db, ProviderOptions::default());
    let _ = aggregator.check().await;
    let cache = Scripted::status(HealthStatus::Degraded);
    add(&aggregator, "cache", &cache, ProviderOptions::default());
    let health = aggregator.check().await;
    assert_eq!(
        health.report("cache", "cache").unwrap().status,
        HealthStatus::Degraded
    );
    assert_eq!(db.calls(), 2);
}

#[tokio::test(start_paused = true)]
async fn deregistering_a_provider_removes_its_reports_at_once() {
    let (aggregator, _) = aggregator(quiet());
    let db = Scripted::status(HealthStatus::Healthy);
    let queue = Scripted::status(HealthStatus::Unhealthy);
    add(&aggregator, "db", &db, ProviderOptions::default());
    add(&aggregator, "queue", &queue, ProviderOptions::default());
    assert_eq!(aggregator.check().await.readiness, HealthStatus::Unhealthy);

    aggregator.deregister("queue");
    let latest = aggregator.latest().unwrap();
    assert!(latest.report("queue", "queue").is_none());
    assert_eq!(latest.readiness, HealthStatus::Healthy);
    assert_eq!(aggregator.provider_names(), ["db"]);
    let _ = aggregator.check().await;
    assert_eq!(queue.calls(), 1);
}

#[tokio::test(start_paused = true)]
async fn an_optional_provider_stays_optional_however_it_fails() {
    let (aggregator, _) = aggregator(quiet());
    let optional = ProviderOptions::default().with_optional(true);
    let erroring = Scripted::new(|_| Err(HealthError::failed("connection refused")));
    let temporary = Scripted::new(|_| Err(HealthError::temporary("warming up")));
    let panicking = Scripted::new(|_| panic!("boom"));
    let slow = Scripted::sleeping(Duration::from_secs(5));
    add(&aggregator, "erroring", &erroring, optional.clone());
    add(&aggregator, "temporary", &temporary, optional.clone());
    add(&aggregator, "panicking", &panicking, optional.clone());
    add(&aggregator, "slow", &slow, optional);
    let required = Scripted::status(HealthStatus::Healthy);
    add(
        &aggregator,
        "required",
        &required,
        ProviderOptions::default(),
    );

    let health = aggregator.check().await;

    let expectations = [
        ("erroring", HealthStatus::Unhealthy, "connection refused"),
        ("temporary", HealthStatus::Degraded, "temporary: warming up"),
        ("panicking", HealthStatus::Unhealthy, "panicked: boom"),
        ("slow", HealthStatus::Unhealthy, "timed out after 200ms"),
    ];
    for (name, status, message) in expectations {
        let report = health.report(name, name).unwrap();
        assert!(report.optional, "{name} lost its optionality");
        assert_eq!(report.status, status, "{name}");
        assert_eq!(report.message, message, "{name}");
    }
    assert_eq!(health.readiness, HealthStatus::Healthy);
    assert_eq!(health.health, HealthStatus::Unhealthy);
}

#[tokio::test(start_paused = true)]
async fn a_provider_can_mark_one_of_its_components_optional() {
    let (aggregator, _) = aggregator(quiet());
    let db = Scripted::new(|_| {
        Ok(vec![
            HealthReport::healthy("db", "primary"),
            HealthReport::unhealthy("db", "replica").with_optional(true),
        ])
    });
    add(&aggregator, "db", &db, ProviderOptions::default());
    let health = aggregator.check().await;
    assert_eq!(health.readiness, HealthStatus::Healthy);
    assert_eq!(health.health, HealthStatus::Unhealthy);
}

#[tokio::test(start_paused = true)]
async fn a_provider_returning_no_reports_yields_one_healthy_report_named_after_it() {
    let (aggregator, _) = aggregator(quiet());
    let silent = Scripted::new(|_| Ok(Vec::new()));
    add(
        &aggregator,
        "scheduler",
        &silent,
        ProviderOptions::default(),
    );
    let health = aggregator.check().await;
    assert_eq!(health.reports.len(), 1);
    let report = &health.reports[0];
    assert_eq!(
        (report.module.as_str(), report.component.as_str()),
        ("scheduler", "scheduler")
    );
    assert_eq!(report.status, HealthStatus::Healthy);
}

#[tokio::test(start_paused = true)]
async fn reports_are_sorted_by_module_then_component() {
    let (aggregator, _) = aggregator(quiet());
    let zeta = Scripted::new(|_| {
        Ok(vec![
            HealthReport::healthy("alpha", "z"),
            HealthReport::healthy("alpha", "b"),
        ])
    });
    let alpha = Scripted::new(|_| {
        Ok(vec![
            HealthReport::healthy("omega", "a"),
            HealthReport::healthy("beta", "x"),
        ])
    });
    add(&aggregator, "zeta", &zeta, ProviderOptions::default());
    add(&aggregator, "alpha", &alpha, ProviderOptions::default());
    let health = aggregator.check().await;
    let keys: Vec<String> = health.reports.iter().map(HealthReport::key).collect();
    assert_eq!(keys, ["alpha:b", "alpha:z", "beta:x", "omega:a"]);
}

#[tokio::test(start_paused = true)]
async fn a_failing_provider_is_reported_on_the_components_it_reported_before() {
    let (aggregator, _) = aggregator(quiet());
    let db = Scripted::new(|_| {
        Ok(vec![
            HealthReport::healthy("db", "primary"),
            HealthReport::healthy("db", "replica").with_optional(true),
        ])
    });
    add(&aggregator, "database", &db, ProviderOptions::default());
    let _ = aggregator.force_refresh().await;
    db.set(|_| Err(HealthError::failed("pool closed")));
    let health = aggregator.force_refresh().await;
    let keys: Vec<String> = health.reports.iter().map(HealthReport::key).collect();
    assert_eq!(keys, ["db:primary", "db:replica"]);
    for report in &health.reports {
        assert_eq!(report.status, HealthStatus::Unhealthy);
        assert_eq!(report.message, "pool closed");
    }
    assert!(!health.reports[0].optional);
    assert!(health.reports[1].optional);
}

#[tokio::test(start_paused = true)]
async fn observed_since_holds_while_the_status_holds_and_restarts_on_a_change() {
    let (aggregator, _) = aggregator(quiet());
    let db = Scripted::status(HealthStatus::Healthy);
    add(&aggregator, "db", &db, ProviderOptions::default());

    let first = aggregator.force_refresh().await;
    let since = first.report("db", "db").unwrap().observed_since;
    sleep(Duration::from_secs(2)).await;
    let second = aggregator.force_refresh().await;
    let report = second.report("db", "db").unwrap();
    assert_eq!(report.observed_since, since);
    assert!(report.checked_at > since);

    db.set(|ctx| Ok(vec![ctx.report(HealthStatus::Degraded)]));
    sleep(Duration::from_secs(1)).await;
    let third = aggregator.force_refresh().await;
    let report = third.report("db", "db").unwrap();
    assert_eq!(report.observed_since, report.checked_at);
    assert!(report.observed_since > since);
}

#[tokio::test(start_paused = true)]
async fn synthetic_components_appear_without_a_provider_and_clear_at_once() {
    let (aggregator, bus) = aggregator(quiet());
    let db = Scripted::status(HealthStatus::Healthy);
    add(&aggregator, "db", &db, ProviderOptions::default());
    let _ = aggregator.check().await;
    let mut events = bus.subscribe(EventFilter::exact(HEALTH_STATUS_CHANGED));

    aggregator.set_component(
        "reload",
        "circuit_breaker",
        HealthStatus::Degraded,
        "3 consecutive reload failures",
        true,
    );
    let health = aggregator.check().await;
    assert_eq!(
        db.calls(),
        1,
        "setting a component must not rerun providers"
    );
    let report = health.report("reload", "circuit_breaker").unwrap();
    assert_eq!(report.status, HealthStatus::Degraded);
    assert_eq!(report.message, "3 consecutive reload failures");
    assert!(report.optional);
    assert_eq!(health.health, HealthStatus::Degraded);
    assert_eq!(health.readiness, HealthStatus::Healthy);
    assert_eq!(
        changes(&mut events),
        [json!({"probe": "health", "previous_status": "healthy", "current_status": "degraded"})]
    );

    // The same status again is not a change; a component survives evaluations.
    aggregator.set_component(
        "reload",
        "circuit_breaker",
        HealthStatus::Degraded,
        "3 consecutive reload failures",
        true,
    );
    let refreshed = aggregator.force_refresh().await;
    assert!(refreshed.report("reload", "circuit_breaker").is_some());
    assert!(changes(&mut events).is_empty());

    aggregator.clear_component("reload", "circuit_breaker");
    let cleared = aggregator.check().await;
    assert!(cleared.report("reload", "circuit_breaker").is_none());
    assert_eq!(cleared.health, HealthStatus::Healthy);
    assert_eq!(
        changes(&mut events),
        [json!({"probe": "health", "previous_status": "degraded", "current_status": "healthy"})]
    );
}

#[tokio::test(start_paused = true)]
async fn a_required_synthetic_component_fails_readiness() {
    let (aggregator, _) = aggregator(quiet());
    aggregator.set_component(
        "config",
        "pending_restart",
        HealthStatus::Unhealthy,
        "restart required",
        false,
    );
    let health = aggregator.check().await;
    assert_eq!(health.readiness, HealthStatus::Unhealthy);
}

#[tokio::test(start_paused = true)]
async fn shutting_down_turns_readiness_unhealthy_without_rerunning_providers() {
    let (aggregator, bus) = aggregator(quiet());
    let db = Scripted::status(HealthStatus::Healthy);
    add(&aggregator, "db", &db, ProviderOptions::default());
    assert_eq!(aggregator.check().await.readiness, HealthStatus::Healthy);
    let mut events = bus.subscribe(EventFilter::exact(HEALTH_STATUS_CHANGED));

    aggregator.set_shutting_down(true);
    let health = aggregator.check().await;
    assert_eq!(health.readiness, HealthStatus::Unhealthy);
    assert_eq!(health.health, HealthStatus::Healthy);
    assert!(health.shutting_down);
    assert_eq!(db.calls(), 1);
    assert_eq!(
        changes(&mut events),
        [
            json!({"probe": "readiness", "previous_status": "healthy", "current_status": "unhealthy"})
        ]
    );
    // Stays unhealthy across fresh evaluations.
    assert_eq!(
        aggregator.force_refresh().await.readiness,
        HealthStatus::Unhealthy
    );
}

#[tokio::test(start_paused = true)]
async fn startup_is_unhealthy_until_started_then_follows_startup_providers() {
    let (aggregator, _) = aggregator(quiet());
    let warmup = Scripted::status(HealthStatus::Healthy);
    add(
        &aggregator,
        "warmup",
        &warmup,
        ProviderOptions::default().with_probes(Probes::STARTUP),
    );
    assert_eq!(aggregator.check().await.startup, HealthStatus::Unhealthy);

    aggregator.set_started(true);
    let started = aggregator.check().await;
    assert_eq!(started.startup, HealthStatus::Healthy);
    assert!(started.started);

    warmup.set(|ctx| Ok(vec![ctx.report(HealthStatus::Unhealthy)]));
    let health = aggregator.force_refresh().await;
    assert_eq!(health.startup, HealthStatus::Unhealthy);
    // A startup-only provider does not count for readiness.
    assert_eq!(health.readiness, HealthStatus::Healthy);
}

#[tokio::test(start_paused = true)]
async fn liveness_folds_only_liveness_providers() {
    let (aggregator, _) = aggregator(quiet());
    let looped = Scripted::status(HealthStatus::Unhealthy);
    let db = Scripted::status(HealthStatus::Unhealthy);
    add(
        &aggregator,
        "loop",
        &looped,
        ProviderOptions::default().readiness(false).liveness(true),
    );
    add(&aggregator, "db", &db, ProviderOptions::default());
    let health = aggregator.check().await;
    assert_eq!(health.liveness, HealthStatus::Unhealthy);
    aggregator.deregister("loop");
    assert_eq!(aggregator.check().await.liveness, HealthStatus::Healthy);
}

#[tokio::test(start_paused = true)]
async fn the_config_version_is_reported_and_updates_the_answer() {
    let (aggregator, _) = aggregator(quiet());
    aggregator.set_config_version(3);
    assert_eq!(aggregator.check().await.config_version, 3);
    aggregator.set_config_version(4);
    assert_eq!(aggregator.check().await.config_version, 4);
}

#[tokio::test(start_paused = true)]
async fn every_fresh_evaluation_emits_evaluated_with_the_probe_statuses() {
    let (aggregator, bus) = aggregator(quiet());
    let mut events = bus.subscribe(EventFilter::prefix("com.modular.health."));
    let db = Scripted::status(HealthStatus::Degraded);
    add(&aggregator, "db", &db, ProviderOptions::default());

    let _ = aggregator.check().await;
    let _ = aggregator.check().await; // cached: no event
    let seen = events.drain();
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].ty(), HEALTH_EVALUATED);
    assert_eq!(seen[0].source().to_string(), "/modular/health");
    let data = event_data(&seen[0]).unwrap();
    assert_eq!(data["health"], "degraded");
    assert_eq!(data["readiness"], "degraded");
    assert_eq!(data["liveness"], "healthy");
    assert_eq!(data["report_count"], 1);
}

#[tokio::test(start_paused = true)]
async fn component_changes_name_the_component_and_come_after_probe_changes() {
    let (aggregator, bus) = aggregator(quiet());
    let db = Scripted::new(|_| {
        Ok(vec![
            HealthReport::healthy("db", "primary"),
            HealthReport::healthy("db", "replica"),
        ])
    });
    add(
        &aggregator,
        "db",
        &db,
        ProviderOptions::default().with_optional(true),
    );
    let _ = aggregator.force_refresh().await;
    let mut events = bus.subscribe(EventFilter::exact(HEALTH_STATUS_CHANGED));

    db.set(|_| {
        Ok(vec![
            HealthReport::healthy("db", "primary"),
            HealthReport::degraded("db", "replica"),
        ])
    });
    let _ = aggregator.force_refresh().await;
    assert_eq!(
        changes(&mut events),
        [
            json!({"probe": "health", "previous_status": "healthy", "current_status": "degraded"}),
            json!({"probe": "component", "component": "db:replica", "previous_status": "healthy", "current_status": "degraded"}),
        ]
    );
}

#[tokio::test(start_paused = true)]
async fn background_refresh_keeps_the_snapshot_fresh_and_stops_on_cancel() {
    let options = quiet()
        .with_cache_ttl(Duration::from_millis(100))
        .with_background_refresh(Duration::from_secs(1));
    let (aggregator, _) = aggregator(options);
    let db = Scripted::status(HealthStatus::Healthy);
    add(&aggregator, "db", &db, ProviderOptions::default());
    let cancel = CancellationToken::new();
    let tracker = TaskTracker::new();
    aggregator.start_background(cancel.clone(), &tracker);
    aggregator.start_background(cancel.clone(), &tracker); // a second call is a no-op
    assert_eq!(tracker.len(), 1);

    sleep(Duration::from_millis(10)).await;
    assert_eq!(db.calls(), 1, "the first refresh runs at once");
    // Probes between refreshes only read the snapshot, even past the TTL.
    for _ in 0..20 {
        sleep(Duration::from_millis(100)).await;
        let _ = aggregator.check().await;
    }
    assert_eq!(db.calls(), 3, "one refresh per second over 2 s");

    cancel.cancel();
    tracker.close();
    tokio::time::timeout(Duration::from_secs(1), tracker.wait())
        .await
        .unwrap();
    sleep(Duration::from_secs(5)).await;
    assert_eq!(db.calls(), 3);
}

#[tokio::test(start_paused = true)]
async fn spawned_providers_are_timed_out_and_their_panics_captured() {
    let (aggregator, _) = aggregator(quiet());
    let panicking = Scripted::new(|_| panic!("spawned boom"));
    let slow = Scripted::sleeping(Duration::from_secs(5));
    let fine = Scripted::status(HealthStatus::Healthy);
    let spawned = ProviderOptions::default().with_isolation(Isolation::Spawn);
    add(&aggregator, "panicking", &panicking, spawned.clone());
    add(&aggregator, "slow", &slow, spawned.clone());
    add(&aggregator, "fine", &fine, spawned);

    let health = aggregator.check().await;
    assert_eq!(
        health.report("panicking", "panicking").unwrap().message,
        "panicked: spawned boom"
    );
    assert_eq!(
        health.report("slow", "slow").unwrap().message,
        "timed out after 200ms"
    );
    assert_eq!(
        health.report("fine", "fine").unwrap().status,
        HealthStatus::Healthy
    );
}

#[tokio::test(start_paused = true)]
async fn panics_with_formatted_messages_are_reported_verbatim() {
    let (aggregator, _) = aggregator(quiet());
    let panicking = Scripted::new(|ctx| panic!("{} lost its connection", ctx.name()));
    add(&aggregator, "db", &panicking, ProviderOptions::default());
    let health = aggregator.check().await;
    let report = health.report("db", "db").unwrap();
    assert_eq!(report.status, HealthStatus::Unhealthy);
    assert_eq!(report.message, "panicked: db lost its connection");
}

#[tokio::test(start_paused = true)]
async fn the_context_carries_the_name_and_deadline() {
    let (aggregator, _) = aggregator(quiet());
    let seen = Arc::new(Mutex::new(None));
    let start = Instant::now();
    let probe = Scripted::new({
        let seen = Arc::clone(&seen);
        move |ctx| {
            *seen.lock().unwrap() =
                Some((ctx.name().to_owned(), ctx.deadline(), ctx.is_cancelled()));
            Ok(Vec::new())
        }
    });
    add(
        &aggregator,
        "ctx",
        &probe,
        ProviderOptions::default().with_timeout(Duration::from_millis(70)),
    );
    let _ = aggregator.check().await;
    let (name, deadline, cancelled) = seen.lock().unwrap().clone().unwrap();
    assert_eq!(name, "ctx");
    assert_eq!(deadline, start + Duration::from_millis(70));
    assert!(!cancelled);
}

#[tokio::test(start_paused = true)]
async fn probe_status_codes_follow_each_probe() {
    let (aggregator, _) = aggregator(quiet());
    let optional = Scripted::status(HealthStatus::Unhealthy);
    add(
        &aggregator,
        "cache",
        &optional,
        ProviderOptions::default().with_optional(true),
    );
    aggregator.set_started(true);
    let health = aggregator.check().await;
    assert_eq!(health.status_code(Probe::Health), 503);
    assert_eq!(health.status_code(Probe::Readiness), 200);
    assert_eq!(health.status_code(Probe::Liveness), 200);
    assert_eq!(health.status_code(Probe::Startup), 200);
}
