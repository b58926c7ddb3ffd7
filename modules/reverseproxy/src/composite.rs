//! Composite routes: one request fanned out to several pools at once, answered with the
//! first success or with one JSON document merging every part's JSON body.
//!
//! A request body (at most `max_request_bytes`) is read whole first and sent to every part.
//! Each part goes to one backend of its pool (chosen like any request, its outcome recorded
//! for outlier detection and the breaker), under its own timeout; after a connect error
//! (nothing was sent) it goes again to another backend, up to the part's `retries` and
//! within the retry budget. `first_success` streams the first part answering 2xx and
//! cancels the others; `merge` reads each body (at most `max_part_bytes`) and applies
//! `on_part_failure` and `on_empty`.

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::response::{IntoResponse, Response};
use futures::StreamExt as _;
use futures::stream::FuturesUnordered;
use http::header::{self, HeaderValue};
use http::uri::PathAndQuery;
use http::{Request, StatusCode};
use hyper::body::Body as HttpBody;
use serde_json::{Map, Value, json};

use crate::config::{CompositeConfig, CompositeMode, PartPolicy};
use crate::error::ReverseProxyError;
use crate::proxy::Proxy;
use crate::table::{Pool, Route, Table};

/// `result` labels of the parts counter, in [`Part::series`] order.
const RESULTS: [&str; 4] = ["ok", "empty", "failed", "timeout"];

/// Counter: composite parts by `route`, `part` and `result` (`ok`, `empty`, `failed`,
/// `timeout`).
pub const COMPOSITE_PARTS: &str = "modular_reverseproxy_composite_parts_total";

/// A compiled composite route.
#[derive(Debug)]
pub(crate) struct Composite {
    mode: CompositeMode,
    parts: Vec<Part>,
    on_part_failure: PartPolicy,
    on_empty: PartPolicy,
    max_part_bytes: usize,
    max_request_bytes: usize,
    /// The route's timeout: how long the client may take to send its body.
    request_timeout: Duration,
}

#[derive(Debug)]
struct Part {
    name: String,
    pool: Arc<Pool>,
    path: Option<PathAndQuery>,
    timeout: Duration,
    retries: usize,
    series: [metrics::Counter; 4],
}

/// Why a part has no usable answer.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum PartError {
    /// No answer: no backend, a connect error, a reset.
    Failed(String),
    /// Its timeout passed first.
    Timeout(Duration),
    /// It answered, but not 2xx.
    Status(StatusCode),
    /// `merge`: its body is not JSON, or is above the limit.
    Body(String),
}

impl std::fmt::Display for PartError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Failed(why) | Self::Body(why) => f.write_str(why),
            Self::Timeout(after) => write!(f, "timed out after {after:?}"),
            Self::Status(status) => write!(f, "answered {status}"),
        }
    }
}

impl Composite {
    pub(crate) fn build(
        index: usize,
        config: &CompositeConfig,
        route_label: &str,
        route_timeout: Duration,
        pools: &std::collections::HashMap<String, Arc<Pool>>,
    ) -> Result<Self, ReverseProxyError> {
        let mut parts = Vec::new();
        for (name, part) in &config.parts {
            let invalid = |key: &str, message: String| ReverseProxyError::Invalid {
                path: format!("routes.{index}.composite.parts.{name}.{key}"),
                message,
            };
            let pool = pools
                .get(&part.pool)
                .cloned()
                .ok_or_else(|| invalid("pool", format!("unknown pool `{}`", part.pool)))?;
            let path = match &part.path {
                Some(path) => Some(
                    PathAndQuery::try_from(path.as_str())
                        .map_err(|e| invalid("path", e.to_string()))?,
                ),
                None => None,
            };
            parts.push(Part {
                series: RESULTS.map(|result| {
                    if modular_core::metrics::is_recording() {
                        metrics::counter!(COMPOSITE_PARTS, "route" => route_label.to_owned(),
                            "part" => name.clone(), "result" => result)
                    } else {
                        metrics::Counter::noop()
                    }
                }),
                name: name.clone(),
                pool,
                path,
                timeout: part.timeout.unwrap_or(route_timeout),
                retries: usize::try_from(part.retries).unwrap_or(usize::MAX),
            });
        }
        if parts.is_empty() {
            return Err(ReverseProxyError::Invalid {
                path: format!("routes.{index}.composite.parts"),
                message: "needs at least one part".to_owned(),
            });
        }
        Ok(Self {
            mode: config.mode,
            parts,
            on_part_failure: config.on_part_failure,
            on_empty: config.on_empty,
            max_part_bytes: config.max_part_bytes,
            max_request_bytes: config.max_request_bytes,
            request_timeout: route_timeout,
        })
    }

