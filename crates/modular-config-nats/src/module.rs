//! [`FleetModule`]: watches the bucket, reloads on change (trigger `remote`), writes this
//! instance's ACK/NACK and heartbeat, serves `GET /admin/fleet`, reports `fleet:config_source`.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use async_nats::jetstream::kv;
use futures::StreamExt;
use modular_core::events::EventBus;
use modular_core::health::{
    HealthContext, HealthError, HealthProvider, HealthReport, HealthStatus, ProviderOptions,
};
use modular_core::reload::{ReloadOrchestrator, ReloadOutcome, ReloadStatus, ReloadTrigger};
use modular_core::{BoxError, ConfigHandle, InitContext, Module, ModuleContext};
use serde_json::{Map, json};
use tokio::time::Instant;

use crate::config::FleetConfig;
use crate::source::{NatsKv, STATUS_PREFIX};
use crate::status::{self, InstanceStatus};

/// The module's name, its section and its health registration.
pub(crate) const NAME: &str = "fleet";

/// The CloudEvent type of a NACK.
pub const NACK_EVENT: &str = "com.modular.config.fleet.nack";

/// The fleet module, named `fleet`: add it with the [`NatsKv`] source the builder layers.
#[derive(Debug)]
pub struct FleetModule {
    source: Arc<NatsKv>,
    shared: Option<Arc<Shared>>,
}

impl FleetModule {
    /// The module over `source` (the same `Arc` given to
    /// [`config_remote`](modular_core::ApplicationBuilder::config_remote)).
    pub fn new(source: Arc<NatsKv>) -> Self {
        Self {
            source,
            shared: None,
        }
    }
}

#[derive(Debug)]
pub(crate) struct Shared {
    pub(crate) source: Arc<NatsKv>,
    pub(crate) config: ConfigHandle<FleetConfig>,
    pub(crate) instance: String,
    events: EventBus,
    /// This instance's latest status (rewritten by the heartbeat).
    last: Mutex<Option<InstanceStatus>>,
}

impl Shared {
    fn last(&self) -> Option<InstanceStatus> {
        self.last
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    fn status_key(&self) -> String {
        format!(
            "{STATUS_PREFIX}.{}.{}",
            self.source.options().service,
            self.instance
        )
    }

    /// Records `status` and writes it (a failed write is retried by the next heartbeat).
    async fn publish(&self, status: InstanceStatus) {
        let nack = status.status == "nack";
        *self.last.lock().unwrap_or_else(PoisonError::into_inner) = Some(status.clone());
        if nack {
            self.events.emit(
                NACK_EVENT,
                &modular_core::events::types::module_source(NAME),
                json!({
                    "instance": status.instance,
                    "service": status.service,
                    "revision": status.revision,
                    "version": status.version,
                    "error": status.error,
                }),
            );
        }
        self.write_last().await;
    }

    /// Rewrites the latest status with a fresh heartbeat time.
    async fn write_last(&self) {
        let Some(mut status) = self.last() else {
            return;
        };
        let Some(store) = self.source.store() else {
            return;
        };
        status.heartbeat = chrono::Utc::now();
        let bytes = serde_json::to_vec(&status).unwrap_or_default();
        match store.put(self.status_key(), bytes.into()).await {
            Ok(_) => {}
            Err(error) => {
                let error = self.source.client_error("write status", &error).to_string();
                tracing::debug!(module = NAME, %error, "fleet status not written");
                self.source.lost(error);
            }
        }
    }
}

#[async_trait::async_trait]
impl Module for FleetModule {
    fn name(&self) -> &str {
        NAME
    }

    async fn init(&mut self, ctx: &mut InitContext<'_>) -> Result<(), BoxError> {
        let config = ctx.config::<FleetConfig>()?;
        let instance = config.get().instance();
        let shared = Arc::new(Shared {
            source: Arc::clone(&self.source),
            config,
            instance,
            events: ctx.events().clone(),
            last: Mutex::new(None),
        });
        ctx.register_health_provider(
            NAME,
            Arc::new(SourceHealth {
                shared: Arc::clone(&shared),
            }) as Arc<dyn HealthProvider>,
            ProviderOptions::default()
                .with_timeout(Duration::from_millis(500))
                .with_optional(true),
        );
        crate::admin::register(ctx.services(), Arc::clone(&shared));
        self.shared = Some(shared);
        Ok(())
    }

