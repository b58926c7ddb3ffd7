//! The built-in runtime liveness check and provider isolation, on real threads.
//!
//! These tests block OS threads on purpose, so they run on real time. Their stall threshold is
//! the default 1 s, which an OS that deschedules a thread on a loaded machine does not reach; a
//! blocked thread stays blocked until the test releases it rather than for a set time; and
//! their timing assertions are one-sided (at least the time a thread was blocked), so a slow
//! machine cannot make them fail.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use modular_core::events::EventBus;
use modular_core::health::{
    AggregatedHealth, HealthAggregator, HealthContext, HealthError, HealthOptions, HealthProvider,
    HealthReport, HealthStatus, Isolation, ProviderOptions, RUNTIME_COMPONENT, RUNTIME_MODULE,
};

/// Blocks its thread (not the async way) for `block`, or until `release` is set when given,
/// then reports healthy.
struct ThreadBlocker {
    block: Duration,
    release: Option<Arc<AtomicBool>>,
}

#[async_trait::async_trait]
impl HealthProvider for ThreadBlocker {
    async fn health_check(&self, ctx: &HealthContext) -> Result<Vec<HealthReport>, HealthError> {
        match &self.release {
            Some(release) => {
                while !release.load(Ordering::Acquire) {
                    std::thread::sleep(Duration::from_millis(5));
                }
            }
            None => std::thread::sleep(self.block),
        }
        Ok(vec![ctx.report(HealthStatus::Healthy)])
    }
}

fn runtime_report(health: &AggregatedHealth) -> &HealthReport {
    health
        .report(RUNTIME_MODULE, RUNTIME_COMPONENT)
        .expect("the runtime check is on by default")
}

/// Force-refreshes until `done` holds for the answer or `limit` passes; returns the last answer.
async fn refresh_until(
    aggregator: &HealthAggregator,
    limit: Duration,
    done: impl Fn(&AggregatedHealth) -> bool,
) -> Arc<AggregatedHealth> {
    let started = Instant::now();
    loop {
        let health = aggregator.force_refresh().await;
        if done(&health) || started.elapsed() > limit {
            return health;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_blocked_worker_turns_liveness_unhealthy_until_it_is_released() {
    let options = HealthOptions::default().with_runtime_stall_threshold(Duration::from_secs(1));
    let aggregator = HealthAggregator::new(options, EventBus::new());

    // Idle workers are parked: not stalled.
    let idle = aggregator.force_refresh().await;
    assert_eq!(
        idle.liveness,
        HealthStatus::Healthy,
        "{:?}",
        runtime_report(&idle)
    );
    assert_eq!(runtime_report(&idle).details["workers"], 2);

    let release = Arc::new(AtomicBool::new(false));
    let blocker = tokio::spawn({
        let release = Arc::clone(&release);
        async move {
            // Holds one worker thread inside a single poll until released.
            while !release.load(Ordering::Acquire) {
                std::thread::sleep(Duration::from_millis(5));
            }
        }
    });

    let stalled = refresh_until(&aggregator, Duration::from_secs(10), |h| {
        h.liveness == HealthStatus::Unhealthy
    })
    .await;
    release.store(true, Ordering::Release);
    blocker.await.unwrap();

    assert_eq!(
        stalled.liveness,
        HealthStatus::Unhealthy,
        "{:?}",
        runtime_report(&stalled)
    );
    let report = runtime_report(&stalled);
    assert!(
        report.message.contains("has been busy in one poll for")
            && report.message.contains("stall threshold 1s"),
        "{}",
        report.message
    );
    // Liveness only: readiness is untouched by a stalled runtime.
    assert_eq!(stalled.readiness, HealthStatus::Healthy);

    let recovered = refresh_until(&aggregator, Duration::from_secs(10), |h| {
        h.liveness == HealthStatus::Healthy
    })
    .await;
    assert_eq!(
        recovered.liveness,
        HealthStatus::Healthy,
        "{:?}",
        runtime_report(&recovered)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn busy_but_yielding_workers_are_not_stalled() {
    let threshold = Duration::from_secs(1);
    let options = HealthOptions::default().with_runtime_stall_threshold(threshold);
    let aggregator = HealthAggregator::new(options, EventBus::new());
    let stop = Arc::new(AtomicBool::new(false));
    let busy: Vec<_> = (0..4)
        .map(|_| {
            let stop = Arc::clone(&stop);
            tokio::spawn(async move {
                while !stop.load(Ordering::Acquire) {
                    tokio::task::yield_now().await;
                }
            })
        })
        .collect();
    // Busy for well past the threshold: only a check that looks at single polls, not at how
    // long a worker has gone without parking, stays healthy.
    let started = Instant::now();
    while started.elapsed() < threshold * 5 / 2 {
        let health = aggregator.force_refresh().await;
        assert_eq!(
            health.liveness,
            HealthStatus::Healthy,
            "{:?}",
            runtime_report(&health)
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    stop.store(true, Ordering::Release);
    for task in busy {
        task.await.unwrap();
    }
}

#[tokio::test(flavor = "current_thread")]
async fn an_inline_provider_that_blocks_its_thread_delays_the_whole_check() {
    // The documented trade-off of polling in one task: a thread-blocking provider holds the
    // thread, so neither the other providers nor its own timeout can run until it returns.
    let aggregator = HealthAggregator::new(
        HealthOptions::default().with_runtime_check(false),
        EventBus::new(),
    );
    aggregator.register_health_provider(
        "blocker",
        Arc::new(ThreadBlocker {
            block: Duration::from_millis(300),
            release: None,
        }),
        ProviderOptions::default().with_timeout(Duration::from_millis(50)),
    );
    let started = Instant::now();
    let health = aggregator.check().await;
    assert!(started.elapsed() >= Duration::from_millis(300));
    // It answered on its first poll, before the timeout was ever polled.
    assert_eq!(
        health.report("blocker", "blocker").unwrap().status,
        HealthStatus::Healthy
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_blocking_isolated_provider_cannot_delay_the_others() {
    let aggregator = HealthAggregator::new(
        HealthOptions::default().with_runtime_check(false),
        EventBus::new(),
    );
    let release = Arc::new(AtomicBool::new(false));
    aggregator.register_health_provider(
        "blocker",
        Arc::new(ThreadBlocker {
            block: Duration::ZERO,
            release: Some(Arc::clone(&release)),
        }),
        ProviderOptions::default()
            .with_timeout(Duration::from_millis(100))
            .with_isolation(Isolation::Blocking),
    );
    aggregator.register_health_provider(
        "fast",
        Arc::new(modular_core::health::static_provider(HealthStatus::Healthy)),
        ProviderOptions::default(),
    );

    // The blocked thread is held until the end of the test: a check that waited for it would
    // never answer.
    let health = tokio::time::timeout(Duration::from_secs(60), aggregator.force_refresh())
        .await
        .expect("the check waited for the blocked thread");
    let blocked = health.report("blocker", "blocker").unwrap();
    assert_eq!(blocked.status, HealthStatus::Unhealthy);
    assert_eq!(blocked.message, "timed out after 100ms");
    assert_eq!(
        health.report("fast", "fast").unwrap().status,
        HealthStatus::Healthy
    );

    // The blocked thread is not piled up on: the next check reports it still running.
    let again = aggregator.force_refresh().await;
    assert_eq!(
        again.report("blocker", "blocker").unwrap().message,
        "previous check is still running"
    );
    release.store(true, Ordering::Release);
}
