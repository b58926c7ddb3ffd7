//! Bringing the running pools in line with a configuration: at start, on every reload, and at
//! shutdown.
//!
//! Every change follows the two-phase contract: [`Pools::prepare`] opens (and migrates) new
//! pools aside while the old ones keep serving, and returns them as [`PreparedPools`];
//! nothing is published. [`PreparedPools::commit`] swaps the whole new set in with one atomic
//! store and closes what it replaced; dropping the prepared set instead (another module failed,
//! or the orchestrator dropped the hook at its deadline) closes the pools it opened, and the
//! running pools never changed. Replaced and removed pools are closed in owned tasks:
//! `Pool::close` stops new acquires at once and completes when the queries in flight have
//! returned their connections.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, PoisonError};

use futures::future::join_all;
use modular_core::{DynamicConfig, ModuleContext};
use serde_json::json;

use crate::config::{ConnectionConfig, DatabaseConfig};
use crate::error::DatabaseError;
use crate::events;
use crate::migrate;
use crate::pool::{self, DbPool};
use crate::service::{Connection, DatabaseService, State};

/// The running pools of one application, and the context to emit events and own tasks.
#[derive(Clone, Debug)]
pub(crate) struct Pools {
    pub(crate) ctx: ModuleContext,
    pub(crate) service: Arc<DatabaseService>,
    /// Pools a reload replaced or removed that still wait for connections in use, with why
    /// they were closed; the shutdown closes them with the running ones.
    draining: Arc<Mutex<Vec<Draining>>>,
}

/// A pool closed by a reload, waiting for its connections in use, and why it was closed.
type Draining = (Arc<Connection>, &'static str);

/// Why a pool is being built.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Reason {
    Start,
    Added,
    Replaced,
}

impl Reason {
    fn as_str(self) -> &'static str {
        match self {
            Self::Start => "start",
            Self::Added => "added",
            Self::Replaced => "replaced",
        }
    }
}

/// A pool built aside, not yet serving.
struct Built {
    name: String,
    config: ConnectionConfig,
    pool: DbPool,
    reason: Reason,
}

impl Pools {
    pub(crate) fn new(ctx: ModuleContext, service: Arc<DatabaseService>) -> Self {
        Self {
            ctx,
            service,
            draining: Arc::default(),
        }
    }

    fn emit(&self, ty: &'static str, data: serde_json::Value) {
        self.ctx.emit(events::noun_verb(ty), data);
    }

    /// Opens every configured connection and runs its migrations; on any failure closes what
    /// was opened and returns every error.
    pub(crate) async fn start(&self, config: &DatabaseConfig) -> Result<(), DatabaseError> {
        let wanted: Vec<(String, ConnectionConfig, Reason)> = config
            .connections
            .iter()
            .map(|(name, c)| (name.clone(), c.clone(), Reason::Start))
            .collect();
        let built = self.build(wanted).await?;
        let mut failures = Vec::new();
        for b in &built {
            if let Some(dir) = &b.config.migrations
                && let Err(error) = self.migrate(&b.name, &b.pool, dir).await
            {
                failures.push(error);
            }
        }
        if let Some(error) = DatabaseError::combine(failures) {
            self.discard(built);
            return Err(error);
        }
        let connections = built
            .into_iter()
            .map(|b| {
                self.opened(&b, 1);
                let connection = Connection::new(&b.name, b.pool, b.config, 1);
                (b.name, Arc::new(connection))
            })
            .collect();
        self.service.install(State {
            default: config.default.clone(),
            connections,
        });
        self.service.publish_live(self.ctx.services());
        Ok(())
    }

    /// Prepares the pools `config` asks for: opens added connections and rebuilds changed
    /// ones aside, and runs migrations on them. Publishes nothing; on failure closes what it
    /// opened, and nothing running has changed.
    pub(crate) async fn prepare(
        &self,
        config: &DatabaseConfig,
    ) -> Result<PreparedPools, DatabaseError> {
        let current = self.service.snapshot();

        // Plan: which connections need a new pool.
        let mut wanted = Vec::new();
        let mut refused = Vec::new();
        for (name, new) in &config.connections {
            match current.connections.get(name) {
                None => wanted.push((name.clone(), new.clone(), Reason::Added)),
                Some(old) if old.config.pool_differs(new) => match new.driver() {
                    Ok(driver) if driver != old.pool.driver() => {
                        refused.push(DatabaseError::DriverChanged {
                            connection: name.clone(),
                            from: old.pool.driver(),
                            to: driver,
                        })
                    }
                    _ => wanted.push((name.clone(), new.clone(), Reason::Replaced)),
                },
                Some(_) => {}
            }
        }
        if let Some(error) = DatabaseError::combine(refused) {
            return Err(error);
        }

        // Build aside.
        let built = self.build(wanted).await?;

        // Migrations: for every pool built by this reload (an added connection, or a replaced
        // one whose `url` may point at another database), and where the migrations path
        // changed. Applied migrations are recorded, so an up-to-date database is a no-op.
        let mut failures = Vec::new();
        for (name, new) in &config.connections {
            let Some(dir) = &new.migrations else { continue };
            let old = current.connections.get(name);
            let rebuilt = built.iter().any(|b| &b.name == name);
            if !rebuilt && old.is_some_and(|o| o.config.migrations.as_ref() == Some(dir)) {
                continue;
            }
            let pool = match built.iter().find(|b| &b.name == name) {
                Some(b) => &b.pool,
                None => match old {
                    Some(o) => &o.pool,
                    None => continue,
                },
            };
            if let Err(error) = self.migrate(name, pool, dir).await {
                failures.push(error);
            }
        }
        if let Some(error) = DatabaseError::combine(failures) {
            self.discard(built);
            return Err(error);
        }

        Ok(PreparedPools {
            pools: self.clone(),
            config: config.clone(),
            current,
            built,
        })
    }

