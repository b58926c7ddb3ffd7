//! [`HttpServerModule`]: lifecycle, reload, certificate rotation and health.

use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use arc_swap::ArcSwapOption;
use chrono::Utc;
use modular_core::config::{ConfigChange, ConfigHandle};
use modular_core::health::{
    HealthAggregator, HealthContext, HealthError, HealthProvider, HealthReport, HealthStatus,
};
use modular_core::http::ServedRouter;
use modular_core::{
    BoxError, InitContext, Module, ModuleContext, PreparedReload, ReloadContext, Reloadable,
};
use serde_json::json;
use tokio::net::TcpStream;

use crate::config::TlsSource;
use crate::config::{DEFAULT_HEALTH_TIMEOUT, HttpServerConfig};
use crate::error::HttpServerError;
use crate::server::{Phase, Server};
use crate::tls::{self, CertResolver, CertificateInfo, LoadedCertificate, ServiceResolver};
use tokio_rustls::rustls::ServerConfig;
use tokio_rustls::rustls::server::ResolvesServerCert;

/// The module's name, and the key of its configuration section.
pub const MODULE_NAME: &str = "httpserver";

/// The module the server depends on for its router.
const ROUTER_MODULE: &str = "router";

/// The HTTP server module. See the [crate docs](crate).
#[derive(Default)]
pub struct HttpServerModule {
    shared: Option<Arc<Shared>>,
}

impl std::fmt::Debug for HttpServerModule {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpServerModule")
            .field("server", &self.shared.as_ref().map(|s| &s.server))
            .finish()
    }
}

impl HttpServerModule {
    /// A server module; everything is read from configuration at `init`.
    pub fn new() -> Self {
        Self::default()
    }
}

/// What the server module shares with its reload hook, health check and handle.
struct Shared {
    server: Arc<Server>,
    /// With certificates from config (files or self-signed).
    tls: Option<Arc<Tls>>,
    /// With `tls.source: service`: the registered resolver, bound at start.
    service_resolver: Option<Arc<ServiceResolver>>,
    /// The client CA in force; the lock also makes a reload's commit and the file watcher
    /// swap the TLS configuration one at a time.
    client_ca: Mutex<ClientCaState>,
    /// Why the client CA file's current content failed to load, until a CA is installed
    /// again: read by health without waiting for a load in progress under `client_ca`.
    client_ca_failure: ArcSwapOption<String>,
}

/// Which client CA content is in force, and which failed to load.
#[derive(Debug, Default)]
struct ClientCaState {
    /// The content fingerprint of the CA in force (`None` without `tls.client_ca`).
    in_force: Option<u64>,
    /// The content that last failed to load (not retried until it changes).
    failed: Option<u64>,
}

impl Shared {
    /// Swaps in a TLS configuration verifying clients against the CA with `fingerprint`.
    fn install_client_ca(
        &self,
        state: &mut ClientCaState,
        tls_config: Arc<ServerConfig>,
        fingerprint: Option<u64>,
        trigger: &'static str,
    ) {
        self.server.set_tls_config(tls_config);
        self.server.stats.series.tls_reload(true);
        *state = ClientCaState {
            in_force: fingerprint,
            failed: None,
        };
        self.client_ca_failure.store(None);
        tracing::info!(
            module = MODULE_NAME,
            client_ca = fingerprint.is_some(),
            trigger,
            "client certificate verification reloaded"
        );
    }

    /// The file watcher's round for `tls.client_ca`: new content in the file is loaded and
    /// swapped in; content that cannot be loaded leaves the CA in force (logged once).
    fn poll_client_ca(&self) {
        let mut state = self
            .client_ca
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let config = self.server.config.load_full();
        let now = tls::client_ca_fingerprint(&config.tls);
        if now.is_none() || now == state.in_force || now == state.failed {
            return;
        }
        let loaded = tls::load_client_ca(&config.tls).and_then(|ca| {
            let tls_config = self.server.tls_config_with(ca.as_ref())?;
            Ok((tls_config, ca.map(|ca| ca.fingerprint)))
        });
        match loaded {
            Ok((Some(tls_config), fingerprint)) => {
                self.install_client_ca(&mut state, tls_config, fingerprint, "file");
            }
            Ok((None, _)) => {}
            Err(error) => {
                self.server.stats.series.tls_reload(false);
                tracing::error!(module = MODULE_NAME, %error, "client CA file changed but cannot be loaded; verifying against the previous CA");
                state.failed = now;
                self.client_ca_failure
                    .store(Some(Arc::new(error.to_string())));
            }
        }
    }
}

