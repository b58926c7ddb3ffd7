//! Log masker benchmarks (issue 18), side by side in one run:
//! - `logmasker/event_5_fields/fmt`: an INFO event with a message and 5 fields through the
//!   plain `fmt` layer into a sink;
//! - `logmasker/event_5_fields/fmt_masked`: the same event through the masked `fmt` layer
//!   (`Masker::layer`, default rules: field-name rules, then every value pattern over the
//!   line); target ≤ 1.5x the plain layer;
//! - `logmasker/scan_1kb`: `Masker::mask` over a 1 KB ordinary message (nothing to mask, the
//!   common case), target ≤ 2 µs; `scan_1kb_one_secret`: the same with one e-mail address in
//!   the middle.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use criterion::{Criterion, criterion_group, criterion_main};
use modular_logmasker::Masker;
use tracing_subscriber::layer::SubscriberExt as _;

fn event() {
    tracing::info!(
        user = "bob",
        request_id = "550e8400-e29b-41d4-a716-446655440000",
        status = 200,
        elapsed_ms = 12.5,
        route = "/notes/{id}",
        "request served"
    );
}

fn event_5_fields(c: &mut Criterion) {
    let mut group = c.benchmark_group("logmasker/event_5_fields");
    let plain = tracing::Dispatch::new(
        tracing_subscriber::registry().with(
            tracing_subscriber::fmt::layer()
                .with_ansi(false)
                .with_writer(std::io::sink),
        ),
    );
    group.bench_function("fmt", |b| {
        tracing::dispatcher::with_default(&plain, || b.iter(event));
    });
    let masker = Masker::new();
    let masked =
        tracing::Dispatch::new(tracing_subscriber::registry().with(masker.layer(std::io::sink)));
    group.bench_function("fmt_masked", |b| {
        tracing::dispatcher::with_default(&masked, || b.iter(event));
    });
    group.finish();
}

fn one_kb(secret: bool) -> String {
    let words = [
        "request",
        "served",
        "in",
        "12ms",
        "for",
        "route",
        "/notes/{id}",
        "status",
        "200",
        "version",
        "v1.2.3",
        "at",
        "2026-12-02T05:07:50Z",
        "trace",
        "550e8400-e29b-41d4-a716-446655440000",
    ];
    let mut text = String::new();
    let mut i = 0;
    while text.len() < 1024 {
        if secret && i == 60 {
            text.push_str("alice@example.com ");
        }
        text.push_str(words[i % words.len()]);
        text.push(' ');
        i += 1;
    }
    text.truncate(1024);
    text
}

fn scan(c: &mut Criterion) {
    let masker = Masker::new();
    let clean = one_kb(false);
    let dirty = one_kb(true);
    assert_eq!(
        masker.mask(&clean),
        clean.as_str(),
        "the clean text has nothing to mask"
    );
    assert!(masker.mask(&dirty).contains("[REDACTED]"));
    let mut group = c.benchmark_group("logmasker");
    group.bench_function("scan_1kb", |b| {
        b.iter(|| std::hint::black_box(masker.mask(std::hint::black_box(&clean))).len());
    });
    group.bench_function("scan_1kb_one_secret", |b| {
        b.iter(|| std::hint::black_box(masker.mask(std::hint::black_box(&dirty))).len());
    });
    group.finish();
}

criterion_group!(benches, event_5_fields, scan);
criterion_main!(benches);
