//! Active health checks: one task per checked pool, checking every backend concurrently
//! each interval (plus jitter), with hysteresis; stopped when its table is replaced.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use http::uri::Scheme;
use http::{Request, Uri};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use rand::Rng as _;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::backend::{Backend, Transition};
use crate::config::{HealthCheckConfig, Protocol};
use crate::proxy::Emit;
use crate::table::{Pool, Table};

/// Starts the checkers of `table`'s pools on `tasks`; they stop when `table.checkers` or
/// `shutdown` is cancelled.
pub fn start(table: &Table, tasks: &TaskTracker, shutdown: &CancellationToken, emit: &Emit) {
    let http1: Client<HttpConnector, Body> =
        Client::builder(TokioExecutor::new()).build(HttpConnector::new());
    // A pool spoken to in HTTP/2 over cleartext is checked the same way: a backend that
    // speaks only h2c would refuse an HTTP/1.1 check and be marked down while serving.
    let h2c: Client<HttpConnector, Body> = Client::builder(TokioExecutor::new())
        .http2_only(true)
        .build(HttpConnector::new());
    for pool in table.pools.values() {
        let Some(check) = pool.health_check.clone() else {
            continue;
        };
        let pool = Arc::clone(pool);
        let stop = table.checkers.clone();
        let shutdown = shutdown.clone();
        let (client, version) = match pool.protocol {
            Protocol::Http1 => (http1.clone(), http::Version::HTTP_11),
            Protocol::H2c | Protocol::H2 => (h2c.clone(), http::Version::HTTP_2),
        };
        let tls = pool.tls.clone();
        let emit = Arc::clone(emit);
        let probe = move |backend: &Backend, check: &HealthCheckConfig| {
            let (authority, check) = (backend.authority.clone(), check.clone());
            match &tls {
                Some(tls) if backend.https => {
                    let tls = Arc::clone(tls);
                    Box::pin(async move {
                        let request = probe_request(Scheme::HTTPS, authority, &check)?;
                        let status = tls
                            .send(request)
                            .await
                            .map(|r| r.status())
                            .map_err(|error| format!("request failed: {error}"));
                        verdict(status?, &check)
                    }) as ProbeFuture
                }
                _ => {
                    let client = client.clone();
                    Box::pin(async move { http_probe(&client, version, authority, &check).await })
                        as ProbeFuture
                }
            }
        };
        tasks.spawn(run(pool, check, stop, shutdown, emit, probe));
    }
}

/// One check's verdict: `Err` holds why it failed.
type ProbeFuture = std::pin::Pin<Box<dyn Future<Output = Result<(), String>> + Send>>;

/// Checks `pool` every interval (plus jitter) with `probe` until `stop` or `shutdown`.
async fn run<P>(
    pool: Arc<Pool>,
    check: HealthCheckConfig,
    stop: CancellationToken,
    shutdown: CancellationToken,
    emit: Emit,
    probe: P,
) where
    P: Fn(&Backend, &HealthCheckConfig) -> ProbeFuture + Send + Sync + 'static,
{
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
        let checks = pool.backends.iter().map(|backend| async {
            let result = tokio::time::timeout(check.timeout, probe(backend, &check))
                .await
                .unwrap_or_else(|_| Err(format!("timed out after {:?}", check.timeout)));
            record(&pool, backend, &check, result, &emit);
        });
        futures::future::join_all(checks).await;
    }
}

/// `GET` the check path of the backend at `authority`, in the pool's HTTP `version`.
async fn http_probe(
    client: &Client<HttpConnector, Body>,
    version: http::Version,
    authority: http::uri::Authority,
    check: &HealthCheckConfig,
) -> Result<(), String> {
    let mut request = probe_request(Scheme::HTTP, authority, check)?;
    *request.version_mut() = version;
    let response = client
        .request(request)
        .await
        .map_err(|error| format!("request failed: {error}"))?;
    verdict(response.status(), check)
}

fn probe_request(
    scheme: Scheme,
    authority: http::uri::Authority,
    check: &HealthCheckConfig,
) -> Result<Request<Body>, String> {
    let uri = Uri::builder()
        .scheme(scheme)
        .authority(authority)
        .path_and_query(check.path.as_str())
        .build()
        .map_err(|error| error.to_string())?;
    let mut request = Request::new(Body::empty());
    *request.uri_mut() = uri;
    Ok(request)
}

