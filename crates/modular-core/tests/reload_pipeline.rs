//! The reload pipeline, driven through a standalone `ReloadOrchestrator`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use modular_core::events::{EventFilter, event_data};
use modular_core::reload::{ReloadOptions, StaticPolicy};
use modular_core::{ChangeType, ReloadStatus, ReloadTrigger};
use serde_json::json;
use support::reload::{Behaviour, fixture, fixture_with, quiet_options};

#[tokio::test]
async fn a_dynamic_change_reaches_only_its_module_with_typed_values() {
    let f = fixture(&[("a", Behaviour::Succeed), ("b", Behaviour::Succeed)]);
    f.set_source(&[("a.level", json!(7))]);
    let outcome = f.orchestrator.reload(ReloadTrigger::Programmatic).await;
    assert_eq!(outcome.status, ReloadStatus::Applied, "{outcome:?}");
    assert_eq!(outcome.version, 2);
    assert_eq!(outcome.reloaded, vec!["a"]);
    let calls = f.journal.calls();
    assert_eq!(calls.len(), 1);
    assert_eq!(calls[0].module, "a");
    assert_eq!(calls[0].level, Some(7));
    assert_eq!(calls[0].changes.len(), 1);
    let change = &calls[0].changes[0];
    assert_eq!(change.field_path, "level");
    assert_eq!(change.section, "a");
    assert_eq!(change.new_as::<u32>(), Some(7));
    assert_eq!(change.old_as::<u32>(), Some(1));
    assert_eq!(f.level("a"), 7, "the handle holds the committed value");
}

#[tokio::test]
async fn modules_prepare_in_dependency_order_and_a_failure_drops_every_prepared_state() {
    let f = fixture(&[
        ("base", Behaviour::Succeed),
        ("middle", Behaviour::Succeed),
        ("top", Behaviour::Fail),
    ]);
    f.set_source(&[
        ("base.level", json!(2)),
        ("middle.level", json!(3)),
        ("top.level", json!(4)),
    ]);
    let outcome = f.orchestrator.reload(ReloadTrigger::Programmatic).await;
    assert_eq!(outcome.status, ReloadStatus::Failed);
    assert_eq!(outcome.failed_module.as_deref(), Some("top"));
    // Prepared in dependency order, aborted in reverse; nothing was committed, so nothing is
    // rolled back and no undo hook ran.
    assert_eq!(
        f.journal.modules(),
        vec![
            ("base".to_owned(), false),
            ("middle".to_owned(), false),
            ("top".to_owned(), false),
        ]
    );
    assert_eq!(outcome.aborted, vec!["middle", "base"]);
    assert_eq!(
        f.journal.phases(),
        vec![("middle".to_owned(), "abort"), ("base".to_owned(), "abort")]
    );
    assert!(outcome.rolled_back.is_empty(), "{outcome:?}");
    assert!(outcome.rollback_errors.is_empty(), "{outcome:?}");
    assert_eq!(
        f.recorders[0].live(),
        (1, 1),
        "base's live resource is the same generation"
    );
    assert_eq!(f.recorders[1].live(), (1, 1));
    assert_eq!(f.level("base"), 1, "nothing was committed");
    assert_eq!(f.orchestrator.version(), 1);
}

#[tokio::test]
async fn every_module_commits_only_after_all_have_prepared() {
    let f = fixture(&[("base", Behaviour::Succeed), ("top", Behaviour::Succeed)]);
    f.set_source(&[("base.level", json!(2)), ("top.level", json!(3))]);
    let outcome = f.orchestrator.reload(ReloadTrigger::Programmatic).await;
    assert_eq!(outcome.status, ReloadStatus::Applied, "{outcome:?}");
    assert_eq!(
        f.journal.phases(),
        vec![("base".to_owned(), "commit"), ("top".to_owned(), "commit")]
    );
    assert_eq!(f.recorders[0].live(), (2, 2));
    assert_eq!(f.recorders[1].live(), (3, 2));
    assert!(outcome.aborted.is_empty());
}

