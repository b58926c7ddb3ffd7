//! [`CertificateResolver`]: rustls's `ResolvesServerCert` answering per SNI name, from a
//! table replaced whole (an `ArcSwap`) whenever a certificate is issued, renewed, loaded or
//! removed. A handshake reads one snapshot: an exact name first, then the wildcard of its
//! parent (`*.example.com` for `a.example.com`). A name nobody holds a certificate for (and
//! every handshake before the first issuance) gets `None`, which rustls turns into a
//! handshake failure alert; nothing panics.
//!
//! The per-handshake lookup allocates nothing and hashes the name once: the table is one map
//! of *suffixes*, each slot holding the certificate of that exact name and the certificate of
//! the wildcard one label below it (`b.test` holds `b.test` and `*.b.test`). The name is
//! hashed right to left (FNV-1a, ASCII case folded on the fly), so the same pass yields the
//! hash of the whole name and the hash of its parent (the name with its leftmost label
//! stripped): one probe for the exact match, a second only when that misses.

use std::collections::HashMap;
use std::sync::Arc;

use arc_swap::ArcSwap;
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;

/// The resolver the module registers (`Arc<dyn ResolvesServerCert>` in the service
/// registry) for httpserver's `tls.source: service`.
#[derive(Debug, Default)]
pub struct CertificateResolver {
    table: ArcSwap<Table>,
    /// TLS-ALPN-01 challenge certificates by name, answered only to `acme-tls/1`
    /// handshakes.
    challenges: dashmap::DashMap<String, Arc<CertifiedKey>>,
}

/// The ALPN protocol of TLS-ALPN-01 validation handshakes (RFC 8737).
pub const ACME_TLS_ALPN: &[u8] = b"acme-tls/1";

/// Name → certificate, as of one moment.
#[derive(Debug, Default)]
pub(crate) struct Table {
    /// [`name_hash`] of a suffix → the slots of that hash (one, barring a collision).
    slots: HashMap<u64, Vec<Slot>, PassThrough>,
    names: usize,
}

/// One suffix: its exact certificate and the wildcard certificate of its children.
#[derive(Debug)]
struct Slot {
    /// Lowercase, no wildcard label.
    name: Box<str>,
    exact: Option<Arc<CertifiedKey>>,
    wildcard: Option<Arc<CertifiedKey>>,
}

/// The keys are already FNV-1a hashes of the names: hashing them again would only cost time.
/// An unkeyed hash is safe here: the keys are the configured names, and a client's SNI only
/// probes the table, it never inserts, so no one can fill it with colliding keys.
type PassThrough = std::hash::BuildHasherDefault<PassThroughHasher>;

#[derive(Debug, Default)]
struct PassThroughHasher(u64);

impl std::hash::Hasher for PassThroughHasher {
    #[inline]
    fn write(&mut self, bytes: &[u8]) {
        // Only `write_u64` is used (the key is a `u64`); fold anything else in for safety.
        for byte in bytes {
            self.0 = (self.0 ^ u64::from(*byte)).wrapping_mul(FNV_PRIME);
        }
    }

    #[inline]
    fn write_u64(&mut self, value: u64) {
        self.0 = value;
    }

    #[inline]
    fn finish(&self) -> u64 {
        self.0
    }
}

const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
const FNV_PRIME: u64 = 0x0100_0000_01b3;

/// FNV-1a of `name` read right to left, ASCII case folded: the hash of the whole name, and
/// the hash of the parent with where the parent starts (`None` for a single label).
#[inline]
fn name_hash(name: &[u8]) -> (u64, Option<(u64, usize)>) {
    let mut hash = FNV_OFFSET;
    let mut parent = None;
    for (i, byte) in name.iter().enumerate().rev() {
        if *byte == b'.' {
            // The last dot seen (the leftmost) wins: the parent is everything after it.
            parent = Some((hash, i + 1));
        }
        hash = (hash ^ u64::from(byte.to_ascii_lowercase())).wrapping_mul(FNV_PRIME);
    }
    (hash, parent)
}

impl Table {
    /// A table of every `(names, key)`; a name held by two certificates goes to the later one.
    pub(crate) fn build<'a>(
        certificates: impl IntoIterator<Item = (&'a [String], &'a Arc<CertifiedKey>)>,
    ) -> Self {
        let mut table = Self::default();
        for (names, key) in certificates {
            for name in names {
                let (suffix, wildcard) = match name.strip_prefix("*.") {
                    Some(parent) => (parent, true),
                    None => (name.as_str(), false),
                };
                let slot = table.slot_mut(&suffix.to_ascii_lowercase());
                let held = if wildcard {
                    &mut slot.wildcard
                } else {
                    &mut slot.exact
                };
                if held.replace(Arc::clone(key)).is_none() {
                    table.names += 1;
                }
            }
        }
        table
    }

    fn slot_mut(&mut self, name: &str) -> &mut Slot {
        let (hash, _) = name_hash(name.as_bytes());
        let bucket = self.slots.entry(hash).or_default();
        let at = match bucket.iter().position(|slot| *slot.name == *name) {
            Some(at) => at,
            None => {
                bucket.push(Slot {
                    name: name.into(),
                    exact: None,
                    wildcard: None,
                });
                bucket.len() - 1
            }
        };
        &mut bucket[at]
    }

    #[inline]
    fn slot(&self, hash: u64, name: &[u8]) -> Option<&Slot> {
        self.slots
            .get(&hash)?
            .iter()
            .find(|slot| slot.name.as_bytes().eq_ignore_ascii_case(name))
    }

    /// The certificate for `name`: exact, then the wildcard one label up.
    #[inline]
    fn find(&self, name: &str) -> Option<&Arc<CertifiedKey>> {
        let name = name.as_bytes();
        let (hash, parent) = name_hash(name);
        if let Some(key) = self.slot(hash, name).and_then(|slot| slot.exact.as_ref()) {
            return Some(key);
        }
        let (hash, start) = parent.filter(|(_, start)| *start > 1)?;
        self.slot(hash, &name[start..])?.wildcard.as_ref()
    }

    /// The names served.
    pub(crate) fn len(&self) -> usize {
        self.names
    }
}

