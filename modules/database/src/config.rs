//! [`DatabaseConfig`]: named connections, each with its URL, pool sizes, timeouts and
//! migrations.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use modular_core::health::ProviderConfig;
use modular_core::{DynamicConfig, FieldError, Secret};
use serde::{Deserialize, Serialize};

use crate::driver::Driver;

/// The longest `ping_timeout` accepted; the health provider's own deadline sits just above it.
pub const MAX_PING_TIMEOUT: Duration = Duration::from_secs(10);

/// The `database` section.
///
/// ```yaml
/// database:
///   default: primary
///   connections:
///     primary:
///       url: postgres://app:secret@db.internal:5432/app
///       max_connections: 20
///       migrations: ./migrations
///     replica:
///       url: mysql://app@replica.internal:3306/app
///       max_connections: 5
///       statement_timeout: 30s
///   health:
///     timeout: 11s     # unset: MAX_PING_TIMEOUT + 500ms (10.5s)
///     optional: false
/// ```
///
/// # What is dynamic, and why
///
/// Everything is. `default` only changes which connection [`DatabaseService::default_pool`]
/// returns. `connections` is dynamic because adding and removing a named connection at runtime
/// is supported; the derive makes every field under a dynamic map dynamic too, and each is
/// applied by building a new pool aside (see [`ConnectionConfig`]). `health.timeout` and
/// `health.optional` only change the health registration, which the reload commit replaces
/// (no pool is rebuilt for them). No field needs a restart.
///
/// [`DatabaseService::default_pool`]: crate::DatabaseService::default_pool
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, DynamicConfig)]
#[serde(deny_unknown_fields, default)]
#[config(validate = "Self::validate_config")]
pub struct DatabaseConfig {
    /// The connection `DatabaseService::default_pool` returns (default `primary`). Must name a
    /// configured connection when any is configured.
    #[config(dynamic)]
    pub default: String,
    /// The named connections. Adding or removing one is a dynamic change: an added connection
    /// is connected (and migrated) before the reload commits; a removed one is closed after its
    /// in-flight queries finish.
    #[config(dynamic, nested)]
    pub connections: BTreeMap<String, ConnectionConfig>,
    /// The health registration: the aggregator's deadline for the whole check (default
    /// [`DEFAULT_HEALTH_TIMEOUT`], above every connection's `ping_timeout`, so a slow ping is
    /// reported by the check itself; a shorter one cuts every connection's report to
    /// `timed out`) and whether a failing database leaves readiness alone. Dynamic.
    #[config(nested)]
    pub health: ProviderConfig,
}

/// The health registration's deadline when `health.timeout` is unset: each ping bounds itself
/// by its connection's `ping_timeout` (at most [`MAX_PING_TIMEOUT`]), so this is a backstop.
pub const DEFAULT_HEALTH_TIMEOUT: Duration =
    MAX_PING_TIMEOUT.saturating_add(Duration::from_millis(500));

impl Default for DatabaseConfig {
    fn default() -> Self {
        Self {
            default: "primary".to_owned(),
            connections: BTreeMap::new(),
            health: ProviderConfig::default(),
        }
    }
}

impl DatabaseConfig {
    /// The configuration of the connection called `name`.
    pub fn connection(&self, name: &str) -> Option<&ConnectionConfig> {
        self.connections.get(name)
    }

    fn validate_config(&self) -> Result<(), Vec<FieldError>> {
        let mut errors = Vec::new();
        if !self.connections.is_empty() && !self.connections.contains_key(&self.default) {
            let names: Vec<&str> = self.connections.keys().map(String::as_str).collect();
            errors.push(FieldError::new(
                "default",
                format!(
                    "names no configured connection {:?} (configured: {})",
                    self.default,
                    names.join(", ")
                ),
            ));
        }
        for (name, connection) in &self.connections {
            let Some(primary) = &connection.replica_of else {
                continue;
            };
            let path = format!("connections.{name}.replica_of");
            match self.connections.get(primary) {
                None => errors.push(FieldError::new(
                    path,
                    format!("names no configured connection {primary:?}"),
                )),
                Some(_) if primary == name => {
                    errors.push(FieldError::new(
                        path,
                        "a connection cannot replicate itself",
                    ));
                }
                Some(target) if target.replica_of.is_some() => errors.push(FieldError::new(
                    path,
                    format!("{primary:?} is itself a replica; name its primary instead"),
                )),
                Some(target) => {
                    if let (Ok(mine), Ok(theirs)) = (connection.driver(), target.driver())
                        && mine != theirs
                    {
                        errors.push(FieldError::new(
                            path,
                            format!(
                                "{primary:?} uses {}, this connection {}: a reader must get the same pool type",
                                theirs.as_str(),
                                mine.as_str()
                            ),
                        ));
                    }
                }
            }
        }
        for name in self.connections.keys() {
            if name.is_empty() || name.contains('.') {
                errors.push(FieldError::new(
                    format!("connections.{name}"),
                    format!("connection names must be non-empty and contain no `.`, got `{name}`"),
                ));
            }
        }
        FieldError::collect(errors)
    }
}