#[tokio::test]
async fn an_in_place_module_is_undone_with_the_inverse_changes_and_the_previous_section() {
    let f = fixture(&[("base", Behaviour::InPlace), ("top", Behaviour::Fail)]);
    f.set_source(&[("base.level", json!(2)), ("top.level", json!(4))]);
    let outcome = f.orchestrator.reload(ReloadTrigger::Programmatic).await;
    assert_eq!(outcome.status, ReloadStatus::Failed);
    assert_eq!(outcome.rolled_back, vec!["base"]);
    let calls = f.journal.calls();
    let applied = &calls[0];
    let undone = calls.iter().find(|c| c.rollback).expect("undo");
    assert_eq!(
        undone.changes,
        applied
            .changes
            .iter()
            .rev()
            .map(|c| c.inverse())
            .collect::<Vec<_>>()
    );
    assert_eq!(undone.level, Some(1));
    assert_eq!(f.recorders[0].live().0, 1, "undone to the previous level");
    assert_eq!(f.orchestrator.version(), 1);
}

#[tokio::test(start_paused = true)]
async fn a_module_that_ignores_cancellation_is_cut_off_at_its_timeout() {
    let f = fixture(&[("first", Behaviour::Succeed), ("stuck", Behaviour::Hang)]);
    f.set_source(&[("first.level", json!(2)), ("stuck.level", json!(2))]);
    let started = tokio::time::Instant::now();
    let outcome = f.orchestrator.reload(ReloadTrigger::Programmatic).await;
    assert_eq!(outcome.status, ReloadStatus::Failed);
    assert_eq!(outcome.failed_module.as_deref(), Some("stuck"));
    assert!(
        outcome
            .error
            .as_deref()
            .unwrap_or_default()
            .contains("timed out after 5s"),
        "{outcome:?}"
    );
    assert_eq!(outcome.aborted, vec!["first"]);
    assert!(outcome.rolled_back.is_empty());
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_secs(5) && waited < Duration::from_secs(6),
        "{waited:?}"
    );
}

#[tokio::test]
async fn a_panicking_module_fails_the_reload_and_the_orchestrator_keeps_serving() {
    let f = fixture(&[("ok", Behaviour::Succeed), ("boom", Behaviour::Panic)]);
    f.set_source(&[("ok.level", json!(2)), ("boom.level", json!(2))]);
    let outcome = f.orchestrator.reload(ReloadTrigger::Programmatic).await;
    assert_eq!(outcome.status, ReloadStatus::Failed);
    assert!(
        outcome
            .error
            .as_deref()
            .unwrap_or_default()
            .contains("panicked: boom exploded"),
        "{outcome:?}"
    );
    assert_eq!(outcome.aborted, vec!["ok"]);
    assert_eq!(
        f.recorders[0].live(),
        (1, 1),
        "ok's prepared state never went live"
    );

    f.recorders[1].set(Behaviour::Succeed);
    let next = f.orchestrator.reload(ReloadTrigger::Programmatic).await;
    assert_eq!(next.status, ReloadStatus::Applied, "{next:?}");
    assert_eq!(next.reloaded, vec!["ok", "boom"]);
}

#[tokio::test]
async fn an_invalid_value_is_rejected_with_path_and_source_and_nothing_changes() {
    let f = fixture(&[("a", Behaviour::Succeed)]);
    f.set_source(&[
        ("a.level", json!(500)),
        ("a.label", json!(["not", "a", "string"])),
    ]);
    let outcome = f.orchestrator.reload(ReloadTrigger::Programmatic).await;
    assert_eq!(outcome.status, ReloadStatus::Rejected);
    assert!(f.journal.calls().is_empty());
    assert_eq!(f.level("a"), 1);
    let label = outcome
        .errors
        .iter()
        .find(|e| e.path == "a.label")
        .unwrap_or_else(|| panic!("{:?}", outcome.errors));
    assert!(label.message.contains("invalid type"), "{label:?}");
    assert_eq!(label.source, "override");
    assert!(f.orchestrator.last_rejected().is_some());
}

#[tokio::test]
async fn a_validation_hook_failure_names_its_path() {
    let f = fixture(&[("a", Behaviour::Succeed)]);
    f.set_source(&[("a.level", json!(500))]);
    let outcome = f.orchestrator.reload(ReloadTrigger::Programmatic).await;
    assert_eq!(outcome.status, ReloadStatus::Rejected);
    assert_eq!(outcome.errors.len(), 1, "{:?}", outcome.errors);
    assert_eq!(outcome.errors[0].path, "a.level");
    assert_eq!(outcome.errors[0].message, "must be <= 100, got 500");
    assert_eq!(outcome.errors[0].source, "override");
}