    /// The pool the route is labelled with (its first part's).
    pub(crate) fn first_pool(&self) -> Option<&Arc<Pool>> {
        self.parts.first().map(|p| &p.pool)
    }
}

/// Answers `request` (already matched to `route`) from `composite`'s parts.
pub(crate) async fn serve(
    proxy: &Proxy,
    table: &Table,
    route: &Route,
    composite: &Composite,
    host: Option<&str>,
    request: Request<Body>,
) -> Response {
    let (mut parts, body) = request.into_parts();
    let body = if body.is_end_stream() {
        Bytes::new()
    } else {
        let limit = composite.max_request_bytes;
        let read = tokio::time::timeout(composite.request_timeout, read_limited(body, limit));
        match read.await {
            Ok(Ok(body)) => body,
            Ok(Err(PartError::Body(_))) => {
                return error(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    json!({ "error": format!("request body above max_request_bytes ({limit})") }),
                );
            }
            Ok(Err(failure)) => {
                return error(
                    StatusCode::BAD_REQUEST,
                    json!({ "error": format!("request body: {failure}") }),
                );
            }
            Err(_) => {
                return error(
                    StatusCode::REQUEST_TIMEOUT,
                    json!({ "error": "the request body did not arrive within the route's timeout" }),
                );
            }
        }
    };

    let path = route.upstream_path(parts.uri.path());
    let joined = match parts.uri.query() {
        Some(query) => format!("{path}?{query}"),
        None => path.into_owned(),
    };
    let Ok(default_path) = PathAndQuery::try_from(joined) else {
        return error(StatusCode::BAD_REQUEST, json!({ "error": "bad path" }));
    };
    let peer = parts
        .extensions
        .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
        .map(|c| c.0.ip());
    crate::proxy::prepare_headers(&mut parts.headers, route, host, None, false, peer);
    let fanout = &Fanout {
        proxy,
        table,
        route,
        head: &parts,
        default_path: &default_path,
        body: &body,
    };
    match composite.mode {
        CompositeMode::FirstSuccess => {
            let futures = composite.parts.iter().map(|part| (part, fanout.send(part)));
            match first_success(futures).await {
                Ok((part, response)) => {
                    part.series[0].increment(1);
                    let (mut head, body) = response.into_parts();
                    crate::proxy::strip_response_headers(&mut head.headers, false);
                    if let Ok(name) = HeaderValue::from_str(&part.name) {
                        head.headers
                            .insert(http::HeaderName::from_static("x-composite-part"), name);
                    }
                    Response::from_parts(head, Body::new(body))
                }
                Err(failures) => {
                    let mut reasons = Map::new();
                    for (part, failure) in &failures {
                        count(part, failure);
                        reasons.insert(part.name.clone(), json!(failure.to_string()));
                    }
                    let all_timed_out = failures
                        .iter()
                        .all(|(_, f)| matches!(f, PartError::Timeout(_)));
                    error(
                        if all_timed_out {
                            StatusCode::GATEWAY_TIMEOUT
                        } else {
                            StatusCode::BAD_GATEWAY
                        },
                        json!({ "error": "no part succeeded", "parts": reasons }),
                    )
                }
            }
        }
        CompositeMode::Merge => {
            let limit = composite.max_part_bytes;
            let futures = composite.parts.iter().map(|part| {
                (part, async move {
                    read_limited(fanout.send(part).await?.into_body(), limit).await
                })
            });
            let results = gather(futures).await;
            match assemble(&results, composite.on_part_failure, composite.on_empty) {
                Ok(document) => {
                    for (part, result) in &results {
                        match result {
                            Ok(body) if body.is_empty() => part.series[1].increment(1),
                            Ok(_) => part.series[0].increment(1),
                            Err(failure) => count(part, failure),
                        }
                    }
                    let mut response = axum::Json(document).into_response();
                    response
                        .headers_mut()
                        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
                    response
                }
                Err((status, body)) => {
                    for (part, result) in &results {
                        if let Err(failure) = result {
                            count(part, failure);
                        }
                    }
                    error(status, body)
                }
            }
        }
    }
}