/// The served certificate and the state of its rotation.
struct Tls {
    resolver: Arc<CertResolver>,
    /// The file content that last failed to load and why (not retried until it changes).
    failed: Mutex<Option<(Option<u64>, String)>>,
    /// One certificate swap at a time (reload and file watcher).
    swap: Mutex<()>,
}

impl Tls {
    /// Loads the certificate `config` names and swaps it in; on error nothing changes.
    fn rotate(
        &self,
        server: &Server,
        config: &HttpServerConfig,
        source: &'static str,
    ) -> Result<CertificateInfo, HttpServerError> {
        let loaded = tls::load(&config.tls)?;
        Ok(self.install(server, loaded, source))
    }

    /// Swaps a loaded certificate in (one store) and announces it. Cannot fail.
    fn install(
        &self,
        server: &Server,
        loaded: tls::LoadedCertificate,
        source: &'static str,
    ) -> CertificateInfo {
        let _one_at_a_time = self.swap.lock().unwrap_or_else(PoisonError::into_inner);
        let info = loaded.info.clone();
        let previous = self.resolver.replace(loaded);
        server.stats.series.tls_reload(true);
        *self.failed.lock().unwrap_or_else(PoisonError::into_inner) = None;
        tracing::info!(
            module = MODULE_NAME,
            serial = %info.serial,
            previous_serial = %previous.info.serial,
            not_after = %info.not_after,
            trigger = source,
            "tls certificate rotated"
        );
        server.emit(
            "tls.reloaded",
            json!({
                "trigger": source,
                "serial": info.serial,
                "previous_serial": previous.info.serial,
                "subject": info.subject,
                "not_after": info.not_after,
                "source": info.source,
            }),
        );
        info
    }

    /// Checks the certificate files and rotates when their content changed.
    fn poll_files(&self, server: &Server) {
        let config = server.config.load_full();
        let Some(now) = tls::fingerprint(&config.tls) else {
            return;
        };
        if self.resolver.current().fingerprint == Some(now) {
            // The files hold what is being served (for example restored after a bad
            // rotation): nothing failed any more.
            *self.failed.lock().unwrap_or_else(PoisonError::into_inner) = None;
            return;
        }
        if self
            .failed
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .as_ref()
            .is_some_and(|(fingerprint, _)| *fingerprint == Some(now))
        {
            return;
        }
        if let Err(error) = self.rotate(server, &config, "file") {
            server.stats.series.tls_reload(false);
            tracing::error!(module = MODULE_NAME, %error, "certificate files changed but cannot be loaded; serving the previous certificate");
            *self.failed.lock().unwrap_or_else(PoisonError::into_inner) =
                Some((Some(now), error.to_string()));
        }
    }
}

/// A view of the running server, registered in the service registry as
/// `Arc<HttpServerHandle>`.
#[derive(Clone)]
pub struct HttpServerHandle {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for HttpServerHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpServerHandle")
            .field("local_addr", &self.local_addr())
            .finish_non_exhaustive()
    }
}

impl HttpServerHandle {
    /// The bound address, once started.
    pub fn local_addr(&self) -> Option<SocketAddr> {
        self.shared.server.local_addr.get().copied()
    }

    /// `http` or `https`.
    pub fn scheme(&self) -> &'static str {
        self.shared.server.scheme()
    }

    /// Open connections.
    pub fn connections(&self) -> usize {
        self.shared.server.stats.connections.load(Ordering::Acquire)
    }

    /// Requests whose response headers are not out yet.
    pub fn in_flight(&self) -> usize {
        self.shared.server.stats.in_flight.load(Ordering::Acquire)
    }

    /// The served certificate, with TLS.
    pub fn certificate(&self) -> Option<CertificateInfo> {
        self.shared
            .tls
            .as_ref()
            .map(|t| t.resolver.current().info.clone())
    }
}

