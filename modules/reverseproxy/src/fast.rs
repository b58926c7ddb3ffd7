//! The module's own listener (`reverseproxy.listen`): the same routing table served by a
//! lean HTTP/1.1 forwarder, for a service that is a proxy first.
//!
//! Through httpserver a proxied request is parsed into a hyper request, passes the
//! framework's middleware, and is encoded again by a hyper client connection; the nginx
//! comparison measured that at twice nginx's CPU per request, nearly all of it in user space
//! (docs/PERFORMANCE.md). Here one task per client connection reads the request head in
//! place (httparse), rewrites the headers with the hot path's own [`prepare_headers`], writes
//! head and body to a pooled keep-alive connection of the chosen backend, and relays the
//! answer's bytes back as they come (content-length, chunked or close-delimited framing is
//! followed, never buffered whole). Choice, outlier detection, breakers, retries with the
//! budget, timeouts, metrics and draining are the hot path's, on the same [`Table`].
//!
//! What it does not forward itself it hands, with the bytes already read, to hyper serving
//! [`Proxy::handle`] for the rest of the connection: upgrades (WebSocket), `Expect`, chunked
//! request bodies, HTTP/1.0 and HTTP/2 (prior knowledge) clients, absolute-form targets,
//! composite and shadowed routes, and pools spoken to in HTTP/2 or TLS. A head httparse
//! refuses goes there too, so the answer to a malformed request is hyper's.

