//! The retry policy: which requests are retried, after which failures, and how long to wait.

use std::time::{Duration, SystemTime};

use chrono::NaiveDateTime;
use reqwest::header::{HeaderMap, RETRY_AFTER};
use reqwest::{Method, StatusCode};

use crate::config::RetryConfig;

/// Methods that may be sent twice without changing the outcome (RFC 9110 §9.2.2).
pub fn is_idempotent(method: &Method) -> bool {
    matches!(
        *method,
        Method::GET | Method::HEAD | Method::OPTIONS | Method::PUT | Method::DELETE | Method::TRACE
    )
}

/// Answers that say "try again later": 429, 502, 503 and 504.
pub fn is_retryable_status(status: StatusCode) -> bool {
    matches!(
        status,
        StatusCode::TOO_MANY_REQUESTS
            | StatusCode::BAD_GATEWAY
            | StatusCode::SERVICE_UNAVAILABLE
            | StatusCode::GATEWAY_TIMEOUT
    )
}

/// A transport failure worth repeating for an idempotent request: the connection could not be
/// made, the attempt timed out, or the connection was reset or closed before the answer was
/// complete. Returns what to call it in logs and events.
pub fn retryable_error(error: &reqwest::Error) -> Option<&'static str> {
    if error.is_connect() {
        return Some("connect error");
    }
    if error.is_timeout() {
        return Some("timeout");
    }
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(error);
    while let Some(current) = source {
        if let Some(io) = current.downcast_ref::<std::io::Error>()
            && matches!(
                io.kind(),
                std::io::ErrorKind::ConnectionReset
                    | std::io::ErrorKind::ConnectionAborted
                    | std::io::ErrorKind::BrokenPipe
                    | std::io::ErrorKind::UnexpectedEof
            )
        {
            return Some("connection reset");
        }
        if let Some(hyper) = current.downcast_ref::<hyper::Error>()
            && (hyper.is_incomplete_message() || hyper.is_canceled())
        {
            return Some("connection reset");
        }
        source = current.source();
    }
    None
}

/// The delay before retry number `retry` (0 for the first retry): exponential from
/// `base_delay`, capped at `max_delay`, minus up to `jitter` of it. `random` is uniform in
/// `[0, 1)`; the caller draws it so this stays a pure function.
pub fn backoff(policy: &RetryConfig, retry: u32, random: f64) -> Duration {
    let factor = 2u32.saturating_pow(retry);
    let delay = policy
        .base_delay
        .saturating_mul(factor)
        .min(policy.max_delay);
    let keep = 1.0 - policy.jitter.clamp(0.0, 1.0) * random.clamp(0.0, 1.0);
    if keep.is_finite() && keep > 0.0 {
        delay.mul_f64(keep.min(1.0))
    } else {
        Duration::ZERO
    }
}

/// The delay a `Retry-After` header asks for, measured from `now` when it is an HTTP date.
/// `None` when the header is absent or unreadable (the computed backoff applies then).
pub fn retry_after(headers: &HeaderMap, now: SystemTime) -> Option<Duration> {
    let value = headers.get(RETRY_AFTER)?.to_str().ok()?.trim();
    if let Ok(seconds) = value.parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    let at = parse_http_date(value)?;
    // A date in the past means "now".
    Some(at.duration_since(now).unwrap_or(Duration::ZERO))
}

