//! One exchange off the hot path (a shadow mirror, a composite route's part): choose a
//! backend of a pool, send on the client its protocol and scheme need, record the outcome
//! on the backend (outlier detection, breaker). The caller retries, if at all.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use axum::body::Body;
use http::header::{self, HeaderMap, HeaderValue};
use http::uri::PathAndQuery;
use http::{Method, Request, Response, Uri};
use hyper::body::Incoming;
use tokio::time::Instant;

use crate::backend::{Backend, Outcome};
use crate::config::Protocol;
use crate::proxy::{Outstanding, Proxy};
use crate::table::Pool;
use crate::upstream::{self, Conn, SendError, Streamed};

/// Why an exchange got no answer.
#[derive(Debug)]
pub(crate) enum Failure {
    /// No backend of the pool takes requests.
    NoBackend,
    /// The chosen backend (its index in the pool) failed; `connect`: before anything was
    /// sent (a refused connection, a failed handshake).
    Failed {
        message: String,
        backend: usize,
        connect: bool,
    },
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::NoBackend => f.write_str("no healthy backend"),
            Self::Failed { message, .. } => f.write_str(message),
        }
    }
}

/// Sends `method path` with `headers` and `body` to a backend of `pool` other than those in
/// `tried`; the answer's body counts the request in flight on its backend until it is
/// dropped.
pub(crate) async fn send(
    proxy: &Proxy,
    pool: &Arc<Pool>,
    method: Method,
    headers: HeaderMap,
    path: PathAndQuery,
    body: Body,
    tried: &[usize],
) -> Result<Response<Streamed>, Failure> {
    let index = pool
        .choose(&headers, tried, Instant::now())
        .ok_or(Failure::NoBackend)?;
    let backend = Arc::clone(&pool.backends[index]);
    let guard = Outstanding::new(&backend);
    backend.requests.fetch_add(1, Ordering::Relaxed);
    let mut request = Request::new(body);
    *request.method_mut() = method;
    *request.headers_mut() = headers;
    let sent = dispatch(proxy, pool, &backend, request, &path, false).await;
    let now = Instant::now();
    match sent {
        Ok((response, conn)) => {
            proxy.record(pool, &backend, Outcome::of(response.status()), now);
            let (parts, incoming) = response.into_parts();
            Ok(Response::from_parts(
                parts,
                Streamed::new(incoming, conn, guard),
            ))
        }
        Err(error) => {
            proxy.record(pool, &backend, Outcome::Failure, now);
            Err(Failure::Failed {
                message: format!("backend {} failed: {error}", backend.label()),
                backend: index,
                connect: error.is_connect(),
            })
        }
    }
}

/// Sends `request` (method, headers and body set) for `path` to `backend` of `pool`, on the
/// client its scheme and protocol need: the pool's TLS client for an `https://` backend, the
/// hot path's own HTTP/1.1 pool (origin-form URI, `Host` kept or set to the backend), or
/// hyper-util's clients for an upgrade over HTTP/1.1 and for HTTP/2 (no `Host`: the URI's
/// authority is `:authority`). A connection handed back comes with the answer, to be
/// returned to the backend's idle list when the body ends.
pub(crate) async fn dispatch(
    proxy: &Proxy,
    pool: &Pool,
    backend: &Backend,
    mut request: Request<Body>,
    path: &PathAndQuery,
    upgrade: bool,
) -> Result<(Response<Incoming>, Option<Conn>), SendError> {
    let absolute = || {
        let mut uri = http::uri::Parts::default();
        uri.scheme = Some(crate::tls::scheme(backend));
        uri.authority = Some(backend.authority.clone());
        uri.path_and_query = Some(path.clone());
        Uri::from_parts(uri).map_err(|e| {
            SendError::Connect(std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                e.to_string(),
            ))
        })
    };
    if pool.protocol != Protocol::Http1 {
        *request.version_mut() = http::Version::HTTP_2;
        request.headers_mut().remove(header::HOST);
    }
    if let Some(tls) = crate::tls::of(pool, backend) {
        *request.uri_mut() = absolute()?;
        return tls.send(request).await.map(|response| (response, None));
    }
    if pool.protocol == Protocol::Http1 && !upgrade {
        *request.uri_mut() = Uri::from(path.clone());
        if !request.headers().contains_key(header::HOST)
            && let Ok(host) = HeaderValue::from_str(backend.authority.as_str())
        {
            request.headers_mut().insert(header::HOST, host);
        }
        return upstream::send(backend, request)
            .await
            .map(|(response, conn)| (response, Some(conn)));
    }
    let client = if pool.protocol == Protocol::Http1 {
        &proxy.http1
    } else {
        &proxy.h2c
    };
    *request.uri_mut() = absolute()?;
    client
        .request(request)
        .await
        .map(|response| (response, None))
        .map_err(SendError::Legacy)
}
