//! The aggregator: registrations, one concurrent evaluation with per-provider timeouts and panic
//! capture, the cached snapshot with single-flight refresh, synthetic components, and events.

use std::any::Any;

use crate::util::panic_message;
use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, Weak};
use std::time::Duration;

use arc_swap::{ArcSwap, ArcSwapOption};
use chrono::{DateTime, TimeDelta, Utc};
use futures::FutureExt;
use futures::stream::{FuturesUnordered, StreamExt};
use serde_json::json;
use tokio::runtime::Handle;
use tokio::time::{Instant, MissedTickBehavior};
use tokio_util::sync::CancellationToken;
use tokio_util::task::{AbortOnDropHandle, TaskTracker};

use super::fold::{Change, Flags, fold};
use super::options::{HealthOptions, Isolation, ProviderOptions};
use super::provider::{HealthContext, HealthProvider};
use super::runtime::RuntimeMonitor;
use super::types::{
    AggregatedHealth, HealthError, HealthReport, HealthStatus, Origin, duration_ms,
};
use crate::events::EventBus;
use crate::events::types::{HEALTH_EVALUATED, HEALTH_SOURCE, HEALTH_STATUS_CHANGED};

/// Collects health from every registered provider and folds it into readiness, liveness,
/// startup and overall health.
///
/// - [`check`](Self::check) answers from a snapshot younger than the cache TTL without locking
///   (an `ArcSwap` load and a clock read); on a miss, concurrent callers share one evaluation.
/// - An evaluation polls every provider concurrently in the calling task, each under its own
///   timeout and `catch_unwind`, so one slow or panicking provider costs only its own report.
/// - [`set_component`](Self::set_component), [`set_started`](Self::set_started),
///   [`set_shutting_down`](Self::set_shutting_down) and
///   [`set_config_version`](Self::set_config_version) update the current answer at once,
///   without running providers.
/// - Every fresh evaluation emits `com.modular.health.evaluated`; a change of overall health,
///   a probe or a component emits `com.modular.health.status.changed` (the first evaluation is
///   not a change).
pub struct HealthAggregator {
    inner: Arc<Inner>,
}

struct Inner {
    options: HealthOptions,
    events: EventBus,
    /// Sorted by name.
    registrations: ArcSwap<Vec<Arc<Registration>>>,
    /// Bumped by every (de)registration: a snapshot of an older generation is stale.
    generation: AtomicU64,
    /// Sequence number of the last evaluation started.
    started: AtomicU64,
    cache: ArcSwapOption<Cached>,
    /// The single-flight gate: evaluations run one at a time, and a caller that waited here
    /// takes the answer of the evaluation that ran meanwhile. An async mutex is the tool for
    /// this; no synchronous lock is ever held across an await.
    gate: tokio::sync::Mutex<()>,
    state: Mutex<FoldState>,
    runtime: Option<Arc<RuntimeMonitor>>,
    background: Mutex<Option<CancellationToken>>,
}

struct Registration {
    name: Arc<str>,
    provider: Arc<dyn HealthProvider>,
    options: ProviderOptions,
    /// Set while an `Isolation::Blocking` check runs on the blocking pool.
    in_flight: Arc<AtomicBool>,
}

struct Cached {
    health: Arc<AggregatedHealth>,
    expires_at: Instant,
    seq: u64,
    generation: u64,
}

#[derive(Default)]
struct FoldState {
    flags: Flags,
    synthetic: BTreeMap<(String, String), HealthReport>,
    last: Option<Arc<AggregatedHealth>>,
}

#[derive(Clone, Copy, Debug)]
enum Refresh {
    /// A cache miss: any evaluation newer than the stale snapshot will do.
    IfStale,
    /// Only an evaluation that started after the call will do.
    Force,
    /// Like `Force`, from the background task: the snapshot lives one interval longer.
    Background(Duration),
}

enum Outcome {
    Reports(Vec<HealthReport>),
    Failed {
        status: HealthStatus,
        message: String,
    },
}

/// Locks a std mutex, ignoring poisoning: every critical section here leaves the state valid.
pub(crate) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

