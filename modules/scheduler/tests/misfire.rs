//! Misfire policies on paused time: the process stalls (tokio's clock jumps), several
//! occurrences come due at once, and those more than `tolerance` late follow the policy.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde_json::json;
use support::{Recorder, fixture, section, settle, utc};

/// Runs a 1 s cron job with `misfire` (and `cap`), stalls 5.6 s after 00:00:00.5, returns the
/// (scheduled_at, trigger) runs and the missed occurrences.
async fn stall(misfire: &str, cap: u32) -> (Vec<(DateTime<Utc>, String)>, Vec<String>) {
    let jobs = Recorder::default();
    let mut f = fixture(
        section(json!({ "tick": {
            "cron": "* * * * * *", "tolerance": "1s", "misfire": misfire, "misfire_cap": cap,
            // Catch-up runs count against max_concurrent like any other.
            "max_concurrent": 10,
        } })),
        utc("2026-01-01T00:00:00.500Z"),
        |m| m.job("tick", jobs.ok()),
    )
    .await;
    settle().await;
    // A stall: the clock jumps to 00:00:06.1 before the timer gets to run.
    tokio::time::advance(Duration::from_millis(5600)).await;
    settle().await;
    tokio::time::sleep(Duration::from_millis(1)).await;
    settle().await;
    let runs = jobs
        .calls()
        .into_iter()
        .map(|c| (c.scheduled_at, c.trigger))
        .collect();
    let missed = f
        .drain("job.missed")
        .iter()
        .map(|m| m["scheduled_at"].as_str().unwrap().to_owned())
        .collect();
    (runs, missed)
}

fn at(s: u32) -> DateTime<Utc> {
    utc(&format!("2026-01-01T00:00:{s:02}Z"))
}

#[tokio::test(start_paused = true)]
async fn skip_runs_none_of_the_late_occurrences() {
    let (runs, missed) = stall("skip", 10).await;
    assert_eq!(runs, [(at(6), "cron".to_owned())], "only the one on time");
    assert_eq!(missed.len(), 5, "{missed:?}");
}

#[tokio::test(start_paused = true)]
async fn run_once_runs_the_latest_late_occurrence_once() {
    let (runs, missed) = stall("run_once", 10).await;
    assert_eq!(
        runs,
        [(at(5), "misfire".to_owned()), (at(6), "cron".to_owned())]
    );
    assert_eq!(missed.len(), 4, "{missed:?}");
}

#[tokio::test(start_paused = true)]
async fn run_all_runs_the_late_occurrences_up_to_the_cap() {
    let (runs, missed) = stall("run_all", 3).await;
    let mut scheduled: Vec<DateTime<Utc>> = runs.iter().map(|r| r.0).collect();
    scheduled.sort();
    assert_eq!(scheduled, [at(1), at(2), at(3), at(6)]);
    assert_eq!(missed.len(), 2, "{missed:?}");
}
