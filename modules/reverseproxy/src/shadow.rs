//! Shadow traffic: a share of a route's requests is also sent to a second pool, in the
//! background, once the client's answer has its status; the mirror's answer is compared with
//! the client's (status, and optionally the body's SHA-256) and counted, never returned.
//!
//! A request body streams to the primary as it arrives; a tee copies it into a buffer
//! bounded by `max_body_bytes` for the mirror (the `Bytes` frames are shared, not copied).
//! A body above the bound is not mirrored (counted `too_large`). With `compare_body` the
//! client's response body is hashed as it streams (no buffering) and compared with the
//! mirror's.

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::{Body, Bytes};
use http::uri::PathAndQuery;
use http::{HeaderMap, Method, StatusCode};
use hyper::body::{Body as HttpBody, Frame, SizeHint};
use sha2::{Digest as _, Sha256};
use tokio::sync::oneshot;

use crate::proxy::Proxy;
use crate::table::{Pool, Route};

/// `result` labels of the shadow counter, in [`ShadowStats`] order.
pub(crate) const RESULTS: [&str; 6] = [
    "match",
    "mismatch",
    "failed",
    "skipped",
    "too_large",
    "body_mismatch",
];

const MATCH: usize = 0;
const MISMATCH: usize = 1;
const FAILED: usize = 2;
const SKIPPED: usize = 3;
const TOO_LARGE: usize = 4;
const BODY_MISMATCH: usize = 5;

/// A route's compiled `shadow`.
#[derive(Debug)]
pub(crate) struct Shadow {
    pub(crate) pool: Arc<Pool>,
    /// The share (0–1) of requests mirrored.
    pub(crate) share: f64,
    pub(crate) max_body: usize,
    pub(crate) compare_body: bool,
}

/// Mirrored requests so far, by result (see [`ShadowConfig`](crate::ShadowConfig)).
#[derive(Debug, Default)]
pub struct ShadowStats {
    counts: [AtomicU64; 6],
}

impl ShadowStats {
    /// Mirrors whose answer equalled the client's (status, and body with `compare_body`).
    pub fn matched(&self) -> u64 {
        self.counts[MATCH].load(Ordering::Relaxed)
    }

    /// Mirrors whose status differed.
    pub fn mismatched(&self) -> u64 {
        self.counts[MISMATCH].load(Ordering::Relaxed)
    }

    /// Mirrors with the client's status but another body (`compare_body`).
    pub fn body_mismatched(&self) -> u64 {
        self.counts[BODY_MISMATCH].load(Ordering::Relaxed)
    }

    /// Mirrors that got no answer (no healthy backend, an error, the route's timeout), or
    /// whose request body never completed.
    pub fn failed(&self) -> u64 {
        self.counts[FAILED].load(Ordering::Relaxed)
    }

    /// Mirrors not sent: too many were in flight.
    pub fn skipped(&self) -> u64 {
        self.counts[SKIPPED].load(Ordering::Relaxed)
    }

    /// Mirrors not sent: the request body was above `max_body_bytes`.
    pub fn too_large(&self) -> u64 {
        self.counts[TOO_LARGE].load(Ordering::Relaxed)
    }
}

/// A mirror decided for one request.
pub(crate) struct Mirror {
    shadow_pool: Arc<Pool>,
    method: Method,
    headers: HeaderMap,
    /// The copied request body: `None` when there is none; the tee answers `None` when it
    /// went above the bound.
    body: Option<oneshot::Receiver<Option<Bytes>>>,
    compare_body: bool,
}

fn count(proxy: &Proxy, route: &Route, index: usize) {
    proxy.shadow_stats.counts[index].fetch_add(1, Ordering::Relaxed);
    route.shadow_series[index].increment(1);
}

/// Whether `route` mirrors this request; the body comes back teed when it does.
pub(crate) fn decide(
    proxy: &Proxy,
    route: &Route,
    method: &Method,
    headers: &HeaderMap,
    body: Body,
    upgrade: bool,
) -> (Body, Option<Mirror>) {
    let Some(shadow) = &route.shadow else {
        return (body, None);
    };
    if upgrade || rand::random::<f64>() >= shadow.share {
        return (body, None);
    }
    let mut mirror = Mirror {
        shadow_pool: Arc::clone(&shadow.pool),
        method: method.clone(),
        headers: headers.clone(),
        body: None,
        compare_body: shadow.compare_body,
    };
    if body.is_end_stream() {
        return (body, Some(mirror));
    }
    let declared = body.size_hint().lower();
    if usize::try_from(declared).map_or(true, |n| n > shadow.max_body) {
        count(proxy, route, TOO_LARGE);
        return (body, None);
    }
    let (tx, rx) = oneshot::channel();
    mirror.body = Some(rx);
    let tee = Observed {
        inner: body,
        observer: Tee {
            copy: Vec::new(),
            copied: 0,
            limit: shadow.max_body,
            done: Some(tx),
        },
    };
    (Body::new(tee), Some(mirror))
}