impl fmt::Debug for HealthAggregator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HealthAggregator")
            .field("providers", &self.provider_names())
            .field("options", &self.inner.options)
            .finish_non_exhaustive()
    }
}

impl HealthAggregator {
    /// An aggregator with no provider, publishing its events on `events`.
    ///
    /// The application has not started until [`set_started`](Self::set_started)`(true)`, so
    /// the startup probe is unhealthy until then.
    pub fn new(options: HealthOptions, events: EventBus) -> Arc<Self> {
        let runtime = options
            .runtime_check
            .then(|| Arc::new(RuntimeMonitor::new(options.runtime_stall_threshold)));
        Arc::new(Self {
            inner: Arc::new(Inner {
                options,
                events,
                registrations: ArcSwap::from_pointee(Vec::new()),
                generation: AtomicU64::new(0),
                started: AtomicU64::new(0),
                cache: ArcSwapOption::empty(),
                gate: tokio::sync::Mutex::new(()),
                state: Mutex::new(FoldState::default()),
                runtime,
                background: Mutex::new(None),
            }),
        })
    }

    /// The options it was built with.
    pub fn options(&self) -> &HealthOptions {
        &self.inner.options
    }

    /// Registers (or replaces) the provider called `name` with its options (timeout,
    /// optionality, probes, tags, isolation). The next check runs it. The same name and
    /// signature as [`InitContext::register_health_provider`](crate::InitContext::register_health_provider).
    pub fn register_health_provider(
        &self,
        name: impl AsRef<str>,
        provider: Arc<dyn HealthProvider>,
        options: ProviderOptions,
    ) {
        let name = name.as_ref();
        let registration = Arc::new(Registration {
            name: Arc::from(name),
            provider,
            options,
            in_flight: Arc::new(AtomicBool::new(false)),
        });
        self.inner.registrations.rcu(|current| {
            let mut next: Vec<Arc<Registration>> = current
                .iter()
                .filter(|r| &*r.name != name)
                .cloned()
                .collect();
            let at = next.partition_point(|r| &*r.name < name);
            next.insert(at, Arc::clone(&registration));
            next
        });
        self.inner.generation.fetch_add(1, Ordering::AcqRel);
        tracing::debug!(provider = name, "health provider registered");
    }

    /// Replaces the options (timeout, optionality, probes, tags, isolation) of the provider
    /// called `name`, keeping the provider: how a module applies a reload of its `health:`
    /// settings. The next check uses them (a cached answer is dropped). Returns whether such
    /// a provider is registered.
    pub fn set_provider_options(&self, name: &str, options: ProviderOptions) -> bool {
        let mut found = false;
        self.inner.registrations.rcu(|current| {
            found = false;
            current
                .iter()
                .map(|r| {
                    if &*r.name == name {
                        found = true;
                        Arc::new(Registration {
                            name: Arc::clone(&r.name),
                            provider: Arc::clone(&r.provider),
                            options: options.clone(),
                            in_flight: Arc::clone(&r.in_flight),
                        })
                    } else {
                        Arc::clone(r)
                    }
                })
                .collect::<Vec<_>>()
        });
        if found {
            self.inner.generation.fetch_add(1, Ordering::AcqRel);
            tracing::debug!(provider = name, "health provider options replaced");
        }
        found
    }

    /// Removes the provider called `name` and its reports from the current answer.
    pub fn deregister(&self, name: &str) {
        let mut removed = false;
        self.inner.registrations.rcu(|current| {
            let next: Vec<Arc<Registration>> = current
                .iter()
                .filter(|r| &*r.name != name)
                .cloned()
                .collect();
            removed = next.len() != current.len();
            next
        });
        if removed {
            self.inner.generation.fetch_add(1, Ordering::AcqRel);
            let mut state = lock(&self.inner.state);
            self.inner.recompose(&mut state, Some(name));
            tracing::debug!(provider = name, "health provider deregistered");
        }
    }

    /// The names of the registered providers, sorted.
    pub fn provider_names(&self) -> Vec<String> {
        self.inner
            .registrations
            .load()
            .iter()
            .map(|r| r.name.to_string())
            .collect()
    }

