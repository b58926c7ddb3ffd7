//! One exchange off the hot path (a shadow mirror, a composite route's part): choose a
//! backend of a pool, send on the client its protocol and scheme need, record the outcome
//! on the backend (outlier detection, breaker). No retries.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use axum::body::Body;
use http::header::{self, HeaderMap, HeaderValue};
use http::uri::PathAndQuery;
use http::{Method, Request, Response, Uri};
use tokio::time::Instant;

use crate::backend::Outcome;
use crate::config::Protocol;
use crate::proxy::{Outstanding, Proxy};
use crate::table::Pool;
use crate::upstream::{self, SendError, Streamed};

/// Why an exchange got no answer.
#[derive(Debug)]
pub(crate) enum Failure {
    /// No backend of the pool takes requests.
    NoBackend,
    /// The chosen backend failed (connect error, reset, ...).
    Failed(String),
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::NoBackend => f.write_str("no healthy backend"),
            Self::Failed(error) => f.write_str(error),
        }
    }
}

/// Sends `method path` with `headers` and `body` to a backend of `pool`; the answer's body
/// counts the request in flight on its backend until it is dropped.
pub(crate) async fn send(
    proxy: &Proxy,
    pool: &Arc<Pool>,
    method: Method,
    mut headers: HeaderMap,
    path: PathAndQuery,
    body: Body,
) -> Result<Response<Streamed>, Failure> {
    let index = pool
        .choose(&headers, &[], Instant::now())
        .ok_or(Failure::NoBackend)?;
    let backend = Arc::clone(&pool.backends[index]);
    let guard = Outstanding::new(&backend);
    backend.requests.fetch_add(1, Ordering::Relaxed);
    let mut request = Request::new(body);
    *request.method_mut() = method;
    let absolute = || {
        let mut uri = http::uri::Parts::default();
        uri.scheme = Some(crate::tls::scheme(&backend));
        uri.authority = Some(backend.authority.clone());
        uri.path_and_query = Some(path.clone());
        Uri::from_parts(uri).map_err(|e| Failure::Failed(e.to_string()))
    };
    if pool.protocol != Protocol::Http1 {
        *request.version_mut() = http::Version::HTTP_2;
        headers.remove(header::HOST);
    }
    let sent = if let Some(tls) = crate::tls::of(pool, &backend) {
        *request.uri_mut() = absolute()?;
        *request.headers_mut() = headers;
        tls.send(request).await.map(|r| (r, None))
    } else if pool.protocol == Protocol::Http1 {
        *request.uri_mut() = Uri::from(path.clone());
        if !headers.contains_key(header::HOST)
            && let Ok(host) = HeaderValue::from_str(backend.authority.as_str())
        {
            headers.insert(header::HOST, host);
        }
        *request.headers_mut() = headers;
        upstream::send(&backend, request)
            .await
            .map(|(r, conn)| (r, Some(conn)))
    } else {
        *request.uri_mut() = absolute()?;
        *request.headers_mut() = headers;
        proxy
            .h2c
            .request(request)
            .await
            .map(|r| (r, None))
            .map_err(SendError::Legacy)
    };
    let now = Instant::now();
    match sent {
        Ok((response, conn)) => {
            let outcome = if response.status().is_server_error() {
                Outcome::ServerError
            } else {
                Outcome::Success
            };
            proxy.record(pool, &backend, outcome, now);
            let (parts, incoming) = response.into_parts();
            Ok(Response::from_parts(
                parts,
                Streamed::new(incoming, conn, guard),
            ))
        }
        Err(error) => {
            proxy.record(pool, &backend, Outcome::Failure, now);
            Err(Failure::Failed(format!(
                "backend {} failed: {error}",
                backend.label()
            )))
        }
    }
}
