//! Cron, one-shot and interval schedules on paused time, across DST changes.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::time::Duration;

use serde_json::json;
use support::{Recorder, advance, fixture, section, utc};

#[tokio::test(start_paused = true)]
async fn a_cron_with_seconds_runs_at_each_occurrence() {
    let jobs = Recorder::default();
    let mut f = fixture(
        section(json!({ "tick": { "cron": "*/5 * * * * *" } })),
        utc("2026-01-01T00:00:01Z"),
        |m| m.job("tick", jobs.ok()),
    )
    .await;
    advance(Duration::from_secs(15)).await;
    assert_eq!(
        jobs.scheduled(),
        [
            utc("2026-01-01T00:00:05Z"),
            utc("2026-01-01T00:00:10Z"),
            utc("2026-01-01T00:00:15Z"),
        ]
    );
    assert_eq!(f.drain("job.completed").len(), 3);
    let status = f.scheduler.status("tick").unwrap();
    assert_eq!(status.next_run, Some(utc("2026-01-01T00:00:20Z")));
    assert_eq!(status.runs.get("completed"), Some(&3));
}

#[tokio::test(start_paused = true)]
async fn a_daily_berlin_job_follows_the_spring_dst_change() {
    // 03:00 in Berlin is 02:00 UTC in winter (CET) and 01:00 UTC from 29 March (CEST).
    let jobs = Recorder::default();
    let _f = fixture(
        section(json!({ "daily": { "cron": "0 0 3 * * *", "timezone": "Europe/Berlin" } })),
        utc("2026-03-27T12:00:00Z"),
        |m| m.job("daily", jobs.ok()),
    )
    .await;
    advance(Duration::from_secs(3 * 24 * 3600)).await;
    assert_eq!(
        jobs.scheduled(),
        [
            utc("2026-03-28T02:00:00Z"),
            utc("2026-03-29T01:00:00Z"),
            utc("2026-03-30T01:00:00Z"),
        ]
    );
}

#[tokio::test(start_paused = true)]
async fn a_time_the_autumn_change_repeats_runs_once() {
    // 02:30 happens twice in Berlin on 25 October 2026 (CEST, then CET): one run.
    let jobs = Recorder::default();
    let _f = fixture(
        section(json!({ "night": { "cron": "0 30 2 * * *", "timezone": "Europe/Berlin" } })),
        utc("2026-10-24T12:00:00Z"),
        |m| m.job("night", jobs.ok()),
    )
    .await;
    advance(Duration::from_secs(2 * 24 * 3600)).await;
    let runs = jobs.scheduled();
    assert_eq!(runs.len(), 2, "{runs:?}");
    assert_eq!(runs[0], utc("2026-10-25T00:30:00Z"));
    assert_eq!(runs[1], utc("2026-10-26T01:30:00Z"));
}

#[tokio::test(start_paused = true)]
async fn a_time_the_spring_change_skips_does_not_run_that_day() {
    // 02:30 does not exist in Berlin on 29 March 2026.
    let jobs = Recorder::default();
    let _f = fixture(
        section(json!({ "night": { "cron": "0 30 2 * * *", "timezone": "Europe/Berlin" } })),
        utc("2026-03-28T12:00:00Z"),
        |m| m.job("night", jobs.ok()),
    )
    .await;
    advance(Duration::from_secs(2 * 24 * 3600)).await;
    let runs = jobs.scheduled();
    assert!(
        !runs.iter().any(
            |r| r.date_naive() == utc("2026-03-29T12:00:00Z").date_naive()
                && *r < utc("2026-03-29T01:00:00Z")
        ),
        "{runs:?}"
    );
    assert!(runs.contains(&utc("2026-03-30T00:30:00Z")), "{runs:?}");
}

#[tokio::test(start_paused = true)]
async fn last_day_of_month_and_nth_weekday_expressions_run_on_their_days() {
    let last = Recorder::default();
    let second_friday = Recorder::default();
    let weekday = Recorder::default();
    let _f = fixture(
        section(json!({
            "last": { "cron": "0 0 L * *" },
            "second_friday": { "cron": "0 0 * * 5#2" },
            // The weekday nearest the 14th: both months' 14th is a Saturday, so Friday 13th.
            "weekday": { "cron": "0 0 14W * *" },
        })),
        utc("2026-02-01T00:00:30Z"),
        |m| {
            m.job("last", last.ok())
                .job("second_friday", second_friday.ok())
                .job("weekday", weekday.ok())
        },
    )
    .await;
    advance(Duration::from_secs(60 * 24 * 3600)).await;
    assert_eq!(
        last.scheduled(),
        [utc("2026-02-28T00:00:00Z"), utc("2026-03-31T00:00:00Z")]
    );
    assert_eq!(
        second_friday.scheduled(),
        [utc("2026-02-13T00:00:00Z"), utc("2026-03-13T00:00:00Z")]
    );
    assert_eq!(
        weekday.scheduled(),
        [utc("2026-02-13T00:00:00Z"), utc("2026-03-13T00:00:00Z")]
    );
}

#[tokio::test(start_paused = true)]
async fn one_shot_and_interval_jobs_run_from_code() {
    let once = Recorder::default();
    let every = Recorder::default();
    let start = utc("2026-01-01T00:00:00Z");
    let f = fixture(section(json!({})), start, |m| {
        m.job("once", once.ok()).job("every", every.ok())
    })
    .await;
    f.scheduler
        .run_after("once", Duration::from_secs(30))
        .unwrap();
    f.scheduler
        .run_at("once", utc("2026-01-01T00:00:10Z"))
        .unwrap();
    f.scheduler.every("every", Duration::from_secs(20)).unwrap();
    advance(Duration::from_secs(61)).await;
    // The second run_at replaced the first (one plan per code job).
    assert_eq!(once.scheduled(), [utc("2026-01-01T00:00:10Z")]);
    assert_eq!(
        every.scheduled(),
        [
            utc("2026-01-01T00:00:20Z"),
            utc("2026-01-01T00:00:40Z"),
            utc("2026-01-01T00:01:00Z"),
        ]
    );
    assert!(f.scheduler.run_at("nobody", start).is_err());
}

#[tokio::test(start_paused = true)]
async fn a_disabled_job_is_not_scheduled_but_can_be_triggered() {
    let jobs = Recorder::default();
    let mut f = fixture(
        section(json!({ "off": { "cron": "* * * * * *", "enabled": false } })),
        utc("2026-01-01T00:00:00Z"),
        |m| m.job("off", jobs.ok()),
    )
    .await;
    advance(Duration::from_secs(5)).await;
    assert_eq!(jobs.count(), 0);
    f.scheduler.trigger("off").unwrap();
    advance(Duration::from_millis(100)).await;
    assert_eq!(jobs.calls()[0].trigger, "manual");
    assert_eq!(f.drain("job.started").len(), 1);
}
