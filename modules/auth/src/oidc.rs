//! OIDC / OAuth2 login: discovery, the authorization-code flow with PKCE (S256), state and
//! nonce, ID-token verification against the provider's JWKS (cached, refreshed on an unknown
//! `kid`), user info, and the two routes `GET /auth/oidc/{provider}/login` and
//! `GET /auth/oidc/{provider}/callback`.
//!
//! Implemented over the workspace's reqwest client (redirects disabled) and jsonwebtoken,
//! not the `openidconnect` crate (see `docs/auth.md`, "OIDC login").
//!
//! A login stores its pending state (provider, nonce, PKCE verifier) in the key-value store
//! under `auth:oidc:<state>` for 10 minutes; the callback takes it out (single use) and also
//! requires the state cookie set by the login redirect to match, so a callback URL replayed
//! or forged in another browser is refused.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::time::Instant;

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use jsonwebtoken::jwk::{Jwk, JwkSet};
use jsonwebtoken::{Algorithm, DecodingKey, Validation, decode, decode_header};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use sha2::Digest as _;

use crate::config::OidcProviderConfig;
use crate::service::Auth;
use crate::sessions::Session;

/// How long a started login may take to come back to the callback.
const PENDING_TTL: Duration = Duration::from_secs(600);

/// Each request to the issuer (discovery, JWKS, token, user info).
const ISSUER_TIMEOUT: Duration = Duration::from_secs(10);

/// The login route.
pub const OIDC_LOGIN_PATH: &str = "/auth/oidc/{provider}/login";
/// The callback route.
pub const OIDC_CALLBACK_PATH: &str = "/auth/oidc/{provider}/callback";

/// Algorithms accepted on ID tokens (asymmetric only: never `none`, never HMAC).
const ID_TOKEN_ALGORITHMS: [Algorithm; 9] = [
    Algorithm::RS256,
    Algorithm::RS384,
    Algorithm::RS512,
    Algorithm::PS256,
    Algorithm::PS384,
    Algorithm::PS512,
    Algorithm::ES256,
    Algorithm::ES384,
    Algorithm::EdDSA,
];

/// Why an OIDC login failed. Never carries a client secret, code, token or verifier.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum OidcError {
    /// No provider by that name is configured.
    #[error("unknown OIDC provider `{0}`")]
    UnknownProvider(String),
    /// The issuer could not be reached or answered badly.
    #[error("OIDC provider `{provider}`: {message}")]
    Issuer {
        /// The provider.
        provider: String,
        /// What failed (no secrets).
        message: String,
    },
    /// The callback's `state` is unknown, expired, already used or not this browser's.
    #[error("the login state is unknown, expired, already used or does not match this browser")]
    BadState,
    /// The provider answered the authorization request with an error.
    #[error("the provider refused the login: {0}")]
    Refused(String),
    /// The code exchange failed.
    #[error("the code exchange failed: {0}")]
    TokenExchange(String),
    /// The ID token did not verify.
    #[error("the ID token is invalid: {0}")]
    IdToken(String),
    /// The ID token's nonce is not the one of this login.
    #[error("the ID token's nonce does not match the login")]
    BadNonce,
    /// The session could not be created.
    #[error(transparent)]
    Auth(#[from] crate::AuthError),
}

impl OidcError {
    fn status(&self) -> StatusCode {
        match self {
            Self::UnknownProvider(_) => StatusCode::NOT_FOUND,
            Self::Issuer { .. } | Self::TokenExchange(_) => StatusCode::BAD_GATEWAY,
            Self::Auth(_) => StatusCode::SERVICE_UNAVAILABLE,
            _ => StatusCode::BAD_REQUEST,
        }
    }
}

/// The discovery document's fields used here.
#[derive(Clone, Debug, Deserialize)]
pub(crate) struct Discovery {
    issuer: String,
    authorization_endpoint: String,
    token_endpoint: String,
    jwks_uri: String,
    #[serde(default)]
    userinfo_endpoint: Option<String>,
}

/// The provider's cached JWKS and the outcome of its last refresh.
#[derive(Debug, Default)]
pub(crate) struct JwksCache {
    pub(crate) keys: Vec<Jwk>,
    pub(crate) fetched_at: Option<Instant>,
    pub(crate) last_error: Option<String>,
}

/// A fetched discovery document and when.
#[derive(Debug)]
struct CachedDiscovery {
    document: Arc<Discovery>,
    fetched_at: Instant,
}

