//! The built-in `runtime:scheduler` liveness check: is the tokio runtime still making progress?
//!
//! Two signals, both cheap:
//!
//! - **Blocked workers** (multi-thread runtimes). Every tokio worker publishes its park/unpark
//!   count and busy time when it parks and every 61 polls. A worker that is active (even
//!   park/unpark count) and has published nothing for longer than the stall threshold is stuck in
//!   one poll: a task is blocking its thread. This is sampled at every evaluation and on every
//!   ticker tick, so it works without the ticker and wherever the blocked task sits.
//! - **A late ticker** (any runtime, once `start_background` runs). A task ticks every quarter of
//!   the threshold; a tick later than the threshold, or no tick for longer than the threshold
//!   plus one period, means the scheduler is starved.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde_json::{Map, Value};
use tokio::runtime::{Handle, RuntimeFlavor};
use tokio::time::{Instant, MissedTickBehavior};
use tokio_util::sync::CancellationToken;

use super::aggregator::lock;
use super::options::Probes;
use super::types::{HealthReport, HealthStatus, Origin, duration_ms};

/// Module name of the built-in runtime check.
pub const RUNTIME_MODULE: &str = "runtime";
/// Component name of the built-in runtime check.
pub const RUNTIME_COMPONENT: &str = "scheduler";

/// Samples the runtime and remembers what it saw.
#[derive(Debug)]
pub(crate) struct RuntimeMonitor {
    threshold: Duration,
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    ticker: Option<Ticker>,
    workers: Vec<WorkerSample>,
}

#[derive(Clone, Copy, Debug)]
struct Ticker {
    last_tick: Instant,
    lateness: Duration,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct WorkerSample {
    park_unpark: u64,
    busy: Duration,
    changed_at: Instant,
}

/// What one sample concluded.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Verdict {
    pub(crate) status: HealthStatus,
    pub(crate) message: String,
    pub(crate) flavor: &'static str,
    pub(crate) workers: usize,
    pub(crate) tick_lateness: Option<Duration>,
}

impl RuntimeMonitor {
    pub(crate) fn new(threshold: Duration) -> Self {
        Self {
            threshold,
            state: Mutex::new(State::default()),
        }
    }

    /// The ticker's period: a quarter of the threshold, at least 10 ms.
    pub(crate) fn period(&self) -> Duration {
        (self.threshold / 4).max(Duration::from_millis(10))
    }

    /// Ticks until `cancel` fires, recording each tick's lateness.
    pub(crate) async fn run_ticker(self: Arc<Self>, cancel: CancellationToken) {
        let mut interval = tokio::time::interval(self.period());
        interval.set_missed_tick_behavior(MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                biased;
                () = cancel.cancelled() => break,
                scheduled = interval.tick() => self.record_tick(scheduled, Instant::now()),
            }
        }
        lock(&self.state).ticker = None;
    }

    /// Records a tick scheduled for `scheduled` that ran at `now`.
    pub(crate) fn record_tick(&self, scheduled: Instant, now: Instant) {
        let mut state = lock(&self.state);
        state.ticker = Some(Ticker {
            last_tick: now,
            lateness: now.saturating_duration_since(scheduled),
        });
        sample_workers(&mut state.workers, now);
    }

    /// Samples the runtime now and concludes.
    pub(crate) fn verdict(&self, now: Instant) -> Verdict {
        let mut state = lock(&self.state);
        let threshold = self.threshold;
        let (flavor, workers, stuck) = sample_workers(&mut state.workers, now);
        let blocked = over_threshold(stuck, threshold);
        let mut verdict = Verdict {
            status: HealthStatus::Healthy,
            message: String::new(),
            flavor,
            workers,
            tick_lateness: state.ticker.map(|t| t.lateness),
        };
        if let Some((worker, busy_for)) = blocked {
            verdict.status = HealthStatus::Unhealthy;
            verdict.message = format!(
                "tokio worker {worker} has been busy in one poll for {:?} (stall threshold {threshold:?})",
                round_ms(busy_for)
            );
        } else if let Some(ticker) = state.ticker {
            let silent = now.saturating_duration_since(ticker.last_tick);
            if silent > threshold + self.period() {
                verdict.status = HealthStatus::Unhealthy;
                verdict.message = format!(
                    "runtime ticker has not run for {:?} (stall threshold {threshold:?})",
                    round_ms(silent)
                );
            } else if ticker.lateness > threshold {
                verdict.status = HealthStatus::Unhealthy;
                verdict.message = format!(
                    "runtime ticker ran {:?} late (stall threshold {threshold:?})",
                    round_ms(ticker.lateness)
                );
            }
        }
        verdict
    }

    /// The `runtime:scheduler` report for an evaluation finishing at `now`.
    pub(crate) fn report(&self, now: Instant, checked_at: DateTime<Utc>) -> HealthReport {
        let verdict = self.verdict(now);
        let mut details = Map::new();
        details.insert("flavor".to_owned(), Value::from(verdict.flavor));
        details.insert("workers".to_owned(), Value::from(verdict.workers));
        details.insert(
            "stall_threshold_ms".to_owned(),
            Value::from(duration_ms::millis(self.threshold)),
        );
        if let Some(lateness) = verdict.tick_lateness {
            details.insert(
                "tick_lateness_ms".to_owned(),
                Value::from(duration_ms::millis(lateness)),
            );
        }
        let mut report = HealthReport::new(RUNTIME_MODULE, RUNTIME_COMPONENT, verdict.status)
            .with_message(verdict.message)
            .with_details(details)
            .with_probes(Probes::LIVENESS)
            .with_checked_at(checked_at);
        report.origin = Origin::Runtime;
        report
    }
}

