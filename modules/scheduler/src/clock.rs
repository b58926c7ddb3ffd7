//! [`Clock`]: wall-clock time for cron, and the tokio instant to sleep until.

use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio::time::Instant;

/// Where the scheduler reads "now".
///
/// [`Clock::System`] reads the system clock (production). [`Clock::starting_at`] derives wall
/// time from tokio's clock from a fixed start, so tests with `tokio::time::pause()` move cron
/// time by advancing tokio's clock (across a DST change, hours in milliseconds).
#[derive(Clone, Copy, Debug, Default)]
pub enum Clock {
    /// `Utc::now()`.
    #[default]
    System,
    /// `at` when tokio's clock read `since`.
    Anchored {
        /// The wall time at the anchor.
        at: DateTime<Utc>,
        /// Tokio's clock at the anchor.
        since: Instant,
    },
}

impl Clock {
    /// A clock that reads `at` now and moves with tokio's clock.
    pub fn starting_at(at: DateTime<Utc>) -> Self {
        Self::Anchored {
            at,
            since: Instant::now(),
        }
    }

    /// The wall time now.
    pub fn now(&self) -> DateTime<Utc> {
        match self {
            Self::System => Utc::now(),
            Self::Anchored { at, since } => {
                *at + chrono::Duration::from_std(since.elapsed()).unwrap_or(chrono::Duration::MAX)
            }
        }
    }

    /// The tokio instant at which the wall clock reads `at` (now, when `at` has passed).
    pub fn instant_of(&self, at: DateTime<Utc>) -> Instant {
        let now = self.now();
        let ahead = (at - now).to_std().unwrap_or(Duration::ZERO);
        Instant::now() + ahead
    }
}

/// Milliseconds since the epoch (the persisted form).
pub(crate) fn millis(at: DateTime<Utc>) -> i64 {
    at.timestamp_millis()
}

/// The time `ms` milliseconds after the epoch.
pub(crate) fn from_millis(ms: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_millis(ms).unwrap_or(DateTime::<Utc>::MIN_UTC)
}