/// What survives a reload while the issuer stays: discovery and the JWKS cache.
#[derive(Debug, Default)]
pub(crate) struct ProviderCache {
    discovery: Mutex<Option<CachedDiscovery>>,
    pub(crate) jwks: Mutex<JwksCache>,
    refresh: tokio::sync::Mutex<()>,
}

/// One configured provider.
pub(crate) struct Provider {
    pub(crate) name: String,
    pub(crate) config: OidcProviderConfig,
    pub(crate) cache: Arc<ProviderCache>,
}

impl fmt::Debug for Provider {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Provider")
            .field("name", &self.name)
            .field("issuer", &self.config.issuer)
            .field("client_id", &self.config.client_id)
            .finish_non_exhaustive()
    }
}

/// Builds the providers of a new state; a provider whose issuer is unchanged keeps its
/// discovery and JWKS cache (a rotated client secret does not drop the keys).
pub(crate) fn build_providers(
    config: &crate::config::OidcConfig,
    previous: Option<&BTreeMap<String, Arc<Provider>>>,
) -> BTreeMap<String, Arc<Provider>> {
    config
        .providers
        .iter()
        .map(|(name, p)| {
            let cache = previous
                .and_then(|prev| prev.get(name))
                .filter(|old| old.config.issuer == p.issuer)
                .map(|old| Arc::clone(&old.cache))
                .unwrap_or_default();
            (
                name.clone(),
                Arc::new(Provider {
                    name: name.clone(),
                    config: p.clone(),
                    cache,
                }),
            )
        })
        .collect()
}

/// The pending state of a started login.
#[derive(Serialize, Deserialize)]
struct Pending {
    provider: String,
    nonce: String,
    verifier: String,
}

/// A started login: where to send the browser, and the state to bind to it.
#[derive(Clone)]
pub struct OidcRedirect {
    /// The provider's authorization URL with every parameter.
    pub url: String,
    /// The `state` (also set as the state cookie by the login route).
    pub state: String,
}

impl fmt::Debug for OidcRedirect {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OidcRedirect").finish_non_exhaustive()
    }
}

/// A finished login.
#[derive(Clone, Debug)]
pub struct OidcLogin {
    /// The provider.
    pub provider: String,
    /// The session's subject: `<provider>:<sub>`.
    pub subject: String,
    /// The verified ID token's claims.
    pub claims: Value,
    /// The user info answer (when the provider has a user info endpoint).
    pub userinfo: Option<Value>,
    /// The session created for the login.
    pub session: Session,
    /// The module's access and refresh tokens for the subject, with the session's roles,
    /// when the provider has `issue_tokens: true`.
    pub tokens: Option<crate::TokenPair>,
}

#[derive(Deserialize)]
struct TokenResponse {
    #[serde(default)]
    access_token: Option<String>,
    #[serde(default)]
    id_token: Option<String>,
}

fn b64url(bytes: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// A PKCE verifier (two UUIDv4s: 244 random bits, 64 characters) and its S256 challenge.
fn pkce() -> (String, String) {
    let verifier = format!(
        "{}{}",
        crate::tokens::random_id(),
        crate::tokens::random_id()
    );
    let challenge = b64url(&sha2::Sha256::digest(verifier.as_bytes()));
    (verifier, challenge)
}

/// Constant-time equality for state and nonce.
fn same(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

pub(crate) fn http_client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(ISSUER_TIMEOUT)
        .build()
        .unwrap_or_default()
}

/// `application/x-www-form-urlencoded` encoding of one value (RFC 6749 §2.3.1 asks it for
/// the client id and secret before they go into HTTP Basic).
fn form_encode(value: &str) -> String {
    use std::fmt::Write as _;
    let mut out = String::with_capacity(value.len());
    for b in value.bytes() {
        match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'*' | b'-' | b'.' | b'_' => {
                out.push(char::from(b));
            }
            b' ' => out.push('+'),
            _ => {
                let _ = write!(out, "%{b:02X}");
            }
        }
    }
    out
}

/// OIDC Core §3.1.3.7: an ID token for several audiences must name this client as `azp`;
/// an `azp` present must be this client.
fn check_azp(claims: &Value, client_id: &str) -> Result<(), OidcError> {
    let several = claims
        .get("aud")
        .and_then(Value::as_array)
        .is_some_and(|aud| aud.len() > 1);
    match claims.get("azp") {
        Some(Value::String(azp)) if azp == client_id => Ok(()),
        Some(_) => Err(OidcError::IdToken(
            "the `azp` claim is not this client".to_owned(),
        )),
        None if several => Err(OidcError::IdToken(
            "an ID token for several audiences has no `azp` claim".to_owned(),
        )),
        None => Ok(()),
    }
}

