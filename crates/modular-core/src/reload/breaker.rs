//! The reload circuit breaker: stops a failing reload from being retried in a storm.

use std::time::Duration;

use tokio::time::Instant;

/// Closed, open until a time, or half-open (one trial allowed).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BreakerState {
    /// Reloads run.
    Closed,
    /// Reloads are refused until `until`.
    Open {
        /// When a trial may run.
        until: Instant,
    },
    /// One trial reload is running.
    HalfOpen,
}

/// Opens after `threshold` consecutive apply failures; stays open for a backoff that starts at
/// `base` and doubles with each further failure up to `max`; then lets one trial through.
#[derive(Clone, Debug)]
pub struct CircuitBreaker {
    threshold: u32,
    base: Duration,
    max: Duration,
    failures: u32,
    state: BreakerState,
}

/// What the breaker says about a reload request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Admission {
    /// Run normally.
    Closed,
    /// Run as the half-open trial.
    Trial,
    /// Refuse; retry after this long.
    Refused(Duration),
}

impl Default for CircuitBreaker {
    fn default() -> Self {
        Self::new(3, Duration::from_secs(2), Duration::from_secs(120))
    }
}

impl CircuitBreaker {
    /// A closed breaker.
    pub fn new(threshold: u32, base: Duration, max: Duration) -> Self {
        Self {
            threshold: threshold.max(1),
            base,
            max,
            failures: 0,
            state: BreakerState::Closed,
        }
    }

    /// The current state.
    pub fn state(&self) -> BreakerState {
        self.state
    }

    /// Consecutive failures so far.
    pub fn failures(&self) -> u32 {
        self.failures
    }

    /// Whether reloads are currently refused or on trial.
    pub fn is_open(&self) -> bool {
        !matches!(self.state, BreakerState::Closed)
    }

    /// Decides whether a reload may run at `now`.
    pub fn admit(&mut self, now: Instant) -> Admission {
        match self.state {
            BreakerState::Closed => Admission::Closed,
            BreakerState::HalfOpen => Admission::Trial,
            BreakerState::Open { until } if now >= until => {
                self.state = BreakerState::HalfOpen;
                crate::metrics::record_breaker(self.state);
                Admission::Trial
            }
            BreakerState::Open { until } => Admission::Refused(until - now),
        }
    }

    /// Records a successful apply: closes the breaker. Returns whether it was open.
    pub fn record_success(&mut self) -> bool {
        let was_open = self.is_open();
        self.failures = 0;
        self.state = BreakerState::Closed;
        if was_open {
            crate::metrics::record_breaker(self.state);
        }
        was_open
    }

    /// Records a failed apply at `now`. Returns the backoff when the breaker (re)opens.
    pub fn record_failure(&mut self, now: Instant) -> Option<Duration> {
        self.failures = self.failures.saturating_add(1);
        if self.failures < self.threshold {
            return None;
        }
        let backoff = self.backoff();
        self.state = BreakerState::Open {
            until: crate::util::deadline(now, backoff),
        };
        crate::metrics::record_breaker(self.state);
        Some(backoff)
    }

    /// The backoff for the current failure count: `base * 2^(failures - threshold)`, capped.
    pub fn backoff(&self) -> Duration {
        let exponent = self.failures.saturating_sub(self.threshold).min(30);
        self.base.saturating_mul(1u32 << exponent).min(self.max)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_backoff_of_duration_max_keeps_the_breaker_open_without_a_panic() {
        let mut breaker = CircuitBreaker::new(1, Duration::MAX, Duration::MAX);
        let now = Instant::now();
        assert_eq!(breaker.record_failure(now), Some(Duration::MAX));
        assert!(breaker.record_failure(now).is_some(), "doubling saturates");
        assert!(matches!(breaker.admit(now), Admission::Refused(_)));
    }

    #[tokio::test(start_paused = true)]
    async fn opens_after_three_failures_and_backs_off_doubling_to_the_cap() {
        let mut breaker = CircuitBreaker::default();
        let now = Instant::now();
        assert_eq!(breaker.record_failure(now), None);
        assert_eq!(breaker.record_failure(now), None);
        assert_eq!(breaker.record_failure(now), Some(Duration::from_secs(2)));
        assert_eq!(
            breaker.admit(now),
            Admission::Refused(Duration::from_secs(2))
        );
        assert_eq!(
            breaker.admit(now + Duration::from_secs(2)),
            Admission::Trial
        );
        assert_eq!(breaker.record_failure(now), Some(Duration::from_secs(4)));
        for _ in 0..10 {
            breaker.record_failure(now);
        }
        assert_eq!(breaker.backoff(), Duration::from_secs(120));
        assert!(breaker.record_success());
        assert_eq!(breaker.admit(now), Admission::Closed);
        assert_eq!(breaker.failures(), 0);
    }
}
