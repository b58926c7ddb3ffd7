//! Persistence on SQLite through the database module's pool (core's live-handle seam), in
//! real time: an app-level restart runs nothing twice and follows the misfire policy for
//! the occurrences missed while down.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::collections::BTreeSet;
use std::time::Duration;

use serde_json::json;
use support::{Recorder, drain_of, persisted_app, wait_until};

fn sqlite_url(dir: &tempfile::TempDir) -> String {
    format!("sqlite://{}", dir.path().join("scheduler.db").display())
}

async fn restart_with(misfire: &str) -> (Recorder, Recorder, Vec<serde_json::Value>) {
    restart_after(misfire, 10, Duration::from_millis(2600)).await
}

/// Runs a 1 s job, stops the app, waits `down`, starts a second app on the same database.
async fn restart_after(
    misfire: &str,
    cap: u32,
    down: Duration,
) -> (Recorder, Recorder, Vec<serde_json::Value>) {
    let dir = tempfile::tempdir().unwrap();
    let url = sqlite_url(&dir);
    let jobs = json!({ "jobs": { "tick": {
        "cron": "* * * * * *", "misfire": misfire, "misfire_cap": cap, "tolerance": "300ms",
        "max_concurrent": 10,
    } } });
    let first = Recorder::default();
    let (mut app, _, _, _f1) =
        persisted_app(&url, jobs.clone(), |m| m.job("tick", first.ok())).await;
    assert!(wait_until(Duration::from_secs(10), || first.count() >= 2).await);
    app.stop().await.unwrap();
    let ran_before = first.count();
    // Down for `down` (a real restart: the occurrences pass on the wall clock).
    tokio::time::sleep(down).await;
    let second = Recorder::default();
    let (mut app, _scheduler, mut events, _f2) =
        persisted_app(&url, jobs, |m| m.job("tick", second.ok())).await;
    assert!(
        wait_until(Duration::from_secs(10), || second
            .calls()
            .iter()
            .any(|c| c.trigger == "cron"))
        .await
    );
    app.stop().await.unwrap();
    assert_eq!(
        first.count(),
        ran_before,
        "the first app ran nothing after stopping"
    );
    let missed = drain_of(&mut events, "job.missed");
    (first, second, missed)
}

fn no_occurrence_twice(first: &Recorder, second: &Recorder) {
    let all: Vec<_> = first
        .scheduled()
        .into_iter()
        .chain(second.scheduled())
        .collect();
    let unique: BTreeSet<_> = all.iter().collect();
    assert_eq!(unique.len(), all.len(), "an occurrence ran twice: {all:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_runs_nothing_twice_and_runs_the_latest_missed_occurrence_once() {
    let (first, second, missed) = restart_with("run_once").await;
    no_occurrence_twice(&first, &second);
    let misfires: Vec<_> = second
        .calls()
        .into_iter()
        .filter(|c| c.trigger == "misfire")
        .collect();
    assert_eq!(misfires.len(), 1, "{:?}", second.calls());
    let last_before = first.scheduled().into_iter().max().unwrap();
    assert!(misfires[0].scheduled_at > last_before);
    assert!(
        !missed.is_empty(),
        "the older missed occurrences are reported"
    );
    assert!(missed.iter().all(|m| m["reason"] == json!("misfire")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_with_skip_runs_none_of_the_missed_occurrences() {
    let (first, second, missed) = restart_with("skip").await;
    no_occurrence_twice(&first, &second);
    assert!(
        second.calls().iter().all(|c| c.trigger == "cron"),
        "{:?}",
        second.calls()
    );
    assert!(missed.len() >= 2, "{missed:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_with_run_all_runs_the_oldest_missed_occurrences_up_to_the_cap() {
    // Down for a little over four occurrences: at least four are missed, two run.
    let (first, second, missed) = restart_after("run_all", 2, Duration::from_millis(4600)).await;
    no_occurrence_twice(&first, &second);
    let mut misfires: Vec<_> = second
        .calls()
        .into_iter()
        .filter(|c| c.trigger == "misfire")
        .map(|c| c.scheduled_at)
        .collect();
    misfires.sort();
    assert_eq!(misfires.len(), 2, "the cap: {:?}", second.calls());
    let last_before = first.scheduled().into_iter().max().unwrap();
    assert!(
        misfires[0] > last_before,
        "{misfires:?} after {last_before}"
    );
    // Oldest first: the two that ran are the two right after the last run before the stop.
    assert_eq!(misfires[0] - last_before, chrono::Duration::seconds(1));
    assert_eq!(misfires[1] - misfires[0], chrono::Duration::seconds(1));
    let over_cap: Vec<chrono::DateTime<chrono::Utc>> = missed
        .iter()
        .filter(|m| m["reason"] == json!("misfire"))
        .map(|m| m["scheduled_at"].as_str().unwrap().parse().unwrap())
        .collect();
    assert!(
        over_cap.len() >= 2,
        "the rest are reported missed: {missed:?}"
    );
    assert!(over_cap.iter().all(|at| *at > misfires[1]), "{over_cap:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn runs_are_recorded_in_a_bounded_history() {
    let dir = tempfile::tempdir().unwrap();
    let jobs = Recorder::default();
    let (mut app, scheduler, _, _f) = persisted_app(
        &sqlite_url(&dir),
        json!({ "persistence": { "history": 2 }, "jobs": { "tick": { "cron": "* * * * * *" } } }),
        |m| m.job("tick", jobs.ok()),
    )
    .await;
    assert!(wait_until(Duration::from_secs(10), || jobs.count() >= 4).await);
    let history = scheduler.history("tick").await.unwrap();
    app.stop().await.unwrap();
    // Two kept, plus at most the one running when read.
    assert!((2..=3).contains(&history.len()), "{history:?}");
    assert!(
        history.iter().all(|(_, instance, status, _)| {
            Some(instance.as_str()) == scheduler.instance()
                && (status == "completed" || status == "running")
        }),
        "{history:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reload_of_the_history_bound_applies_to_the_next_trim() {
    let dir = tempfile::tempdir().unwrap();
    let url = sqlite_url(&dir);
    let jobs = Recorder::default();
    let section = |history: u32| json!({ "persistence": { "history": history }, "jobs": { "tick": { "cron": "* * * * * *" } } });
    let (mut app, scheduler, _, file) =
        persisted_app(&url, section(2), |m| m.job("tick", jobs.ok())).await;
    assert!(wait_until(Duration::from_secs(10), || jobs.count() >= 3).await);
    let kept = scheduler.history("tick").await.unwrap().len();
    assert!((2..=3).contains(&kept), "{kept}");
    // The same file with `history: 5`.
    let mut config: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&file.path).unwrap()).unwrap();
    config["scheduler"]["persistence"]["history"] = json!(5);
    file.write(&config);
    let outcome = app.reload().await.unwrap();
    assert_eq!(
        serde_json::to_value(&outcome).unwrap()["status"],
        json!("applied")
    );
    assert_eq!(scheduler.persistence_settings().unwrap().1, 5);
    let ran = jobs.count();
    assert!(wait_until(Duration::from_secs(15), || jobs.count() >= ran + 5).await);
    let kept = scheduler.history("tick").await.unwrap().len();
    app.stop().await.unwrap();
    assert!((5..=6).contains(&kept), "kept {kept} after the reload to 5");
}
