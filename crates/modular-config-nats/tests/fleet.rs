//! Fleet config against the real NATS JetStream: one put reaches every instance, each ACKs or
//! NACKs it in the bucket, start-up falls back to the cache, an outage is ridden out, and the
//! credentials in the URL never leave.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_nats::jetstream::kv;
use modular_config_nats::{FleetModule, InstanceStatus, NACK_EVENT, NatsKv, NatsKvOptions, ops};
use modular_core::events::EventFilter;
use modular_core::health::HealthStatus;
use modular_core::{
    Application, BoxError, ConfigHandle, DynamicConfig, FieldError, InitContext, Module,
};
use modular_testkit::{FaultProxy, RefusedPort, Service, test_builder};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, DynamicConfig)]
#[serde(default, deny_unknown_fields)]
struct NotesConfig {
    #[config(dynamic)]
    max_items: u32,
    #[config(dynamic)]
    greeting: String,
}

impl Default for NotesConfig {
    fn default() -> Self {
        Self {
            max_items: 10,
            greeting: "hello".to_owned(),
        }
    }
}

/// An application module reading `notes`; its config handle is what the tests watch.
#[derive(Debug, Default)]
struct Notes {
    handle: Arc<Mutex<Option<ConfigHandle<NotesConfig>>>>,
}

#[modular_core::async_trait]
impl Module for Notes {
    fn name(&self) -> &str {
        "notes"
    }

    async fn init(&mut self, ctx: &mut InitContext<'_>) -> Result<(), BoxError> {
        *self.handle.lock().unwrap() = Some(ctx.config::<NotesConfig>()?);
        Ok(())
    }
}

struct Instance {
    app: Application,
    kv: Arc<NatsKv>,
    notes: ConfigHandle<NotesConfig>,
}

impl Instance {
    async fn start(
        options: NatsKvOptions,
        id: &str,
        customize: impl FnOnce(modular_core::ApplicationBuilder) -> modular_core::ApplicationBuilder,
    ) -> anyhow::Result<Self> {
        let kv = NatsKv::connect(options).await?;
        let notes = Notes::default();
        let handle = Arc::clone(&notes.handle);
        let builder = test_builder()
            .config_remote(kv.clone())
            .config_defaults(json!({ "fleet": { "instance_id": id, "heartbeat": "200ms", "ttl": "30s", "debounce": "20ms" } }))
            .module(notes)
            .module(FleetModule::new(kv.clone()));
        let mut app = customize(builder).build().await?;
        app.start().await?;
        let notes = handle.lock().unwrap().clone().unwrap();
        Ok(Self { app, kv, notes })
    }

    async fn health(&self) -> modular_core::health::HealthReport {
        let answer = self.app.health().unwrap().force_refresh().await;
        answer
            .reports
            .iter()
            .find(|r| r.module == "fleet")
            .cloned()
            .expect("a fleet report")
    }
}

/// A bucket and service of this test's own.
fn names() -> (String, String) {
    static N: AtomicU32 = AtomicU32::new(0);
    let n = N.fetch_add(1, Ordering::Relaxed);
    let stamp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    (
        format!("fleet_{}_{n}_{stamp}", std::process::id()),
        format!("svc{n}"),
    )
}

async fn bucket(url: &str, name: &str) -> kv::Store {
    let client = async_nats::connect(url).await.unwrap();
    let js = async_nats::jetstream::new(client);
    ops::open_bucket(&js, name, 5).await.unwrap()
}

/// The NATS URL, a fresh bucket's name, a service name of its own and the bucket; `None` when
/// NATS is not configured for the tests (the test then passes without running).
async fn fixture() -> Option<(String, String, String, kv::Store)> {
    modular_testkit::install_crypto_provider();
    let url = modular_testkit::service(Service::Nats)?;
    let (bucket_name, service) = names();
    let store = bucket(&url, &bucket_name).await;
    Some((url, bucket_name, service, store))
}