/// OIDC Core §3.1.3.8 / §3.2.2.9: when the ID token carries `at_hash`, it must be the
/// left half of the access token's hash (the hash of the token's algorithm), base64url.
fn check_at_hash(
    claims: &Value,
    alg: Algorithm,
    access_token: Option<&str>,
) -> Result<(), OidcError> {
    let Some(expected) = claims.get("at_hash") else {
        return Ok(());
    };
    let bad =
        || OidcError::IdToken("the `at_hash` claim does not match the access token".to_owned());
    let (Some(expected), Some(access)) = (expected.as_str(), access_token) else {
        return Err(bad());
    };
    let digest: Vec<u8> = match alg {
        Algorithm::RS384 | Algorithm::PS384 | Algorithm::ES384 => {
            sha2::Sha384::digest(access.as_bytes()).to_vec()
        }
        Algorithm::RS512 | Algorithm::PS512 | Algorithm::EdDSA => {
            sha2::Sha512::digest(access.as_bytes()).to_vec()
        }
        _ => sha2::Sha256::digest(access.as_bytes()).to_vec(),
    };
    let actual = b64url(&digest[..digest.len() / 2]);
    if same(&actual, expected) {
        Ok(())
    } else {
        Err(bad())
    }
}

/// The value at a dotted path (`realm_access.roles`) of a JSON object.
fn claim_at<'a>(value: &'a Value, path: &str) -> Option<&'a Value> {
    path.split('.').try_fold(value, |v, part| v.get(part))
}

/// The session's roles: the values of `roles_claim` (ID token first, then user info), each
/// taken as a role or, with a `role_map`, mapped (unmapped values grant nothing).
fn session_roles(
    config: &OidcProviderConfig,
    claims: &Value,
    userinfo: Option<&Value>,
) -> Vec<String> {
    if config.roles_claim.is_empty() {
        return Vec::new();
    }
    let value = claim_at(claims, &config.roles_claim)
        .or_else(|| userinfo.and_then(|info| claim_at(info, &config.roles_claim)));
    let values: Vec<&str> = match value {
        Some(Value::String(one)) => vec![one.as_str()],
        Some(Value::Array(many)) => many.iter().filter_map(Value::as_str).collect(),
        _ => Vec::new(),
    };
    let mut roles: Vec<String> = Vec::new();
    for v in values {
        let granted: Vec<String> = if config.role_map.is_empty() {
            vec![v.to_owned()]
        } else {
            config.role_map.get(v).cloned().unwrap_or_default()
        };
        for role in granted {
            if !roles.contains(&role) {
                roles.push(role);
            }
        }
    }
    roles
}

fn pending_key(state: &str) -> String {
    format!("auth:oidc:{state}")
}

impl Auth {
    /// The configured OIDC provider names.
    pub fn oidc_providers(&self) -> Vec<String> {
        self.state().oidc.keys().cloned().collect()
    }

    pub(crate) fn oidc_provider(&self, name: &str) -> Result<Arc<Provider>, OidcError> {
        self.state()
            .oidc
            .get(name)
            .cloned()
            .ok_or_else(|| OidcError::UnknownProvider(name.to_owned()))
    }

    /// The provider's discovery document: the cached one while younger than
    /// `discovery_max_age` (and `force` is off), else fetched again. When a re-fetch fails,
    /// the cached document stays in use.
    async fn discovery(
        &self,
        provider: &Provider,
        force: bool,
    ) -> Result<Arc<Discovery>, OidcError> {
        let cached = provider.cache.discovery.lock().ok().and_then(|d| {
            d.as_ref()
                .map(|c| (Arc::clone(&c.document), c.fetched_at.elapsed()))
        });
        if let Some((document, age)) = &cached
            && !force
            && *age < provider.config.discovery_max_age
        {
            return Ok(Arc::clone(document));
        }
        match self.fetch_discovery(provider).await {
            Ok(document) => Ok(document),
            Err(e) => match cached {
                Some((document, _)) => {
                    tracing::warn!(module = "auth", provider = %provider.name, error = %e, "discovery re-fetch failed; the cached document stays");
                    Ok(document)
                }
                None => Err(e),
            },
        }
    }