/// Sends `mirror` in the background (bounded by [`crate::SHADOW_IN_FLIGHT`]) and compares
/// its answer with the client's `answered` status and, with `compare_body`, with the
/// client's response `body` (hashed as it streams; answered wrapped).
pub(crate) fn mirror(
    proxy: &Arc<Proxy>,
    route: &Route,
    mirror: Mirror,
    path: PathAndQuery,
    answered: StatusCode,
    body: Body,
) -> Body {
    let series = route.shadow_series.clone();
    let Ok(permit) = Arc::clone(&proxy.shadow_slots).try_acquire_owned() else {
        proxy.shadow_stats.counts[SKIPPED].fetch_add(1, Ordering::Relaxed);
        series[SKIPPED].increment(1);
        return body;
    };
    let (body, primary) = if mirror.compare_body {
        let (tx, rx) = oneshot::channel();
        let hashed = Observed {
            inner: body,
            observer: Hashed {
                hasher: Some(Sha256::new()),
                done: Some(tx),
            },
        };
        (Body::new(hashed), Some(rx))
    } else {
        (body, None)
    };
    let proxy = Arc::clone(proxy);
    let timeout = route.timeout;
    tokio::spawn(async move {
        let _permit = permit;
        let index = once(&proxy, mirror, path, answered, primary, timeout).await;
        proxy.shadow_stats.counts[index].fetch_add(1, Ordering::Relaxed);
        series[index].increment(1);
    });
    body
}

/// One mirrored exchange, answering its result index.
async fn once(
    proxy: &Proxy,
    mirror: Mirror,
    path: PathAndQuery,
    answered: StatusCode,
    primary: Option<oneshot::Receiver<[u8; 32]>>,
    timeout: Duration,
) -> usize {
    use http_body_util::BodyExt as _;
    let deadline = tokio::time::Instant::now() + timeout;
    let body = match mirror.body {
        None => Body::empty(),
        Some(copied) => match tokio::time::timeout_at(deadline, copied).await {
            Ok(Ok(Some(bytes))) => Body::from(bytes),
            Ok(Ok(None)) => return TOO_LARGE,
            // The client's body failed or was dropped unfinished, or is still coming.
            _ => return FAILED,
        },
    };
    let exchange = async {
        let response = crate::exchange::send(
            proxy,
            &mirror.shadow_pool,
            mirror.method,
            mirror.headers,
            path,
            body,
            &[],
        )
        .await
        .ok()?;
        let status = response.status();
        let mut hasher = mirror.compare_body.then(Sha256::new);
        let mut body = response.into_body();
        while let Some(frame) = body.frame().await {
            if let Ok(data) = frame.ok()?.into_data()
                && let Some(hasher) = &mut hasher
            {
                hasher.update(&data);
            }
        }
        Some((status, hasher.map(|h| <[u8; 32]>::from(h.finalize()))))
    };
    let Ok(Some((status, digest))) = tokio::time::timeout_at(deadline, exchange).await else {
        return FAILED;
    };
    if status != answered {
        return MISMATCH;
    }
    match (digest, primary) {
        // Bounded by the same deadline: a client reading slowly (or a stream that never
        // ends) must not hold the mirror's slot past the route's timeout.
        (Some(mirrored), Some(primary)) => match tokio::time::timeout_at(deadline, primary).await {
            Ok(Ok(primary)) if primary == mirrored => MATCH,
            Ok(Ok(_)) => BODY_MISMATCH,
            // The client stopped reading, or had not finished by the deadline: the bodies
            // cannot be compared; the status matched.
            Ok(Err(_)) | Err(_) => MATCH,
        },
        _ => MATCH,
    }
}

/// A body passed through unchanged while an [`Observer`] sees its data frames and its end.
struct Observed<O> {
    inner: Body,
    observer: O,
}