use std::convert::Infallible;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::{Body, Bytes};
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::{Method, StatusCode};
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::io::{AsyncRead, AsyncReadExt as _, AsyncWrite, AsyncWriteExt as _, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::backend::{Backend, Outcome};
use crate::config::Protocol;
use crate::metrics as m;
use crate::proxy::{Outstanding, Proxy, Tried, is_idempotent, prepare_headers};
use crate::table::{Route, Table};

/// Headers read per request or response head.
const MAX_HEADERS: usize = 128;
/// The largest request or response head.
const MAX_HEAD_BYTES: usize = 64 * 1024;
/// Read buffer per connection.
const READ_CHUNK: usize = 16 * 1024;
/// A request body up to this size is read whole before it is sent (then it goes in one
/// write with the head); a larger one streams through hyper's path, which sends it while
/// the answer already comes back (a backend that echoes as it reads would otherwise wait
/// on a proxy that is still writing).
const MAX_BUFFERED_BODY: u64 = 64 * 1024;
/// A client connection with no request for this long is closed.
const CLIENT_IDLE: Duration = Duration::from_secs(75);

/// How long a stop waits for the connections' exchanges in flight (httpserver's default
/// `shutdown_timeout`); a stream still running then (a long download, a server-sent event
/// stream) is cut.
const SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(20);

/// Accepts on `listener` until `shutdown`, then gives the connections up to
/// [`SHUTDOWN_TIMEOUT`] to finish their current exchange.
pub(crate) async fn serve(listener: TcpListener, proxy: Arc<Proxy>, shutdown: CancellationToken) {
    let mut connections = tokio::task::JoinSet::new();
    loop {
        let accepted = tokio::select! {
            () = shutdown.cancelled() => break,
            accepted = listener.accept() => accepted,
            // Reaps the finished ones.
            Some(_) = connections.join_next(), if !connections.is_empty() => continue,
        };
        match accepted {
            Ok((stream, peer)) => {
                let _ = stream.set_nodelay(true);
                connections.spawn(connection(
                    Arc::clone(&proxy),
                    stream,
                    peer,
                    shutdown.clone(),
                ));
            }
            Err(error) => {
                // Out of file descriptors and the like: wait a little instead of spinning.
                tracing::warn!(module = "reverseproxy", %error, "accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
    drop(listener);
    let left = drain(&mut connections, SHUTDOWN_TIMEOUT).await;
    if left > 0 {
        tracing::warn!(
            module = "reverseproxy",
            connections = left,
            "connections cut at the shutdown timeout"
        );
    }
}

/// Waits for `tasks` to end, for at most `timeout`; aborts those still running then and
/// answers how many they were.
async fn drain(tasks: &mut tokio::task::JoinSet<()>, timeout: Duration) -> usize {
    let _ = tokio::time::timeout(timeout, async {
        while tasks.join_next().await.is_some() {}
    })
    .await;
    let left = tasks.len();
    tasks.abort_all();
    while tasks.join_next().await.is_some() {}
    left
}

/// A parsed request head.
struct RequestHead {
    method: Method,
    /// The request target (origin form), as hyper would take it.
    target: http::uri::PathAndQuery,
    minor: u8,
    headers: HeaderMap,
    /// Bytes of the head in the buffer.
    length: usize,
}

enum Parsed<T> {
    Partial,
    Done(T),
    /// Not for this parser: hyper takes the connection (and answers a malformed request).
    Refused,
}

fn header_map(slots: &[httparse::Header<'_>]) -> Option<HeaderMap> {
    let mut headers = HeaderMap::with_capacity(slots.len() + 6);
    for slot in slots {
        let name = HeaderName::from_bytes(slot.name.as_bytes()).ok()?;
        let value = HeaderValue::from_bytes(slot.value).ok()?;
        headers.append(name, value);
    }
    Some(headers)
}

fn parse_request(buf: &[u8]) -> Parsed<RequestHead> {
    let mut slots = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut request = httparse::Request::new(&mut slots);
    let length = match request.parse(buf) {
        Ok(httparse::Status::Partial) => return Parsed::Partial,
        Ok(httparse::Status::Complete(length)) => length,
        Err(_) => return Parsed::Refused,
    };
    let (Some(method), Some(target), Some(minor)) = (request.method, request.path, request.version)
    else {
        return Parsed::Refused;
    };
    // A target hyper would not take (absolute form among them) is hyper's to answer.
    let (Ok(method), Ok(target), Some(headers)) = (
        Method::from_bytes(method.as_bytes()),
        http::uri::PathAndQuery::try_from(target),
        header_map(request.headers),
    ) else {
        return Parsed::Refused;
    };
    Parsed::Done(RequestHead {
        method,
        target,
        minor,
        headers,
        length,
    })
}

/// How a response body ends.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Framing {
    Empty,
    Length(u64),
    Chunked,
    /// Until the backend closes: the client connection closes after it too.
    Close,
}

struct ResponseHead {
    status: StatusCode,
    reason: String,
    headers: HeaderMap,
    framing: Framing,
    /// The backend keeps the connection open after this answer.
    keep_alive: bool,
    length: usize,
}

fn parse_response(buf: &[u8], method: &Method) -> Result<Option<ResponseHead>, String> {
    let mut slots = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut response = httparse::Response::new(&mut slots);
    let length = match response.parse(buf) {
        Ok(httparse::Status::Partial) => return Ok(None),
        Ok(httparse::Status::Complete(length)) => length,
        Err(error) => return Err(format!("a malformed response head: {error}")),
    };
    let (Some(code), Some(minor)) = (response.code, response.version) else {
        return Err("a response head without a status".into());
    };
    let status = StatusCode::from_u16(code).map_err(|e| format!("status {code}: {e}"))?;
    let headers = header_map(response.headers).ok_or("a response header that is not valid")?;
    let reason = response.reason.unwrap_or("").to_owned();
    let close = has_token(&headers, header::CONNECTION, "close");
    let framing = if *method == Method::HEAD
        || status.is_informational()
        || status == StatusCode::NO_CONTENT
        || status == StatusCode::NOT_MODIFIED
    {
        Framing::Empty
    } else if let Some(coding) = headers
        .get_all(header::TRANSFER_ENCODING)
        .iter()
        .next_back()
    {
        let chunked = coding
            .to_str()
            .ok()
            .and_then(|v| v.rsplit(',').next())
            .is_some_and(|last| last.trim().eq_ignore_ascii_case("chunked"));
        if chunked {
            Framing::Chunked
        } else {
            Framing::Close
        }
    } else {
        let mut lengths = headers.get_all(header::CONTENT_LENGTH).iter();
        match (lengths.next(), lengths.next()) {
            (None, _) => Framing::Close,
            (Some(value), None) => Framing::Length(
                decimal(value.as_bytes()).ok_or("a content-length that is not a number")?,
            ),
            (Some(_), Some(_)) => return Err("more than one content-length".into()),
        }
    };
    Ok(Some(ResponseHead {
        status,
        reason,
        keep_alive: minor == 1 && !close && framing != Framing::Close,
        headers,
        framing,
        length,
    }))
}

fn has_token(headers: &HeaderMap, name: HeaderName, token: &str) -> bool {
    headers
        .get_all(name)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|t| t.trim().eq_ignore_ascii_case(token))
}

/// What becomes of a request.
enum Plan<'t> {
    /// Forwarded here on this route, with a body of this length.
    Forward(&'t Route, u64),
    /// No route matches (and there is no body to skip): 404 here.
    NoRoute,
    /// hyper and the hot path take the connection.
    HandOff,
}

fn plan<'t>(table: &'t Table, head: &RequestHead) -> Plan<'t> {
    let headers = &head.headers;
    if head.minor != 1
        || !head.target.as_str().starts_with('/')
        || headers.contains_key(header::UPGRADE)
        || headers.contains_key(header::EXPECT)
        || headers.contains_key(header::TRANSFER_ENCODING)
        || headers.get_all(header::CONTENT_LENGTH).iter().count() > 1
    {
        return Plan::HandOff;
    }
    let Some(length) = content_length(headers) else {
        return Plan::HandOff;
    };
    let host = headers.get(header::HOST).and_then(|h| h.to_str().ok());
    let Some(route) = table.route(&head.method, host, head.target.path()) else {
        return if length == 0 {
            Plan::NoRoute
        } else {
            Plan::HandOff
        };
    };
    let pool = &route.pool;
    let plain = route.composite.is_none()
        && route.shadow.is_none()
        && pool.protocol == Protocol::Http1
        && !pool.https;
    if plain {
        Plan::Forward(route, length)
    } else {
        Plan::HandOff
    }
}

/// Serves one client connection: requests forwarded here until one is not, then hyper.
async fn connection(
    proxy: Arc<Proxy>,
    mut client: TcpStream,
    peer: SocketAddr,
    shutdown: CancellationToken,
) {
    let mut buf = bytes::BytesMut::with_capacity(READ_CHUNK);
    let mut scratch = Vec::with_capacity(1024);
    loop {
        let head = loop {
            if !buf.is_empty() {
                match parse_request(&buf) {
                    Parsed::Done(head) => break head,
                    Parsed::Refused => return hand_off(proxy, client, buf, peer, shutdown).await,
                    Parsed::Partial if buf.len() >= MAX_HEAD_BYTES => {
                        let too_large = Answer {
                            status: StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
                            body: "request head too large\n",
                            retry_after: None,
                            keep: false,
                        };
                        let _ = answer(&mut client, &Method::GET, too_large).await;
                        return;
                    }
                    Parsed::Partial => {}
                }
            }
            buf.reserve(READ_CHUNK);
            let read = if buf.is_empty() {
                tokio::select! {
                    () = shutdown.cancelled() => return,
                    read = tokio::time::timeout(CLIENT_IDLE, client.read_buf(&mut buf)) => read,
                }
            } else {
                tokio::time::timeout(CLIENT_IDLE, client.read_buf(&mut buf)).await
            };
            match read {
                Ok(Ok(0) | Err(_)) | Err(_) => return,
                Ok(Ok(_)) => {}
            }
        };
        let table = proxy.table.load_full();
        let (route, body_length) = match plan(&table, &head) {
            Plan::Forward(route, length) => (route, length),
            Plan::NoRoute => {
                bytes::Buf::advance(&mut buf, head.length);
                let keep = !has_token(&head.headers, header::CONNECTION, "close");
                let no_route = Answer {
                    status: StatusCode::NOT_FOUND,
                    body: "no route\n",
                    retry_after: None,
                    keep,
                };
                match answer(&mut client, &head.method, no_route).await {
                    Ok(()) if keep => continue,
                    _ => return,
                }
            }
            Plan::HandOff => return hand_off(proxy, client, buf, peer, shutdown).await,
        };
        if body_length > MAX_BUFFERED_BODY {
            return hand_off(proxy, client, buf, peer, shutdown).await;
        }
        // The whole body (bounded above) before anything is sent.
        let whole = head.length + usize::try_from(body_length).unwrap_or(usize::MAX);
        while buf.len() < whole {
            buf.reserve(whole - buf.len());
            match tokio::time::timeout(CLIENT_IDLE, client.read_buf(&mut buf)).await {
                Ok(Ok(0) | Err(_)) | Err(_) => return,
                Ok(Ok(_)) => {}
            }
        }
        bytes::Buf::advance(&mut buf, head.length);
        proxy
            .listener_stats
            .forwarded
            .fetch_add(1, Ordering::Relaxed);
        let exchange = Exchange {
            proxy: &proxy,
            table: &table,
            route,
            peer,
        };
        match exchange
            .forward(head, body_length, &mut client, &mut buf, &mut scratch)
            .await
        {
            Ok(true) if !shutdown.is_cancelled() => {}
            _ => return,
        }
    }
}

/// The request body's length: 0 without `Content-Length`, `None` when it is not a number.
fn content_length(headers: &HeaderMap) -> Option<u64> {
    match headers.get(header::CONTENT_LENGTH) {
        None => Some(0),
        Some(value) => decimal(value.as_bytes()),
    }
}

/// Digits only (RFC 9110 §8.6: `1*DIGIT`): `u64::from_str` would also take `+5`, which a
/// backend may read otherwise, the start of a request smuggled past the proxy.
fn decimal(value: &[u8]) -> Option<u64> {
    if value.is_empty() || value.len() > 19 || !value.iter().all(u8::is_ascii_digit) {
        return None;
    }
    value.iter().try_fold(0u64, |n, d| {
        n.checked_mul(10)?.checked_add(u64::from(d - b'0'))
    })
}

/// A short answer of the proxy's own: its status, text, `Retry-After`, and whether the
/// client connection stays open.
struct Answer<'a> {
    status: StatusCode,
    body: &'a str,
    retry_after: Option<u64>,
    keep: bool,
}

/// Writes `answer` to the request made with `method` (to `HEAD`, the head only).
async fn answer(client: &mut TcpStream, method: &Method, answer: Answer<'_>) -> io::Result<()> {
    let Answer {
        status,
        body,
        retry_after,
        keep,
    } = answer;
    use std::fmt::Write as _;
    let mut out = String::with_capacity(160 + body.len());
    let _ = write!(
        out,
        "HTTP/1.1 {} {}\r\ncontent-type: text/plain; charset=utf-8\r\ncontent-length: {}\r\n",
        status.as_u16(),
        status.canonical_reason().unwrap_or(""),
        body.len()
    );
    if let Some(seconds) = retry_after {
        let _ = write!(out, "retry-after: {seconds}\r\n");
    }
    if !keep {
        out.push_str("connection: close\r\n");
    }
    out.push_str("\r\n");
    if *method != Method::HEAD {
        out.push_str(body);
    }
    client.write_all(out.as_bytes()).await
}

/// One request forwarded here.
struct Exchange<'a> {
    proxy: &'a Proxy,
    table: &'a Table,
    route: &'a Route,
    peer: SocketAddr,
}