    async fn fetch_discovery(&self, provider: &Provider) -> Result<Arc<Discovery>, OidcError> {
        let url = format!(
            "{}/.well-known/openid-configuration",
            provider.config.issuer.trim_end_matches('/')
        );
        let issuer_error = |message: String| OidcError::Issuer {
            provider: provider.name.clone(),
            message,
        };
        let response = self
            .inner
            .http
            .get(&url)
            .send()
            .await
            .map_err(|e| issuer_error(format!("discovery failed: {}", e.without_url())))?;
        if !response.status().is_success() {
            return Err(issuer_error(format!(
                "discovery answered {}",
                response.status()
            )));
        }
        let discovery: Discovery = response
            .json()
            .await
            .map_err(|e| issuer_error(format!("bad discovery document: {}", e.without_url())))?;
        if discovery.issuer != provider.config.issuer {
            return Err(issuer_error(format!(
                "discovery names issuer \"{}\", configured \"{}\"",
                discovery.issuer, provider.config.issuer
            )));
        }
        let discovery = Arc::new(discovery);
        if let Ok(mut slot) = provider.cache.discovery.lock() {
            *slot = Some(CachedDiscovery {
                document: Arc::clone(&discovery),
                fetched_at: Instant::now(),
            });
        }
        Ok(discovery)
    }

    /// Fetches the provider's JWKS now (discovery first when not cached). On failure the
    /// cached keys stay in use and the failure is recorded (health turns degraded); the
    /// number of keys cached on success.
    pub async fn oidc_refresh_jwks(&self, provider: &str) -> Result<usize, OidcError> {
        let provider = self.oidc_provider(provider)?;
        self.refresh_jwks(&provider).await
    }

    pub(crate) async fn refresh_jwks(&self, provider: &Provider) -> Result<usize, OidcError> {
        let _single_flight = provider.cache.refresh.lock().await;
        let outcome = async {
            let discovery = self.discovery(provider, false).await?;
            match self.fetch_jwks(provider, &discovery.jwks_uri).await {
                Ok(keys) => Ok(keys),
                Err(e) => {
                    // The issuer may have moved its JWKS: discover again, and when the
                    // document names another `jwks_uri`, fetch that one.
                    match self.discovery(provider, true).await {
                        Ok(fresh) if fresh.jwks_uri != discovery.jwks_uri => {
                            self.fetch_jwks(provider, &fresh.jwks_uri).await
                        }
                        _ => Err(e),
                    }
                }
            }
        }
        .await;
        let mut cache = provider
            .cache
            .jwks
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        match outcome {
            Ok(keys) => {
                let n = keys.len();
                cache.keys = keys;
                cache.fetched_at = Some(Instant::now());
                cache.last_error = None;
                tracing::debug!(module = "auth", provider = %provider.name, keys = n, "JWKS refreshed");
                Ok(n)
            }
            Err(e) => {
                tracing::warn!(module = "auth", provider = %provider.name, error = %e, "JWKS refresh failed; cached keys stay");
                cache.last_error = Some(e.to_string());
                Err(e)
            }
        }
    }

    async fn fetch_jwks(&self, provider: &Provider, uri: &str) -> Result<Vec<Jwk>, OidcError> {
        let issuer_error = |message: String| OidcError::Issuer {
            provider: provider.name.clone(),
            message,
        };
        let response = self
            .inner
            .http
            .get(uri)
            .send()
            .await
            .map_err(|e| issuer_error(format!("JWKS fetch failed: {}", e.without_url())))?;
        if !response.status().is_success() {
            return Err(issuer_error(format!("JWKS answered {}", response.status())));
        }
        let set: JwkSet = response
            .json()
            .await
            .map_err(|e| issuer_error(format!("bad JWKS: {}", e.without_url())))?;
        Ok(set.keys)
    }

    fn cached_key(provider: &Provider, kid: Option<&str>) -> Option<Jwk> {
        let cache = provider.cache.jwks.lock().ok()?;
        match kid {
            Some(kid) => cache
                .keys
                .iter()
                .find(|k| k.common.key_id.as_deref() == Some(kid))
                .cloned(),
            None if cache.keys.len() == 1 => cache.keys.first().cloned(),
            None => None,
        }
    }