#[modular_core::async_trait]
impl Module for HttpServerModule {
    fn name(&self) -> &str {
        MODULE_NAME
    }

    fn dependencies(&self) -> Vec<String> {
        vec![ROUTER_MODULE.to_owned()]
    }

    async fn init(&mut self, ctx: &mut InitContext<'_>) -> Result<(), BoxError> {
        let handle: ConfigHandle<HttpServerConfig> = ctx.config()?;
        // Take traffic only once every module that answers it has started; drain before they stop.
        ctx.start_after_others();
        let config = handle.get();
        let health_options = config.health.options(DEFAULT_HEALTH_TIMEOUT);
        let service_resolver = (config.tls.enabled && config.tls.source == TlsSource::Service)
            .then(|| Arc::new(ServiceResolver::new(config.tls.service.clone())));
        let tls = if config.tls.enabled && service_resolver.is_none() {
            // A certificate that cannot be loaded fails the build, not the first handshake.
            let loaded: LoadedCertificate = tls::load_off_runtime(&config.tls).await?;
            Some(Arc::new(Tls {
                resolver: Arc::new(CertResolver::new(loaded)),
                failed: Mutex::new(None),
                swap: Mutex::new(()),
            }))
        } else {
            None
        };
        let resolver: Option<Arc<dyn ResolvesServerCert>> = match (&tls, &service_resolver) {
            (Some(tls), _) => Some(Arc::clone(&tls.resolver) as _),
            (None, Some(service)) => Some(Arc::clone(service) as _),
            (None, None) => None,
        };
        // A client CA that cannot be loaded fails the build, naming `tls.client_ca`.
        let client_ca = if config.tls.enabled {
            tls::load_client_ca_off_runtime(&config.tls).await?
        } else {
            None
        };
        let server = Arc::new(Server::new(
            ctx.context(),
            config,
            resolver,
            client_ca.as_ref(),
        )?);
        let shared = Arc::new(Shared {
            server,
            tls,
            service_resolver,
            client_ca: Mutex::new(ClientCaState {
                in_force: client_ca.map(|ca| ca.fingerprint),
                failed: None,
            }),
            client_ca_failure: ArcSwapOption::empty(),
        });
        ctx.services().register(Arc::new(HttpServerHandle {
            shared: Arc::clone(&shared),
        }));
        ctx.register_reloadable(Arc::new(ServerReload {
            shared: Arc::clone(&shared),
            health: ctx.services().get::<HealthAggregator>(),
        }));
        ctx.register_health_provider(
            MODULE_NAME,
            Arc::new(ServerHealth(Arc::clone(&shared))),
            health_options,
        );
        self.shared = Some(shared);
        Ok(())
    }

    async fn start(&self, ctx: &ModuleContext) -> Result<(), BoxError> {
        let shared = self
            .shared
            .as_ref()
            .ok_or("httpserver module started before init")?;
        let router = ctx
            .services()
            .get::<ServedRouter>()
            .ok_or(HttpServerError::NoRouter)?;
        if let Some(service) = &shared.service_resolver {
            service.bind(ctx.services())?;
        }
        let local = shared.server.start(router).await?;
        tracing::info!(module = MODULE_NAME, address = %local, scheme = shared.server.scheme(), "listening");
        shared.server.started_event(local);
        if shared.server.tls.is_some() {
            watch_tls_files(Arc::clone(shared));
        }
        Ok(())
    }

    async fn stop(&self, ctx: &ModuleContext) -> Result<(), BoxError> {
        let Some(shared) = self.shared.as_ref() else {
            return Ok(());
        };
        // Readiness first, so load balancers stop sending before the listener closes.
        if let Some(health) = ctx.services().get::<HealthAggregator>() {
            health.set_shutting_down(true);
        }
        let address = shared.server.local_addr.get().map(ToString::to_string);
        let served = shared.server.stats.requests.load(Ordering::Acquire);
        let forced = shared.server.shutdown().await;
        shared.server.emit(
            "server.stopped",
            json!({
                "address": address,
                "requests_served": served,
                "forced_connections": forced,
            }),
        );
        tracing::info!(module = MODULE_NAME, forced_connections = forced, "stopped");
        Ok(())
    }
}

