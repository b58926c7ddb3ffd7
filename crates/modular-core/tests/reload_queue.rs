//! The reload request queue: bounded, with bursts coalesced so no caller is left without an
//! outcome; and the bounded history.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use modular_core::reload::{ReloadOptions, ReloadOrchestrator, ReloadTarget};
use modular_core::{ReloadStatus, ReloadTrigger};
use serde_json::json;
use support::reload::{Journal, Recorder, fixture, quiet_options, store_with};

/// Yields until `started` callers have called in, then a little more so they park.
async fn settle(started: &AtomicUsize, count: usize) {
    while started.load(Ordering::SeqCst) < count {
        tokio::task::yield_now().await;
    }
    for _ in 0..16 {
        tokio::task::yield_now().await;
    }
}

#[tokio::test(start_paused = true)]
async fn a_burst_of_ten_thousand_reloads_queues_one_request_and_answers_every_caller() {
    let store = store_with(&["slow"]);
    let journal = Journal::default();
    // Paused time: the 4 s prepare (under its 5 s timeout) holds the worker until every caller has parked.
    let recorder = Recorder::with_delay("slow", &journal, Duration::from_secs(4));
    let orchestrator = ReloadOrchestrator::new(
        store.clone(),
        vec![ReloadTarget {
            module: "slow".to_owned(),
            reloadable: Some(recorder),
        }],
        modular_core::events::EventBus::new(),
        None,
        quiet_options(),
    );
    store.set_overrides([("slow.level".to_owned(), json!(2))].into());
    let first = tokio::spawn({
        let o = orchestrator.clone();
        async move { o.reload(ReloadTrigger::Programmatic).await }
    });
    while journal.calls().is_empty() {
        tokio::task::yield_now().await;
    }
    store.set_overrides([("slow.level".to_owned(), json!(3))].into());
    let started = Arc::new(AtomicUsize::new(0));
    let burst: Vec<_> = (0..10_000)
        .map(|_| {
            let o = orchestrator.clone();
            let started = Arc::clone(&started);
            tokio::spawn(async move {
                started.fetch_add(1, Ordering::SeqCst);
                o.reload(ReloadTrigger::File).await
            })
        })
        .collect();
    settle(&started, 10_000).await;
    assert!(
        orchestrator.queued_requests() <= 1,
        "{} requests queued while one reload ran",
        orchestrator.queued_requests()
    );

    assert_eq!(first.await.unwrap().status, ReloadStatus::Applied);
    let mut answered = 0;
    for caller in burst {
        let outcome = caller.await.unwrap();
        assert_eq!(outcome.status, ReloadStatus::Applied, "{outcome:?}");
        answered += 1;
    }
    assert_eq!(answered, 10_000);
    assert_eq!(journal.calls().len(), 2, "the burst shared one reload");
    assert_eq!(
        journal.calls()[1].level,
        Some(3),
        "the shared reload read the newest sources"
    );
    assert_eq!(orchestrator.queued_requests(), 0);
}

#[tokio::test]
async fn history_keeps_the_newest_twenty_versions_by_default() {
    let f = fixture(&[("a", support::reload::Behaviour::Succeed)]);
    assert_eq!(ReloadOptions::default().history, quiet_options().history);
    for level in 2..=21 {
        f.set_source(&[("a.level", json!(level))]);
        let outcome = f.orchestrator.reload(ReloadTrigger::Programmatic).await;
        assert_eq!(outcome.status, ReloadStatus::Applied, "{outcome:?}");
    }
    // Versions 1 (initial) to 21: 21 versions, the oldest dropped.
    let versions: Vec<u64> = f.orchestrator.history().iter().map(|e| e.version).collect();
    assert_eq!(versions, (2..=21).collect::<Vec<u64>>());
    let missing = f.orchestrator.rollback(1).await;
    assert_eq!(missing.status, ReloadStatus::Rejected, "{missing:?}");
}