/// An HTTP date in any of the three forms RFC 9110 §5.6.7 says a recipient must accept.
fn parse_http_date(value: &str) -> Option<SystemTime> {
    const FORMATS: [&str; 3] = [
        // IMF-fixdate: Sun, 06 Nov 1994 08:49:37 GMT
        "%a, %d %b %Y %H:%M:%S GMT",
        // obsolete RFC 850: Sunday, 06-Nov-94 08:49:37 GMT
        "%A, %d-%b-%y %H:%M:%S GMT",
        // obsolete asctime: Sun Nov  6 08:49:37 1994
        "%a %b %e %H:%M:%S %Y",
    ];
    FORMATS.iter().find_map(|format| {
        NaiveDateTime::parse_from_str(value, format)
            .ok()
            .map(|at| SystemTime::from(at.and_utc()))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::HeaderValue;

    fn policy(jitter: f64) -> RetryConfig {
        RetryConfig {
            max_retries: 5,
            base_delay: Duration::from_millis(100),
            max_delay: Duration::from_secs(1),
            jitter,
            ..RetryConfig::default()
        }
    }

    #[test]
    fn only_idempotent_methods_are_retried() {
        for method in [
            Method::GET,
            Method::HEAD,
            Method::OPTIONS,
            Method::PUT,
            Method::DELETE,
            Method::TRACE,
        ] {
            assert!(is_idempotent(&method), "{method}");
        }
        for method in [Method::POST, Method::PATCH, Method::CONNECT] {
            assert!(!is_idempotent(&method), "{method}");
        }
    }

    #[test]
    fn only_transient_statuses_are_retried() {
        for status in [429, 502, 503, 504] {
            assert!(
                is_retryable_status(StatusCode::from_u16(status).unwrap_or_default()),
                "{status}"
            );
        }
        for status in [200, 400, 401, 404, 500, 501] {
            assert!(
                !is_retryable_status(StatusCode::from_u16(status).unwrap_or_default()),
                "{status}"
            );
        }
    }

    #[test]
    fn backoff_doubles_up_to_the_cap() {
        let p = policy(0.0);
        let delays: Vec<u128> = (0..6).map(|n| backoff(&p, n, 0.5).as_millis()).collect();
        assert_eq!(delays, [100, 200, 400, 800, 1000, 1000]);
        // A huge retry number saturates instead of overflowing.
        assert_eq!(backoff(&p, u32::MAX, 0.0), Duration::from_secs(1));
    }

    #[test]
    fn jitter_takes_off_at_most_its_fraction() {
        let p = policy(0.5);
        assert_eq!(backoff(&p, 1, 0.0), Duration::from_millis(200));
        assert_eq!(backoff(&p, 1, 0.5), Duration::from_millis(150));
        let lowest = backoff(&p, 1, 0.999_999);
        assert!(
            lowest > Duration::from_millis(99) && lowest <= Duration::from_millis(101),
            "{lowest:?}"
        );
    }

    fn headers(value: &str) -> HeaderMap {
        let mut map = HeaderMap::new();
        map.insert(
            RETRY_AFTER,
            HeaderValue::from_str(value).unwrap_or(HeaderValue::from_static("x")),
        );
        map
    }

    #[test]
    fn retry_after_reads_seconds() {
        let now = SystemTime::now();
        assert_eq!(
            retry_after(&headers("7"), now),
            Some(Duration::from_secs(7))
        );
        assert_eq!(retry_after(&headers(" 0 "), now), Some(Duration::ZERO));
        assert_eq!(retry_after(&headers("-1"), now), None);
        assert_eq!(retry_after(&headers("soon"), now), None);
        assert_eq!(retry_after(&HeaderMap::new(), now), None);
    }

    #[test]
    fn retry_after_reads_all_three_http_date_forms() {
        // 1994-11-06T08:49:30Z, seven seconds before the date in the headers.
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(784_111_770);
        for value in [
            "Sun, 06 Nov 1994 08:49:37 GMT",
            "Sunday, 06-Nov-94 08:49:37 GMT",
            "Sun Nov  6 08:49:37 1994",
        ] {
            assert_eq!(
                retry_after(&headers(value), now),
                Some(Duration::from_secs(7)),
                "{value}"
            );
        }
    }

    #[test]
    fn a_retry_after_date_in_the_past_means_now() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(2_000_000_000);
        assert_eq!(
            retry_after(&headers("Sun, 06 Nov 1994 08:49:37 GMT"), now),
            Some(Duration::ZERO)
        );
    }
}
