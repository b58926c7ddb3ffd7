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

/// `start + d`, saturating: a duration too long to add (`Duration::MAX` from a config or a
/// builder) gives a deadline about 30 years ahead instead of a panic, as tokio's own
/// `sleep`/`timeout` do.
pub fn deadline(start: tokio::time::Instant, d: Duration) -> tokio::time::Instant {
    start
        .checked_add(d)
        .or_else(|| start.checked_add(FAR_FUTURE))
        .unwrap_or(start)
}

/// What "never" is as a deadline: 30 years.
const FAR_FUTURE: Duration = Duration::from_secs(86_400 * 365 * 30);

/// `200ms`, `5s`, `1m 30s`.
pub fn format_duration(d: Duration) -> String {
    humantime_serde::re::humantime::format_duration(d).to_string()
}

/// Milliseconds as a float with microsecond precision.
pub fn millis_f64(d: Duration) -> f64 {
    (d.as_micros() as f64) / 1000.0
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use tokio::time::Instant;

    use super::deadline;

    #[tokio::test(start_paused = true)]
    async fn a_deadline_saturates_instead_of_overflowing() {
        let now = Instant::now();
        assert_eq!(
            deadline(now, Duration::from_secs(5)),
            now + Duration::from_secs(5)
        );
        let never = deadline(now, Duration::MAX);
        assert!(
            never > now + Duration::from_secs(86_400 * 365 * 10),
            "{never:?}"
        );
    }
}
