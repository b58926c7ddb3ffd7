//! A fault-injecting TCP proxy, in the spirit of toxiproxy.
//!
//! A module under test connects to the proxy instead of the real server; the test then cuts the
//! link, restores it or slows it down, without touching the server that other tests share.

use std::fmt;
use std::io;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// A TCP proxy on a free loopback port that forwards to one upstream address and can inject
/// faults: [`cut`](Self::cut), [`restore`](Self::restore) and [`set_latency`](Self::set_latency).
///
/// Every task it spawns is owned by the proxy: dropping it (or awaiting
/// [`shutdown`](Self::shutdown)) closes the listener and every forwarded connection.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> std::io::Result<()> {
/// use modular_testkit::FaultProxy;
///
/// // Any TCP server will do; a module test would use its PostgreSQL or Redis address.
/// let server = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
/// let proxy = FaultProxy::start(server.local_addr()?).await?;
/// // Point the client under test at `proxy.addr()` instead of the server ...
/// proxy.cut(); // ... take the server away: open connections are reset, new ones closed ...
/// proxy.restore(); // ... and bring it back.
/// # Ok(())
/// # }
/// ```
pub struct FaultProxy {
    addr: SocketAddr,
    upstream: SocketAddr,
    shared: Arc<Shared>,
    tasks: TaskTracker,
    shutdown: CancellationToken,
}

impl FaultProxy {
    /// Starts a proxy on `127.0.0.1:<free port>` forwarding every connection to `upstream`.
    ///
    /// The upstream is dialled once per accepted connection, so it may be down when the proxy
    /// starts; a connection whose upstream cannot be reached is reset.
    pub async fn start(upstream: SocketAddr) -> io::Result<FaultProxy> {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).await?;
        let addr = listener.local_addr()?;
        let shutdown = CancellationToken::new();
        let shared = Arc::new(Shared {
            gate: Mutex::new(Gate {
                cut: false,
                generation: shutdown.child_token(),
            }),
            latency_nanos: AtomicU64::new(0),
            open: AtomicUsize::new(0),
        });
        let tasks = TaskTracker::new();
        tasks.spawn(accept_loop(
            listener,
            upstream,
            Arc::clone(&shared),
            tasks.clone(),
            shutdown.clone(),
        ));
        tracing::debug!(proxy = %addr, %upstream, "fault proxy started");
        Ok(FaultProxy {
            addr,
            upstream,
            shared,
            tasks,
            shutdown,
        })
    }

    /// The loopback address clients connect to.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The address every connection is forwarded to.
    pub fn upstream(&self) -> SocketAddr {
        self.upstream
    }

    /// Cuts the link: every open connection is reset on both sides, and new connections are
    /// accepted and reset at once, until [`restore`](Self::restore).
    ///
    /// New connections are refused from the moment this returns; open ones are torn down by
    /// their tasks right after, so a client's next read fails. Poll
    /// [`connection_count`](Self::connection_count) to wait until all are gone.
    pub fn cut(&self) {
        let mut gate = self.shared.gate();
        if gate.cut {
            return;
        }
        gate.cut = true;
        gate.generation.cancel();
        gate.generation = self.shutdown.child_token();
        tracing::debug!(proxy = %self.addr, "fault proxy cut");
    }

    /// Ends a [`cut`](Self::cut): new connections are forwarded again. Connections reset by the
    /// cut stay closed; clients must reconnect.
    pub fn restore(&self) {
        self.shared.gate().cut = false;
        tracing::debug!(proxy = %self.addr, "fault proxy restored");
    }

    /// Whether the link is cut.
    pub fn is_cut(&self) -> bool {
        self.shared.gate().cut
    }

    /// Delays every forwarded chunk, in both directions, by `latency` before writing it on.
    /// `Duration::ZERO` turns the delay off. Applies to open connections from their next chunk.
    pub fn set_latency(&self, latency: Duration) {
        // Durations beyond u64 nanoseconds (584 years) saturate.
        let nanos = u64::try_from(latency.as_nanos()).unwrap_or(u64::MAX);
        self.shared.latency_nanos.store(nanos, Ordering::Relaxed);
    }

    /// The delay added to every forwarded chunk.
    pub fn latency(&self) -> Duration {
        self.shared.latency()
    }

    /// The number of client connections being forwarded now (including ones whose upstream
    /// connection is still being opened).
    pub fn connection_count(&self) -> usize {
        self.shared.open.load(Ordering::SeqCst)
    }

    /// Stops the proxy and waits until its listener and every connection are closed.
    pub async fn shutdown(self) {
        self.shutdown.cancel();
        self.tasks.close();
        self.tasks.wait().await;
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.shutdown.cancel();
        self.tasks.close();
    }
}