/// One named connection: a sqlx pool for PostgreSQL, MySQL/MariaDB or SQLite, chosen by the
/// URL's scheme.
///
/// Every field is dynamic. sqlx pools cannot be resized or re-pointed in place, so a change to
/// a pool setting (`url`, `max_connections`, `min_connections`, `acquire_timeout`,
/// `idle_timeout`, `max_lifetime`, `statement_timeout`) builds a new pool aside, checks that
/// it connects, swaps it in atomically and closes the old pool once its in-flight queries
/// finish; if the new pool cannot connect the reload fails and the old pool keeps serving. A
/// changed `url` therefore rotates credentials without a restart. The other changes are
/// lighter: `connect_timeout` applies to the next pool built, `ping_timeout` to the next
/// health check, and a new `migrations` path runs its migrations on the live pool. Changing
/// the driver of an existing connection (for example `postgres://` to `mysql://`) fails the
/// reload, since code matching on the typed pool would break; add a connection under a new
/// name instead.
///
/// `sqlite::memory:` suits tests and demos only: the database lives while a connection of its
/// pool is open, so a reload that rebuilds the pool starts an empty one.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, DynamicConfig)]
#[serde(deny_unknown_fields, default)]
#[config(validate = "Self::validate_config")]
pub struct ConnectionConfig {
    /// `postgres://` / `postgresql://`, `mysql://` / `mariadb://`, or `sqlite:` (`sqlite::memory:`,
    /// `sqlite://path/to/file.db`). A SQLite file is created when missing unless the URL sets
    /// `mode=`. Never shown: logs, events and diffs carry a fingerprint only.
    #[config(dynamic)]
    pub url: Secret<String>,
    /// The most connections the pool opens (default 10, must be > 0).
    #[config(dynamic)]
    pub max_connections: u32,
    /// Connections kept open even when idle (default 0, at most `max_connections`).
    #[config(dynamic)]
    pub min_connections: u32,
    /// How long `acquire` waits for a free connection before failing (default 30s).
    #[config(dynamic)]
    #[serde(with = "humantime_serde")]
    pub acquire_timeout: Duration,
    /// Idle connections above `min_connections` are closed after this long (default 10m;
    /// `null` keeps them).
    #[config(dynamic)]
    #[serde(with = "humantime_serde")]
    pub idle_timeout: Option<Duration>,
    /// Connections are replaced after this long (default 30m; `null` keeps them).
    #[config(dynamic)]
    #[serde(with = "humantime_serde")]
    pub max_lifetime: Option<Duration>,
    /// How long a new pool (at start, on reload) may take to open its first connections
    /// before the start or the reload fails (default 5s). Connections opened later are bounded
    /// by `acquire_timeout`.
    #[config(dynamic)]
    #[serde(with = "humantime_serde")]
    pub connect_timeout: Duration,
    /// Server-side limit on each statement (default none). PostgreSQL: `statement_timeout`;
    /// MariaDB: `max_statement_time`; MySQL: `max_execution_time` (which MySQL applies to
    /// `SELECT` only). SQLite has no such setting and rejects it.
    #[config(dynamic)]
    #[serde(with = "humantime_serde")]
    pub statement_timeout: Option<Duration>,
    /// A directory of sqlx migrations (`<version>_<description>.sql`), run at start and when
    /// the connection is added or this path changes on reload. Forward only: a rolled-back
    /// reload does not undo migrations that ran.
    #[config(dynamic)]
    pub migrations: Option<PathBuf>,
    /// How long the health check's `SELECT 1` may take (default 500ms, at most 10s).
    #[config(dynamic)]
    #[serde(with = "humantime_serde")]
    pub ping_timeout: Duration,
    /// Whether this connection's health report is optional (default `false`): an unhealthy
    /// optional connection shows in overall health but never fails readiness, for a
    /// connection the service can run without (a replica, a reporting database). The other
    /// connections still count. Dynamic: read by every health check, so a reload changes the
    /// next report without building a new pool. `database.health.optional` makes every
    /// connection optional at once.
    #[config(dynamic)]
    pub optional: bool,
    /// Makes this connection a read replica of the named one (default none): readers of that
    /// connection ([`DatabaseService::reader`](crate::DatabaseService::reader)) use this pool
    /// while its health checks pass, and fall back to the primary when none of its replicas
    /// does. It must name a configured connection of the same driver that is not itself a
    /// replica. A replica is usually `optional: true` too, so its outage never fails
    /// readiness. Dynamic: read by every `reader` call.
    #[config(dynamic)]
    pub replica_of: Option<String>,
}