    /// The options a provider was registered with.
    pub fn provider_options(&self, name: &str) -> Option<ProviderOptions> {
        self.inner
            .registrations
            .load()
            .iter()
            .find(|r| &*r.name == name)
            .map(|r| r.options.clone())
    }

    /// Sets a component that no provider checks (for example `reload:circuit_breaker` or
    /// `config:pending_restart`). It counts for readiness unless `optional`, and appears in
    /// every answer until [`clear_component`](Self::clear_component).
    pub fn set_component(
        &self,
        module: &str,
        component: &str,
        status: HealthStatus,
        message: impl Into<String>,
        optional: bool,
    ) {
        let report = HealthReport::new(module, component, status)
            .with_message(message)
            .with_optional(optional);
        self.set_component_report(report);
    }

    /// Sets a component from a full report (probes, details).
    pub fn set_component_report(&self, mut report: HealthReport) {
        report.origin = Origin::Synthetic;
        let mut state = lock(&self.inner.state);
        let key = (report.module.clone(), report.component.clone());
        if let Some(existing) = state.synthetic.get(&key)
            && existing.status == report.status
            && existing.message == report.message
            && existing.optional == report.optional
            && existing.probes == report.probes
            && existing.details == report.details
        {
            return;
        }
        state.synthetic.insert(key, report);
        self.inner.recompose(&mut state, None);
    }

    /// Removes a component set with [`set_component`](Self::set_component).
    pub fn clear_component(&self, module: &str, component: &str) {
        let mut state = lock(&self.inner.state);
        if state
            .synthetic
            .remove(&(module.to_owned(), component.to_owned()))
            .is_some()
        {
            self.inner.recompose(&mut state, None);
        }
    }

    /// Marks the application started (the startup probe is unhealthy until then).
    pub fn set_started(&self, started: bool) {
        self.inner.update_flags(|flags| flags.started = started);
    }

    /// Marks the application shutting down: readiness turns unhealthy at once, so load
    /// balancers drain the instance before it stops.
    pub fn set_shutting_down(&self, shutting_down: bool) {
        self.inner
            .update_flags(|flags| flags.shutting_down = shutting_down);
    }

    /// Records the running configuration version, reported in every answer. A cached answer
    /// of an earlier version is stale from then on.
    pub fn set_config_version(&self, version: u64) {
        // An answer evaluated under the previous config describes resources a reload may have
        // replaced: it is stale from now on, and the next check evaluates again.
        self.inner.generation.fetch_add(1, Ordering::AcqRel);
        self.inner
            .update_flags(|flags| flags.config_version = version);
    }

    /// The current answer: the cached snapshot while it is younger than the TTL (or kept fresh
    /// by the background task), otherwise a new evaluation shared by every concurrent caller.
    pub async fn check(&self) -> Arc<AggregatedHealth> {
        if let Some(health) = self.inner.cached(Instant::now()) {
            return health;
        }
        self.inner.refresh(Refresh::IfStale).await
    }

    /// A new evaluation, bypassing the cache. Callers that arrive while one runs share the
    /// next one.
    pub async fn force_refresh(&self) -> Arc<AggregatedHealth> {
        self.inner.refresh(Refresh::Force).await
    }

    /// The cached answer if it is still fresh, without evaluating.
    pub fn cached(&self) -> Option<Arc<AggregatedHealth>> {
        self.inner.cached(Instant::now())
    }

    /// The most recent answer, however old.
    pub fn latest(&self) -> Option<Arc<AggregatedHealth>> {
        self.inner
            .cache
            .load()
            .as_ref()
            .map(|c| Arc::clone(&c.health))
    }

    /// How many evaluations have started.
    pub fn evaluations(&self) -> u64 {
        self.inner.started.load(Ordering::Acquire)
    }

