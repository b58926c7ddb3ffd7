//! The event bus's series (DESIGN.md §3.8), through the `metrics` facade:
//!
//! | series | type | labels |
//! |---|---|---|
//! | `modular_eventbus_published_total` | counter | `engine` |
//! | `modular_eventbus_publish_failed_total` | counter | `engine` |
//! | `modular_eventbus_dropped_total` | counter | `engine` |
//! | `modular_eventbus_delivered_total` | counter | `engine`, `pattern` |
//! | `modular_eventbus_acked_total`, `modular_eventbus_nacked_total` | counter | `engine`, `pattern` |
//! | `modular_eventbus_dead_lettered_total` | counter | `engine`, `pattern` |
//! | `modular_eventbus_handler_duration_seconds` | histogram | `engine`, `pattern` |
//! | `modular_eventbus_lag` | gauge | `engine`, `pattern`, `group` (set by each health check) |
//!
//! Labels are bounded: engine names and subscription patterns come from code and
//! configuration, never from event ids or concrete topics. Without a recorder nothing is
//! recorded (one flag check per call).

use std::time::Duration;

#[derive(Debug, Clone)]
pub(crate) struct Series {
    on: bool,
}

impl Series {
    pub(crate) fn new() -> Self {
        Self {
            on: modular_core::metrics::is_recording(),
        }
    }

    pub(crate) fn published(&self, engine: &str) {
        if self.on {
            metrics::counter!("modular_eventbus_published_total", "engine" => engine.to_owned())
                .increment(1);
        }
    }

    pub(crate) fn publish_failed(&self, engine: &str) {
        if self.on {
            metrics::counter!("modular_eventbus_publish_failed_total", "engine" => engine.to_owned()).increment(1);
        }
    }

    pub(crate) fn dropped(&self, engine: &str, n: u64) {
        if self.on {
            metrics::counter!("modular_eventbus_dropped_total", "engine" => engine.to_owned())
                .increment(n);
        }
    }

    pub(crate) fn handled(&self, engine: &str, pattern: &str, took: Duration, ok: bool) {
        if !self.on {
            return;
        }
        let labels = [
            ("engine", engine.to_owned()),
            ("pattern", pattern.to_owned()),
        ];
        metrics::counter!("modular_eventbus_delivered_total", &labels).increment(1);
        if ok {
            metrics::counter!("modular_eventbus_acked_total", &labels).increment(1);
        } else {
            metrics::counter!("modular_eventbus_nacked_total", &labels).increment(1);
        }
        metrics::histogram!("modular_eventbus_handler_duration_seconds", &labels)
            .record(took.as_secs_f64());
    }

    pub(crate) fn dead_lettered(&self, engine: &str, pattern: &str) {
        if self.on {
            metrics::counter!("modular_eventbus_dead_lettered_total", "engine" => engine.to_owned(), "pattern" => pattern.to_owned()).increment(1);
        }
    }

    pub(crate) fn lag(&self, engine: &str, pattern: &str, group: &str, lag: u64) {
        if self.on {
            metrics::gauge!("modular_eventbus_lag", "engine" => engine.to_owned(), "pattern" => pattern.to_owned(), "group" => group.to_owned()).set(lag as f64);
        }
    }
}