impl Default for ConnectionConfig {
    fn default() -> Self {
        Self {
            url: Secret::new(String::new()),
            max_connections: 10,
            min_connections: 0,
            acquire_timeout: Duration::from_secs(30),
            idle_timeout: Some(Duration::from_secs(10 * 60)),
            max_lifetime: Some(Duration::from_secs(30 * 60)),
            connect_timeout: Duration::from_secs(5),
            statement_timeout: None,
            migrations: None,
            ping_timeout: Duration::from_millis(500),
            optional: false,
            replica_of: None,
        }
    }
}

impl ConnectionConfig {
    /// A connection to `url` with default settings.
    pub fn new(url: impl Into<String>) -> Self {
        Self {
            url: Secret::new(url.into()),
            ..Self::default()
        }
    }

    /// The driver the URL's scheme selects.
    pub fn driver(&self) -> Result<Driver, crate::DatabaseError> {
        Driver::from_url(self.url.expose())
    }

    /// Whether `other` needs a new pool: a setting the pool or its connections were built
    /// with differs (`connect_timeout`, `migrations`, `ping_timeout` and `optional` are read
    /// only when a pool is built, migrated or checked).
    pub(crate) fn pool_differs(&self, other: &Self) -> bool {
        self.url != other.url
            || self.max_connections != other.max_connections
            || self.min_connections != other.min_connections
            || self.acquire_timeout != other.acquire_timeout
            || self.idle_timeout != other.idle_timeout
            || self.max_lifetime != other.max_lifetime
            || self.statement_timeout != other.statement_timeout
    }

