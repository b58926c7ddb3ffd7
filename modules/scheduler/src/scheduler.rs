//! [`Scheduler`]: the service: job handlers by name, the timer, the worker pool and the run
//! of one occurrence (claim, timeout, panic catching, retries, record).

use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap, HashMap};
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock, PoisonError, RwLock};
use std::time::Duration;

use chrono::{DateTime, Utc};
use futures::FutureExt as _;
use modular_core::{BoxError, ModuleContext};
use serde::Serialize;
use serde_json::json;
use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::clock::{Clock, from_millis, millis};
use crate::config::{JobConfig, MisfirePolicy, RetryConfig, SchedulerConfig};
use crate::cron::CronSchedule;
use crate::error::SchedulerError;
use crate::metrics;
use crate::store::{Claim, Finished, Store};

/// The generation of a one-shot pushed beside a config job's cron: never stale.
const ONCE_BESIDE_CRON: u64 = u64::MAX;

/// What a job handler returns.
pub type JobResult = Result<(), BoxError>;

/// A boxed job future.
pub type JobFuture = Pin<Box<dyn Future<Output = JobResult> + Send + 'static>>;

/// A job's code: called once per attempt with the run's [`JobContext`].
///
/// Any `Fn(JobContext) -> impl Future<Output = JobResult>` is a handler.
pub trait JobHandler: Send + Sync + 'static {
    /// Starts one attempt.
    fn call(&self, ctx: JobContext) -> JobFuture;
}

impl<F, Fut> JobHandler for F
where
    F: Fn(JobContext) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = JobResult> + Send + 'static,
{
    fn call(&self, ctx: JobContext) -> JobFuture {
        Box::pin(self(ctx))
    }
}

/// Why a run happens.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Trigger {
    /// A cron occurrence.
    Cron,
    /// An interval tick.
    Interval,
    /// A one-shot (`run_at`, `run_after`).
    Once,
    /// A missed occurrence run under the job's misfire policy.
    Misfire,
    /// [`Scheduler::trigger`] or `POST /admin/scheduler/jobs/{name}/run`.
    Manual,
}

impl Trigger {
    /// The snake_case name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Cron => "cron",
            Self::Interval => "interval",
            Self::Once => "once",
            Self::Misfire => "misfire",
            Self::Manual => "manual",
        }
    }
}

/// What one attempt of a job sees.
#[derive(Clone, Debug)]
pub struct JobContext {
    /// The job's name.
    pub name: Arc<str>,
    /// When this occurrence was due.
    pub scheduled_at: DateTime<Utc>,
    /// 1 for the first attempt.
    pub attempt: u32,
    /// Why it runs.
    pub trigger: Trigger,
    /// Cancelled when the scheduler stops.
    pub cancellation: CancellationToken,
}

/// How a run ended.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// The handler returned `Ok`.
    Completed,
    /// The handler returned an error (the message).
    Failed(String),
    /// The handler panicked (the panic message).
    Panicked(String),
    /// The handler did not finish within the job's timeout; its future was dropped.
    TimedOut,
}

impl Outcome {
    /// The metric label and status name: `completed`, `failed`, `panicked`, `timed_out`.
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::Completed => "completed",
            Self::Failed(_) => "failed",
            Self::Panicked(_) => "panicked",
            Self::TimedOut => "timed_out",
        }
    }

    fn error(&self, timeout: Duration) -> Option<String> {
        match self {
            Self::Completed => None,
            Self::Failed(e) => Some(e.clone()),
            Self::Panicked(e) => Some(format!("panicked: {e}")),
            Self::TimedOut => Some(format!("timed out after {timeout:?}")),
        }
    }
}

/// A job's state as [`Scheduler::status`] reports it.
#[derive(Clone, Debug, PartialEq, Serialize, utoipa::ToSchema)]
pub struct JobStatus {
    /// The job's name.
    pub name: String,
    /// `cron`, `interval`, `once` or `manual` (registered, not scheduled).
    pub kind: &'static str,
    /// The cron expression, when there is one.
    pub cron: Option<String>,
    /// Whether config enables it.
    pub enabled: bool,
    /// Whether it is paused.
    pub paused: bool,
    /// The next occurrence planned.
    pub next_run: Option<DateTime<Utc>>,
    /// When the last run finished.
    pub last_run: Option<DateTime<Utc>>,
    /// How the last run ended.
    pub last_outcome: Option<String>,
    /// Failed runs in a row.
    pub consecutive_failures: u32,
    /// Runs executing or waiting for a worker.
    pub active: u32,
    /// Runs that ended, by outcome name.
    pub runs: BTreeMap<String, u64>,
    /// Occurrences reported missed.
    pub missed: u64,
    /// The per-run timeout in force (`{"secs", "nanos"}`).
    #[schema(value_type = Object)]
    pub timeout: Duration,
    /// Runs of this job at once.
    pub max_concurrent: u32,
    /// Attempts per run.
    pub max_attempts: u32,
    /// The misfire policy.
    pub misfire: MisfirePolicy,
    /// Lateness that counts as missed (`{"secs", "nanos"}`).
    #[schema(value_type = Object)]
    pub tolerance: Duration,
}

/// The settings a run starts with (a reload does not change a run already going).
#[derive(Clone, Debug)]
struct Settings {
    timeout: Duration,
    max_concurrent: u32,
    retry: RetryConfig,
    misfire: MisfirePolicy,
    misfire_cap: u32,
    tolerance: Duration,
    enabled: bool,
}

impl Settings {
    fn of(config: &JobConfig) -> Self {
        Self {
            timeout: config.timeout,
            max_concurrent: config.max_concurrent,
            retry: config.retry.clone(),
            misfire: config.misfire,
            misfire_cap: config.misfire_cap,
            tolerance: config.tolerance,
            enabled: config.enabled,
        }
    }

    fn code_default() -> Self {
        Self::of(&JobConfig::default())
    }
}

#[derive(Clone, Debug)]
enum Plan {
    Cron(Box<CronSchedule>),
    Interval(Duration),
    Once,
    Manual,
}

impl Plan {
    fn kind(&self) -> &'static str {
        match self {
            Self::Cron(_) => "cron",
            Self::Interval(_) => "interval",
            Self::Once => "once",
            Self::Manual => "manual",
        }
    }
}

