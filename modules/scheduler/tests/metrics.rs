//! The `modular_scheduler_*` series on paused time, read from the process's Prometheus
//! exporter: runs by job and outcome, run duration, lateness (start minus scheduled time),
//! missed occurrences by reason, and the queue depth while a run waits for a worker.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::time::Duration;

use modular_core::metrics::MetricsExporter;
use serde_json::json;
use support::{Recorder, advance, fixture, utc};

/// The value of the sample `name{labels...}` (labels in any order), if rendered.
fn sample(text: &str, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    text.lines().find_map(|line| {
        let (series, value) = line.rsplit_once(' ')?;
        let (metric, rest) = series.split_once('{').unwrap_or((series, ""));
        if metric != name {
            return None;
        }
        let all = labels
            .iter()
            .all(|(k, v)| rest.contains(&format!("{k}=\"{v}\"")));
        all.then(|| value.parse().ok()).flatten()
    })
}

#[tokio::test(start_paused = true)]
async fn runs_duration_lateness_misses_and_queue_depth_are_recorded() {
    let exporter = MetricsExporter::install().unwrap();
    let slow = Recorder::default();
    let quick = Recorder::default();
    let extra = Recorder::default();
    let failing = Recorder::default();
    let f = fixture(
        json!({ "scheduler": { "workers": 1, "queue_capacity": 1, "jobs": {
            // Due at the same instant, in name order: `a_slow` takes the only worker for 2 s,
            // `b_quick` waits in the queue (capacity 1), `c_extra` finds it full.
            "a_slow": { "cron": "0 * * * * *", "timeout": "1h" },
            "b_quick": { "cron": "0 * * * * *" },
            "c_extra": { "cron": "0 * * * * *" },
            "d_failing": { "cron": "30 * * * * *" },
        } } }),
        utc("2026-01-01T00:00:59Z"),
        |m| {
            m.job("a_slow", slow.sleeping(Duration::from_secs(2)))
                .job("b_quick", quick.ok())
                .job("c_extra", extra.ok())
                .job("d_failing", failing.with(|_| Err("no".into())))
        },
    )
    .await;
    advance(Duration::from_millis(1500)).await; // 00:01:00.5
    let text = exporter.render();
    assert_eq!(
        sample(&text, "modular_scheduler_queue_depth", &[]),
        Some(1.0),
        "one run waits for the worker:\n{text}"
    );
    assert_eq!(
        sample(
            &text,
            "modular_scheduler_missed_total",
            &[("job", "c_extra"), ("reason", "queue_full")]
        ),
        Some(1.0),
        "{text}"
    );
    advance(Duration::from_secs(40)).await; // 00:01:40.5
    assert_eq!(
        (slow.count(), quick.count(), extra.count(), failing.count()),
        (1, 1, 0, 1)
    );
    let text = exporter.render();
    let runs = |job, outcome| {
        sample(
            &text,
            "modular_scheduler_runs_total",
            &[("job", job), ("outcome", outcome)],
        )
    };
    assert_eq!(runs("a_slow", "completed"), Some(1.0), "{text}");
    assert_eq!(runs("b_quick", "completed"), Some(1.0), "{text}");
    assert_eq!(runs("d_failing", "failed"), Some(1.0), "{text}");
    assert_eq!(runs("c_extra", "completed"), None, "{text}");
    let duration = sample(
        &text,
        "modular_scheduler_run_duration_seconds_sum",
        &[("job", "a_slow")],
    )
    .unwrap();
    assert!((duration - 2.0).abs() < 0.01, "{duration}\n{text}");
    // `b_quick` started when `a_slow` freed the worker, 2 s after it was due.
    let late = sample(
        &text,
        "modular_scheduler_lateness_seconds_sum",
        &[("job", "b_quick")],
    )
    .unwrap();
    assert!((1.99..2.1).contains(&late), "{late}\n{text}");
    assert_eq!(
        sample(
            &text,
            "modular_scheduler_lateness_seconds_count",
            &[("job", "d_failing")]
        ),
        Some(1.0),
        "{text}"
    );
    assert_eq!(
        sample(&text, "modular_scheduler_queue_depth", &[]),
        Some(0.0),
        "the queue drained:\n{text}"
    );
    drop(f);
}