/// Re-reads the certificate files and the client CA every `tls.watch_interval`, and swaps in
/// new content.
fn watch_tls_files(shared: Arc<Shared>) {
    let cancel = shared.server.ctx.cancellation().clone();
    let task_shared = Arc::clone(&shared);
    shared.server.ctx.spawn(async move {
        loop {
            let interval = task_shared.server.config.load().tls.watch_interval;
            // Off (`0s`): look at the setting again in a second, since a reload may turn it on.
            let wait = if interval.is_zero() {
                Duration::from_secs(1)
            } else {
                interval
            };
            tokio::select! {
                () = cancel.cancelled() => return,
                () = tokio::time::sleep(wait) => {}
            }
            if !interval.is_zero() {
                // File reads (and a rotation's key parsing) off the async workers.
                let shared = Arc::clone(&task_shared);
                let _ = tokio::task::spawn_blocking(move || {
                    if let Some(tls) = &shared.tls {
                        tls.poll_files(&shared.server);
                    }
                    shared.poll_client_ca();
                })
                .await;
            }
        }
    });
}

/// The reload hook: prepares the certificate aside when its files or names changed (loaded and
/// checked, not served); the commit swaps the limits in force (new connections pick them up,
/// and an accept loop waiting at the old connection limit re-checks it), the certificate and,
/// when `health.*` changed, the health registration's options.
struct ServerReload {
    shared: Arc<Shared>,
    /// The aggregator the health provider is registered with, if any.
    health: Option<Arc<HealthAggregator>>,
}

const CERTIFICATE_FIELDS: [&str; 3] = ["tls.cert_file", "tls.key_file", "tls.domains"];

#[modular_core::async_trait]
impl Reloadable for ServerReload {
    async fn prepare(
        &self,
        ctx: &ReloadContext,
        changes: &[ConfigChange],
    ) -> Result<PreparedReload, BoxError> {
        let config = ctx
            .new_config::<HttpServerConfig>()
            .ok_or(HttpServerError::MissingSection)?;
        let certificate_changed = changes.iter().any(|change| {
            CERTIFICATE_FIELDS
                .iter()
                .any(|field| change.is_under(field))
        });
        // Loaded and checked aside: on error the current certificate and limits stay as they
        // were, and so they do when another module fails to prepare.
        let certificate = match &self.shared.tls {
            Some(_) if certificate_changed => Some(
                tls::load_off_runtime(&config.tls)
                    .await
                    .inspect_err(|_| self.shared.server.stats.series.tls_reload(false))?,
            ),
            _ => None,
        };
        let client_tls = self
            .prepare_client_ca(&config, changes)
            .await
            .inspect_err(|_| self.shared.server.stats.series.tls_reload(false))?;
        let health = self
            .health
            .clone()
            .filter(|_| changes.iter().any(|c| c.is_under("health")))
            .map(|aggregator| (aggregator, config.health.options(DEFAULT_HEALTH_TIMEOUT)));
        let shared = Arc::clone(&self.shared);
        Ok(PreparedReload::new(move || {
            if let (Some(tls), Some(loaded)) = (&shared.tls, certificate) {
                tls.install(&shared.server, loaded, "config");
            }
            shared.server.config.store(config);
            // After the config: a watcher round that read the previous config and loaded its
            // CA is overridden here, and one that runs later reads the new config.
            if let Some((tls_config, fingerprint)) = client_tls {
                let mut state = shared
                    .client_ca
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner);
                shared.install_client_ca(&mut state, tls_config, fingerprint, "config");
            }
            // A raised `max_connections` must reach an accept loop waiting at the old limit.
            shared.server.limits_changed();
            if let Some((aggregator, options)) = health {
                aggregator.set_provider_options(MODULE_NAME, options);
            }
        }))
    }
}