/// What every part's request is made from: the client's head (forwarding headers applied)
/// and body, the route's upstream path, and what a retry needs.
struct Fanout<'a> {
    proxy: &'a Proxy,
    table: &'a Table,
    route: &'a Route,
    head: &'a http::request::Parts,
    default_path: &'a PathAndQuery,
    body: &'a Bytes,
}

impl Fanout<'_> {
    /// Sends `part`'s request (a copy of the client's head and body), again on another
    /// backend after a connect error, up to the part's `retries` while the budget allows;
    /// its answer when it is 2xx.
    async fn send(
        &self,
        part: &Part,
    ) -> Result<http::Response<crate::upstream::Streamed>, PartError> {
        let path = part.path.as_ref().unwrap_or(self.default_path);
        // Each part is a request of its own to the retry budget.
        self.proxy
            .budget
            .record_request(tokio::time::Instant::now());
        let mut tried = Vec::new();
        let response = loop {
            let body = if self.body.is_empty() {
                Body::empty()
            } else {
                Body::from(self.body.clone())
            };
            let sent = crate::exchange::send(
                self.proxy,
                &part.pool,
                self.head.method.clone(),
                self.head.headers.clone(),
                path.clone(),
                body,
                &tried,
            )
            .await;
            match sent {
                Err(crate::exchange::Failure::Failed {
                    backend,
                    connect: true,
                    ..
                }) if tried.len() < part.retries && self.proxy.retry(self.route, self.table) => {
                    tried.push(backend);
                }
                other => {
                    break other
                        .map_err(|e| PartError::Failed(format!("{}: {e}", part.pool.name)))?;
                }
            }
        };
        if response.status().is_success() {
            Ok(response)
        } else {
            Err(PartError::Status(response.status()))
        }
    }
}

fn count(part: &Part, failure: &PartError) {
    let index = if matches!(failure, PartError::Timeout(_)) {
        3
    } else {
        2
    };
    part.series[index].increment(1);
}

fn error(status: StatusCode, body: Value) -> Response {
    (status, axum::Json(body)).into_response()
}

/// Reads `body` whole, failing above `limit` bytes.
async fn read_limited<B>(body: B, limit: usize) -> Result<Bytes, PartError>
where
    B: HttpBody<Data = Bytes> + Unpin,
    B::Error: std::fmt::Display,
{
    use http_body_util::BodyExt as _;
    let mut body = body;
    let mut out = Vec::new();
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| PartError::Failed(format!("body: {e}")))?;
        if let Ok(data) = frame.into_data() {
            if out.len() + data.len() > limit {
                return Err(PartError::Body(format!(
                    "body above max_part_bytes ({limit})"
                )));
            }
            out.extend_from_slice(&data);
        }
    }
    Ok(Bytes::from(out))
}

/// The `timeout` of `part` around `future`.
trait Timed {
    fn timeout(&self) -> Duration;
}

impl Timed for &Part {
    fn timeout(&self) -> Duration {
        self.timeout
    }
}

