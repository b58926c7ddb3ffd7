//! One connection: its request service, its activity, and the watchdog that closes it when
//! it sits idle or a client is too slow to send headers.
//!
//! The header-read watchdog times HTTP/1 request heads: bytes arriving on a connection with no
//! request in flight start a request head. On HTTP/2 the client sends frames between requests
//! (PING, WINDOW_UPDATE, SETTINGS) that start no request, so once the connection preface has
//! been read the watchdog only applies `idle_timeout`. The protocol is told from the first
//! bytes (the HTTP/2 preface or not), the same way hyper's auto builder picks it; a client
//! that stalls inside the preface is still cut at `header_read_timeout`.

use std::convert::Infallible;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, AtomicU64, AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::Body;
use http::header::{CONNECTION, CONTENT_TYPE};
use http::{HeaderValue, Request, Response, StatusCode, Version};
use hyper::body::Incoming;
use modular_core::http::ServedRouter;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::Notify;
use tokio::time::Instant;
use tower::ServiceExt as _;
use tower_http::limit::RequestBodyLimit;

use crate::server::Stats;

/// The per-connection limits, fixed when the connection is accepted.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Limits {
    pub(crate) body: usize,
    pub(crate) request_timeout: Option<Duration>,
    pub(crate) header_read_timeout: Duration,
    pub(crate) idle_timeout: Option<Duration>,
}

/// What the watchdog needs to know about a connection. Times are milliseconds since the
/// server's epoch (tokio time, so paused-time tests drive it).
#[derive(Debug)]
pub(crate) struct Activity {
    epoch: Instant,
    in_flight: AtomicUsize,
    /// When the last request finished (or the connection opened).
    last_done: AtomicU64,
    /// When bytes of a new request head started arriving, plus one; 0 when none.
    head_started: AtomicU64,
    /// [`UNKNOWN`], [`HTTP1`] or [`HTTP2`], told from the first bytes.
    protocol: AtomicU8,
    changed: Notify,
}

/// Not enough bytes yet to tell.
const UNKNOWN: u8 = 0;
/// The first bytes were not the HTTP/2 preface.
const HTTP1: u8 = 1;
/// The connection opened with the HTTP/2 preface.
const HTTP2: u8 = 2;

/// What an HTTP/2 client sends first (RFC 9113 §3.4), over cleartext or TLS.
const HTTP2_PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

impl Activity {
    pub(crate) fn new(epoch: Instant) -> Self {
        let activity = Self {
            epoch,
            in_flight: AtomicUsize::new(0),
            last_done: AtomicU64::new(0),
            head_started: AtomicU64::new(0),
            protocol: AtomicU8::new(UNKNOWN),
            changed: Notify::new(),
        };
        activity.last_done.store(activity.now(), Ordering::Release);
        activity
    }

    fn now(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    fn at(&self, millis: u64) -> Instant {
        self.epoch + Duration::from_millis(millis)
    }

    // Bytes arriving, the protocol told, a request starting: all of these happen while the
    // connection task polls the connection, after which the watchdog (the same task) looks
    // at the activity again, so they wake nobody. Only a request finishing on another task
    // (HTTP/2 runs each stream's request as a task of its own) needs a wake-up.

    fn on_bytes(&self) {
        if self.protocol.load(Ordering::Acquire) != HTTP2
            && self.in_flight.load(Ordering::Acquire) == 0
            && self.head_started.load(Ordering::Acquire) == 0
        {
            self.head_started.store(self.now() + 1, Ordering::Release);
        }
    }

    /// The protocol is known. HTTP/2 frames between requests are no request head: the
    /// header-read deadline the preface started is dropped, and `idle_timeout` rules.
    fn set_protocol(&self, protocol: u8) {
        self.protocol.store(protocol, Ordering::Release);
        if protocol == HTTP2 {
            self.head_started.store(0, Ordering::Release);
        }
    }

    fn request_started(&self) {
        self.in_flight.fetch_add(1, Ordering::AcqRel);
        self.head_started.store(0, Ordering::Release);
    }

    fn request_finished(&self) {
        self.last_done.store(self.now(), Ordering::Release);
        // An HTTP/1 request's future is polled (and dropped) inside the connection's poll;
        // an HTTP/2 one is a task of its own, which must wake the watchdog.
        if self.in_flight.fetch_sub(1, Ordering::AcqRel) == 1
            && self.protocol.load(Ordering::Acquire) == HTTP2
        {
            self.changed.notify_one();
        }
    }

    /// What the watchdog should do next.
    pub(crate) fn next(&self, limits: &Limits) -> Watch {
        if self.in_flight.load(Ordering::Acquire) > 0 {
            return Watch::WaitForChange;
        }
        let head = self.head_started.load(Ordering::Acquire);
        if head != 0 {
            let deadline = self.at(head - 1) + limits.header_read_timeout;
            return if Instant::now() >= deadline {
                Watch::HeadersTooSlow
            } else {
                Watch::Until(deadline)
            };
        }
        match limits.idle_timeout {
            None => Watch::WaitForChange,
            Some(idle) => {
                let deadline = self.at(self.last_done.load(Ordering::Acquire)) + idle;
                if Instant::now() >= deadline {
                    Watch::Idle
                } else {
                    Watch::Until(deadline)
                }
            }
        }
    }

    /// Resolves when an HTTP/2 request finishes (the changes made while the connection is
    /// polled need no wake-up: the watchdog looks after each poll).
    pub(crate) fn changed(&self) -> tokio::sync::futures::Notified<'_> {
        self.changed.notified()
    }
}

