//! The `console` section.

use std::time::Duration;

use modular_core::{DynamicConfig, FieldError};
use serde::{Deserialize, Serialize};

/// The shortest poll interval: the page polls three endpoints per round, and a health answer
/// is cached for 250 ms by default anyway.
pub const MIN_POLL_INTERVAL: Duration = Duration::from_millis(100);
/// The most rows on one page of a table.
pub const MAX_PAGE_SIZE: usize = 1000;

/// The `console` section. Every field is dynamic: the handlers read it per request, so a
/// reload changes the next answer and the page picks it up on its next login or page load.
///
/// ```yaml
/// console:
///   enabled: true      # false: /admin/ui and its assets answer 404
///   poll_interval: 2s  # how often the page refreshes health, config and history
///   page_size: 50      # rows per page of the checks table and of the history table
/// ```
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, DynamicConfig)]
#[serde(deny_unknown_fields, default)]
#[config(validate = "Self::validate_config")]
pub struct ConsoleConfig {
    /// Whether the page is served.
    #[config(dynamic)]
    pub enabled: bool,
    /// How often the page polls.
    #[config(dynamic)]
    #[serde(with = "humantime_serde")]
    pub poll_interval: Duration,
    /// Rows per page of each table.
    #[config(dynamic)]
    pub page_size: usize,
}

impl Default for ConsoleConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            poll_interval: Duration::from_secs(2),
            page_size: 50,
        }
    }
}

impl ConsoleConfig {
    fn validate_config(&self) -> Result<(), Vec<FieldError>> {
        let mut errors = Vec::new();
        if self.poll_interval < MIN_POLL_INTERVAL {
            errors.push(FieldError::new(
                "poll_interval",
                format!(
                    "must be at least {}ms, got {}ms",
                    MIN_POLL_INTERVAL.as_millis(),
                    self.poll_interval.as_millis()
                ),
            ));
        }
        if self.page_size == 0 || self.page_size > MAX_PAGE_SIZE {
            errors.push(FieldError::new(
                "page_size",
                format!(
                    "must be between 1 and {MAX_PAGE_SIZE}, got {}",
                    self.page_size
                ),
            ));
        }
        if errors.is_empty() {
            Ok(())
        } else {
            Err(errors)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn errors(config: &ConsoleConfig) -> Vec<String> {
        let mut out = Vec::new();
        config.validate_into(None, &mut out);
        out.iter()
            .map(|e| format!("{}: {}", e.path, e.message))
            .collect()
    }

    #[test]
    fn the_defaults_are_valid() {
        assert!(errors(&ConsoleConfig::default()).is_empty());
    }

    #[test]
    fn a_zero_page_size_and_a_too_short_interval_are_rejected_by_path() {
        let config = ConsoleConfig {
            poll_interval: Duration::from_millis(10),
            page_size: 0,
            ..ConsoleConfig::default()
        };
        assert_eq!(
            errors(&config),
            [
                "poll_interval: must be at least 100ms, got 10ms",
                "page_size: must be between 1 and 1000, got 0"
            ]
        );
    }

    #[test]
    fn every_field_is_dynamic() {
        let changed = ConsoleConfig {
            enabled: false,
            poll_interval: Duration::from_secs(5),
            page_size: 10,
        };
        let changes = ConsoleConfig::default().diff(&changed);
        assert_eq!(changes.len(), 3);
        assert!(changes.iter().all(|c| c.dynamic));
    }
}
