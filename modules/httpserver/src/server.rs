//! The listener: accepting under the connection limit, serving each connection (TLS when
//! configured), and the drain-then-stop sequence.

use std::future::Future as _;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::task::Poll;
use std::time::Duration;

use arc_swap::ArcSwap;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use modular_core::ModuleContext;
use modular_core::http::ServedRouter;
use serde_json::json;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Notify;
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::config::HttpServerConfig;
use crate::connection::{Activity, Limits, RequestService, Watch, Watched};
use crate::error::HttpServerError;
use crate::metrics::ServerSeries;
use crate::tls::ClientCa;
use tokio_rustls::rustls::ServerConfig;
use tokio_rustls::rustls::server::ResolvesServerCert;

/// Counters shared by every connection.
#[derive(Debug, Default)]
pub(crate) struct Stats {
    /// Open connections.
    pub(crate) connections: AtomicUsize,
    /// Requests whose response headers are not out yet.
    pub(crate) in_flight: AtomicUsize,
    /// Connections accepted since start.
    pub(crate) accepted: AtomicU64,
    /// Requests received since start.
    pub(crate) requests: AtomicU64,
    /// Set when the server starts draining: HTTP/1 answers then carry `Connection: close`.
    pub(crate) draining: AtomicBool,
    /// The metrics mirroring these counters, and the TLS reload counter.
    pub(crate) series: ServerSeries,
}

/// Where the server is in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Phase {
    /// Initialised, not listening.
    Idle,
    /// Accepting and serving.
    Serving,
    /// Still accepting and serving, readiness failing, for the drain delay.
    Draining,
    /// Not accepting; finishing in-flight requests.
    Closing,
    /// Stopped.
    Stopped,
}

/// The server: configuration in force, TLS, counters and the tasks it owns.
pub(crate) struct Server {
    pub(crate) ctx: ModuleContext,
    /// The section in force (swapped by reload).
    pub(crate) config: ArcSwap<HttpServerConfig>,
    pub(crate) tls: Option<Arc<dyn ResolvesServerCert>>,
    /// The rustls configuration each new handshake uses; swapped when the client CA reloads.
    tls_config: Option<ArcSwap<ServerConfig>>,
    pub(crate) stats: Arc<Stats>,
    pub(crate) local_addr: OnceLock<SocketAddr>,
    phase: Mutex<Phase>,
    epoch: Instant,
    /// Wakes the accept loop when the connection limit may have room: a connection closed or
    /// `max_connections` was reloaded.
    capacity: Notify,
    /// Wakes the self-connection health check when a connection is accepted.
    pub(crate) accepted: Notify,
    stop_accepting: CancellationToken,
    graceful: CancellationToken,
    force_close: CancellationToken,
    connections: TaskTracker,
    accept_task: Mutex<Option<JoinHandle<()>>>,
}

impl std::fmt::Debug for Server {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Server")
            .field("local_addr", &self.local_addr.get())
            .field("phase", &self.phase())
            .field("stats", &self.stats)
            .finish_non_exhaustive()
    }
}

impl Server {
    pub(crate) fn new(
        ctx: ModuleContext,
        config: Arc<HttpServerConfig>,
        tls: Option<Arc<dyn ResolvesServerCert>>,
        client_ca: Option<&ClientCa>,
    ) -> Result<Self, HttpServerError> {
        let tls_config = match &tls {
            Some(resolver) => Some(ArcSwap::new(crate::tls::server_config(
                Arc::clone(resolver),
                client_ca,
            )?)),
            None => None,
        };
        let cancel = ctx.cancellation().clone();
        Ok(Self {
            ctx,
            config: ArcSwap::new(config),
            tls,
            tls_config,
            stats: Arc::new(Stats::default()),
            local_addr: OnceLock::new(),
            phase: Mutex::new(Phase::Idle),
            epoch: Instant::now(),
            capacity: Notify::new(),
            accepted: Notify::new(),
            // The application's cancellation closes everything, as a last resort.
            stop_accepting: cancel.child_token(),
            graceful: cancel.child_token(),
            force_close: cancel.child_token(),
            connections: TaskTracker::new(),
            accept_task: Mutex::new(None),
        })
    }

