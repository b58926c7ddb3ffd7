//! Requests reach the route's pool with the path rewritten, headers changed and forwarding
//! headers added; hop-by-hop headers stay on their hop.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use serde_json::json;
use support::{Upstream, pool};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn routes_match_prefix_host_and_method_and_rewrite_the_path() {
    let api = Upstream::start("api").await;
    let web = Upstream::start("web").await;
    let admin = Upstream::start("admin").await;
    let app = support::start(json!({
        "routes": [
            { "match": { "prefix": "/api/" }, "pool": "api", "strip_prefix": true },
            { "match": { "prefix": "/api/", "host": "admin.test" }, "pool": "admin" },
            { "match": { "prefix": "/v1", "methods": ["POST"] }, "pool": "admin", "rewrite": "/v2/" },
            { "match": { "prefix": "/" }, "pool": "web" },
        ],
        "pools": {
            "api": pool(&[&api], "round_robin"),
            "web": pool(&[&web], "round_robin"),
            "admin": pool(&[&admin], "round_robin"),
        },
    }))
    .await
    .unwrap();

    let (status, body) = app.get("/api/users?limit=2").await;
    assert_eq!(status, 200);
    assert_eq!(body["backend"], "api");
    assert_eq!(body["path"], "/users?limit=2");

    let body: serde_json::Value = app
        .http
        .get(app.url("/api/users"))
        .header("host", "admin.test:8080")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(body["backend"], "admin", "the host route wins");
    assert_eq!(body["path"], "/api/users", "no strip_prefix on that route");

    let body: serde_json::Value = app
        .http
        .post(app.url("/v1/orders"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(body["backend"], "admin");
    assert_eq!(body["path"], "/v2/orders");
    assert_eq!(app.backend("/v1/orders").await, "web", "GET is not POST");
    assert_eq!(
        app.backend("/apis").await,
        "web",
        "prefixes match whole segments"
    );
    app.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn headers_are_added_removed_forwarded_and_hop_by_hop_ones_dropped() {
    let api = Upstream::start("api").await;
    let app = support::start(json!({
        "routes": [{
            "match": { "prefix": "/" }, "pool": "api",
            "add_headers": { "x-gateway": "modular" },
            "remove_headers": ["x-internal"],
        }],
        "pools": { "api": pool(&[&api], "round_robin") },
    }))
    .await
    .unwrap();
    let body: serde_json::Value = app
        .http
        .get(app.url("/thing"))
        .header("x-internal", "secret-route")
        .header("x-kept", "yes")
        .header("connection", "x-hop")
        .header("x-hop", "only-this-hop")
        .header("x-forwarded-for", "203.0.113.9")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let headers = &body["headers"];
    assert_eq!(headers["x-gateway"], "modular");
    assert_eq!(headers["x-kept"], "yes");
    assert!(headers.get("x-internal").is_none(), "{headers}");
    assert!(
        headers.get("x-hop").is_none(),
        "named by Connection: {headers}"
    );
    assert_eq!(headers["x-forwarded-proto"], "http");
    assert_eq!(
        headers["x-forwarded-host"],
        format!("127.0.0.1:{}", app.port)
    );
    assert!(
        headers["x-forwarded-for"]
            .as_str()
            .unwrap()
            .starts_with("203.0.113.9"),
        "{headers}"
    );
    let forwarded = headers["forwarded"].as_str().unwrap();
    assert!(forwarded.contains("proto=http"), "{forwarded}");
    assert!(
        forwarded.contains(&format!("host=\"127.0.0.1:{}\"", app.port)),
        "{forwarded}"
    );
    app.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_body_streams_to_the_backend_and_back() {
    let api = Upstream::start("api").await;
    let app = support::start(json!({
        "routes": [{ "match": { "prefix": "/" }, "pool": "api" }],
        "pools": { "api": pool(&[&api], "round_robin") },
    }))
    .await
    .unwrap();
    let payload = "modular ".repeat(100_000);
    let echoed = app
        .http
        .post(app.url("/echo"))
        .body(payload.clone())
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(echoed.len(), payload.len());
    assert_eq!(echoed, payload);
    app.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn h2c_pools_speak_http2_to_the_backend() {
    let api = Upstream::start("api").await;
    let mut section = pool(&[&api], "round_robin");
    section["protocol"] = json!("h2c");
    let app = support::start(json!({
        "routes": [{ "match": { "prefix": "/" }, "pool": "api" }],
        "pools": { "api": section },
    }))
    .await
    .unwrap();
    let (status, body) = app.get("/over-h2").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["backend"], "api");
    assert_eq!(body["version"], "HTTP/2.0");
    app.finish().await;
}

/// The HTTP server gives each request the client's address; the proxy appends it to
/// `X-Forwarded-For` and names it in `Forwarded: for=`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_client_address_is_forwarded_in_x_forwarded_for_and_forwarded() {
    let api = Upstream::start("api").await;
    let app = support::start(json!({
        "routes": [{ "match": { "prefix": "/" }, "pool": "api" }],
        "pools": { "api": pool(&[&api], "round_robin") },
    }))
    .await
    .unwrap();
    let (status, body) = app.get("/who").await;
    assert_eq!(status, 200, "{body}");
    let headers = &body["headers"];
    assert_eq!(headers["x-forwarded-for"], "127.0.0.1", "{headers}");
    assert_eq!(
        headers["forwarded"],
        format!("for=127.0.0.1;proto=http;host=\"127.0.0.1:{}\"", app.port),
        "{headers}"
    );

    // A chain from an earlier proxy is kept, the client appended.
    let body: serde_json::Value = app
        .http
        .get(app.url("/who"))
        .header("x-forwarded-for", "203.0.113.9, 198.51.100.2")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        body["headers"]["x-forwarded-for"],
        "203.0.113.9, 198.51.100.2, 127.0.0.1"
    );
    app.finish().await;
}

/// Sends `raw` on a new connection to `addr` and reads until the peer closes, answering
/// what came back.
async fn raw_exchange(addr: std::net::SocketAddr, raw: &[u8]) -> String {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    stream.write_all(raw).await.unwrap();
    let mut back = Vec::new();
    let read = tokio::time::timeout(
        std::time::Duration::from_secs(10),
        stream.read_to_end(&mut back),
    )
    .await;
    assert!(read.is_ok(), "the connection was not closed: {back:?}");
    String::from_utf8_lossy(&back).into_owned()
}

/// The module's own listener forwards with the hot path's rules: route match, path
/// rewrite, header changes, forwarding headers, hop-by-hop headers dropped; bodies both ways
/// in every framing; keep-alive and pipelined requests; upstream connections reused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_own_listener_forwards_with_the_hot_paths_rules() {
    let api = Upstream::start("api").await;
    let web = Upstream::start("web").await;
    let app = support::start(json!({
        "listen": "127.0.0.1:0",
        "routes": [
            {
                "match": { "prefix": "/api/" }, "pool": "api", "strip_prefix": true,
                "add_headers": { "x-gateway": "modular" }, "remove_headers": ["x-internal"],
            },
            { "match": { "prefix": "/" }, "pool": "web" },
        ],
        "pools": { "api": pool(&[&api], "round_robin"), "web": pool(&[&web], "round_robin") },
    }))
    .await
    .unwrap();
    let addr = app.proxy().listen_addr().unwrap();
    let body: serde_json::Value = app
        .http
        .get(app.listener_url("/api/users?limit=2"))
        .header("x-internal", "secret-route")
        .header("connection", "x-hop")
        .header("x-hop", "only-this-hop")
        .header("x-forwarded-for", "203.0.113.9")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(body["backend"], "api");
    assert_eq!(body["path"], "/users?limit=2");
    let headers = &body["headers"];
    assert_eq!(headers["x-gateway"], "modular");
    assert!(headers.get("x-internal").is_none(), "{headers}");
    assert!(headers.get("x-hop").is_none(), "{headers}");
    assert_eq!(headers["x-forwarded-for"], "203.0.113.9, 127.0.0.1");
    assert_eq!(headers["x-forwarded-host"], addr.to_string());
    assert_eq!(
        headers["forwarded"],
        format!("for=127.0.0.1;proto=http;host=\"{addr}\"")
    );
    assert_eq!(app.get("/web-through-httpserver").await.1["backend"], "web");

    // A body with a length (within the 64 KiB the listener reads whole), echoed back; a
    // chunked answer of 1 MiB; a HEAD.
    let payload = "modular ".repeat(8_000);
    let echoed = app
        .http
        .post(app.listener_url("/echo"))
        .body(payload.clone())
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(echoed, payload);
    let response = app.get_on_listener("/bytes/1048576").await;
    assert_eq!(response.status(), 200);
    assert!(
        response.headers().get("content-length").is_none(),
        "chunked"
    );
    assert_eq!(response.bytes().await.unwrap().len(), 1 << 20);
    let head = app
        .http
        .head(app.listener_url("/api/x"))
        .send()
        .await
        .unwrap();
    assert_eq!(head.status(), 200);

    // Keep-alive: a hundred requests on reused connections, both sides.
    let before = app
        .proxy()
        .table()
        .backends()
        .map(|b| b.connections_opened())
        .sum::<u64>();
    for i in 0..100 {
        let response = app.get_on_listener(&format!("/n/{i}")).await;
        assert_eq!(response.status(), 200);
        let _ = response.bytes().await.unwrap();
    }
    let opened = app
        .proxy()
        .table()
        .backends()
        .map(|b| b.connections_opened())
        .sum::<u64>();
    assert!(
        opened - before <= 2,
        "{} new upstream connections",
        opened - before
    );

    // Two pipelined requests in one write, answered in order; `Connection: close` closes.
    let back = raw_exchange(
        addr,
        b"GET /first HTTP/1.1\r\nhost: a.test\r\n\r\nGET /second HTTP/1.1\r\nhost: a.test\r\nconnection: close\r\n\r\n",
    )
    .await;
    let first = back.find("\"path\":\"/first\"").expect(&back);
    let second = back.find("\"path\":\"/second\"").expect(&back);
    assert!(first < second, "{back}");
    assert_eq!(back.matches("HTTP/1.1 200").count(), 2, "{back}");
    assert!(
        back.to_ascii_lowercase().contains("connection: close"),
        "{back}"
    );
    // A client naming `Content-Length` in `Connection` does not get its body read by the
    // backend as a request of its own: the length sent is the body's.
    let back = raw_exchange(
        addr,
        b"POST /echo HTTP/1.1\r\nhost: a.test\r\nconnection: content-length\r\ncontent-length: 35\r\n\r\n\
GET /smuggled HTTP/1.1\r\nhost: x\r\n\r\nGET /next HTTP/1.1\r\nhost: a.test\r\nconnection: close\r\n\r\n",
    )
    .await;
    assert_eq!(back.matches("HTTP/1.1 200").count(), 2, "{back}");
    assert!(
        back.contains("GET /smuggled HTTP/1.1\r\nhost: x"),
        "echoed as a body: {back}"
    );
    assert!(!back.contains("\"path\":\"/smuggled\""), "{back}");
    assert!(back.contains("\"path\":\"/next\""), "{back}");

    // All of it forwarded by the listener itself, none handed to hyper.
    let stats = app.proxy();
    assert_eq!(stats.listener_stats().handed_off(), 0);
    assert!(stats.listener_stats().forwarded() >= 108);
    app.finish().await;
}

/// What the own listener does not forward itself goes to hyper and the hot path on the same
/// connection: a chunked upload, an HTTP/1.0 request, a malformed head, a WebSocket upgrade.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_own_listener_hands_what_it_does_not_forward_to_hyper() {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let api = Upstream::start("api").await;
    let app = support::start(json!({
        "listen": "127.0.0.1:0",
        "routes": [{ "match": { "prefix": "/" }, "pool": "api" }],
        "pools": { "api": pool(&[&api], "round_robin") },
    }))
    .await
    .unwrap();
    let addr = app.proxy().listen_addr().unwrap();
    let stream =
        futures::stream::iter((0..64).map(|_| Ok::<_, std::io::Error>(vec![b'z'; 16 * 1024])));
    let echoed = app
        .http
        .post(app.listener_url("/echo"))
        .body(reqwest::Body::wrap_stream(stream))
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    assert_eq!(echoed.len(), 64 * 16 * 1024);

    // A fast request, then an HTTP/1.0 one on the same connection: both answered.
    let back = raw_exchange(
        addr,
        b"GET /one HTTP/1.1\r\nhost: a.test\r\n\r\nGET /ten HTTP/1.0\r\nhost: a.test\r\n\r\n",
    )
    .await;
    assert!(back.contains("\"path\":\"/one\""), "{back}");
    assert!(back.contains("\"path\":\"/ten\""), "{back}");

    let back = raw_exchange(addr, b"GET /\x01bad HTTP/1.1\r\n\r\n").await;
    assert!(back.starts_with("HTTP/1.1 400"), "{back}");
    // A length that is not all digits is not read as one here (a smuggling vector): hyper
    // refuses it.
    let back = raw_exchange(
        addr,
        b"POST /echo HTTP/1.1\r\nhost: a.test\r\ncontent-length: +5\r\n\r\nhello",
    )
    .await;
    assert!(back.starts_with("HTTP/1.1 400"), "{back}");

    let (mut ws, head) = support::websocket_handshake(addr).await;
    assert!(head.starts_with("http/1.1 101"), "{head}");
    ws.write_all(b"raw bytes after the upgrade").await.unwrap();
    let mut back = [0u8; 27];
    tokio::time::timeout(std::time::Duration::from_secs(5), ws.read_exact(&mut back))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(&back, b"raw bytes after the upgrade");
    // The upload, the HTTP/1.0 request, the two malformed heads and the upgrade.
    assert_eq!(app.proxy().listener_stats().handed_off(), 5);
    app.finish().await;
}