#[tokio::test]
async fn a_static_change_is_refused_as_restart_required() {
    let f = fixture(&[("a", Behaviour::Succeed)]);
    f.set_source(&[("a.port", json!(9090)), ("a.level", json!(3))]);
    let outcome = f.orchestrator.reload(ReloadTrigger::Programmatic).await;
    assert_eq!(outcome.status, ReloadStatus::Rejected);
    assert_eq!(outcome.error.as_deref(), Some("restart required: a.port"));
    assert_eq!(outcome.static_changes, vec!["a.port"]);
    assert!(f.journal.calls().is_empty());
    assert_eq!(f.level("a"), 1);
}

#[tokio::test]
async fn apply_dynamic_policy_applies_dynamic_changes_and_keeps_static_ones_pending() {
    let options = ReloadOptions {
        static_policy: StaticPolicy::ApplyDynamic,
        ..quiet_options()
    };
    let f = fixture_with(&[("a", Behaviour::Succeed)], options);
    f.set_source(&[("a.port", json!(9090)), ("a.level", json!(3))]);
    let outcome = f.orchestrator.reload(ReloadTrigger::Programmatic).await;
    assert_eq!(outcome.status, ReloadStatus::Applied, "{outcome:?}");
    assert_eq!(outcome.pending_restart, vec!["a.port"]);
    let calls = f.journal.calls();
    assert_eq!(
        calls[0].changes.len(),
        1,
        "the module sees only dynamic changes"
    );
    assert_eq!(calls[0].changes[0].field_path, "level");
    assert_eq!(f.orchestrator.pending_restart(), vec!["a.port"]);

    // Putting the static value back clears the pending restart.
    f.set_source(&[("a.port", json!(8080))]);
    let back = f.orchestrator.reload(ReloadTrigger::Programmatic).await;
    assert_eq!(back.status, ReloadStatus::Applied);
    assert!(back.pending_restart.is_empty(), "{back:?}");
}

#[tokio::test]
async fn a_module_that_cannot_reload_is_skipped_and_retried_next_time() {
    let f = fixture(&[("busy", Behaviour::Busy), ("free", Behaviour::Succeed)]);
    f.set_source(&[("busy.level", json!(5)), ("free.level", json!(5))]);
    let outcome = f.orchestrator.reload(ReloadTrigger::Programmatic).await;
    assert_eq!(outcome.status, ReloadStatus::Applied);
    assert_eq!(outcome.skipped, vec!["busy"]);
    assert_eq!(outcome.reloaded, vec!["free"]);

    f.recorders[0].set(Behaviour::Succeed);
    f.set_source(&[("free.level", json!(6))]);
    let retry = f.orchestrator.reload(ReloadTrigger::Programmatic).await;
    assert_eq!(retry.reloaded, vec!["busy", "free"], "{retry:?}");
    let busy_call = f
        .journal
        .calls()
        .into_iter()
        .find(|c| c.module == "busy")
        .expect("busy reloaded");
    assert_eq!(busy_call.changes.len(), 1);
    assert_eq!(busy_call.changes[0].new_as::<u32>(), Some(5));
    assert_eq!(busy_call.changes[0].old_as::<u32>(), Some(1));
}

#[tokio::test]
async fn no_change_is_a_noop_that_calls_no_module() {
    let f = fixture(&[("a", Behaviour::Succeed)]);
    let mut events = f
        .events
        .subscribe(EventFilter::prefix("com.modular.config.reload."));
    let outcome = f.orchestrator.reload(ReloadTrigger::Programmatic).await;
    assert_eq!(outcome.status, ReloadStatus::Noop);
    assert!(f.journal.calls().is_empty());
    let event = events.recv().await.expect("event");
    assert_eq!(
        cloudevents::AttributesReader::ty(&event),
        "com.modular.config.reload.noop"
    );
    assert_eq!(event_data(&event).expect("data")["version"], json!(1));
}

