//! Bodies stream through without buffering (bounded memory for a 1 GiB body) and `Upgrade`
//! connections are spliced through.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::time::Duration;

use serde_json::json;
use support::{Upstream, pool};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

fn rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_websocket_upgrade_is_spliced_through_and_echoes() {
    let api = Upstream::start("api").await;
    let app = support::start(json!({
        "routes": [{ "match": { "prefix": "/" }, "pool": "api" }],
        "pools": { "api": pool(&[&api], "round_robin") },
    }))
    .await
    .unwrap();
    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], app.port));
    let (mut stream, head) = support::websocket_handshake(addr).await;
    assert!(head.starts_with("http/1.1 101"), "{head}");
    assert!(head.contains("upgrade: websocket"), "{head}");
    // A masked WebSocket text frame "hello": the upstream echoes bytes as they come.
    let frame = [
        0x81u8,
        0x85,
        1,
        2,
        3,
        4,
        b'h' ^ 1,
        b'e' ^ 2,
        b'l' ^ 3,
        b'l' ^ 4,
        b'o' ^ 1,
    ];
    for _ in 0..3 {
        stream.write_all(&frame).await.unwrap();
        let mut back = [0u8; 11];
        tokio::time::timeout(Duration::from_secs(5), stream.read_exact(&mut back))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(back, frame);
    }
    app.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_1_gib_download_and_upload_stream_with_bounded_memory() {
    const GIB: u64 = 1 << 30;
    let api = Upstream::start("api").await;
    let app = support::start_with(
        json!({
            "listen": "127.0.0.1:0",
            "routes": [{ "match": { "prefix": "/" }, "pool": "api", "timeout": "120s" }],
            "pools": { "api": pool(&[&api], "round_robin") },
        }),
        // The server's request body limit (2 MiB by default) would stop the upload.
        json!({ "max_body_size": 2 * GIB }),
    )
    .await
    .unwrap();
    let before = rss_kib();
    let mut peak = before;

    // Download: the upstream generates 1 GiB, the client counts it.
    let mut response = app
        .http
        .get(app.url(&format!("/bytes/{GIB}")))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let mut received = 0u64;
    let mut chunks = 0u64;
    while let Some(chunk) = response.chunk().await.unwrap() {
        received += chunk.len() as u64;
        chunks += 1;
        if chunks.is_multiple_of(256) {
            peak = peak.max(rss_kib());
        }
    }
    assert_eq!(received, GIB);

    // Upload: the client streams 1 GiB, the upstream echoes it, the client counts it.
    let chunk = reqwest::Body::wrap_stream(futures::stream::iter(
        (0..(GIB / (64 * 1024))).map(|_| Ok::<_, std::io::Error>(vec![b'y'; 64 * 1024])),
    ));
    let mut response = app
        .http
        .post(app.url("/echo"))
        .body(chunk)
        .send()
        .await
        .unwrap();
    let mut echoed = 0u64;
    while let Some(chunk) = response.chunk().await.unwrap() {
        echoed += chunk.len() as u64;
        chunks += 1;
        if chunks.is_multiple_of(256) {
            peak = peak.max(rss_kib());
        }
    }
    assert_eq!(echoed, GIB);

    // The same both ways through the module's own listener: a chunked download relayed by
    // the listener itself, an upload with a length (past the listener's 64 KiB of buffered
    // body, so it streams full duplex through hyper's path).
    for upload in [false, true] {
        let request = if upload {
            let chunk = reqwest::Body::wrap_stream(futures::stream::iter(
                (0..(GIB / (64 * 1024))).map(|_| Ok::<_, std::io::Error>(vec![b'y'; 64 * 1024])),
            ));
            app.http
                .post(app.listener_url("/echo"))
                .header("content-length", GIB)
                .body(chunk)
        } else {
            app.http.get(app.listener_url(&format!("/bytes/{GIB}")))
        };
        let mut response = request.send().await.unwrap();
        assert_eq!(response.status(), 200);
        let mut received = 0u64;
        while let Some(chunk) = response.chunk().await.unwrap() {
            received += chunk.len() as u64;
            chunks += 1;
            if chunks.is_multiple_of(256) {
                peak = peak.max(rss_kib());
            }
        }
        assert_eq!(received, GIB, "upload: {upload}");
    }
    let stats = app.proxy();
    assert_eq!(stats.listener_stats().forwarded(), 1);
    assert_eq!(stats.listener_stats().handed_off(), 1);
    let growth_mib = (peak.saturating_sub(before)) / 1024;
    eprintln!("rss before {before} KiB, peak {peak} KiB, growth {growth_mib} MiB");
    // Client, proxy and upstream share this process: the bound covers all three.
    assert!(growth_mib < 64, "resident memory grew by {growth_mib} MiB");
    app.finish().await;
}