impl fmt::Debug for FaultProxy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FaultProxy")
            .field("addr", &self.addr)
            .field("upstream", &self.upstream)
            .field("cut", &self.is_cut())
            .field("latency", &self.latency())
            .field("connection_count", &self.connection_count())
            .finish()
    }
}

/// State shared by the proxy handle and its tasks.
struct Shared {
    gate: Mutex<Gate>,
    latency_nanos: AtomicU64,
    open: AtomicUsize,
}

/// Whether connections may pass, and the token that tears down the ones admitted since the
/// last cut. Both change together under one lock, so no connection is admitted into a
/// generation that has already been cancelled.
struct Gate {
    cut: bool,
    generation: CancellationToken,
}

impl Shared {
    fn gate(&self) -> MutexGuard<'_, Gate> {
        // The lock is never held across code that can panic, so poisoning carries no meaning.
        self.gate.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The token for a new connection, or `None` while the link is cut.
    fn admit(&self) -> Option<CancellationToken> {
        let gate = self.gate();
        (!gate.cut).then(|| gate.generation.clone())
    }

    fn latency(&self) -> Duration {
        Duration::from_nanos(self.latency_nanos.load(Ordering::Relaxed))
    }
}

/// Counts one forwarded connection for as long as it lives.
struct OpenConnection(Arc<Shared>);

impl OpenConnection {
    fn new(shared: Arc<Shared>) -> Self {
        shared.open.fetch_add(1, Ordering::SeqCst);
        OpenConnection(shared)
    }
}

impl Drop for OpenConnection {
    fn drop(&mut self) {
        self.0.open.fetch_sub(1, Ordering::SeqCst);
    }
}

async fn accept_loop(
    listener: TcpListener,
    upstream: SocketAddr,
    shared: Arc<Shared>,
    tasks: TaskTracker,
    shutdown: CancellationToken,
) {
    loop {
        let accepted = tokio::select! {
            biased;
            () = shutdown.cancelled() => return,
            accepted = listener.accept() => accepted,
        };
        let (client, peer) = match accepted {
            Ok(accepted) => accepted,
            Err(error) => {
                // Typically descriptor exhaustion; back off instead of spinning on it.
                tracing::warn!(%error, "fault proxy accept failed");
                tokio::time::sleep(Duration::from_millis(10)).await;
                continue;
            }
        };
        let Some(cut) = shared.admit() else {
            tracing::debug!(%peer, "fault proxy refused connection while cut");
            reset(&client);
            continue;
        };
        let open = OpenConnection::new(Arc::clone(&shared));
        tasks.spawn(forward(client, upstream, Arc::clone(&shared), cut, open));
    }
}

/// Forwards one client connection until either side closes or the link is cut.
async fn forward(
    client: TcpStream,
    upstream: SocketAddr,
    shared: Arc<Shared>,
    cut: CancellationToken,
    _open: OpenConnection,
) {
    let server = tokio::select! {
        biased;
        () = cut.cancelled() => {
            reset(&client);
            return;
        }
        server = TcpStream::connect(upstream) => server,
    };
    let server = match server {
        Ok(server) => server,
        Err(error) => {
            tracing::debug!(%upstream, %error, "fault proxy cannot reach upstream");
            reset(&client);
            return;
        }
    };
    // Chunks are forwarded as they come; Nagle would add its own, unrequested latency.
    let _ = client.set_nodelay(true);
    let _ = server.set_nodelay(true);

    let (mut client_read, mut client_write) = client.into_split();
    let (mut server_read, mut server_write) = server.into_split();
    let was_cut = tokio::select! {
        biased;
        () = cut.cancelled() => true,
        result = async {
            tokio::try_join!(
                pipe(&mut client_read, &mut server_write, &shared),
                pipe(&mut server_read, &mut client_write, &shared),
            )
        } => {
            if let Err(error) = result {
                tracing::debug!(%upstream, %error, "fault proxy connection ended with an error");
            }
            false
        }
    };
    if was_cut {
        reset(client_read.as_ref());
        reset(server_read.as_ref());
    }
}

/// Copies one direction, delaying each chunk by the current latency; on end of stream it shuts
/// the other side's write half so half-closed connections behave as they would without a proxy.
async fn pipe(
    from: &mut OwnedReadHalf,
    to: &mut OwnedWriteHalf,
    shared: &Shared,
) -> io::Result<()> {
    let mut buf = vec![0_u8; 16 * 1024];
    loop {
        let read = from.read(&mut buf).await?;
        if read == 0 {
            return to.shutdown().await;
        }
        let latency = shared.latency();
        if !latency.is_zero() {
            tokio::time::sleep(latency).await;
        }
        to.write_all(&buf[..read]).await?;
    }
}

/// Makes the socket send RST instead of FIN when it is dropped, as a crashed peer or a broken
/// link would.
fn reset(stream: &TcpStream) {
    // Best effort: if the option cannot be set the socket still closes, with a FIN.
    let _ = stream.set_zero_linger();
}
