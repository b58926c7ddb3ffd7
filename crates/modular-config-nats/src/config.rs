//! [`FleetConfig`]: the `fleet` section.

use std::time::Duration;

use modular_core::{DynamicConfig, FieldError};
use serde::{Deserialize, Serialize};

/// The `fleet` section: how this instance takes part in the fleet. Where the store is comes
/// from code ([`NatsKvOptions`](crate::NatsKvOptions)), since the store is itself a config
/// layer.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, DynamicConfig)]
#[serde(deny_unknown_fields, default)]
#[config(validate = "Self::validate_config")]
pub struct FleetConfig {
    /// This instance's id in the status keys (default: host name and process id). Static: it
    /// names the instance's key.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub instance_id: Option<String>,
    /// How long after the first change to the service's keys (not yet applied) the reload
    /// runs: every put within that window is applied together, as one version. The window is
    /// not extended by later puts, so a steady stream of changes still applies every
    /// `debounce`.
    #[config(dynamic)]
    #[serde(with = "modular_core::humantime_serde")]
    pub debounce: Duration,
    /// How often the instance rewrites its status key, so others see it is alive.
    #[config(dynamic)]
    #[serde(with = "modular_core::humantime_serde")]
    pub heartbeat: Duration,
    /// A status older than this is left out of `/admin/fleet` (the instance is gone).
    #[config(dynamic)]
    #[serde(with = "modular_core::humantime_serde")]
    pub ttl: Duration,
}

impl Default for FleetConfig {
    fn default() -> Self {
        Self {
            instance_id: None,
            debounce: Duration::from_millis(50),
            heartbeat: Duration::from_secs(5),
            ttl: Duration::from_secs(20),
        }
    }
}

impl FleetConfig {
    fn validate_config(&self) -> Result<(), Vec<FieldError>> {
        let mut errors = Vec::new();
        if let Some(id) = &self.instance_id
            && (id.is_empty()
                || !id
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_'))
        {
            errors.push(FieldError::new(
                "instance_id",
                format!("\"{id}\" is not a key token (letters, digits, '-' and '_')"),
            ));
        }
        if self.heartbeat.is_zero() {
            errors.push(FieldError::new("heartbeat", "must be > 0s, got 0s"));
        }
        if self.ttl <= self.heartbeat {
            errors.push(FieldError::new(
                "ttl",
                format!(
                    "must be longer than heartbeat ({}), got {}",
                    humantime::format_duration(self.heartbeat),
                    humantime::format_duration(self.ttl)
                ),
            ));
        }
        if self.debounce > Duration::from_secs(10) {
            errors.push(FieldError::new("debounce", "must be at most 10s"));
        }
        FieldError::collect(errors)
    }

    /// The instance id in force.
    pub(crate) fn instance(&self) -> String {
        self.instance_id.clone().unwrap_or_else(default_instance)
    }
}

fn default_instance() -> String {
    let host = std::fs::read_to_string("/etc/hostname")
        .ok()
        .map(|h| h.trim().to_owned())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "host".to_owned());
    let host: String = host
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect();
    format!("{host}-{}", std::process::id())
}
