//! [`Live<T>`]: a resource that a reload replaces, shared with modules that do not depend on
//! the module that owns it.
//!
//! The owner (the database module for its sqlx pools) registers one `Live<T>` per name in the
//! [`ServiceRegistry`](crate::ServiceRegistry) with [`register_live`](crate::ServiceRegistry::register_live)
//! and [`store`s](Live::store) the new resource in its reload commit. A user that depends only
//! on the resource's own crate (the scheduler on `sqlx`) looks it up with
//! [`live`](crate::ServiceRegistry::live) and [`load`s](Live::load) it per operation, so it
//! follows every swap; [`Live::changed`] wakes it when one happens.
//!
//! ```
//! use std::sync::Arc;
//! use modular_core::{ServiceRegistry, live::Live};
//!
//! #[derive(Debug, PartialEq)]
//! struct Pool { size: u32 }
//!
//! let registry = ServiceRegistry::new();
//! // The owner, at init:
//! let primary = Arc::new(Live::new(Pool { size: 5 }));
//! registry.register_live("primary", Arc::clone(&primary));
//!
//! // A user elsewhere, that knows only `Pool`:
//! let handle = registry.live::<Pool>("primary").unwrap();
//! assert_eq!(handle.load().size, 5);
//!
//! // The owner's reload commit:
//! primary.store(Pool { size: 10 });
//! assert_eq!(handle.load().size, 10);
//! assert_eq!(handle.generation(), 2);
//! ```

use std::fmt;
use std::sync::Arc;

use arc_swap::{ArcSwap, Guard};
use tokio::sync::watch;

/// The current value of a swappable resource, read lock-free; see the [module docs](self).
pub struct Live<T> {
    current: ArcSwap<T>,
    /// The generation: 1 for the first value, +1 per store. Also wakes `changed`.
    generation: watch::Sender<u64>,
}

impl<T> Live<T> {
    /// A handle holding `value` as generation 1.
    pub fn new(value: T) -> Self {
        Self::from_arc(Arc::new(value))
    }

    /// A handle holding `value` as generation 1.
    pub fn from_arc(value: Arc<T>) -> Self {
        Self {
            current: ArcSwap::new(value),
            generation: watch::Sender::new(1),
        }
    }

    /// The current value, for one operation (do not hold it across a long wait, or the old
    /// resource lives on after a swap).
    #[inline]
    pub fn load(&self) -> Guard<Arc<T>> {
        self.current.load()
    }

    /// The current value as an owned `Arc`.
    #[inline]
    pub fn load_full(&self) -> Arc<T> {
        self.current.load_full()
    }

    /// Replaces the value (the owner's commit); returns the previous one, so the owner can
    /// close it once in-flight users are done.
    pub fn store(&self, value: impl Into<Arc<T>>) -> Arc<T> {
        let previous = self.current.swap(value.into());
        self.generation.send_modify(|g| *g = g.saturating_add(1));
        previous
    }

    /// 1 for the first value, +1 per [`store`](Live::store).
    pub fn generation(&self) -> u64 {
        *self.generation.borrow()
    }

    /// Resolves at the next [`store`](Live::store) after this call, with the new generation.
    pub async fn changed(&self) -> u64 {
        let mut rx = self.generation.subscribe();
        // The sender lives as long as `self`, so this only returns on a store.
        let _ = rx.changed().await;
        *rx.borrow()
    }

    /// A receiver of generations, for a task that follows every swap.
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.generation.subscribe()
    }
}

impl<T: fmt::Debug> fmt::Debug for Live<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Live")
            .field("generation", &self.generation())
            .field("current", &*self.current.load())
            .finish()
    }
}

impl crate::ServiceRegistry {
    /// Registers a live handle of `T` under `name` (the owner, at init). Replaces and returns
    /// any earlier handle of that name.
    pub fn register_live<T: Send + Sync + 'static>(
        &self,
        name: impl Into<String>,
        live: Arc<Live<T>>,
    ) -> Option<Arc<Live<T>>> {
        self.register_named::<Live<T>>(name, live)
    }

    /// The live handle of `T` registered under `name`.
    #[inline]
    pub fn live<T: Send + Sync + 'static>(&self, name: &str) -> Option<Arc<Live<T>>> {
        self.get_named::<Live<T>>(name)
    }

    /// The names under which live handles of `T` are registered, sorted.
    pub fn live_names<T: Send + Sync + 'static>(&self) -> Vec<String> {
        self.names::<Live<T>>()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn changed_resolves_on_the_next_store_with_its_generation() {
        let live = Arc::new(Live::new(1u32));
        let waiter = {
            let live = Arc::clone(&live);
            tokio::spawn(async move { live.changed().await })
        };
        tokio::task::yield_now().await;
        let previous = live.store(2);
        assert_eq!(*previous, 1);
        assert_eq!(waiter.await.ok(), Some(2));
        assert_eq!(**live.load(), 2);
    }

    #[test]
    fn a_guard_taken_before_a_store_keeps_the_old_value() {
        let live = Live::new(String::from("old"));
        let held = live.load_full();
        live.store(String::from("new"));
        assert_eq!(held.as_str(), "old");
        assert_eq!(live.load().as_str(), "new");
    }
}
