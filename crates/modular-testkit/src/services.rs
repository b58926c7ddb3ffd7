//! Service-backed tests: where each shared backend lives, and what a test does when it is absent.
//!
//! `cargo xtask services` (and `cargo xtask test` / `ci`) export one `MODULAR_TEST_*` variable per
//! running backend. A test asks for its backend with [`service`] or [`require_service!`]:
//! without the variable it prints one skip line and returns early; with `CI=true` a missing
//! variable fails the test, so CI can never pass by skipping.

use std::fmt;
use std::io::Write as _;

/// A backend that service-backed tests talk to over a real connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Service {
    /// PostgreSQL, `MODULAR_TEST_POSTGRES_URL` (e.g. `postgres://postgres@127.0.0.1:5432/test`).
    Postgres,
    /// MariaDB through the MySQL protocol, `MODULAR_TEST_MYSQL_URL`
    /// (e.g. `mysql://root@127.0.0.1:3306/test`).
    Mysql,
    /// Redis, `MODULAR_TEST_REDIS_URL` (e.g. `redis://127.0.0.1:6379`).
    Redis,
    /// NATS with JetStream, `MODULAR_TEST_NATS_URL` (e.g. `nats://127.0.0.1:4222`).
    Nats,
    /// RabbitMQ, `MODULAR_TEST_AMQP_URL` (e.g. `amqp://guest:guest@127.0.0.1:5672/%2f`).
    Amqp,
    /// Mosquitto, `MODULAR_TEST_MQTT_URL` (e.g. `mqtt://127.0.0.1:1883`).
    Mqtt,
}

impl Service {
    /// Every service, in the order `cargo xtask services` reports them.
    pub const ALL: [Service; 6] = [
        Service::Postgres,
        Service::Mysql,
        Service::Redis,
        Service::Nats,
        Service::Amqp,
        Service::Mqtt,
    ];

    /// The environment variable holding this service's URL.
    pub fn env_var(self) -> &'static str {
        match self {
            Service::Postgres => "MODULAR_TEST_POSTGRES_URL",
            Service::Mysql => "MODULAR_TEST_MYSQL_URL",
            Service::Redis => "MODULAR_TEST_REDIS_URL",
            Service::Nats => "MODULAR_TEST_NATS_URL",
            Service::Amqp => "MODULAR_TEST_AMQP_URL",
            Service::Mqtt => "MODULAR_TEST_MQTT_URL",
        }
    }

    /// A short lowercase name (`postgres`, `mysql`, `redis`, `nats`, `amqp`, `mqtt`).
    pub fn name(self) -> &'static str {
        match self {
            Service::Postgres => "postgres",
            Service::Mysql => "mysql",
            Service::Redis => "redis",
            Service::Nats => "nats",
            Service::Amqp => "amqp",
            Service::Mqtt => "mqtt",
        }
    }
}

