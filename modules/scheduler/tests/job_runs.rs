//! One run's policy on paused time: timeout, panic, retries with backoff, max_concurrent,
//! the worker pool, pause, resume and manual trigger.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::time::Duration;

use modular_scheduler::JobContext;
use serde_json::json;
use support::{Recorder, advance, fixture, section, utc};

struct SetOnDrop(Arc<AtomicBool>);
impl Drop for SetOnDrop {
    fn drop(&mut self) {
        self.0.store(true, Ordering::SeqCst);
    }
}

#[tokio::test(start_paused = true)]
async fn a_run_past_its_timeout_is_dropped_and_recorded_as_timed_out() {
    let dropped = Arc::new(AtomicBool::new(false));
    let finished = Arc::new(AtomicBool::new(false));
    let (d, fin) = (Arc::clone(&dropped), Arc::clone(&finished));
    let mut f = fixture(
        section(json!({ "slow": { "cron": "0 * * * * *", "timeout": "2s" } })),
        utc("2026-01-01T00:00:30Z"),
        move |m| {
            m.job("slow", move |_ctx: JobContext| {
                let guard = SetOnDrop(Arc::clone(&d));
                let fin = Arc::clone(&fin);
                async move {
                    let _guard = guard;
                    tokio::time::sleep(Duration::from_secs(10)).await;
                    fin.store(true, Ordering::SeqCst);
                    Ok(())
                }
            })
        },
    )
    .await;
    advance(Duration::from_secs(33)).await;
    assert!(dropped.load(Ordering::SeqCst), "the future was not dropped");
    assert!(!finished.load(Ordering::SeqCst));
    let failed = f.drain("job.failed");
    assert_eq!(failed.len(), 1, "{failed:?}");
    assert_eq!(failed[0]["outcome"], json!("timed_out"));
    assert_eq!(failed[0]["error"], json!("timed out after 2s"));
    let status = f.scheduler.status("slow").unwrap();
    assert_eq!(status.last_outcome.as_deref(), Some("timed_out"));
}

#[tokio::test(start_paused = true)]
async fn a_panicking_job_is_caught_and_the_scheduler_keeps_running() {
    let calls = Arc::new(AtomicU32::new(0));
    let c = Arc::clone(&calls);
    let mut f = fixture(
        section(json!({ "boom": { "cron": "* * * * * *" } })),
        utc("2026-01-01T00:00:00Z"),
        move |m| {
            m.job("boom", move |_ctx: JobContext| {
                let n = c.fetch_add(1, Ordering::SeqCst);
                async move {
                    if n == 0 {
                        panic!("first run explodes");
                    }
                    Ok(())
                }
            })
        },
    )
    .await;
    advance(Duration::from_millis(2500)).await;
    assert_eq!(calls.load(Ordering::SeqCst), 2);
    let failed = f.drain("job.failed");
    assert_eq!(failed[0]["outcome"], json!("panicked"));
    assert!(
        failed[0]["error"]
            .as_str()
            .unwrap()
            .contains("first run explodes")
    );
    let status = f.scheduler.status("boom").unwrap();
    assert_eq!(status.runs.get("panicked"), Some(&1));
    assert_eq!(status.runs.get("completed"), Some(&1));
}

