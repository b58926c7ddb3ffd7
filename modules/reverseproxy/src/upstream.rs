//! The HTTP/1.1 upstream client of the hot path: one pool of keep-alive connections per
//! [`Backend`], each connection driven by the request that uses it.
//!
//! hyper-util's pooled client runs every upstream connection as a task of its own: a request
//! is handed to that task through a channel, its response comes back through another, and
//! every chunk of the response body through a third — three task wake-ups per request, most
//! of them across the runtime's threads (futex wake-ups), which the profile of the nginx
//! comparison showed as the largest share after the syscalls themselves. Here the request's
//! own task polls the connection while it waits for the answer, and the response body polls
//! it while streaming; when the body has ended the connection goes back to its backend's
//! idle list. An idle connection is not polled; a checkout notices one the backend closed
//! (its connection future is done or it refuses the request unsent) and takes the next or
//! dials a new one. Upgrades and h2c keep hyper-util's client.

use std::future::{Future, poll_fn};
use std::pin::Pin;
use std::sync::atomic::Ordering;
use std::sync::{Mutex, PoisonError};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::Body;
use hyper::body::{Body as HttpBody, Frame, Incoming, SizeHint};
use hyper::client::conn::http1;
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;
use tokio::time::Instant;

use crate::backend::Backend;
use crate::proxy::Outstanding;

/// Idle connections kept per backend.
const MAX_IDLE: usize = 256;

/// An idle connection older than this is closed instead of used: backends close idle
/// keep-alive connections after a while (nginx after 60 s by default).
const IDLE_TIMEOUT: Duration = Duration::from_secs(30);

/// The connect timeout to a backend.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

type Io = TokioIo<TcpStream>;

/// One keep-alive connection to a backend.
pub(crate) struct Conn {
    sender: http1::SendRequest<Body>,
    io: Pin<Box<http1::Connection<Io, Body>>>,
    /// The connection future has finished: the connection is gone.
    done: bool,
}

impl Conn {
    /// Drives the connection; true once it is gone.
    fn poll_io(&mut self, cx: &mut Context<'_>) -> bool {
        if !self.done && self.io.as_mut().poll(cx).is_ready() {
            self.done = true;
        }
        self.done
    }
}

/// A backend's idle connections of one kind (this module's hyper connections, the own
/// listener's raw ones), most recently used last.
pub(crate) struct IdleList<C>(Mutex<Vec<(C, Instant)>>);

impl<C> Default for IdleList<C> {
    fn default() -> Self {
        Self(Mutex::new(Vec::new()))
    }
}

impl<C> std::fmt::Debug for IdleList<C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IdleList").finish_non_exhaustive()
    }
}

impl<C> IdleList<C> {
    /// The most recently used connection that `usable` takes; those idle past the idle
    /// timeout and those it refuses are closed.
    pub(crate) fn checkout(
        &self,
        now: Instant,
        mut usable: impl FnMut(&mut C) -> bool,
    ) -> Option<C> {
        let mut idle = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        // The oldest are first: drop those past the idle timeout.
        let stale = idle
            .iter()
            .take_while(|(_, since)| now.duration_since(*since) >= IDLE_TIMEOUT)
            .count();
        if stale > 0 {
            idle.drain(..stale);
        }
        while let Some((mut conn, _)) = idle.pop() {
            if usable(&mut conn) {
                return Some(conn);
            }
        }
        None
    }

    /// Keeps `conn` for the next request (unless the list is full).
    pub(crate) fn checkin(&self, conn: C) {
        let mut idle = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        if idle.len() < MAX_IDLE {
            idle.push((conn, Instant::now()));
        }
    }
}

/// Gives `conn` back to `idle` if it can take another request.
fn give_back(idle: &IdleList<Conn>, mut conn: Conn) {
    // One poll lets the connection take in the end of the exchange, so it is ready for
    // the next request (a noop waker: the next user polls it with its own).
    let mut cx = Context::from_waker(std::task::Waker::noop());
    if conn.poll_io(&mut cx) || !conn.sender.is_ready() {
        return;
    }
    idle.checkin(conn);
}

/// Why a request got no answer.
#[derive(Debug)]
pub(crate) enum SendError {
    /// The backend could not be reached: nothing was sent.
    Connect(std::io::Error),
    /// The exchange failed.
    Http(hyper::Error),
    /// hyper-util's client failed (upgrades, h2c).
    Legacy(hyper_util::client::legacy::Error),
}