#[derive(Debug)]
struct Job {
    plan: Plan,
    settings: Arc<Settings>,
    from_config: bool,
    paused: bool,
    /// Bumped whenever the plan changes: heap entries of an older generation are stale.
    generation: u64,
    next_run: Option<DateTime<Utc>>,
    active: u32,
    last_run: Option<DateTime<Utc>>,
    last_outcome: Option<Outcome>,
    consecutive_failures: u32,
    runs: BTreeMap<String, u64>,
    missed: u64,
    /// The latest occurrence handled; a restart reads it from the store.
    last_scheduled: Option<DateTime<Utc>>,
    /// Occurrences queued and not yet started (waiting for a worker).
    waiting: Vec<DateTime<Utc>>,
}

impl Job {
    fn new(plan: Plan, settings: Arc<Settings>, from_config: bool) -> Self {
        Self {
            plan,
            settings,
            from_config,
            paused: false,
            generation: 0,
            next_run: None,
            active: 0,
            last_run: None,
            last_outcome: None,
            consecutive_failures: 0,
            runs: BTreeMap::new(),
            missed: 0,
            last_scheduled: None,
            waiting: Vec::new(),
        }
    }
}

#[derive(Debug, PartialEq, Eq, PartialOrd, Ord)]
struct Due {
    at: DateTime<Utc>,
    seq: u64,
    job: Arc<str>,
    generation: u64,
}

/// Shared store settings.
#[derive(Debug)]
struct Persistence {
    store: Store,
    instance: String,
    lease_ms: AtomicU64,
    history: AtomicU32,
    healthy: AtomicBool,
    last_error: Mutex<Option<String>>,
}

struct Inner {
    clock: Clock,
    handlers: RwLock<HashMap<String, Arc<dyn JobHandler>>>,
    jobs: Mutex<BTreeMap<Arc<str>, Job>>,
    heap: Mutex<BinaryHeap<Reverse<Due>>>,
    wake: Notify,
    seq: AtomicU64,
    pool: Arc<Semaphore>,
    workers: AtomicUsize,
    queued: AtomicUsize,
    queue_capacity: AtomicUsize,
    failure_threshold: AtomicU32,
    /// Times a due run found the queue full, since start.
    rejected_full: AtomicU64,
    saturated: AtomicBool,
    context: OnceLock<ModuleContext>,
    persistence: OnceLock<Persistence>,
    cancel: CancellationToken,
    tasks: TaskTracker,
    started: AtomicBool,
}

impl std::fmt::Debug for Inner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Scheduler")
            .field("workers", &self.workers.load(Ordering::Relaxed))
            .field("queued", &self.queued.load(Ordering::Relaxed))
            .field("jobs", &lock(&self.jobs).len())
            .finish_non_exhaustive()
    }
}

/// The scheduler service: register handlers by name, schedule them from config (cron) or from
/// code (one-shot, interval), trigger, pause and resume them. Cheap to clone.
///
/// ```
/// # async fn demo() -> Result<(), modular_scheduler::SchedulerError> {
/// use std::time::Duration;
/// use modular_scheduler::{JobContext, Scheduler};
///
/// let scheduler = Scheduler::new();
/// scheduler.job("cleanup", |ctx: JobContext| async move {
///     tracing::info!(job = %ctx.name, attempt = ctx.attempt, "cleaning up");
///     Ok(())
/// });
/// scheduler.run_after("cleanup", Duration::from_secs(10))?;
/// # Ok(()) }
/// ```
#[derive(Clone, Debug)]
pub struct Scheduler {
    inner: Arc<Inner>,
}

impl Default for Scheduler {
    fn default() -> Self {
        Self::new()
    }
}

impl Scheduler {
    /// A scheduler on the system clock with the default settings (4 workers), not yet
    /// started: [`Scheduler::start`] (the module calls it) starts the timer.
    pub fn new() -> Self {
        Self::with_clock(Clock::System)
    }

    /// A scheduler reading time from `clock` (tests: [`Clock::starting_at`]).
    pub fn with_clock(clock: Clock) -> Self {
        let defaults = SchedulerConfig::default();
        Self {
            inner: Arc::new(Inner {
                clock,
                handlers: RwLock::new(HashMap::new()),
                jobs: Mutex::new(BTreeMap::new()),
                heap: Mutex::new(BinaryHeap::new()),
                wake: Notify::new(),
                seq: AtomicU64::new(0),
                pool: Arc::new(Semaphore::new(defaults.workers)),
                workers: AtomicUsize::new(defaults.workers),
                queued: AtomicUsize::new(0),
                queue_capacity: AtomicUsize::new(defaults.queue_capacity),
                failure_threshold: AtomicU32::new(defaults.failure_threshold),
                rejected_full: AtomicU64::new(0),
                saturated: AtomicBool::new(false),
                context: OnceLock::new(),
                persistence: OnceLock::new(),
                cancel: CancellationToken::new(),
                tasks: TaskTracker::new(),
                started: AtomicBool::new(false),
            }),
        }
    }

    /// The clock.
    pub fn clock(&self) -> Clock {
        self.inner.clock
    }

    /// Registers (or replaces) the handler of job `name`. A config job of that name, and
    /// [`run_at`](Self::run_at), [`every`](Self::every) and [`trigger`](Self::trigger), run it.
    pub fn job(&self, name: impl Into<String>, handler: impl JobHandler) -> &Self {
        let name = name.into();
        self.inner
            .handlers
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(name.clone(), Arc::new(handler));
        let mut jobs = lock(&self.inner.jobs);
        if !jobs.contains_key(name.as_str()) {
            jobs.insert(
                Arc::from(name.as_str()),
                Job::new(Plan::Manual, Arc::new(Settings::code_default()), false),
            );
        }
        self
    }

    /// Whether a handler is registered under `name`.
    pub fn has_handler(&self, name: &str) -> bool {
        self.handler(name).is_some()
    }

    /// The registered handler names, sorted.
    pub fn handler_names(&self) -> Vec<String> {
        let mut names: Vec<String> = self
            .inner
            .handlers
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .keys()
            .cloned()
            .collect();
        names.sort();
        names
    }

    fn handler(&self, name: &str) -> Option<Arc<dyn JobHandler>> {
        self.inner
            .handlers
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(name)
            .cloned()
    }

    fn require(&self, name: &str) -> Result<(), SchedulerError> {
        if self.has_handler(name) {
            Ok(())
        } else {
            Err(SchedulerError::UnknownJob {
                name: name.to_owned(),
            })
        }
    }

