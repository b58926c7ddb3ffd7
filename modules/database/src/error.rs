//! [`DatabaseError`]: everything the database module can fail with.

use std::time::Duration;

use crate::driver::Driver;

/// An error of the database module. Messages are lowercase and name the connection and the
/// value; a URL is never part of a message (it may hold credentials), only its scheme.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DatabaseError {
    /// A connection has no URL.
    #[error("url must be set (postgres://, mysql://, mariadb:// or sqlite:)")]
    MissingUrl,
    /// A URL's scheme names no known driver.
    #[error(
        "unknown driver scheme `{scheme}` (expected postgres://, postgresql://, mysql://, mariadb:// or sqlite:)"
    )]
    UnknownScheme {
        /// The scheme as written.
        scheme: String,
    },
    /// A URL's scheme names a driver this build does not include.
    #[error("driver `{driver}` is not enabled in this build (turn on the `{}` feature of modular-database)", driver.feature())]
    DriverDisabled {
        /// The driver.
        driver: Driver,
    },
    /// The driver could not parse a URL.
    #[error("invalid {driver} url: {message}")]
    InvalidUrl {
        /// The driver.
        driver: Driver,
        /// What the driver reported.
        message: String,
    },
    /// A new pool could not open its first connection.
    #[error("connection `{connection}` ({driver}): could not connect: {source}")]
    Connect {
        /// The connection name.
        connection: String,
        /// The driver.
        driver: Driver,
        /// What sqlx reported.
        #[source]
        source: sqlx::Error,
    },
    /// A new pool did not open its first connection within `connect_timeout`.
    #[error("connection `{connection}` ({driver}): no connection within connect_timeout {}", humantime_serde::re::humantime::format_duration(*timeout))]
    ConnectTimeout {
        /// The connection name.
        connection: String,
        /// The driver.
        driver: Driver,
        /// The configured `connect_timeout`.
        timeout: Duration,
    },
    /// Migrations could not be read or applied.
    #[error("connection `{connection}`: migrations from `{path}` failed: {source}")]
    Migration {
        /// The connection name.
        connection: String,
        /// The migrations directory.
        path: String,
        /// What sqlx reported.
        #[source]
        source: sqlx::migrate::MigrateError,
    },
    /// A reload tried to change the driver of an existing connection.
    #[error(
        "connection `{connection}`: changing the driver from {from} to {to} needs a restart (add a connection under a new name instead)"
    )]
    DriverChanged {
        /// The connection name.
        connection: String,
        /// The running driver.
        from: Driver,
        /// The driver the new URL selects.
        to: Driver,
    },
    /// The configuration of a connection is invalid.
    #[error("connection `{connection}`: {source}")]
    Config {
        /// The connection name.
        connection: String,
        /// What is wrong.
        #[source]
        source: Box<DatabaseError>,
    },
    /// The reload hook was called without the database section.
    #[error("the reload carried no `database` section")]
    MissingSection,
    /// Several connections failed at once.
    #[error("{} connections failed: {}", .0.len(), join(.0))]
    Several(Vec<DatabaseError>),
}

impl DatabaseError {
    /// One error for a list of failures (`None` when the list is empty).
    pub(crate) fn combine(mut errors: Vec<DatabaseError>) -> Option<DatabaseError> {
        match errors.len() {
            0 => None,
            1 => errors.pop(),
            _ => Some(Self::Several(errors)),
        }
    }
}

fn join(errors: &[DatabaseError]) -> String {
    errors
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("; ")
}