/// The watchdog's verdict.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Watch {
    /// Nothing to time now; wake on the next change.
    WaitForChange,
    /// Check again at this instant (or on a change).
    Until(Instant),
    /// Idle past `idle_timeout`: close gracefully.
    Idle,
    /// A request head took longer than `header_read_timeout`: close.
    HeadersTooSlow,
}

/// The stream of a connection, noting when request bytes arrive and telling HTTP/2 from
/// HTTP/1 by its first bytes.
pub(crate) struct Watched<S> {
    inner: S,
    activity: Arc<Activity>,
    /// How many bytes of the HTTP/2 preface matched so far; `None` once the protocol is known.
    preface: Option<usize>,
}

impl<S> Watched<S> {
    pub(crate) fn new(inner: S, activity: Arc<Activity>) -> Self {
        Self {
            inner,
            activity,
            preface: Some(0),
        }
    }

    fn sniff(&mut self, read: &[u8]) {
        let Some(matched) = self.preface else {
            return;
        };
        let expected = &HTTP2_PREFACE[matched..];
        let n = expected.len().min(read.len());
        if read[..n] != expected[..n] {
            self.preface = None;
            self.activity.set_protocol(HTTP1);
        } else if matched + n == HTTP2_PREFACE.len() {
            self.preface = None;
            self.activity.set_protocol(HTTP2);
        } else {
            self.preface = Some(matched + n);
        }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Watched<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let polled = Pin::new(&mut this.inner).poll_read(cx, buf);
        let read = &buf.filled()[before..];
        if !read.is_empty() {
            this.activity.on_bytes();
            this.sniff(read);
        }
        polled
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Watched<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

/// Serves each request with the router current when it arrives, under the connection's body
/// limit and request timeout.
#[derive(Clone)]
pub(crate) struct RequestService {
    pub(crate) router: Arc<ServedRouter>,
    pub(crate) limits: Limits,
    pub(crate) activity: Arc<Activity>,
    pub(crate) stats: Arc<Stats>,
    /// The client's address, given to each request as axum's
    /// [`ConnectInfo`](axum::extract::ConnectInfo)`<SocketAddr>` extension.
    pub(crate) peer: std::net::SocketAddr,
}

/// Counts a request as in flight until dropped.
struct InFlight {
    activity: Arc<Activity>,
    stats: Arc<Stats>,
}

impl InFlight {
    fn enter(activity: &Arc<Activity>, stats: &Arc<Stats>) -> Self {
        activity.request_started();
        stats.in_flight.fetch_add(1, Ordering::AcqRel);
        stats.series.in_flight.increment(1.0);
        stats.requests.fetch_add(1, Ordering::Relaxed);
        Self {
            activity: Arc::clone(activity),
            stats: Arc::clone(stats),
        }
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.stats.in_flight.fetch_sub(1, Ordering::AcqRel);
        self.stats.series.in_flight.decrement(1.0);
        self.activity.request_finished();
    }
}

type ResponseFuture = Pin<Box<dyn Future<Output = Result<Response<Body>, Infallible>> + Send>>;

impl hyper::service::Service<Request<Incoming>> for RequestService {
    type Response = Response<Body>;
    type Error = Infallible;
    type Future = ResponseFuture;

    fn call(&self, mut request: Request<Incoming>) -> Self::Future {
        request
            .extensions_mut()
            .insert(axum::extract::ConnectInfo(self.peer));
        let guard = InFlight::enter(&self.activity, &self.stats);
        // The router of this moment: a reload that swaps it later does not touch this request.
        let router = self.router.load();
        let limits = self.limits;
        let stats = Arc::clone(&self.stats);
        let http1 = matches!(request.version(), Version::HTTP_10 | Version::HTTP_11);
        Box::pin(async move {
            let _guard = guard;
            let service = RequestBodyLimit::new((*router).clone(), limits.body);
            let answer = service.oneshot(request);
            let response = match limits.request_timeout {
                Some(timeout) => match tokio::time::timeout(timeout, answer).await {
                    Ok(Ok(response)) => response.map(Body::new),
                    Err(_elapsed) => timed_out(timeout),
                },
                None => match answer.await {
                    Ok(response) => response.map(Body::new),
                },
            };
            let mut response = response;
            if http1 && stats.draining.load(Ordering::Acquire) {
                // Draining: make keep-alive clients reconnect, so they reach an instance that
                // stays.
                response
                    .headers_mut()
                    .insert(CONNECTION, HeaderValue::from_static("close"));
            }
            Ok(response)
        })
    }
}

fn timed_out(timeout: Duration) -> Response<Body> {
    let body = format!(
        "{{\"error\":\"request timed out after {}\"}}",
        humantime_serde::re::humantime::format_duration(timeout)
    );
    let mut response = Response::new(Body::from(body));
    *response.status_mut() = StatusCode::SERVICE_UNAVAILABLE;
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits() -> Limits {
        Limits {
            body: 1024,
            request_timeout: None,
            header_read_timeout: Duration::from_secs(2),
            idle_timeout: Some(Duration::from_secs(10)),
        }
    }

    #[tokio::test(start_paused = true)]
    async fn an_idle_connection_is_closed_after_the_idle_timeout() {
        let activity = Activity::new(Instant::now());
        assert!(matches!(activity.next(&limits()), Watch::Until(_)));
        tokio::time::advance(Duration::from_secs(10)).await;
        assert_eq!(activity.next(&limits()), Watch::Idle);
    }

    #[tokio::test(start_paused = true)]
    async fn a_request_in_flight_is_never_idle() {
        let activity = Activity::new(Instant::now());
        activity.request_started();
        tokio::time::advance(Duration::from_secs(60)).await;
        assert_eq!(activity.next(&limits()), Watch::WaitForChange);
        activity.request_finished();
        assert!(matches!(activity.next(&limits()), Watch::Until(_)));
    }

    #[tokio::test(start_paused = true)]
    async fn http2_frames_between_requests_start_no_header_deadline() {
        let activity = Arc::new(Activity::new(Instant::now()));
        let mut stream = Watched::new(tokio::io::empty(), Arc::clone(&activity));
        // The preface in two reads: a deadline from the first bytes until it is complete.
        stream.sniff(&HTTP2_PREFACE[..5]);
        activity.on_bytes();
        assert!(activity.head_started.load(Ordering::Acquire) != 0);
        stream.sniff(&HTTP2_PREFACE[5..]);
        assert_eq!(activity.head_started.load(Ordering::Acquire), 0);
        // A PING long after: still only the idle deadline.
        tokio::time::advance(Duration::from_secs(5)).await;
        activity.on_bytes();
        assert!(matches!(activity.next(&limits()), Watch::Until(_)));
        tokio::time::advance(Duration::from_secs(5)).await;
        assert_eq!(activity.next(&limits()), Watch::Idle);
    }

    #[tokio::test(start_paused = true)]
    async fn a_request_line_is_http1_and_keeps_its_header_deadline() {
        let activity = Arc::new(Activity::new(Instant::now()));
        let mut stream = Watched::new(tokio::io::empty(), Arc::clone(&activity));
        activity.on_bytes();
        stream.sniff(b"GET / HTTP/1.1\r\n");
        assert_eq!(activity.protocol.load(Ordering::Acquire), HTTP1);
        tokio::time::advance(Duration::from_secs(2)).await;
        assert_eq!(activity.next(&limits()), Watch::HeadersTooSlow);
    }

    #[tokio::test(start_paused = true)]
    async fn a_slow_request_head_is_cut_off_after_the_header_read_timeout() {
        let activity = Activity::new(Instant::now());
        tokio::time::advance(Duration::from_secs(1)).await;
        activity.on_bytes();
        tokio::time::advance(Duration::from_millis(1999)).await;
        assert!(matches!(activity.next(&limits()), Watch::Until(_)));
        tokio::time::advance(Duration::from_millis(1)).await;
        assert_eq!(activity.next(&limits()), Watch::HeadersTooSlow);
    }
}
