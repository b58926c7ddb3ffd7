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

/// Removes its tokens when dropped, whatever way the order ends.
#[derive(Debug)]
pub(crate) struct TokenGuard {
    tokens: Http01Tokens,
    held: Vec<String>,
}

impl TokenGuard {
    pub(crate) fn new(tokens: Http01Tokens) -> Self {
        Self {
            tokens,
            held: Vec::new(),
        }
    }

    pub(crate) fn publish(&mut self, token: &str, key_authorization: &str) {
        self.tokens.insert(token, key_authorization);
        self.held.push(token.to_owned());
    }
}

impl Drop for TokenGuard {
    fn drop(&mut self) {
        for token in &self.held {
            self.tokens.remove(token);
        }
    }
}
