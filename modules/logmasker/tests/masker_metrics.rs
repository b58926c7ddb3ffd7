//! Lines masked, values masked by rule and dropped lines are recorded through the `metrics`
//! facade once core records.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use modular_logmasker::{MaskRule, Masker, Strategy};
use tracing_subscriber::layer::SubscriberExt as _;

fn value(text: &str, series: &str) -> f64 {
    text.lines()
        .find(|l| l.starts_with(series))
        .and_then(|l| l.rsplit(' ').next()?.parse().ok())
        .unwrap_or(0.0)
}

#[test]
fn masked_lines_values_by_rule_and_dropped_lines_are_counted() {
    let exporter = modular_core::metrics::MetricsExporter::install().unwrap();
    let mut order = MaskRule::regex(r"ORD-\d{6}", Strategy::Redact);
    order.name = Some("order_id".to_owned());
    let masker = Masker::from_config(&support::config(vec![order])).unwrap();
    let capture = support::Capture::default();
    let dispatch =
        tracing::Dispatch::new(tracing_subscriber::registry().with(masker.layer(capture.clone())));
    tracing::dispatcher::with_default(&dispatch, || {
        tracing::info!("orders ORD-123456 and ORD-654321");
        tracing::info!(password = "pw", "login");
        tracing::info!("nothing to mask here");
        capture.set_failing(true);
        tracing::info!("lost");
        capture.set_failing(false);
    });
    let text = exporter.render();
    assert_eq!(
        value(
            &text,
            "modular_logmasker_values_masked_total{rule=\"order_id\"}"
        ),
        2.0,
        "{text}"
    );
    assert_eq!(
        value(
            &text,
            "modular_logmasker_values_masked_total{rule=\"password\"}"
        ),
        1.0,
        "{text}"
    );
    assert_eq!(
        value(&text, "modular_logmasker_lines_masked_total"),
        2.0,
        "{text}"
    );
    assert_eq!(
        value(&text, "modular_logmasker_dropped_lines_total"),
        1.0,
        "{text}"
    );
    let stats = masker.stats();
    assert_eq!(stats.lines_masked, 2);
    assert_eq!(stats.values_masked, 3);
    assert_eq!(stats.dropped_lines, 1);
}