    /// Runs job `name` once at `at` (now, when `at` has passed). Replaces the job's code
    /// schedule (not a config cron: a config job keeps its cron).
    pub fn run_at(&self, name: &str, at: DateTime<Utc>) -> Result<(), SchedulerError> {
        self.require(name)?;
        let mut jobs = lock(&self.inner.jobs);
        let job = jobs
            .entry(Arc::from(name))
            .or_insert_with(|| Job::new(Plan::Once, Arc::new(Settings::code_default()), false));
        if job.from_config {
            // A one-shot beside the cron: pushed without changing the plan.
            drop(jobs);
            self.push(name, at, ONCE_BESIDE_CRON);
            return Ok(());
        }
        job.plan = Plan::Once;
        job.generation += 1;
        job.next_run = Some(at);
        let generation = job.generation;
        drop(jobs);
        self.push(name, at, generation);
        Ok(())
    }

    /// Runs job `name` once after `delay`.
    pub fn run_after(&self, name: &str, delay: Duration) -> Result<(), SchedulerError> {
        let at = self.inner.clock.now()
            + chrono::Duration::from_std(delay).unwrap_or(chrono::Duration::MAX);
        self.run_at(name, at)
    }

    /// Runs job `name` every `period`, the first time one period from now.
    pub fn every(&self, name: &str, period: Duration) -> Result<(), SchedulerError> {
        self.require(name)?;
        if period.is_zero() {
            return Err(SchedulerError::InvalidSchedule {
                name: name.to_owned(),
                message: "the interval must be > 0s".to_owned(),
            });
        }
        let at = self.inner.clock.now()
            + chrono::Duration::from_std(period).unwrap_or(chrono::Duration::MAX);
        let mut jobs = lock(&self.inner.jobs);
        let job = jobs
            .entry(Arc::from(name))
            .or_insert_with(|| Job::new(Plan::Manual, Arc::new(Settings::code_default()), false));
        if job.from_config {
            return Err(SchedulerError::InvalidSchedule {
                name: name.to_owned(),
                message: "the job has a cron schedule in config".to_owned(),
            });
        }
        job.plan = Plan::Interval(period);
        job.generation += 1;
        job.next_run = Some(at);
        let generation = job.generation;
        drop(jobs);
        self.push(name, at, generation);
        Ok(())
    }

    /// Runs job `name` now (outside its schedule; also when paused or disabled).
    pub fn trigger(&self, name: &str) -> Result<(), SchedulerError> {
        let handler = self
            .handler(name)
            .ok_or_else(|| SchedulerError::UnknownJob {
                name: name.to_owned(),
            })?;
        if self.inner.cancel.is_cancelled() {
            return Err(SchedulerError::Stopped);
        }
        let now = self.inner.clock.now();
        let mut jobs = lock(&self.inner.jobs);
        let Some(job) = jobs.get_mut(name) else {
            return Err(SchedulerError::UnknownJob {
                name: name.to_owned(),
            });
        };
        let settings = Arc::clone(&job.settings);
        self.dispatch(name, job, now, Trigger::Manual, settings, handler);
        Ok(())
    }

    /// Pauses job `name`: its occurrences pass without running until [`resume`](Self::resume).
    pub fn pause(&self, name: &str) -> Result<(), SchedulerError> {
        self.set_paused(name, true)
    }

    /// Resumes a paused job from its next occurrence.
    pub fn resume(&self, name: &str) -> Result<(), SchedulerError> {
        self.set_paused(name, false)
    }

    fn set_paused(&self, name: &str, paused: bool) -> Result<(), SchedulerError> {
        let mut jobs = lock(&self.inner.jobs);
        let job = jobs
            .get_mut(name)
            .ok_or_else(|| SchedulerError::UnknownJob {
                name: name.to_owned(),
            })?;
        job.paused = paused;
        Ok(())
    }

    /// The state of job `name`.
    pub fn status(&self, name: &str) -> Option<JobStatus> {
        let jobs = lock(&self.inner.jobs);
        jobs.get_key_value(name).map(|(n, j)| status_of(n, j))
    }

    /// Every job's state, by name.
    pub fn statuses(&self) -> Vec<JobStatus> {
        let jobs = lock(&self.inner.jobs);
        jobs.iter().map(|(n, j)| status_of(n, j)).collect()
    }

    /// The size of the worker pool.
    pub fn workers(&self) -> usize {
        self.inner.workers.load(Ordering::Relaxed)
    }

    /// Runs that may wait for a worker.
    pub fn queue_capacity(&self) -> usize {
        self.inner.queue_capacity.load(Ordering::Relaxed)
    }

    /// Consecutive failures that degrade health.
    pub fn failure_threshold(&self) -> u32 {
        self.inner.failure_threshold.load(Ordering::Relaxed)
    }

    /// The lease and the history bound in force (with persistence).
    pub fn persistence_settings(&self) -> Option<(Duration, u32)> {
        self.inner.persistence.get().map(|p| {
            (
                Duration::from_millis(p.lease_ms.load(Ordering::Relaxed)),
                p.history.load(Ordering::Relaxed),
            )
        })
    }

    /// Runs waiting for a worker.
    pub fn queue_depth(&self) -> usize {
        self.inner.queued.load(Ordering::Relaxed)
    }

    /// Runs executing now (workers in use).
    pub fn running(&self) -> usize {
        self.workers()
            .saturating_sub(self.inner.pool.available_permits())
    }

    /// Resizes the worker pool. Growing takes effect at once; shrinking as running jobs
    /// finish (no run is interrupted).
    pub fn set_workers(&self, workers: usize) {
        let workers = workers.max(1);
        let before = self.inner.workers.swap(workers, Ordering::SeqCst);
        if workers > before {
            self.inner.pool.add_permits(workers - before);
        } else if workers < before {
            let pool = Arc::clone(&self.inner.pool);
            let take = u32::try_from(before - workers).unwrap_or(u32::MAX);
            self.inner.tasks.spawn(async move {
                if let Ok(permits) = pool.acquire_many(take).await {
                    permits.forget();
                }
            });
        }
    }

