//! The scheduler module of modular: jobs registered in code by name, scheduled by cron in
//! config (seconds, `L`/`W`/`#`, IANA time zones and their DST changes, through `croner`
//! and `chrono-tz`) or from code as one-shot and interval jobs; run on a bounded worker pool
//! with a per-job timeout, caught panics, retries with exponential backoff and
//! `max_concurrent`; persisted in SQL through the database module's pools and run once per
//! fleet; reloadable; health on missed and failing jobs.
//!
//! # A guided tour
//!
//! [`SchedulerModule`] reads the `scheduler` section and registers the [`Scheduler`]
//! service. Handlers are registered by name on the module (or on
//! [`SchedulerModule::scheduler`] before `build()`); config names the schedule:
//!
//! ```no_run
//! # async fn demo() -> Result<(), modular_core::Error> {
//! use std::time::Duration;
//! use modular_core::Application;
//! use modular_scheduler::{JobContext, Scheduler, SchedulerModule};
//!
//! let mut app = Application::builder()
//!     .config_file("config.yaml")
//!     .module(SchedulerModule::new().job("cleanup", |ctx: JobContext| async move {
//!         tracing::info!(job = %ctx.name, scheduled_at = %ctx.scheduled_at, "cleaning up");
//!         Ok(())
//!     }))
//!     .build()
//!     .await?;
//! app.start().await?;
//! // From code: one-shot and interval jobs, manual runs, pause and resume.
//! let scheduler = app.services().require::<Scheduler>()?;
//! scheduler.run_after("cleanup", Duration::from_secs(60)).ok();
//! scheduler.trigger("cleanup").ok();
//! scheduler.pause("cleanup").ok();
//! # Ok(()) }
//! ```
//!
//! A handler is any `Fn(JobContext) -> impl Future<Output = Result<(), BoxError>>`. Each
//! attempt gets the job's name, the occurrence's `scheduled_at`, the attempt number, the
//! [`Trigger`] and a cancellation token (cancelled when the application stops).
//!
//! # Configuration
//!
//! ```yaml
//! scheduler:
//!   workers: 4                 # runs executing at once, over all jobs (> 0)
//!   queue_capacity: 1024       # runs that may wait for a worker; beyond: missed (queue_full)
//!   failure_threshold: 3       # consecutive failures of a job that degrade health
//!   persistence:
//!     connection: primary      # a database module connection; absent: in memory only
//!     instance: web-1          # this instance's name in lease rows (default: a UUIDv7)
//!     history: 50              # run rows kept per job
//!     lease: 30s               # a claim not renewed for this long may be taken over
//!   jobs:
//!     cleanup:
//!       cron: "0 */5 * * * *"  # 6 fields: seconds first; 5 fields: minutes first
//!       timezone: Europe/Berlin
//!       enabled: true
//!       timeout: 30s           # the future is dropped at the deadline: `timed_out`
//!       max_concurrent: 1      # an occurrence beyond it is missed (max_concurrent)
//!       retry: { max_attempts: 3, initial_backoff: 1s, multiplier: 2.0, max_backoff: 1m }
//!       misfire: run_once      # skip | run_once | run_all
//!       misfire_cap: 10        # run_all runs at most this many missed occurrences
//!       tolerance: 1m          # later than this: missed (misfire policy) and overdue
//!   health:
//!     timeout: 2s
//!     optional: false
//! ```
//!
//! **Dynamic fields.** Everything but `persistence.connection` and `persistence.instance`:
//! `workers` resizes the pool (growing at once, shrinking as runs finish), `queue_capacity`,
//! `failure_threshold`, `persistence.history` and `persistence.lease` apply to the next use,
//! and each job's fields (adding and removing jobs too) are parsed aside in `prepare` and
//! applied at commit: a changed cron or time zone recomputes the next occurrence from now;
//! a run already going finishes under the settings it started with. The store is static:
//! moving it under running leases would break the once-per-fleet guarantee.
//!
//! **Rejected with their path:** an invalid cron expression
//! (`scheduler.jobs.cleanup.cron: invalid cron expression at position 7 (hour field): ...`),
//! an unknown time zone, zero `workers`, `queue_capacity`, `failure_threshold`,
//! `max_concurrent`, `misfire_cap` or `retry.max_attempts`, a `retry.multiplier` below 1, a
//! zero `timeout`, a `lease` under 100 ms, and a job with no registered handler
//! (`scheduler.jobs.nightly: no job handler registered under "nightly"`): at `build()`, and
//! in a reload's validate step (the reload is `rejected`, the running schedule keeps
//! going). A `persistence.connection` that names no pool fails `start()`.
//!
//! # Persistence and once per fleet
//!
//! With `persistence.connection`, the scheduler uses that connection's pool, looked up
//! through core's [`Live`](modular_core::live::Live) seam (`registry.live::<sqlx::PgPool>`,
//! `MySqlPool`, `SqlitePool`), so it follows the database module's pool swaps without
//! depending on the database crate. Its migrations create `scheduler_jobs` (last handled
//! occurrence, next run, last run, status, consecutive failures) and `scheduler_runs` (one
//! row per occurrence: instance, status, attempts, lease, error; trimmed to `history` per
//! job).
//!
//! Every occurrence is claimed before it runs by inserting its `(job, scheduled_at)` row:
//! only the instance whose insert wins runs it, so N instances sharing the database run
//! each occurrence exactly once. The holder renews `lease_until` every third of `lease`;
//! the others watch the row, and one takes it over when the lease has lapsed (a crashed
//! holder). After a restart, a config job's occurrences since its last handled one follow
//! its misfire policy, and none that ran before runs again.
//!
//! # Admin endpoints
//!
//! Behind the router's admin guard ([`ADMIN_PATHS`]): `GET /admin/scheduler/jobs` and
//! `GET /admin/scheduler/jobs/{name}` (statuses), `POST /admin/scheduler/jobs/{name}/run`,
//! `/pause` and `/resume` (`202` with the job's state, `404` for an unknown job).
//!
//! # Health
//!
//! One report, component `jobs` (readiness):
//! - `unhealthy` when the persistence database does not answer (no run can be claimed);
//! - `degraded` when a job is overdue (a due occurrence has waited more than its
//!   `tolerance`), when the queue is saturated (a due run found it full, until it drains),
//!   or when a job failed `failure_threshold` times in a row;
//! - `healthy` otherwise.
//!
//! Details: `jobs`, `workers`, `queue_depth`, `queue_capacity`, `failure_threshold`,
//! `overdue` (job → ms late), `failing` (job → consecutive failures), `persistence`
//! (`driver`, `error`).
//!
//! # Events
//!
//! | type | data |
//! |---|---|
//! | `com.modular.scheduler.job.started` | `job`, `scheduled_at`, `trigger`, `lateness_ms` |
//! | `com.modular.scheduler.job.completed` | `job`, `scheduled_at`, `trigger`, `attempts` |
//! | `com.modular.scheduler.job.failed` | `job`, `scheduled_at`, `attempt`, `outcome` (`failed`, `panicked`, `timed_out`), `error`; `retry_in_ms` for a retried attempt, `final` and `consecutive_failures` for the last |
//! | `com.modular.scheduler.job.missed` | `job`, `scheduled_at`, `reason` (`misfire`, `max_concurrent`, `queue_full`, `store_unavailable`), `lateness_ms` |
//!
//! # Metrics
//!
//! See [`metrics`]: `modular_scheduler_runs_total{job,outcome}`,
//! `modular_scheduler_run_duration_seconds{job}`, `modular_scheduler_lateness_seconds{job}`,
//! `modular_scheduler_missed_total{job,reason}`, `modular_scheduler_queue_depth`.
//!
//! # Time
//!
//! [`Clock::System`] in production. [`SchedulerModule::with_clock`] with
//! [`Clock::starting_at`] derives wall time from tokio's clock, so tests under
//! `tokio::time::pause()` run days of cron (across DST changes) in milliseconds.
//!
//! # Features
//!
//! - `sqlite` (default): persistence on a SQLite pool;
//! - `postgres`: on a PostgreSQL pool;
//! - `mysql`: on a MariaDB/MySQL pool.
//!
//! Without persistence no feature is needed at run time.
mod admin;
mod clock;
mod config;
mod cron;
mod error;
mod health;
pub mod metrics;
mod module;
mod scheduler;
mod store;

pub use admin::ADMIN_PATHS;
pub use clock::Clock;
pub use config::{JobConfig, MisfirePolicy, PersistenceConfig, RetryConfig, SchedulerConfig};
pub use cron::{CronProblem, CronSchedule, parse as parse_cron};
pub use error::SchedulerError;
pub use module::SchedulerModule;
pub use scheduler::{
    JobContext, JobFuture, JobHandler, JobResult, JobStatus, Outcome, Scheduler, Trigger,
};
