//! [`CertificateResolver`]: rustls's `ResolvesServerCert` answering per SNI name, from a
//! table replaced whole (an `ArcSwap`) whenever a certificate is issued, renewed, loaded or
//! removed. A handshake reads one snapshot: an exact name first, then the wildcard of its
//! parent (`*.example.com` for `a.example.com`). A name nobody holds a certificate for (and
//! every handshake before the first issuance) gets `None`, which rustls turns into a
//! handshake failure alert; nothing panics.

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
    exact: HashMap<String, Arc<CertifiedKey>, Fnv>,
    /// Keyed by the parent: `example.com` for `*.example.com`.
    wildcard: HashMap<String, Arc<CertifiedKey>, Fnv>,
}

/// FNV-1a: a few nanoseconds for a host name, where SipHash takes tens. An unkeyed hash is
/// safe here: the keys are the configured names, and a client's SNI only probes the table,
/// it never inserts, so no one can fill it with colliding keys.
type Fnv = std::hash::BuildHasherDefault<FnvHasher>;

#[derive(Debug)]
struct FnvHasher(u64);

impl Default for FnvHasher {
    fn default() -> Self {
        Self(0xcbf2_9ce4_8422_2325)
    }
}

impl std::hash::Hasher for FnvHasher {
    #[inline]
    fn write(&mut self, bytes: &[u8]) {
        for byte in bytes {
            self.0 = (self.0 ^ u64::from(*byte)).wrapping_mul(0x0100_0000_01b3);
        }
    }

    #[inline]
    fn finish(&self) -> u64 {
        self.0
    }
}

impl Table {
    /// A table of every `(names, key)`; a name held by two certificates goes to the later one.
    pub(crate) fn build<'a>(
        certificates: impl IntoIterator<Item = (&'a [String], &'a Arc<CertifiedKey>)>,
    ) -> Self {
        let mut table = Self::default();
        for (names, key) in certificates {
            for name in names {
                match name.strip_prefix("*.") {
                    Some(parent) => table.wildcard.insert(parent.to_owned(), Arc::clone(key)),
                    None => table.exact.insert(name.clone(), Arc::clone(key)),
                };
            }
        }
        table
    }

    /// The names served.
    pub(crate) fn len(&self) -> usize {
        self.exact.len() + self.wildcard.len()
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
        let table = self.table.load();
        if server_name.bytes().any(|b| b.is_ascii_uppercase()) {
            return lookup_in(&table, &server_name.to_ascii_lowercase());
        }
        lookup_in(&table, server_name)
    }
}

fn lookup_in(table: &Table, name: &str) -> Option<Arc<CertifiedKey>> {
    if let Some(key) = table.exact.get(name) {
        return Some(Arc::clone(key));
    }
    let (_, parent) = name.split_once('.')?;
    table.wildcard.get(parent).cloned()
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
        assert_eq!(resolver.names(), 3);
    }
}