fn verdict(status: http::StatusCode, check: &HealthCheckConfig) -> Result<(), String> {
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

/// Applies one check's result to `backend` (hysteresis), its gauges and events.
fn record(
    pool: &Pool,
    backend: &Backend,
    check: &HealthCheckConfig,
    result: Result<(), String>,
    emit: &Emit,
) {
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

#[cfg(test)]
mod tests {
    use std::sync::Mutex;
    use std::sync::atomic::{AtomicBool, Ordering};

    use super::*;
    use crate::config::ReverseProxyConfig;

    fn pool(jitter: &str) -> Arc<Pool> {
        let config: ReverseProxyConfig = serde_json::from_value(serde_json::json!({
            "routes": [{ "match": { "prefix": "/" }, "pool": "p" }],
            "pools": { "p": {
                "backends": [{ "url": "http://127.0.0.1:9" }],
                "health_check": {
                    "interval": "1s", "jitter": jitter, "timeout": "500ms",
                    "unhealthy_threshold": 2, "healthy_threshold": 3,
                },
            } },
        }))
        .unwrap_or_else(|e| panic!("{e}"));
        let table = Table::build(&config, None).unwrap_or_else(|e| panic!("{e}"));
        Arc::clone(&table.pools["p"])
    }

    /// A probe that passes while `passing` holds and never touches the network; when
    /// `hang` holds it never answers (the check's timeout must cut it).
    struct Fake {
        passing: Arc<AtomicBool>,
        hang: Arc<AtomicBool>,
        events: Arc<Mutex<Vec<String>>>,
    }

    fn spawn(pool: &Arc<Pool>, stop: &CancellationToken) -> Fake {
        let fake = Fake {
            passing: Arc::new(AtomicBool::new(true)),
            hang: Arc::new(AtomicBool::new(false)),
            events: Arc::default(),
        };
        let (passing, hang) = (Arc::clone(&fake.passing), Arc::clone(&fake.hang));
        let probe = move |_: &Backend, _: &HealthCheckConfig| {
            let (passing, hang) = (passing.load(Ordering::SeqCst), hang.load(Ordering::SeqCst));
            Box::pin(async move {
                if hang {
                    std::future::pending::<()>().await;
                }
                if passing {
                    Ok(())
                } else {
                    Err("answered 503".to_owned())
                }
            }) as ProbeFuture
        };
        let events = Arc::clone(&fake.events);
        let emit: Emit = Arc::new(move |ty: &str, _| {
            events
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .push(ty.to_owned());
        });
        let check = pool.health_check.clone().unwrap_or_default();
        tokio::spawn(run(
            Arc::clone(pool),
            check,
            stop.clone(),
            CancellationToken::new(),
            emit,
            probe,
        ));
        fake
    }

    use std::sync::PoisonError;

    /// Lets the checker run up to `at` after the start (paused time: exact).
    async fn until(start: tokio::time::Instant, at: Duration) {
        tokio::time::sleep_until(start + at).await;
        tokio::task::yield_now().await;
    }

    #[tokio::test(start_paused = true)]
    async fn checks_mark_down_after_n_intervals_and_up_after_m_and_stop_when_cancelled() {
        let pool = pool("0s");
        let backend = Arc::clone(&pool.backends[0]);
        let stop = CancellationToken::new();
        let start = tokio::time::Instant::now();
        let fake = spawn(&pool, &stop);
        fake.passing.store(false, Ordering::SeqCst);

        until(start, Duration::from_millis(1100)).await;
        assert!(backend.is_up(), "one failed check is not two");
        until(start, Duration::from_millis(2100)).await;
        assert!(!backend.is_up(), "down after the second failed check");
        assert_eq!(
            backend.details(tokio::time::Instant::now())["last_error"],
            "answered 503"
        );

        fake.passing.store(true, Ordering::SeqCst);
        until(start, Duration::from_millis(4100)).await;
        assert!(!backend.is_up(), "two passed checks are not three");
        until(start, Duration::from_millis(5100)).await;
        assert!(backend.is_up(), "up after the third passed check");
        let events = fake
            .events
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        assert_eq!(events, ["backend.down", "backend.up"]);

        // Cancelled: no more checks, whatever the probe says.
        stop.cancel();
        fake.passing.store(false, Ordering::SeqCst);
        until(start, Duration::from_secs(60)).await;
        assert!(backend.is_up());
    }

    #[tokio::test(start_paused = true)]
    async fn a_check_that_never_answers_fails_at_its_timeout() {
        let pool = pool("0s");
        let backend = Arc::clone(&pool.backends[0]);
        let stop = CancellationToken::new();
        let start = tokio::time::Instant::now();
        let fake = spawn(&pool, &stop);
        fake.hang.store(true, Ordering::SeqCst);
        // Checks at 1 s and 2.5 s (interval after the 500 ms timeout), each cut at 500 ms.
        until(start, Duration::from_millis(1400)).await;
        assert!(backend.is_up());
        until(start, Duration::from_millis(3100)).await;
        assert!(!backend.is_up(), "two timed-out checks mark it down");
        assert_eq!(
            backend.details(tokio::time::Instant::now())["last_error"],
            "timed out after 500ms"
        );
        stop.cancel();
    }

    #[tokio::test(start_paused = true)]
    async fn jitter_delays_each_check_by_at_most_its_bound() {
        let pool = pool("400ms");
        let backend = Arc::clone(&pool.backends[0]);
        let stop = CancellationToken::new();
        let start = tokio::time::Instant::now();
        let _fake = spawn(&pool, &stop);
        // No check before the interval; the first one by interval + jitter.
        until(start, Duration::from_millis(990)).await;
        assert!(backend.details(tokio::time::Instant::now())["last_check"].is_null());
        until(start, Duration::from_millis(1410)).await;
        assert!(!backend.details(tokio::time::Instant::now())["last_check"].is_null());
        stop.cancel();
    }
}