/// Runs every future under its part's timeout, all at once, and answers each result.
async fn gather<P, F, T>(parts: impl IntoIterator<Item = (P, F)>) -> Vec<(P, Result<T, PartError>)>
where
    P: Timed,
    F: Future<Output = Result<T, PartError>>,
{
    let futures = parts.into_iter().map(|(part, future)| async move {
        let timeout = part.timeout();
        let result = tokio::time::timeout(timeout, future)
            .await
            .unwrap_or(Err(PartError::Timeout(timeout)));
        (part, result)
    });
    futures::future::join_all(futures).await
}

/// Runs every future under its part's timeout, all at once; the first success wins (the
/// others are dropped, so cancelled); none: every part's failure.
async fn first_success<P, F, T>(
    parts: impl IntoIterator<Item = (P, F)>,
) -> Result<(P, T), Vec<(P, PartError)>>
where
    P: Timed,
    F: Future<Output = Result<T, PartError>>,
{
    let mut running: FuturesUnordered<_> = parts
        .into_iter()
        .map(|(part, future)| async move {
            let timeout = part.timeout();
            let result = tokio::time::timeout(timeout, future)
                .await
                .unwrap_or(Err(PartError::Timeout(timeout)));
            (part, result)
        })
        .collect();
    let mut failures = Vec::new();
    while let Some((part, result)) = running.next().await {
        match result {
            Ok(value) => return Ok((part, value)),
            Err(failure) => failures.push((part, failure)),
        }
    }
    Err(failures)
}

/// Something with a name (a part).
trait Named {
    fn name(&self) -> &str;
}

impl Named for &Part {
    fn name(&self) -> &str {
        &self.name
    }
}

