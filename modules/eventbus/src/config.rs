//! [`EventbusConfig`]: the `eventbus` section, which fields reload at runtime and why the
//! others do not.

use std::collections::BTreeMap;
use std::time::Duration;

use modular_core::{DynamicConfig, FieldError, Secret};
use serde::{Deserialize, Serialize};

use crate::topic::Pattern;

/// The `eventbus` configuration section.
///
/// | field | dynamic | why |
/// |---|---|---|
/// | `engines.<name>.type` | no | the delivery semantics, the stored events and the health component change with it: restart |
/// | `engines.<name>.prefix` | no | events stored under the old prefix (Redis keys, NATS subjects) would be stranded |
/// | `engines.<name>.url` and every other engine field (`mode`, `max_len`, timeouts, …) | yes | the engine is rebuilt aside (a new connection, checked) and swapped in; in-flight handlers finish on the old one |
/// | `engines` (adding or removing one) | yes | a new engine is connected aside; a removed one drains and closes |
/// | `default`, `routes` | yes | the next publish routes by the new rules; subscriptions move to their new engine |
/// | `delivery.*` | yes | read at each delivery; `concurrency` resizes every subscription's handler pool |
/// | `source` | yes | read at each wrapped publish |
/// | `forward` | yes | the forwarder reads it at each framework event |
/// | `health.*` | yes | read by the next check; `timeout` and `optional` replace the registration's options |
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, DynamicConfig)]
#[serde(deny_unknown_fields, default)]
#[config(validate = "Self::validate_config")]
pub struct EventbusConfig {
    /// The engines by name.
    #[config(dynamic, nested)]
    pub engines: BTreeMap<String, EngineConfig>,
    /// The engine for topics no route names; unset: the first engine by name (configuration
    /// sources are merged into sorted maps, so the order in the YAML file is not kept).
    #[config(dynamic)]
    pub default: Option<String>,
    /// Routing rules, first match wins.
    #[config(dynamic)]
    pub routes: Vec<RouteConfig>,
    /// Retries, back-off, dead-lettering and handler concurrency.
    #[config(nested)]
    pub delivery: DeliveryConfig,
    /// The CloudEvents `source` of events built from a plain payload.
    #[config(dynamic)]
    pub source: String,
    /// Republish the framework's own CloudEvents to a topic.
    #[config(dynamic)]
    pub forward: Option<ForwardConfig>,
    /// Health thresholds.
    #[config(nested)]
    pub health: EventbusHealthConfig,
}

/// One engine (`engines.<name>`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, DynamicConfig)]
#[serde(deny_unknown_fields, default)]
pub struct EngineConfig {
    /// `memory`, `redis`, `nats`, `amqp` or `mqtt`. Static.
    #[serde(rename = "type")]
    pub kind: EngineType,
    /// `redis://[user:password@]host[:port][/db]`, `nats://[user:password@]host[:port]`,
    /// `amqp://[user:password@]host[:port][/vhost]` or `mqtt://[user:password@]host[:port]`; a
    /// secret (it may hold a password).
    #[config(dynamic)]
    pub url: Option<Secret<String>>,
    /// The memory engine's queue length per subscription (group).
    #[config(dynamic)]
    pub queue_size: usize,
    /// What a memory publish does when a subscription's queue is full.
    #[config(dynamic)]
    pub when_full: Overflow,
    /// How long `when_full: block_timeout` waits before dropping.
    #[config(dynamic)]
    #[serde(with = "humantime_serde")]
    pub block_timeout: Duration,
    /// The longest a connection (and its check) may take.
    #[config(dynamic)]
    #[serde(with = "humantime_serde")]
    pub connect_timeout: Duration,
    /// The longest a durable publish waits for the broker's acknowledgement.
    #[config(dynamic)]
    #[serde(with = "humantime_serde")]
    pub publish_timeout: Duration,
    /// How long a delivered, unacknowledged event stays with its consumer before another
    /// member of the group may claim it (Redis `XCLAIM` idle time, JetStream `ack_wait`,
    /// AMQP: the engine requeues it). Not used by MQTT, which has no such timeout.
    #[config(dynamic)]
    #[serde(with = "humantime_serde")]
    pub visibility_timeout: Duration,
    /// Redis key prefix (default `modular:eventbus:`), NATS subject prefix and stream name
    /// (default `eventbus`, stream `EVENTBUS`), AMQP exchange name and queue name prefix
    /// (default `eventbus`) or MQTT topic prefix (default `eventbus`). Static.
    pub prefix: Option<String>,
    /// How events travel: `structured` (CloudEvents JSON, the default) or `binary` (attributes
    /// as headers, data as the body) on engines whose transport has headers (redis, nats,
    /// amqp). Readers accept both, so publishers may switch while subscribers run.
    #[config(dynamic)]
    pub mode: WireMode,
    /// Redis only: trims each stream to about this many entries at every `XADD`
    /// (`MAXLEN ~`); unset keeps every entry.
    #[config(dynamic)]
    pub max_len: Option<u64>,
    /// NATS only: topic patterns (`metrics.*`, `presence.>`) published and subscribed as core
    /// NATS subjects (`_core.<prefix>.<topic>`, outside the JetStream stream): at-most-once,
    /// no broker ack and no redelivery; the others go through JetStream.
    #[config(dynamic)]
    pub core_topics: Vec<String>,
    /// MQTT only: topic patterns published and subscribed with QoS 0 (at-most-once, no
    /// `PUBACK`); the others use QoS 1.
    #[config(dynamic)]
    pub qos0_topics: Vec<String>,
}

