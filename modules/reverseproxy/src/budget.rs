//! [`RetryBudget`]: retries allowed as a fraction of the requests of a recent window, so a
//! failing pool is not hit with a multiple of its traffic.

use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use tokio::time::Instant;

/// The window the budget counts over.
const WINDOW: Duration = Duration::from_secs(10);

/// Retries always allowed per window, so a quiet service can still retry.
const MIN_RETRIES: u64 = 3;

/// Requests and retries of the current and the previous window.
#[derive(Debug)]
pub struct RetryBudget {
    state: Mutex<Windows>,
}

#[derive(Debug)]
struct Windows {
    started: Instant,
    requests: u64,
    retries: u64,
    previous_requests: u64,
    previous_retries: u64,
}

impl Default for RetryBudget {
    fn default() -> Self {
        Self::new()
    }
}

impl RetryBudget {
    /// An empty budget.
    pub fn new() -> Self {
        Self {
            state: Mutex::new(Windows {
                started: Instant::now(),
                requests: 0,
                retries: 0,
                previous_requests: 0,
                previous_retries: 0,
            }),
        }
    }

    fn roll(w: &mut Windows, now: Instant) {
        let elapsed = now.saturating_duration_since(w.started);
        if elapsed >= WINDOW * 2 {
            *w = Windows {
                started: now,
                requests: 0,
                retries: 0,
                previous_requests: 0,
                previous_retries: 0,
            };
        } else if elapsed >= WINDOW {
            w.previous_requests = w.requests;
            w.previous_retries = w.retries;
            w.requests = 0;
            w.retries = 0;
            w.started += WINDOW;
        }
    }

    /// Counts a request.
    pub fn record_request(&self, now: Instant) {
        let mut w = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        Self::roll(&mut w, now);
        w.requests += 1;
    }

    /// Takes one retry from the budget; false when `ratio` of the recent requests were
    /// retries already.
    pub fn try_retry(&self, now: Instant, ratio: f64) -> bool {
        let mut w = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        Self::roll(&mut w, now);
        let requests = (w.requests + w.previous_requests) as f64;
        let retries = w.retries + w.previous_retries;
        let allowed = ((requests * ratio) as u64).max(MIN_RETRIES);
        if retries >= allowed {
            return false;
        }
        w.retries += 1;
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn retries_stop_at_the_ratio_and_return_with_a_new_window() {
        let budget = RetryBudget::new();
        let now = Instant::now();
        for _ in 0..100 {
            budget.record_request(now);
        }
        let granted = (0..50).filter(|_| budget.try_retry(now, 0.2)).count();
        assert_eq!(granted, 20);
        let later = now + WINDOW * 3;
        budget.record_request(later);
        assert!(budget.try_retry(later, 0.2), "the minimum is allowed again");
    }
}