    /// Starts the background tasks on `tracker`: the runtime ticker (when the runtime check is
    /// on) and, when `background_refresh` is set, a refresh every interval so probes only read
    /// the snapshot. Both stop when `cancel` fires. A second call while they run does nothing.
    pub fn start_background(self: &Arc<Self>, cancel: CancellationToken, tracker: &TaskTracker) {
        let token = {
            let mut running = lock(&self.inner.background);
            if running.as_ref().is_some_and(|t| !t.is_cancelled()) {
                tracing::debug!("health background tasks already running");
                return;
            }
            let token = cancel.child_token();
            *running = Some(token.clone());
            token
        };
        if let Some(monitor) = &self.inner.runtime {
            tracker.spawn(Arc::clone(monitor).run_ticker(token.clone()));
        }
        if let Some(interval) = self.inner.options.background_refresh {
            tracker.spawn(refresh_loop(Arc::downgrade(&self.inner), interval, token));
        }
    }
}

async fn refresh_loop(inner: Weak<Inner>, interval: Duration, cancel: CancellationToken) {
    let mut ticker = tokio::time::interval(interval.max(Duration::from_millis(1)));
    ticker.set_missed_tick_behavior(MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            biased;
            () = cancel.cancelled() => break,
            _ = ticker.tick() => {}
        }
        let Some(inner) = inner.upgrade() else { break };
        tokio::select! {
            biased;
            () = cancel.cancelled() => break,
            _ = inner.refresh(Refresh::Background(interval)) => {}
        }
    }
    tracing::debug!("health background refresh stopped");
}

impl Inner {
    fn cached(&self, now: Instant) -> Option<Arc<AggregatedHealth>> {
        let cached = self.cache.load();
        let cached = cached.as_ref()?;
        (now < cached.expires_at && cached.generation == self.generation.load(Ordering::Acquire))
            .then(|| Arc::clone(&cached.health))
    }

    async fn refresh(&self, mode: Refresh) -> Arc<AggregatedHealth> {
        let seen = match mode {
            Refresh::IfStale => self.cache.load().as_ref().map_or(0, |c| c.seq),
            Refresh::Force | Refresh::Background(_) => self.started.load(Ordering::Acquire),
        };
        let _gate = self.gate.lock().await;
        if let Some(cached) = self.cache.load_full() {
            let current = cached.generation == self.generation.load(Ordering::Acquire);
            let newer = cached.seq > seen;
            let fresh = matches!(mode, Refresh::IfStale) && Instant::now() < cached.expires_at;
            if current && (newer || fresh) {
                return Arc::clone(&cached.health);
            }
        }
        let ttl = match mode {
            Refresh::Background(interval) => interval.saturating_add(self.options.cache_ttl),
            Refresh::IfStale | Refresh::Force => self.options.cache_ttl,
        };
        let seq = self.started.fetch_add(1, Ordering::AcqRel) + 1;
        self.evaluate(seq, ttl).await
    }