    pub(crate) fn phase(&self) -> Phase {
        *self.phase.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn set_phase(&self, phase: Phase) {
        *self.phase.lock().unwrap_or_else(PoisonError::into_inner) = phase;
    }

    /// Tells the accept loop the limits in force changed, so a loop waiting at the old
    /// `max_connections` looks at the new one (a raised limit takes effect at once, not when a
    /// connection next closes). Call after storing the new config.
    pub(crate) fn limits_changed(&self) {
        // The loop registers (enables) its wake-up before reading the limit, so a store that
        // lands after that read is always followed by this wake-up.
        self.capacity.notify_waiters();
    }

    /// A TLS configuration like the one in force, verifying clients with `client_ca`; `None`
    /// without TLS. Built aside (a reload's prepare), swapped in by [`Self::set_tls_config`].
    pub(crate) fn tls_config_with(
        &self,
        client_ca: Option<&ClientCa>,
    ) -> Result<Option<Arc<ServerConfig>>, HttpServerError> {
        self.tls
            .as_ref()
            .map(|resolver| crate::tls::server_config(Arc::clone(resolver), client_ca))
            .transpose()
    }

    /// Swaps the TLS configuration new handshakes use; open connections keep their session.
    pub(crate) fn set_tls_config(&self, config: Arc<ServerConfig>) {
        if let Some(current) = &self.tls_config {
            current.store(config);
        }
    }

    /// `http` or `https`.
    pub(crate) fn scheme(&self) -> &'static str {
        if self.tls.is_some() { "https" } else { "http" }
    }

    /// Binds the listener and starts accepting.
    pub(crate) async fn start(
        self: &Arc<Self>,
        router: Arc<ServedRouter>,
    ) -> Result<SocketAddr, HttpServerError> {
        let config = self.config.load_full();
        let address = format!("{}:{}", config.host, config.port);
        let bound = match config.host.parse::<IpAddr>() {
            Ok(ip) => TcpListener::bind(SocketAddr::new(ip, config.port)).await,
            Err(_) => TcpListener::bind(address.as_str()).await,
        };
        let listener = bound.map_err(|source| HttpServerError::Bind {
            address: address.clone(),
            source,
        })?;
        let local = listener
            .local_addr()
            .map_err(|source| HttpServerError::Bind { address, source })?;
        let _ = self.local_addr.set(local);
        self.set_phase(Phase::Serving);
        let server = Arc::clone(self);
        let handle = self
            .ctx
            .spawn(async move { server.accept_loop(listener, router).await });
        *self
            .accept_task
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = Some(handle);
        Ok(local)
    }

    async fn accept_loop(self: Arc<Self>, listener: TcpListener, router: Arc<ServedRouter>) {
        loop {
            // Wait for room under the connection limit (read now: it is dynamic).
            loop {
                let room = self.capacity.notified();
                tokio::pin!(room);
                room.as_mut().enable();
                let limit = self.config.load().max_connections;
                if self.stats.connections.load(Ordering::Acquire) < limit {
                    break;
                }
                tokio::select! {
                    () = self.stop_accepting.cancelled() => return,
                    () = room => {}
                }
            }
            let accepted = tokio::select! {
                () = self.stop_accepting.cancelled() => return,
                accepted = listener.accept() => accepted,
            };
            let (stream, peer) = match accepted {
                Ok(pair) => pair,
                Err(error) => {
                    // Out of file descriptors and the like: back off instead of spinning.
                    tracing::warn!(module = "httpserver", %error, "accept failed");
                    tokio::select! {
                        () = self.stop_accepting.cancelled() => return,
                        () = tokio::time::sleep(Duration::from_millis(50)) => continue,
                    }
                }
            };
            self.stats.connections.fetch_add(1, Ordering::AcqRel);
            self.stats.series.connections.increment(1.0);
            self.stats.accepted.fetch_add(1, Ordering::AcqRel);
            self.accepted.notify_waiters();
            let limits = limits(&self.config.load());
            let server = Arc::clone(&self);
            let router = Arc::clone(&router);
            let connection = self.connections.track_future(async move {
                let _open = OpenConnection(Arc::clone(&server));
                server.serve(stream, peer, router, limits).await;
            });
            self.ctx.spawn(connection);
        }
        // Returning drops the listener: new connections are refused from here on.
    }

