//! Active health checks: one task per checked pool, checking every backend concurrently
//! each interval (plus jitter), with hysteresis; stopped when its table is replaced.

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use http::{Request, Uri};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use rand::Rng as _;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::backend::{Backend, Transition};
use crate::config::HealthCheckConfig;
use crate::proxy::Emit;
use crate::table::{Pool, Table};

/// Starts the checkers of `table`'s pools on `tasks`; they stop when `table.checkers` or
/// `shutdown` is cancelled.
pub fn start(table: &Table, tasks: &TaskTracker, shutdown: &CancellationToken, emit: &Emit) {
    let client: Client<HttpConnector, Body> =
        Client::builder(TokioExecutor::new()).build(HttpConnector::new());
    for pool in table.pools.values() {
        let Some(check) = pool.health_check.clone() else {
            continue;
        };
        let pool = Arc::clone(pool);
        let stop = table.checkers.clone();
        let shutdown = shutdown.clone();
        let client = client.clone();
        let emit = Arc::clone(emit);
        tasks.spawn(async move {
            loop {
                let jitter = if check.jitter.is_zero() {
                    Duration::ZERO
                } else {
                    let millis = u64::try_from(check.jitter.as_millis()).unwrap_or(u64::MAX);
                    Duration::from_millis(rand::rng().random_range(0..=millis))
                };
                tokio::select! {
                    () = stop.cancelled() => return,
                    () = shutdown.cancelled() => return,
                    () = tokio::time::sleep(check.interval + jitter) => {}
                }
                check_pool(&pool, &check, &client, &emit).await;
            }
        });
    }
}

/// Checks every backend of `pool` once, concurrently.
pub async fn check_pool(
    pool: &Pool,
    check: &HealthCheckConfig,
    client: &Client<HttpConnector, Body>,
    emit: &Emit,
) {
    let checks = pool
        .backends
        .iter()
        .map(|backend| check_backend(pool, backend, check, client, emit));
    futures::future::join_all(checks).await;
}

async fn check_backend(
    pool: &Pool,
    backend: &Backend,
    check: &HealthCheckConfig,
    client: &Client<HttpConnector, Body>,
    emit: &Emit,
) {
    let uri = Uri::builder()
        .scheme("http")
        .authority(backend.authority.clone())
        .path_and_query(check.path.as_str())
        .build();
    let result = match uri {
        Err(error) => Err(error.to_string()),
        Ok(uri) => {
            let mut request = Request::new(Body::empty());
            *request.uri_mut() = uri;
            match tokio::time::timeout(check.timeout, client.request(request)).await {
                Err(_) => Err(format!("timed out after {:?}", check.timeout)),
                Ok(Err(error)) => Err(format!("request failed: {error}")),
                Ok(Ok(response)) => {
                    let status = response.status();
                    let passed = if check.expected_statuses.is_empty() {
                        status.is_success()
                    } else {
                        check.expected_statuses.contains(&status.as_u16())
                    };
                    if passed {
                        Ok(())
                    } else {
                        Err(format!("answered {status}"))
                    }
                }
            }
        }
    };
    let passed = result.is_ok();
    let transition = backend.record_check(
        passed,
        result.err(),
        check.unhealthy_threshold,
        check.healthy_threshold,
    );
    backend
        .up_series
        .set(if backend.is_up() { 1.0 } else { 0.0 });
    backend.active_series.set(backend.outstanding() as f64);
    let verb = match transition {
        Some(Transition::Up) => "up",
        Some(Transition::Down) => "down",
        _ => return,
    };
    tracing::info!(module = "reverseproxy", pool = %pool.name, backend = %backend.label(), state = verb, "backend health changed");
    emit(
        &format!("backend.{verb}"),
        serde_json::json!({ "pool": pool.name, "backend": backend.label() }),
    );
}
