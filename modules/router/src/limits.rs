//! The rate and concurrency limits of `router.limits`: one middleware on the contributed
//! routes that checks the global limiter, then the matched route's own.
//!
//! A concurrency limit is a semaphore tried without waiting (load shedding: over the limit a
//! request is refused at once, `503`); a rate is a token bucket (`429`). Both answers carry
//! `Retry-After`. The limiters are built with the router, so a reload starts them afresh.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use axum::extract::{MatchedPath, Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use http::{HeaderValue, StatusCode, header};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;

use crate::config::{LimitConfig, LimitsConfig, RateConfig};

/// Which limit refused a request: the `limit` label of the rejection metric.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Rejection {
    /// Over the rate: `429`.
    Rate,
    /// Over the concurrency: `503`.
    Concurrency,
}

/// Every limiter of one build.
#[derive(Debug, Default)]
pub(crate) struct Limits {
    global: Option<Limiter>,
    routes: HashMap<String, Limiter>,
}

impl Limits {
    /// The limiters `config` asks for; `None` when there are none (no middleware at all).
    pub(crate) fn new(config: &LimitsConfig) -> Option<Arc<Self>> {
        let global = Limiter::new(&config.global);
        let routes: HashMap<_, _> = config
            .routes
            .iter()
            .filter_map(|(path, limit)| Some((path.clone(), Limiter::new(limit)?)))
            .collect();
        (global.is_some() || !routes.is_empty()).then(|| Arc::new(Self { global, routes }))
    }

    /// Admits a request to `route` (its template), or says which limit refused it and when
    /// to retry. The permits are held until the answer is produced.
    fn admit(&self, route: Option<&str>) -> Result<Vec<OwnedSemaphorePermit>, (Rejection, u64)> {
        let mut permits = Vec::new();
        let route = route.and_then(|r| self.routes.get(r));
        for limiter in self.global.iter().chain(route) {
            if let Some(permit) = limiter.admit()? {
                permits.push(permit);
            }
        }
        Ok(permits)
    }
}

/// One set of limits.
#[derive(Debug)]
struct Limiter {
    concurrency: Option<Arc<Semaphore>>,
    rate: Option<TokenBucket>,
}

impl Limiter {
    fn new(config: &LimitConfig) -> Option<Self> {
        config.is_limited().then(|| Self {
            concurrency: config
                .concurrency
                .map(|n| Arc::new(Semaphore::new(usize::try_from(n).unwrap_or(usize::MAX)))),
            rate: config.rate.map(TokenBucket::new),
        })
    }

    /// A concurrency permit (when limited), or the rejection and the seconds to wait.
    fn admit(&self) -> Result<Option<OwnedSemaphorePermit>, (Rejection, u64)> {
        let permit = match &self.concurrency {
            Some(semaphore) => Some(
                Arc::clone(semaphore)
                    .try_acquire_owned()
                    .map_err(|_| (Rejection::Concurrency, 1))?,
            ),
            None => None,
        };
        // A request refused by the rate gives its concurrency permit back (dropped here).
        if let Some(bucket) = &self.rate {
            bucket.take().map_err(|wait| (Rejection::Rate, wait))?;
        }
        Ok(permit)
    }
}

/// A token bucket: `capacity` tokens, refilled at `per_second`.
#[derive(Debug)]
struct TokenBucket {
    capacity: f64,
    per_second: f64,
    /// Tokens left and when they were counted. A plain mutex: held for a few arithmetic
    /// operations, never across an await.
    state: Mutex<(f64, Instant)>,
}

impl TokenBucket {
    fn new(rate: RateConfig) -> Self {
        let capacity = f64::from(rate.requests);
        Self {
            capacity,
            per_second: capacity / rate.per.as_secs_f64(),
            state: Mutex::new((capacity, Instant::now())),
        }
    }

    /// Takes a token, or answers the whole seconds until one is back (at least 1).
    fn take(&self) -> Result<(), u64> {
        let now = Instant::now();
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        let (tokens, counted) = *state;
        let tokens = (tokens + now.duration_since(counted).as_secs_f64() * self.per_second)
            .min(self.capacity);
        if tokens >= 1.0 {
            *state = (tokens - 1.0, now);
            return Ok(());
        }
        *state = (tokens, now);
        let wait = Duration::from_secs_f64((1.0 - tokens) / self.per_second);
        Err(wait
            .as_secs()
            .saturating_add(u64::from(wait.subsec_nanos() > 0))
            .max(1))
    }
}

