//! The reverseproxy module vs nginx, side by side in one run: the same axum upstream, the
//! same load generator (wrk, 64 keep-alive connections), the upstream called directly for
//! reference. Needs the Debian packages `nginx` and `wrk`; `cargo xtask bench` runs it (in
//! release) when both are installed.
//!
//! `cargo run --release -p modular-reverseproxy --example nginx_compare [-- SECONDS]`
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::time::Duration;

use anyhow::{Context as _, bail};
use modular_reverseproxy::ReverseProxyModule;

const CONNECTIONS: u32 = 64;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let seconds: u64 = std::env::args()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(10);
    modular_core::install_default_crypto_provider();

    // The upstream runs on a runtime (and threads) of its own, as a separate server would:
    // sharing the proxy's two worker threads would make the proxy compete with its own
    // upstream for them, while nginx's workers are processes of their own.
    let std_listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    std_listener.set_nonblocking(true)?;
    let upstream = std_listener.local_addr()?;
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .thread_name("upstream")
            .build()
            .expect("the upstream's runtime");
        runtime.block_on(async move {
            let listener = tokio::net::TcpListener::from_std(std_listener).expect("listener");
            let app = axum::Router::new().fallback(axum::routing::get(|| async { "ok" }));
            let _ = axum::serve(listener, app).await;
        });
    });

    let mut proxy = modular_core::Application::builder()
        .env_prefix(None)
        .config_defaults(serde_json::json!({
            "httpserver": { "host": "127.0.0.1", "port": 0, "drain_delay": "0s" },
            "reverseproxy": {
                "listen": "127.0.0.1:0",
                "routes": [{ "match": { "prefix": "/" }, "pool": "bench" }],
                "pools": { "bench": { "backends": [{ "url": format!("http://{upstream}") }] } },
            },
        }))
        .module(ReverseProxyModule::new())
        .module(modular_router::RouterModule::new())
        .module(modular_httpserver::HttpServerModule::new())
        .handle_signals(false)
        .build()
        .await?;
    proxy.start().await?;
    let proxied = proxy
        .services()
        .require::<modular_httpserver::HttpServerHandle>()?
        .local_addr()
        .context("the proxy is listening")?;
    let own_listener = proxy
        .services()
        .require::<modular_reverseproxy::Proxy>()?
        .listen_addr()
        .context("the module's own listener is listening")?;

    // The same proxy core (table, balancer, client) behind plain `axum::serve`: no
    // httpserver, no router middleware stack. Splits the framework's share from the proxy's.
    let (bare, bare_core) = {
        let section: modular_reverseproxy::ReverseProxyConfig =
            serde_json::from_value(serde_json::json!({
                "routes": [{ "match": { "prefix": "/" }, "pool": "bench" }],
                "pools": { "bench": { "backends": [{ "url": format!("http://{upstream}") }] } },
            }))?;
        let table = modular_reverseproxy::Table::build(&section, None)?;
        let core = std::sync::Arc::new(modular_reverseproxy::Proxy::new(
            table,
            std::sync::Arc::new(|_: &str, _| {}),
        ));
        let kept = std::sync::Arc::clone(&core);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let app = axum::Router::new().fallback(move |request: axum::extract::Request| {
            let core = std::sync::Arc::clone(&core);
            async move { core.handle(request).await }
        });
        tokio::spawn(async move { axum::serve(listener, app).await });
        (addr, kept)
    };

    let nginx_port = modular_testkit::free_port();
    let dir = std::env::temp_dir().join(format!("modular-nginx-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let conf = dir.join("nginx.conf");
    std::fs::write(&conf, nginx_conf(&dir, upstream, nginx_port))?;
    let mut nginx = Command::new("nginx")
        .arg("-p")
        .arg(&dir)
        .arg("-c")
        .arg(&conf)
        .arg("-e")
        .arg(dir.join("error.log"))
        .stdout(Stdio::null())
        .spawn()
        .context("start nginx")?;
    modular_testkit::wait_for_tcp(("127.0.0.1", nginx_port), Duration::from_secs(5)).await?;

    let targets = [
        ("upstream directly", format!("http://{upstream}/")),
        ("nginx", format!("http://127.0.0.1:{nginx_port}/")),
        (
            "modular reverseproxy, own listener",
            format!("http://{own_listener}/"),
        ),
        (
            "modular reverseproxy through httpserver",
            format!("http://{proxied}/"),
        ),
        (
            "reverseproxy core alone (axum::serve, no httpserver/router)",
            format!("http://{bare}/"),
        ),
    ];
    let mut results = Vec::new();
    let nginx_pids = || -> Vec<u32> {
        let mut pids = vec![nginx.id()];
        if let Ok(children) =
            std::fs::read_to_string(format!("/proc/{0}/task/{0}/children", nginx.id()))
        {
            pids.extend(
                children
                    .split_whitespace()
                    .filter_map(|p| p.parse::<u32>().ok()),
            );
        }
        pids
    };
    for (name, url) in &targets {
        // A short warm-up fills both proxies' upstream connection pools.
        wrk(url, 2)?;
        let before = (
            cpu_seconds(&[std::process::id()]),
            cpu_seconds(&nginx_pids()),
        );
        let (rps, p99) = wrk(url, seconds)?;
        let after = (
            cpu_seconds(&[std::process::id()]),
            cpu_seconds(&nginx_pids()),
        );
        let requests = rps * seconds as f64;
        let cpu = (
            (after.0 - before.0) / requests * 1e6,
            (after.1 - before.1) / requests * 1e6,
        );
        results.push((*name, rps, p99, cpu));
    }
    // `-s stop` (SIGTERM to the master) stops its workers too; killing the master would
    // orphan them.
    let _ = Command::new("nginx")
        .arg("-p")
        .arg(&dir)
        .arg("-c")
        .arg(&conf)
        .args(["-s", "stop"])
        .status();
    let _ = nginx.wait();
    let _ = std::fs::remove_dir_all(&dir);
    let module_core = proxy.services().require::<modular_reverseproxy::Proxy>()?;
    for (name, core) in [("module", module_core), ("core alone", bare_core)] {
        for backend in core.table().backends() {
            eprintln!(
                "{name}: {} requests over {} upstream connections",
                backend.requests(),
                backend.connections_opened()
            );
        }
    }
    proxy.stop().await?;

    // CPU per request (µs) of this process (upstream + proxies) and of nginx's processes:
    // steadier than requests/s on a machine whose cores other work shares.
    println!(
        "| target | requests/s | p99 latency | CPU µs/request, this process | CPU µs/request, nginx |\n|---|---|---|---|---|"
    );
    for (name, rps, p99, (ours, theirs)) in &results {
        println!(
            "| {name} | {rps:.0} | {:.2} ms | {ours:.1} | {theirs:.1} |",
            p99 * 1e3
        );
    }
    let upstream_cpu = results[0].3.0;
    println!(
        "CPU per proxied request, upstream's share subtracted: nginx {:.1} µs, own listener {:.1} µs, through httpserver {:.1} µs, core alone {:.1} µs",
        results[1].3.1,
        results[2].3.0 - upstream_cpu,
        results[3].3.0 - upstream_cpu,
        results[4].3.0 - upstream_cpu,
    );
    let (nginx_rps, nginx_p99) = (results[1].1, results[1].2);
    for (index, name) in [(2, "own listener"), (3, "through httpserver")] {
        let (ours_rps, ours_p99) = (results[index].1, results[index].2);
        println!(
            "reverseproxy ({name})/nginx: {:.2}x requests/s (target >= 0.8x), {:.2}x p99 (target <= 1.5x); wrk -t2 -c{CONNECTIONS} -d{seconds}s",
            ours_rps / nginx_rps,
            ours_p99 / nginx_p99,
        );
    }
    Ok(())
}

fn nginx_conf(dir: &std::path::Path, upstream: SocketAddr, port: u16) -> String {
    let d = dir.display();
    format!(
        "daemon off;
worker_processes auto;
pid {d}/nginx.pid;
error_log {d}/error.log warn;
events {{ worker_connections 4096; }}
http {{
    access_log off;
    client_body_temp_path {d}/body;
    proxy_temp_path {d}/proxy;
    fastcgi_temp_path {d}/fastcgi;
    uwsgi_temp_path {d}/uwsgi;
    scgi_temp_path {d}/scgi;
    upstream bench {{ server {upstream}; keepalive 128; }}
    server {{
        listen 127.0.0.1:{port};
        location / {{
            proxy_pass http://bench;
            proxy_http_version 1.1;
            proxy_set_header Connection \"\";
            proxy_set_header Host $host;
            proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
            proxy_set_header X-Forwarded-Proto $scheme;
        }}
    }}
}}
"
    )
}

/// Runs wrk against `url` and parses requests/s and the p99 latency (seconds).
fn wrk(url: &str, seconds: u64) -> anyhow::Result<(f64, f64)> {
    let output = Command::new("wrk")
        .args([
            "-t2",
            &format!("-c{CONNECTIONS}"),
            &format!("-d{seconds}s"),
            "--latency",
            url,
        ])
        .output()
        .context("run wrk")?;
    let text = String::from_utf8_lossy(&output.stdout);
    if !output.status.success() {
        bail!("wrk failed: {text}");
    }
    let rps = text
        .lines()
        .find_map(|l| l.trim().strip_prefix("Requests/sec:"))
        .and_then(|v| v.trim().parse::<f64>().ok())
        .context("wrk printed no Requests/sec")?;
    let p99 = text
        .lines()
        .find_map(|l| l.trim().strip_prefix("99%"))
        .and_then(|v| parse_duration(v.trim()))
        .context("wrk printed no 99% latency")?;
    if text.contains("Non-2xx") || text.contains("Socket errors") {
        eprintln!("wrk reported errors for {url}:\n{text}");
    }
    Ok((rps, p99))
}

fn parse_duration(value: &str) -> Option<f64> {
    let split = value.find(|c: char| c.is_ascii_alphabetic())?;
    let (number, unit) = value.split_at(split);
    let number: f64 = number.parse().ok()?;
    Some(match unit {
        "us" => number / 1e6,
        "ms" => number / 1e3,
        "s" => number,
        "m" => number * 60.0,
        _ => return None,
    })
}

/// User plus system CPU seconds of the processes `pids` (all their threads) so far.
fn cpu_seconds(pids: &[u32]) -> f64 {
    // `utime` and `stime` are fields 14 and 15 of /proc/PID/stat, in clock ticks (100/s
    // on Linux); the command name (field 2) may hold spaces, so count after its `)`.
    pids.iter()
        .filter_map(|pid| std::fs::read_to_string(format!("/proc/{pid}/stat")).ok())
        .filter_map(|stat| {
            let rest = stat.rsplit_once(')')?.1;
            let fields: Vec<&str> = rest.split_whitespace().collect();
            let utime: f64 = fields.get(11)?.parse().ok()?;
            let stime: f64 = fields.get(12)?.parse().ok()?;
            Some((utime + stime) / 100.0)
        })
        .sum()
}
