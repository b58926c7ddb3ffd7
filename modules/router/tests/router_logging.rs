//! What the request trace logs: a probe answered 503 during an outage is routine (debug),
//! a server error elsewhere is an ERROR.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::fmt::Write as _;
use std::sync::{Arc, Mutex};

use modular_core::health::HealthStatus;
use support::start;
use tracing::field::{Field, Visit};
use tracing_subscriber::layer::{Context, SubscriberExt as _};

/// One captured event: its level and its fields as `name=value` pairs.
#[derive(Clone, Debug)]
struct Captured {
    level: tracing::Level,
    fields: String,
}

/// Records every event into a shared list.
#[derive(Clone, Default)]
struct Capture(Arc<Mutex<Vec<Captured>>>);

impl Capture {
    fn taken(&self) -> Vec<Captured> {
        std::mem::take(&mut *self.0.lock().unwrap())
    }
}

struct Fields(String);

impl Visit for Fields {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        let _ = write!(self.0, "{}={value:?} ", field.name());
    }
}

impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for Capture {
    fn on_new_span(
        &self,
        attrs: &tracing::span::Attributes<'_>,
        _id: &tracing::span::Id,
        _ctx: Context<'_, S>,
    ) {
        let mut fields = Fields(format!("span={} ", attrs.metadata().name()));
        attrs.record(&mut fields);
        self.0.lock().unwrap().push(Captured {
            level: *attrs.metadata().level(),
            fields: fields.0,
        });
    }

    fn on_event(&self, event: &tracing::Event<'_>, _ctx: Context<'_, S>) {
        let mut fields = Fields(String::new());
        event.record(&mut fields);
        self.0.lock().unwrap().push(Captured {
            level: *event.metadata().level(),
            fields: fields.0,
        });
    }
}

// The test runtime is single-threaded, so the server's tasks run on this thread and the
// thread-local subscriber sees their events.
#[tokio::test(flavor = "current_thread")]
async fn probes_answered_503_during_an_outage_log_at_debug_and_other_5xx_at_error()
-> anyhow::Result<()> {
    let capture = Capture::default();
    let _guard =
        tracing::subscriber::set_default(tracing_subscriber::registry().with(capture.clone()));
    let test = start("").await?;
    test.set_health(HealthStatus::Unhealthy);
    let _ = capture.taken();

    for path in ["/readyz", "/health", "/health/ready"] {
        assert_eq!(test.get(path).send().await?.status(), 503, "{path}");
    }
    let events = capture.taken();
    let errors: Vec<_> = events
        .iter()
        .filter(|e| e.level == tracing::Level::ERROR)
        .collect();
    assert!(errors.is_empty(), "probe 503s logged as errors: {errors:?}");
    let answered = events
        .iter()
        .filter(|e| e.level == tracing::Level::DEBUG && e.fields.contains("status=503"))
        .count();
    assert_eq!(answered, 3, "{events:?}");

    // Any other server error is still an ERROR.
    assert_eq!(test.get("/panic").send().await?.status(), 500);
    let events = capture.taken();
    assert!(
        events
            .iter()
            .any(|e| e.level == tracing::Level::ERROR && e.fields.contains("500")),
        "{events:?}"
    );
    Ok(())
}

#[tokio::test(flavor = "current_thread")]
async fn the_request_span_shows_query_keys_but_never_their_values() -> anyhow::Result<()> {
    let capture = Capture::default();
    let _guard =
        tracing::subscriber::set_default(tracing_subscriber::registry().with(capture.clone()));
    let test = start("").await?;
    capture.taken();

    let answer = test
        .get("/greet?access_token=q-s3cret-value&page=2")
        .send()
        .await?;
    assert_eq!(answer.status(), 200);

    let seen = capture.taken();
    let span = seen
        .iter()
        .find(|c| c.fields.starts_with("span=http "))
        .expect("the request span");
    assert!(
        span.fields
            .contains("uri=/greet?access_token=[REDACTED]&page=[REDACTED]"),
        "{span:?}"
    );
    for captured in &seen {
        assert!(!captured.fields.contains("q-s3cret-value"), "{captured:?}");
    }
    Ok(())
}
