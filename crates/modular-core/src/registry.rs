//! The typed service registry: modules publish services by type (optionally with a name) and
//! look them up by type.

use std::any::{Any, TypeId, type_name};
use std::fmt;
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::Arc;

use dashmap::DashMap;

/// Services keyed by type, and by type plus name.
///
/// ```
/// use std::sync::Arc;
/// use modular_core::ServiceRegistry;
///
/// trait Greeter: Send + Sync { fn greet(&self) -> String; }
/// struct English;
/// impl Greeter for English { fn greet(&self) -> String { "hello".into() } }
///
/// let registry = ServiceRegistry::new();
/// registry.register::<dyn Greeter>(Arc::new(English));
/// let greeter = registry.get::<dyn Greeter>().unwrap();
/// assert_eq!(greeter.greet(), "hello");
/// ```
#[derive(Default)]
pub struct ServiceRegistry {
    unnamed: DashMap<TypeId, Entry, TypeIdHasher>,
    named: DashMap<TypeId, NamedEntries, TypeIdHasher>,
}

/// The named services of one type. A type has a handful of names (two database pools, three
/// HTTP clients), and comparing a few short strings is cheaper than hashing one: a linear
/// scan keeps `get_named` at about the cost of `get`, where a `HashMap<String, _>` added
/// ~20 ns of string hashing and missed the 30 ns lookup target.
#[derive(Default)]
struct NamedEntries(Vec<(Box<str>, Entry)>);

impl NamedEntries {
    #[inline]
    fn get(&self, name: &str) -> Option<&Entry> {
        self.0.iter().find(|(n, _)| &**n == name).map(|(_, e)| e)
    }

    fn insert(&mut self, name: String, entry: Entry) -> Option<Entry> {
        match self.0.iter_mut().find(|(n, _)| **n == *name) {
            Some((_, slot)) => Some(std::mem::replace(slot, entry)),
            None => {
                self.0.push((name.into_boxed_str(), entry));
                None
            }
        }
    }

    fn remove(&mut self, name: &str) -> Option<Entry> {
        let i = self.0.iter().position(|(n, _)| &**n == name)?;
        Some(self.0.swap_remove(i).1)
    }

    fn iter(&self) -> impl Iterator<Item = (&str, &Entry)> {
        self.0.iter().map(|(n, e)| (&**n, e))
    }

    fn len(&self) -> usize {
        self.0.len()
    }
}

#[derive(Clone)]
struct Entry {
    // Holds an `Arc<T>` (`T` may be unsized, such as a trait object).
    value: Arc<dyn Any + Send + Sync>,
    type_name: &'static str,
}

type TypeIdHasher = BuildHasherDefault<IdHasher>;

/// `TypeId` is already a well-distributed hash; pass it through instead of hashing it again.
#[derive(Default)]
struct IdHasher(u64);

impl Hasher for IdHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for chunk in bytes.chunks(8) {
            let mut buf = [0u8; 8];
            buf[..chunk.len()].copy_from_slice(chunk);
            self.0 = (self.0.rotate_left(5) ^ u64::from_ne_bytes(buf))
                .wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
        }
    }

    fn write_u64(&mut self, n: u64) {
        self.0 ^= n;
    }
}

impl ServiceRegistry {
    /// An empty registry.
    pub fn new() -> Self {
        Self::default()
    }

    /// Registers the service of type `T`, replacing and returning any earlier one.
    pub fn register<T: ?Sized + Send + Sync + 'static>(&self, service: Arc<T>) -> Option<Arc<T>> {
        let previous = self.unnamed.insert(TypeId::of::<T>(), entry(service));
        previous.and_then(|e| downcast::<T>(&e))
    }

    /// Registers a named service of type `T` (several services of one type, such as two
    /// database pools).
    pub fn register_named<T: ?Sized + Send + Sync + 'static>(
        &self,
        name: impl Into<String>,
        service: Arc<T>,
    ) -> Option<Arc<T>> {
        let previous = self
            .named
            .entry(TypeId::of::<T>())
            .or_default()
            .insert(name.into(), entry(service));
        previous.and_then(|e| downcast::<T>(&e))
    }

    /// The service of type `T`.
    #[inline]
    pub fn get<T: ?Sized + Send + Sync + 'static>(&self) -> Option<Arc<T>> {
        self.unnamed
            .get(&TypeId::of::<T>())
            .and_then(|e| downcast::<T>(&e))
    }

    /// The service of type `T` registered under `name`.
    #[inline]
    pub fn get_named<T: ?Sized + Send + Sync + 'static>(&self, name: &str) -> Option<Arc<T>> {
        self.named
            .get(&TypeId::of::<T>())
            .and_then(|map| map.get(name).and_then(downcast::<T>))
    }

    /// The service of type `T`, or an error naming the type.
    pub fn require<T: ?Sized + Send + Sync + 'static>(&self) -> Result<Arc<T>, crate::Error> {
        self.get::<T>()
            .ok_or_else(|| crate::Error::ServiceNotFound {
                type_name: type_name::<T>(),
                name: None,
            })
    }

    /// The named service of type `T`, or an error naming the type and name.
    pub fn require_named<T: ?Sized + Send + Sync + 'static>(
        &self,
        name: &str,
    ) -> Result<Arc<T>, crate::Error> {
        self.get_named::<T>(name)
            .ok_or_else(|| crate::Error::ServiceNotFound {
                type_name: type_name::<T>(),
                name: Some(name.to_owned()),
            })
    }

    /// Names registered for type `T`, sorted.
    pub fn names<T: ?Sized + Send + Sync + 'static>(&self) -> Vec<String> {
        let mut names: Vec<String> = self
            .named
            .get(&TypeId::of::<T>())
            .map(|map| map.iter().map(|(name, _)| name.to_owned()).collect())
            .unwrap_or_default();
        names.sort();
        names
    }

    /// Removes the service of type `T`.
    pub fn remove<T: ?Sized + Send + Sync + 'static>(&self) -> Option<Arc<T>> {
        self.unnamed
            .remove(&TypeId::of::<T>())
            .and_then(|(_, e)| downcast::<T>(&e))
    }

    /// Removes the named service of type `T`.
    pub fn remove_named<T: ?Sized + Send + Sync + 'static>(&self, name: &str) -> Option<Arc<T>> {
        self.named
            .get_mut(&TypeId::of::<T>())
            .and_then(|mut map| map.remove(name))
            .and_then(|e| downcast::<T>(&e))
    }

    /// Number of registered services.
    pub fn len(&self) -> usize {
        self.unnamed.len() + self.named.iter().map(|m| m.len()).sum::<usize>()
    }

    /// Whether nothing is registered.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