impl SendError {
    /// Whether nothing reached the backend (safe to retry any request).
    pub(crate) fn is_connect(&self) -> bool {
        match self {
            Self::Connect(_) => true,
            Self::Http(_) => false,
            Self::Legacy(error) => error.is_connect(),
        }
    }
}

impl std::fmt::Display for SendError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Connect(error) => write!(f, "connect: {error}"),
            Self::Http(error) => error.fmt(f),
            Self::Legacy(error) => error.fmt(f),
        }
    }
}

/// A new TCP connection to `backend` (no delay, counted on the backend), within the
/// connect timeout.
pub(crate) async fn dial(backend: &Backend) -> std::io::Result<TcpStream> {
    let authority = &backend.authority;
    let port = authority.port_u16().unwrap_or(80);
    let stream = tokio::time::timeout(
        CONNECT_TIMEOUT,
        TcpStream::connect((authority.host(), port)),
    )
    .await
    .map_err(|_| {
        std::io::Error::new(
            std::io::ErrorKind::TimedOut,
            format!("no connection within {CONNECT_TIMEOUT:?}"),
        )
    })??;
    let _ = stream.set_nodelay(true);
    backend.connections.fetch_add(1, Ordering::Relaxed);
    Ok(stream)
}

async fn connect(backend: &Backend) -> Result<Conn, SendError> {
    let stream = dial(backend).await.map_err(SendError::Connect)?;
    let (sender, io) = http1::handshake(TokioIo::new(stream))
        .await
        .map_err(SendError::Http)?;
    Ok(Conn {
        sender,
        io: Box::pin(io),
        done: false,
    })
}

/// Sends `request` (origin-form URI, `Host` set) on an idle connection of `backend` or a new
/// one, answering the response and the connection it came on (for [`Streamed`]).
pub(crate) async fn send(
    backend: &Backend,
    mut request: http::Request<Body>,
) -> Result<(http::Response<Incoming>, Conn), SendError> {
    loop {
        let (mut conn, fresh) = match backend.idle.checkout(Instant::now(), |_| true) {
            Some(conn) => (conn, false),
            None => (connect(backend).await?, true),
        };
        let ready = poll_fn(|cx| {
            if conn.poll_io(cx) {
                return Poll::Ready(false);
            }
            conn.sender.poll_ready(cx).map(|r| r.is_ok())
        })
        .await;
        if !ready {
            if fresh {
                return Err(SendError::Connect(std::io::Error::new(
                    std::io::ErrorKind::ConnectionReset,
                    "the backend closed a new connection",
                )));
            }
            continue;
        }
        let Conn {
            sender, io, done, ..
        } = &mut conn;
        let mut answer = std::pin::pin!(sender.try_send_request(request));
        let answered = poll_fn(|cx| {
            if !*done && io.as_mut().poll(cx).is_ready() {
                *done = true;
            }
            answer.as_mut().poll(cx)
        })
        .await;
        match answered {
            Ok(response) => return Ok((response, conn)),
            Err(mut error) => match error.take_message() {
                // Never written: the connection was closed under us; another one.
                Some(unsent) if !fresh => request = unsent,
                _ => return Err(SendError::Http(error.into_error())),
            },
        }
    }
}

/// The response body of a pooled exchange: polls the connection along with the body, and
/// gives the connection back to its backend once the body has ended.
/// (A body from hyper-util's client has no connection to give back.)
pub(crate) struct Streamed {
    inner: Incoming,
    conn: Option<Conn>,
    /// Counts the request in flight on its backend until the body is gone.
    guard: Outstanding,
    finished: bool,
}

impl Streamed {
    pub(crate) fn new(inner: Incoming, conn: Option<Conn>, guard: Outstanding) -> Self {
        Self {
            inner,
            conn,
            guard,
            finished: false,
        }
    }
}

impl HttpBody for Streamed {
    type Data = axum::body::Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        let this = &mut *self;
        if let Some(conn) = &mut this.conn {
            conn.poll_io(cx);
        }
        let polled = Pin::new(&mut this.inner).poll_frame(cx);
        match &polled {
            Poll::Ready(None) => this.finished = true,
            Poll::Ready(Some(Ok(_))) if this.inner.is_end_stream() => this.finished = true,
            _ => {}
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

impl Drop for Streamed {
    fn drop(&mut self) {
        if (self.finished || self.inner.is_end_stream())
            && let Some(conn) = self.conn.take()
        {
            give_back(&self.guard.0.idle, conn);
        }
    }
}
