//! [`Backend`]: one upstream server and what the proxy knows about it: checked health
//! (with hysteresis), passive outlier ejection, the circuit breaker, requests in flight.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use serde_json::{Value, json};
use tokio::time::Instant;

use crate::config::{BreakerConfig, OutlierConfig};
use crate::metrics as m;

/// One backend of a pool. Kept across reloads when its pool keeps its URL, so its health
/// and breaker survive a change of weights or balancing.
#[derive(Debug)]
pub struct Backend {
    pool: String,
    pub(crate) authority: http::uri::Authority,
    /// Reached over TLS (an `https://` URL), through its pool's TLS client.
    pub(crate) https: bool,
    pub(crate) label: String,
    pub(crate) outstanding: AtomicUsize,
    pub(crate) requests: AtomicU64,
    /// Connections opened to it by the hot path's pool.
    pub(crate) connections: AtomicU64,
    /// Its idle keep-alive connections.
    pub(crate) idle: crate::upstream::IdleList<crate::upstream::Conn>,
    /// Its idle keep-alive connections of the module's own listener.
    pub(crate) fast_idle: crate::upstream::IdleList<crate::fast::FastConn>,
    state: Mutex<State>,
    /// Its series, registered once (see [`crate::metrics`]).
    pub(crate) breaker_series: metrics::Gauge,
    pub(crate) up_series: metrics::Gauge,
    pub(crate) active_series: metrics::Gauge,
}

#[derive(Debug)]
struct State {
    /// The active checks' verdict.
    up: bool,
    check_failures: u32,
    check_successes: u32,
    last_check: Option<chrono::DateTime<chrono::Utc>>,
    last_error: Option<String>,
    /// Passive: consecutive failures, ejections so far, ejected until.
    passive_failures: u32,
    ejections: u32,
    ejected_until: Option<Instant>,
    breaker: Breaker,
    breaker_failures: u32,
}

/// The breaker's state.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Breaker {
    /// Requests flow.
    Closed,
    /// No request until the instant; then one trial.
    Open(Instant),
    /// One trial is running; everything else waits for its verdict.
    HalfOpen,
}

/// What a finished attempt tells the backend.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Any answer below 500.
    Success,
    /// A 5xx answer: counts for outlier ejection, not for the breaker.
    ServerError,
    /// Connect error, reset or timeout: counts for both.
    Failure,
}

impl Outcome {
    /// The outcome of an answer with `status`.
    pub fn of(status: http::StatusCode) -> Self {
        if status.is_server_error() {
            Self::ServerError
        } else {
            Self::Success
        }
    }
}

/// What the balancer may do with a backend now.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Availability {
    /// Takes requests.
    Available,
    /// Its breaker's trial is due: it takes exactly one request, the trial.
    Trial,
    /// Takes no requests.
    Unavailable,
}

/// What changed in a backend's state, for events.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Transition {
    /// Marked up by checks.
    Up,
    /// Marked down by checks.
    Down,
    /// Ejected by outlier detection, for this long.
    Ejected(Duration),
    /// The breaker opened.
    BreakerOpened,
}