/// The merged document of `results` under the policies, or the failing answer.
fn assemble<P: Named>(
    results: &[(P, Result<Bytes, PartError>)],
    on_part_failure: PartPolicy,
    on_empty: PartPolicy,
) -> Result<Value, (StatusCode, Value)> {
    let mut document = BTreeMap::new();
    for (part, result) in results {
        let name = part.name();
        let failure = match result {
            Ok(body) if body.is_empty() => match on_empty {
                PartPolicy::Null => {
                    document.insert(name.to_owned(), Value::Null);
                    continue;
                }
                PartPolicy::Omit => continue,
                PartPolicy::Fail => PartError::Body("answered an empty body".to_owned()),
            },
            Ok(body) => match serde_json::from_slice::<Value>(body) {
                Ok(value) => {
                    document.insert(name.to_owned(), value);
                    continue;
                }
                Err(e) => PartError::Body(format!("body is not JSON: {e}")),
            },
            Err(failure) => failure.clone(),
        };
        match on_part_failure {
            PartPolicy::Fail => {
                let status = if matches!(failure, PartError::Timeout(_)) {
                    StatusCode::GATEWAY_TIMEOUT
                } else {
                    StatusCode::BAD_GATEWAY
                };
                return Err((
                    status,
                    json!({ "error": format!("part `{name}` failed: {failure}"), "part": name }),
                ));
            }
            PartPolicy::Omit => {}
            PartPolicy::Null => {
                document.insert(name.to_owned(), Value::Null);
            }
        }
    }
    Ok(Value::Object(document.into_iter().collect()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, PartialEq)]
    struct Fake(&'static str, Duration);

    impl Timed for Fake {
        fn timeout(&self) -> Duration {
            self.1
        }
    }

    impl Named for Fake {
        fn name(&self) -> &str {
            self.0
        }
    }

    async fn after<T>(delay: u64, value: Result<T, PartError>) -> Result<T, PartError> {
        tokio::time::sleep(Duration::from_millis(delay)).await;
        value
    }

    #[tokio::test(start_paused = true)]
    async fn parts_run_at_once_and_each_is_cut_at_its_timeout() {
        let start = tokio::time::Instant::now();
        let results = gather([
            (Fake("a", Duration::from_secs(1)), after(300, Ok(1))),
            (Fake("b", Duration::from_millis(200)), after(5_000, Ok(2))),
            (Fake("c", Duration::from_secs(1)), after(400, Ok(3))),
        ])
        .await;
        // Concurrent: done at the slowest part that finished (400 ms), not the sum; the
        // slow part was cut at its own 200 ms.
        assert_eq!(start.elapsed(), Duration::from_millis(400));
        let results: Vec<_> = results.into_iter().map(|(p, r)| (p.0, r)).collect();
        assert_eq!(
            results,
            [
                ("a", Ok(1)),
                ("b", Err(PartError::Timeout(Duration::from_millis(200)))),
                ("c", Ok(3)),
            ]
        );
    }

    #[tokio::test(start_paused = true)]
    async fn the_first_success_wins_and_failures_before_it_do_not_count() {
        let start = tokio::time::Instant::now();
        let won = first_success([
            (
                Fake("slow", Duration::from_secs(10)),
                after(900, Ok("slow")),
            ),
            (
                Fake("broken", Duration::from_secs(10)),
                after(10, Err(PartError::Status(StatusCode::NOT_FOUND))),
            ),
            (
                Fake("fast", Duration::from_secs(10)),
                after(300, Ok("fast")),
            ),
        ])
        .await
        .map(|(p, v)| (p.0, v));
        assert_eq!(won, Ok(("fast", "fast")));
        assert_eq!(
            start.elapsed(),
            Duration::from_millis(300),
            "not waiting for slow"
        );

        let none = first_success([
            (Fake("a", Duration::from_millis(100)), after(500, Ok(()))),
            (
                Fake("b", Duration::from_secs(1)),
                after(50, Err(PartError::Failed("reset".into()))),
            ),
        ])
        .await
        .map(|(p, _)| p.0)
        .map_err(|f| f.into_iter().map(|(p, e)| (p.0, e)).collect::<Vec<_>>());
        assert_eq!(
            none,
            Err(vec![
                ("b", PartError::Failed("reset".into())),
                ("a", PartError::Timeout(Duration::from_millis(100))),
            ])
        );
        assert_eq!(start.elapsed(), Duration::from_millis(400));
    }

    fn results() -> Vec<(Fake, Result<Bytes, PartError>)> {
        let t = Duration::from_secs(1);
        vec![
            (Fake("user", t), Ok(Bytes::from_static(br#"{"id":7}"#))),
            (Fake("empty", t), Ok(Bytes::new())),
            (
                Fake("orders", t),
                Err(PartError::Status(StatusCode::INTERNAL_SERVER_ERROR)),
            ),
        ]
    }

    #[test]
    fn merge_policies_for_failed_and_empty_parts() {
        let failed = assemble(&results(), PartPolicy::Fail, PartPolicy::Null).unwrap_err();
        assert_eq!(failed.0, StatusCode::BAD_GATEWAY);
        assert_eq!(failed.1["part"], "orders");
        assert_eq!(
            assemble(&results(), PartPolicy::Omit, PartPolicy::Null).unwrap(),
            json!({ "user": { "id": 7 }, "empty": null })
        );
        assert_eq!(
            assemble(&results(), PartPolicy::Null, PartPolicy::Omit).unwrap(),
            json!({ "user": { "id": 7 }, "orders": null })
        );
        let empty_fails = assemble(&results(), PartPolicy::Fail, PartPolicy::Fail).unwrap_err();
        assert_eq!(empty_fails.1["part"], "empty");
        let timed_out = vec![(
            Fake("slow", Duration::from_secs(1)),
            Err(PartError::Timeout(Duration::from_secs(1))),
        )];
        assert_eq!(
            assemble(&timed_out, PartPolicy::Fail, PartPolicy::Null)
                .unwrap_err()
                .0,
            StatusCode::GATEWAY_TIMEOUT
        );
        let not_json = vec![(
            Fake("html", Duration::from_secs(1)),
            Ok(Bytes::from_static(b"<html>")),
        )];
        assert_eq!(
            assemble(&not_json, PartPolicy::Null, PartPolicy::Null).unwrap(),
            json!({ "html": null })
        );
    }
}
