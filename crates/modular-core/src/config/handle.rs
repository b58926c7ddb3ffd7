//! [`ConfigHandle`]: a lock-free, always-consistent view of one config section.

use std::fmt;
use std::sync::Arc;

use arc_swap::ArcSwap;

/// The running value of one configuration section.
///
/// Reads never block and never see half an update: a reload replaces the whole snapshot at
/// once. Hold the `Arc` returned by [`ConfigHandle::get`] for the duration of one operation
/// so the operation sees one version throughout.
pub struct ConfigHandle<T> {
    cell: Arc<ArcSwap<T>>,
}

impl<T> Clone for ConfigHandle<T> {
    fn clone(&self) -> Self {
        Self {
            cell: Arc::clone(&self.cell),
        }
    }
}

impl<T> ConfigHandle<T> {
    /// A handle holding `value`.
    pub fn new(value: T) -> Self {
        Self {
            cell: Arc::new(ArcSwap::from_pointee(value)),
        }
    }

    /// A cheap, short-lived snapshot (do not hold it across `.await`).
    #[inline]
    pub fn load(&self) -> arc_swap::Guard<Arc<T>> {
        self.cell.load()
    }

    /// An owned snapshot.
    #[inline]
    pub fn get(&self) -> Arc<T> {
        self.cell.load_full()
    }

    pub(crate) fn store(&self, value: Arc<T>) {
        self.cell.store(value);
    }
}

impl<T: fmt::Debug> fmt::Debug for ConfigHandle<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("ConfigHandle")
            .field(&**self.cell.load())
            .finish()
    }
}
