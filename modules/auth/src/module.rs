//! [`AuthModule`]: builds the [`Auth`] service from the `auth` section, registers it, the
//! access policy, the JWKS route, the two-phase reload and the health check.

use std::sync::Arc;
use std::time::Duration;

use modular_core::health::{HealthAggregator, HealthProvider, ProviderOptions};
use modular_core::http::{AccessPolicy, RouteRegistry};
use modular_core::kv::KeyValue;
use modular_core::{
    BoxError, ConfigChange, FieldError, InitContext, Module, ModuleContext, PreparedReload,
    ReloadContext, Reloadable,
};

use crate::config::{AuthConfig, StoreKind};
use crate::error::AuthError;
use crate::health::AuthHealth;
use crate::http::{JWKS_PATH, RolePolicy};
use crate::service::{Auth, State};
use crate::store::MemoryStore;

/// The module's name, its section and its health registration.
pub(crate) const NAME: &str = "auth";

/// The health check reads memory and probes the store (300 ms).
const HEALTH_TIMEOUT: Duration = Duration::from_millis(500);

/// Parsing keys reads a few PEM files.
const RELOAD_TIMEOUT: Duration = Duration::from_secs(5);

/// The auth module, named `auth`.
#[derive(Debug, Default)]
pub struct AuthModule {
    auth: Option<Auth>,
}

impl AuthModule {
    /// The module; its keys and settings come from the `auth` section.
    pub fn new() -> Self {
        Self::default()
    }
}

pub(crate) fn provider_options(config: &AuthConfig) -> ProviderOptions {
    config.health.options(HEALTH_TIMEOUT)
}

fn describe(errors: Vec<FieldError>) -> BoxError {
    errors
        .iter()
        .map(|e| format!("auth.{}: {}", e.path, e.message))
        .collect::<Vec<_>>()
        .join("; ")
        .into()
}

#[async_trait::async_trait]
impl Module for AuthModule {
    fn name(&self) -> &str {
        NAME
    }

    async fn init(&mut self, ctx: &mut InitContext<'_>) -> Result<(), BoxError> {
        let handle = ctx.config::<AuthConfig>()?;
        let config = handle.get();
        // A shared store registered by a module initialised earlier is used now; otherwise
        // it is looked up again at start, after every module's init.
        let store: Arc<dyn KeyValue> =
            match (config.sessions.store, ctx.services().get::<dyn KeyValue>()) {
                (StoreKind::Shared, Some(shared)) => shared,
                _ => Arc::new(MemoryStore::new()),
            };
        let auth =
            Auth::build(Arc::clone(&config), store, Some(ctx.context())).map_err(describe)?;
        ctx.services().register(Arc::new(auth.clone()));
        ctx.services()
            .register::<dyn AccessPolicy>(Arc::new(RolePolicy::new(auth.clone())));
        RouteRegistry::shared(ctx.services()).add_with_paths(
            NAME,
            auth.jwks_router().merge(auth.oidc_router()),
            vec![
                JWKS_PATH.to_owned(),
                crate::oidc::OIDC_LOGIN_PATH.to_owned(),
                crate::oidc::OIDC_CALLBACK_PATH.to_owned(),
            ],
        );
        RouteRegistry::shared(ctx.services()).document(
            NAME,
            <crate::openapi::AuthApi as utoipa::OpenApi>::openapi(),
        );
        ctx.register_reloadable(Arc::new(AuthReloader {
            auth: auth.clone(),
            health: ctx.services().get::<HealthAggregator>(),
        }));
        ctx.register_health_provider(
            NAME,
            Arc::new(AuthHealth { auth: auth.clone() }) as Arc<dyn HealthProvider>,
            provider_options(&config),
        );
        tracing::info!(module = NAME, signing_kid = %auth.signing_kid(), "auth ready");
        self.auth = Some(auth);
        Ok(())
    }

    async fn start(&self, ctx: &ModuleContext) -> Result<(), BoxError> {
        let Some(auth) = &self.auth else {
            return Ok(());
        };
        if auth.config().sessions.store == StoreKind::Shared {
            let shared = ctx
                .services()
                .get::<dyn KeyValue>()
                .ok_or(AuthError::NoSharedStore)?;
            auth.set_store(shared);
        }
        Ok(())
    }
}

/// Builds the whole new state aside in `prepare` (every key parsed, retirement times carried
/// over) and swaps it in at commit; a key that fails to parse fails the reload and the
/// running keys keep signing and verifying.
#[derive(Debug)]
struct AuthReloader {
    auth: Auth,
    health: Option<Arc<HealthAggregator>>,
}

#[async_trait::async_trait]
impl Reloadable for AuthReloader {
    fn reload_timeout(&self) -> Duration {
        RELOAD_TIMEOUT
    }

    async fn prepare(
        &self,
        ctx: &ReloadContext,
        _changes: &[ConfigChange],
    ) -> Result<PreparedReload, BoxError> {
        let config = ctx
            .new_config::<AuthConfig>()
            .ok_or_else(|| AuthError::MissingSection {
                module: ctx.module().to_owned(),
            })?;
        let state =
            State::build(Arc::clone(&config), Some(&self.auth.state())).map_err(describe)?;
        let auth = self.auth.clone();
        let health = self.health.clone();
        Ok(PreparedReload::new(move || {
            auth.commit(state);
            if let Some(health) = &health {
                health.set_provider_options(NAME, provider_options(&config));
            }
        }))
    }
}
