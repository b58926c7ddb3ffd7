//! One config epoch: every section of a version published in one atomic swap.
//!
//! The running configuration is one immutable [`ConfigSnapshot`] (every section's value plus
//! the version) behind one `ArcSwap`. A reload publishes a whole new snapshot in one store, so
//! a reader that takes one snapshot and reads several sections from it sees them all from the
//! same version: both old or both new, never a mixed pair. Per-section [`ConfigHandle`]s read
//! through the same cell.
//!
//! [`ConfigHandle`]: super::ConfigHandle

use std::any::Any;
use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use arc_swap::ArcSwap;
use tokio::sync::watch;

/// A type-erased section value.
pub type AnySection = Arc<dyn Any + Send + Sync>;

/// The whole running configuration at one version: every registered section, immutable.
///
/// Take one with [`ConfigStore::snapshot`](super::ConfigStore::snapshot) (or
/// [`Application::config_snapshot`](crate::Application::config_snapshot)) and read any number
/// of sections from it with [`ConfigSnapshot::get`]; they all come from the same version.
pub struct ConfigSnapshot {
    pub(crate) epoch_id: usize,
    pub(crate) version: u64,
    pub(crate) sections: Vec<AnySection>,
}

impl ConfigSnapshot {
    /// The config version this snapshot is (1 at start, +1 per committed reload).
    #[inline]
    pub fn version(&self) -> u64 {
        self.version
    }

    /// The value of the section `handle` reads, as of this snapshot. `None` only for a handle
    /// of another application's store.
    #[inline]
    pub fn get<'a, T: Any + Send + Sync>(
        &'a self,
        handle: &super::ConfigHandle<T>,
    ) -> Option<&'a T> {
        if handle.epoch.id != self.epoch_id {
            return None;
        }
        self.sections.get(handle.index)?.downcast_ref::<T>()
    }

    pub(crate) fn section(&self, index: usize) -> Option<&AnySection> {
        self.sections.get(index)
    }
}

impl fmt::Debug for ConfigSnapshot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ConfigSnapshot")
            .field("version", &self.version)
            .field("sections", &self.sections.len())
            .finish()
    }
}

static NEXT_EPOCH_ID: AtomicUsize = AtomicUsize::new(1);

/// The cell every handle and snapshot reader of one store shares.
pub(crate) struct Epoch {
    pub(crate) id: usize,
    current: ArcSwap<ConfigSnapshot>,
    // Carries the version; woken on every publish so `ConfigHandle::changed` can wait.
    notify: watch::Sender<u64>,
}

impl Epoch {
    pub(crate) fn new(version: u64, sections: Vec<AnySection>) -> Arc<Self> {
        let id = NEXT_EPOCH_ID.fetch_add(1, Ordering::Relaxed);
        let (notify, _) = watch::channel(version);
        Arc::new(Self {
            id,
            current: ArcSwap::from_pointee(ConfigSnapshot {
                epoch_id: id,
                version,
                sections,
            }),
            notify,
        })
    }

    #[inline]
    pub(crate) fn load(&self) -> arc_swap::Guard<Arc<ConfigSnapshot>> {
        self.current.load()
    }

    #[inline]
    pub(crate) fn load_full(&self) -> Arc<ConfigSnapshot> {
        self.current.load_full()
    }

    /// Publishes `sections` (same length and order as now) at `version` in one swap.
    pub(crate) fn publish(&self, version: u64, sections: Vec<AnySection>) {
        self.current.store(Arc::new(ConfigSnapshot {
            epoch_id: self.id,
            version,
            sections,
        }));
        self.notify.send_replace(version);
    }

    /// Appends a section (registration, before any reload); returns its index.
    pub(crate) fn append(&self, value: AnySection) -> usize {
        let mut index = 0;
        self.current.rcu(|current| {
            let mut sections = current.sections.clone();
            index = sections.len();
            sections.push(Arc::clone(&value));
            ConfigSnapshot {
                epoch_id: self.id,
                version: current.version,
                sections,
            }
        });
        index
    }

    pub(crate) fn subscribe(&self) -> watch::Receiver<u64> {
        self.notify.subscribe()
    }
}