    /// Closes every running pool, and every pool a reload replaced or removed that is still
    /// draining, waiting for their in-flight queries (the caller bounds the wait).
    pub(crate) async fn close_all(&self) {
        let state = self.service.snapshot();
        let draining =
            std::mem::take(&mut *self.draining.lock().unwrap_or_else(PoisonError::into_inner));
        let running = state
            .connections
            .values()
            .map(|c| (Arc::clone(c), "shutdown"));
        join_all(running.chain(draining).map(|(c, reason)| async move {
            c.pool.close().await;
            self.closed(&c, reason);
        }))
        .await;
    }

    /// Takes `connection` off the draining list; `false` when the shutdown took it first
    /// (and so reports its close).
    fn drained(&self, connection: &Arc<Connection>) -> bool {
        let mut draining = self.draining.lock().unwrap_or_else(PoisonError::into_inner);
        let before = draining.len();
        draining.retain(|(c, _)| !Arc::ptr_eq(c, connection));
        draining.len() != before
    }

    /// Opens every wanted pool concurrently. All or nothing: if any fails, the others are
    /// closed and every failure is returned.
    async fn build(
        &self,
        wanted: Vec<(String, ConnectionConfig, Reason)>,
    ) -> Result<Vec<Built>, DatabaseError> {
        let results = join_all(wanted.into_iter().map(|(name, config, reason)| async move {
            let result = pool::connect(&name, &config).await;
            (name, config, reason, result)
        }))
        .await;
        let mut built = Vec::new();
        let mut failures = Vec::new();
        for (name, config, reason, result) in results {
            match result {
                Ok(pool) => built.push(Built {
                    name,
                    config,
                    pool,
                    reason,
                }),
                Err(error) => {
                    tracing::warn!(module = "database", connection = %name, %error, "connection failed");
                    self.emit(
                        events::CONNECTION_FAILED,
                        json!({
                            "connection": name,
                            "driver": config.driver().ok(),
                            "error": error.to_string(),
                            "reason": reason.as_str(),
                        }),
                    );
                    failures.push(error);
                }
            }
        }
        match DatabaseError::combine(failures) {
            None => Ok(built),
            Some(error) => {
                self.discard(built);
                Err(error)
            }
        }
    }

    async fn migrate(
        &self,
        name: &str,
        pool: &DbPool,
        dir: &std::path::Path,
    ) -> Result<(), DatabaseError> {
        let applied = migrate::run(name, pool, dir).await?;
        for m in &applied {
            tracing::info!(module = "database", connection = %name, version = m.version, description = %m.description, "migration applied");
            self.emit(
                events::MIGRATION_APPLIED,
                json!({
                    "connection": name,
                    "version": m.version,
                    "description": m.description,
                    "duration_ms": m.duration.as_secs_f64() * 1000.0,
                }),
            );
        }
        Ok(())
    }

    fn opened(&self, built: &Built, generation: u64) {
        tracing::info!(
            module = "database",
            connection = %built.name,
            driver = %built.pool.driver(),
            generation,
            max_connections = built.config.max_connections,
            "connection opened"
        );
        self.emit(
            events::CONNECTION_OPENED,
            json!({
                "connection": built.name,
                "driver": built.pool.driver(),
                "generation": generation,
                "max_connections": built.config.max_connections,
                "min_connections": built.config.min_connections,
                "reason": built.reason.as_str(),
            }),
        );
    }

    fn closed(&self, connection: &Connection, reason: &str) {
        tracing::debug!(module = "database", connection = %connection.name, reason, "pool closed");
        self.emit(
            events::CONNECTION_CLOSED,
            json!({
                "connection": connection.name,
                "driver": connection.pool.driver(),
                "generation": connection.generation,
                "reason": reason,
            }),
        );
    }

    /// Closes pools that never served (a failed start or reload) in the background.
    fn discard(&self, built: Vec<Built>) {
        for b in built {
            self.ctx.spawn(async move { b.pool.close().await });
        }
    }

