//! Shared fixtures: an application running the event bus, unique names, collecting handlers.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use modular_core::Application;
use modular_eventbus::{Delivery, EventbusModule, MessageBus};
use serde_json::{Value, json};
use tokio::sync::mpsc;

pub struct Harness {
    pub app: Application,
    pub bus: Arc<MessageBus>,
}

impl Harness {
    pub async fn stop(mut self) {
        self.app.stop().await.expect("stop");
    }
}

/// A name no other test (or earlier run) uses.
pub fn unique(test: &str) -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or_default();
    format!(
        "{test}-{}-{nanos}-{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    )
}

/// Starts an application whose `eventbus` section is `section`.
pub async fn start(section: Value) -> anyhow::Result<Harness> {
    modular_testkit::install_crypto_provider();
    let mut app = modular_testkit::test_builder()
        .config_defaults(json!({ "eventbus": section }))
        .module(EventbusModule::new())
        .build()
        .await?;
    app.start().await?;
    let bus = app.services().require::<MessageBus>()?;
    Ok(Harness { app, bus })
}

/// A handler that forwards every delivery to a channel.
pub fn collector() -> (
    impl Fn(Delivery) -> futures_ready::Ready + Send + Sync + 'static,
    mpsc::UnboundedReceiver<Delivery>,
) {
    let (tx, rx) = mpsc::unbounded_channel();
    (
        move |d: Delivery| {
            let _ = tx.send(d);
            futures_ready::ready()
        },
        rx,
    )
}

pub mod futures_ready {
    pub type Ready = std::future::Ready<modular_eventbus::HandlerResult>;
    pub fn ready() -> Ready {
        std::future::ready(Ok(()))
    }
}

/// Two members of group `workers` and one fan-out subscriber on `pattern`, then `n` events
/// published on `topic`: waits (each step within `within`) until the fan-out has all `n` and the
/// members all `n` between them, and answers how many each member got; panics on a duplicate.
pub async fn split_between_two_members(
    h: &Harness,
    pattern: &str,
    topic: &str,
    n: usize,
    within: Duration,
) -> [usize; 2] {
    use cloudevents::AttributesReader as _;
    let (a, mut a_rx) = collector();
    let (b, mut b_rx) = collector();
    let (fan, mut fan_rx) = collector();
    let _a = h.bus.subscribe_group(pattern, "workers", a).await.unwrap();
    let _b = h.bus.subscribe_group(pattern, "workers", b).await.unwrap();
    let _f = h.bus.subscribe(pattern, fan).await.unwrap();
    for i in 0..n {
        h.bus.publish_data(topic, "t", &i).await.unwrap();
    }
    for _ in 0..n {
        next(&mut fan_rx, within).await;
    }
    let mut ids = std::collections::HashSet::new();
    let mut per = [0, 0];
    while ids.len() < n {
        tokio::select! {
            Some(d) = a_rx.recv() => { per[0] += 1; ids.insert(d.event.id().to_owned()); }
            Some(d) = b_rx.recv() => { per[1] += 1; ids.insert(d.event.id().to_owned()); }
            () = tokio::time::sleep(within) => panic!("only {} of {n} delivered", ids.len()),
        }
    }
    assert_eq!(per[0] + per[1], n, "each event to one member: {per:?}");
    per
}

/// The next delivery within `within`, or a panic naming what was awaited.
pub async fn next(rx: &mut mpsc::UnboundedReceiver<Delivery>, within: Duration) -> Delivery {
    tokio::time::timeout(within, rx.recv())
        .await
        .expect("a delivery in time")
        .expect("the channel open")
}

/// Redis section for a unique prefix.
pub fn redis_engine(url: &str, prefix: &str) -> Value {
    json!({ "type": "redis", "url": url, "prefix": format!("{prefix}:"), "visibility_timeout": "1s", "connect_timeout": "1s", "publish_timeout": "1s" })
}

/// NATS section for a unique prefix.
pub fn nats_engine(url: &str, prefix: &str) -> Value {
    json!({ "type": "nats", "url": url, "prefix": prefix.replace(['-', ':'], "_"), "visibility_timeout": "1s", "connect_timeout": "1s", "publish_timeout": "1s" })
}

/// RabbitMQ section for a unique prefix (the exchange and queue name prefix).
pub fn amqp_engine(url: &str, prefix: &str) -> Value {
    json!({ "type": "amqp", "url": url, "prefix": prefix, "visibility_timeout": "1s", "connect_timeout": "1s", "publish_timeout": "1s" })
}

/// MQTT section for a unique prefix (the topic prefix).
pub fn mqtt_engine(url: &str, prefix: &str) -> Value {
    json!({ "type": "mqtt", "url": url, "prefix": prefix, "visibility_timeout": "1s", "connect_timeout": "1s", "publish_timeout": "1s" })
}

/// A fault proxy in front of the server of `url`; returns it and the same URL through it.
pub async fn proxy(url: &str) -> anyhow::Result<(modular_testkit::FaultProxy, String)> {
    let (scheme, rest) = url.split_once("://").unwrap_or(("", url));
    let authority = rest.split('/').next().unwrap_or_default();
    let (userinfo, host_port) = match authority.rsplit_once('@') {
        Some((u, hp)) => (format!("{u}@"), hp),
        None => (String::new(), authority),
    };
    let upstream = tokio::net::lookup_host(host_port)
        .await?
        .next()
        .ok_or_else(|| anyhow::anyhow!("{host_port} resolves to nothing"))?;
    let proxy = modular_testkit::FaultProxy::start(upstream).await?;
    modular_testkit::wait_for_tcp(proxy.addr(), Duration::from_secs(5)).await?;
    let path = rest.strip_prefix(authority).unwrap_or_default();
    let proxied = format!("{scheme}://{userinfo}{}{path}", proxy.addr());
    Ok((proxy, proxied))
}