#[tokio::test(start_paused = true)]
async fn a_failing_run_is_retried_with_exponential_backoff() {
    let jobs = Recorder::default();
    let mut f = fixture(
        section(json!({ "flaky": {
            "cron": "0 0 * * * *",
            "retry": { "max_attempts": 4, "initial_backoff": "1s", "multiplier": 2.0, "max_backoff": "3s" },
        } })),
        utc("2026-01-01T00:59:59Z"),
        |m| {
            m.job(
                "flaky",
                jobs.with(|ctx| if ctx.attempt < 4 { Err("not yet".into()) } else { Ok(()) }),
            )
        },
    )
    .await;
    advance(Duration::from_secs(20)).await;
    let calls = jobs.calls();
    assert_eq!(calls.len(), 4, "{calls:?}");
    let gaps: Vec<u64> = calls
        .windows(2)
        .map(|w| (w[1].at - w[0].at).as_secs())
        .collect();
    assert_eq!(gaps, [1, 2, 3], "1s, 2s, then capped at 3s");
    assert!(
        calls
            .iter()
            .all(|c| c.scheduled_at == utc("2026-01-01T01:00:00Z"))
    );
    let failed = f.drain("job.failed");
    assert_eq!(failed.len(), 3, "one per failed attempt, none final");
    assert_eq!(failed[0]["retry_in_ms"], json!(1000));
    assert_eq!(f.drain("job.completed").len(), 1);
    assert_eq!(f.scheduler.status("flaky").unwrap().consecutive_failures, 0);
}

#[tokio::test(start_paused = true)]
async fn an_occurrence_beyond_max_concurrent_is_missed() {
    let jobs = Recorder::default();
    let mut f = fixture(
        section(json!({ "long": { "cron": "* * * * * *", "max_concurrent": 1, "timeout": "1m" } })),
        utc("2026-01-01T00:00:00Z"),
        |m| m.job("long", jobs.sleeping(Duration::from_millis(2500))),
    )
    .await;
    advance(Duration::from_millis(4200)).await;
    // 00:01 runs until 00:03.5; 00:02 and 00:03 are missed; 00:04 runs.
    assert_eq!(
        jobs.scheduled(),
        [utc("2026-01-01T00:00:01Z"), utc("2026-01-01T00:00:04Z")]
    );
    let missed = f.drain("job.missed");
    assert_eq!(missed.len(), 2, "{missed:?}");
    assert!(
        missed
            .iter()
            .all(|m| m["reason"] == json!("max_concurrent"))
    );
}

#[tokio::test(start_paused = true)]
async fn the_pool_bounds_how_many_runs_execute_at_once() {
    let a = Recorder::default();
    let b = Recorder::default();
    let f = fixture(
        json!({ "scheduler": { "workers": 1, "jobs": {
            "a": { "cron": "0 * * * * *", "timeout": "1h" },
            "b": { "cron": "0 * * * * *", "timeout": "1h" },
        } } }),
        utc("2026-01-01T00:00:59Z"),
        |m| {
            m.job("a", a.sleeping(Duration::from_secs(10)))
                .job("b", b.sleeping(Duration::from_secs(10)))
        },
    )
    .await;
    advance(Duration::from_secs(2)).await;
    assert_eq!(f.scheduler.running(), 1);
    assert_eq!(f.scheduler.queue_depth(), 1);
    assert_eq!(a.count() + b.count(), 1);
    advance(Duration::from_secs(10)).await;
    assert_eq!(
        a.count() + b.count(),
        2,
        "the second ran when the first freed the worker"
    );
}

#[tokio::test(start_paused = true)]
async fn a_paused_job_skips_its_occurrences_until_resumed() {
    let jobs = Recorder::default();
    let f = fixture(
        section(json!({ "tick": { "cron": "* * * * * *" } })),
        utc("2026-01-01T00:00:00Z"),
        |m| m.job("tick", jobs.ok()),
    )
    .await;
    advance(Duration::from_millis(1500)).await;
    assert_eq!(jobs.count(), 1);
    f.scheduler.pause("tick").unwrap();
    assert!(f.scheduler.status("tick").unwrap().paused);
    advance(Duration::from_secs(3)).await;
    assert_eq!(jobs.count(), 1);
    f.scheduler.trigger("tick").unwrap();
    advance(Duration::from_millis(10)).await;
    assert_eq!(jobs.count(), 2, "a manual trigger runs a paused job");
    f.scheduler.resume("tick").unwrap();
    advance(Duration::from_secs(1)).await;
    assert_eq!(jobs.count(), 3);
    assert!(f.scheduler.pause("nobody").is_err());
}