    async fn serve(
        &self,
        stream: TcpStream,
        peer: SocketAddr,
        router: Arc<ServedRouter>,
        limits: Limits,
    ) {
        let _ = stream.set_nodelay(true);
        let activity = Arc::new(Activity::new(self.epoch));
        let service = RequestService {
            router,
            limits,
            activity: Arc::clone(&activity),
            stats: Arc::clone(&self.stats),
            peer,
        };
        match &self.tls_config {
            None => {
                self.drive(
                    Watched::new(stream, Arc::clone(&activity)),
                    service,
                    &activity,
                    &limits,
                )
                .await
            }
            Some(tls_config) => {
                let acceptor = TlsAcceptor::from(tls_config.load_full());
                let handshake =
                    tokio::time::timeout(limits.header_read_timeout, acceptor.accept(stream));
                let stream = tokio::select! {
                    () = self.force_close.cancelled() => return,
                    done = handshake => match done {
                        Ok(Ok(stream)) => stream,
                        Ok(Err(error)) => {
                            tracing::debug!(module = "httpserver", %peer, %error, "tls handshake failed");
                            return;
                        }
                        Err(_) => {
                            tracing::debug!(module = "httpserver", %peer, "tls handshake timed out");
                            return;
                        }
                    },
                };
                self.drive(
                    Watched::new(stream, Arc::clone(&activity)),
                    service,
                    &activity,
                    &limits,
                )
                .await;
            }
        }
    }