/// Admits the request or answers `429`/`503` with `Retry-After`. Requests that matched no
/// route (404s) are not limited.
pub(crate) async fn limit(
    State(limits): State<Arc<Limits>>,
    request: Request,
    next: Next,
) -> Response {
    let Some(route) = request.extensions().get::<MatchedPath>().cloned() else {
        return next.run(request).await;
    };
    match limits.admit(Some(route.as_str())) {
        Ok(permits) => {
            let response = next.run(request).await;
            drop(permits);
            response
        }
        Err((rejection, retry_after)) => {
            crate::route_metrics::record_rejection(route.as_str(), rejection);
            let (status, body) = match rejection {
                Rejection::Rate => (StatusCode::TOO_MANY_REQUESTS, "rate limit exceeded"),
                Rejection::Concurrency => (
                    StatusCode::SERVICE_UNAVAILABLE,
                    "too many requests in flight",
                ),
            };
            let mut response = (status, body).into_response();
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(retry_after));
            response
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::Router;
    use axum::body::Body;
    use axum::routing::get;
    use std::collections::BTreeMap;
    use tower::ServiceExt as _;

    fn rate(requests: u32, per: Duration) -> LimitConfig {
        LimitConfig {
            concurrency: None,
            rate: Some(RateConfig { requests, per }),
        }
    }

    fn app(config: &LimitsConfig) -> Router {
        let limits = Limits::new(config).expect("limited");
        Router::new()
            .route("/a/{id}", get(|| async { "a" }))
            .route("/b", get(|| async { "b" }))
            .layer(axum::middleware::from_fn_with_state(limits, limit))
    }

    async fn call(app: &Router, path: &str) -> (u16, Option<String>) {
        let request = http::Request::get(path)
            .body(Body::empty())
            .expect("request");
        let response = app.clone().oneshot(request).await.expect("infallible");
        let retry = response
            .headers()
            .get(header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        (response.status().as_u16(), retry)
    }

    #[tokio::test(start_paused = true)]
    async fn over_the_rate_answers_429_with_the_seconds_until_a_token_is_back() {
        let app = app(&LimitsConfig {
            global: rate(2, Duration::from_secs(4)),
            routes: BTreeMap::new(),
        });
        assert_eq!(call(&app, "/b").await, (200, None));
        assert_eq!(call(&app, "/a/1").await, (200, None));
        // One token per 2 s.
        assert_eq!(call(&app, "/b").await, (429, Some("2".to_owned())));
        tokio::time::advance(Duration::from_millis(1500)).await;
        assert_eq!(call(&app, "/b").await, (429, Some("1".to_owned())));
        tokio::time::advance(Duration::from_millis(500)).await;
        assert_eq!(call(&app, "/b").await, (200, None));
        assert_eq!(call(&app, "/b").await.0, 429);
    }

    #[tokio::test(start_paused = true)]
    async fn a_route_limit_is_keyed_by_the_route_template_and_leaves_other_routes_alone() {
        let app = app(&LimitsConfig {
            global: LimitConfig::default(),
            routes: BTreeMap::from([("/a/{id}".to_owned(), rate(1, Duration::from_secs(60)))]),
        });
        assert_eq!(call(&app, "/a/1").await.0, 200);
        // Another id is the same route.
        assert_eq!(call(&app, "/a/2").await, (429, Some("60".to_owned())));
        for _ in 0..5 {
            assert_eq!(call(&app, "/b").await.0, 200);
        }
        assert_eq!(call(&app, "/nowhere").await.0, 404);
    }

    #[tokio::test]
    async fn over_the_concurrency_answers_503_at_once_and_admits_again_when_one_finishes() {
        let limits = Limits::new(&LimitsConfig {
            global: LimitConfig {
                concurrency: Some(1),
                rate: None,
            },
            routes: BTreeMap::new(),
        })
        .expect("limited");
        let held = limits.admit(Some("/b")).expect("first admitted");
        assert_eq!(
            limits.admit(Some("/b")).err(),
            Some((Rejection::Concurrency, 1))
        );
        drop(held);
        assert!(limits.admit(Some("/b")).is_ok());
    }
}