    /// Closes a pool that was serving, in an owned task: new acquires fail at once, queries in
    /// flight finish on their connections, and the task ends when the last one is returned.
    /// Until then the pool is on the draining list, so the module's `stop` waits for it too
    /// (within the shutdown deadline) rather than leaving it open when the task is cancelled.
    fn close_later(&self, connection: Arc<Connection>, reason: &'static str) {
        // Refuse new acquires now; the task only waits for the connections still in use.
        drop(connection.pool.close());
        self.draining
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push((Arc::clone(&connection), reason));
        let this = self.clone();
        let cancel = self.ctx.cancellation().clone();
        self.ctx.spawn(async move {
            tokio::select! {
                () = connection.pool.close() => {
                    if this.drained(&connection) {
                        this.closed(&connection, reason);
                    }
                }
                // Only after every module's `stop`, which closed what was still draining.
                () = cancel.cancelled() => {}
            }
        });
    }
}

/// Pools built aside by [`Pools::prepare`], not yet serving. [`PreparedPools::commit`]
/// publishes them; dropping the value closes them.
pub(crate) struct PreparedPools {
    pools: Pools,
    config: DatabaseConfig,
    current: Arc<State>,
    built: Vec<Built>,
}

impl std::fmt::Debug for PreparedPools {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PreparedPools")
            .field(
                "built",
                &self.built.iter().map(|b| &b.name).collect::<Vec<_>>(),
            )
            .finish()
    }
}

impl PreparedPools {
    /// Swaps the whole new set in with one store, announces it, and closes what was replaced
    /// or removed once the queries in flight on it finish. Cannot fail; does not await.
    pub(crate) fn commit(mut self) {
        let current = Arc::clone(&self.current);
        let config = &self.config;
        let pools = &self.pools;
        let built = std::mem::take(&mut self.built);
        // Swap: one atomic store of the whole new set. Nothing below awaits.
        let mut built: BTreeMap<String, Built> =
            built.into_iter().map(|b| (b.name.clone(), b)).collect();
        let mut next = BTreeMap::new();
        let mut swapped = Vec::new();
        for (name, new) in &config.connections {
            let old = current.connections.get(name);
            let connection = match (built.remove(name), old) {
                (Some(b), old) => {
                    let generation = old.map_or(1, |o| o.generation + 1);
                    pools.opened(&b, generation);
                    if let Some(old) = old {
                        swapped.push((Arc::clone(old), generation));
                    }
                    Arc::new(Connection::new(name, b.pool, b.config, generation))
                }
                (None, Some(old)) if old.config == *new => Arc::clone(old),
                // Only health or migration settings changed: same pool, new settings.
                (None, Some(old)) => {
                    let same_pool =
                        Connection::new(name, old.pool.clone(), new.clone(), old.generation);
                    // The pool's last health check still holds.
                    same_pool.usable.store(
                        old.usable.load(std::sync::atomic::Ordering::Relaxed),
                        std::sync::atomic::Ordering::Relaxed,
                    );
                    Arc::new(same_pool)
                }
                // Every added connection was built above.
                (None, None) => continue,
            };
            next.insert(name.clone(), connection);
        }
        pools.service.install(State {
            default: config.default.clone(),
            connections: next,
        });
        pools.service.publish_live(pools.ctx.services());
        pools
            .service
            .metrics
            .retain(|name| config.connections.contains_key(name));

        // Announce, then close the old pools once their in-flight queries finish.
        for (old, generation) in swapped {
            let new = config.connections.get(&old.name);
            let changed: Vec<String> = new
                .map(|new| {
                    old.config
                        .diff(new)
                        .into_iter()
                        .map(|c| c.field_path.into_owned())
                        .collect()
                })
                .unwrap_or_default();
            tracing::info!(
                module = "database",
                connection = %old.name,
                generation,
                changed = %changed.join(", "),
                "pool swapped"
            );
            pools.emit(
                events::POOL_SWAPPED,
                json!({
                    "connection": old.name,
                    "driver": old.pool.driver(),
                    "generation": generation,
                    "changed": changed,
                    "max_connections": new.map(|n| n.max_connections),
                    "min_connections": new.map(|n| n.min_connections),
                }),
            );
            pools.close_later(old, "replaced");
        }
        for (name, old) in &current.connections {
            if !config.connections.contains_key(name) {
                tracing::info!(module = "database", connection = %name, "connection removed");
                pools.close_later(Arc::clone(old), "removed");
            }
        }
    }
}

impl Drop for PreparedPools {
    /// An abort: every pool this reload opened is closed (new acquires fail at once); nothing
    /// it opened ever served.
    fn drop(&mut self) {
        for b in std::mem::take(&mut self.built) {
            tracing::info!(module = "database", connection = %b.name, "prepared pool dropped: the reload was aborted");
            drop(b.pool.close());
            self.pools.emit(
                events::CONNECTION_CLOSED,
                json!({
                    "connection": b.name,
                    "driver": b.pool.driver(),
                    "generation": serde_json::Value::Null,
                    "reason": "aborted",
                }),
            );
            self.pools.ctx.spawn(async move { b.pool.close().await });
        }
    }
}