    async fn drive<S>(
        &self,
        stream: Watched<S>,
        service: RequestService,
        activity: &Activity,
        limits: &Limits,
    ) where
        S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let mut builder = auto::Builder::new(TokioExecutor::new());
        // The watchdog below times header reads itself (hyper's timer would also cut idle
        // keep-alive connections at the header timeout).
        builder
            .http1()
            .timer(TokioTimer::new())
            .header_read_timeout(None);
        builder.http2().timer(TokioTimer::new());
        let connection = builder.serve_connection_with_upgrades(TokioIo::new(stream), service);
        tokio::pin!(connection);
        // Every future of the watchdog lives as long as the connection: a timer re-armed (or
        // cancellation waiters registered) per request would cost a lock each, on state
        // shared by every connection.
        let graceful = self.graceful.cancelled();
        let force_close = self.force_close.cancelled();
        let changed = activity.changed();
        let sleep = tokio::time::sleep_until(Instant::now());
        tokio::pin!(graceful, force_close, changed, sleep);
        // The deadline the timer is armed at; `None`: disarmed.
        let mut armed: Option<Instant> = None;
        let mut closing = false;
        loop {
            let event = std::future::poll_fn(|cx| {
                if let Poll::Ready(served) = connection.as_mut().poll(cx) {
                    return Poll::Ready(Event::Served(served));
                }
                if force_close.as_mut().poll(cx).is_ready() {
                    return Poll::Ready(Event::ForceClose);
                }
                if closing {
                    return Poll::Pending;
                }
                if graceful.as_mut().poll(cx).is_ready() {
                    return Poll::Ready(Event::Graceful);
                }
                if changed.as_mut().poll(cx).is_ready() {
                    changed.set(activity.changed());
                    // Registers the new waiter (a finish notified meanwhile is kept as a
                    // permit, so none is lost).
                    let _ = changed.as_mut().poll(cx);
                }
                // Polling the connection may have started or finished a request or begun a
                // head: look at the activity now.
                loop {
                    match activity.next(limits) {
                        Watch::HeadersTooSlow => return Poll::Ready(Event::HeadersTooSlow),
                        Watch::Idle => return Poll::Ready(Event::Idle),
                        // A timer armed for an earlier state may fire: it only looks again.
                        Watch::WaitForChange => return Poll::Pending,
                        Watch::Until(deadline) => {
                            if armed != Some(deadline) {
                                // Later than before (the idle deadline after a request):
                                // tokio moves the entry without touching the timer wheel.
                                sleep.as_mut().reset(deadline);
                                armed = Some(deadline);
                            }
                            if sleep.as_mut().poll(cx).is_pending() {
                                return Poll::Pending;
                            }
                            armed = None;
                            if Instant::now() < deadline {
                                // Not due (cannot happen with tokio's timer): try later.
                                cx.waker().wake_by_ref();
                                return Poll::Pending;
                            }
                        }
                    }
                }
            })
            .await;
            match event {
                Event::Served(served) => {
                    if let Err(error) = served {
                        tracing::debug!(module = "httpserver", %error, "connection ended with an error");
                    }
                    return;
                }
                Event::ForceClose => return,
                Event::HeadersTooSlow => {
                    tracing::debug!(
                        module = "httpserver",
                        "request headers not received in time; closing"
                    );
                    return;
                }
                Event::Idle | Event::Graceful => {
                    connection.as_mut().graceful_shutdown();
                    closing = true;
                }
            }
        }
    }

    /// Drains, stops accepting, and waits for in-flight requests up to the deadline.
    /// Returns how many connections had to be closed forcibly.
    pub(crate) async fn shutdown(&self) -> usize {
        if matches!(self.phase(), Phase::Idle | Phase::Stopped) {
            self.set_phase(Phase::Stopped);
            return 0;
        }
        let config = self.config.load_full();
        self.set_phase(Phase::Draining);
        self.stats.draining.store(true, Ordering::Release);
        tracing::info!(
            module = "httpserver",
            drain_delay = ?config.drain_delay,
            in_flight = self.stats.in_flight.load(Ordering::Acquire),
            "draining: readiness is failing, still serving"
        );
        tokio::time::sleep(config.drain_delay).await;

        self.set_phase(Phase::Closing);
        self.stop_accepting.cancel();
        let accept_task = self
            .accept_task
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        if let Some(task) = accept_task {
            let _ = task.await;
        }
        self.graceful.cancel();
        self.connections.close();
        let open = self.stats.connections.load(Ordering::Acquire);
        tracing::info!(
            module = "httpserver",
            connections = open,
            shutdown_timeout = ?config.shutdown_timeout,
            "listener closed; finishing in-flight requests"
        );
        let mut forced = 0;
        if tokio::time::timeout(config.shutdown_timeout, self.connections.wait())
            .await
            .is_err()
        {
            forced = self.stats.connections.load(Ordering::Acquire);
            tracing::warn!(
                module = "httpserver",
                connections = forced,
                "shutdown deadline passed; closing connections"
            );
            self.force_close.cancel();
            self.connections.wait().await;
        }
        self.set_phase(Phase::Stopped);
        forced
    }

    /// The address a client on this host reaches the listener at.
    pub(crate) fn self_address(&self) -> Option<SocketAddr> {
        let local = *self.local_addr.get()?;
        let ip = match local.ip() {
            IpAddr::V4(ip) if ip.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
            IpAddr::V6(ip) if ip.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
            ip => ip,
        };
        Some(SocketAddr::new(ip, local.port()))
    }

    /// Emits `com.modular.httpserver.<noun_verb>`.
    pub(crate) fn emit(&self, noun_verb: &str, data: serde_json::Value) {
        self.ctx.emit(noun_verb, data);
    }

    pub(crate) fn started_event(&self, local: SocketAddr) {
        self.emit(
            "server.started",
            json!({ "address": local.to_string(), "scheme": self.scheme() }),
        );
    }
}

/// What ended a wait of the connection's watchdog.
enum Event<E> {
    /// The connection is done (the client closed it, or a graceful shutdown finished).
    Served(Result<(), E>),
    /// The shutdown deadline passed: close now.
    ForceClose,
    /// The server is draining: finish the requests in flight, then close.
    Graceful,
    /// Idle past `idle_timeout`: close gracefully.
    Idle,
    /// A request head took longer than `header_read_timeout`: close.
    HeadersTooSlow,
}

/// The limits a newly accepted connection runs with.
pub(crate) fn limits(config: &HttpServerConfig) -> Limits {
    let nonzero = |d: Duration| (!d.is_zero()).then_some(d);
    Limits {
        body: usize::try_from(config.max_body_size).unwrap_or(usize::MAX),
        request_timeout: nonzero(config.request_timeout),
        header_read_timeout: config.header_read_timeout,
        idle_timeout: nonzero(config.idle_timeout),
    }
}

/// Counts an open connection and makes room under the limit when dropped.
struct OpenConnection(Arc<Server>);

impl Drop for OpenConnection {
    fn drop(&mut self) {
        self.0.stats.connections.fetch_sub(1, Ordering::AcqRel);
        self.0.stats.series.connections.decrement(1.0);
        self.0.capacity.notify_one();
    }
}