fn entry<T: ?Sized + Send + Sync + 'static>(service: Arc<T>) -> Entry {
    Entry {
        value: Arc::new(service),
        type_name: type_name::<T>(),
    }
}

#[inline]
fn downcast<T: ?Sized + Send + Sync + 'static>(entry: &Entry) -> Option<Arc<T>> {
    entry.value.downcast_ref::<Arc<T>>().cloned()
}

impl fmt::Debug for ServiceRegistry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut names: Vec<String> = self
            .unnamed
            .iter()
            .map(|e| e.type_name.to_owned())
            .collect();
        for map in self.named.iter() {
            for (name, e) in map.iter() {
                names.push(format!("{}#{name}", e.type_name));
            }
        }
        names.sort();
        f.debug_struct("ServiceRegistry")
            .field("services", &names)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    trait Pool: Send + Sync {
        fn id(&self) -> u32;
    }
    struct P(u32);
    impl Pool for P {
        fn id(&self) -> u32 {
            self.0
        }
    }

    #[test]
    fn services_are_found_by_type_and_by_name() {
        let registry = ServiceRegistry::new();
        registry.register::<dyn Pool>(Arc::new(P(1)));
        registry.register_named::<dyn Pool>("replica", Arc::new(P(2)));
        registry.register(Arc::new(42u64));
        assert_eq!(registry.get::<dyn Pool>().map(|p| p.id()), Some(1));
        assert_eq!(
            registry.get_named::<dyn Pool>("replica").map(|p| p.id()),
            Some(2)
        );
        assert_eq!(registry.get::<u64>().as_deref(), Some(&42));
        assert!(registry.get::<u32>().is_none());
        assert!(registry.get_named::<dyn Pool>("primary").is_none());
        assert_eq!(registry.names::<dyn Pool>(), vec!["replica".to_owned()]);
        assert_eq!(registry.len(), 3);
    }

    #[test]
    fn registering_a_name_again_replaces_it_and_removing_it_leaves_the_others() {
        let registry = ServiceRegistry::new();
        assert!(
            registry
                .register_named::<dyn Pool>("primary", Arc::new(P(1)))
                .is_none()
        );
        registry.register_named::<dyn Pool>("replica", Arc::new(P(2)));
        let previous = registry.register_named::<dyn Pool>("primary", Arc::new(P(3)));
        assert_eq!(previous.map(|p| p.id()), Some(1));
        assert_eq!(
            registry.get_named::<dyn Pool>("primary").map(|p| p.id()),
            Some(3)
        );
        assert_eq!(registry.len(), 2);

        assert_eq!(
            registry.remove_named::<dyn Pool>("primary").map(|p| p.id()),
            Some(3)
        );
        assert!(registry.get_named::<dyn Pool>("primary").is_none());
        assert_eq!(
            registry.get_named::<dyn Pool>("replica").map(|p| p.id()),
            Some(2)
        );
        assert_eq!(registry.names::<dyn Pool>(), vec!["replica".to_owned()]);
    }

    #[test]
    fn a_missing_service_is_an_error_naming_its_type() {
        let registry = ServiceRegistry::new();
        let error = registry
            .require_named::<dyn Pool>("primary")
            .err()
            .map(|e| e.to_string());
        let text = error.unwrap_or_default();
        assert!(text.contains("Pool"), "{text}");
        assert!(text.contains("primary"), "{text}");
    }
}