    async fn evaluate(&self, seq: u64, ttl: Duration) -> Arc<AggregatedHealth> {
        let generation = self.generation.load(Ordering::Acquire);
        let registrations = self.registrations.load_full();
        let start = Instant::now();
        let start_utc = Utc::now();
        let cancel = Arc::new(CancellationToken::new());
        let _cancel_when_done = CancelOnDrop(Arc::clone(&cancel));

        let mut outcomes: Vec<Option<(Outcome, Instant)>> = Vec::with_capacity(registrations.len());
        outcomes.resize_with(registrations.len(), || None);
        {
            let mut pending: FuturesUnordered<_> = registrations
                .iter()
                .enumerate()
                .map(|(index, registration)| run_check(index, registration, start, &cancel))
                .collect();
            while let Some((index, outcome, at)) = pending.next().await {
                if let Some(slot) = outcomes.get_mut(index) {
                    *slot = Some((outcome, at));
                }
            }
        }
        let finished = Instant::now();
        let mut clock = WallClock::new(start, start_utc);
        let mut utc = |at: Instant| clock.at(at);
        let runtime = self
            .runtime
            .as_ref()
            .map(|monitor| monitor.report(finished, utc(finished)));

        let mut state = lock(&self.state);
        let previous = state.last.clone();
        let mut reports = Vec::with_capacity(registrations.len() + state.synthetic.len() + 1);
        let mut keys_before: Option<HashMap<&str, Vec<&HealthReport>>> = None;
        for (registration, outcome) in registrations.iter().zip(outcomes) {
            let Some((outcome, at)) = outcome else {
                continue;
            };
            let stamp = Stamp {
                registration,
                checked_at: utc(at),
                duration: at.saturating_duration_since(start),
            };
            match outcome {
                Outcome::Reports(list) if list.is_empty() => {
                    let name = &*registration.name;
                    reports.push(stamp.apply(HealthReport::healthy(name, name)));
                }
                Outcome::Reports(list) => reports.extend(list.into_iter().map(|r| stamp.apply(r))),
                Outcome::Failed { status, message } => {
                    // Report the failure on the components the provider reported last time, so
                    // they keep their names (and their status history) while it fails.
                    let keys =
                        keys_before.get_or_insert_with(|| reports_by_provider(previous.as_deref()));
                    match keys.get(&*registration.name) {
                        Some(before) => reports.extend(before.iter().map(|b| {
                            let report =
                                HealthReport::new(b.module.as_str(), b.component.as_str(), status)
                                    .with_message(message.as_str())
                                    .with_optional(b.optional);
                            stamp.apply(report)
                        })),
                        None => {
                            let name = &*registration.name;
                            reports.push(stamp.apply(
                                HealthReport::new(name, name, status).with_message(message),
                            ));
                        }
                    }
                }
            }
        }
        drop(keys_before);
        reports.extend(runtime);
        reports.extend(state.synthetic.values().cloned());
        let (health, changes) = fold(
            reports,
            previous.as_deref(),
            &state.flags,
            utc(finished),
            finished.saturating_duration_since(start),
            seq,
        );
        crate::metrics::record_health(&health);
        let health = Arc::new(health);
        state.last = Some(Arc::clone(&health));
        self.cache.store(Some(Arc::new(Cached {
            health: Arc::clone(&health),
            expires_at: crate::util::deadline(finished, ttl),
            seq,
            generation,
        })));
        self.publish(&health, &changes, true);
        drop(state);
        health
    }

    /// Refolds the current answer after a flag, component or registration change, without
    /// running providers; keeps the snapshot's freshness.
    fn recompose(&self, state: &mut FoldState, without_provider: Option<&str>) {
        let Some(previous) = state.last.clone() else {
            return;
        };
        let mut reports: Vec<HealthReport> = previous
            .reports
            .iter()
            .filter(|r| !r.is_synthetic())
            .filter(|r| without_provider.is_none_or(|name| r.provider_name() != Some(name)))
            .cloned()
            .collect();
        reports.extend(state.synthetic.values().cloned());
        let (health, changes) = fold(
            reports,
            Some(&previous),
            &state.flags,
            Utc::now(),
            previous.duration,
            previous.evaluation,
        );
        let health = Arc::new(health);
        state.last = Some(Arc::clone(&health));
        if let Some(cached) = self.cache.load_full() {
            self.cache.store(Some(Arc::new(Cached {
                health: Arc::clone(&health),
                expires_at: cached.expires_at,
                seq: cached.seq,
                generation: cached.generation,
            })));
        }
        self.publish(&health, &changes, false);
    }

    fn update_flags(&self, change: impl FnOnce(&mut Flags)) {
        let mut state = lock(&self.state);
        let before = state.flags;
        change(&mut state.flags);
        if state.flags != before {
            self.recompose(&mut state, None);
        }
    }

    fn publish(&self, health: &AggregatedHealth, changes: &[Change], evaluated: bool) {
        if evaluated && self.events.has_observer_for(HEALTH_EVALUATED) {
            self.events.emit(
                HEALTH_EVALUATED,
                HEALTH_SOURCE,
                json!({
                    "health": health.health,
                    "readiness": health.readiness,
                    "liveness": health.liveness,
                    "report_count": health.reports.len(),
                    "duration_ms": duration_ms::millis(health.duration),
                }),
            );
        }
        if changes.is_empty() {
            return;
        }
        for change in changes {
            match (&change.probe, &change.component) {
                (Some(probe), _) => tracing::info!(
                    probe = probe.as_str(),
                    previous = change.previous.as_str(),
                    current = change.current.as_str(),
                    "health status changed"
                ),
                (None, component) => tracing::debug!(
                    component = component.as_deref().unwrap_or_default(),
                    previous = change.previous.as_str(),
                    current = change.current.as_str(),
                    "health component status changed"
                ),
            }
        }
        if !self.events.has_observer_for(HEALTH_STATUS_CHANGED) {
            return;
        }
        for change in changes {
            let data = match (&change.probe, &change.component) {
                (Some(probe), _) => json!({
                    "probe": probe.as_str(),
                    "previous_status": change.previous,
                    "current_status": change.current,
                }),
                (None, component) => json!({
                    "probe": "component",
                    "component": component,
                    "previous_status": change.previous,
                    "current_status": change.current,
                }),
            };
            self.events.emit(HEALTH_STATUS_CHANGED, HEALTH_SOURCE, data);
        }
    }
}

