//! Loopback ports: a port that refuses connections, a free one, and waiting for one to accept
//! connections.

use std::io;
use std::net::{Ipv4Addr, SocketAddr, TcpListener};
use std::time::Duration;

use tokio::net::{TcpStream, ToSocketAddrs};
use tokio::time::Instant;

/// A TCP port on 127.0.0.1 that was free a moment ago.
///
/// The port is found by binding `127.0.0.1:0` and releasing it, so another process may take it
/// before the caller binds it; prefer binding `127.0.0.1:0` yourself and reading the address back
/// when the code under test allows it.
///
/// # Panics
///
/// When the loopback interface cannot bind a socket at all; a test cannot go on without one.
pub fn free_port() -> u16 {
    let bound = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).and_then(|l| l.local_addr());
    match bound {
        Ok(addr) => addr.port(),
        Err(err) => panic!("cannot bind 127.0.0.1:0 to find a free port: {err}"),
    }
}

/// A loopback port held for the life of this value that refuses every connection.
///
/// The socket is bound to `127.0.0.1:0` but never listens, so a connection to it is answered
/// with a reset (`ECONNREFUSED`) at once, and no other process can bind the port while this
/// value lives. Use it for "a backend that is down" instead of [`free_port`], which another
/// process may take before the test connects.
///
/// ```
/// let refused = modular_testkit::RefusedPort::new();
/// let err = std::net::TcpStream::connect(refused.addr()).unwrap_err();
/// assert_eq!(err.kind(), std::io::ErrorKind::ConnectionRefused);
/// ```
#[derive(Debug)]
pub struct RefusedPort {
    _socket: tokio::net::TcpSocket,
    addr: SocketAddr,
}

impl RefusedPort {
    /// Binds a fresh loopback port without listening on it.
    ///
    /// # Panics
    ///
    /// When the loopback interface cannot bind a socket at all; a test cannot go on without one.
    pub fn new() -> Self {
        let bound = tokio::net::TcpSocket::new_v4().and_then(|socket| {
            // Without SO_REUSEADDR no other socket can bind the port while this one holds it.
            socket.set_reuseaddr(false)?;
            socket.bind(SocketAddr::from((Ipv4Addr::LOCALHOST, 0)))?;
            let addr = socket.local_addr()?;
            Ok((socket, addr))
        });
        match bound {
            Ok((socket, addr)) => RefusedPort {
                _socket: socket,
                addr,
            },
            Err(err) => panic!("cannot bind 127.0.0.1:0 for a refused port: {err}"),
        }
    }

    /// The address that refuses connections.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Its port.
    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// `http://127.0.0.1:<port>`, for clients that take a URL.
    pub fn http_url(&self) -> String {
        format!("http://{}", self.addr)
    }
}

impl Default for RefusedPort {
    fn default() -> Self {
        Self::new()
    }
}

/// `127.0.0.1:<free_port()>`.
///
/// # Panics
///
/// As [`free_port`].
pub fn free_addr() -> SocketAddr {
    SocketAddr::from((Ipv4Addr::LOCALHOST, free_port()))
}

/// Waits until `addr` accepts a TCP connection, retrying until `timeout` has passed.
///
/// Each attempt is itself bounded by the time left, so an address that swallows SYNs cannot make
/// the wait overrun. On timeout the error has kind [`io::ErrorKind::TimedOut`] and names the last
/// connection error.
pub async fn wait_for_tcp<A: ToSocketAddrs>(addr: A, timeout: Duration) -> io::Result<()> {
    const RETRY_DELAY: Duration = Duration::from_millis(50);

    let deadline = Instant::now() + timeout;
    let mut last_error: Option<io::Error> = None;
    loop {
        match tokio::time::timeout_at(deadline, TcpStream::connect(&addr)).await {
            Ok(Ok(_stream)) => return Ok(()),
            Ok(Err(err)) => last_error = Some(err),
            Err(_elapsed) => break,
        }
        if Instant::now() + RETRY_DELAY >= deadline {
            break;
        }
        tokio::time::sleep(RETRY_DELAY).await;
    }
    let cause = match last_error {
        Some(err) => err.to_string(),
        None => "connection attempt did not finish".to_owned(),
    };
    Err(io::Error::new(
        io::ErrorKind::TimedOut,
        format!("tcp endpoint not reachable within {timeout:?}: {cause}"),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_refused_port_refuses_and_stays_taken() {
        let refused = RefusedPort::new();
        let err = std::net::TcpStream::connect(refused.addr()).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::ConnectionRefused);
        assert!(TcpListener::bind(refused.addr()).is_err());
    }

    #[test]
    fn free_port_is_bindable() {
        let port = free_port();
        assert_ne!(port, 0);
        // Nothing else on this machine should have raced us to it in the meantime.
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, port));
        assert!(listener.is_ok(), "port {port} was not free: {listener:?}");
    }

    #[tokio::test]
    async fn wait_for_tcp_returns_once_a_listener_accepts() {
        let listener = tokio::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
            .await
            .unwrap();
        let addr = listener.local_addr().unwrap();
        wait_for_tcp(addr, Duration::from_secs(5)).await.unwrap();
    }

    #[tokio::test]
    async fn wait_for_tcp_times_out_on_a_closed_port() {
        let refused = RefusedPort::new();
        let addr = refused.addr();
        let err = wait_for_tcp(addr, Duration::from_millis(200))
            .await
            .unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::TimedOut);
        assert!(err.to_string().contains("not reachable"), "{err}");
    }
}