fn lock(m: &Mutex<State>) -> MutexGuard<'_, State> {
    // A poisoned state is a panic while updating plain counters; they are still usable.
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Backend {
    /// A backend of `pool` at `authority`, up.
    pub fn new(pool: &str, authority: http::uri::Authority) -> Self {
        let label = authority.to_string();
        Self {
            breaker_series: m::backend_gauge(m::BREAKER_STATE, pool, &label),
            up_series: m::backend_gauge(m::BACKEND_UP, pool, &label),
            active_series: m::backend_gauge(m::ACTIVE_REQUESTS, pool, &label),
            pool: pool.to_owned(),
            label,
            authority,
            https: false,
            outstanding: AtomicUsize::new(0),
            requests: AtomicU64::new(0),
            connections: AtomicU64::new(0),
            idle: crate::upstream::IdleList::default(),
            fast_idle: crate::upstream::IdleList::default(),
            state: Mutex::new(State {
                up: true,
                check_failures: 0,
                check_successes: 0,
                last_check: None,
                last_error: None,
                passive_failures: 0,
                ejections: 0,
                ejected_until: None,
                breaker: Breaker::Closed,
                breaker_failures: 0,
            }),
        }
    }

    /// The pool it belongs to.
    pub fn pool(&self) -> &str {
        &self.pool
    }

    /// `host:port`.
    pub fn label(&self) -> &str {
        &self.label
    }

    /// Requests sent to it so far.
    pub fn requests(&self) -> u64 {
        self.requests.load(Ordering::Relaxed)
    }

    /// Connections the proxy opened to it (a pooled connection is reused, so this grows
    /// with concurrency, not with requests).
    pub fn connections_opened(&self) -> u64 {
        self.connections.load(Ordering::Relaxed)
    }

    /// Requests in flight (until their response body ends).
    pub fn outstanding(&self) -> usize {
        self.outstanding.load(Ordering::Relaxed)
    }

    /// Whether the active checks hold it up.
    pub fn is_up(&self) -> bool {
        lock(&self.state).up
    }

    /// The breaker's state.
    pub fn breaker(&self) -> Breaker {
        lock(&self.state).breaker
    }

    /// Whether the balancer may choose it now.
    pub fn availability(&self, now: Instant) -> Availability {
        let state = lock(&self.state);
        if !state.up || state.ejected_until.is_some_and(|until| now < until) {
            return Availability::Unavailable;
        }
        match state.breaker {
            Breaker::Closed => Availability::Available,
            Breaker::Open(until) if now >= until => Availability::Trial,
            Breaker::Open(_) | Breaker::HalfOpen => Availability::Unavailable,
        }
    }

    /// Claims the breaker's trial; false when another request claimed it first.
    pub fn claim_trial(&self, now: Instant) -> bool {
        let mut state = lock(&self.state);
        match state.breaker {
            Breaker::Open(until) if now >= until => {
                state.breaker = Breaker::HalfOpen;
                true
            }
            Breaker::Closed => true,
            _ => false,
        }
    }

    /// When it may take requests again, if it is ejected or open.
    pub fn retry_after(&self, now: Instant) -> Option<Duration> {
        let state = lock(&self.state);
        let ejected = state
            .ejected_until
            .map(|u| u.saturating_duration_since(now));
        let open = match state.breaker {
            Breaker::Open(until) => Some(until.saturating_duration_since(now)),
            _ => None,
        };
        match (ejected, open) {
            (Some(a), Some(b)) => Some(a.max(b)),
            (a, b) => a.or(b),
        }
    }

    /// Records an attempt's outcome under the pool's outlier and breaker settings.
    pub fn record(
        &self,
        outcome: Outcome,
        outlier: &OutlierConfig,
        breaker: &BreakerConfig,
        now: Instant,
    ) -> Option<Transition> {
        let mut state = lock(&self.state);
        match outcome {
            Outcome::Success => {
                state.passive_failures = 0;
                state.breaker_failures = 0;
                if state.ejected_until.is_some_and(|until| now >= until) {
                    state.ejected_until = None;
                }
                if state.breaker != Breaker::Closed {
                    state.breaker = Breaker::Closed;
                }
                // A full ejection-free success run forgives earlier ejections slowly.
                None
            }
            Outcome::ServerError | Outcome::Failure => {
                let mut transition = None;
                if outcome == Outcome::Failure && breaker.failures > 0 {
                    state.breaker_failures += 1;
                    let trip = state.breaker == Breaker::HalfOpen
                        || state.breaker_failures >= breaker.failures;
                    if trip && !matches!(state.breaker, Breaker::Open(_)) {
                        state.breaker = Breaker::Open(now + breaker.open_for);
                        transition = Some(Transition::BreakerOpened);
                    }
                }
                state.passive_failures += 1;
                if outlier.consecutive_failures > 0
                    && state.passive_failures >= outlier.consecutive_failures
                    && state.ejected_until.is_none_or(|until| now >= until)
                {
                    let factor = 1u32 << state.ejections.min(16);
                    let length = outlier
                        .base_ejection
                        .saturating_mul(factor)
                        .min(outlier.max_ejection);
                    state.ejections += 1;
                    state.passive_failures = 0;
                    state.ejected_until = Some(now + length);
                    transition = Some(Transition::Ejected(length));
                }
                transition
            }
        }
    }

    /// Records an active check's result under the hysteresis thresholds.
    pub fn record_check(
        &self,
        passed: bool,
        error: Option<String>,
        unhealthy_threshold: u32,
        healthy_threshold: u32,
    ) -> Option<Transition> {
        let mut state = lock(&self.state);
        state.last_check = Some(chrono::Utc::now());
        state.last_error = error;
        if passed {
            state.check_failures = 0;
            state.check_successes += 1;
            if !state.up && state.check_successes >= healthy_threshold {
                state.up = true;
                // A backend that came back starts with a clean slate.
                state.ejected_until = None;
                state.ejections = 0;
                state.passive_failures = 0;
                state.breaker = Breaker::Closed;
                state.breaker_failures = 0;
                return Some(Transition::Up);
            }
        } else {
            state.check_successes = 0;
            state.check_failures += 1;
            if state.up && state.check_failures >= unhealthy_threshold {
                state.up = false;
                return Some(Transition::Down);
            }
        }
        None
    }

    /// A short state name: `up`, `down`, `ejected`, `open`, `half_open`.
    pub fn state_name(&self, now: Instant) -> &'static str {
        let state = lock(&self.state);
        if !state.up {
            "down"
        } else if state.ejected_until.is_some_and(|until| now < until) {
            "ejected"
        } else {
            match state.breaker {
                Breaker::Closed => "up",
                Breaker::Open(_) => "open",
                Breaker::HalfOpen => "half_open",
            }
        }
    }

    /// The per-backend details of the module's health report.
    pub fn details(&self, now: Instant) -> Value {
        let state_name = self.state_name(now);
        let state = lock(&self.state);
        let breaker = match state.breaker {
            Breaker::Closed => "closed",
            Breaker::Open(_) => "open",
            Breaker::HalfOpen => "half_open",
        };
        json!({
            "state": state_name,
            "breaker": breaker,
            "last_check": state.last_check.map(|t| t.to_rfc3339()),
            "last_error": state.last_error,
            "outstanding": self.outstanding(),
            "requests": self.requests(),
            "connections_opened": self.connections.load(Ordering::Relaxed),
            "ejections": state.ejections,
        })
    }

    /// 0 closed, 1 open, 2 half-open (the breaker gauge).
    pub fn breaker_gauge(&self) -> f64 {
        match lock(&self.state).breaker {
            Breaker::Closed => 0.0,
            Breaker::Open(_) => 1.0,
            Breaker::HalfOpen => 2.0,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn backend() -> Backend {
        Backend::new("p", http::uri::Authority::from_static("127.0.0.1:1"))
    }

    fn breaker(failures: u32) -> BreakerConfig {
        BreakerConfig {
            failures,
            open_for: Duration::from_secs(5),
        }
    }

    fn no_outlier() -> OutlierConfig {
        OutlierConfig {
            consecutive_failures: 0,
            ..OutlierConfig::default()
        }
    }

    #[tokio::test(start_paused = true)]
    async fn the_breaker_half_opens_for_one_trial_and_a_failed_trial_reopens_it() {
        let b = backend();
        let (outlier, breaker) = (no_outlier(), breaker(2));
        let now = Instant::now();
        b.record(Outcome::Failure, &outlier, &breaker, now);
        assert_eq!(b.availability(now), Availability::Available);
        let opened = b.record(Outcome::Failure, &outlier, &breaker, now);
        assert_eq!(opened, Some(Transition::BreakerOpened));
        assert_eq!(b.availability(now), Availability::Unavailable);

        tokio::time::advance(Duration::from_secs(5)).await;
        let later = Instant::now();
        assert_eq!(b.availability(later), Availability::Trial);
        assert!(b.claim_trial(later), "the first request is the trial");
        assert!(!b.claim_trial(later), "only one trial at a time");
        assert_eq!(b.availability(later), Availability::Unavailable);
        // One failed trial re-opens it at once (not after `failures` more).
        assert_eq!(
            b.record(Outcome::Failure, &outlier, &breaker, later),
            Some(Transition::BreakerOpened)
        );
        assert_eq!(b.breaker(), Breaker::Open(later + Duration::from_secs(5)));

        tokio::time::advance(Duration::from_secs(5)).await;
        let again = Instant::now();
        assert!(b.claim_trial(again));
        b.record(Outcome::Success, &outlier, &breaker, again);
        assert_eq!(b.breaker(), Breaker::Closed);
        assert_eq!(b.availability(again), Availability::Available);
    }

    #[tokio::test(start_paused = true)]
    async fn outlier_ejections_grow_and_end() {
        let b = backend();
        let outlier = OutlierConfig {
            consecutive_failures: 2,
            base_ejection: Duration::from_secs(1),
            max_ejection: Duration::from_secs(3),
        };
        let off = breaker(0);
        let mut lengths = Vec::new();
        for _ in 0..3 {
            let now = Instant::now();
            b.record(Outcome::ServerError, &outlier, &off, now);
            match b.record(Outcome::ServerError, &outlier, &off, now) {
                Some(Transition::Ejected(length)) => lengths.push(length),
                other => panic!("not ejected: {other:?}"),
            }
            assert_eq!(b.availability(now), Availability::Unavailable);
            tokio::time::advance(length_or(&lengths)).await;
            assert_eq!(b.availability(Instant::now()), Availability::Available);
        }
        assert_eq!(
            lengths,
            [1, 2, 3].map(Duration::from_secs),
            "doubling, capped at max_ejection"
        );
    }

    fn length_or(lengths: &[Duration]) -> Duration {
        lengths.last().copied().unwrap_or_default()
    }

    #[test]
    fn checks_mark_down_after_n_failures_and_up_after_m_successes() {
        let b = backend();
        assert_eq!(b.record_check(false, Some("503".into()), 3, 2), None);
        assert_eq!(b.record_check(false, None, 3, 2), None);
        assert!(b.is_up(), "two failures are not three");
        assert_eq!(b.record_check(false, None, 3, 2), Some(Transition::Down));
        assert_eq!(b.record_check(true, None, 3, 2), None);
        assert!(!b.is_up(), "one success is not two");
        assert_eq!(b.record_check(false, None, 3, 2), None, "the run restarts");
        assert_eq!(b.record_check(true, None, 3, 2), None);
        assert_eq!(b.record_check(true, None, 3, 2), Some(Transition::Up));
    }
}
