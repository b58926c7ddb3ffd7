//! A small reload fixture: recording modules over a `ConfigStore` driven by runtime overrides.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use modular_core::config::{ConfigSources, ConfigStore};
use modular_core::events::EventBus;
use modular_core::reload::{ReloadOptions, ReloadOrchestrator, ReloadTarget};
use modular_core::{
    BoxError, ConfigChange, DynamicConfig, FieldError, PreparedReload, ReloadContext, Reloadable,
    Secret,
};
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// A module section: `level` and `label` are dynamic, `port` is static, `token` sensitive.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, DynamicConfig)]
#[serde(default, deny_unknown_fields)]
#[config(validate = "ModuleConfig::check")]
pub struct ModuleConfig {
    #[config(dynamic)]
    pub level: u32,
    #[config(dynamic)]
    pub label: String,
    pub port: u16,
    #[config(dynamic, sensitive)]
    pub token: String,
    #[config(dynamic)]
    pub password: Secret<String>,
}

impl Default for ModuleConfig {
    fn default() -> Self {
        Self {
            level: 1,
            label: "initial".to_owned(),
            port: 8080,
            token: "token-0".to_owned(),
            password: Secret::new("hunter2".to_owned()),
        }
    }
}

impl ModuleConfig {
    fn check(&self) -> Result<(), Vec<FieldError>> {
        if self.level > 100 {
            return Err(vec![FieldError::new(
                "level",
                format!("must be <= 100, got {}", self.level),
            )]);
        }
        Ok(())
    }
}

/// How a recording module behaves on reload.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Behaviour {
    Succeed,
    Fail,
    Panic,
    /// Never finishes and ignores cancellation.
    Hang,
    /// `can_reload()` is false.
    Busy,
    /// Applies in place while preparing (the exception to two-phase), undone on abort.
    InPlace,
}

/// One call to a reload hook.
#[derive(Clone, Debug)]
pub struct Call {
    pub module: String,
    pub rollback: bool,
    pub changes: Vec<ConfigChange>,
    pub level: Option<u32>,
}

/// Shared record of every hook call, plus an overlap detector.
#[derive(Clone, Debug, Default)]
pub struct Journal {
    pub calls: Arc<Mutex<Vec<Call>>>,
    /// `(module, "commit" | "abort")`, in order.
    pub phases: Arc<Mutex<Vec<(String, &'static str)>>>,
    pub running: Arc<AtomicUsize>,
    pub max_running: Arc<AtomicUsize>,
}

impl Journal {
    pub fn calls(&self) -> Vec<Call> {
        self.calls.lock().unwrap().clone()
    }

    pub fn modules(&self) -> Vec<(String, bool)> {
        self.calls()
            .into_iter()
            .map(|c| (c.module, c.rollback))
            .collect()
    }

    pub fn clear(&self) {
        self.calls.lock().unwrap().clear();
        self.phases.lock().unwrap().clear();
    }

    /// Every commit and abort, in order.
    pub fn phases(&self) -> Vec<(String, &'static str)> {
        self.phases.lock().unwrap().clone()
    }

    /// Whether any undo (a rollback call) ran.
    pub fn any_undo(&self) -> bool {
        self.calls().iter().any(|c| c.rollback)
    }
}

pub struct Recorder {
    pub name: String,
    /// The live resource: the level last committed, and how many commits made it.
    pub live: Arc<Mutex<(u32, u64)>>,
    pub behaviour: Mutex<Behaviour>,
    pub journal: Journal,
    pub delay: Duration,
    /// Times `prepare` yields to the scheduler between recording its entry and its exit, so
    /// that two prepares running at once would be seen overlapping.
    pub yields: usize,
    pub timeout: Duration,
}

impl Recorder {
    pub fn new(name: &str, behaviour: Behaviour, journal: &Journal) -> Arc<Self> {
        Arc::new(Self {
            name: name.to_owned(),
            live: Arc::new(Mutex::new((1, 1))),
            behaviour: Mutex::new(behaviour),
            journal: journal.clone(),
            delay: Duration::ZERO,
            yields: 0,
            timeout: Duration::from_secs(5),
        })
    }

    /// A module whose `prepare` yields `yields` times in the middle (no clock involved).
    pub fn yielding(name: &str, journal: &Journal, yields: usize) -> Arc<Self> {
        Arc::new(Self {
            name: name.to_owned(),
            live: Arc::new(Mutex::new((1, 1))),
            behaviour: Mutex::new(Behaviour::Succeed),
            journal: journal.clone(),
            delay: Duration::ZERO,
            yields,
            timeout: Duration::from_secs(5),
        })
    }

    pub fn with_delay(name: &str, journal: &Journal, delay: Duration) -> Arc<Self> {
        Arc::new(Self {
            name: name.to_owned(),
            live: Arc::new(Mutex::new((1, 1))),
            behaviour: Mutex::new(Behaviour::Succeed),
            journal: journal.clone(),
            delay,
            yields: 0,
            timeout: Duration::from_secs(5),
        })
    }

    pub fn set(&self, behaviour: Behaviour) {
        *self.behaviour.lock().unwrap() = behaviour;
    }

    /// The live `(level, generation)`.
    pub fn live(&self) -> (u32, u64) {
        *self.live.lock().unwrap()
    }
}

#[modular_core::async_trait]
impl Reloadable for Recorder {
    fn can_reload(&self) -> bool {
        *self.behaviour.lock().unwrap() != Behaviour::Busy
    }

