//! [`ProviderConfig`]: the `health` key a module reads from its own section to register its
//! provider (`database.health.timeout`, `router.health.optional`).

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::options::ProviderOptions;
use crate::config::FieldError;
use crate::util::format_duration;

/// The longest `health.timeout` a module accepts. A readiness probe waits for the slowest
/// provider, and orchestrators give up after a few seconds; a longer deadline is a mistake.
pub const MAX_PROVIDER_TIMEOUT: Duration = Duration::from_secs(60);

/// A module's health registration settings, read from its own section's `health` key and
/// reloadable: embed it as `#[config(nested)] health: ProviderConfig`, register with
/// [`options`](Self::options) in `init`, and pass the new section's options to
/// [`HealthAggregator::set_provider_options`](super::HealthAggregator::set_provider_options)
/// from the reload commit when a path under `health` changed.
///
/// Both fields are dynamic: they only change how the aggregator runs and folds the check, so a
/// new registration takes effect at the next check without touching the backend.
///
/// ```yaml
/// database:
///   health:
///     timeout: 2s      # unset: the module's own default; > 0s and at most 60s
///     optional: true   # a failure never fails readiness (default false)
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, crate::DynamicConfig)]
#[serde(default, deny_unknown_fields)]
#[config(validate = "Self::validate_config")]
pub struct ProviderConfig {
    /// The aggregator's deadline for the module's whole check; `None` (the default) keeps the
    /// module's own, which sits above its backend checks' deadlines.
    #[config(dynamic)]
    #[serde(with = "humantime_serde::option")]
    pub timeout: Option<Duration>,
    /// Whether a failure leaves every probe passing (it still counts for overall health).
    #[config(dynamic)]
    pub optional: bool,
}

impl ProviderConfig {
    /// The registration these settings describe: `timeout` (or `default_timeout` when unset)
    /// and `optional`; the other options keep their defaults (readiness only, inline).
    pub fn options(&self, default_timeout: Duration) -> ProviderOptions {
        ProviderOptions::new()
            .with_timeout(self.timeout.unwrap_or(default_timeout))
            .with_optional(self.optional)
    }

    /// `timeout`, when set, must be > 0s and at most [`MAX_PROVIDER_TIMEOUT`].
    pub fn validate_config(&self) -> Result<(), Vec<FieldError>> {
        let Some(timeout) = self.timeout else {
            return Ok(());
        };
        if timeout.is_zero() {
            return Err(vec![FieldError::new("timeout", "must be > 0s, got 0s")]);
        }
        if timeout > MAX_PROVIDER_TIMEOUT {
            return Err(vec![FieldError::new(
                "timeout",
                format!(
                    "must be at most {}, got {}",
                    format_duration(MAX_PROVIDER_TIMEOUT),
                    format_duration(timeout)
                ),
            )]);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::DynamicConfig as _;

    #[test]
    fn unset_timeout_keeps_the_module_default() {
        let config = ProviderConfig::default();
        let options = config.options(Duration::from_secs(3));
        assert_eq!(options.timeout, Duration::from_secs(3));
        assert!(!options.optional);
        assert_eq!(options.probes, super::super::Probes::READINESS);
    }

    #[test]
    fn set_fields_override_the_registration() {
        let config: ProviderConfig =
            serde_json::from_str(r#"{"timeout":"750ms","optional":true}"#).unwrap();
        let options = config.options(Duration::from_secs(3));
        assert_eq!(options.timeout, Duration::from_millis(750));
        assert!(options.optional);
    }

    #[test]
    fn zero_and_too_long_timeouts_are_rejected_with_their_path() {
        for (timeout, message) in [
            ("0s", "timeout: must be > 0s, got 0s"),
            ("2m", "timeout: must be at most 1m, got 2m"),
        ] {
            let config: ProviderConfig =
                serde_json::from_str(&format!(r#"{{"timeout":"{timeout}"}}"#)).unwrap();
            let errors = config.validate().unwrap_err();
            let shown: Vec<String> = errors.iter().map(ToString::to_string).collect();
            assert_eq!(shown, [message]);
        }
        let max: ProviderConfig = serde_json::from_str(r#"{"timeout":"60s"}"#).unwrap();
        assert!(max.validate().is_ok());
    }

    #[test]
    fn typos_are_rejected() {
        assert!(serde_json::from_str::<ProviderConfig>(r#"{"optionl":true}"#).is_err());
    }

    #[test]
    fn both_fields_diff_as_dynamic() {
        let old = ProviderConfig::default();
        let new = ProviderConfig {
            timeout: Some(Duration::from_secs(1)),
            optional: true,
        };
        let changes = old.diff(&new);
        let paths: Vec<&str> = changes.iter().map(|c| &*c.field_path).collect();
        assert_eq!(paths, ["timeout", "optional"]);
        assert!(changes.iter().all(|c| c.dynamic), "{changes:?}");
    }
}