#[tokio::test]
async fn a_dry_run_reports_the_plan_and_applies_nothing() {
    let f = fixture(&[("a", Behaviour::Succeed), ("b", Behaviour::Succeed)]);
    f.set_source(&[("b.level", json!(9)), ("a.level", json!(8))]);
    let plan = f.orchestrator.plan(ReloadTrigger::Admin, None).await;
    assert!(plan.dry_run);
    assert_eq!(
        plan.status,
        ReloadStatus::Planned,
        "a plan never reads as applied"
    );
    assert_eq!(plan.trigger, ReloadTrigger::Admin);
    assert_eq!(
        serde_json::to_value(&plan).unwrap()["status"],
        json!("planned")
    );
    assert_eq!(plan.plan, vec!["a", "b"]);
    assert!(f.journal.calls().is_empty());
    assert_eq!(f.orchestrator.version(), 1);
    assert_eq!(f.level("a"), 1);

    let candidate = f
        .orchestrator
        .plan(
            ReloadTrigger::Programmatic,
            Some((
                modular_core::config::TextFormat::Yaml,
                "a:\n  port: 1\n".to_owned(),
            )),
        )
        .await;
    assert_eq!(candidate.status, ReloadStatus::Rejected);
    assert_eq!(candidate.static_changes, vec!["a.port"]);
}

#[tokio::test]
async fn history_records_versions_and_redacted_diffs_and_rollback_returns_to_a_version() {
    let f = fixture(&[("a", Behaviour::Succeed)]);
    f.set_source(&[
        ("a.level", json!(2)),
        ("a.token", json!("s3cr3t-token")),
        ("a.password", json!("pw-2")),
    ]);
    assert_eq!(
        f.orchestrator
            .reload(ReloadTrigger::Programmatic)
            .await
            .status,
        ReloadStatus::Applied
    );
    f.set_source(&[("a.level", json!(3))]);
    assert_eq!(
        f.orchestrator
            .reload(ReloadTrigger::Programmatic)
            .await
            .status,
        ReloadStatus::Applied
    );

    let history = f.orchestrator.history();
    assert_eq!(
        history.iter().map(|h| h.version).collect::<Vec<_>>(),
        vec![1, 2, 3]
    );
    let text = serde_json::to_string(&history).unwrap();
    assert!(!text.contains("s3cr3t-token"), "{text}");
    assert!(!text.contains("pw-2"), "{text}");
    assert!(text.contains("[REDACTED]"), "{text}");

    let back = f.orchestrator.rollback(1).await;
    assert_eq!(back.status, ReloadStatus::Applied, "{back:?}");
    assert_eq!(back.trigger, ReloadTrigger::Rollback);
    assert_eq!(back.version, 4);
    assert_eq!(f.level("a"), 1);
    let missing = f.orchestrator.rollback(99).await;
    assert_eq!(missing.status, ReloadStatus::Rejected);
}

#[tokio::test]
async fn set_overrides_merges_every_key_in_one_reload_and_a_rejected_batch_changes_nothing() {
    let f = fixture(&[("a", Behaviour::Succeed), ("b", Behaviour::Succeed)]);
    let first = f.orchestrator.set_override("a.label", json!("kept")).await;
    assert_eq!(first.status, ReloadStatus::Applied, "{first:?}");
    let both = f
        .orchestrator
        .set_overrides(
            ReloadTrigger::Admin,
            [
                ("a.level".to_owned(), json!(5)),
                ("b.level".to_owned(), json!(6)),
            ]
            .into(),
        )
        .await;
    assert_eq!(both.status, ReloadStatus::Applied, "{both:?}");
    assert_eq!(both.trigger, ReloadTrigger::Admin);
    assert_eq!(both.version, 3, "one reload for both keys");
    assert_eq!((f.level("a"), f.level("b")), (5, 6));
    assert_eq!(
        f.store.overrides().keys().collect::<Vec<_>>(),
        vec!["a.label", "a.level", "b.level"],
        "merged: the earlier key stays"
    );

    let before = f.store.overrides();
    let bad = f
        .orchestrator
        .set_overrides(
            ReloadTrigger::Admin,
            [
                ("a.level".to_owned(), json!(7)),
                ("b.level".to_owned(), json!(1000)),
            ]
            .into(),
        )
        .await;
    assert_eq!(bad.status, ReloadStatus::Rejected, "{bad:?}");
    assert_eq!(
        f.store.overrides(),
        before,
        "a rejected batch is withdrawn whole"
    );
    assert_eq!((f.level("a"), f.level("b")), (5, 6));
}

