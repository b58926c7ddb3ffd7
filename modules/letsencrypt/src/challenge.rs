//! HTTP-01: the key authorizations of the challenges in flight, answered at
//! `/.well-known/acme-challenge/{token}` (a route the module adds to the core route
//! registry, so the router serves it). A token stays answerable until its order is done:
//! the CA validates more than once (pebble three times, from several vantage points).

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{MethodRouter, get};
use dashmap::DashMap;

use crate::resolver::CertificateResolver;

/// The route's path.
pub const CHALLENGE_PATH: &str = "/.well-known/acme-challenge/{token}";

/// Token → key authorization.
#[derive(Clone, Debug, Default)]
pub(crate) struct Http01Tokens {
    tokens: Arc<DashMap<String, String>>,
}

impl Http01Tokens {
    pub(crate) fn insert(&self, token: &str, key_authorization: &str) {
        self.tokens
            .insert(token.to_owned(), key_authorization.to_owned());
    }

    pub(crate) fn remove(&self, token: &str) {
        self.tokens.remove(token);
    }

    /// The route answering the tokens.
    pub(crate) fn route(&self) -> MethodRouter {
        get(answer).with_state(self.clone())
    }
}

async fn answer(State(tokens): State<Http01Tokens>, Path(token): Path<String>) -> Response {
    match tokens.tokens.get(&token) {
        Some(key_authorization) => (
            [(header::CONTENT_TYPE, "application/octet-stream")],
            key_authorization.clone(),
        )
            .into_response(),
        None => StatusCode::NOT_FOUND.into_response(),
    }
}

/// Removes its HTTP-01 tokens and TLS-ALPN-01 certificates when dropped, whatever way the
/// order ends.
#[derive(Debug)]
pub(crate) struct TokenGuard {
    tokens: Http01Tokens,
    resolver: Arc<CertificateResolver>,
    held: Vec<String>,
    alpn_names: Vec<String>,
}

impl TokenGuard {
    pub(crate) fn new(tokens: Http01Tokens, resolver: Arc<CertificateResolver>) -> Self {
        Self {
            tokens,
            resolver,
            held: Vec::new(),
            alpn_names: Vec::new(),
        }
    }

    pub(crate) fn publish(&mut self, token: &str, key_authorization: &str) {
        self.tokens.insert(token, key_authorization);
        self.held.push(token.to_owned());
    }

    /// Serves a TLS-ALPN-01 certificate for `name` proving `key_authorization`.
    pub(crate) fn publish_alpn(
        &mut self,
        name: &str,
        digest: &[u8],
    ) -> Result<(), crate::error::LetsEncryptError> {
        let key = alpn_certificate(name, digest)?;
        self.resolver.publish_challenge(name, key);
        self.alpn_names.push(name.to_owned());
        Ok(())
    }
}

impl Drop for TokenGuard {
    fn drop(&mut self) {
        for token in &self.held {
            self.tokens.remove(token);
        }
        for name in &self.alpn_names {
            self.resolver.withdraw_challenge(name);
        }
    }
}

/// The RFC 8737 certificate: self-signed, `name` as its only SAN, and the critical
/// `id-pe-acmeIdentifier` extension holding the SHA-256 of the key authorization.
fn alpn_certificate(
    name: &str,
    digest: &[u8],
) -> Result<Arc<rustls::sign::CertifiedKey>, crate::error::LetsEncryptError> {
    let key_error = |e: rcgen::Error| crate::error::LetsEncryptError::Key(e.to_string());
    let key = rcgen::KeyPair::generate().map_err(key_error)?;
    let mut params = rcgen::CertificateParams::new(vec![name.to_owned()]).map_err(key_error)?;
    params.custom_extensions = vec![rcgen::CustomExtension::new_acme_identifier(digest)];
    let cert = params.self_signed(&key).map_err(key_error)?;
    let provider = crate::certificate::provider()?;
    let der = rustls_pki_types::PrivateKeyDer::Pkcs8(key.serialize_der().into());
    // Not `CertifiedKey::from_der`: its key-matches-certificate check parses the certificate
    // with webpki, which refuses the critical acmeIdentifier extension this one must carry.
    let signing_key = provider
        .key_provider
        .load_private_key(der)
        .map_err(|e| crate::error::LetsEncryptError::Key(e.to_string()))?;
    Ok(Arc::new(rustls::sign::CertifiedKey::new(
        vec![cert.der().clone()],
        signing_key,
    )))
}