    fn validate_config(&self) -> Result<(), Vec<FieldError>> {
        let mut errors = Vec::new();
        match Driver::from_url(self.url.expose()) {
            Ok(driver) => {
                if let Err(message) = driver.check_url(self.url.expose()) {
                    errors.push(FieldError::new("url", message));
                }
                if driver == Driver::Sqlite && self.statement_timeout.is_some() {
                    errors.push(FieldError::new(
                        "statement_timeout",
                        "is not supported by sqlite (remove it for this connection)",
                    ));
                }
            }
            Err(error) => errors.push(FieldError::new("url", error.to_string())),
        }
        if self.max_connections == 0 {
            errors.push(FieldError::new("max_connections", "must be > 0, got 0"));
        }
        if self.min_connections > self.max_connections {
            errors.push(FieldError::new(
                "min_connections",
                format!(
                    "must be <= max_connections ({}), got {}",
                    self.max_connections, self.min_connections
                ),
            ));
        }
        for (field, value) in [
            ("acquire_timeout", Some(self.acquire_timeout)),
            ("connect_timeout", Some(self.connect_timeout)),
            ("ping_timeout", Some(self.ping_timeout)),
            ("idle_timeout", self.idle_timeout),
            ("max_lifetime", self.max_lifetime),
            ("statement_timeout", self.statement_timeout),
        ] {
            if value.is_some_and(|v| v.is_zero()) {
                errors.push(FieldError::new(field, "must be > 0, got 0s"));
            }
        }
        if self.ping_timeout > MAX_PING_TIMEOUT {
            errors.push(FieldError::new(
                "ping_timeout",
                format!(
                    "must be <= {}, got {}",
                    humantime_serde::re::humantime::format_duration(MAX_PING_TIMEOUT),
                    humantime_serde::re::humantime::format_duration(self.ping_timeout)
                ),
            ));
        }
        if let Some(path) = &self.migrations
            && !path.is_dir()
        {
            errors.push(FieldError::new(
                "migrations",
                format!("is not a directory: `{}`", path.display()),
            ));
        }
        FieldError::collect(errors)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn paths(config: &DatabaseConfig) -> Vec<String> {
        match config.validate() {
            Ok(()) => Vec::new(),
            Err(errors) => errors
                .into_iter()
                .map(|e| format!("{}: {}", e.path, e.message))
                .collect(),
        }
    }

    fn one(connection: ConnectionConfig) -> DatabaseConfig {
        DatabaseConfig {
            default: "primary".to_owned(),
            connections: BTreeMap::from([("primary".to_owned(), connection)]),
            ..DatabaseConfig::default()
        }
    }

    #[test]
    fn durations_read_humantime_and_null_turns_a_timeout_off() {
        let config: ConnectionConfig = serde_json::from_value(serde_json::json!({
            "url": "sqlite::memory:",
            "acquire_timeout": "2s",
            "idle_timeout": null,
            "max_lifetime": "1h",
            "statement_timeout": "250ms",
        }))
        .unwrap();
        assert_eq!(config.acquire_timeout, Duration::from_secs(2));
        assert_eq!(config.idle_timeout, None);
        assert_eq!(config.max_lifetime, Some(Duration::from_secs(3600)));
        assert_eq!(config.statement_timeout, Some(Duration::from_millis(250)));
        assert_eq!(config.max_connections, 10);
    }

    #[test]
    fn the_default_config_is_valid_and_has_no_connections() {
        assert_eq!(paths(&DatabaseConfig::default()), Vec::<String>::new());
    }

    #[test]
    fn a_sqlite_connection_with_defaults_is_valid() {
        assert_eq!(
            paths(&one(ConnectionConfig::new("sqlite::memory:"))),
            Vec::<String>::new()
        );
    }

    #[test]
    fn an_unknown_scheme_is_reported_at_the_url_without_the_url() {
        let errors = paths(&one(ConnectionConfig::new("oracle://scott:tiger@db/orcl")));
        assert_eq!(errors.len(), 1, "{errors:?}");
        assert!(
            errors[0].starts_with("connections.primary.url: unknown driver scheme `oracle`"),
            "{errors:?}"
        );
        assert!(!errors[0].contains("tiger"), "{errors:?}");
    }

    #[test]
    fn zero_max_connections_and_min_above_max_are_reported_with_their_paths() {
        let mut connection = ConnectionConfig::new("sqlite::memory:");
        connection.max_connections = 0;
        connection.min_connections = 1;
        let errors = paths(&one(connection));
        assert_eq!(
            errors,
            [
                "connections.primary.max_connections: must be > 0, got 0",
                "connections.primary.min_connections: must be <= max_connections (0), got 1",
            ]
        );
    }

    #[test]
    fn a_default_naming_no_connection_is_reported() {
        let mut config = one(ConnectionConfig::new("sqlite::memory:"));
        config.default = "main".to_owned();
        assert_eq!(
            paths(&config),
            ["default: names no configured connection \"main\" (configured: primary)"]
        );
    }

    #[test]
    fn sqlite_rejects_a_statement_timeout() {
        let mut connection = ConnectionConfig::new("sqlite::memory:");
        connection.statement_timeout = Some(Duration::from_secs(1));
        let errors = paths(&one(connection));
        assert_eq!(
            errors,
            [
                "connections.primary.statement_timeout: is not supported by sqlite (remove it for this connection)"
            ]
        );
    }

    #[test]
    fn zero_timeouts_and_a_long_ping_timeout_are_rejected() {
        let mut connection = ConnectionConfig::new("sqlite::memory:");
        connection.acquire_timeout = Duration::ZERO;
        connection.ping_timeout = Duration::from_secs(11);
        let errors = paths(&one(connection));
        assert_eq!(
            errors,
            [
                "connections.primary.acquire_timeout: must be > 0, got 0s",
                "connections.primary.ping_timeout: must be <= 10s, got 11s",
            ]
        );
    }

    #[test]
    fn a_missing_migrations_directory_is_rejected() {
        let mut connection = ConnectionConfig::new("sqlite::memory:");
        connection.migrations = Some(PathBuf::from("/definitely/not/here"));
        let errors = paths(&one(connection));
        assert_eq!(
            errors,
            ["connections.primary.migrations: is not a directory: `/definitely/not/here`"]
        );
    }

    #[test]
    fn every_connection_field_is_dynamic_through_the_map() {
        let old = one(ConnectionConfig::new("sqlite::memory:"));
        let mut new = old.clone();
        if let Some(c) = new.connections.get_mut("primary") {
            c.url = Secret::new("sqlite://other.db".to_owned());
            c.max_connections = 2;
        }
        new.connections.insert(
            "replica".to_owned(),
            ConnectionConfig::new("sqlite::memory:"),
        );
        let changes = old.diff(&new);
        let seen: Vec<(String, bool)> = changes
            .iter()
            .map(|c| (c.field_path.to_string(), c.dynamic))
            .collect();
        assert_eq!(
            seen,
            [
                ("connections.primary.url".to_owned(), true),
                ("connections.primary.max_connections".to_owned(), true),
                ("connections.replica".to_owned(), true),
            ]
        );
        assert!(changes[0].secret);
    }
}