    /// Starts a login at `provider`: stores state, nonce and PKCE verifier, and answers the
    /// authorization URL.
    pub async fn oidc_begin(&self, provider: &str) -> Result<OidcRedirect, OidcError> {
        let provider = self.oidc_provider(provider)?;
        let discovery = self.discovery(&provider, false).await?;
        let state = crate::tokens::random_id();
        let nonce = crate::tokens::random_id();
        let (verifier, challenge) = pkce();
        let pending = Pending {
            provider: provider.name.clone(),
            nonce: nonce.clone(),
            verifier,
        };
        let value = serde_json::to_vec(&pending).map_err(|e| OidcError::IdToken(e.to_string()))?;
        self.store()
            .set(&pending_key(&state), &value, Some(PENDING_TTL))
            .await
            .map_err(crate::AuthError::from)?;
        let mut scopes = vec!["openid".to_owned()];
        scopes.extend(
            provider
                .config
                .scopes
                .iter()
                .filter(|s| *s != "openid")
                .cloned(),
        );
        let mut url = reqwest::Url::parse(&discovery.authorization_endpoint).map_err(|e| {
            OidcError::Issuer {
                provider: provider.name.clone(),
                message: format!("bad authorization_endpoint: {e}"),
            }
        })?;
        url.query_pairs_mut()
            .append_pair("response_type", "code")
            .append_pair("client_id", &provider.config.client_id)
            .append_pair("redirect_uri", &provider.config.redirect_url)
            .append_pair("scope", &scopes.join(" "))
            .append_pair("state", &state)
            .append_pair("nonce", &nonce)
            .append_pair("code_challenge", &challenge)
            .append_pair("code_challenge_method", "S256");
        Ok(OidcRedirect {
            url: url.to_string(),
            state,
        })
    }

    /// Finishes a login: takes the pending state out (single use; `browser_state` is the
    /// state cookie and must match), exchanges the code with the PKCE verifier (the client
    /// authenticated by `token_auth`), verifies the ID token (JWKS key by `kid`, refreshed
    /// once when unknown; `iss`, `aud`, `azp`, `exp`, `nonce`, `at_hash` when present),
    /// reads the user info and creates a session for `<provider>:<sub>` with the roles of
    /// `roles_claim` (through `role_map` when set).
    pub async fn oidc_finish(
        &self,
        provider: &str,
        code: &str,
        state: &str,
        browser_state: Option<&str>,
    ) -> Result<OidcLogin, OidcError> {
        let outcome = self
            .oidc_finish_inner(provider, code, state, browser_state)
            .await;
        match &outcome {
            Ok(login) => {
                self.inner.metrics.login("succeeded");
                self.emit(
                    "login.succeeded",
                    json!({ "account": login.subject, "method": "oidc", "provider": provider }),
                );
            }
            Err(e) => {
                self.inner.metrics.login("failed");
                self.emit(
                    "login.failed",
                    json!({ "method": "oidc", "provider": provider, "reason": e.to_string() }),
                );
            }
        }
        outcome
    }