#[tokio::test]
async fn removing_one_override_or_all_of_them_reloads_without_them() {
    let f = fixture(&[("a", Behaviour::Succeed)]);
    let set = f
        .orchestrator
        .set_overrides(
            ReloadTrigger::Admin,
            [
                ("a.level".to_owned(), json!(5)),
                ("a.label".to_owned(), json!("x")),
            ]
            .into(),
        )
        .await;
    assert_eq!(set.status, ReloadStatus::Applied, "{set:?}");
    let removed = f
        .orchestrator
        .remove_override(ReloadTrigger::Admin, "a.level")
        .await;
    assert_eq!(removed.status, ReloadStatus::Applied, "{removed:?}");
    assert_eq!(removed.trigger, ReloadTrigger::Admin);
    assert_eq!(f.level("a"), 1);
    assert_eq!(
        f.store.overrides().keys().collect::<Vec<_>>(),
        vec!["a.label"]
    );
    let cleared = f.orchestrator.clear_overrides(ReloadTrigger::Admin).await;
    assert_eq!(cleared.status, ReloadStatus::Applied, "{cleared:?}");
    assert!(f.store.overrides().is_empty());
    let again = f.orchestrator.clear_overrides(ReloadTrigger::Admin).await;
    assert_eq!(again.status, ReloadStatus::Noop, "{again:?}");
}

#[tokio::test]
async fn the_overrides_view_redacts_sensitive_and_secret_fields() {
    let f = fixture(&[("a", Behaviour::Succeed)]);
    f.set_source(&[
        ("a.level", json!(4)),
        ("a.token", json!("tok-s3cr3t")),
        ("a.password", json!("pw-s3cr3t")),
        ("a", json!({ "token": "nested-s3cr3t", "label": "shown" })),
        ("elsewhere.key", json!("plain")),
    ]);
    let view = f.store.redacted_overrides();
    let text = serde_json::to_string(&view).unwrap();
    assert!(!text.contains("s3cr3t"), "{text}");
    assert_eq!(view["a.level"], json!(4));
    assert_eq!(view["a.token"], json!("[REDACTED]"));
    assert_eq!(view["a.password"], json!("[REDACTED]"));
    assert_eq!(
        view["a"],
        json!({ "token": "[REDACTED]", "label": "shown" })
    );
    assert_eq!(view["elsewhere.key"], json!("plain"));
}

#[tokio::test]
async fn a_rollback_to_a_version_before_an_override_withdraws_the_override() {
    let f = fixture(&[("a", Behaviour::Succeed)]);
    let set = f.orchestrator.set_override("a.level", json!(10)).await;
    assert_eq!(set.status, ReloadStatus::Applied, "{set:?}");
    let back = f.orchestrator.rollback(1).await;
    assert_eq!(back.status, ReloadStatus::Applied, "{back:?}");
    assert_eq!(f.level("a"), 1);
    assert!(f.store.overrides().is_empty(), "{:?}", f.store.overrides());
    let again = f.orchestrator.reload(ReloadTrigger::Programmatic).await;
    assert_eq!(again.status, ReloadStatus::Noop, "{again:?}");
    assert_eq!(
        f.level("a"),
        1,
        "the plain reload did not bring the override back"
    );

    // Forward again: a rollback to the override's version restores it.
    let forward = f.orchestrator.rollback(2).await;
    assert_eq!(forward.status, ReloadStatus::Applied, "{forward:?}");
    assert_eq!(f.store.overrides()["a.level"], json!(10));
    assert_eq!(
        f.orchestrator
            .reload(ReloadTrigger::Programmatic)
            .await
            .status,
        ReloadStatus::Noop
    );
}

#[tokio::test]
async fn a_rejected_override_is_withdrawn() {
    let f = fixture(&[("a", Behaviour::Succeed)]);
    let bad = f.orchestrator.set_override("a.level", json!(1000)).await;
    assert_eq!(bad.status, ReloadStatus::Rejected);
    assert!(f.store.overrides().is_empty());
    let good = f.orchestrator.set_override("a.level", json!(10)).await;
    assert_eq!(good.status, ReloadStatus::Applied);
    assert_eq!(good.trigger, ReloadTrigger::Override);
    assert_eq!(f.level("a"), 10);
}