/// What [`Observed`] tells: each data frame, the end (the body done, or its last frame read),
/// and an error (the observer gives up: dropping its sender reports the failure).
trait Observer {
    fn data(&mut self, data: &Bytes);
    fn end(&mut self);
    fn error(&mut self);
}

impl<O: Observer + Send + Unpin + 'static> HttpBody for Observed<O> {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        let this = &mut *self;
        let polled = Pin::new(&mut this.inner).poll_frame(cx);
        match &polled {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    this.observer.data(data);
                }
                if this.inner.is_end_stream() {
                    this.observer.end();
                }
            }
            Poll::Ready(None) => this.observer.end(),
            Poll::Ready(Some(Err(_))) => this.observer.error(),
            Poll::Pending => {}
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

/// The request body on its way to the primary, copied (up to `limit`) for the mirror.
struct Tee {
    copy: Vec<Bytes>,
    copied: usize,
    limit: usize,
    done: Option<oneshot::Sender<Option<Bytes>>>,
}

impl Observer for Tee {
    fn data(&mut self, data: &Bytes) {
        if self.done.is_none() {
            return;
        }
        self.copied += data.len();
        if self.copied > self.limit {
            // Above the bound: the mirror is off, the copy freed.
            self.copy = Vec::new();
            if let Some(done) = self.done.take() {
                let _ = done.send(None);
            }
        } else {
            self.copy.push(data.clone());
        }
    }

    fn end(&mut self) {
        if let Some(done) = self.done.take() {
            let mut whole = Vec::with_capacity(self.copied);
            for chunk in self.copy.drain(..) {
                whole.extend_from_slice(&chunk);
            }
            let _ = done.send(Some(Bytes::from(whole)));
        }
    }

    fn error(&mut self) {
        self.done = None;
    }
}

/// The client's response body, hashed as it streams for `compare_body`.
struct Hashed {
    hasher: Option<Sha256>,
    done: Option<oneshot::Sender<[u8; 32]>>,
}

impl Observer for Hashed {
    fn data(&mut self, data: &Bytes) {
        if let Some(hasher) = &mut self.hasher {
            hasher.update(data);
        }
    }

    fn end(&mut self) {
        if let (Some(hasher), Some(done)) = (self.hasher.take(), self.done.take()) {
            let _ = done.send(hasher.finalize().into());
        }
    }

    fn error(&mut self) {
        self.done = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt as _;

    fn chunks(parts: &[&'static [u8]]) -> Body {
        let stream = futures::stream::iter(
            parts
                .iter()
                .map(|p| Ok::<_, std::io::Error>(Bytes::from_static(p)))
                .collect::<Vec<_>>(),
        );
        Body::from_stream(stream)
    }

    fn teed(body: Body, limit: usize) -> (Observed<Tee>, oneshot::Receiver<Option<Bytes>>) {
        let (tx, rx) = oneshot::channel();
        let tee = Observed {
            inner: body,
            observer: Tee {
                copy: Vec::new(),
                copied: 0,
                limit,
                done: Some(tx),
            },
        };
        (tee, rx)
    }

    #[tokio::test]
    async fn the_tee_streams_everything_and_copies_up_to_its_bound() {
        let (tee, copy) = teed(chunks(&[b"hello ", b"mirror"]), 12);
        let streamed = tee.collect().await.unwrap().to_bytes();
        assert_eq!(&streamed[..], b"hello mirror");
        assert_eq!(copy.await.unwrap().as_deref(), Some(&b"hello mirror"[..]));

        let (tee, copy) = teed(chunks(&[b"hello ", b"mirror!"]), 12);
        let streamed = tee.collect().await.unwrap().to_bytes();
        assert_eq!(&streamed[..], b"hello mirror!", "the primary gets it all");
        assert_eq!(copy.await.unwrap(), None, "above the bound: no copy");

        // Dropped before its end (the client went away): no copy either.
        let (mut tee, copy) = teed(chunks(&[b"a", b"b"]), 12);
        let _ = tee.frame().await;
        drop(tee);
        assert!(copy.await.is_err());
    }

    #[tokio::test]
    async fn the_response_hash_is_the_hash_of_the_whole_body() {
        let (tx, rx) = oneshot::channel();
        let hashed = Observed {
            inner: chunks(&[b"ab", b"c"]),
            observer: Hashed {
                hasher: Some(Sha256::new()),
                done: Some(tx),
            },
        };
        let _ = hashed.collect().await.unwrap();
        let expected: [u8; 32] = Sha256::digest(b"abc").into();
        assert_eq!(rx.await.unwrap(), expected);
    }
}