impl CertificateResolver {
    /// A resolver with no certificate yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// A resolver over fixed certificates: each key with the names it serves (`*.` for a
    /// wildcard), a later key winning a name two share. For tests, benchmarks and
    /// certificates managed elsewhere; the module fills its own from the CA.
    pub fn with_certificates(
        certificates: impl IntoIterator<Item = (Vec<String>, Arc<CertifiedKey>)>,
    ) -> Self {
        let certificates: Vec<(Vec<String>, Arc<CertifiedKey>)> =
            certificates.into_iter().collect();
        let resolver = Self::new();
        resolver.publish(Table::build(
            certificates
                .iter()
                .map(|(names, key)| (names.as_slice(), key)),
        ));
        resolver
    }

    /// Replaces the table: new handshakes see it, open connections keep their session.
    pub(crate) fn publish(&self, table: Table) {
        self.table.store(Arc::new(table));
    }

    /// Serves `key` to `acme-tls/1` handshakes for `name` until [`Self::withdraw_challenge`].
    pub(crate) fn publish_challenge(&self, name: &str, key: Arc<CertifiedKey>) {
        self.challenges.insert(name.to_owned(), key);
    }

    pub(crate) fn withdraw_challenge(&self, name: &str) {
        self.challenges.remove(name);
    }

    /// How many names are served.
    pub fn names(&self) -> usize {
        self.table.load().len()
    }

    /// The certificate for `server_name` (ASCII, any case), exact match first, then the
    /// wildcard one label up.
    #[inline]
    pub fn lookup(&self, server_name: &str) -> Option<Arc<CertifiedKey>> {
        self.table.load().find(server_name).cloned()
    }
}

impl ResolvesServerCert for CertificateResolver {
    fn resolve(&self, client_hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        let name = client_hello.server_name()?;
        if !self.challenges.is_empty()
            && client_hello
                .alpn()
                .is_some_and(|mut protocols| protocols.any(|p| p == ACME_TLS_ALPN))
        {
            // A validation handshake gets the challenge certificate or nothing, never the
            // served one (RFC 8737 §3).
            return self
                .challenges
                .get(&name.to_ascii_lowercase())
                .map(|key| Arc::clone(&key));
        }
        self.lookup(name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(name: &str) -> Arc<CertifiedKey> {
        modular_core::install_default_crypto_provider();
        let generated = rcgen::generate_simple_self_signed(vec![name.to_owned()]).unwrap();
        let provider = rustls::crypto::CryptoProvider::get_default().unwrap();
        let der =
            rustls_pki_types::PrivateKeyDer::Pkcs8(generated.signing_key.serialize_der().into());
        Arc::new(CertifiedKey::from_der(vec![generated.cert.der().clone()], der, provider).unwrap())
    }

    #[test]
    fn exact_names_win_over_wildcards_and_wildcards_cover_one_label() {
        let (web, wild) = (key("a.test"), key("*.b.test"));
        let resolver = CertificateResolver::new();
        assert!(resolver.lookup("a.test").is_none());
        let web_names = vec!["a.test".to_owned(), "x.b.test".to_owned()];
        let wild_names = vec!["*.b.test".to_owned()];
        resolver.publish(Table::build([
            (wild_names.as_slice(), &wild),
            (web_names.as_slice(), &web),
        ]));
        assert!(Arc::ptr_eq(&resolver.lookup("a.test").unwrap(), &web));
        assert!(Arc::ptr_eq(&resolver.lookup("A.TEST").unwrap(), &web));
        assert!(Arc::ptr_eq(&resolver.lookup("x.b.test").unwrap(), &web));
        assert!(Arc::ptr_eq(&resolver.lookup("y.b.test").unwrap(), &wild));
        assert!(resolver.lookup("b.test").is_none());
        assert!(resolver.lookup("z.y.b.test").is_none());
        assert!(resolver.lookup("test").is_none());
        assert!(resolver.lookup("").is_none());
        assert!(resolver.lookup(".b.test").is_none());
        assert_eq!(resolver.names(), 3);
    }

    #[test]
    fn a_name_and_its_wildcard_share_a_slot_and_the_later_certificate_wins() {
        let (first, second, wild) = (key("b.test"), key("b.test"), key("*.b.test"));
        let apex = vec!["b.test".to_owned()];
        let wild_names = vec!["*.B.test".to_owned()];
        let table = Table::build([
            (apex.as_slice(), &first),
            (wild_names.as_slice(), &wild),
            (apex.as_slice(), &second),
        ]);
        assert_eq!(table.len(), 2);
        assert_eq!(table.slots.len(), 1);
        assert!(Arc::ptr_eq(table.find("B.Test").unwrap(), &second));
        assert!(Arc::ptr_eq(table.find("x.b.TEST").unwrap(), &wild));
    }

    #[test]
    fn the_reversed_hash_of_a_name_carries_its_parents_hash() {
        let (_, parent) = name_hash(b"www.Example.com");
        let (parent_hash, start) = parent.unwrap();
        assert_eq!(start, 4);
        assert_eq!(name_hash(b"example.com").0, parent_hash);
        assert_eq!(name_hash(b"localhost").1, None);
    }
}
