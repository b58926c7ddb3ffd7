//! [`ConfigHandle`]: a lock-free, always-consistent view of one config section.

use std::any::Any;
use std::fmt;
use std::marker::PhantomData;
use std::sync::Arc;

use serde::Serialize;

use super::DynamicConfig;
use super::epoch::{AnySection, Epoch};

/// The running value of one configuration section.
///
/// Reads never block and never see half an update: every section of a version is published in
/// one atomic swap of the application's config epoch, which this handle reads through. Hold
/// the `Arc` returned by [`ConfigHandle::get`] for the duration of one operation so the
/// operation sees one version throughout. To read two sections from the same version, take a
/// [`ConfigSnapshot`](super::ConfigSnapshot) and read both from it.
///
/// A background task follows reloads with [`ConfigHandle::changed`]:
///
/// ```
/// # async fn demo(handle: modular_core::ConfigHandle<u32>) {
/// loop {
///     let value = handle.changed().await;
///     println!("now {value}");
/// #   break;
/// }
/// # }
/// ```
pub struct ConfigHandle<T> {
    pub(crate) epoch: Arc<Epoch>,
    pub(crate) index: usize,
    _type: PhantomData<fn() -> T>,
}

impl<T> Clone for ConfigHandle<T> {
    fn clone(&self) -> Self {
        Self {
            epoch: Arc::clone(&self.epoch),
            index: self.index,
            _type: PhantomData,
        }
    }
}

impl<T: Any + Send + Sync> ConfigHandle<T> {
    /// A standalone handle holding `value` (tests, code outside an application).
    pub fn new(value: T) -> Self {
        let epoch = Epoch::new(1, vec![Arc::new(value) as AnySection]);
        Self::bind(epoch, 0)
    }

    pub(crate) fn bind(epoch: Arc<Epoch>, index: usize) -> Self {
        Self {
            epoch,
            index,
            _type: PhantomData,
        }
    }

    /// An owned snapshot of the section (do not hold it longer than one operation needs).
    #[inline]
    pub fn load(&self) -> Arc<T> {
        self.get()
    }

    /// An owned snapshot of the section.
    #[inline]
    pub fn get(&self) -> Arc<T> {
        let snapshot = self.epoch.load();
        match snapshot
            .section(self.index)
            .cloned()
            .map(|section| section.downcast::<T>())
        {
            Some(Ok(value)) => value,
            // A handle is only ever bound to its own section's index and type.
            _ => unreachable!("config handle bound to a section of another type"),
        }
    }

    /// The config version the section was last read at.
    pub fn version(&self) -> u64 {
        self.epoch.load().version()
    }

    /// Waits until a reload commits a new value of this section, and returns it.
    ///
    /// Versions that leave this section as it was (another module's change, or a section
    /// held back because its module could not reload) do not wake the caller. Cancel-safe:
    /// dropping the future loses nothing, since the next call compares against the value
    /// current when it starts.
    pub async fn changed(&self) -> Arc<T> {
        let seen = self.get();
        self.changed_from(&seen).await
    }

    /// Waits until the section's value is no longer `seen` (a value the caller read earlier
    /// with [`get`](Self::get)), and returns the new one: at once when a reload committed
    /// since, so a change between the caller's read and this call is not missed.
    pub async fn changed_from(&self, seen: &Arc<T>) -> Arc<T> {
        let mut rx = self.epoch.subscribe();
        loop {
            let now = self.get();
            if !Arc::ptr_eq(&now, seen) {
                return now;
            }
            if rx.changed().await.is_err() {
                // The store is gone: nothing will change any more.
                std::future::pending::<()>().await;
            }
        }
    }
}

/// Shows the version and the value's serde form with every `Secret` and `#[config(sensitive)]`
/// field (nested ones included) replaced by `[REDACTED]`: the type's own `Debug` would print
/// sensitive fields, and a handle is easily logged with `{:?}`.
impl<T: DynamicConfig + Serialize + Any + Send + Sync> fmt::Debug for ConfigHandle<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let snapshot = self.epoch.load();
        let value = snapshot
            .section(self.index)
            .and_then(|section| section.downcast_ref::<T>())
            .map(redacted_json);
        let mut out = f.debug_struct("ConfigHandle");
        out.field("version", &snapshot.version());
        match &value {
            Some(json) => out.field("value", &format_args!("{json}")),
            None => out.field("value", &format_args!("<unbound>")),
        };
        out.finish()
    }
}

/// The serde form of `value` with its secrets and sensitive fields redacted.
pub(crate) fn redacted_json<T: DynamicConfig + Serialize>(value: &T) -> serde_json::Value {
    let mut json = serde_json::to_value(value).unwrap_or(serde_json::Value::Null);
    T::redact_json(&mut json);
    json
}
