//! `FaultProxy` against a small echo server: forwarding, cut, restore, latency, shutdown.
//!
//! Wall-clock timeouts here only stop a broken test from hanging; no assertion depends on how
//! fast the machine is. Latency is measured in paused time.

// A panic in a test is the test failing.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::time::Duration;

use modular_testkit::FaultProxy;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// Generous bound for steps that should take milliseconds; reaching it means the test is broken.
const HANG_GUARD: Duration = Duration::from_secs(10);

/// Echoes every connection until its peer closes; lives as long as the test's runtime.
async fn start_echo_server() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            tokio::spawn(async move {
                let (mut read, mut write) = socket.split();
                let _ = tokio::io::copy(&mut read, &mut write).await;
            });
        }
    });
    addr
}

async fn guarded<F: Future>(what: &str, future: F) -> F::Output {
    match tokio::time::timeout(HANG_GUARD, future).await {
        Ok(output) => output,
        Err(_) => panic!("{what} did not finish within {HANG_GUARD:?}"),
    }
}

/// Sends `message` and reads the same number of bytes back.
async fn round_trip(stream: &mut TcpStream, message: &[u8]) -> io::Result<Vec<u8>> {
    stream.write_all(message).await?;
    let mut reply = vec![0; message.len()];
    stream.read_exact(&mut reply).await?;
    Ok(reply)
}

/// Whether a connection through a cut proxy can still carry an echo: `false` when connecting,
/// writing or reading fails or the stream ends.
async fn echo_gets_through(addr: SocketAddr) -> bool {
    let Ok(mut stream) = TcpStream::connect(addr).await else {
        return false;
    };
    if stream.write_all(b"ping").await.is_err() {
        return false;
    }
    let mut reply = [0; 4];
    stream.read_exact(&mut reply).await.is_ok() && &reply == b"ping"
}

async fn wait_for_connection_count(proxy: &FaultProxy, expected: usize) {
    guarded("connection count", async {
        while proxy.connection_count() != expected {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await;
}

#[tokio::test]
async fn proxy_forwards_bytes_both_ways() {
    let proxy = FaultProxy::start(start_echo_server().await).await.unwrap();
    let mut client = TcpStream::connect(proxy.addr()).await.unwrap();

    let reply = guarded("echo", round_trip(&mut client, b"hello through the proxy")).await;

    assert_eq!(reply.unwrap(), b"hello through the proxy");
    assert_eq!(proxy.connection_count(), 1);
}

#[tokio::test]
async fn proxy_forwards_a_half_close() {
    let proxy = FaultProxy::start(start_echo_server().await).await.unwrap();
    let mut client = TcpStream::connect(proxy.addr()).await.unwrap();

    client.write_all(b"last words").await.unwrap();
    client.shutdown().await.unwrap();
    let mut reply = Vec::new();
    guarded("read to end", client.read_to_end(&mut reply))
        .await
        .unwrap();

    assert_eq!(reply, b"last words");
    wait_for_connection_count(&proxy, 0).await;
}

#[tokio::test]
async fn cut_ends_open_connections() {
    let proxy = FaultProxy::start(start_echo_server().await).await.unwrap();
    let mut client = TcpStream::connect(proxy.addr()).await.unwrap();
    guarded("echo", round_trip(&mut client, b"before"))
        .await
        .unwrap();

    proxy.cut();
    let mut buf = [0; 16];
    let after_cut = guarded("read after cut", client.read(&mut buf)).await;

    assert!(
        matches!(after_cut, Ok(0) | Err(_)),
        "expected end of stream or reset, got {after_cut:?}"
    );
    wait_for_connection_count(&proxy, 0).await;
}

#[tokio::test]
async fn cut_refuses_new_connections() {
    let proxy = FaultProxy::start(start_echo_server().await).await.unwrap();

    proxy.cut();

    assert!(proxy.is_cut());
    assert!(!guarded("echo while cut", echo_gets_through(proxy.addr())).await);
    assert_eq!(proxy.connection_count(), 0);
}

#[tokio::test]
async fn restore_lets_new_connections_through() {
    let proxy = FaultProxy::start(start_echo_server().await).await.unwrap();
    proxy.cut();
    assert!(!guarded("echo while cut", echo_gets_through(proxy.addr())).await);

    proxy.restore();

    assert!(!proxy.is_cut());
    assert!(guarded("echo after restore", echo_gets_through(proxy.addr())).await);
}

#[tokio::test]
async fn connection_count_follows_clients() {
    let proxy = FaultProxy::start(start_echo_server().await).await.unwrap();
    let mut first = TcpStream::connect(proxy.addr()).await.unwrap();
    let mut second = TcpStream::connect(proxy.addr()).await.unwrap();
    guarded("first echo", round_trip(&mut first, b"1"))
        .await
        .unwrap();
    guarded("second echo", round_trip(&mut second, b"2"))
        .await
        .unwrap();
    assert_eq!(proxy.connection_count(), 2);

    drop(first);
    wait_for_connection_count(&proxy, 1).await;

    proxy.cut();
    wait_for_connection_count(&proxy, 0).await;
}

#[tokio::test]
async fn upstream_down_resets_the_client() {
    // A port nothing listens on: bind, read the address, release it.
    let closed = {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        listener.local_addr().unwrap()
    };
    let proxy = FaultProxy::start(closed).await.unwrap();

    assert!(!guarded("echo to a closed upstream", echo_gets_through(proxy.addr())).await);
    wait_for_connection_count(&proxy, 0).await;
}

// Paused time: the proxy's per-chunk sleeps complete by advancing the virtual clock, so the
// measured delay is exact and the test takes no real time.
#[tokio::test(start_paused = true)]
async fn latency_delays_each_chunk_in_both_directions() {
    let proxy = FaultProxy::start(start_echo_server().await).await.unwrap();
    let mut client = TcpStream::connect(proxy.addr()).await.unwrap();
    let latency = Duration::from_secs(3);

    let started = tokio::time::Instant::now();
    round_trip(&mut client, b"fast").await.unwrap();
    let without_latency = started.elapsed();

    proxy.set_latency(latency);
    assert_eq!(proxy.latency(), latency);
    let started = tokio::time::Instant::now();
    let reply = round_trip(&mut client, b"slow").await.unwrap();
    let with_latency = started.elapsed();

    assert_eq!(reply, b"slow");
    assert!(
        without_latency < latency,
        "no latency took {without_latency:?}"
    );
    // One delay on the way to the echo server, one on the way back.
    assert!(
        with_latency >= 2 * latency,
        "latency took only {with_latency:?}"
    );

    proxy.set_latency(Duration::ZERO);
    let started = tokio::time::Instant::now();
    round_trip(&mut client, b"fast again").await.unwrap();
    assert!(started.elapsed() < latency);
}

#[tokio::test]
async fn shutdown_closes_the_listener() {
    let proxy = FaultProxy::start(start_echo_server().await).await.unwrap();
    let addr = proxy.addr();
    let mut client = TcpStream::connect(addr).await.unwrap();
    guarded("echo", round_trip(&mut client, b"x"))
        .await
        .unwrap();

    guarded("shutdown", proxy.shutdown()).await;

    let mut buf = [0; 1];
    assert!(matches!(client.read(&mut buf).await, Ok(0) | Err(_)));
    assert!(TcpStream::connect(addr).await.is_err());
}