    /// Applies the section's pool and job settings: jobs added, removed and changed; each
    /// changed job's next occurrence recomputed from now. `config` is valid (validated).
    pub(crate) fn apply(&self, config: &SchedulerConfig) {
        self.set_workers(config.workers);
        self.inner
            .queue_capacity
            .store(config.queue_capacity, Ordering::Relaxed);
        self.inner
            .failure_threshold
            .store(config.failure_threshold, Ordering::Relaxed);
        if let Some(p) = self.inner.persistence.get() {
            p.lease_ms.store(
                u64::try_from(config.persistence.lease.as_millis()).unwrap_or(u64::MAX),
                Ordering::Relaxed,
            );
            p.history
                .store(config.persistence.history, Ordering::Relaxed);
        }
        let now = self.inner.clock.now();
        let mut pushes = Vec::new();
        {
            let mut jobs = lock(&self.inner.jobs);
            // Config jobs that are gone fall back to code-only jobs (trigger still works).
            for (name, job) in jobs.iter_mut() {
                if job.from_config && !config.jobs.contains_key(&**name) {
                    job.from_config = false;
                    job.plan = Plan::Manual;
                    job.generation += 1;
                    job.next_run = None;
                }
            }
            for (name, job_config) in &config.jobs {
                let Ok(schedule) = CronSchedule::new(&job_config.cron, &job_config.timezone) else {
                    continue;
                };
                let settings = Arc::new(Settings::of(job_config));
                let job = jobs
                    .entry(Arc::from(name.as_str()))
                    .or_insert_with(|| Job::new(Plan::Manual, Arc::clone(&settings), true));
                let same_plan = matches!(&job.plan, Plan::Cron(s) if s.expression() == job_config.cron
                    && s.zone_name() == job_config.timezone)
                    && job.from_config;
                let was_enabled = job.settings.enabled;
                job.settings = settings;
                job.from_config = true;
                if same_plan && was_enabled == job_config.enabled && job.next_run.is_some() {
                    continue;
                }
                job.plan = Plan::Cron(Box::new(schedule.clone()));
                job.generation += 1;
                // The next occurrence after now, or, on a first start with persisted state,
                // catch-up is handled by `start`.
                let from = job.last_scheduled.map_or(now, |l| l.max(now));
                job.next_run = schedule.next_after(from);
                if let Some(next) = job.next_run {
                    pushes.push((name.clone(), next, job.generation));
                }
            }
        }
        for (name, at, generation) in pushes {
            self.push(&name, at, generation);
        }
    }

    fn push(&self, name: &str, at: DateTime<Utc>, generation: u64) {
        let seq = self.inner.seq.fetch_add(1, Ordering::Relaxed);
        lock(&self.inner.heap).push(Reverse(Due {
            at,
            seq,
            job: Arc::from(name),
            generation,
        }));
        self.inner.wake.notify_one();
    }

    /// Connects the store (`persistence.connection`), migrates it and reads persisted state:
    /// each config job's last handled occurrence, so that `start` runs what was missed under
    /// the job's misfire policy and nothing that ran before.
    pub(crate) async fn attach_store(
        &self,
        store: Store,
        config: &SchedulerConfig,
    ) -> Result<(), SchedulerError> {
        store.migrate().await?;
        let persisted = store.load().await?;
        let instance = config
            .persistence
            .instance
            .clone()
            .unwrap_or_else(|| uuid::Uuid::now_v7().to_string());
        let _ = self.inner.persistence.set(Persistence {
            store,
            instance,
            lease_ms: AtomicU64::new(
                u64::try_from(config.persistence.lease.as_millis()).unwrap_or(u64::MAX),
            ),
            history: AtomicU32::new(config.persistence.history),
            healthy: AtomicBool::new(true),
            last_error: Mutex::new(None),
        });
        let mut jobs = lock(&self.inner.jobs);
        for (name, state) in persisted {
            let job = jobs.entry(Arc::from(name.as_str())).or_insert_with(|| {
                Job::new(Plan::Manual, Arc::new(Settings::code_default()), false)
            });
            job.last_scheduled = state.last_scheduled_at.map(from_millis);
            job.last_run = state.last_run_at.map(from_millis);
            job.consecutive_failures = u32::try_from(state.consecutive_failures).unwrap_or(0);
            job.last_outcome = state.last_status.as_deref().map(|s| match s {
                "completed" => Outcome::Completed,
                "timed_out" => Outcome::TimedOut,
                other => Outcome::Failed(other.to_owned()),
            });
        }
        Ok(())
    }

    /// Whether the persistence database answered its last use.
    pub(crate) fn store_state(&self) -> Option<(bool, Option<String>, &'static str)> {
        self.inner.persistence.get().map(|p| {
            (
                p.healthy.load(Ordering::Relaxed),
                lock(&p.last_error).clone(),
                p.store.driver(),
            )
        })
    }

    pub(crate) async fn ping_store(&self) -> Option<Result<(), String>> {
        let p = self.inner.persistence.get()?;
        let result = p.store.ping().await.map_err(|e| e.to_string());
        self.store_result(&result);
        Some(result)
    }

    fn store_result<T>(&self, result: &Result<T, String>) {
        if let Some(p) = self.inner.persistence.get() {
            p.healthy.store(result.is_ok(), Ordering::Relaxed);
            if let Err(e) = result {
                *lock(&p.last_error) = Some(e.clone());
            }
        }
    }

    /// The persisted run history of `name`, newest first: (scheduled_at, instance, status,
    /// attempts). Empty without persistence.
    pub async fn history(
        &self,
        name: &str,
    ) -> Result<Vec<(DateTime<Utc>, String, String, i64)>, SchedulerError> {
        let Some(p) = self.inner.persistence.get() else {
            return Ok(Vec::new());
        };
        Ok(p.store
            .history(name)
            .await?
            .into_iter()
            .map(|(at, instance, status, attempts)| (from_millis(at), instance, status, attempts))
            .collect())
    }

    /// This instance's name in lease rows (with persistence).
    pub fn instance(&self) -> Option<&str> {
        self.inner.persistence.get().map(|p| p.instance.as_str())
    }

    /// Starts the timer (once): first the catch-up of occurrences missed while down (config
    /// cron jobs with a persisted last occurrence), then every due entry as it comes.
    pub fn start(&self, context: Option<ModuleContext>) {
        if self.inner.started.swap(true, Ordering::SeqCst) {
            return;
        }
        if let Some(context) = context {
            let _ = self.inner.context.set(context);
        }
        self.catch_up();
        let this = self.clone();
        self.inner.tasks.spawn(async move { this.timer().await });
    }