    async fn oidc_finish_inner(
        &self,
        provider: &str,
        code: &str,
        state: &str,
        browser_state: Option<&str>,
    ) -> Result<OidcLogin, OidcError> {
        let provider = self.oidc_provider(provider)?;
        if !browser_state.is_some_and(|b| same(b, state)) {
            return Err(OidcError::BadState);
        }
        let store = self.store();
        let key = pending_key(state);
        let raw = store
            .get(&key)
            .await
            .map_err(crate::AuthError::from)?
            .ok_or(OidcError::BadState)?;
        store.delete(&key).await.map_err(crate::AuthError::from)?;
        let pending: Pending = serde_json::from_slice(&raw).map_err(|_| OidcError::BadState)?;
        if pending.provider != provider.name {
            return Err(OidcError::BadState);
        }
        let discovery = self.discovery(&provider, false).await?;

        let mut form = vec![
            ("grant_type", "authorization_code"),
            ("code", code),
            ("redirect_uri", provider.config.redirect_url.as_str()),
            ("code_verifier", pending.verifier.as_str()),
        ];
        let mut request = self.inner.http.post(&discovery.token_endpoint);
        let assertion;
        match &provider.config.client_secret {
            _ if matches!(
                provider.config.token_auth.as_str(),
                "private_key_jwt" | "client_secret_jwt"
            ) =>
            {
                assertion = self.client_assertion(&provider, &discovery.token_endpoint)?;
                form.push(("client_id", provider.config.client_id.as_str()));
                form.push((
                    "client_assertion_type",
                    "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
                ));
                form.push(("client_assertion", assertion.as_str()));
            }
            Some(secret) if provider.config.token_auth == "client_secret_post" => {
                form.push(("client_id", provider.config.client_id.as_str()));
                form.push(("client_secret", secret.expose().as_str()));
            }
            Some(secret) => {
                // RFC 6749 §2.3.1: both form-urlencoded, then Basic.
                let credentials = format!(
                    "{}:{}",
                    form_encode(&provider.config.client_id),
                    form_encode(secret.expose())
                );
                let mut value = HeaderValue::from_str(&format!(
                    "Basic {}",
                    base64::engine::general_purpose::STANDARD.encode(credentials)
                ))
                .map_err(|_| OidcError::TokenExchange("unusable client credentials".to_owned()))?;
                value.set_sensitive(true);
                request = request.header(header::AUTHORIZATION, value);
            }
            None => form.push(("client_id", provider.config.client_id.as_str())),
        }
        let response = request
            .form(&form)
            .send()
            .await
            .map_err(|e| OidcError::TokenExchange(e.without_url().to_string()))?;
        let status = response.status();
        if !status.is_success() {
            let error = response
                .json::<Value>()
                .await
                .ok()
                .and_then(|v| v.get("error").and_then(Value::as_str).map(str::to_owned))
                .unwrap_or_default();
            return Err(OidcError::TokenExchange(format!(
                "the token endpoint answered {status} {error}"
            )));
        }
        let tokens: TokenResponse = response
            .json()
            .await
            .map_err(|e| OidcError::TokenExchange(format!("bad answer: {}", e.without_url())))?;
        let id_token = tokens
            .id_token
            .ok_or_else(|| OidcError::TokenExchange("no id_token in the answer".to_owned()))?;
        let (claims, alg) = self
            .verify_id_token(&provider, &discovery, &id_token)
            .await?;
        check_azp(&claims, &provider.config.client_id)?;
        check_at_hash(&claims, alg, tokens.access_token.as_deref())?;
        let nonce = claims.get("nonce").and_then(Value::as_str).unwrap_or("");
        if !same(nonce, &pending.nonce) {
            return Err(OidcError::BadNonce);
        }
        let sub = claims
            .get("sub")
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
            .ok_or_else(|| OidcError::IdToken("no `sub` claim".to_owned()))?
            .to_owned();
        let userinfo = match (&discovery.userinfo_endpoint, &tokens.access_token) {
            (Some(endpoint), Some(access)) => {
                let info: Value = self
                    .inner
                    .http
                    .get(endpoint)
                    .bearer_auth(access)
                    .send()
                    .await
                    .and_then(reqwest::Response::error_for_status)
                    .map_err(|e| OidcError::Issuer {
                        provider: provider.name.clone(),
                        message: format!("user info failed: {}", e.without_url()),
                    })?
                    .json()
                    .await
                    .map_err(|e| OidcError::Issuer {
                        provider: provider.name.clone(),
                        message: format!("bad user info: {}", e.without_url()),
                    })?;
                if info.get("sub").and_then(Value::as_str) != Some(sub.as_str()) {
                    return Err(OidcError::IdToken(
                        "the user info `sub` differs from the ID token's".to_owned(),
                    ));
                }
                Some(info)
            }
            _ => None,
        };
        let subject = format!("{}:{sub}", provider.name);
        let roles = session_roles(&provider.config, &claims, userinfo.as_ref());
        let session = self.create_session(&subject, &roles, None).await?;
        let tokens = if provider.config.issue_tokens {
            Some(
                self.issue(&subject, &roles, &[])
                    .map_err(crate::AuthError::from)?,
            )
        } else {
            None
        };
        Ok(OidcLogin {
            provider: provider.name.clone(),
            subject,
            claims,
            userinfo,
            session,
            tokens,
        })
    }