/// Polls `check` until it holds, for at most 20 s (real broker round trips, no fixed sleep).
async fn eventually(what: &str, mut check: impl AsyncFnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while !check().await {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting: {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn statuses(store: &kv::Store, service: &str) -> Vec<InstanceStatus> {
    ops::fleet_statuses(store, service, Duration::from_secs(30))
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_put_reaches_every_instance_and_each_acks_the_same_revision() -> anyhow::Result<()> {
    let Some((url, bucket_name, service, store)) = fixture().await else {
        return Ok(());
    };
    store
        .put(
            service.as_str(),
            "notes: {max_items: 20, greeting: hi}\n".into(),
        )
        .await?;
    let mut fleet = Vec::new();
    for i in 0..10 {
        let options = NatsKvOptions::new(&url, &bucket_name, &service);
        fleet.push(Instance::start(options, &format!("i{i}"), |b| b).await?);
    }
    for instance in &fleet {
        assert_eq!(instance.notes.get().max_items, 20);
        assert_eq!(instance.notes.get().greeting, "hi");
    }
    // A dotted key wins over the document.
    let revision = store
        .put(format!("{service}.notes.max_items"), "35".into())
        .await?;
    for instance in &fleet {
        eventually("every instance applies the put", async || {
            instance.notes.get().max_items == 35
        })
        .await;
        let history = instance.app.reloader().unwrap().history();
        let last = history.last().unwrap();
        assert_eq!(last.trigger.as_ref().map(|t| t.as_str()), Some("remote"));
        assert_eq!(
            last.source_revisions.values().next(),
            Some(&revision.to_string())
        );
    }
    eventually("ten ACKs of the revision", async || {
        let all = statuses(&store, &service).await;
        all.len() == 10
            && all
                .iter()
                .all(|s| s.status == "ack" && s.revision.as_deref() == Some(&revision.to_string()))
    })
    .await;
    // The document's other values still hold (the key layered over it).
    assert_eq!(fleet[3].notes.get().greeting, "hi");
    for mut instance in fleet {
        instance.app.stop().await?;
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_change_one_instance_rejects_is_nacked_there_and_its_running_config_stays()
-> anyhow::Result<()> {
    let Some((url, bucket_name, service, store)) = fixture().await else {
        return Ok(());
    };
    let mut fleet = Vec::new();
    for i in 0..10 {
        let options = NatsKvOptions::new(&url, &bucket_name, &service);
        // Instance 9 has a local rule: at most 100 items.
        let strict = i == 9;
        fleet.push(
            Instance::start(options, &format!("n{i}"), move |b| {
                if strict {
                    b.section_check(
                        "notes",
                        Arc::new(
                            |v: &Value| match v.get("max_items").and_then(Value::as_u64) {
                                Some(n) if n > 100 => Err(vec![FieldError::new(
                                    "max_items",
                                    format!("must be at most 100 on this instance, got {n}"),
                                )]),
                                _ => Ok(()),
                            },
                        ),
                    )
                } else {
                    b
                }
            })
            .await?,
        );
    }
    let mut nacks = fleet[9]
        .app
        .events()
        .subscribe(EventFilter::exact(NACK_EVENT));
    let revision = store
        .put(format!("{service}.notes.max_items"), "500".into())
        .await?
        .to_string();
    for instance in &fleet[..9] {
        eventually("the nine lenient instances apply it", async || {
            instance.notes.get().max_items == 500
        })
        .await;
    }
    eventually("nine ACKs and one NACK", async || {
        let all = statuses(&store, &service).await;
        all.iter()
            .filter(|s| s.revision.as_deref() == Some(&revision))
            .count()
            == 10
    })
    .await;
    let all = statuses(&store, &service).await;
    let nack = all.iter().find(|s| s.instance == "n9").unwrap();
    assert_eq!(nack.status, "nack", "{all:?}");
    assert_eq!(nack.reload, "rejected");
    let error = nack.error.as_deref().unwrap();
    assert!(error.contains("notes.max_items"), "{error}");
    assert!(error.contains("at most 100 on this instance"), "{error}");
    assert_eq!(all.iter().filter(|s| s.status == "ack").count(), 9);
    // The NACKing instance keeps its running config, and said so on its event bus.
    assert_eq!(fleet[9].notes.get().max_items, 10);
    let event = nacks.recv().await.unwrap();
    let data = modular_core::events::event_data(&event).unwrap();
    assert_eq!(data["instance"], "n9");
    assert_eq!(data["revision"], revision);

    // A key that is not YAML is a NACK with its path everywhere, and nothing changes.
    let bad = store
        .put(format!("{service}.notes.greeting"), "'unclosed".into())
        .await?
        .to_string();
    eventually("ten NACKs of the bad key", async || {
        let all = statuses(&store, &service).await;
        all.iter()
            .filter(|s| s.revision.as_deref() == Some(&bad) && s.status == "nack")
            .count()
            == 10
    })
    .await;
    let all = statuses(&store, &service).await;
    assert!(
        all.iter()
            .all(|s| s.error.as_deref().unwrap_or("").contains("notes.greeting")),
        "{all:?}"
    );
    assert_eq!(fleet[0].notes.get().greeting, "hello");
    for mut instance in fleet {
        instance.app.stop().await?;
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn start_up_without_the_store_serves_the_cached_revision_or_fails_naming_the_url()
-> anyhow::Result<()> {
    let Some((url, bucket_name, service, store)) = fixture().await else {
        return Ok(());
    };
    store
        .put(format!("{service}.notes.max_items"), "77".into())
        .await?;
    let dir = tempfile::tempdir()?;
    let cache = dir.path().join("fleet-cache.json");
    // A first run caches the revision.
    let mut first = Instance::start(
        NatsKvOptions::new(&url, &bucket_name, &service).cache_path(&cache),
        "c0",
        |b| b,
    )
    .await?;
    assert_eq!(first.notes.get().max_items, 77);
    first.app.stop().await?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&cache)?.permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
    }

    // The store is down: the cached revision serves, and the source is degraded.
    let down = RefusedPort::new();
    let secret = "s3cret-fleet-pass";
    let down_url = format!("nats://fleet:{secret}@127.0.0.1:{}", down.port());
    let mut cached = Instance::start(
        NatsKvOptions::new(&down_url, &bucket_name, &service)
            .cache_path(&cache)
            .connect_timeout(Duration::from_millis(300)),
        "c1",
        |b| b,
    )
    .await?;
    assert_eq!(cached.notes.get().max_items, 77);
    let report = cached.health().await;
    assert_eq!(report.status, HealthStatus::Degraded, "{report:?}");
    assert_eq!(report.details["from_cache"], json!(true));
    let shown = format!("{report:?} {:?} {:?}", cached.kv, cached.kv.options());
    assert!(!shown.contains(secret), "{shown}");
    let history = cached.app.reloader().unwrap().history();
    let history = serde_json::to_string(&history)?;
    assert!(!history.contains(secret), "{history}");
    cached.app.stop().await?;

    // No cache: build fails with the URL, without the password.
    let error = NatsKv::connect(
        NatsKvOptions::new(&down_url, &bucket_name, &service)
            .cache_path(dir.path().join("none.json"))
            .connect_timeout(Duration::from_millis(300)),
    )
    .await
    .unwrap_err()
    .to_string();
    assert!(
        error.contains(&format!("nats://127.0.0.1:{}", down.port())),
        "{error}"
    );
    assert!(error.contains("none.json"), "{error}");
    assert!(!error.contains(secret), "{error}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_outage_degrades_the_source_and_a_change_put_meanwhile_applies_on_reconnect()
-> anyhow::Result<()> {
    let Some((url, bucket_name, service, store)) = fixture().await else {
        return Ok(());
    };
    let upstream: std::net::SocketAddr = url
        .trim_start_matches("nats://")
        .parse()
        .expect("a nats://ip:port URL");
    let proxy = FaultProxy::start(upstream).await?;
    let mut instance = Instance::start(
        NatsKvOptions::new(format!("nats://{}", proxy.addr()), &bucket_name, &service),
        "o0",
        |b| b,
    )
    .await?;
    assert_eq!(instance.health().await.status, HealthStatus::Healthy);
    let before = instance.health().await;
    assert_eq!(before.details["connected"], json!(true), "{before:?}");
    let contact_before = before.details["last_contact"].as_str().unwrap().to_owned();
    proxy.cut();
    eventually("the source turns degraded", async || {
        instance.health().await.status == HealthStatus::Degraded
    })
    .await;
    // The details say what still serves and when the store last answered.
    let report = instance.health().await;
    assert_eq!(report.details["connected"], json!(false), "{report:?}");
    assert_eq!(
        report.details["revision"],
        json!(instance.kv.revision()),
        "{report:?}"
    );
    let last_contact: chrono::DateTime<chrono::Utc> = report.details["last_contact"]
        .as_str()
        .expect("a last contact")
        .parse()?;
    assert!(
        last_contact >= contact_before.parse::<chrono::DateTime<chrono::Utc>>()?,
        "{report:?}"
    );
    assert!(report.details["error"].is_string(), "{report:?}");
    assert!(report.message.contains("unreachable"), "{report:?}");
    // The instance keeps serving its config; a change is put while it cannot see it.
    assert_eq!(instance.notes.get().max_items, 10);
    let revision = store
        .put(format!("{service}.notes.max_items"), "12".into())
        .await?
        .to_string();
    proxy.restore();
    eventually("the change applies after the reconnect", async || {
        instance.notes.get().max_items == 12
    })
    .await;
    eventually("the source recovers", async || {
        instance.health().await.status == HealthStatus::Healthy
    })
    .await;
    eventually("the ACK of the change is in the bucket", async || {
        statuses(&store, &service)
            .await
            .iter()
            .any(|s| s.instance == "o0" && s.revision.as_deref() == Some(&revision))
    })
    .await;
    instance.app.stop().await?;
    Ok(())
}

#[tokio::test]
async fn malformed_options_are_rejected_with_the_option() {
    let error = NatsKv::connect(NatsKvOptions::new("http://x", "b", "s"))
        .await
        .unwrap_err()
        .to_string();
    assert!(error.contains("url"), "{error}");
    let error = NatsKv::connect(NatsKvOptions::new("nats://127.0.0.1:1", "bad bucket", "s"))
        .await
        .unwrap_err()
        .to_string();
    assert!(error.contains("bucket"), "{error}");
    let error = NatsKv::connect(NatsKvOptions::new("nats://127.0.0.1:1", "b", "a.b"))
        .await
        .unwrap_err()
        .to_string();
    assert!(error.contains("service"), "{error}");
}

/// Runs the `modular-fleet` binary; returns (success, stdout, stderr).
fn cli(args: &[&str]) -> (bool, String, String) {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_modular-fleet"))
        .args(args)
        .env_remove("MODULAR_FLEET_URL")
        .env_remove("MODULAR_FLEET_BUCKET")
        .output()
        .expect("run modular-fleet");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_command_line_puts_sets_gets_unsets_and_shows_the_fleet_status() -> anyhow::Result<()> {
    modular_testkit::install_crypto_provider();
    let Some(url) = modular_testkit::service(Service::Nats) else {
        return Ok(());
    };
    let (bucket_name, service) = names();
    let _ = bucket(&url, &bucket_name).await;
    let mut instance = Instance::start(
        NatsKvOptions::new(&url, &bucket_name, &service),
        "cli0",
        |b| b,
    )
    .await?;
    let base = ["--url", url.as_str(), "--bucket", bucket_name.as_str()];
    let with = |rest: &[&str]| {
        let mut args: Vec<&str> = base.to_vec();
        args.extend_from_slice(rest);
        cli(&args)
    };
    let dir = tempfile::tempdir()?;
    let file = dir.path().join("notes.yaml");
    std::fs::write(&file, "notes:\n  max_items: 40\n  greeting: from the cli\n")?;
    let file = file.display().to_string();

    // put: the whole document.
    let (ok, out, err) = with(&["put", &service, &file]);
    assert!(ok, "{out}{err}");
    assert!(out.starts_with(&format!("{service}: revision ")), "{out}");
    eventually("the instance applies the put document", async || {
        let notes = instance.notes.get();
        notes.max_items == 40 && notes.greeting == "from the cli"
    })
    .await;

    // set: one value at a dotted path, over the document.
    let (ok, out, err) = with(&["set", &service, "notes.max_items", "41"]);
    assert!(ok, "{out}{err}");
    let revision = out
        .trim()
        .rsplit_once("revision ")
        .map(|(_, r)| r.to_owned())
        .expect("the revision");
    eventually("the instance applies the set", async || {
        instance.notes.get().max_items == 41
    })
    .await;

    // get: every key of the service with its revision.
    let (ok, out, err) = with(&["get", &service]);
    assert!(ok, "{out}{err}");
    assert!(out.contains(&format!("{service} (revision ")), "{out}");
    assert!(
        out.contains(&format!(
            "{service}.notes.max_items (revision {revision}): 41"
        )),
        "{out}"
    );

    // status: the instance's ACK of the set's revision.
    let mut shown = String::new();
    eventually("the status shows the ACK", async || {
        let (ok, out, _) = with(&["status", &service]);
        shown = out.clone();
        let Ok(all) = serde_json::from_str::<Vec<InstanceStatus>>(&out) else {
            return false;
        };
        ok && all.iter().any(|s| {
            s.instance == "cli0" && s.status == "ack" && s.revision.as_deref() == Some(&revision)
        })
    })
    .await;
    assert!(shown.contains("\"cli0\""), "{shown}");

    // unset: the key goes, the document's value is back.
    let (ok, out, err) = with(&["unset", &service, "notes.max_items"]);
    assert!(ok, "{out}{err}");
    eventually("the instance applies the unset", async || {
        instance.notes.get().max_items == 40
    })
    .await;

    // A file that is not YAML is refused before anything is put.
    let bad = dir.path().join("bad.yaml");
    std::fs::write(&bad, "notes: [unclosed\n")?;
    let (ok, _, err) = with(&["put", &service, &bad.display().to_string()]);
    assert!(!ok);
    assert!(err.contains("not YAML"), "{err}");
    let (_, out, _) = with(&["get", &service]);
    assert!(!out.contains("unclosed"), "{out}");

    // An unreachable server is named without the URL's credentials.
    let down = RefusedPort::new();
    let secret = "cli-s3cret";
    let down_url = format!("nats://ops:{secret}@127.0.0.1:{}", down.port());
    let (ok, _, err) = cli(&["--url", &down_url, "get", &service]);
    assert!(!ok);
    assert!(
        err.contains(&format!("nats://127.0.0.1:{}", down.port())),
        "{err}"
    );
    assert!(!err.contains(secret), "{err}");

    instance.app.stop().await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn puts_within_the_debounce_are_applied_together_as_one_version() -> anyhow::Result<()> {
    let Some((url, bucket_name, service, store)) = fixture().await else {
        return Ok(());
    };
    // A long debounce (a local layer above the defaults): the five puts below land within it.
    // The window opens at the first change and is not extended by later ones.
    let mut instance = Instance::start(
        NatsKvOptions::new(&url, &bucket_name, &service),
        "d0",
        |b| {
            b.config_text(
                "local",
                modular_core::config::TextFormat::Yaml,
                "fleet: {debounce: 3s}\n",
            )
        },
    )
    .await?;
    let reloader = instance.app.reloader().unwrap();
    let remote_versions = || {
        reloader
            .history()
            .iter()
            .filter(|e| e.trigger.as_ref().map(|t| t.as_str()) == Some("remote"))
            .count()
    };
    assert_eq!(remote_versions(), 0);
    let mut last = 0;
    for (i, items) in [11, 12, 13, 14, 15].into_iter().enumerate() {
        let key = if i == 4 {
            format!("{service}.notes.greeting")
        } else {
            format!("{service}.notes.max_items")
        };
        let value = if i == 4 {
            "coalesced".to_owned()
        } else {
            items.to_string()
        };
        last = store.put(key, value.into()).await?;
        // The instance has seen this put (its watch updated the source) before the next one:
        // without the debounce, each would be a reload of its own.
        eventually("the watch sees the put", async || {
            instance.kv.revision() >= last
        })
        .await;
    }
    assert_eq!(remote_versions(), 0, "nothing applied within the debounce");
    eventually("the coalesced change applies", async || {
        instance.notes.get().greeting == "coalesced"
    })
    .await;
    assert_eq!(instance.notes.get().max_items, 14);
    assert_eq!(
        remote_versions(),
        1,
        "five puts, one reload: {:?}",
        reloader.history()
    );
    let history = reloader.history();
    let entry = history.last().unwrap();
    assert_eq!(
        entry.source_revisions.values().next(),
        Some(&last.to_string()),
        "the version carries the last put's revision"
    );
    eventually("one ACK of the last revision", async || {
        statuses(&store, &service).await.iter().any(|s| {
            s.instance == "d0"
                && s.status == "ack"
                && s.revision.as_deref() == Some(&last.to_string())
        })
    })
    .await;
    instance.app.stop().await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_heartbeat_change_put_in_the_bucket_takes_effect_at_once() -> anyhow::Result<()> {
    let Some((url, bucket_name, service, store)) = fixture().await else {
        return Ok(());
    };
    // The fleet's own settings come from the bucket too: a heartbeat of an hour to start.
    store
        .put(service.as_str(), "fleet: {heartbeat: 1h, ttl: 2h}\n".into())
        .await?;
    // Defaults first, so that the bucket's layer is above them.
    let kv = NatsKv::connect(NatsKvOptions::new(&url, &bucket_name, &service)).await?;
    let mut app = test_builder()
        .config_defaults(json!({ "fleet": { "instance_id": "h0" } }))
        .config_remote(kv.clone())
        .module(FleetModule::new(kv.clone()))
        .build()
        .await?;
    app.start().await?;
    let key = format!("_fleet.{service}.h0");
    let beat = async || -> Option<String> {
        let bytes = store.get(key.as_str()).await.ok()??;
        let status: InstanceStatus = serde_json::from_slice(&bytes).ok()?;
        Some(status.heartbeat.to_rfc3339())
    };
    let revision = store
        .put(format!("{service}.fleet.heartbeat"), "200ms".into())
        .await?
        .to_string();
    eventually("the ACK of the heartbeat change", async || {
        statuses(&store, &service)
            .await
            .iter()
            .any(|s| s.instance == "h0" && s.revision.as_deref() == Some(&revision))
    })
    .await;
    // Beats every 200 ms from now on (under the old setting the next one would be in an
    // hour): five fresh ones within the 20 s bound.
    let mut seen = std::collections::BTreeSet::new();
    eventually("five heartbeats at the new period", async || {
        if let Some(at) = beat().await {
            seen.insert(at);
        }
        seen.len() >= 5
    })
    .await;
    app.stop().await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopped_instance_drops_out_of_the_fleet_after_the_ttl_while_live_ones_beat()
-> anyhow::Result<()> {
    let Some((url, bucket_name, service, store)) = fixture().await else {
        return Ok(());
    };
    let started = tokio::time::Instant::now();
    let live = Instance::start(
        NatsKvOptions::new(&url, &bucket_name, &service),
        "t0",
        |b| b,
    )
    .await?;
    let mut gone = Instance::start(
        NatsKvOptions::new(&url, &bucket_name, &service),
        "t1",
        |b| b,
    )
    .await?;
    let ttl = Duration::from_secs(1);
    // Every listing, with heartbeats rewriting the keys meanwhile, names each instance once.
    let listed = async || -> Vec<String> {
        let all: Vec<String> = ops::fleet_statuses(&store, &service, ttl)
            .await
            .unwrap()
            .into_iter()
            .map(|s| s.instance)
            .collect();
        let mut unique = all.clone();
        unique.dedup();
        assert_eq!(unique, all, "an instance listed twice");
        all
    };
    eventually("both listed", async || listed().await == ["t0", "t1"]).await;
    gone.app.stop().await?;
    // t1 no longer beats: older than the TTL, it is left out; t0 (heartbeat 200 ms) stays,
    // also well past a TTL after its start.
    eventually("only the live instance listed, past the TTL", async || {
        listed().await == ["t0"] && started.elapsed() > ttl * 2
    })
    .await;
    assert_eq!(listed().await, ["t0"]);
    let mut live = live;
    live.app.stop().await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_instance_started_from_the_cache_catches_up_once_the_store_answers() -> anyhow::Result<()>
{
    let Some((url, bucket_name, service, store)) = fixture().await else {
        return Ok(());
    };
    store
        .put(format!("{service}.notes.max_items"), "21".into())
        .await?;
    let dir = tempfile::tempdir()?;
    let cache = dir.path().join("fleet-cache.json");
    let upstream: std::net::SocketAddr = url
        .trim_start_matches("nats://")
        .parse()
        .expect("a nats://ip:port URL");
    let proxy = FaultProxy::start(upstream).await?;
    let options = || {
        NatsKvOptions::new(format!("nats://{}", proxy.addr()), &bucket_name, &service)
            .cache_path(&cache)
            .connect_timeout(Duration::from_secs(2))
    };
    // A first run caches revision 21's value.
    let mut first = Instance::start(options(), "r0", |b| b).await?;
    assert_eq!(first.notes.get().max_items, 21);
    first.app.stop().await?;

    // The store is cut at start-up: the cache serves, degraded; a change is put meanwhile.
    proxy.cut();
    let mut instance = Instance::start(options(), "r0", |b| b).await?;
    assert_eq!(instance.notes.get().max_items, 21);
    let report = instance.health().await;
    assert_eq!(report.status, HealthStatus::Degraded, "{report:?}");
    assert_eq!(report.details["from_cache"], json!(true), "{report:?}");
    let revision = store
        .put(format!("{service}.notes.max_items"), "22".into())
        .await?
        .to_string();
    proxy.restore();
    eventually("the change applies once the store answers", async || {
        instance.notes.get().max_items == 22
    })
    .await;
    eventually("the source turns healthy", async || {
        let report = instance.health().await;
        report.status == HealthStatus::Healthy && report.details["from_cache"] == json!(false)
    })
    .await;
    eventually("the ACK of the change", async || {
        statuses(&store, &service)
            .await
            .iter()
            .any(|s| s.instance == "r0" && s.revision.as_deref() == Some(&revision))
    })
    .await;
    instance.app.stop().await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_debounce_change_put_in_the_bucket_applies_to_the_next_puts() -> anyhow::Result<()> {
    let Some((url, bucket_name, service, store)) = fixture().await else {
        return Ok(());
    };
    // Defaults first (debounce 0s), so that the bucket's layer is above them.
    let kv = NatsKv::connect(NatsKvOptions::new(&url, &bucket_name, &service)).await?;
    let notes = Notes::default();
    let handle = Arc::clone(&notes.handle);
    let mut app = test_builder()
        .config_defaults(json!({ "fleet": { "instance_id": "e0", "debounce": "0s" } }))
        .config_remote(kv.clone())
        .module(notes)
        .module(FleetModule::new(kv.clone()))
        .build()
        .await?;
    app.start().await?;
    let notes = handle.lock().unwrap().clone().unwrap();
    let reloader = app.reloader().unwrap();
    let remote_versions = || {
        reloader
            .history()
            .iter()
            .filter(|e| e.trigger.as_ref().map(|t| t.as_str()) == Some("remote"))
            .count()
    };
    let puts = async |values: &[u32]| -> anyhow::Result<u64> {
        let mut last = 0;
        for value in values {
            last = store
                .put(
                    format!("{service}.notes.max_items"),
                    value.to_string().into(),
                )
                .await?;
            eventually("the watch sees the put", async || kv.revision() >= last).await;
        }
        Ok(last)
    };
    for value in [11, 12, 13] {
        store
            .put(
                format!("{service}.notes.max_items"),
                value.to_string().into(),
            )
            .await?;
        eventually("the put applies", async || notes.get().max_items == value).await;
    }
    assert_eq!(remote_versions(), 3);
    // The debounce itself, put in the bucket: 3 s from the next change on.
    store
        .put(format!("{service}.fleet.debounce"), "3s".into())
        .await?;
    eventually("the debounce change applies", async || {
        remote_versions() == 4
    })
    .await;
    // Three puts, each seen by the watch before the next, within the new window.
    let last = puts(&[14, 15, 16]).await?;
    assert_eq!(
        remote_versions(),
        4,
        "nothing applied within the new debounce"
    );
    eventually("the three puts apply as one version", async || {
        notes.get().max_items == 16
    })
    .await;
    assert_eq!(remote_versions(), 5, "{:?}", reloader.history());
    assert_eq!(
        reloader
            .history()
            .last()
            .unwrap()
            .source_revisions
            .values()
            .next(),
        Some(&last.to_string())
    );
    app.stop().await?;
    Ok(())
}
