//! HTTP/2 with a real client (the h2 crate), over cleartext (prior knowledge) and TLS (ALPN
//! `h2`), on paused time: frames between requests (PING, WINDOW_UPDATE) are no request head,
//! so such a connection is closed by `idle_timeout`, never by the header-read watchdog.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt as _};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio::time::Instant;

use support::{Ticking, build, server_yaml, tls_stream, write_certificate};

const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(2);
const IDLE_TIMEOUT: Duration = Duration::from_secs(30);

fn timeouts() -> String {
    format!(
        "  header_read_timeout: {}s\n  idle_timeout: {}s\n",
        HEADER_READ_TIMEOUT.as_secs(),
        IDLE_TIMEOUT.as_secs()
    )
}

/// An HTTP/2 client connection: requests go through `send`, the connection itself runs in a
/// task that also raises the connection window (each raise is a WINDOW_UPDATE frame) on
/// demand, and `ping` round-trips a PING frame.
struct H2 {
    send: h2::client::SendRequest<hyper::body::Bytes>,
    ping: h2::PingPong,
    window: mpsc::UnboundedSender<u32>,
    closed: JoinHandle<Result<(), h2::Error>>,
}

impl H2 {
    async fn handshake<T>(io: T) -> anyhow::Result<Self>
    where
        T: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let (send, mut connection) = h2::client::handshake(io).await?;
        let ping = connection.ping_pong().expect("ping_pong taken once");
        let (window, mut raises) = mpsc::unbounded_channel::<u32>();
        let closed = tokio::spawn(async move {
            loop {
                tokio::select! {
                    done = &mut connection => return done,
                    Some(size) = raises.recv() => connection.set_target_window_size(size),
                }
            }
        });
        Ok(Self {
            send,
            ping,
            window,
            closed,
        })
    }

    async fn get(&mut self, path: &str) -> anyhow::Result<(u16, String)> {
        let request = http::Request::get(format!("http://localhost{path}")).body(())?;
        let mut send = self.send.clone().ready().await?;
        let (response, _) = send.send_request(request, true)?;
        let response = response.await?;
        let status = response.status().as_u16();
        let mut body = response.into_body();
        let mut text = Vec::new();
        while let Some(chunk) = body.data().await {
            let chunk = chunk?;
            body.flow_control().release_capacity(chunk.len())?;
            text.extend_from_slice(&chunk);
        }
        Ok((status, String::from_utf8(text)?))
    }

    fn is_closed(&self) -> bool {
        self.closed.is_finished()
    }

    /// One PING and its PONG, and one WINDOW_UPDATE: frames, but no request.
    async fn chatter(&mut self, round: u32) -> anyhow::Result<()> {
        // The window first: its message also wakes the connection task, which then sends the
        // PING (h2 does not always wake the connection for a user PING by itself).
        let _ = self.window.send(1_000_000 + round * 1024);
        self.ping.ping(h2::Ping::opaque()).await?;
        Ok(())
    }

    /// Chatters once a second for `span` (or until the server closes the connection); returns
    /// when the connection closed, if it did.
    async fn chatter_for(&mut self, span: Duration) -> Option<Instant> {
        let until = Instant::now() + span;
        let mut round = 0;
        while Instant::now() < until {
            tokio::time::sleep(Duration::from_secs(1)).await;
            if self.is_closed() || self.chatter(round).await.is_err() {
                // Let the connection task see the end.
                while !self.is_closed() {
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
                return Some(Instant::now());
            }
            round += 1;
        }
        None
    }
}