    fn reload_timeout(&self) -> Duration {
        self.timeout
    }

    async fn prepare(
        &self,
        ctx: &ReloadContext,
        changes: &[ConfigChange],
    ) -> Result<PreparedReload, BoxError> {
        let now = self.journal.running.fetch_add(1, Ordering::SeqCst) + 1;
        self.journal.max_running.fetch_max(now, Ordering::SeqCst);
        let level = ctx.new_config::<ModuleConfig>().map(|c| c.level);
        self.journal.calls.lock().unwrap().push(Call {
            module: self.name.clone(),
            rollback: ctx.is_rollback(),
            changes: changes.to_vec(),
            level,
        });
        if !self.delay.is_zero() {
            tokio::time::sleep(self.delay).await;
        }
        for _ in 0..self.yields {
            tokio::task::yield_now().await;
        }
        let behaviour = *self.behaviour.lock().unwrap();
        let result = match behaviour {
            Behaviour::Succeed | Behaviour::Busy => {
                let live = Arc::clone(&self.live);
                let (commits, aborts) = (self.journal.phases.clone(), self.journal.phases.clone());
                let (name, name2) = (self.name.clone(), self.name.clone());
                let level = level.unwrap_or_default();
                Ok(PreparedReload::new(move || {
                    let mut live = live.lock().unwrap();
                    *live = (level, live.1 + 1);
                    commits.lock().unwrap().push((name, "commit"));
                })
                .on_abort(move || aborts.lock().unwrap().push((name2, "abort"))))
            }
            Behaviour::InPlace => {
                let mut live = self.live.lock().unwrap();
                *live = (level.unwrap_or_default(), live.1 + 1);
                Ok(PreparedReload::applied_in_place())
            }
            Behaviour::Fail => Err(format!("{} refused the change", self.name).into()),
            Behaviour::Panic => {
                self.journal.running.fetch_sub(1, Ordering::SeqCst);
                panic!("{} exploded", self.name)
            }
            Behaviour::Hang => {
                self.journal.running.fetch_sub(1, Ordering::SeqCst);
                std::future::pending::<()>().await;
                Err("unreachable".into())
            }
        };
        self.journal.running.fetch_sub(1, Ordering::SeqCst);
        result
    }

    async fn undo(&self, ctx: &ReloadContext, changes: &[ConfigChange]) -> Result<(), BoxError> {
        let level = ctx.new_config::<ModuleConfig>().map(|c| c.level);
        self.journal.calls.lock().unwrap().push(Call {
            module: self.name.clone(),
            rollback: true,
            changes: changes.to_vec(),
            level,
        });
        let mut live = self.live.lock().unwrap();
        *live = (level.unwrap_or_default(), live.1 + 1);
        Ok(())
    }
}

/// A store with one section per module and no sources but defaults and overrides.
pub fn store_with(modules: &[&str]) -> Arc<ConfigStore> {
    let store = Arc::new(ConfigStore::new(ConfigSources::new().env_prefix(None)));
    store.load_initial().unwrap();
    for m in modules {
        store.register::<ModuleConfig>(m, Some(m)).unwrap();
    }
    store
}

/// Options without file watching or health gate.
pub fn quiet_options() -> ReloadOptions {
    ReloadOptions {
        watch_files: false,
        health_gate: false,
        ..ReloadOptions::default()
    }
}

pub struct Fixture {
    pub store: Arc<ConfigStore>,
    pub journal: Journal,
    pub recorders: Vec<Arc<Recorder>>,
    pub orchestrator: ReloadOrchestrator,
    pub events: EventBus,
}

/// Modules named by `specs`, in dependency order, with their behaviours.
pub fn fixture(specs: &[(&str, Behaviour)]) -> Fixture {
    fixture_with(specs, quiet_options())
}

pub fn fixture_with(specs: &[(&str, Behaviour)], options: ReloadOptions) -> Fixture {
    let names: Vec<&str> = specs.iter().map(|(n, _)| *n).collect();
    let store = store_with(&names);
    let journal = Journal::default();
    let recorders: Vec<Arc<Recorder>> = specs
        .iter()
        .map(|(n, b)| Recorder::new(n, *b, &journal))
        .collect();
    let events = EventBus::new();
    let targets = recorders
        .iter()
        .map(|r| ReloadTarget {
            module: r.name.clone(),
            reloadable: Some(r.clone() as Arc<dyn Reloadable>),
        })
        .collect();
    let orchestrator =
        ReloadOrchestrator::new(store.clone(), targets, events.clone(), None, options);
    Fixture {
        store,
        journal,
        recorders,
        orchestrator,
        events,
    }
}

impl Fixture {
    /// Sets the running sources' overrides (as if a file changed), without reloading.
    pub fn set_source(&self, values: &[(&str, Value)]) {
        let mut overrides = self.store.overrides();
        for (k, v) in values {
            overrides.insert((*k).to_owned(), v.clone());
        }
        self.store.set_overrides(overrides);
    }

    pub fn clear_sources(&self) {
        self.store.set_overrides(BTreeMap::new());
    }

    pub fn level(&self, module: &str) -> u32 {
        let section = self
            .store
            .sections()
            .into_iter()
            .find(|s| s.name() == module)
            .expect("section registered");
        section
            .current()
            .downcast::<ModuleConfig>()
            .expect("typed")
            .level
    }
}