impl fmt::Display for Service {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The URL of `service` from its `MODULAR_TEST_*` variable, or `None` when it is unset or empty.
///
/// This only reads the variable; use [`service`] in tests, which also reports the skip.
pub fn service_url(service: Service) -> Option<String> {
    read_url(service, |name| std::env::var(name).ok())
}

/// The URL of `service` for a test that needs it.
///
/// - Variable set: `Some(url)`.
/// - Variable unset or empty: prints `skipped: MODULAR_TEST_..._URL not set` and returns `None`,
///   so the test returns early:
///   `let Some(url) = modular_testkit::service(Service::Redis) else { return };`
/// - Variable unset and `CI=true` (or `CI=1`): panics, failing the test.
///
/// # Panics
///
/// When the variable is missing and `CI` is set to `true` or `1`: in CI a skipped
/// service-backed test would hide a broken service, so it is a failure instead.
#[track_caller]
pub fn service(service: Service) -> Option<String> {
    match resolve(service, |name| std::env::var(name).ok()) {
        Availability::Available(url) => Some(url),
        Availability::Skip => {
            // The skip line goes straight to the process's stderr: libtest captures `println!`
            // and `eprintln!` of passing tests, which would make every skip invisible.
            let line = format!("skipped: {} not set\n", service.env_var());
            let _ = std::io::stderr().lock().write_all(line.as_bytes());
            None
        }
        Availability::Required => panic!(
            "{} not set and CI=true: service-backed tests must run in CI (run `cargo xtask services`)",
            service.env_var()
        ),
    }
}

/// Returns the URL of a service, or returns early from the calling test when it is absent.
///
/// `require_service!(Service::Postgres)` is [`service`] followed by an early `return`; a test
/// returning a value passes it as the second argument:
///
/// ```
/// use modular_testkit::{require_service, Service};
///
/// fn redis_round_trip() -> Result<(), String> {
///     let url = require_service!(Service::Redis, Ok(()));
///     assert!(url.starts_with("redis://"));
///     Ok(())
/// }
/// # // Under CI=true without the variable the helper panics by design; keep the doctest neutral.
/// # if modular_testkit::service_url(Service::Redis).is_some() || std::env::var("CI").is_err() {
/// #     redis_round_trip().unwrap();
/// # }
/// ```
#[macro_export]
macro_rules! require_service {
    ($service:expr) => {
        $crate::require_service!($service, ())
    };
    ($service:expr, $on_skip:expr) => {
        match $crate::service($service) {
            ::std::option::Option::Some(url) => url,
            ::std::option::Option::None => return $on_skip,
        }
    };
}

/// What a test should do about one service, decided from the environment.
#[derive(Debug, PartialEq, Eq)]
enum Availability {
    Available(String),
    Skip,
    Required,
}

fn read_url(service: Service, env: impl Fn(&str) -> Option<String>) -> Option<String> {
    env(service.env_var()).filter(|url| !url.trim().is_empty())
}

fn resolve(service: Service, env: impl Fn(&str) -> Option<String>) -> Availability {
    if let Some(url) = read_url(service, &env) {
        return Availability::Available(url);
    }
    let in_ci = env("CI").is_some_and(|value| {
        let value = value.trim();
        value.eq_ignore_ascii_case("true") || value == "1"
    });
    if in_ci {
        Availability::Required
    } else {
        Availability::Skip
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env_of(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let pairs: Vec<(String, String)> = pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        move |name| {
            pairs
                .iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.clone())
        }
    }

    #[test]
    fn every_service_has_a_distinct_variable() {
        let mut names: Vec<_> = Service::ALL.iter().map(|s| s.env_var()).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), Service::ALL.len());
        assert!(
            names
                .iter()
                .all(|n| n.starts_with("MODULAR_TEST_") && n.ends_with("_URL"))
        );
    }

    #[test]
    fn a_set_variable_yields_its_url() {
        let env = env_of(&[("MODULAR_TEST_REDIS_URL", "redis://127.0.0.1:6379")]);
        assert_eq!(
            resolve(Service::Redis, env),
            Availability::Available("redis://127.0.0.1:6379".to_owned())
        );
    }

    #[test]
    fn a_missing_variable_skips_outside_ci() {
        assert_eq!(resolve(Service::Postgres, env_of(&[])), Availability::Skip);
        let env = env_of(&[("CI", "false")]);
        assert_eq!(resolve(Service::Postgres, env), Availability::Skip);
    }

    #[test]
    fn an_empty_variable_counts_as_missing() {
        let env = env_of(&[("MODULAR_TEST_NATS_URL", "  ")]);
        assert_eq!(resolve(Service::Nats, env), Availability::Skip);
    }

    #[test]
    fn a_missing_variable_is_required_under_ci_true() {
        let env = env_of(&[("CI", "true")]);
        assert_eq!(resolve(Service::Mysql, env), Availability::Required);
        let env = env_of(&[("CI", "1")]);
        assert_eq!(resolve(Service::Amqp, env), Availability::Required);
    }

    #[test]
    fn a_set_variable_wins_under_ci_true() {
        let env = env_of(&[
            ("CI", "true"),
            ("MODULAR_TEST_MQTT_URL", "mqtt://127.0.0.1:1883"),
        ]);
        assert_eq!(
            resolve(Service::Mqtt, env),
            Availability::Available("mqtt://127.0.0.1:1883".to_owned())
        );
    }
}