/// Why an attempt got no answer.
enum Failed {
    /// Nothing reached the backend.
    Connect(String),
    /// The connection turned out closed before anything came back (the request may be
    /// sent again on another if it is idempotent).
    Stale,
    /// The exchange failed after the request was sent.
    Exchange(String),
    /// The connection refused the first write: nothing reached the backend.
    Unsent,
}

impl Exchange<'_> {
    /// Forwards one request and its answer; `Ok(true)` when the client connection can take
    /// the next request.
    async fn forward(
        &self,
        head: RequestHead,
        body_length: u64,
        client: &mut TcpStream,
        buf: &mut bytes::BytesMut,
        scratch: &mut Vec<u8>,
    ) -> io::Result<bool> {
        let Self {
            proxy,
            table,
            route,
            peer,
        } = *self;
        let started = Instant::now();
        proxy.budget.record_request(started);
        let RequestHead {
            method,
            target,
            mut headers,
            ..
        } = head;
        let keep_client = !has_token(&headers, header::CONNECTION, "close");
        let host_header = headers.get(header::HOST).cloned();
        let host = host_header.as_ref().and_then(|h| h.to_str().ok());
        let upstream_target = match route.upstream_path(target.path()) {
            std::borrow::Cow::Borrowed(_) => std::borrow::Cow::Borrowed(target.as_str()),
            std::borrow::Cow::Owned(path) => std::borrow::Cow::Owned(match target.query() {
                Some(q) => format!("{path}?{q}"),
                None => path,
            }),
        };
        let had_length = headers.contains_key(header::CONTENT_LENGTH);
        prepare_headers(
            &mut headers,
            route,
            host,
            host_header.as_ref(),
            false,
            Some(peer.ip()),
        );
        // The framing is what is sent, whatever the client named in `Connection`: a length
        // dropped there would let the body be read by the backend as a request of its own.
        headers.remove(header::TRANSFER_ENCODING);
        if had_length || body_length > 0 {
            headers.insert(header::CONTENT_LENGTH, HeaderValue::from(body_length));
        }
        let body = usize::try_from(body_length).unwrap_or(usize::MAX);
        // A rewritten target as the hot path checks it (`rewrite` may hold what a request
        // line cannot).
        if let std::borrow::Cow::Owned(rewritten) = &upstream_target
            && let Err(error) = http::uri::PathAndQuery::try_from(rewritten.as_str())
        {
            bytes::Buf::advance(buf, body);
            let message = format!("bad path: {error}\n");
            let bad_path = Answer {
                status: StatusCode::BAD_REQUEST,
                body: &message,
                retry_after: None,
                keep: keep_client,
            };
            answer(client, &method, bad_path).await?;
            return Ok(keep_client);
        }
        let replayable = is_idempotent(&method) && body == 0;
        let attempts = if replayable { 1 + route.retries } else { 1 };
        let pool = &route.pool;
        let deadline = started + route.timeout;
        let mut tried = Tried::default();
        let mut last_error = String::new();
        let mut granted = false;
        for attempt in 0..attempts {
            if attempt > 0 && !std::mem::take(&mut granted) && !proxy.retry(route, table) {
                break;
            }
            let Some(index) = pool.choose(&headers, tried.as_slice(), Instant::now()) else {
                break;
            };
            tried.push(index);
            let backend = &pool.backends[index];
            let guard = Outstanding::new(backend);
            backend.requests.fetch_add(1, Ordering::Relaxed);
            scratch.clear();
            write_request_head(scratch, &method, &upstream_target, &headers, backend);
            scratch.extend_from_slice(&buf[..body]);
            let sent = tokio::time::timeout_at(deadline, send(backend, scratch, &method)).await;
            let now = Instant::now();
            pool.upstream_seconds
                .record(now.duration_since(started).as_secs_f64());
            let (mut conn, response) = match sent {
                Ok(Ok(answered)) => answered,
                Ok(Err(failed)) => {
                    proxy.record(pool, backend, Outcome::Failure, now);
                    match failed {
                        Failed::Connect(error) | Failed::Exchange(error) => {
                            tracing::debug!(module = "reverseproxy", pool = %pool.name, backend = %backend.label(), %error, "upstream request failed");
                            last_error = format!("backend {} failed: {error}", backend.label());
                        }
                        Failed::Stale | Failed::Unsent => {
                            last_error =
                                format!("backend {} closed the connection", backend.label());
                        }
                    }
                    continue;
                }
                Err(_) => {
                    proxy.record(pool, backend, Outcome::Failure, now);
                    route.series[index].count(m::TIMEOUT);
                    let message = route.timed_out(backend);
                    bytes::Buf::advance(buf, body);
                    // The backend may answer late: the connection to it is dropped, and the
                    // client's goes on.
                    let timed_out = Answer {
                        status: StatusCode::GATEWAY_TIMEOUT,
                        body: &message,
                        retry_after: None,
                        keep: keep_client,
                    };
                    answer(client, &method, timed_out).await?;
                    return Ok(keep_client);
                }
            };
            let status = response.status;
            proxy.record(pool, backend, Outcome::of(status), now);
            if attempt + 1 < attempts
                && route.retry_on.contains(&status.as_u16())
                && proxy.retry(route, table)
            {
                // The answer is let go with its connection.
                granted = true;
                last_error = format!("backend {} answered {status}", backend.label());
                continue;
            }
            route.series[index].count(m::class_index(status));
            bytes::Buf::advance(buf, body);
            let keep = keep_client && response.framing != Framing::Close;
            scratch.clear();
            write_response_head(
                scratch,
                response.status,
                &response.reason,
                response.headers,
                response.framing,
                keep,
            );
            let ended = relay_body(&mut conn, response.framing, client, scratch).await?;
            drop(guard);
            if ended && response.keep_alive && conn.buf.is_empty() {
                backend.fast_idle.checkin(conn);
            }
            return Ok(ended && keep);
        }
        route.unanswered.count(4);
        bytes::Buf::advance(buf, body);
        let keep = keep_client;
        if tried.as_slice().is_empty() {
            let (body, retry_after) = pool.unavailable(Instant::now());
            let unavailable = Answer {
                status: StatusCode::SERVICE_UNAVAILABLE,
                body: &body,
                retry_after: Some(retry_after),
                keep,
            };
            answer(client, &method, unavailable).await?;
            return Ok(keep);
        }
        let message = format!("{last_error}\n");
        let bad_gateway = Answer {
            status: StatusCode::BAD_GATEWAY,
            body: &message,
            retry_after: None,
            keep,
        };
        answer(client, &method, bad_gateway).await?;
        Ok(keep)
    }
}