    /// A client assertion (RFC 7523 §3, OIDC Core §9): `iss` = `sub` = the client id, `aud`
    /// = the token endpoint, a fresh `jti`, valid 60 s; signed by `client_key`
    /// (`private_key_jwt`) or HS256 with the client secret (`client_secret_jwt`).
    fn client_assertion(&self, provider: &Provider, audience: &str) -> Result<String, OidcError> {
        let now = crate::store::unix_now();
        let claims = json!({
            "iss": provider.config.client_id,
            "sub": provider.config.client_id,
            "aud": audience,
            "jti": crate::tokens::random_id(),
            "iat": now,
            "exp": now + 60,
        });
        let unusable =
            |what: &str| OidcError::TokenExchange(format!("no client assertion: {what}"));
        let signed = if provider.config.token_auth == "private_key_jwt" {
            let state = self.state();
            let key = state
                .keys
                .keys
                .get(&provider.config.client_key)
                .ok_or_else(|| unusable("client_key is not in auth.keys"))?;
            let encoding = key
                .encoding
                .as_ref()
                .ok_or_else(|| unusable("client_key has no private half"))?;
            let mut header = jsonwebtoken::Header::new(key.algorithm);
            header.kid = Some(key.kid.clone());
            jsonwebtoken::encode(&header, &claims, encoding)
        } else {
            let secret = provider
                .config
                .client_secret
                .as_ref()
                .ok_or_else(|| unusable("no client_secret"))?;
            jsonwebtoken::encode(
                &jsonwebtoken::Header::new(Algorithm::HS256),
                &claims,
                &jsonwebtoken::EncodingKey::from_secret(secret.expose().as_bytes()),
            )
        };
        signed.map_err(|_| unusable("signing failed"))
    }

    async fn verify_id_token(
        &self,
        provider: &Provider,
        discovery: &Discovery,
        id_token: &str,
    ) -> Result<(Value, Algorithm), OidcError> {
        let header =
            decode_header(id_token).map_err(|_| OidcError::IdToken("malformed".to_owned()))?;
        if !ID_TOKEN_ALGORITHMS.contains(&header.alg) {
            return Err(OidcError::IdToken(format!(
                "algorithm {:?} is not accepted",
                header.alg
            )));
        }
        let kid = header.kid.as_deref();
        let jwk = match Self::cached_key(provider, kid) {
            Some(jwk) => jwk,
            None => {
                // Unknown kid: the issuer may have rotated; refresh once.
                let _ = self.refresh_jwks(provider).await;
                Self::cached_key(provider, kid).ok_or_else(|| {
                    OidcError::IdToken(format!(
                        "no key with kid {:?} in the provider's JWKS",
                        kid.unwrap_or("")
                    ))
                })?
            }
        };
        if let Some(alg) = jwk.common.key_algorithm
            && alg.to_string() != format!("{:?}", header.alg)
        {
            return Err(OidcError::IdToken(
                "the token's algorithm is not its key's".to_owned(),
            ));
        }
        let key = DecodingKey::from_jwk(&jwk)
            .map_err(|e| OidcError::IdToken(format!("unusable JWK: {e}")))?;
        let mut validation = Validation::new(header.alg);
        validation.set_issuer(&[&discovery.issuer]);
        validation.set_audience(&[&provider.config.client_id]);
        validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
        validation.leeway = self.config().leeway.as_secs();
        decode::<Value>(id_token, &key, &validation)
            .map(|data| (data.claims, header.alg))
            .map_err(|e| OidcError::IdToken(e.to_string()))
    }

    fn state_cookie_name(&self) -> String {
        format!("{}_oidc_state", self.config().sessions.cookie.name)
    }

    fn state_cookie(&self, value: &str, max_age: u64) -> String {
        let config = self.config();
        let mut cookie = format!(
            "{}={value}; Path=/auth/oidc; Max-Age={max_age}; HttpOnly; SameSite=Lax",
            self.state_cookie_name()
        );
        if config.sessions.cookie.secure {
            cookie.push_str("; Secure");
        }
        cookie
    }