    /// Stops the timer and waits (up to `deadline`) for running jobs; runs still going then
    /// are cancelled through their [`JobContext::cancellation`] and dropped.
    pub async fn stop(&self, deadline: Duration) {
        // The timer, runs waiting for a worker and retry waits end at once; running attempts
        // see their cancellation token and get `deadline` to finish.
        self.inner.cancel.cancel();
        self.inner.tasks.close();
        let _ = tokio::time::timeout(deadline, self.inner.tasks.wait()).await;
    }

    fn catch_up(&self) {
        let now = self.inner.clock.now();
        let mut plans = Vec::new();
        {
            let mut jobs = lock(&self.inner.jobs);
            for (name, job) in jobs.iter_mut() {
                let (Plan::Cron(schedule), Some(last)) = (&job.plan, job.last_scheduled) else {
                    continue;
                };
                if !job.from_config || !job.settings.enabled {
                    continue;
                }
                let mut missed = Vec::new();
                let mut at = last;
                while let Some(next) = schedule.next_after(at) {
                    if next > now {
                        break;
                    }
                    missed.push(next);
                    at = next;
                    if missed.len() > 10_000 {
                        break;
                    }
                }
                job.generation += 1;
                job.next_run = schedule.next_after(at.max(now));
                plans.push((Arc::clone(name), missed, job.next_run, job.generation));
            }
        }
        for (name, missed, next, generation) in plans {
            if let Some(next) = next {
                self.push(&name, next, generation);
            }
            if !missed.is_empty() {
                self.misfire(&name, missed, now);
            }
        }
    }

    /// Applies the job's misfire policy to `missed` occurrences (oldest first).
    fn misfire(&self, name: &str, missed: Vec<DateTime<Utc>>, now: DateTime<Utc>) {
        let Some(handler) = self.handler(name) else {
            return;
        };
        let mut jobs = lock(&self.inner.jobs);
        let Some(job) = jobs.get_mut(name) else {
            return;
        };
        let settings = Arc::clone(&job.settings);
        let cap = usize::try_from(settings.misfire_cap).unwrap_or(usize::MAX);
        let (run, skip): (Vec<_>, Vec<_>) = match settings.misfire {
            MisfirePolicy::Skip => (Vec::new(), missed),
            MisfirePolicy::RunOnce => {
                let mut missed = missed;
                let last = missed.pop();
                (last.into_iter().collect(), missed)
            }
            MisfirePolicy::RunAll => {
                let mut missed = missed;
                let rest = missed.split_off(missed.len().min(cap));
                (missed, rest)
            }
        };
        for at in &skip {
            self.missed(name, job, *at, now, "misfire");
        }
        for at in run {
            self.dispatch(
                name,
                job,
                at,
                Trigger::Misfire,
                Arc::clone(&settings),
                Arc::clone(&handler),
            );
        }
        if let Some(last) = skip.last() {
            self.persist_scheduled(name, *last, job.next_run);
        }
    }

    fn missed(
        &self,
        name: &str,
        job: &mut Job,
        at: DateTime<Utc>,
        now: DateTime<Utc>,
        reason: &'static str,
    ) {
        job.missed += 1;
        metrics::missed(name, reason);
        let lateness = (now - at).num_milliseconds();
        tracing::warn!(module = "scheduler", job = name, scheduled_at = %at, reason, "job occurrence missed");
        self.emit(
            "job.missed",
            json!({ "job": name, "scheduled_at": at, "reason": reason, "lateness_ms": lateness }),
        );
    }

    fn persist_scheduled(&self, name: &str, at: DateTime<Utc>, next: Option<DateTime<Utc>>) {
        let Some(p) = self.inner.persistence.get() else {
            return;
        };
        let store = p.store.clone();
        let this = self.clone();
        let name = name.to_owned();
        self.inner.tasks.spawn(async move {
            let result = store
                .scheduled(&name, millis(at), next.map(millis))
                .await
                .map_err(|e| e.to_string());
            this.store_result(&result);
        });
    }

    fn emit(&self, noun_verb: &str, data: serde_json::Value) {
        if let Some(ctx) = self.inner.context.get() {
            ctx.emit(noun_verb, data);
        }
    }