/// CloudEvents content mode on the wire (`engines.<name>.mode`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum WireMode {
    /// The whole event as `application/cloudevents+json`.
    #[default]
    Structured,
    /// Attributes as transport headers (`ce_<name>`), data as the body.
    Binary,
}

/// An engine's kind.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum EngineType {
    /// In-process bounded queues; at-most-once.
    #[default]
    Memory,
    /// Redis Streams with consumer groups; at-least-once (feature `redis`).
    Redis,
    /// NATS JetStream with durable consumers; at-least-once (core NATS, at-most-once, for
    /// `core_topics`) (feature `nats`).
    Nats,
    /// RabbitMQ topic exchange with durable queues; at-least-once (feature `amqp`).
    Amqp,
    /// MQTT 3.1.1, QoS 1 (QoS 0 for `qos0_topics`) with shared subscriptions for groups
    /// (feature `mqtt`).
    Mqtt,
}

impl EngineType {
    /// `memory`, `redis`, `nats`, `amqp` or `mqtt`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Memory => "memory",
            Self::Redis => "redis",
            Self::Nats => "nats",
            Self::Amqp => "amqp",
            Self::Mqtt => "mqtt",
        }
    }

    /// Whether the build has this engine.
    pub fn is_compiled(self) -> bool {
        match self {
            Self::Memory => true,
            Self::Redis => cfg!(feature = "redis"),
            Self::Nats => cfg!(feature = "nats"),
            Self::Amqp => cfg!(feature = "amqp"),
            Self::Mqtt => cfg!(feature = "mqtt"),
        }
    }

    fn schemes(self) -> &'static [&'static str] {
        match self {
            Self::Memory => &[],
            Self::Redis => &["redis", "rediss"],
            Self::Nats => &["nats", "tls"],
            Self::Amqp => &["amqp"],
            Self::Mqtt => &["mqtt", "tcp"],
        }
    }
}

impl std::fmt::Display for EngineType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What a full memory queue does to a publish.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum Overflow {
    /// Drop the event for that subscription (counted) and return at once.
    #[default]
    Drop,
    /// Wait for room.
    Block,
    /// Wait up to `block_timeout`, then drop (counted).
    BlockTimeout,
}

/// One routing rule (`routes[i]`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RouteConfig {
    /// Topic patterns (`orders.*`, `audit.>`).
    pub topics: Vec<String>,
    /// The engine those topics go to.
    pub engine: String,
}

/// `eventbus.delivery`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, DynamicConfig)]
#[serde(deny_unknown_fields, default)]
#[config(dynamic)]
pub struct DeliveryConfig {
    /// Handler attempts per event before it is dead-lettered (1 = no retry).
    pub max_attempts: u32,
    /// The wait before the first retry; doubled per attempt.
    #[serde(with = "humantime_serde")]
    pub initial_backoff: Duration,
    /// The longest wait between attempts.
    #[serde(with = "humantime_serde")]
    pub max_backoff: Duration,
    /// Where events go after `max_attempts` failures (routed like any topic).
    pub dead_letter_topic: String,
    /// Handlers running at once per subscription.
    pub concurrency: usize,
}