    async fn start(&self, ctx: &ModuleContext) -> Result<(), BoxError> {
        let Some(shared) = &self.shared else {
            return Ok(());
        };
        let orchestrator = ctx.services().get::<ReloadOrchestrator>();
        if orchestrator.is_none() {
            tracing::warn!(
                module = NAME,
                "fleet config without dynamic reload: changes in the bucket are read but never applied"
            );
        }
        // The running version's ACK: which revision this instance started on.
        let store = ctx.config_store();
        shared
            .publish(InstanceStatus::new(
                &shared.instance,
                &shared.source.options().service,
                store.source_revisions().values().next().cloned(),
                store.version(),
                "ack",
                "initial",
                None,
            ))
            .await;
        let runner = Runner {
            shared: Arc::clone(shared),
            orchestrator,
            config_store: Arc::clone(store),
        };
        let cancel = ctx.cancellation().clone();
        ctx.spawn(async move {
            tokio::select! {
                () = cancel.cancelled() => {}
                () = runner.run() => {}
            }
        });
        Ok(())
    }
}

struct Runner {
    shared: Arc<Shared>,
    orchestrator: Option<Arc<ReloadOrchestrator>>,
    config_store: Arc<modular_core::config::ConfigStore>,
}

/// The first retry after a lost connection; doubled up to [`MAX_BACKOFF`].
const MIN_BACKOFF: Duration = Duration::from_millis(100);
const MAX_BACKOFF: Duration = Duration::from_secs(5);

impl Runner {
    async fn run(self) {
        let source = Arc::clone(&self.shared.source);
        let mut changes = source.subscribe();
        changes.mark_unchanged();
        let mut backoff = MIN_BACKOFF;
        // A change seen while it could not be applied (or before the loop): apply once the
        // debounce has passed.
        let mut due: Option<Instant> = source.state().from_cache.then(Instant::now);
        loop {
            // The client reconnects by itself: wait for it rather than queue requests.
            if source.has_client() && !source.client_connected() {
                source.lost("disconnected; the client is reconnecting".to_owned());
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(MAX_BACKOFF);
                continue;
            }
            // Connected: watch first, then read everything, so nothing put in between is lost.
            let store = match source.store() {
                Some(store) => store,
                None => match source.open().await {
                    Ok(store) => {
                        source.set_store(Some(store.clone()));
                        store
                    }
                    Err(error) => {
                        source.lost(error.to_string());
                        tokio::time::sleep(backoff).await;
                        backoff = (backoff * 2).min(MAX_BACKOFF);
                        continue;
                    }
                },
            };
            let mut watch = match store.watch_all().await {
                Ok(watch) => watch,
                Err(error) => {
                    source.lost(source.client_error("watch", &error).to_string());
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                    continue;
                }
            };
            match source.resync(&store).await {
                Ok(changed) => {
                    if changed {
                        due.get_or_insert_with(|| Instant::now() + self.debounce());
                    }
                }
                Err(error) => {
                    source.lost(error.to_string());
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                    continue;
                }
            }
            backoff = MIN_BACKOFF;
            // A status written while disconnected was lost: write it now.
            self.shared.write_last().await;
            let mut fleet = self.shared.config.get();
            let mut heartbeat = beats(fleet.heartbeat);
            loop {
                // `fleet.heartbeat` changed (by a remote reload, which commits while `apply`
                // runs, or by any other): the next beat is one new period from now, not at
                // the end of the old one.
                if heartbeat.period() != fleet.heartbeat {
                    heartbeat = beats(fleet.heartbeat);
                }
                tokio::select! {
                    entry = watch.next() => match entry {
                        Some(Ok(entry)) => {
                            if source.apply(&entry) {
                                due.get_or_insert_with(|| Instant::now() + self.debounce());
                            }
                        }
                        Some(Err(error)) => {
                            source.lost(source.client_error("watch", &error).to_string());
                            break;
                        }
                        None => {
                            source.lost("the watch ended".to_owned());
                            break;
                        }
                    },
                    _ = changes.changed() => {
                        due.get_or_insert_with(|| Instant::now() + self.debounce());
                    }
                    // A reload from another source (a file), seen even when it committed
                    // after `fleet` was read: the loop's top uses the new value.
                    now = self.shared.config.changed_from(&fleet) => fleet = now,
                    () = sleep_until(due) => {
                        due = None;
                        self.apply().await;
                    }
                    _ = heartbeat.tick() => {
                        if !source.client_connected() {
                            source.lost("disconnected; the client is reconnecting".to_owned());
                            break;
                        }
                        self.shared.write_last().await;
                        if !source.is_connected() {
                            // The write failed: read everything again once the server is
                            // back, in case the watch missed changes.
                            break;
                        }
                    }
                }
            }
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(MAX_BACKOFF);
        }
    }

    fn debounce(&self) -> Duration {
        self.shared.config.get().debounce
    }