/// On the own listener a refused backend is retried on another, a pool with none answers
/// 503 with `Retry-After`, a slow backend 504 within the route's timeout.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_own_listener_retries_refuses_and_times_out_like_the_hot_path() {
    let live = Upstream::start("live").await;
    let refusing = tokio::net::TcpSocket::new_v4().unwrap();
    refusing.bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let dead = format!("http://{}", refusing.local_addr().unwrap());
    let app = support::start(json!({
        "listen": "127.0.0.1:0",
        "routes": [
            { "match": { "prefix": "/slow/" }, "pool": "p", "timeout": "200ms", "strip_prefix": true },
            { "match": { "prefix": "/none/" }, "pool": "none" },
            { "match": { "prefix": "/r/" }, "pool": "p", "retries": 2 },
        ],
        "pools": {
            "p": { "balance": "round_robin", "backends": [{ "url": dead }, { "url": live.url() }] },
            "none": { "backends": [{ "url": dead }], "outlier": { "consecutive_failures": 1 } },
        },
    }))
    .await
    .unwrap();
    for i in 0..6 {
        let response = app.get_on_listener(&format!("/r/{i}")).await;
        assert_eq!(response.status(), 200, "request {i}");
    }
    assert_eq!(live.hits(), 6);

    // The dead backend fails once, is ejected, and then the pool has none to choose.
    let first = app.get_on_listener("/none/a").await;
    assert_eq!(first.status(), 502);
    let response = app.get_on_listener("/none/b").await;
    assert_eq!(response.status(), 503);
    assert!(response.headers().contains_key("retry-after"));

    let response = app.get_on_listener("/slow/sleep/5000").await;
    assert_eq!(response.status(), 504);
    let response = app.get_on_listener("/elsewhere").await;
    assert_eq!(response.status(), 404);
    assert_eq!(response.text().await.unwrap(), "no route\n");
    // The proxy's own answer to a HEAD is a head: the next answer on the connection follows
    // it directly.
    let back = raw_exchange(
        app.proxy().listen_addr().unwrap(),
        b"HEAD /elsewhere HTTP/1.1\r\nhost: a.test\r\n\r\nGET /elsewhere HTTP/1.1\r\nhost: a.test\r\nconnection: close\r\n\r\n",
    )
    .await;
    assert_eq!(back.matches("HTTP/1.1 404").count(), 2, "{back}");
    assert_eq!(back.matches("no route").count(), 1, "{back}");
    assert!(
        back.contains("content-length: 9\r\n\r\nHTTP/1.1 404"),
        "{back}"
    );
    // `listen` needs a restart: a reload changing it is refused with its path, and the
    // listener stays where it is.
    let addr = app.proxy().listen_addr().unwrap();
    let outcome = app
        .app
        .set_override("reverseproxy.listen", json!("127.0.0.1:1"))
        .await
        .unwrap();
    assert_eq!(outcome.status, modular_core::ReloadStatus::Rejected);
    assert!(
        format!("{:?}", outcome.error).contains("reverseproxy.listen"),
        "{:?}",
        outcome.error
    );
    assert_eq!(app.proxy().listen_addr(), Some(addr));
    assert_eq!(app.get_on_listener("/elsewhere").await.status(), 404);
    assert_eq!(app.proxy().listener_stats().handed_off(), 0);
    app.finish().await;
}