#[tokio::test]
async fn concurrent_requests_are_coalesced_and_reloads_never_overlap() {
    let journal_delay = Duration::from_millis(20);
    let store = support::reload::store_with(&["slow"]);
    let journal = support::reload::Journal::default();
    let recorder = support::reload::Recorder::with_delay("slow", &journal, journal_delay);
    let orchestrator = modular_core::reload::ReloadOrchestrator::new(
        store.clone(),
        vec![modular_core::reload::ReloadTarget {
            module: "slow".to_owned(),
            reloadable: Some(recorder),
        }],
        modular_core::events::EventBus::new(),
        None,
        quiet_options(),
    );
    let mut handles = Vec::new();
    for i in 0..10u32 {
        store.set_overrides(std::collections::BTreeMap::from([(
            "slow.level".to_owned(),
            json!(i + 2),
        )]));
        let o = orchestrator.clone();
        handles.push(tokio::spawn(async move {
            o.reload(ReloadTrigger::Programmatic).await
        }));
    }
    let mut outcomes = Vec::new();
    for h in handles {
        outcomes.push(h.await.unwrap());
    }
    assert_eq!(outcomes.len(), 10);
    assert!(
        outcomes
            .iter()
            .all(|o| o.status == ReloadStatus::Applied || o.status == ReloadStatus::Noop)
    );
    assert_eq!(
        journal.max_running.load(Ordering::SeqCst),
        1,
        "reloads overlapped"
    );
    let reloads = journal.calls().len();
    assert!((1..=2).contains(&reloads), "{reloads} reloads ran");
    let last = store.sections()[0]
        .current()
        .downcast::<support::reload::ModuleConfig>()
        .unwrap();
    assert_eq!(last.level, 11, "the newest source state won");
}

#[tokio::test]
async fn events_follow_the_pipeline() {
    let f = fixture(&[("a", Behaviour::Succeed), ("b", Behaviour::Fail)]);
    let mut events = f
        .events
        .subscribe(EventFilter::prefix("com.modular.config.reload."));
    f.set_source(&[("a.level", json!(2))]);
    f.orchestrator.reload(ReloadTrigger::Admin).await;
    f.set_source(&[("a.level", json!(3)), ("b.level", json!(2))]);
    f.orchestrator.reload(ReloadTrigger::Admin).await;
    let got: Vec<(String, serde_json::Value)> = events
        .drain()
        .iter()
        .map(|e| {
            (
                cloudevents::AttributesReader::ty(e).to_owned(),
                event_data(e).cloned().unwrap_or_default(),
            )
        })
        .collect();
    let types: Vec<&str> = got.iter().map(|(t, _)| t.as_str()).collect();
    assert_eq!(
        types,
        vec![
            "com.modular.config.reload.started",
            "com.modular.config.reload.completed",
            "com.modular.config.reload.started",
            "com.modular.config.reload.failed",
        ]
    );
    assert_eq!(got[0].1["summary"], json!("1 modified"));
    assert_eq!(got[1].1["reloaded"], json!(["a"]));
    assert_eq!(got[1].1["trigger"], json!("admin"));
    assert_eq!(got[3].1["failed_module"], json!("b"));
    assert_eq!(got[3].1["aborted"], json!(["a"]));
    assert_eq!(got[3].1["rolled_back"], json!([]));
    assert_eq!(got[3].1["rollback_errors"], json!([]));
}

#[tokio::test]
async fn sensitive_values_are_redacted_in_outcomes_but_readable_by_modules() {
    let f = fixture(&[("a", Behaviour::Succeed)]);
    f.set_source(&[
        ("a.token", json!("tok-new-1234")),
        ("a.password", json!("pw-new")),
    ]);
    let outcome = f.orchestrator.reload(ReloadTrigger::Programmatic).await;
    assert_eq!(outcome.status, ReloadStatus::Applied);
    let json = serde_json::to_string(&outcome).unwrap();
    assert!(
        !json.contains("tok-new-1234") && !json.contains("pw-new"),
        "{json}"
    );
    assert!(!format!("{outcome:?}").contains("tok-new-1234"));
    let calls = f.journal.calls();
    let token = calls[0]
        .changes
        .iter()
        .find(|c| c.field_path == "token")
        .unwrap();
    assert_eq!(token.new_as::<String>().as_deref(), Some("tok-new-1234"));
    assert_eq!(token.change_type, ChangeType::Modified);
    let password = calls[0]
        .changes
        .iter()
        .find(|c| c.field_path == "password")
        .unwrap();
    assert_eq!(
        password.new_as::<String>(),
        None,
        "secrets carry fingerprints only"
    );
    let typed = f.store.sections()[0]
        .current()
        .downcast::<support::reload::ModuleConfig>()
        .unwrap();
    assert_eq!(typed.password.expose(), "pw-new");
    let _ = Arc::strong_count(&typed);
}

