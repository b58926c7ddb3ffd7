//! Options of the aggregator and of each provider registration.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::render::DetailsPolicy;
use super::types::Probe;

/// Which probes a provider's reports count for. Default: readiness only.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(default)]
pub struct Probes {
    /// Counts for readiness.
    pub readiness: bool,
    /// Counts for liveness.
    pub liveness: bool,
    /// Counts for startup.
    pub startup: bool,
}

impl Default for Probes {
    fn default() -> Self {
        Self::READINESS
    }
}

impl Probes {
    /// No probe: the reports count for overall health only.
    pub const NONE: Self = Self {
        readiness: false,
        liveness: false,
        startup: false,
    };
    /// Readiness only (the default).
    pub const READINESS: Self = Self {
        readiness: true,
        liveness: false,
        startup: false,
    };
    /// Liveness only.
    pub const LIVENESS: Self = Self {
        readiness: false,
        liveness: true,
        startup: false,
    };
    /// Startup only.
    pub const STARTUP: Self = Self {
        readiness: false,
        liveness: false,
        startup: true,
    };
    /// Every probe.
    pub const ALL: Self = Self {
        readiness: true,
        liveness: true,
        startup: true,
    };

    /// Whether reports count for `probe` ([`Probe::Health`] always).
    pub const fn includes(self, probe: Probe) -> bool {
        match probe {
            Probe::Health => true,
            Probe::Readiness => self.readiness,
            Probe::Liveness => self.liveness,
            Probe::Startup => self.startup,
        }
    }
}

/// Where a provider's check runs.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum Isolation {
    /// Polled in the evaluating task together with every other provider (the default: about
    /// 40x cheaper than a task per provider). A provider that blocks its thread delays the
    /// others, and its own timeout cannot fire until it yields.
    #[default]
    Inline,
    /// In its own tokio task, aborted at the deadline. Other workers keep polling the rest.
    Spawn,
    /// On the blocking pool (the async check is driven there with `Handle::block_on`), for
    /// providers that call blocking code. At the deadline the aggregator stops waiting; the
    /// thread finishes on its own, and until it does the provider reports
    /// "previous check still running" instead of starting another thread.
    Blocking,
}

/// How one provider is registered.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProviderOptions {
    /// Deadline of one check, enforced by the aggregator (default 200 ms).
    pub timeout: Duration,
    /// Whether a failure leaves every probe passing (it still counts for overall health).
    pub optional: bool,
    /// Which probes the reports count for (default: readiness only).
    pub probes: Probes,
    /// Free-form tags, for grouping and introspection.
    pub tags: Vec<String>,
    /// Where the check runs (default: inline).
    pub isolation: Isolation,
}

/// The default per-provider timeout.
pub const DEFAULT_PROVIDER_TIMEOUT: Duration = Duration::from_millis(200);

impl Default for ProviderOptions {
    fn default() -> Self {
        Self {
            timeout: DEFAULT_PROVIDER_TIMEOUT,
            optional: false,
            probes: Probes::default(),
            tags: Vec::new(),
            isolation: Isolation::Inline,
        }
    }
}

impl ProviderOptions {
    /// The defaults: 200 ms, required, readiness only, inline.
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets the timeout.
    #[must_use]
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Sets optionality.
    #[must_use]
    pub fn with_optional(mut self, optional: bool) -> Self {
        self.optional = optional;
        self
    }

    /// Sets the probes.
    #[must_use]
    pub fn with_probes(mut self, probes: Probes) -> Self {
        self.probes = probes;
        self
    }

    /// Counts (or not) for readiness.
    #[must_use]
    pub fn readiness(mut self, on: bool) -> Self {
        self.probes.readiness = on;
        self
    }

    /// Counts (or not) for liveness.
    #[must_use]
    pub fn liveness(mut self, on: bool) -> Self {
        self.probes.liveness = on;
        self
    }

    /// Counts (or not) for startup.
    #[must_use]
    pub fn startup(mut self, on: bool) -> Self {
        self.probes.startup = on;
        self
    }