/// The server answers, the connection survives PINGs and WINDOW_UPDATEs well past the header
/// read timeout, serves another request, and is closed `idle_timeout` after that request.
async fn frames_between_requests_wait_for_the_idle_timeout(mut client: H2) -> anyhow::Result<()> {
    let _ticking = Ticking::every(Duration::from_millis(10));
    assert_eq!(client.get("/hello").await?, (200, "hello".to_owned()));

    // Ten header-read timeouts of PINGs and WINDOW_UPDATEs, but less than the idle timeout.
    let started = Instant::now();
    if let Some(closed) = client.chatter_for(HEADER_READ_TIMEOUT * 10).await {
        panic!(
            "the connection was closed {:?} into frames without a request (header_read_timeout {HEADER_READ_TIMEOUT:?}, idle_timeout {IDLE_TIMEOUT:?})",
            closed - started
        );
    }
    assert_eq!(client.get("/hello").await?, (200, "hello".to_owned()));
    let last_request = Instant::now();

    let closed = client
        .chatter_for(IDLE_TIMEOUT * 2)
        .await
        .expect("the connection outlived twice its idle timeout");
    let idle = closed - last_request;
    assert!(
        idle >= IDLE_TIMEOUT && idle < IDLE_TIMEOUT + Duration::from_secs(2),
        "closed {idle:?} after the last request, idle_timeout is {IDLE_TIMEOUT:?}"
    );
    // Closed gracefully (GOAWAY, then the end of the stream), not cut.
    let ended = client.closed.await?;
    assert!(ended.is_ok(), "{ended:?}");
    Ok(())
}

#[tokio::test(start_paused = true)]
async fn a_cleartext_http2_connection_with_frames_between_requests_is_closed_by_the_idle_timeout()
-> anyhow::Result<()> {
    let test = build(&format!("{}{}", server_yaml(), timeouts()))
        .await?
        .start()
        .await?;
    let tcp = tokio::net::TcpStream::connect(("127.0.0.1", test.port)).await?;
    // Small frames leave at once (no Nagle delay, which paused time would stretch).
    tcp.set_nodelay(true)?;
    frames_between_requests_wait_for_the_idle_timeout(H2::handshake(tcp).await?).await
}

#[tokio::test(start_paused = true)]
async fn an_http2_over_tls_connection_with_frames_between_requests_is_closed_by_the_idle_timeout()
-> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let (cert, key) = write_certificate(dir.path(), "tls", &[0x02], (2020, 1, 1), (2099, 1, 1));
    let yaml = format!(
        "{}{}  tls:\n    enabled: true\n    cert_file: {}\n    key_file: {}\n",
        server_yaml(),
        timeouts(),
        cert.display(),
        key.display()
    );
    let test = build(&yaml).await?.start().await?;
    let (tls, serial) = tls_stream(test.port, b"h2").await?;
    assert_eq!(serial, "02");
    assert_eq!(tls.get_ref().1.alpn_protocol(), Some(&b"h2"[..]));
    frames_between_requests_wait_for_the_idle_timeout(H2::handshake(tls).await?).await
}

/// The header-read watchdog still guards the start of an HTTP/2 connection: a client that
/// stops in the middle of the connection preface is cut at `header_read_timeout`.
#[tokio::test(start_paused = true)]
async fn a_client_stalling_inside_the_http2_preface_is_cut_at_the_header_read_timeout()
-> anyhow::Result<()> {
    let test = build(&format!("{}{}", server_yaml(), timeouts()))
        .await?
        .start()
        .await?;
    let mut tcp = tokio::net::TcpStream::connect(("127.0.0.1", test.port)).await?;
    tcp.write_all(b"PRI * HTTP/2.0\r\n").await?;
    let sent = Instant::now();
    let mut buf = [0u8; 64];
    let read = tokio::time::timeout(
        IDLE_TIMEOUT,
        tokio::io::AsyncReadExt::read(&mut tcp, &mut buf),
    )
    .await
    .expect("the stalled connection was never closed");
    assert!(matches!(read, Ok(0) | Err(_)), "{read:?}");
    let waited = sent.elapsed();
    assert!(
        waited >= HEADER_READ_TIMEOUT && waited < HEADER_READ_TIMEOUT + Duration::from_secs(1),
        "cut after {waited:?}"
    );
    Ok(())
}