    async fn timer(self) {
        let inner = &self.inner;
        loop {
            let notified = inner.wake.notified();
            let next = lock(&inner.heap).peek().map(|Reverse(d)| d.at);
            let sleep = async {
                match next {
                    Some(at) => tokio::time::sleep_until(inner.clock.instant_of(at)).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                () = inner.cancel.cancelled() => return,
                () = notified => continue,
                () = sleep => {}
            }
            let now = inner.clock.now();
            loop {
                let due = {
                    let mut heap = lock(&inner.heap);
                    match heap.peek() {
                        Some(Reverse(d)) if d.at <= now => heap.pop().map(|Reverse(d)| d),
                        _ => None,
                    }
                };
                let Some(due) = due else { break };
                self.fire(due, now);
            }
        }
    }

    /// One due heap entry: plan the next occurrence, then run this one (or report it
    /// missed).
    fn fire(&self, due: Due, now: DateTime<Utc>) {
        let name: &str = &due.job;
        let handler = self.handler(name);
        let mut jobs = lock(&self.inner.jobs);
        let Some(job) = jobs.get_mut(name) else {
            return;
        };
        let once_beside_cron = due.generation == ONCE_BESIDE_CRON;
        if due.generation != job.generation && !once_beside_cron {
            return;
        }
        let settings = Arc::clone(&job.settings);
        let (trigger, next) = if once_beside_cron {
            (Trigger::Once, None)
        } else {
            match &job.plan {
                Plan::Cron(schedule) => {
                    // Occurrences that passed while this one waited are missed (with a
                    // stalled timer or a long pause of the process).
                    let mut next = schedule.next_after(due.at);
                    let mut passed = Vec::new();
                    while let Some(n) = next {
                        if n > now {
                            break;
                        }
                        passed.push(n);
                        next = schedule.next_after(n);
                    }
                    job.next_run = next;
                    if !passed.is_empty() {
                        let mut all = vec![due.at];
                        all.extend(passed);
                        let generation = job.generation;
                        let paused = job.paused || !settings.enabled;
                        drop(jobs);
                        if let Some(next) = next {
                            self.push(name, next, generation);
                        }
                        if !paused {
                            self.catch_up_late(name, all, now, &settings);
                        }
                        return;
                    }
                    (Trigger::Cron, next)
                }
                Plan::Interval(period) => {
                    let step = chrono::Duration::from_std(*period).unwrap_or(chrono::Duration::MAX);
                    let mut next = due.at + step;
                    while next <= now {
                        next += step;
                    }
                    job.next_run = Some(next);
                    (Trigger::Interval, Some(next))
                }
                Plan::Once => {
                    job.next_run = None;
                    (Trigger::Once, None)
                }
                Plan::Manual => return,
            }
        };
        if let Some(next) = next {
            let seq = self.inner.seq.fetch_add(1, Ordering::Relaxed);
            lock(&self.inner.heap).push(Reverse(Due {
                at: next,
                seq,
                job: Arc::clone(&due.job),
                generation: job.generation,
            }));
        }
        let Some(handler) = handler else {
            return;
        };
        if job.paused || (!settings.enabled && trigger == Trigger::Cron) {
            return;
        }
        let lateness = now - due.at;
        if trigger == Trigger::Cron
            && lateness.to_std().unwrap_or(Duration::ZERO) > settings.tolerance
        {
            drop(jobs);
            self.misfire(name, vec![due.at], now);
            return;
        }
        self.dispatch(name, job, due.at, trigger, settings, handler);
    }

    /// Several occurrences came due at once (a stalled process): those more than the job's
    /// tolerance late go to its misfire policy, the others run as usual.
    fn catch_up_late(
        &self,
        name: &str,
        all: Vec<DateTime<Utc>>,
        now: DateTime<Utc>,
        settings: &Settings,
    ) {
        let (late, on_time): (Vec<_>, Vec<_>) = all
            .into_iter()
            .partition(|at| (now - *at).to_std().unwrap_or(Duration::ZERO) > settings.tolerance);
        if !late.is_empty() {
            self.misfire(name, late, now);
        }
        let Some(handler) = self.handler(name) else {
            return;
        };
        let mut jobs = lock(&self.inner.jobs);
        let Some(job) = jobs.get_mut(name) else {
            return;
        };
        for at in on_time {
            let settings = Arc::clone(&job.settings);
            self.dispatch(name, job, at, Trigger::Cron, settings, Arc::clone(&handler));
        }
    }

    /// Queues one run of `job` for `scheduled_at`, or reports it missed when the job is at
    /// `max_concurrent` or the queue is full.
    fn dispatch(
        &self,
        name: &str,
        job: &mut Job,
        scheduled_at: DateTime<Utc>,
        trigger: Trigger,
        settings: Arc<Settings>,
        handler: Arc<dyn JobHandler>,
    ) {
        let now = self.inner.clock.now();
        if job.active >= settings.max_concurrent && trigger != Trigger::Manual {
            self.missed(name, job, scheduled_at, now, "max_concurrent");
            return;
        }
        // A free worker is taken at once; only a run that must wait is queued.
        let permit = Arc::clone(&self.inner.pool).try_acquire_owned().ok();
        if permit.is_none() {
            let capacity = self.inner.queue_capacity.load(Ordering::Relaxed);
            if self.inner.queued.load(Ordering::Relaxed) >= capacity {
                self.inner.rejected_full.fetch_add(1, Ordering::Relaxed);
                self.inner.saturated.store(true, Ordering::Relaxed);
                self.missed(name, job, scheduled_at, now, "queue_full");
                return;
            }
            job.waiting.push(scheduled_at);
            let depth = self.inner.queued.fetch_add(1, Ordering::Relaxed) + 1;
            metrics::queue_depth(depth);
        }
        job.active += 1;
        if trigger != Trigger::Manual {
            job.last_scheduled = Some(
                job.last_scheduled
                    .map_or(scheduled_at, |l| l.max(scheduled_at)),
            );
        }
        let this = self.clone();
        let name: Arc<str> = Arc::from(name);
        let next = job.next_run;
        self.inner.tasks.spawn(async move {
            this.run(name, scheduled_at, trigger, settings, handler, next, permit)
                .await;
        });
    }

    /// One run: wait for a worker, claim (with persistence), attempts under the timeout with
    /// panics caught and retries, then record.
    #[allow(clippy::too_many_arguments)]
    async fn run(
        self,
        name: Arc<str>,
        scheduled_at: DateTime<Utc>,
        trigger: Trigger,
        settings: Arc<Settings>,
        handler: Arc<dyn JobHandler>,
        next: Option<DateTime<Utc>>,
        permit: Option<OwnedSemaphorePermit>,
    ) {
        let inner = &self.inner;
        let permit = match permit {
            Some(permit) => Some(permit),
            None => {
                let permit = tokio::select! {
                    permit = Arc::clone(&inner.pool).acquire_owned() => permit.ok(),
                    () = inner.cancel.cancelled() => None,
                };
                let depth = inner
                    .queued
                    .fetch_sub(1, Ordering::Relaxed)
                    .saturating_sub(1);
                metrics::queue_depth(depth);
                if depth == 0 {
                    inner.saturated.store(false, Ordering::Relaxed);
                }
                if let Some(job) = lock(&inner.jobs).get_mut(&*name)
                    && let Some(i) = job.waiting.iter().position(|w| *w == scheduled_at)
                {
                    job.waiting.swap_remove(i);
                }
                permit
            }
        };
        let Some(permit) = permit else {
            self.release(&name);
            return;
        };
        let permit = Some(permit);
        // The occurrence key: a manual run is its own occurrence (its start time).
        let key = millis(scheduled_at);
        if let Some(p) = inner.persistence.get() {
            let now = inner.clock.now();
            let lease = i64::try_from(p.lease_ms.load(Ordering::Relaxed)).unwrap_or(i64::MAX);
            let claim = p
                .store
                .claim(
                    &name,
                    key,
                    &p.instance,
                    millis(now),
                    millis(now).saturating_add(lease),
                )
                .await
                .map_err(|e| e.to_string());
            self.store_result(&claim);
            match claim {
                Ok(Claim::Won | Claim::TakenOver) => {
                    if trigger != Trigger::Manual {
                        self.persist_scheduled(&name, scheduled_at, next);
                    }
                }
                Ok(Claim::Held) => {
                    drop(permit);
                    self.release(&name);
                    // Another instance runs it; watch for its lease to lapse (a crashed
                    // holder) and take it over then.
                    let this = self.clone();
                    inner.tasks.spawn(async move {
                        this.watch_lease(name, scheduled_at, trigger, settings, handler)
                            .await;
                    });
                    return;
                }
                Ok(Claim::Done) => {
                    drop(permit);
                    self.release(&name);
                    return;
                }
                Err(error) => {
                    tracing::warn!(module = "scheduler", job = %name, %error, "could not claim the run; skipped");
                    drop(permit);
                    self.release(&name);
                    let now = inner.clock.now();
                    let mut jobs = lock(&inner.jobs);
                    if let Some(job) = jobs.get_mut(&*name) {
                        self.missed(&name, job, scheduled_at, now, "store_unavailable");
                    }
                    return;
                }
            }
        }
        let started = inner.clock.now();
        let lateness = (started - scheduled_at).to_std().unwrap_or(Duration::ZERO);
        metrics::lateness(&name, lateness);
        self.emit(
            "job.started",
            json!({ "job": &*name, "scheduled_at": scheduled_at, "trigger": trigger.as_str(),
                    "lateness_ms": u64::try_from(lateness.as_millis()).unwrap_or(u64::MAX) }),
        );
        let (outcome, attempt, permit) = self
            .attempts(
                &name,
                scheduled_at,
                trigger,
                &settings,
                &handler,
                key,
                permit,
            )
            .await;
        drop(permit);
        self.record(
            &name,
            scheduled_at,
            key,
            trigger,
            &settings,
            outcome,
            attempt,
        )
        .await;
    }

    /// Runs the attempts of one occurrence: each under the job's timeout and the lease, panics
    /// caught, retried with backoff up to `retry.max_attempts` (the worker is released while a
    /// retry waits). Returns the last outcome, the attempts made, and the worker still held.
    #[allow(clippy::too_many_arguments)]
    async fn attempts(
        &self,
        name: &Arc<str>,
        scheduled_at: DateTime<Utc>,
        trigger: Trigger,
        settings: &Settings,
        handler: &Arc<dyn JobHandler>,
        key: i64,
        permit: Option<OwnedSemaphorePermit>,
    ) -> (Outcome, u32, Option<OwnedSemaphorePermit>) {
        let name = Arc::clone(name);
        let inner = &self.inner;
        let mut permit = permit;
        let mut attempt = 1;
        let outcome = loop {
            let ctx = JobContext {
                name: Arc::clone(&name),
                scheduled_at,
                attempt,
                trigger,
                cancellation: inner.cancel.child_token(),
            };
            let begun = tokio::time::Instant::now();
            let work = tokio::time::timeout(
                settings.timeout,
                AssertUnwindSafe(handler.call(ctx)).catch_unwind(),
            );
            let result = self.with_lease(&name, key, work).await;
            let outcome = match result {
                Ok(Ok(Ok(()))) => Outcome::Completed,
                Ok(Ok(Err(error))) => Outcome::Failed(error.to_string()),
                Ok(Err(panic)) => Outcome::Panicked(modular_core::panic_message(&*panic)),
                Err(_) => Outcome::TimedOut,
            };
            metrics::duration(&name, begun.elapsed());
            if outcome == Outcome::Completed || attempt >= settings.retry.max_attempts {
                break outcome;
            }
            let wait = settings.retry.backoff(attempt);
            self.emit(
                "job.failed",
                json!({ "job": &*name, "scheduled_at": scheduled_at, "attempt": attempt,
                        "outcome": outcome.as_str(), "error": outcome.error(settings.timeout),
                        "retry_in_ms": u64::try_from(wait.as_millis()).unwrap_or(u64::MAX) }),
            );
            metrics::run(&name, "retried");
            // The worker is free while the run waits to retry.
            permit = None;
            let slept = tokio::select! {
                () = tokio::time::sleep(wait) => true,
                () = inner.cancel.cancelled() => false,
            };
            let again = if slept {
                tokio::select! {
                    permit = Arc::clone(&inner.pool).acquire_owned() => permit.ok(),
                    () = inner.cancel.cancelled() => None,
                }
            } else {
                None
            };
            let Some(again) = again else {
                break outcome;
            };
            permit = Some(again);
            attempt += 1;
        };
        (outcome, attempt, permit)
    }

    /// Runs `work` while renewing this instance's lease on the occurrence.
    async fn with_lease<F: Future>(&self, name: &str, key: i64, work: F) -> F::Output {
        let Some(p) = self.inner.persistence.get() else {
            return work.await;
        };
        tokio::pin!(work);
        loop {
            let lease = p.lease_ms.load(Ordering::Relaxed);
            let every = Duration::from_millis((lease / 3).max(10));
            tokio::select! {
                out = &mut work => return out,
                () = tokio::time::sleep(every) => {
                    let until = millis(self.inner.clock.now()).saturating_add(i64::try_from(lease).unwrap_or(i64::MAX));
                    let renewed = p.store.renew(name, key, &p.instance, until).await.map_err(|e| e.to_string());
                    self.store_result(&renewed);
                }
            }
        }
    }

    async fn watch_lease(
        self,
        name: Arc<str>,
        scheduled_at: DateTime<Utc>,
        trigger: Trigger,
        settings: Arc<Settings>,
        handler: Arc<dyn JobHandler>,
    ) {
        let Some(p) = self.inner.persistence.get() else {
            return;
        };
        loop {
            let lease = p.lease_ms.load(Ordering::Relaxed);
            let wait = Duration::from_millis((lease / 2).max(10));
            tokio::select! {
                () = tokio::time::sleep(wait) => {}
                () = self.inner.cancel.cancelled() => return,
            }
            let now = self.inner.clock.now();
            let claim = p
                .store
                .claim(
                    &name,
                    millis(scheduled_at),
                    &p.instance,
                    millis(now),
                    millis(now).saturating_add(i64::try_from(lease).unwrap_or(i64::MAX)),
                )
                .await
                .map_err(|e| e.to_string());
            self.store_result(&claim);
            match claim {
                Ok(Claim::Held) | Err(_) => continue,
                Ok(Claim::Done) => return,
                Ok(Claim::Won | Claim::TakenOver) => {
                    tracing::info!(module = "scheduler", job = %name, scheduled_at = %scheduled_at, "took over a run whose lease expired");
                    // The row is ours now: run the occurrence here.
                    {
                        let mut jobs = lock(&self.inner.jobs);
                        if let Some(job) = jobs.get_mut(&*name) {
                            job.active += 1;
                        }
                    }
                    self.inner.queued.fetch_add(1, Ordering::Relaxed);
                    self.run_claimed(name, scheduled_at, trigger, settings, handler)
                        .await;
                    return;
                }
            }
        }
    }

    /// `run` for an occurrence this instance already claimed (a takeover).
    async fn run_claimed(
        self,
        name: Arc<str>,
        scheduled_at: DateTime<Utc>,
        trigger: Trigger,
        settings: Arc<Settings>,
        handler: Arc<dyn JobHandler>,
    ) {
        let inner = &self.inner;
        let permit = tokio::select! {
            permit = Arc::clone(&inner.pool).acquire_owned() => permit.ok(),
            () = inner.cancel.cancelled() => None,
        };
        inner.queued.fetch_sub(1, Ordering::Relaxed);
        let Some(permit) = permit else {
            self.release(&name);
            return;
        };
        let key = millis(scheduled_at);
        self.emit(
            "job.started",
            json!({ "job": &*name, "scheduled_at": scheduled_at, "trigger": trigger.as_str(), "takeover": true }),
        );
        let (outcome, attempt, permit) = self
            .attempts(
                &name,
                scheduled_at,
                trigger,
                &settings,
                &handler,
                key,
                Some(permit),
            )
            .await;
        drop(permit);
        self.record(
            &name,
            scheduled_at,
            key,
            trigger,
            &settings,
            outcome,
            attempt,
        )
        .await;
    }

    fn release(&self, name: &str) {
        let mut jobs = lock(&self.inner.jobs);
        if let Some(job) = jobs.get_mut(name) {
            job.active = job.active.saturating_sub(1);
        }
    }

    #[allow(clippy::too_many_arguments)]
    async fn record(
        &self,
        name: &str,
        scheduled_at: DateTime<Utc>,
        key: i64,
        trigger: Trigger,
        settings: &Settings,
        outcome: Outcome,
        attempts: u32,
    ) {
        let finished = self.inner.clock.now();
        let failures = {
            let mut jobs = lock(&self.inner.jobs);
            let Some(job) = jobs.get_mut(name) else {
                return;
            };
            job.active = job.active.saturating_sub(1);
            job.last_run = Some(finished);
            *job.runs.entry(outcome.as_str().to_owned()).or_default() += 1;
            if outcome == Outcome::Completed {
                job.consecutive_failures = 0;
            } else {
                job.consecutive_failures += 1;
            }
            job.last_outcome = Some(outcome.clone());
            job.consecutive_failures
        };
        metrics::run(name, outcome.as_str());
        let error = outcome.error(settings.timeout);
        if outcome == Outcome::Completed {
            self.emit(
                "job.completed",
                json!({ "job": name, "scheduled_at": scheduled_at, "trigger": trigger.as_str(), "attempts": attempts }),
            );
        } else {
            tracing::warn!(
                module = "scheduler",
                job = name,
                outcome = outcome.as_str(),
                attempts,
                "job run failed"
            );
            self.emit(
                "job.failed",
                json!({ "job": name, "scheduled_at": scheduled_at, "trigger": trigger.as_str(),
                        "attempt": attempts, "outcome": outcome.as_str(), "error": error,
                        "final": true, "consecutive_failures": failures }),
            );
        }
        if let Some(p) = self.inner.persistence.get() {
            let result = p
                .store
                .finish(&Finished {
                    job: name,
                    scheduled_at: key,
                    instance: &p.instance,
                    status: outcome.as_str(),
                    attempts: i64::from(attempts),
                    error: error.as_deref(),
                    finished_at: millis(finished),
                    consecutive_failures: i64::from(failures),
                    history: i64::from(p.history.load(Ordering::Relaxed)),
                })
                .await
                .map_err(|e| e.to_string());
            self.store_result(&result);
        }
    }

    /// Health inputs: overdue jobs (name, lateness), failing jobs (name, failures), whether
    /// the queue is saturated, the failure threshold.
    pub(crate) fn health_view(&self) -> HealthView {
        let now = self.inner.clock.now();
        let threshold = self.inner.failure_threshold.load(Ordering::Relaxed);
        let jobs = lock(&self.inner.jobs);
        let mut overdue = Vec::new();
        let mut failing = Vec::new();
        for (name, job) in jobs.iter() {
            let oldest = job.waiting.iter().min().copied();
            if let Some(next) = [job.next_run, oldest].into_iter().flatten().min() {
                let late = (now - next).to_std().unwrap_or(Duration::ZERO);
                if late > job.settings.tolerance && !job.paused && job.settings.enabled {
                    overdue.push((name.to_string(), late));
                }
            }
            if job.consecutive_failures >= threshold {
                failing.push((name.to_string(), job.consecutive_failures));
            }
        }
        HealthView {
            overdue,
            failing,
            saturated: self.inner.saturated.load(Ordering::Relaxed),
            queued: self.inner.queued.load(Ordering::Relaxed),
            capacity: self.inner.queue_capacity.load(Ordering::Relaxed),
            workers: self.workers(),
            threshold,
            jobs: jobs.len(),
        }
    }
}

/// What the health check reads.
#[derive(Debug)]
pub(crate) struct HealthView {
    pub(crate) overdue: Vec<(String, Duration)>,
    pub(crate) failing: Vec<(String, u32)>,
    pub(crate) saturated: bool,
    pub(crate) queued: usize,
    pub(crate) capacity: usize,
    pub(crate) workers: usize,
    pub(crate) threshold: u32,
    pub(crate) jobs: usize,
}

fn status_of(name: &str, job: &Job) -> JobStatus {
    JobStatus {
        name: name.to_owned(),
        kind: job.plan.kind(),
        cron: match &job.plan {
            Plan::Cron(s) => Some(s.expression().to_owned()),
            _ => None,
        },
        enabled: job.settings.enabled,
        paused: job.paused,
        next_run: job.next_run,
        last_run: job.last_run,
        last_outcome: job.last_outcome.as_ref().map(|o| o.as_str().to_owned()),
        consecutive_failures: job.consecutive_failures,
        active: job.active,
        runs: job.runs.clone(),
        missed: job.missed,
        timeout: job.settings.timeout,
        max_concurrent: job.settings.max_concurrent,
        max_attempts: job.settings.retry.max_attempts,
        misfire: job.settings.misfire,
        tolerance: job.settings.tolerance,
    }
}

// A poisoned lock means a panic while updating plain bookkeeping; the data is still usable.
fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}