    /// Runs the reload and records its ACK or NACK.
    async fn apply(&self) {
        let Some(orchestrator) = &self.orchestrator else {
            return;
        };
        let revision = self.shared.source.revision().to_string();
        let outcome = orchestrator.reload(ReloadTrigger::Remote).await;
        let status = outcome_status(&self.shared, &outcome, revision, &self.config_store);
        tracing::info!(
            module = NAME,
            instance = %self.shared.instance,
            revision = %status.revision.as_deref().unwrap_or(""),
            version = status.version,
            status = %status.status,
            "fleet config change {}",
            if status.status == "ack" { "applied" } else { "rejected" }
        );
        self.shared.publish(status).await;
    }
}

fn outcome_status(
    shared: &Shared,
    outcome: &ReloadOutcome,
    revision: String,
    store: &modular_core::config::ConfigStore,
) -> InstanceStatus {
    let ack = matches!(outcome.status, ReloadStatus::Applied | ReloadStatus::Noop);
    let error = (!ack).then(|| {
        let mut text = outcome
            .error
            .clone()
            .unwrap_or_else(|| outcome.status.as_str().to_owned());
        for error in &outcome.errors {
            text.push_str(&format!("; {}: {}", error.path, error.message));
        }
        text
    });
    InstanceStatus::new(
        &shared.instance,
        &shared.source.options().service,
        Some(if ack {
            outcome
                .source_revisions
                .values()
                .next()
                .cloned()
                .unwrap_or(revision)
        } else {
            revision
        }),
        store.version(),
        if ack { "ack" } else { "nack" },
        outcome.status.as_str(),
        error,
    )
}

async fn sleep_until(due: Option<Instant>) {
    match due {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// `fleet:config_source`: degraded while the store is unreachable (the last revision keeps
/// serving), healthy otherwise. Optional: an unreachable config store does not make the
/// service unready.
struct SourceHealth {
    shared: Arc<Shared>,
}

#[async_trait::async_trait]
impl HealthProvider for SourceHealth {
    async fn health_check(&self, _ctx: &HealthContext) -> Result<Vec<HealthReport>, HealthError> {
        let state = self.shared.source.state();
        let mut details = Map::new();
        details.insert("revision".to_owned(), json!(state.revision));
        details.insert("from_cache".to_owned(), json!(state.from_cache));
        details.insert(
            "last_contact".to_owned(),
            json!(state.last_contact.map(|t| t.to_rfc3339())),
        );
        details.insert("instance".to_owned(), json!(self.shared.instance));
        details.insert(
            "source".to_owned(),
            json!(modular_core::config::RemoteSource::name(
                self.shared.source.as_ref()
            )),
        );
        let connected = state.connected && self.shared.source.client_connected();
        details.insert("connected".to_owned(), json!(connected));
        let (status, message) = if connected {
            (
                HealthStatus::Healthy,
                format!("watching revision {}", state.revision),
            )
        } else {
            // The client may have seen the loss before the watch loop recorded why.
            let error = state
                .last_error
                .clone()
                .unwrap_or_else(|| "disconnected; the client is reconnecting".to_owned());
            details.insert("error".to_owned(), json!(error));
            (
                HealthStatus::Degraded,
                format!(
                    "the key-value store is unreachable; serving revision {}{}",
                    state.revision,
                    if state.from_cache {
                        " from the local cache"
                    } else {
                        ""
                    }
                ),
            )
        };
        Ok(vec![
            HealthReport::new(NAME, "config_source", status)
                .with_message(message)
                .with_details(details),
        ])
    }
}

/// Every instance's latest status for `service`, fresher than `ttl`.
pub async fn fleet_statuses(
    store: &kv::Store,
    service: &str,
    ttl: Duration,
) -> Result<Vec<InstanceStatus>, String> {
    let prefix = format!("{STATUS_PREFIX}.{service}.");
    let keys = crate::source::list_keys(store, |key| key.starts_with(&prefix))
        .await
        .map_err(|e| e.to_string())?;
    let mut out = Vec::new();
    let now = chrono::Utc::now();
    for key in keys {
        let Some(bytes) = store.get(key.as_str()).await.map_err(|e| e.to_string())? else {
            continue;
        };
        let Ok(status) = serde_json::from_slice::<InstanceStatus>(&bytes) else {
            continue;
        };
        if status::is_fresh(&status, now, ttl) {
            out.push(status);
        }
    }
    out.sort_by(|a, b| a.instance.cmp(&b.instance));
    Ok(out)
}

/// A ticker every `period`, first beat one period from now, late beats delayed (not bunched).
fn beats(period: Duration) -> tokio::time::Interval {
    let mut heartbeat = tokio::time::interval(period);
    heartbeat.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    heartbeat.reset();
    heartbeat
}
