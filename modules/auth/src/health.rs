//! The health check: the keys, and the session store.

use std::time::Duration;

use modular_core::health::{
    HealthContext, HealthError, HealthProvider, HealthReport, HealthStatus,
};
use serde_json::json;

use crate::service::Auth;
use crate::store::unix_now;

/// How long the store probe may take before the `sessions` component is unhealthy.
pub(crate) const STORE_PROBE_TIMEOUT: Duration = Duration::from_millis(300);

/// Two reports:
///
/// - `keys`: `unhealthy` when the signing key is past its `not_after` (new tokens would be
///   signed with an expired key); `degraded` when another key is past its `not_after`, or
///   the signing key expires within 7 days; `healthy` otherwise. Details: `signing_kid`,
///   `kids`, `retired` (retired keys still verifying).
/// - `sessions`: a write, read and delete of a probe key in the session store within 300 ms;
///   `unhealthy` when it fails or times out (sessions, refresh tokens and throttling all need
///   it). Details: `store` (`memory` or `shared`).
pub(crate) struct AuthHealth {
    pub(crate) auth: Auth,
}

#[async_trait::async_trait]
impl HealthProvider for AuthHealth {
    async fn health_check(&self, _ctx: &HealthContext) -> Result<Vec<HealthReport>, HealthError> {
        let mut reports = vec![self.keys(), self.sessions().await];
        let providers: Vec<_> = self.auth.state().oidc.values().cloned().collect();
        for provider in providers {
            reports.push(self.oidc(&provider).await);
        }
        Ok(reports)
    }
}

impl AuthHealth {
    fn keys(&self) -> HealthReport {
        let state = self.auth.state();
        let now = unix_now();
        let ring = &state.keys;
        let expired: Vec<&str> = ring
            .keys
            .values()
            .filter(|k| k.not_after.is_some_and(|t| t <= now))
            .map(|k| k.kid.as_str())
            .collect();
        let retired: Vec<&str> = ring
            .keys
            .values()
            .filter(|k| k.retired_at.is_some() && ring.verifying(&k.kid).is_ok())
            .map(|k| k.kid.as_str())
            .collect();
        let signing = ring.signing();
        let signing_expiry = signing.and_then(|k| k.not_after);
        let (status, message) = match signing {
            None => (HealthStatus::Unhealthy, "no signing key loaded".to_owned()),
            Some(k) if signing_expiry.is_some_and(|t| t <= now) => (
                HealthStatus::Unhealthy,
                format!("the signing key {} has expired", k.kid),
            ),
            Some(k) if !expired.is_empty() => (
                HealthStatus::Degraded,
                format!(
                    "keys past not_after: {} (signing with {})",
                    expired.join(", "),
                    k.kid
                ),
            ),
            Some(k) if signing_expiry.is_some_and(|t| t <= now + 7 * 24 * 3600) => (
                HealthStatus::Degraded,
                format!("the signing key {} expires within 7 days", k.kid),
            ),
            Some(k) => (
                HealthStatus::Healthy,
                format!("{} keys loaded, signing with {}", ring.keys.len(), k.kid),
            ),
        };
        HealthReport::new("auth", "keys", status)
            .with_message(message)
            .with_detail("signing_kid", ring.signing_kid())
            .with_detail("kids", json!(ring.kids()))
            .with_detail("retired", json!(retired))
    }

    /// Component `oidc.<provider>`: refreshes the JWKS first when it is older than the
    /// provider's `jwks_max_age` (or was never fetched), within 300 ms; `healthy` when the last
    /// refresh succeeded, `degraded` when it failed and cached keys are in use, `unhealthy`
    /// when no key is cached.
    async fn oidc(&self, provider: &crate::oidc::Provider) -> HealthReport {
        let stale = {
            let cache = provider
                .cache
                .jwks
                .lock()
                .unwrap_or_else(|p| p.into_inner());
            cache
                .fetched_at
                .is_none_or(|at| at.elapsed() >= provider.config.jwks_max_age)
        };
        if stale {
            match tokio::time::timeout(STORE_PROBE_TIMEOUT, self.auth.refresh_jwks(provider)).await
            {
                Ok(_) => {}
                Err(_) => {
                    let mut cache = provider
                        .cache
                        .jwks
                        .lock()
                        .unwrap_or_else(|p| p.into_inner());
                    cache.last_error = Some(format!(
                        "JWKS refresh did not finish within {STORE_PROBE_TIMEOUT:?}"
                    ));
                }
            }
        }
        let cache = provider
            .cache
            .jwks
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        let kids: Vec<&str> = cache
            .keys
            .iter()
            .filter_map(|k| k.common.key_id.as_deref())
            .collect();
        let (status, message) = match (&cache.last_error, cache.keys.is_empty()) {
            (_, true) => (
                HealthStatus::Unhealthy,
                format!(
                    "no usable JWKS keys: {}",
                    cache.last_error.as_deref().unwrap_or("none published")
                ),
            ),
            (Some(error), false) => (
                HealthStatus::Degraded,
                format!("{error}; {} cached keys in use", cache.keys.len()),
            ),
            (None, false) => (
                HealthStatus::Healthy,
                format!("JWKS fresh, {} keys", cache.keys.len()),
            ),
        };
        let age = cache.fetched_at.map(|at| at.elapsed().as_secs());
        HealthReport::new("auth", format!("oidc.{}", provider.name), status)
            .with_message(message)
            .with_detail("issuer", provider.config.issuer.clone())
            .with_detail("kids", json!(kids))
            .with_detail("jwks_age_seconds", json!(age))
    }

    async fn sessions(&self) -> HealthReport {
        let store = self.auth.store();
        let kind = self.auth.config().sessions.store;
        let key = format!("auth:health:{}", crate::tokens::random_id());
        let probe = async {
            store.set(&key, b"1", Some(Duration::from_secs(10))).await?;
            let read = store.get(&key).await?;
            store.delete(&key).await?;
            Ok::<bool, modular_core::kv::KvError>(read.as_deref() == Some(&b"1"[..]))
        };
        let (status, message) = match tokio::time::timeout(STORE_PROBE_TIMEOUT, probe).await {
            Ok(Ok(true)) => (HealthStatus::Healthy, "session store reachable".to_owned()),
            Ok(Ok(false)) => (
                HealthStatus::Unhealthy,
                "session store did not return the value written".to_owned(),
            ),
            Ok(Err(e)) => (
                HealthStatus::Unhealthy,
                format!("session store failed: {e}"),
            ),
            Err(_) => (
                HealthStatus::Unhealthy,
                format!("session store did not answer within {STORE_PROBE_TIMEOUT:?}"),
            ),
        };
        HealthReport::new("auth", "sessions", status)
            .with_message(message)
            .with_detail("store", json!(kind))
    }
}
