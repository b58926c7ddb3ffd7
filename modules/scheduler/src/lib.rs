//! The scheduler module of modular (docs to come).
mod clock;
mod config;
mod cron;
mod error;
mod health;
pub mod metrics;
mod module;
mod scheduler;
mod store;

pub use clock::Clock;
pub use config::{JobConfig, MisfirePolicy, PersistenceConfig, RetryConfig, SchedulerConfig};
pub use cron::{CronProblem, CronSchedule, parse as parse_cron};
pub use error::SchedulerError;
pub use module::SchedulerModule;
pub use scheduler::{
    JobContext, JobFuture, JobHandler, JobResult, JobStatus, Outcome, Scheduler, Trigger,
};