#[tokio::test(start_paused = true)]
async fn a_half_open_trial_that_finds_nothing_to_apply_closes_the_breaker() {
    let f = fixture(&[("a", Behaviour::Fail)]);
    let mut events = f
        .events
        .subscribe(EventFilter::prefix("com.modular.config.reload.circuit."));
    for level in 2..5 {
        f.set_source(&[("a.level", json!(level))]);
        assert_eq!(
            f.orchestrator
                .reload(ReloadTrigger::Programmatic)
                .await
                .status,
            ReloadStatus::Failed
        );
    }
    // The operator reverts the bad change at its source, then waits out the backoff.
    f.clear_sources();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let trial = f.orchestrator.reload(ReloadTrigger::Programmatic).await;
    assert_eq!(trial.status, ReloadStatus::Noop);
    assert_eq!(
        f.orchestrator.breaker_state(),
        modular_core::reload::BreakerState::Closed
    );
    let again = f.orchestrator.reload(ReloadTrigger::Programmatic).await;
    assert_eq!(again.status, ReloadStatus::Noop);
    let types: Vec<String> = events
        .drain()
        .iter()
        .map(|e| cloudevents::AttributesReader::ty(e).to_owned())
        .collect();
    assert_eq!(
        types,
        [
            "com.modular.config.reload.circuit.opened",
            "com.modular.config.reload.circuit.half_opened",
            "com.modular.config.reload.circuit.closed",
        ]
    );
}

#[tokio::test]
async fn changes_pending_for_a_module_that_still_cannot_reload_commit_nothing() {
    let f = fixture(&[("busy", Behaviour::Busy)]);
    f.set_source(&[("busy.level", json!(5))]);
    let first = f.orchestrator.reload(ReloadTrigger::Programmatic).await;
    assert_eq!(first.status, ReloadStatus::Applied);
    assert_eq!(first.skipped, vec!["busy"]);
    let version = f.orchestrator.version();
    let again = f.orchestrator.reload(ReloadTrigger::Programmatic).await;
    assert_eq!(again.status, ReloadStatus::Noop, "{again:?}");
    assert_eq!(f.orchestrator.version(), version);
    // Once it can, the pending change reaches it.
    f.recorders[0].set(Behaviour::Succeed);
    let applied = f.orchestrator.reload(ReloadTrigger::Programmatic).await;
    assert_eq!(applied.reloaded, vec!["busy"], "{applied:?}");
}

struct PanicsOnCanReload;

#[modular_core::async_trait]
impl modular_core::Reloadable for PanicsOnCanReload {
    fn can_reload(&self) -> bool {
        panic!("can_reload exploded")
    }

    async fn prepare(
        &self,
        _ctx: &modular_core::ReloadContext,
        _changes: &[modular_core::ConfigChange],
    ) -> Result<modular_core::PreparedReload, modular_core::BoxError> {
        Ok(modular_core::PreparedReload::nothing())
    }
}