impl ServerReload {
    /// When `tls.client_ca` or `tls.client_auth` changed: the CA loaded and a TLS
    /// configuration built aside, with the CA's fingerprint, for the commit
    /// to swap in. A CA that cannot be loaded fails the prepare (naming `tls.client_ca`); the
    /// verifier in force stays.
    async fn prepare_client_ca(
        &self,
        config: &HttpServerConfig,
        changes: &[ConfigChange],
    ) -> Result<Option<ClientTls>, HttpServerError> {
        if self.shared.server.tls.is_none() {
            return Ok(None);
        }
        // New content in the same file is the watcher's to pick up (it skips a replacement it
        // already found bad); a reload of other fields never reads the file.
        let changed = changes
            .iter()
            .any(|c| c.is_under("tls.client_ca") || c.is_under("tls.client_auth"));
        if !changed {
            return Ok(None);
        }
        let client_ca = tls::load_client_ca_off_runtime(&config.tls).await?;
        let Some(tls_config) = self.shared.server.tls_config_with(client_ca.as_ref())? else {
            return Ok(None);
        };
        Ok(Some((tls_config, client_ca.map(|ca| ca.fingerprint))))
    }
}

/// A TLS configuration built aside, with the client CA fingerprint it verifies against.
type ClientTls = (Arc<ServerConfig>, Option<u64>);

/// The server's health.
///
/// - `httpserver:listener`: `unhealthy` before start and once the listener is closed;
///   otherwise a real TCP connection to the server's own address must be accepted within the
///   check's deadline (`unhealthy` if refused or not accepted). `degraded` while draining and
///   while at `max_connections` (new clients wait in the backlog). Details: address, scheme,
///   phase, connections, max_connections, in_flight, accepted_total, requests_total.
/// - `httpserver:certificate` (with TLS): `unhealthy` when expired or not yet valid,
///   `degraded` within `tls.expiry_warning` (14 days) of expiry or when changed certificate
///   files could not be loaded (the previous certificate keeps serving), else `healthy`.
///   Details: serial, subject, not_before, not_after, expires_in_seconds, source, path.
struct ServerHealth(Arc<Shared>);

#[modular_core::async_trait]
impl HealthProvider for ServerHealth {
    async fn health_check(&self, ctx: &HealthContext) -> Result<Vec<HealthReport>, HealthError> {
        let mut reports = vec![self.listener(ctx).await];
        if let Some(tls) = &self.0.tls {
            reports.push(certificate_report(&self.0.server, tls));
        }
        if self.0.server.config.load().tls.client_ca.is_some() {
            reports.push(client_ca_report(&self.0));
        }
        Ok(reports)
    }
}

impl ServerHealth {
    async fn listener(&self, ctx: &HealthContext) -> HealthReport {
        let server = &self.0.server;
        let stats = &server.stats;
        let config = server.config.load();
        let phase = server.phase();
        let connections = stats.connections.load(Ordering::Acquire);
        let report = |status: HealthStatus, message: String| {
            HealthReport::new(MODULE_NAME, "listener", status)
                .with_message(message)
                .with_detail("address", server.local_addr.get().map(ToString::to_string))
                .with_detail("scheme", server.scheme())
                .with_detail("phase", format!("{phase:?}").to_lowercase())
                .with_detail("connections", connections)
                .with_detail("max_connections", config.max_connections)
                .with_detail("in_flight", stats.in_flight.load(Ordering::Acquire))
                .with_detail("accepted_total", stats.accepted.load(Ordering::Acquire))
                .with_detail("requests_total", stats.requests.load(Ordering::Acquire))
        };
        match phase {
            Phase::Idle => {
                return report(
                    HealthStatus::Unhealthy,
                    "not listening: the module has not started".to_owned(),
                );
            }
            Phase::Closing | Phase::Stopped => {
                return report(
                    HealthStatus::Unhealthy,
                    "not accepting: the server is shutting down".to_owned(),
                );
            }
            Phase::Serving | Phase::Draining => {}
        }
        if connections >= config.max_connections {
            return report(
                HealthStatus::Degraded,
                format!("at the connection limit ({connections}); new clients wait in the backlog"),
            );
        }
        let Some(target) = server.self_address() else {
            return report(HealthStatus::Unhealthy, "not listening".to_owned());
        };
        // Leave a little of the deadline for the aggregator to collect the answer.
        let budget = ctx
            .remaining()
            .saturating_sub(Duration::from_millis(10))
            .max(Duration::from_millis(1));
        match accepted_within(server, target, budget).await {
            Err(message) => report(HealthStatus::Unhealthy, message),
            Ok(()) if phase == Phase::Draining => report(
                HealthStatus::Degraded,
                format!("draining: still accepting on {target} while readiness fails"),
            ),
            Ok(()) => report(HealthStatus::Healthy, format!("accepting on {target}")),
        }
    }
}

