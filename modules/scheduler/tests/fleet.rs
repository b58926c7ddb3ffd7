//! Once per fleet on the real PostgreSQL and MariaDB: three app instances in one process
//! share the database and run each occurrence exactly once; a killed lease holder's run is
//! taken over once its lease expires.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::type_complexity)]

mod support;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::{DateTime, DurationRound, Utc};
use modular_scheduler::JobContext;
use modular_testkit::Service;
use serde_json::json;
use support::{persisted_app, wait_until};

/// A job name no earlier run used (the tables outlive test runs).
fn unique(prefix: &str) -> String {
    let nanos = Utc::now().timestamp_nanos_opt().unwrap_or_default();
    format!("{prefix}_{nanos}_{}", std::process::id())
}

type Runs = Arc<Mutex<Vec<(DateTime<Utc>, usize)>>>;

fn recording(
    runs: &Runs,
    instance: usize,
    takes: Duration,
) -> impl Fn(
    JobContext,
)
    -> std::pin::Pin<Box<dyn std::future::Future<Output = modular_scheduler::JobResult> + Send>>
+ Send
+ Sync
+ 'static {
    let runs = Arc::clone(runs);
    move |ctx: JobContext| {
        runs.lock().unwrap().push((ctx.scheduled_at, instance));
        Box::pin(async move {
            tokio::time::sleep(takes).await;
            Ok(())
        })
    }
}

async fn three_instances_run_each_occurrence_once(url: String) {
    let job = unique("fleet");
    let runs: Runs = Arc::default();
    let mut apps = Vec::new();
    for instance in 0..3 {
        let handler = recording(&runs, instance, Duration::from_secs(1));
        let job = job.clone();
        let section = json!({ "persistence": {
            "instance": format!("instance-{instance}"), "history": 5,
        } });
        let mut s = section;
        support::merge(
            &mut s,
            json!({ "jobs": { job.clone(): {
            "cron": "* * * * * *", "max_concurrent": 3, "timeout": "10s",
        } } }),
        );
        apps.push(persisted_app(&url, s, move |m| m.job(job, handler)).await);
    }
    let distinct = || {
        let runs = runs.lock().unwrap();
        runs.iter()
            .map(|r| r.0)
            .collect::<std::collections::BTreeSet<_>>()
            .len()
    };
    assert!(
        wait_until(Duration::from_secs(40), || distinct() >= 23).await,
        "{}",
        distinct()
    );
    // The run history is bounded on this driver too: 5 kept of 23 and more, plus at most
    // the runs going (a row is inserted at the claim, trimmed when a run finishes).
    let history = apps[0].1.history(&job).await.unwrap();
    assert!((5..=8).contains(&history.len()), "{history:?}");
    for (app, ..) in &mut apps {
        app.stop().await.unwrap();
    }
    let runs = runs.lock().unwrap().clone();
    let mut per_occurrence: BTreeMap<DateTime<Utc>, Vec<usize>> = BTreeMap::new();
    for (at, instance) in &runs {
        per_occurrence.entry(*at).or_default().push(*instance);
    }
    // 20 whole occurrences in the middle of the window (all instances were up for them).
    let middle: Vec<_> = per_occurrence.iter().skip(2).take(20).collect();
    assert_eq!(middle.len(), 20);
    let runs_of_20: usize = middle.iter().map(|(_, i)| i.len()).sum();
    assert_eq!(
        runs_of_20, 20,
        "20 occurrences ran {runs_of_20} times: {middle:?}"
    );
    assert!(
        per_occurrence.values().all(|i| i.len() == 1),
        "an occurrence ran twice: {per_occurrence:?}"
    );
    let consecutive = middle
        .windows(2)
        .all(|w| *w[1].0 - *w[0].0 == chrono::Duration::seconds(1));
    assert!(consecutive, "an occurrence was skipped: {middle:?}");
}

/// One app instance on its own thread and runtime, killed by shutting that runtime down
/// (its tasks are dropped mid-run, nothing is cleaned up: a crash).
struct Instance {
    kill: Option<std::sync::mpsc::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Instance {
    fn spawn(url: String, job: String, at: DateTime<Utc>, index: usize, runs: Runs) -> Self {
        let (kill, killed) = std::sync::mpsc::channel::<()>();
        let (ready, is_ready) = std::sync::mpsc::channel::<()>();
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(1)
                .enable_all()
                .build()
                .unwrap();
            let app = rt.block_on(async {
                let handler = recording(&runs, index, Duration::from_secs(30));
                let section = json!({
                    "persistence": { "instance": format!("instance-{index}"), "lease": "1s" },
                });
                let (app, scheduler, _, file) =
                    persisted_app(&url, section, move |m| m.job(job.clone(), handler)).await;
                let name = scheduler.handler_names()[0].clone();
                scheduler.run_at(&name, at).unwrap();
                (app, file)
            });
            let _ = ready.send(());
            let _ = killed.recv();
            rt.shutdown_background();
            // The crash left the application behind; dropping it would need its runtime.
            std::mem::forget(app);
        });
        let _ = is_ready.recv();
        Self {
            kill: Some(kill),
            thread: Some(thread),
        }
    }

    fn kill(&mut self) {
        if let Some(kill) = self.kill.take() {
            let _ = kill.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl Drop for Instance {
    fn drop(&mut self) {
        self.kill();
    }
}

async fn a_killed_holders_run_is_taken_over_after_its_lease_expires(url: String) {
    let job = unique("takeover");
    let runs: Runs = Arc::default();
    let at = (Utc::now() + chrono::Duration::seconds(2))
        .duration_trunc(chrono::Duration::seconds(1))
        .unwrap();
    let mut instances: Vec<Instance> = (0..2)
        .map(|i| Instance::spawn(url.clone(), job.clone(), at, i, Arc::clone(&runs)))
        .collect();
    assert!(wait_until(Duration::from_secs(10), || !runs.lock().unwrap().is_empty()).await);
    let holder = runs.lock().unwrap()[0].1;
    let killed_at = Instant::now();
    instances[holder].kill();
    assert!(
        wait_until(Duration::from_secs(10), || runs.lock().unwrap().len() >= 2).await,
        "no takeover"
    );
    let took = killed_at.elapsed();
    let runs = runs.lock().unwrap().clone();
    assert_eq!(runs.len(), 2, "{runs:?}");
    assert_eq!(runs[1].0, at, "the same occurrence");
    assert_ne!(runs[1].1, holder, "another instance took it over");
    // The holder renewed its 1 s lease at most a third of it before the kill, so the lease
    // lapses no sooner than ~650 ms after it: a takeover before 500 ms ignored the lease.
    assert!(
        took >= Duration::from_millis(500),
        "taken over before the lease lapsed: {took:?}"
    );
    drop(instances);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_three_instances_run_each_occurrence_exactly_once() {
    let Some(url) = modular_testkit::service(Service::Postgres) else {
        return;
    };
    three_instances_run_each_occurrence_once(url).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mariadb_three_instances_run_each_occurrence_exactly_once() {
    let Some(url) = modular_testkit::service(Service::Mysql) else {
        return;
    };
    three_instances_run_each_occurrence_once(url).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_a_killed_holder_is_taken_over_after_the_lease() {
    let Some(url) = modular_testkit::service(Service::Postgres) else {
        return;
    };
    a_killed_holders_run_is_taken_over_after_its_lease_expires(url).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mariadb_a_killed_holder_is_taken_over_after_the_lease() {
    let Some(url) = modular_testkit::service(Service::Mysql) else {
        return;
    };
    a_killed_holders_run_is_taken_over_after_its_lease_expires(url).await;
}