#[tokio::test]
async fn a_panic_outside_the_reload_hook_does_not_stop_the_orchestrator() {
    let store = support::reload::store_with(&["odd"]);
    let orchestrator = modular_core::reload::ReloadOrchestrator::new(
        store.clone(),
        vec![modular_core::reload::ReloadTarget {
            module: "odd".to_owned(),
            reloadable: Some(Arc::new(PanicsOnCanReload)),
        }],
        modular_core::events::EventBus::new(),
        None,
        quiet_options(),
    );
    store.set_overrides(std::collections::BTreeMap::from([(
        "odd.level".to_owned(),
        json!(3),
    )]));
    let outcome = orchestrator.reload(ReloadTrigger::Programmatic).await;
    assert_eq!(
        outcome.skipped,
        vec!["odd"],
        "a panicking can_reload counts as cannot reload"
    );
    store.set_overrides(std::collections::BTreeMap::from([(
        "odd.level".to_owned(),
        json!(4),
    )]));
    let next = orchestrator.reload(ReloadTrigger::Programmatic).await;
    assert_ne!(
        next.error.as_deref(),
        Some("reload orchestrator is stopped"),
        "{next:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reader_of_two_sections_never_sees_a_mixed_pair_during_a_thousand_reloads() {
    let f = fixture(&[("a", Behaviour::Succeed), ("b", Behaviour::Succeed)]);
    let a = f
        .store
        .register::<support::reload::ModuleConfig>("a", Some("a"))
        .unwrap();
    let b = f
        .store
        .register::<support::reload::ModuleConfig>("b", Some("b"))
        .unwrap();
    let store = f.store.clone();
    let reader = std::thread::spawn(move || {
        let mut versions = std::collections::BTreeSet::new();
        for _ in 0..100_000 {
            let snapshot = store.snapshot();
            let (x, y) = (snapshot.get(&a).unwrap(), snapshot.get(&b).unwrap());
            assert_eq!(
                x.label,
                y.label,
                "a mixed pair at version {}",
                snapshot.version()
            );
            versions.insert(snapshot.version());
        }
        versions.len()
    });
    for i in 0..1000 {
        let label = json!(format!("v{i}"));
        f.set_source(&[("a.label", label.clone()), ("b.label", label)]);
        let outcome = f.orchestrator.reload(ReloadTrigger::Programmatic).await;
        assert_eq!(outcome.status, ReloadStatus::Applied, "{outcome:?}");
    }
    let seen = reader.join().expect("the reader saw no mixed pair");
    assert!(
        seen > 1,
        "the reader ran while versions were committed ({seen} seen)"
    );
    assert_eq!(f.orchestrator.version(), 1001);
}

#[tokio::test]
async fn a_skipped_modules_section_is_held_back_until_it_applies() {
    let f = fixture(&[("busy", Behaviour::Busy), ("free", Behaviour::Succeed)]);
    f.set_source(&[("busy.level", json!(5)), ("free.level", json!(6))]);
    let outcome = f.orchestrator.reload(ReloadTrigger::Programmatic).await;
    assert_eq!(outcome.status, ReloadStatus::Applied, "{outcome:?}");
    assert_eq!(outcome.skipped, vec!["busy"]);
    assert_eq!(f.level("free"), 6);
    assert_eq!(
        f.level("busy"),
        1,
        "the skipped module keeps reading what it applied"
    );

    // Still busy: nothing new to commit.
    let again = f.orchestrator.reload(ReloadTrigger::Programmatic).await;
    assert_eq!(again.status, ReloadStatus::Noop, "{again:?}");
    assert_eq!(f.level("busy"), 1);

    f.recorders[0].set(Behaviour::Succeed);
    let applied = f.orchestrator.reload(ReloadTrigger::Programmatic).await;
    assert_eq!(applied.reloaded, vec!["busy"], "{applied:?}");
    assert_eq!(f.level("busy"), 5);
}

#[tokio::test]
async fn a_config_handle_wakes_a_background_task_when_its_section_changes() {
    let f = fixture(&[("a", Behaviour::Succeed), ("b", Behaviour::Succeed)]);
    let handle = f
        .store
        .register::<support::reload::ModuleConfig>("a", Some("a"))
        .unwrap();
    let follower = tokio::spawn({
        let handle = handle.clone();
        async move { handle.changed().await.level }
    });
    tokio::task::yield_now().await;
    // Another section's change does not wake it.
    f.set_source(&[("b.level", json!(3))]);
    assert!(
        f.orchestrator
            .reload(ReloadTrigger::Programmatic)
            .await
            .is_applied()
    );
    tokio::task::yield_now().await;
    assert!(!follower.is_finished());

    f.set_source(&[("a.level", json!(9))]);
    assert!(
        f.orchestrator
            .reload(ReloadTrigger::Programmatic)
            .await
            .is_applied()
    );
    let level = tokio::time::timeout(Duration::from_secs(5), follower)
        .await
        .expect("woken")
        .unwrap();
    assert_eq!(level, 9);
}

#[tokio::test]
async fn changed_from_sees_a_commit_made_after_the_value_was_read() {
    let f = fixture(&[("a", Behaviour::Succeed)]);
    let handle = f
        .store
        .register::<support::reload::ModuleConfig>("a", Some("a"))
        .unwrap();
    let seen = handle.get();
    // The reload commits between the caller's read and its wait.
    f.set_source(&[("a.level", json!(4))]);
    assert!(
        f.orchestrator
            .reload(ReloadTrigger::Programmatic)
            .await
            .is_applied()
    );
    let now = tokio::time::timeout(Duration::from_secs(5), handle.changed_from(&seen))
        .await
        .expect("returns at once: the value is no longer the one read");
    assert_eq!(now.level, 4);
}