/// The aggregator-owned fields of a provider's reports.
struct Stamp<'a> {
    registration: &'a Registration,
    checked_at: DateTime<Utc>,
    duration: Duration,
}

impl Stamp<'_> {
    fn apply(&self, mut report: HealthReport) -> HealthReport {
        report.optional |= self.registration.options.optional;
        report.probes = self.registration.options.probes;
        report.checked_at = self.checked_at;
        report.observed_since = self.checked_at;
        report.duration = self.duration;
        report.origin = Origin::Provider(Arc::clone(&self.registration.name));
        report
    }
}

/// Converts monotonic instants of one evaluation into wall-clock times, at millisecond
/// precision (what every renderer shows). Providers that finish within the same millisecond
/// share one conversion: the calendar arithmetic costs more than the rest of a ready check.
struct WallClock {
    start: Instant,
    start_utc: DateTime<Utc>,
    last: Option<(u128, DateTime<Utc>)>,
}

impl WallClock {
    fn new(start: Instant, start_utc: DateTime<Utc>) -> Self {
        Self {
            start,
            start_utc,
            last: None,
        }
    }

    fn at(&mut self, at: Instant) -> DateTime<Utc> {
        let millis = at.saturating_duration_since(self.start).as_millis();
        if let Some((last_millis, last)) = self.last
            && last_millis == millis
        {
            return last;
        }
        let utc = i64::try_from(millis)
            .ok()
            .and_then(TimeDelta::try_milliseconds)
            .and_then(|delta| self.start_utc.checked_add_signed(delta))
            .unwrap_or(self.start_utc);
        self.last = Some((millis, utc));
        utc
    }
}

fn reports_by_provider(previous: Option<&AggregatedHealth>) -> HashMap<&str, Vec<&HealthReport>> {
    let mut by_provider: HashMap<&str, Vec<&HealthReport>> = HashMap::new();
    for report in previous.map(|p| p.reports.as_slice()).unwrap_or_default() {
        if let Some(name) = report.provider_name() {
            by_provider.entry(name).or_default().push(report);
        }
    }
    by_provider
}

/// One provider's check, under its deadline, with panics captured.
fn run_check<'a>(
    index: usize,
    registration: &'a Registration,
    start: Instant,
    cancel: &Arc<CancellationToken>,
) -> impl Future<Output = (usize, Outcome, Instant)> + Send + 'a {
    let ctx = HealthContext::starting_at(
        Arc::clone(&registration.name),
        registration.options.timeout,
        start,
        Arc::clone(cancel),
    );
    async move {
        let outcome = match registration.options.isolation {
            Isolation::Inline => inline(registration, &ctx).await,
            // Boxed so the rare isolated paths do not enlarge every provider's future (each is
            // moved into the FuturesUnordered).
            Isolation::Spawn => Box::pin(spawned(registration, ctx)).await,
            Isolation::Blocking => Box::pin(on_blocking_pool(registration, ctx)).await,
        };
        (index, outcome, Instant::now())
    }
}

async fn inline(registration: &Registration, ctx: &HealthContext) -> Outcome {
    // The call itself sits inside the guarded future, so even a hand-written (non
    // async-trait) implementation that panics before returning its future is caught.
    let check =
        AssertUnwindSafe(async { registration.provider.health_check(ctx).await }).catch_unwind();
    match tokio::time::timeout_at(ctx.deadline(), check).await {
        Err(_) => timed_out(registration),
        Ok(Err(payload)) => panicked(registration, &*payload),
        Ok(Ok(result)) => answered(registration, result),
    }
}