/// `eventbus.forward`: framework events republished to a topic.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ForwardConfig {
    /// CloudEvents type patterns: exact types, or prefixes ending in `*` (`com.modular.*`).
    pub types: Vec<String>,
    /// The topic they are published to.
    pub topic: String,
}

impl ForwardConfig {
    /// Whether an event of type `ty` is forwarded.
    pub fn forwards(&self, ty: &str) -> bool {
        self.types.iter().any(|t| match t.strip_suffix('*') {
            Some(prefix) => ty.starts_with(prefix),
            None => t == ty,
        })
    }
}

/// `eventbus.health`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, DynamicConfig)]
#[serde(deny_unknown_fields, default)]
#[config(dynamic)]
pub struct EventbusHealthConfig {
    /// The round-trip probe's deadline (and, plus a margin, the registration's).
    #[serde(with = "humantime_serde")]
    pub timeout: Duration,
    /// Whether a failing event bus leaves readiness alone.
    pub optional: bool,
    /// A subscription with more undelivered events than this is `degraded`.
    pub max_lag: u64,
    /// More events dropped than this since the previous check is `degraded`.
    pub max_dropped: u64,
    /// The topic the round-trip probe publishes to (per engine, not routed).
    pub topic: String,
}

/// The CloudEvents source of wrapped payloads by default.
pub const DEFAULT_SOURCE: &str = "/modular/modules/eventbus";

impl Default for EventbusConfig {
    fn default() -> Self {
        Self {
            engines: BTreeMap::from([("memory".to_owned(), EngineConfig::default())]),
            default: None,
            routes: Vec::new(),
            delivery: DeliveryConfig::default(),
            source: DEFAULT_SOURCE.to_owned(),
            forward: None,
            health: EventbusHealthConfig::default(),
        }
    }
}

impl Default for EngineConfig {
    fn default() -> Self {
        Self {
            kind: EngineType::Memory,
            url: None,
            queue_size: 1024,
            when_full: Overflow::Drop,
            block_timeout: Duration::from_secs(1),
            connect_timeout: Duration::from_secs(2),
            publish_timeout: Duration::from_secs(5),
            visibility_timeout: Duration::from_secs(30),
            prefix: None,
            mode: WireMode::Structured,
            max_len: None,
            core_topics: Vec::new(),
            qos0_topics: Vec::new(),
        }
    }
}

impl Default for DeliveryConfig {
    fn default() -> Self {
        Self {
            max_attempts: 5,
            initial_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_secs(10),
            dead_letter_topic: "eventbus.dead_letter".to_owned(),
            concurrency: 16,
        }
    }
}

impl DeliveryConfig {
    /// The wait after failed attempt `attempt` (1-based): `initial_backoff * 2^(attempt-1)`,
    /// capped at `max_backoff`.
    pub fn backoff(&self, attempt: u32) -> Duration {
        let factor = 1u32 << attempt.saturating_sub(1).min(20);
        self.initial_backoff
            .saturating_mul(factor)
            .min(self.max_backoff)
    }
}

impl Default for EventbusHealthConfig {
    fn default() -> Self {
        Self {
            timeout: Duration::from_secs(1),
            optional: false,
            max_lag: 10_000,
            max_dropped: 0,
            topic: "eventbus.health".to_owned(),
        }
    }
}

impl EventbusConfig {
    /// The default engine's name.
    pub fn default_engine(&self) -> Option<&str> {
        self.default
            .as_deref()
            .or_else(|| self.engines.keys().next().map(String::as_str))
    }