fn write_request_head(
    out: &mut Vec<u8>,
    method: &Method,
    target: &str,
    headers: &HeaderMap,
    backend: &Backend,
) {
    out.extend_from_slice(method.as_str().as_bytes());
    out.push(b' ');
    out.extend_from_slice(target.as_bytes());
    out.extend_from_slice(b" HTTP/1.1\r\n");
    if !headers.contains_key(header::HOST) {
        out.extend_from_slice(b"host: ");
        out.extend_from_slice(backend.authority.as_str().as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    write_headers(out, headers);
}

fn write_headers(out: &mut Vec<u8>, headers: &HeaderMap) {
    for (name, value) in headers {
        out.extend_from_slice(name.as_str().as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(value.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"\r\n");
}

fn write_response_head(
    out: &mut Vec<u8>,
    status: StatusCode,
    reason: &str,
    mut headers: HeaderMap,
    framing: Framing,
    keep: bool,
) {
    use std::io::Write as _;
    // Relayed as it comes, chunk framing and all, so its codings are named as they came.
    let codings: Vec<HeaderValue> = if framing == Framing::Chunked {
        headers
            .get_all(header::TRANSFER_ENCODING)
            .iter()
            .cloned()
            .collect()
    } else {
        Vec::new()
    };
    crate::proxy::strip_response_headers(&mut headers, false);
    if matches!(framing, Framing::Chunked | Framing::Close) {
        // A length beside a transfer coding is not to be trusted, nor passed on (RFC 9112
        // §6.3): the body is framed by its chunks or by the close.
        headers.remove(header::CONTENT_LENGTH);
    }
    let reason = if reason.is_empty() {
        status.canonical_reason().unwrap_or("")
    } else {
        reason
    };
    let _ = write!(out, "HTTP/1.1 {} {reason}\r\n", status.as_u16());
    for coding in &codings {
        out.extend_from_slice(b"transfer-encoding: ");
        out.extend_from_slice(coding.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    if !keep {
        out.extend_from_slice(b"connection: close\r\n");
    }
    write_headers(out, &headers);
}

/// Sends `request` (head and body) and reads the answer's head, on an idle connection of
/// `backend` or a new one.
async fn send(
    backend: &Backend,
    request: &[u8],
    method: &Method,
) -> Result<(FastConn, ResponseHead), Failed> {
    loop {
        let (mut conn, fresh) = match backend.fast_idle.checkout(Instant::now(), FastConn::alive) {
            Some(conn) => (conn, false),
            None => (connect(backend).await?, true),
        };
        match exchange(&mut conn, request, method).await {
            Ok(response) => return Ok((conn, response)),
            // Another connection, or a new one: a reused connection was found closed before
            // anything came back. Only an idempotent request is sent again: the backend may
            // have taken it before closing.
            Err(Failed::Stale) if !fresh && is_idempotent(method) => {}
            // Nothing was written: any request can go on another.
            Err(Failed::Unsent) if !fresh => {}
            Err(Failed::Unsent) => {
                return Err(Failed::Connect(
                    "the backend closed a new connection".into(),
                ));
            }
            Err(Failed::Stale) => {
                return Err(Failed::Exchange(
                    "the backend closed the connection before answering".into(),
                ));
            }
            Err(failed) => return Err(failed),
        }
    }
}

async fn exchange(
    conn: &mut FastConn,
    request: &[u8],
    method: &Method,
) -> Result<ResponseHead, Failed> {
    let mut written = 0;
    while written < request.len() {
        match conn.stream.write(&request[written..]).await {
            Ok(n) if n > 0 => written += n,
            _ if written == 0 => return Err(Failed::Unsent),
            Ok(_) => return Err(Failed::Exchange("the backend stopped reading".into())),
            Err(error) => return Err(Failed::Exchange(error.to_string())),
        }
    }
    loop {
        if !conn.buf.is_empty() {
            match parse_response(&conn.buf, method) {
                Ok(Some(response)) if response.status.is_informational() => {
                    if response.status == StatusCode::SWITCHING_PROTOCOLS {
                        return Err(Failed::Exchange(
                            "101 to a request that asked no upgrade".into(),
                        ));
                    }
                    // An interim answer (103 Early Hints): not relayed, as hyper's client.
                    bytes::Buf::advance(&mut conn.buf, response.length);
                }
                Ok(Some(response)) => {
                    bytes::Buf::advance(&mut conn.buf, response.length);
                    return Ok(response);
                }
                Ok(None) if conn.buf.len() >= MAX_HEAD_BYTES => {
                    return Err(Failed::Exchange("response head too large".into()));
                }
                Ok(None) => {}
                Err(error) => return Err(Failed::Exchange(error)),
            }
        }
        conn.buf.reserve(READ_CHUNK);
        match conn.stream.read_buf(&mut conn.buf).await {
            Ok(0) | Err(_) if conn.buf.is_empty() => return Err(Failed::Stale),
            Ok(0) => {
                return Err(Failed::Exchange(
                    "the backend closed the connection mid-answer".into(),
                ));
            }
            Err(error) => return Err(Failed::Exchange(error.to_string())),
            Ok(_) => {}
        }
    }
}

/// Relays the answer's body (the head is in `head`, sent with the first bytes); true when
/// it ended as framed, so the backend connection can be reused.
async fn relay_body(
    conn: &mut FastConn,
    framing: Framing,
    client: &mut TcpStream,
    head: &mut Vec<u8>,
) -> io::Result<bool> {
    let mut left = match framing {
        Framing::Empty => 0,
        Framing::Length(n) => n,
        Framing::Chunked | Framing::Close => u64::MAX,
    };
    let mut chunks = Chunks::default();
    let mut sent_head = false;
    loop {
        // What the buffer holds of this body.
        let available = usize::try_from(left)
            .unwrap_or(usize::MAX)
            .min(conn.buf.len());
        let (take, ended) = match framing {
            Framing::Chunked => match chunks.scan(&conn.buf[..available]) {
                Ok(Some(end)) => (end, true),
                Ok(None) => (available, false),
                Err(()) => {
                    return Err(io::Error::new(
                        io::ErrorKind::InvalidData,
                        "malformed chunked body",
                    ));
                }
            },
            _ => (available, left == available as u64),
        };
        if !sent_head {
            // The head and the first bytes of the body in one write.
            head.extend_from_slice(&conn.buf[..take]);
            client.write_all(head).await?;
            sent_head = true;
        } else if take > 0 {
            client.write_all(&conn.buf[..take]).await?;
        }
        bytes::Buf::advance(&mut conn.buf, take);
        if framing != Framing::Chunked && framing != Framing::Close {
            left -= take as u64;
        }
        if ended && framing != Framing::Close {
            return Ok(true);
        }
        conn.buf.reserve(READ_CHUNK);
        let n = conn.stream.read_buf(&mut conn.buf).await?;
        if n == 0 {
            if framing == Framing::Close {
                client.write_all(&conn.buf).await?;
                conn.buf.clear();
                return Ok(false);
            }
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "the backend closed the connection mid-body",
            ));
        }
    }
}

/// Follows chunked framing over the bytes it is shown (RFC 9112 §7.1), to find where the
/// body ends; the bytes themselves are relayed as they are.
#[derive(Debug, Default)]
struct Chunks {
    state: ChunkState,
    size: u64,
    /// The size line has a digit so far.
    digits: bool,
}

#[derive(Debug, Default, Clone, Copy, PartialEq)]
enum ChunkState {
    #[default]
    Size,
    /// Spaces or tabs after the size, before `;` or the line's end.
    SizeSpace,
    Extension,
    SizeLf,
    Data,
    DataCr,
    DataLf,
    TrailerStart,
    Trailer,
    EndLf,
}

impl Chunks {
    /// Scans `bytes`: `Some(n)` when the body ends after its first `n` bytes.
    fn scan(&mut self, bytes: &[u8]) -> Result<Option<usize>, ()> {
        let mut i = 0;
        while i < bytes.len() {
            let b = bytes[i];
            match self.state {
                ChunkState::Size => match b {
                    b'0'..=b'9' | b'a'..=b'f' | b'A'..=b'F' => {
                        let digit = u64::from(char::from(b).to_digit(16).ok_or(())?);
                        self.size = self.size.checked_mul(16).ok_or(())? + digit;
                        self.digits = true;
                    }
                    // A size line needs its size.
                    _ if !self.digits => return Err(()),
                    b' ' | b'\t' => self.state = ChunkState::SizeSpace,
                    b';' => self.state = ChunkState::Extension,
                    b'\r' => self.state = ChunkState::SizeLf,
                    _ => return Err(()),
                },
                ChunkState::SizeSpace => match b {
                    b' ' | b'\t' => {}
                    b';' => self.state = ChunkState::Extension,
                    b'\r' => self.state = ChunkState::SizeLf,
                    _ => return Err(()),
                },
                ChunkState::Extension => {
                    if b == b'\r' {
                        self.state = ChunkState::SizeLf;
                    }
                }
                ChunkState::SizeLf => {
                    if b != b'\n' {
                        return Err(());
                    }
                    self.state = if self.size == 0 {
                        ChunkState::TrailerStart
                    } else {
                        ChunkState::Data
                    };
                }
                ChunkState::Data => {
                    let skip = usize::try_from(self.size)
                        .unwrap_or(usize::MAX)
                        .min(bytes.len() - i);
                    self.size -= skip as u64;
                    i += skip;
                    if self.size == 0 {
                        self.state = ChunkState::DataCr;
                    }
                    continue;
                }
                ChunkState::DataCr => {
                    if b != b'\r' {
                        return Err(());
                    }
                    self.state = ChunkState::DataLf;
                }
                ChunkState::DataLf => {
                    if b != b'\n' {
                        return Err(());
                    }
                    self.state = ChunkState::Size;
                    self.digits = false;
                }
                ChunkState::TrailerStart => {
                    self.state = if b == b'\r' {
                        ChunkState::EndLf
                    } else {
                        ChunkState::Trailer
                    };
                }
                ChunkState::Trailer => {
                    if b == b'\n' {
                        self.state = ChunkState::TrailerStart;
                    }
                }
                ChunkState::EndLf => {
                    if b != b'\n' {
                        return Err(());
                    }
                    return Ok(Some(i + 1));
                }
            }
            i += 1;
        }
        Ok(None)
    }
}

/// A keep-alive connection to a backend, with what was read past the last answer.
pub(crate) struct FastConn {
    stream: TcpStream,
    buf: bytes::BytesMut,
}

impl FastConn {
    /// Whether an idle connection can take a request: the reactor marks one the backend
    /// closed (or wrote to unasked) readable; one it has not marked costs no system call.
    fn alive(&mut self) -> bool {
        let mut probe = [0u8; 1];
        matches!(self.stream.try_read(&mut probe), Err(e) if e.kind() == io::ErrorKind::WouldBlock)
    }
}

async fn connect(backend: &Backend) -> Result<FastConn, Failed> {
    let stream = crate::upstream::dial(backend)
        .await
        .map_err(|e| Failed::Connect(format!("connect: {e}")))?;
    Ok(FastConn {
        stream,
        buf: bytes::BytesMut::with_capacity(READ_CHUNK),
    })
}

/// Serves the rest of the connection with hyper and the hot path ([`Proxy::handle`]), the
/// bytes already read first.
async fn hand_off(
    proxy: Arc<Proxy>,
    client: TcpStream,
    read: bytes::BytesMut,
    peer: SocketAddr,
    shutdown: CancellationToken,
) {
    proxy
        .listener_stats
        .handed_off
        .fetch_add(1, Ordering::Relaxed);
    let io = Rewind {
        prefix: read.freeze(),
        inner: client,
    };
    let service =
        hyper::service::service_fn(move |request: http::Request<hyper::body::Incoming>| {
            let proxy = Arc::clone(&proxy);
            let mut request = request.map(Body::new);
            request
                .extensions_mut()
                .insert(axum::extract::ConnectInfo(peer));
            async move { Ok::<_, Infallible>(proxy.handle(request).await) }
        });
    let builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
    let connection = builder.serve_connection_with_upgrades(TokioIo::new(io), service);
    tokio::pin!(connection);
    tokio::select! {
        _ = connection.as_mut() => {}
        () = shutdown.cancelled() => {
            connection.as_mut().graceful_shutdown();
            let _ = connection.await;
        }
    }
}

/// A stream that gives `prefix` before its own bytes.
struct Rewind {
    prefix: Bytes,
    inner: TcpStream,
}

impl AsyncRead for Rewind {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        out: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if !self.prefix.is_empty() {
            let n = self.prefix.len().min(out.remaining());
            out.put_slice(&self.prefix[..n]);
            bytes::Buf::advance(&mut self.prefix, n);
            if self.prefix.is_empty() {
                // Lets the read buffer go (an upgraded connection may live for hours).
                self.prefix = Bytes::new();
            }
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut self.inner).poll_read(cx, out)
    }
}

impl AsyncWrite for Rewind {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, data)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, data)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_stop_waits_for_exchanges_up_to_the_timeout_then_cuts_them() {
        let mut tasks = tokio::task::JoinSet::new();
        let finished = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let flag = Arc::clone(&finished);
        tasks.spawn(async move {
            tokio::time::sleep(Duration::from_secs(3)).await;
            flag.store(true, Ordering::SeqCst);
        });
        tasks.spawn(std::future::pending::<()>());
        let started = Instant::now();
        assert_eq!(drain(&mut tasks, Duration::from_secs(20)).await, 1);
        assert_eq!(started.elapsed(), Duration::from_secs(20));
        assert!(finished.load(Ordering::SeqCst), "the short one finished");
        assert!(tasks.is_empty());

        tasks.spawn(async {});
        let started = Instant::now();
        assert_eq!(drain(&mut tasks, Duration::from_secs(20)).await, 0);
        assert_eq!(started.elapsed(), Duration::ZERO, "nothing left: no wait");
    }

    fn scan_all(pieces: &[&[u8]]) -> Result<Option<usize>, ()> {
        let mut chunks = Chunks::default();
        let mut offset = 0;
        for piece in pieces {
            if let Some(end) = chunks.scan(piece)? {
                return Ok(Some(offset + end));
            }
            offset += piece.len();
        }
        Ok(None)
    }

    #[test]
    fn chunked_framing_is_followed_across_reads() {
        let body = b"4\r\nWiki\r\n5;ext=1\r\npedia\r\n0\r\nx-trailer: 1\r\n\r\nNEXT";
        let whole = body.len() - 4;
        assert_eq!(scan_all(&[body]), Ok(Some(whole)));
        for cut in 1..whole {
            let (a, b) = body.split_at(cut);
            assert_eq!(scan_all(&[a, b]), Ok(Some(whole)), "cut at {cut}");
        }
        assert_eq!(scan_all(&[b"0\r\n\r\n"]), Ok(Some(5)));
        assert_eq!(scan_all(&[b"a\r\n0123456789"]), Ok(None));
        assert_eq!(scan_all(&[b"zz\r\n"]), Err(()));
        assert_eq!(scan_all(&[b"5 \t;x=1\r\nhello\r\n0\r\n\r\n"]), Ok(Some(21)));
        // A size line without its size is not the last chunk, and one size is one number.
        assert_eq!(scan_all(&[b"\r\n\r\n"]), Err(()));
        assert_eq!(scan_all(&[b";x\r\n\r\n"]), Err(()));
        assert_eq!(scan_all(&[b"5 6\r\n"]), Err(()));
        assert_eq!(scan_all(&[b"1\r\na\r\n\r\n"]), Err(()));
        assert_eq!(scan_all(&[b"2\r\nabXY"]), Err(()));
    }

    #[test]
    fn lengths_are_digits_only() {
        assert_eq!(decimal(b"0"), Some(0));
        assert_eq!(decimal(b"1048576"), Some(1 << 20));
        for bad in [
            &b""[..],
            b"+5",
            b"-1",
            b" 5",
            b"5 ",
            b"0x10",
            b"99999999999999999999",
        ] {
            assert_eq!(decimal(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn a_relayed_chunked_answer_carries_no_length() {
        let mut headers = HeaderMap::new();
        headers.insert(header::CONTENT_LENGTH, HeaderValue::from_static("10"));
        headers.insert(
            header::TRANSFER_ENCODING,
            HeaderValue::from_static("gzip, chunked"),
        );
        headers.insert("x-kept", HeaderValue::from_static("1"));
        let mut out = Vec::new();
        write_response_head(
            &mut out,
            StatusCode::OK,
            "",
            headers,
            Framing::Chunked,
            true,
        );
        let head = String::from_utf8(out).unwrap();
        assert_eq!(
            head,
            "HTTP/1.1 200 OK\r\ntransfer-encoding: gzip, chunked\r\nx-kept: 1\r\n\r\n"
        );
    }

    #[test]
    fn response_framing_follows_rfc_9112() {
        let get = Method::GET;
        let framing = |raw: &str, method: &Method| {
            parse_response(raw.as_bytes(), method).map(|r| r.map(|r| (r.framing, r.keep_alive)))
        };
        assert_eq!(
            framing("HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok", &get),
            Ok(Some((Framing::Length(2), true)))
        );
        assert_eq!(
            framing(
                "HTTP/1.1 200 OK\r\ntransfer-encoding: gzip, chunked\r\n\r\n",
                &get
            ),
            Ok(Some((Framing::Chunked, true)))
        );
        assert_eq!(
            framing("HTTP/1.1 200 OK\r\n\r\n", &get),
            Ok(Some((Framing::Close, false)))
        );
        assert_eq!(
            framing(
                "HTTP/1.1 200 OK\r\ncontent-length: 9\r\n\r\n",
                &Method::HEAD
            ),
            Ok(Some((Framing::Empty, true)))
        );
        assert_eq!(
            framing(
                "HTTP/1.1 304 Not Modified\r\nconnection: close\r\n\r\n",
                &get
            ),
            Ok(Some((Framing::Empty, false)))
        );
        assert_eq!(framing("HTTP/1.1 200 OK\r\ncontent-le", &get), Ok(None));
        assert!(
            framing(
                "HTTP/1.1 200 OK\r\ncontent-length: 1\r\ncontent-length: 2\r\n\r\n",
                &get
            )
            .is_err()
        );
        assert!(framing("HTTP/1.1 200 OK\r\ncontent-length: x\r\n\r\n", &get).is_err());
    }
}
