//! [`Auth`]: the service the module registers: tokens, passwords, logins and sessions over one
//! swappable state.

use std::fmt;
use std::sync::Arc;

use arc_swap::ArcSwap;
use modular_core::kv::KeyValue;
use modular_core::{FieldError, ModuleContext};

use crate::config::AuthConfig;
use crate::keys::KeyRing;
use crate::passwords::Hasher;
use crate::store::MemoryStore;

/// Everything a reload replaces at once: the config, the parsed keys and the hasher.
#[derive(Debug)]
pub(crate) struct State {
    pub(crate) config: Arc<AuthConfig>,
    pub(crate) keys: KeyRing,
    pub(crate) hasher: Hasher,
    pub(crate) oidc: std::collections::BTreeMap<String, Arc<crate::oidc::Provider>>,
}

impl State {
    /// Builds the whole state aside; `previous` carries key retirement times.
    pub(crate) fn build(
        config: Arc<AuthConfig>,
        previous: Option<&State>,
    ) -> Result<Self, Vec<FieldError>> {
        let keys = KeyRing::build(&config, previous.map(|p| &p.keys))?;
        let hasher = Hasher::new(&config.passwords).map_err(|e| vec![e])?;
        let oidc = crate::oidc::build_providers(&config.oidc, previous.map(|p| &p.oidc));
        Ok(Self {
            config,
            keys,
            hasher,
            oidc,
        })
    }
}

/// The store handle (a box so it can sit in an `ArcSwap`).
pub(crate) struct StoreHandle(pub(crate) Arc<dyn KeyValue>);

/// The auth service: cheap to clone (one `Arc`), registered as `Arc<Auth>` by the module.
///
/// ```
/// use modular_auth::{Auth, AuthConfig, KeyConfig};
/// let mut config = AuthConfig::default();
/// config.signing_key = "k1".into();
/// config.keys.insert("k1".into(), KeyConfig {
///     algorithm: "HS256".into(),
///     secret: Some("0123456789abcdef0123456789abcdef".to_owned().into()),
///     ..KeyConfig::default()
/// });
/// let auth = Auth::new(config).unwrap();
/// let token = auth.issue_access("ada", &["ops".into()], &[]).unwrap();
/// let claims = auth.verify(&token).unwrap();
/// assert_eq!(claims.sub, "ada");
/// assert!(claims.roles.contains(&"ops".to_owned()));
/// ```
#[derive(Clone)]
pub struct Auth {
    pub(crate) inner: Arc<Inner>,
}

pub(crate) struct Inner {
    pub(crate) state: ArcSwap<State>,
    pub(crate) store: ArcSwap<StoreHandle>,
    pub(crate) context: Option<ModuleContext>,
    pub(crate) metrics: crate::metrics::Series,
    /// The client for OIDC issuers (redirects disabled).
    pub(crate) http: reqwest::Client,
}

impl fmt::Debug for Auth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = self.inner.state.load();
        f.debug_struct("Auth")
            .field("issuer", &state.config.issuer)
            .field("signing_key", &state.keys.signing_kid())
            .field("keys", &state.keys.kids())
            .finish_non_exhaustive()
    }
}

impl Auth {
    /// A standalone service over `config` with an in-memory store and no events (for tests,
    /// benches and tools); the module builds it with the application's context instead.
    pub fn new(config: AuthConfig) -> Result<Self, Vec<FieldError>> {
        Self::build(Arc::new(config), Arc::new(MemoryStore::new()), None)
    }

    pub(crate) fn build(
        config: Arc<AuthConfig>,
        store: Arc<dyn KeyValue>,
        context: Option<ModuleContext>,
    ) -> Result<Self, Vec<FieldError>> {
        let state = State::build(config, None)?;
        Ok(Self {
            inner: Arc::new(Inner {
                state: ArcSwap::from_pointee(state),
                store: ArcSwap::from_pointee(StoreHandle(store)),
                context,
                metrics: crate::metrics::Series::new(),
                http: crate::oidc::http_client(),
            }),
        })
    }

    /// The configuration in force.
    pub fn config(&self) -> Arc<AuthConfig> {
        Arc::clone(&self.inner.state.load().config)
    }

    /// The public keys as a JWK set (what `GET /.well-known/jwks.json` answers).
    pub fn jwks(&self) -> jsonwebtoken::jwk::JwkSet {
        self.inner.state.load().keys.jwks()
    }

    /// The signing key's `kid`.
    pub fn signing_kid(&self) -> String {
        self.inner.state.load().keys.signing_kid().to_owned()
    }

    pub(crate) fn state(&self) -> arc_swap::Guard<Arc<State>> {
        self.inner.state.load()
    }

    pub(crate) fn store(&self) -> Arc<dyn KeyValue> {
        Arc::clone(&self.inner.store.load().0)
    }

    pub(crate) fn set_store(&self, store: Arc<dyn KeyValue>) {
        self.inner.store.store(Arc::new(StoreHandle(store)));
    }

    /// Swaps in a state built aside (a reload's commit); emits `key.rotated` when the signing
    /// key changed.
    pub(crate) fn commit(&self, state: State) {
        let previous = self.inner.state.swap(Arc::new(state));
        let now = self.inner.state.load();
        if previous.keys.signing_kid() != now.keys.signing_kid() {
            tracing::info!(
                module = "auth",
                from = previous.keys.signing_kid(),
                to = now.keys.signing_kid(),
                "signing key rotated"
            );
            self.emit(
                "key.rotated",
                serde_json::json!({
                    "previous_kid": previous.keys.signing_kid(),
                    "kid": now.keys.signing_kid(),
                }),
            );
        }
    }

    pub(crate) fn emit(&self, noun_verb: &str, data: serde_json::Value) {
        if let Some(context) = &self.inner.context {
            context.emit(noun_verb, data);
        }
    }
}
