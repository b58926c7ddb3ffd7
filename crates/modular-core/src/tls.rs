//! The certificate seam: rustls's own [`ResolvesServerCert`], registered in the
//! [`ServiceRegistry`] as `Arc<dyn ResolvesServerCert>` (optionally
//! under a name). The letsencrypt module registers one that answers per SNI name and swaps
//! certificates as it issues and renews them; the httpserver module serves with it when its
//! config says `tls.source: service` (and `tls.service: <name>` for a named one).
//!
//! ```
//! use std::sync::Arc;
//! use modular_core::ServiceRegistry;
//! use modular_core::tls::{self, ResolvesServerCert};
//!
//! #[derive(Debug)]
//! struct NoCertificate;
//! impl ResolvesServerCert for NoCertificate {
//!     fn resolve(
//!         &self,
//!         _hello: rustls::server::ClientHello<'_>,
//!     ) -> Option<Arc<rustls::sign::CertifiedKey>> {
//!         None
//!     }
//! }
//!
//! let registry = ServiceRegistry::new();
//! tls::register_resolver(&registry, None, Arc::new(NoCertificate));
//! assert!(tls::resolver(&registry, None).is_some());
//! assert!(tls::resolver(&registry, Some("other")).is_none());
//! ```

use std::sync::Arc;

pub use rustls::server::ResolvesServerCert;

use crate::ServiceRegistry;

/// Registers `resolver`, unnamed or under `name`.
pub fn register_resolver(
    registry: &ServiceRegistry,
    name: Option<&str>,
    resolver: Arc<dyn ResolvesServerCert>,
) {
    match name {
        Some(name) => {
            registry.register_named::<dyn ResolvesServerCert>(name, resolver);
        }
        None => {
            registry.register::<dyn ResolvesServerCert>(resolver);
        }
    }
}

/// The resolver registered unnamed or under `name`.
pub fn resolver(
    registry: &ServiceRegistry,
    name: Option<&str>,
) -> Option<Arc<dyn ResolvesServerCert>> {
    match name {
        Some(name) => registry.get_named::<dyn ResolvesServerCert>(name),
        None => registry.get::<dyn ResolvesServerCert>(),
    }
}