    fn browser_state(&self, headers: &HeaderMap) -> Option<String> {
        let name = self.state_cookie_name();
        headers
            .get_all(header::COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(';'))
            .filter_map(|pair| pair.trim().split_once('='))
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v.to_owned())
    }

    /// The router serving `GET /auth/oidc/{provider}/login` (303 to the provider, with the
    /// state cookie) and `GET /auth/oidc/{provider}/callback` (code exchange; 200 with the
    /// session cookie and `{subject, provider, roles, claims, userinfo}`, or 4xx/502 with
    /// `{error}`).
    pub fn oidc_router(&self) -> axum::Router {
        axum::Router::new()
            .route(OIDC_LOGIN_PATH, axum::routing::get(login))
            .route(OIDC_CALLBACK_PATH, axum::routing::get(callback))
            .with_state(self.clone())
    }

    async fn login_route(&self, provider: &str) -> Response {
        match self.oidc_begin(provider).await {
            Ok(redirect) => {
                let mut response = StatusCode::SEE_OTHER.into_response();
                let headers = response.headers_mut();
                if let Ok(location) = HeaderValue::from_str(&redirect.url) {
                    headers.insert(header::LOCATION, location);
                }
                if let Ok(cookie) = HeaderValue::from_str(
                    &self.state_cookie(&redirect.state, PENDING_TTL.as_secs()),
                ) {
                    headers.append(header::SET_COOKIE, cookie);
                }
                response
            }
            Err(e) => error_response(&e),
        }
    }

    async fn callback_route(
        &self,
        provider: &str,
        query: &BTreeMap<String, String>,
        headers: &HeaderMap,
    ) -> Response {
        if let Some(error) = query.get("error") {
            return error_response(&OidcError::Refused(error.clone()));
        }
        let (Some(code), Some(state)) = (query.get("code"), query.get("state")) else {
            return error_response(&OidcError::BadState);
        };
        let browser = self.browser_state(headers);
        match self
            .oidc_finish(provider, code, state, browser.as_deref())
            .await
        {
            Ok(login) => {
                let mut body = json!({
                    "subject": login.subject,
                    "provider": login.provider,
                    "roles": login.session.roles,
                    "claims": login.claims,
                    "userinfo": login.userinfo,
                });
                if let Some(tokens) = &login.tokens {
                    body["access_token"] = json!(tokens.access_token);
                    body["refresh_token"] = json!(tokens.refresh_token);
                    body["token_type"] = json!("Bearer");
                    body["expires_in"] = json!(tokens.expires_in);
                }
                let mut response = axum::Json(body).into_response();
                // Tokens (when issued) and the session cookie must not be cached.
                response
                    .headers_mut()
                    .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
                let headers = response.headers_mut();
                for cookie in [
                    self.session_cookie(&login.session),
                    self.state_cookie("", 0),
                ] {
                    if let Ok(value) = HeaderValue::from_str(&cookie) {
                        headers.append(header::SET_COOKIE, value);
                    }
                }
                response
            }
            Err(e) => error_response(&e),
        }
    }
}

/// Starts a login at `provider`.
#[utoipa::path(
    get,
    path = "/auth/oidc/{provider}/login",
    tag = "auth",
    summary = "Start an OIDC login",
    params(("provider" = String, Path, description = "a configured provider's name")),
    responses(
        (status = 303, description = "to the provider's authorization endpoint, with the state cookie"),
        (status = 400, description = "the login cannot start", body = ErrorBody),
        (status = 404, description = "no such provider", body = ErrorBody),
        (status = 502, description = "the provider's discovery failed", body = ErrorBody),
        (status = 503, description = "the auth module cannot sign in now", body = ErrorBody),
    ),
)]
pub(crate) async fn login(State(auth): State<Auth>, Path(provider): Path<String>) -> Response {
    auth.login_route(&provider).await
}

/// Finishes a login: the provider redirected back with `code` and `state` (or `error`).
#[utoipa::path(
    get,
    path = "/auth/oidc/{provider}/callback",
    tag = "auth",
    summary = "Finish an OIDC login",
    description = "Exchanges the code; answers the session cookie and \
        `{subject, provider, roles, claims, userinfo}`, plus `access_token`, `refresh_token`, \
        `token_type` and `expires_in` when the provider has `issue_tokens`.",
    params(
        ("provider" = String, Path, description = "a configured provider's name"),
        ("code" = Option<String>, Query, description = "the authorization code"),
        ("state" = Option<String>, Query, description = "the state the login sent"),
        ("error" = Option<String>, Query, description = "the provider refused"),
    ),
    responses(
        (status = 200, description = "signed in, with the session cookie", body = Object),
        (status = 400, description = "a missing or wrong state, or a refusal", body = ErrorBody),
        (status = 404, description = "no such provider", body = ErrorBody),
        (status = 502, description = "the code exchange failed", body = ErrorBody),
        (status = 503, description = "the auth module cannot sign in now", body = ErrorBody),
    ),
)]
pub(crate) async fn callback(
    State(auth): State<Auth>,
    Path(provider): Path<String>,
    Query(query): Query<BTreeMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    auth.callback_route(&provider, &query, &headers).await
}

/// An error answer of the login endpoints.
#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct ErrorBody {
    /// What went wrong.
    error: String,
}

fn error_response(error: &OidcError) -> Response {
    (
        error.status(),
        axum::Json(ErrorBody {
            error: error.to_string(),
        }),
    )
        .into_response()
}