/// Connects to the server's own address and waits until its accept loop has taken the
/// connection: a listener that is bound but no longer accepting fails this.
async fn accepted_within(
    server: &Server,
    target: SocketAddr,
    budget: Duration,
) -> Result<(), String> {
    let deadline = tokio::time::Instant::now() + budget;
    let before = server.stats.accepted.load(Ordering::Acquire);
    let accepted = server.accepted.notified();
    tokio::pin!(accepted);
    accepted.as_mut().enable();
    let stream = match tokio::time::timeout_at(deadline, TcpStream::connect(target)).await {
        Ok(Ok(stream)) => stream,
        Ok(Err(error)) => return Err(format!("self-connection to {target} failed: {error}")),
        Err(_) => {
            return Err(format!(
                "self-connection to {target} timed out after {budget:?}"
            ));
        }
    };
    loop {
        if server.stats.accepted.load(Ordering::Acquire) > before {
            drop(stream);
            return Ok(());
        }
        tokio::select! {
            () = accepted.as_mut() => {
                accepted.set(server.accepted.notified());
                accepted.as_mut().enable();
            }
            () = tokio::time::sleep_until(deadline) => {
                return Err(format!("connection to {target} was not accepted within {budget:?}"));
            }
        }
    }
}

/// `client_ca`: degraded while the file holds content that cannot be loaded (a broken
/// Secret update), with clients verified against the previous CA meanwhile.
fn client_ca_report(shared: &Shared) -> HealthReport {
    let (status, message) = match shared.client_ca_failure.load().as_deref() {
        Some(error) => (
            HealthStatus::Degraded,
            format!(
                "client CA file changed but cannot be loaded ({error}); verifying against the previous CA"
            ),
        ),
        None => (
            HealthStatus::Healthy,
            "verifying client certificates against the CA file in force".to_owned(),
        ),
    };
    HealthReport::new(MODULE_NAME, "client_ca", status).with_message(message)
}

fn certificate_report(server: &Server, tls: &Tls) -> HealthReport {
    let current = tls.resolver.current();
    let info = &current.info;
    let warning = server.config.load().tls.expiry_warning;
    let now = Utc::now();
    let left = info.not_after - now;
    let (mut status, mut message) = if now < info.not_before {
        (
            HealthStatus::Unhealthy,
            format!("not valid before {}", info.not_before),
        )
    } else if left <= chrono::TimeDelta::zero() {
        (
            HealthStatus::Unhealthy,
            format!("expired at {}", info.not_after),
        )
    } else if left.to_std().is_ok_and(|left| left <= warning) {
        (
            HealthStatus::Degraded,
            format!("expires in {} days, at {}", left.num_days(), info.not_after),
        )
    } else {
        (
            HealthStatus::Healthy,
            format!("valid until {}", info.not_after),
        )
    };
    if let Some((_, error)) = tls
        .failed
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .as_ref()
        && status == HealthStatus::Healthy
    {
        status = HealthStatus::Degraded;
        message = format!(
            "certificate files changed but cannot be loaded ({error}); serving the previous certificate"
        );
    }
    HealthReport::new(MODULE_NAME, "certificate", status)
        .with_message(message)
        .with_detail("serial", info.serial.clone())
        .with_detail("subject", info.subject.clone())
        .with_detail("not_before", info.not_before.to_rfc3339())
        .with_detail("not_after", info.not_after.to_rfc3339())
        .with_detail("expires_in_seconds", left.num_seconds())
        .with_detail("source", info.source)
        .with_detail("path", info.path.as_ref().map(|p| p.display().to_string()))
}