fn round_ms(duration: Duration) -> Duration {
    Duration::from_millis(u64::try_from(duration.as_millis()).unwrap_or(u64::MAX))
}

/// Updates the per-worker samples from the current runtime; returns the flavor, the number of
/// workers, and the active worker that has published nothing for longest, with how long.
fn sample_workers(
    samples: &mut Vec<WorkerSample>,
    now: Instant,
) -> (&'static str, usize, Option<(usize, Duration)>) {
    let Ok(handle) = Handle::try_current() else {
        samples.clear();
        return ("none", 0, None);
    };
    let flavor = match handle.runtime_flavor() {
        RuntimeFlavor::MultiThread => "multi_thread",
        RuntimeFlavor::CurrentThread => {
            // The only worker is the thread running this check: it cannot be observed blocked.
            samples.clear();
            return ("current_thread", 1, None);
        }
        _ => "other",
    };
    let metrics = handle.metrics();
    let count = metrics.num_workers();
    if samples.len() != count {
        samples.clear();
    }
    let mut stuck: Option<(usize, Duration)> = None;
    for worker in 0..count {
        let Some((park_unpark, busy)) = worker_counters(&metrics, worker) else {
            samples.clear();
            return (flavor, count, None);
        };
        match samples.get_mut(worker) {
            Some(sample) if sample.park_unpark == park_unpark && sample.busy == busy => {
                // An even park/unpark count means the worker is not parked.
                let active = park_unpark % 2 == 0;
                let for_how_long = now.saturating_duration_since(sample.changed_at);
                if active && stuck.is_none_or(|(_, longest)| for_how_long > longest) {
                    stuck = Some((worker, for_how_long));
                }
            }
            Some(sample) => {
                *sample = WorkerSample {
                    park_unpark,
                    busy,
                    changed_at: now,
                };
            }
            None => samples.push(WorkerSample {
                park_unpark,
                busy,
                changed_at: now,
            }),
        }
    }
    (flavor, count, stuck)
}

/// Filters the stuck worker by the threshold.
fn over_threshold(
    stuck: Option<(usize, Duration)>,
    threshold: Duration,
) -> Option<(usize, Duration)> {
    stuck.filter(|(_, for_how_long)| *for_how_long > threshold)
}

#[cfg(target_has_atomic = "64")]
fn worker_counters(
    metrics: &tokio::runtime::RuntimeMetrics,
    worker: usize,
) -> Option<(u64, Duration)> {
    Some((
        metrics.worker_park_unpark_count(worker),
        metrics.worker_total_busy_duration(worker),
    ))
}

#[cfg(not(target_has_atomic = "64"))]
fn worker_counters(
    _metrics: &tokio::runtime::RuntimeMetrics,
    _worker: usize,
) -> Option<(u64, Duration)> {
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_late_tick_is_unhealthy_and_an_on_time_tick_clears_it() {
        let monitor = RuntimeMonitor::new(Duration::from_millis(100));
        let start = Instant::now();
        monitor.record_tick(start, start + Duration::from_millis(150));
        let verdict = monitor.verdict(start + Duration::from_millis(150));
        assert_eq!(verdict.status, HealthStatus::Unhealthy);
        assert_eq!(
            verdict.message,
            "runtime ticker ran 150ms late (stall threshold 100ms)"
        );
        monitor.record_tick(
            start + Duration::from_millis(175),
            start + Duration::from_millis(176),
        );
        assert_eq!(
            monitor.verdict(start + Duration::from_millis(180)).status,
            HealthStatus::Healthy
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_silent_ticker_is_unhealthy() {
        let monitor = RuntimeMonitor::new(Duration::from_millis(100));
        let start = Instant::now();
        monitor.record_tick(start, start);
        // threshold 100 ms + period 25 ms
        assert_eq!(
            monitor.verdict(start + Duration::from_millis(125)).status,
            HealthStatus::Healthy
        );
        let verdict = monitor.verdict(start + Duration::from_millis(126));
        assert_eq!(verdict.status, HealthStatus::Unhealthy);
        assert!(
            verdict
                .message
                .starts_with("runtime ticker has not run for 126ms"),
            "{}",
            verdict.message
        );
    }

    #[tokio::test(start_paused = true)]
    async fn the_ticker_records_ticks_and_forgets_them_when_cancelled() {
        let monitor = Arc::new(RuntimeMonitor::new(Duration::from_millis(100)));
        let cancel = CancellationToken::new();
        let task = tokio::spawn(Arc::clone(&monitor).run_ticker(cancel.clone()));
        tokio::time::sleep(Duration::from_millis(60)).await;
        let verdict = monitor.verdict(Instant::now());
        assert_eq!(verdict.status, HealthStatus::Healthy);
        assert_eq!(verdict.tick_lateness, Some(Duration::ZERO));
        cancel.cancel();
        task.await.unwrap();
        assert_eq!(monitor.verdict(Instant::now()).tick_lateness, None);
    }

    #[tokio::test]
    async fn current_thread_runtimes_are_not_sampled_per_worker() {
        let monitor = RuntimeMonitor::new(Duration::from_millis(100));
        let verdict = monitor.verdict(Instant::now());
        assert_eq!(verdict.flavor, "current_thread");
        assert_eq!(verdict.status, HealthStatus::Healthy);
    }
}