    /// Adds a tag.
    #[must_use]
    pub fn with_tag(mut self, tag: impl Into<String>) -> Self {
        self.tags.push(tag.into());
        self
    }

    /// Sets the isolation.
    #[must_use]
    pub fn with_isolation(mut self, isolation: Isolation) -> Self {
        self.isolation = isolation;
        self
    }

    /// Runs the check in its own task ([`Isolation::Spawn`]).
    #[must_use]
    pub fn spawned(self) -> Self {
        self.with_isolation(Isolation::Spawn)
    }

    /// Runs the check on the blocking pool ([`Isolation::Blocking`]).
    #[must_use]
    pub fn blocking(self) -> Self {
        self.with_isolation(Isolation::Blocking)
    }
}

/// Options of a [`HealthAggregator`](super::HealthAggregator); also the `health` config section.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HealthOptions {
    /// How long an answer is served from the cache (default 250 ms).
    #[serde(with = "humantime_serde")]
    pub cache_ttl: Duration,
    /// When set, `start_background` refreshes every interval and probes only read the snapshot.
    #[serde(with = "humantime_serde")]
    pub background_refresh: Option<Duration>,
    /// How long a tokio worker may stay in one poll, or the runtime ticker may be late, before
    /// liveness turns unhealthy (default 1 s).
    #[serde(with = "humantime_serde")]
    pub runtime_stall_threshold: Duration,
    /// Whether the built-in `runtime:scheduler` liveness check runs (default true).
    pub runtime_check: bool,
    /// Who sees messages and details in HTTP answers (default `when_authorized`).
    pub show_details: DetailsPolicy,
}

impl Default for HealthOptions {
    fn default() -> Self {
        Self {
            cache_ttl: Duration::from_millis(250),
            background_refresh: None,
            runtime_stall_threshold: Duration::from_secs(1),
            runtime_check: true,
            show_details: DetailsPolicy::WhenAuthorized,
        }
    }
}

impl HealthOptions {
    /// The defaults.
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets the cache TTL (zero turns caching off; concurrent callers still share one run).
    #[must_use]
    pub fn with_cache_ttl(mut self, ttl: Duration) -> Self {
        self.cache_ttl = ttl;
        self
    }

    /// Turns on background refresh every `interval`.
    #[must_use]
    pub fn with_background_refresh(mut self, interval: Duration) -> Self {
        self.background_refresh = Some(interval);
        self
    }

    /// Sets the runtime stall threshold.
    #[must_use]
    pub fn with_runtime_stall_threshold(mut self, threshold: Duration) -> Self {
        self.runtime_stall_threshold = threshold;
        self
    }

    /// Turns the built-in runtime check on or off.
    #[must_use]
    pub fn with_runtime_check(mut self, on: bool) -> Self {
        self.runtime_check = on;
        self
    }

    /// Sets the details policy.
    #[must_use]
    pub fn with_show_details(mut self, policy: DetailsPolicy) -> Self {
        self.show_details = policy;
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn provider_defaults_match_the_design() {
        let options = ProviderOptions::default();
        assert_eq!(options.timeout, Duration::from_millis(200));
        assert!(!options.optional);
        assert_eq!(options.probes, Probes::READINESS);
        assert_eq!(options.isolation, Isolation::Inline);
    }

    #[test]
    fn health_options_read_humantime_durations_and_reject_typos() {
        let options: HealthOptions = serde_json::from_str(
            r#"{"cache_ttl":"100ms","background_refresh":"5s","show_details":"always"}"#,
        )
        .unwrap();
        assert_eq!(options.cache_ttl, Duration::from_millis(100));
        assert_eq!(options.background_refresh, Some(Duration::from_secs(5)));
        assert_eq!(options.show_details, DetailsPolicy::Always);
        assert!(serde_json::from_str::<HealthOptions>(r#"{"cache_tl":"1s"}"#).is_err());
    }
}