    fn validate_config(&self) -> Result<(), Vec<FieldError>> {
        let mut errors = Vec::new();
        if self.engines.is_empty() {
            errors.push(FieldError::new("engines", "must name at least one engine"));
        }
        for (name, engine) in &self.engines {
            engine.validate_at(&format!("engines.{name}"), &mut errors);
        }
        if let Some(default) = &self.default
            && !self.engines.contains_key(default)
        {
            errors.push(FieldError::new(
                "default",
                format!("names engine `{default}`, which `engines` does not define"),
            ));
        }
        for (i, route) in self.routes.iter().enumerate() {
            if route.topics.is_empty() {
                errors.push(FieldError::new(
                    format!("routes[{i}].topics"),
                    "must list at least one topic pattern",
                ));
            }
            for (j, topic) in route.topics.iter().enumerate() {
                if let Err(message) = Pattern::parse(topic) {
                    errors.push(FieldError::new(format!("routes[{i}].topics[{j}]"), message));
                }
            }
            if !self.engines.contains_key(&route.engine) {
                errors.push(FieldError::new(
                    format!("routes[{i}].engine"),
                    format!(
                        "names engine `{}`, which `engines` does not define (defined: {})",
                        route.engine,
                        self.engines.keys().cloned().collect::<Vec<_>>().join(", ")
                    ),
                ));
            }
        }
        let d = &self.delivery;
        if d.max_attempts == 0 {
            errors.push(FieldError::new(
                "delivery.max_attempts",
                "must be >= 1, got 0",
            ));
        }
        if d.concurrency == 0 {
            errors.push(FieldError::new(
                "delivery.concurrency",
                "must be >= 1, got 0",
            ));
        }
        if d.max_backoff < d.initial_backoff {
            errors.push(FieldError::new(
                "delivery.max_backoff",
                "must be >= delivery.initial_backoff",
            ));
        }
        if let Err(message) = crate::topic::check_topic(&d.dead_letter_topic) {
            errors.push(FieldError::new("delivery.dead_letter_topic", message));
        }
        if let Err(message) = crate::topic::check_topic(&self.health.topic) {
            errors.push(FieldError::new("health.topic", message));
        }
        if self.health.timeout.is_zero() {
            errors.push(FieldError::new("health.timeout", "must be > 0s, got 0s"));
        }
        if self.source.is_empty() {
            errors.push(FieldError::new("source", "must not be empty"));
        }
        if let Some(forward) = &self.forward {
            if let Err(message) = crate::topic::check_topic(&forward.topic) {
                errors.push(FieldError::new("forward.topic", message));
            }
            if forward.types.is_empty() {
                errors.push(FieldError::new(
                    "forward.types",
                    "must list at least one type",
                ));
            }
            for (i, ty) in forward.types.iter().enumerate() {
                let head = ty.strip_suffix('*').unwrap_or(ty);
                if ty.is_empty() || head.contains('*') {
                    errors.push(FieldError::new(
                        format!("forward.types[{i}]"),
                        format!("`{ty}`: a type, or a prefix ending in a single trailing `*`"),
                    ));
                }
            }
        }
        FieldError::collect(errors)
    }
}

impl EngineConfig {
    fn validate_at(&self, at: &str, errors: &mut Vec<FieldError>) {
        if !self.kind.is_compiled() {
            errors.push(FieldError::new(
                format!("{at}.type"),
                format!(
                    "engine type `{0}` needs the `{0}` feature of modular-eventbus, which this build lacks",
                    self.kind
                ),
            ));
        }
        match (&self.url, self.kind) {
            (Some(_), EngineType::Memory) => errors.push(FieldError::new(
                format!("{at}.url"),
                "is not used by the memory engine (remove it)",
            )),
            (None, kind) if kind != EngineType::Memory => errors.push(FieldError::new(
                format!("{at}.url"),
                format!("is required by the {kind} engine"),
            )),
            (Some(url), kind) => {
                if let Err(message) = check_url(url.expose(), kind.schemes()) {
                    errors.push(FieldError::new(format!("{at}.url"), message));
                }
            }
            _ => {}
        }
        if self.queue_size == 0 {
            errors.push(FieldError::new(
                format!("{at}.queue_size"),
                "must be > 0, got 0",
            ));
        }
        for (field, value) in [
            ("block_timeout", self.block_timeout),
            ("connect_timeout", self.connect_timeout),
            ("publish_timeout", self.publish_timeout),
            ("visibility_timeout", self.visibility_timeout),
        ] {
            if value.is_zero() {
                errors.push(FieldError::new(
                    format!("{at}.{field}"),
                    "must be > 0s, got 0s",
                ));
            }
        }
        if self.mode == WireMode::Binary
            && matches!(self.kind, EngineType::Memory | EngineType::Mqtt)
        {
            let why = if self.kind == EngineType::Mqtt {
                "MQTT 3.1.1 messages have no headers to carry the attributes"
            } else {
                "the memory engine does not serialize events"
            };
            errors.push(FieldError::new(
                format!("{at}.mode"),
                format!(
                    "`binary` is not available on the {} engine: {why} (use `structured`)",
                    self.kind
                ),
            ));
        }
        if let Some(max_len) = self.max_len {
            if self.kind != EngineType::Redis {
                errors.push(FieldError::new(
                    format!("{at}.max_len"),
                    format!(
                        "is used by the redis engine only, not {} (remove it)",
                        self.kind
                    ),
                ));
            } else if max_len == 0 {
                errors.push(FieldError::new(
                    format!("{at}.max_len"),
                    "must be > 0, got 0 (leave it unset to keep every entry)",
                ));
            }
        }
        for (field, patterns, kind) in [
            ("core_topics", &self.core_topics, EngineType::Nats),
            ("qos0_topics", &self.qos0_topics, EngineType::Mqtt),
        ] {
            if !patterns.is_empty() && self.kind != kind {
                errors.push(FieldError::new(
                    format!("{at}.{field}"),
                    format!(
                        "is used by the {kind} engine only, not {} (remove it)",
                        self.kind
                    ),
                ));
                continue;
            }
            for (i, pattern) in patterns.iter().enumerate() {
                if let Err(message) = Pattern::parse(pattern) {
                    errors.push(FieldError::new(format!("{at}.{field}[{i}]"), message));
                }
            }
        }
        if let Some(prefix) = &self.prefix
            && prefix.is_empty()
        {
            errors.push(FieldError::new(
                format!("{at}.prefix"),
                "must not be empty (leave it unset for the default)",
            ));
        }
    }
}

