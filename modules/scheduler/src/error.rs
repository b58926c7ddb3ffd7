//! [`SchedulerError`]: what the scheduler's operations can fail with.

/// A scheduler operation that failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SchedulerError {
    /// No handler is registered under the name.
    #[error("no job handler registered under \"{name}\"")]
    UnknownJob {
        /// The name asked for.
        name: String,
    },
    /// A schedule that cannot be used (an invalid cron expression or time zone, a zero period).
    #[error("job \"{name}\": {message}")]
    InvalidSchedule {
        /// The job.
        name: String,
        /// Why.
        message: String,
    },
    /// `persistence.connection` names no pool the database module publishes.
    #[error(
        "scheduler.persistence.connection: no database pool named \"{connection}\" (is the database module configured with it, and its driver feature enabled here?)"
    )]
    NoPool {
        /// The connection name.
        connection: String,
    },
    /// The persistence database failed.
    #[error("scheduler persistence: {0}")]
    Database(#[from] sqlx::Error),
    /// The scheduler has stopped.
    #[error("the scheduler has stopped")]
    Stopped,
    /// A reload hook was called without its section.
    #[error("reload of `{module}` carried no `scheduler` section")]
    MissingSection {
        /// The module being reloaded.
        module: String,
    },
}
