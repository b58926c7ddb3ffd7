//! The letsencrypt resolver's per-handshake work (DESIGN.md §6, target ≤ 100 ns): the SNI
//! name looked up in the current table (an `ArcSwap` load, a hash lookup, an `Arc` clone).
//! - `letsencrypt_resolve/exact`: a name among 20 certificates of 2 names each.
//! - `letsencrypt_resolve/wildcard`: a name only a `*.` certificate covers (one miss first).
//! - `letsencrypt_resolve/wildcard_mixed_case`: the same name with capitals (a client may send
//!   any case; the lookup folds it without allocating).
//! - `letsencrypt_resolve/raw_hashmap`: a plain `HashMap` get and clone of the same key.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::collections::HashMap;
use std::hint::black_box;
use std::sync::Arc;

use criterion::{Criterion, criterion_group, criterion_main};
use modular_letsencrypt::CertificateResolver;
use rustls::sign::CertifiedKey;

fn key(name: &str) -> Arc<CertifiedKey> {
    modular_core::install_default_crypto_provider();
    let generated = rcgen::generate_simple_self_signed(vec![name.to_owned()]).unwrap();
    let provider = rustls::crypto::CryptoProvider::get_default().unwrap();
    let der = rustls_pki_types::PrivateKeyDer::Pkcs8(generated.signing_key.serialize_der().into());
    Arc::new(CertifiedKey::from_der(vec![generated.cert.der().clone()], der, provider).unwrap())
}

fn resolve(c: &mut Criterion) {
    let mut certificates = Vec::new();
    let mut raw = HashMap::new();
    for i in 0..20 {
        let names = vec![
            format!("app{i}.example.com"),
            format!("www.app{i}.example.com"),
        ];
        let key = key(&names[0]);
        for name in &names {
            raw.insert(name.clone(), Arc::clone(&key));
        }
        certificates.push((names, key));
    }
    certificates.push((
        vec!["*.tenants.example.com".to_owned()],
        key("*.tenants.example.com"),
    ));
    let resolver = CertificateResolver::with_certificates(certificates);
    assert!(resolver.lookup("www.app7.example.com").is_some());
    assert!(resolver.lookup("acme.tenants.example.com").is_some());

    let mut group = c.benchmark_group("letsencrypt_resolve");
    group.bench_function("exact", |b| {
        b.iter(|| resolver.lookup(black_box("www.app7.example.com")))
    });
    group.bench_function("wildcard", |b| {
        b.iter(|| resolver.lookup(black_box("acme.tenants.example.com")))
    });
    group.bench_function("wildcard_mixed_case", |b| {
        b.iter(|| resolver.lookup(black_box("Acme.Tenants.Example.com")))
    });
    group.bench_function("raw_hashmap", |b| {
        b.iter(|| raw.get(black_box("www.app7.example.com")).cloned())
    });
    group.finish();
}

criterion_group!(benches, resolve);
criterion_main!(benches);
