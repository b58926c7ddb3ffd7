//! Loopback ports: finding a free one and waiting for one to accept connections.

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
        let addr = free_addr();
        let err = wait_for_tcp(addr, Duration::from_millis(200))
            .await
            .unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::TimedOut);
        assert!(err.to_string().contains("not reachable"), "{err}");
    }
}
