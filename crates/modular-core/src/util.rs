//! Small helpers shared inside the crate.

use std::any::Any;
use std::time::Duration;

/// The message of a caught panic payload.
pub fn panic_message(payload: &(dyn Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&'static str>() {
        (*s).to_owned()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "panic with a non-string payload".to_owned()
    }
}

/// `200ms`, `5s`, `1m 30s`.
pub fn format_duration(d: Duration) -> String {
    humantime_serde::re::humantime::format_duration(d).to_string()
}

/// Milliseconds as a float with microsecond precision.
pub fn millis_f64(d: Duration) -> f64 {
    (d.as_micros() as f64) / 1000.0
}
