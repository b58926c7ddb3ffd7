//! Scheduler benchmarks (issue 20):
//! - `scheduler_schedule/10000_jobs`: registering 10,000 job handlers and scheduling each as
//!   a one-shot an hour ahead on a started scheduler (`Scheduler::job` + `run_at`: the
//!   handler map, the job table and the timer heap);
//! - `scheduler_lateness/p99_1000_due`: 1,000 jobs due at the same instant on a started
//!   scheduler (8 workers, system clock, multi-thread runtime); each handler records its
//!   start time minus its scheduled time; the measurement of one round is the 99th
//!   percentile of those 1,000 latenesses (criterion's median is the median of the rounds'
//!   p99). Target ≤ 5 ms on the 2-core machine.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::Utc;
use criterion::{BatchSize, Criterion, criterion_group, criterion_main};
use modular_scheduler::{JobContext, Scheduler};

fn schedule_10000(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let names: Vec<String> = (0..10_000).map(|i| format!("job-{i}")).collect();
    let mut group = c.benchmark_group("scheduler_schedule");
    group.sample_size(20);
    group.bench_function("10000_jobs", |b| {
        b.to_async(&rt).iter_batched(
            || {
                let scheduler = Scheduler::new();
                scheduler.start(None);
                scheduler
            },
            |scheduler| {
                let names = &names;
                async move {
                    let at = Utc::now() + chrono::Duration::hours(1);
                    for name in names {
                        scheduler.job(name.as_str(), |_ctx: JobContext| async { Ok(()) });
                        scheduler.run_at(name, at).unwrap();
                    }
                    scheduler
                }
            },
            BatchSize::PerIteration,
        );
    });
    group.finish();
}

fn lateness_p99(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let mut group = c.benchmark_group("scheduler_lateness");
    group.sample_size(10);
    group.bench_function("p99_1000_due", |b| {
        b.to_async(&rt).iter_custom(|iters| async move {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                total += one_round().await;
            }
            total
        });
    });
    group.finish();
}

/// 1,000 jobs due together; the p99 of start minus scheduled time.
async fn one_round() -> Duration {
    let scheduler = Scheduler::new();
    scheduler.set_workers(8);
    let late: Arc<Mutex<Vec<Duration>>> = Arc::new(Mutex::new(Vec::with_capacity(1000)));
    let at = Utc::now() + chrono::Duration::milliseconds(30);
    for i in 0..1000 {
        let late = Arc::clone(&late);
        let name = format!("due-{i}");
        scheduler.job(name.as_str(), move |ctx: JobContext| {
            let lateness = (Utc::now() - ctx.scheduled_at).to_std().unwrap_or_default();
            late.lock().unwrap().push(lateness);
            async { Ok(()) }
        });
        scheduler.run_at(&name, at).unwrap();
    }
    scheduler.start(None);
    let deadline = Instant::now() + Duration::from_secs(10);
    while late.lock().unwrap().len() < 1000 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    scheduler.stop(Duration::from_secs(1)).await;
    let mut late = late.lock().unwrap().clone();
    assert_eq!(late.len(), 1000, "every due job ran");
    late.sort();
    late[989]
}

criterion_group!(benches, schedule_10000, lateness_p99);
criterion_main!(benches);