async fn spawned(registration: &Registration, ctx: HealthContext) -> Outcome {
    let provider = Arc::clone(&registration.provider);
    let deadline = ctx.deadline();
    // Owned by this evaluation: aborted when it times out or the evaluation is dropped.
    let task = AbortOnDropHandle::new(tokio::spawn(
        async move { provider.health_check(&ctx).await },
    ));
    match tokio::time::timeout_at(deadline, task).await {
        Err(_) => timed_out(registration),
        Ok(Err(error)) if error.is_panic() => panicked(registration, &*error.into_panic()),
        Ok(Err(_)) => failure(HealthStatus::Unhealthy, "check task was cancelled"),
        Ok(Ok(result)) => answered(registration, result),
    }
}

async fn on_blocking_pool(registration: &Registration, ctx: HealthContext) -> Outcome {
    let Ok(handle) = Handle::try_current() else {
        return failure(
            HealthStatus::Unhealthy,
            "no tokio runtime to run the check on",
        );
    };
    if registration.in_flight.swap(true, Ordering::AcqRel) {
        return failure(HealthStatus::Unhealthy, "previous check is still running");
    }
    let in_flight = InFlight(Arc::clone(&registration.in_flight));
    let provider = Arc::clone(&registration.provider);
    let deadline = ctx.deadline();
    let task = tokio::task::spawn_blocking(move || {
        let _in_flight = in_flight;
        handle
            .block_on(AssertUnwindSafe(async { provider.health_check(&ctx).await }).catch_unwind())
    });
    match tokio::time::timeout_at(deadline, task).await {
        Err(_) => timed_out(registration),
        Ok(Err(error)) if error.is_panic() => panicked(registration, &*error.into_panic()),
        Ok(Err(_)) => failure(HealthStatus::Unhealthy, "check task was cancelled"),
        Ok(Ok(Err(payload))) => panicked(registration, &*payload),
        Ok(Ok(Ok(result))) => answered(registration, result),
    }
}

/// Cancels the evaluation's token when the evaluation ends or is dropped.
struct CancelOnDrop(Arc<CancellationToken>);

impl Drop for CancelOnDrop {
    fn drop(&mut self) {
        self.0.cancel();
    }
}

/// Clears a registration's in-flight flag when the blocking check ends, however it ends.
struct InFlight(Arc<AtomicBool>);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.store(false, Ordering::Release);
    }
}

fn failure(status: HealthStatus, message: impl Into<String>) -> Outcome {
    Outcome::Failed {
        status,
        message: message.into(),
    }
}

fn answered(
    registration: &Registration,
    result: Result<Vec<HealthReport>, HealthError>,
) -> Outcome {
    match result {
        Ok(reports) => Outcome::Reports(reports),
        Err(error) => {
            tracing::debug!(provider = &*registration.name, %error, "health check failed");
            failure(error.status(), error.to_string())
        }
    }
}

fn timed_out(registration: &Registration) -> Outcome {
    let timeout = registration.options.timeout;
    tracing::debug!(
        provider = &*registration.name,
        timeout_ms = duration_ms::millis(timeout),
        "health check timed out"
    );
    failure(
        HealthStatus::Unhealthy,
        format!("timed out after {timeout:?}"),
    )
}

fn panicked(registration: &Registration, payload: &(dyn Any + Send)) -> Outcome {
    let message = panic_message(payload);
    tracing::warn!(provider = &*registration.name, panic = %message, "health check panicked");
    failure(HealthStatus::Unhealthy, format!("panicked: {message}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_cache_ttl_of_duration_max_caches_the_answer_without_a_panic() {
        let options = HealthOptions {
            cache_ttl: Duration::MAX,
            ..HealthOptions::default()
        };
        let aggregator = HealthAggregator::new(options, EventBus::new());
        let first = aggregator.check().await;
        let second = aggregator.check().await;
        assert!(Arc::ptr_eq(&first, &second), "served from the cache");
    }
}