/// Why `url` cannot be used; never repeats the URL (it may hold a password).
pub(crate) fn check_url(url: &str, schemes: &[&str]) -> Result<(), String> {
    let Some((scheme, rest)) = url.split_once("://") else {
        return Err(format!(
            "is not a url (expected {}://[user:password@]host[:port])",
            schemes.first().copied().unwrap_or("scheme")
        ));
    };
    if !schemes.iter().any(|s| s.eq_ignore_ascii_case(scheme)) {
        return Err(format!(
            "has scheme `{scheme}`, expected one of: {}",
            schemes.join(", ")
        ));
    }
    let authority = rest.split(['/', '?']).next().unwrap_or_default();
    let host_port = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    let host = match host_port.strip_prefix('[') {
        Some(v6) => v6.split(']').next().unwrap_or_default(),
        None => host_port.split(':').next().unwrap_or_default(),
    };
    if host.is_empty() {
        return Err("has no host".to_owned());
    }
    if let Some((_, port)) = host_port.rsplit_once(':')
        && !host_port.ends_with(']')
        && port.parse::<u16>().is_err()
    {
        return Err("has a port that is not a number from 0 to 65535".to_owned());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_without_a_host_are_refused_without_echoing_them() {
        let error = check_url("redis://:hunter2@/0", &["redis"]).unwrap_err();
        assert_eq!(error, "has no host");
        assert!(check_url("redis://127.0.0.1:6379/0", &["redis"]).is_ok());
        assert!(check_url("nats://u:p@localhost:4222", &["nats"]).is_ok());
        assert!(check_url("http://localhost", &["nats"]).is_err());
        assert!(check_url("nats://localhost:99999", &["nats"]).is_err());
        assert_eq!(
            crate::broker::address_of("nats://u:secret@h:4222"),
            "h:4222"
        );
    }

    #[test]
    fn backoff_doubles_up_to_the_cap() {
        let d = DeliveryConfig {
            initial_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_millis(350),
            ..DeliveryConfig::default()
        };
        assert_eq!(d.backoff(1), Duration::from_millis(100));
        assert_eq!(d.backoff(2), Duration::from_millis(200));
        assert_eq!(d.backoff(3), Duration::from_millis(350));
    }

    #[test]
    fn forward_types_match_exactly_or_by_prefix() {
        let f = ForwardConfig {
            types: vec!["com.modular.*".to_owned(), "x.y".to_owned()],
            topic: "modular.events".to_owned(),
        };
        assert!(f.forwards("com.modular.health.evaluated"));
        assert!(f.forwards("x.y"));
        assert!(!f.forwards("x.y.z"));
    }
}
