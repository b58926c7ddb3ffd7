//! [`AuthConfig`]: the `auth` section.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use modular_core::health::ProviderConfig;
use modular_core::{DynamicConfig, FieldError, Secret};
use serde::{Deserialize, Serialize};

/// The `auth` configuration section.
///
/// | field | dynamic | what |
/// |---|---|---|
/// | `issuer` | yes | the `iss` of issued tokens, and the only `iss` accepted |
/// | `audience` | yes | accepted `aud` values; issued tokens carry the first |
/// | `leeway` | yes | clock skew allowed on `exp` and `nbf` (default 30s, at most 5m) |
/// | `access_ttl`, `refresh_ttl` | yes | lifetimes of issued access and refresh tokens |
/// | `signing_key` | yes | the `kid` that signs new tokens; must name a key that is not retired |
/// | `keys.<kid>` | yes | the key ring: `algorithm` (HS256/384/512, RS256, ES256, EdDSA), `secret` (HMAC) or `private_key_file` / `public_key_file` (PEM), `retired`, `not_after` |
/// | `rotation_overlap` | yes | how long a key marked `retired` keeps verifying after the reload that retired it |
/// | `passwords.*` | yes | argon2id parameters and the password policy |
/// | `throttle.*` | yes | failed-login limits per account and per client address |
/// | `sessions.store` | no | `memory` (default) or `shared` (the registry's key-value service, for example the cache module's Redis); chosen at start |
/// | `sessions.*` (others) | yes | idle and absolute lifetimes, cookie settings |
/// | `admin_roles`, `health_details_roles` | yes | roles granting `/admin/*` and health details through the access policy |
/// | `oidc.providers.<name>` | yes | OIDC login providers: `issuer`, `client_id`, `client_secret`, `token_auth`, `client_key`, `redirect_url`, `scopes`, `jwks_max_age`, `discovery_max_age`, `roles_claim`, `role_map`, `issue_tokens`; added, removed and changed (a rotated client secret) by reload, the JWKS cache kept while the issuer stays |
/// | `health.timeout`, `health.optional` | yes | the health registration's options |
///
/// Every dynamic field is applied by building the whole new state aside (the key ring reads
/// and parses its PEM files there) and swapping it in at commit.
///
/// ```yaml
/// auth:
///   issuer: https://api.example.com
///   audience: [api]
///   signing_key: k2
///   rotation_overlap: 15m
///   keys:
///     k1: { algorithm: HS256, secret: "${HMAC_SECRET_OF_AT_LEAST_32_BYTES}", retired: true }
///     k2: { algorithm: ES256, private_key_file: keys/k2.pem }
///   admin_roles: [ops]
///   health_details_roles: [ops, sre]
/// ```
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, DynamicConfig)]
#[serde(deny_unknown_fields, default)]
#[config(validate = "Self::validate_config")]
pub struct AuthConfig {
    /// `iss` of issued tokens; the one accepted.
    #[config(dynamic)]
    pub issuer: String,
    /// Accepted `aud` values; issued tokens carry the first.
    #[config(dynamic)]
    pub audience: Vec<String>,
    /// Clock skew allowed on `exp` and `nbf`.
    #[config(dynamic)]
    #[serde(with = "modular_core::humantime_serde")]
    pub leeway: Duration,
    /// Access token lifetime.
    #[config(dynamic)]
    #[serde(with = "modular_core::humantime_serde")]
    pub access_ttl: Duration,
    /// Refresh token lifetime.
    #[config(dynamic)]
    #[serde(with = "modular_core::humantime_serde")]
    pub refresh_ttl: Duration,
    /// The key that signs new tokens.
    #[config(dynamic)]
    pub signing_key: String,
    /// The key ring, by `kid`.
    #[config(dynamic)]
    pub keys: BTreeMap<String, KeyConfig>,
    /// How long a retired key keeps verifying.
    #[config(dynamic)]
    #[serde(with = "modular_core::humantime_serde")]
    pub rotation_overlap: Duration,
    /// Password hashing and policy.
    #[config(nested)]
    pub passwords: PasswordConfig,
    /// Failed-login throttling.
    #[config(nested)]
    pub throttle: ThrottleConfig,
    /// Server-side sessions.
    #[config(nested)]
    pub sessions: SessionConfig,
    /// Roles that grant `/admin/*`.
    #[config(dynamic)]
    pub admin_roles: Vec<String>,
    /// Roles that grant health details.
    #[config(dynamic)]
    pub health_details_roles: Vec<String>,
    /// OIDC / OAuth2 login providers.
    #[config(dynamic)]
    pub oidc: OidcConfig,
    /// Health registration.
    #[config(nested)]
    pub health: ProviderConfig,
}

impl Default for AuthConfig {
    fn default() -> Self {
        Self {
            issuer: "modular".to_owned(),
            audience: vec!["modular".to_owned()],
            leeway: Duration::from_secs(30),
            access_ttl: Duration::from_secs(15 * 60),
            refresh_ttl: Duration::from_secs(7 * 24 * 3600),
            signing_key: String::new(),
            keys: BTreeMap::new(),
            rotation_overlap: Duration::from_secs(15 * 60),
            passwords: PasswordConfig::default(),
            throttle: ThrottleConfig::default(),
            sessions: SessionConfig::default(),
            admin_roles: Vec::new(),
            health_details_roles: Vec::new(),
            oidc: OidcConfig::default(),
            health: ProviderConfig::default(),
        }
    }
}

/// One key of `auth.keys`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct KeyConfig {
    /// `HS256`, `HS384`, `HS512`, `RS256`, `ES256` or `EdDSA`: the only algorithm this key
    /// signs and verifies.
    pub algorithm: String,
    /// The HMAC secret (at least 32, 48 or 64 bytes for HS256, HS384, HS512).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub secret: Option<Secret<String>>,
    /// A PKCS#8 private key PEM (signs, and verifies with its public half).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub private_key_file: Option<PathBuf>,
    /// A public key PEM (verifies only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub public_key_file: Option<PathBuf>,
    /// Retired: verifies until `rotation_overlap` after the reload that retired it, never
    /// signs.
    pub retired: bool,
    /// Unix seconds after which the key is expired (health turns unhealthy when the signing
    /// key is, degraded for another key).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub not_after: Option<u64>,
}

/// `auth.passwords`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, DynamicConfig)]
#[serde(deny_unknown_fields, default)]
#[config(dynamic)]
pub struct PasswordConfig {
    /// argon2id memory in KiB (OWASP: 19456 = 19 MiB).
    pub memory_kib: u32,
    /// argon2id passes (OWASP: 2).
    pub iterations: u32,
    /// argon2id lanes (OWASP: 1).
    pub parallelism: u32,
    /// Minimum length in characters.
    pub min_length: usize,
    /// Maximum length in characters.
    pub max_length: usize,
    /// How many of the four classes (lower, upper, digit, other) a password needs.
    pub min_classes: u8,
    /// Reject the built-in list of the most common passwords.
    pub reject_common: bool,
}

impl Default for PasswordConfig {
    fn default() -> Self {
        Self {
            memory_kib: 19 * 1024,
            iterations: 2,
            parallelism: 1,
            min_length: 12,
            max_length: 128,
            min_classes: 1,
            reject_common: true,
        }
    }
}

/// `auth.throttle`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, DynamicConfig)]
#[serde(deny_unknown_fields, default)]
#[config(dynamic)]
pub struct ThrottleConfig {
    /// Failures per account within `window` before its logins are refused.
    pub max_failures_per_account: u32,
    /// Failures per client address within `window` before its logins are refused.
    pub max_failures_per_client: u32,
    /// The fixed window the failures are counted in.
    #[serde(with = "modular_core::humantime_serde")]
    pub window: Duration,
}

impl Default for ThrottleConfig {
    fn default() -> Self {
        Self {
            max_failures_per_account: 5,
            max_failures_per_client: 20,
            window: Duration::from_secs(15 * 60),
        }
    }
}

/// Where sessions, refresh-token state and throttling counters live.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StoreKind {
    /// In this process.
    #[default]
    Memory,
    /// The `Arc<dyn KeyValue>` in the service registry (the cache module).
    Shared,
}

/// `auth.sessions`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, DynamicConfig)]
#[serde(deny_unknown_fields, default)]
pub struct SessionConfig {
    /// The store (static: chosen at start).
    pub store: StoreKind,
    /// A session unused this long expires (sliding).
    #[config(dynamic)]
    #[serde(with = "modular_core::humantime_serde")]
    pub idle_timeout: Duration,
    /// A session expires this long after login, however used.
    #[config(dynamic)]
    #[serde(with = "modular_core::humantime_serde")]
    pub absolute_lifetime: Duration,
    /// The cookie.
    #[config(nested)]
    pub cookie: CookieConfig,
}

impl Default for SessionConfig {
    fn default() -> Self {
        Self {
            store: StoreKind::Memory,
            idle_timeout: Duration::from_secs(30 * 60),
            absolute_lifetime: Duration::from_secs(12 * 3600),
            cookie: CookieConfig::default(),
        }
    }
}

/// `auth.sessions.cookie`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, DynamicConfig)]
#[serde(deny_unknown_fields, default)]
#[config(dynamic)]
pub struct CookieConfig {
    /// Cookie name.
    pub name: String,
    /// `Secure`.
    pub secure: bool,
    /// `HttpOnly`.
    pub http_only: bool,
    /// `SameSite`: `strict`, `lax` or `none` (`none` needs `secure`).
    pub same_site: String,
    /// `Domain`, when set.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub domain: Option<String>,
    /// `Path`.
    pub path: String,
}

impl Default for CookieConfig {
    fn default() -> Self {
        Self {
            name: "modular_session".to_owned(),
            secure: true,
            http_only: true,
            same_site: "lax".to_owned(),
            domain: None,
            path: "/".to_owned(),
        }
    }
}

/// `auth.oidc`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct OidcConfig {
    /// The providers by name (the `{provider}` of `/auth/oidc/{provider}/login`).
    pub providers: BTreeMap<String, OidcProviderConfig>,
}

/// One provider of `auth.oidc.providers`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct OidcProviderConfig {
    /// The issuer URL; discovery is `<issuer>/.well-known/openid-configuration` and the ID
    /// token's `iss` must equal it.
    pub issuer: String,
    /// The client id (required; the ID token's `aud` must contain it).
    pub client_id: String,
    /// The client secret; none for a public client, which relies on PKCE alone.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_secret: Option<Secret<String>>,
    /// How the client authenticates at the token endpoint (OIDC Core §9):
    /// `client_secret_basic` (default: HTTP Basic with the form-encoded client id and
    /// secret), `client_secret_post` (both in the form body), `client_secret_jwt` (an HS256
    /// assertion keyed by the secret, which must then be at least 32 bytes) or
    /// `private_key_jwt` (an assertion signed by `client_key`). Without a secret (and not
    /// `private_key_jwt`) the client is public: `client_id` in the form, PKCE alone.
    pub token_auth: String,
    /// For `private_key_jwt`: the `kid` of an asymmetric key of `auth.keys` with a private
    /// half (`private_key_file`) that signs the client assertion; the provider verifies it
    /// with the public key, which `GET /.well-known/jwks.json` publishes.
    pub client_key: String,
    /// The callback URL registered at the provider (`.../auth/oidc/<name>/callback`).
    pub redirect_url: String,
    /// Scopes requested; `openid` is always added.
    pub scopes: Vec<String>,
    /// How old the cached JWKS may get before the health check refreshes it (0: at every
    /// check). A token with an unknown `kid` refreshes it at once.
    #[serde(with = "modular_core::humantime_serde")]
    pub jwks_max_age: Duration,
    /// How old the cached discovery document may get before it is fetched again (at the next
    /// JWKS refresh or login); a JWKS fetch that fails also drops it, so a moved `jwks_uri`
    /// is found again.
    #[serde(with = "modular_core::humantime_serde")]
    pub discovery_max_age: Duration,
    /// A claim of the ID token (a dotted path into nested objects, e.g.
    /// `realm_access.roles`; the user info answer when the ID token lacks it) whose value (a
    /// string or an array of strings) gives the session's roles. Empty (default): the
    /// session has no roles.
    pub roles_claim: String,
    /// When not empty, only these claim values grant roles, each the roles listed for it
    /// (`{corp-admins: [ops]}`): a provider's group names are then never taken as roles
    /// directly. Empty: each claim value is a role as it is.
    pub role_map: BTreeMap<String, Vec<String>>,
    /// Besides the session, the callback issues the module's own access and refresh tokens
    /// for `<provider>:<sub>` with the session's roles (for API clients; default off).
    pub issue_tokens: bool,
}

impl Default for OidcProviderConfig {
    fn default() -> Self {
        Self {
            issuer: String::new(),
            client_id: String::new(),
            client_secret: None,
            redirect_url: String::new(),
            scopes: vec![
                "openid".to_owned(),
                "profile".to_owned(),
                "email".to_owned(),
            ],
            jwks_max_age: Duration::from_secs(300),
            token_auth: "client_secret_basic".to_owned(),
            client_key: String::new(),
            discovery_max_age: Duration::from_secs(24 * 3600),
            roles_claim: String::new(),
            role_map: BTreeMap::new(),
            issue_tokens: false,
        }
    }
}

fn is_http_url(url: &str) -> bool {
    (url.starts_with("https://") || url.starts_with("http://"))
        && reqwest::Url::parse(url).is_ok_and(|u| u.host().is_some())
}

impl AuthConfig {
    /// Everything, including that every key parses (PEM files are read): each error with its
    /// path; a secret's value never appears in a message.
    fn validate_config(&self) -> Result<(), Vec<FieldError>> {
        let mut errors = Vec::new();
        if self.issuer.is_empty() {
            errors.push(FieldError::new("issuer", "must not be empty"));
        }
        if self.audience.is_empty() {
            errors.push(FieldError::new(
                "audience",
                "must name at least one audience",
            ));
        }
        if self.leeway > Duration::from_secs(300) {
            errors.push(FieldError::new("leeway", "must be at most 5m"));
        }
        for (path, ttl) in [
            ("access_ttl", self.access_ttl),
            ("refresh_ttl", self.refresh_ttl),
        ] {
            if ttl < Duration::from_secs(1) {
                errors.push(FieldError::new(path, "must be at least 1s"));
            }
        }
        match crate::keys::KeyRing::check(self) {
            Ok(()) => {}
            Err(problems) => errors.extend(problems),
        }
        let p = &self.passwords;
        if let Err(e) = argon2::Params::new(p.memory_kib, p.iterations, p.parallelism, None) {
            errors.push(FieldError::new(
                "passwords",
                format!("invalid argon2id parameters (memory_kib {}, iterations {}, parallelism {}): {e}", p.memory_kib, p.iterations, p.parallelism),
            ));
        }
        if p.min_length == 0 || p.min_length > p.max_length {
            errors.push(FieldError::new(
                "passwords.min_length",
                format!(
                    "must be between 1 and max_length ({}), got {}",
                    p.max_length, p.min_length
                ),
            ));
        }
        if p.min_classes > 4 {
            errors.push(FieldError::new(
                "passwords.min_classes",
                format!("must be between 0 and 4, got {}", p.min_classes),
            ));
        }
        let t = &self.throttle;
        if t.max_failures_per_account == 0 {
            errors.push(FieldError::new(
                "throttle.max_failures_per_account",
                "must be > 0, got 0",
            ));
        }
        if t.max_failures_per_client == 0 {
            errors.push(FieldError::new(
                "throttle.max_failures_per_client",
                "must be > 0, got 0",
            ));
        }
        if t.window < Duration::from_secs(1) {
            errors.push(FieldError::new("throttle.window", "must be at least 1s"));
        }
        let s = &self.sessions;
        if s.idle_timeout < Duration::from_secs(1) {
            errors.push(FieldError::new(
                "sessions.idle_timeout",
                "must be at least 1s",
            ));
        }
        if s.absolute_lifetime < s.idle_timeout {
            errors.push(FieldError::new(
                "sessions.absolute_lifetime",
                "must be at least sessions.idle_timeout",
            ));
        }
        let c = &s.cookie;
        if c.name.is_empty()
            || !c
                .name
                .chars()
                .all(|ch| ch.is_ascii_alphanumeric() || "-_.".contains(ch))
        {
            errors.push(FieldError::new(
                "sessions.cookie.name",
                format!("not a cookie name: \"{}\"", c.name),
            ));
        }
        match c.same_site.as_str() {
            "strict" | "lax" => {}
            "none" if !c.secure => errors.push(FieldError::new(
                "sessions.cookie.same_site",
                "\"none\" needs sessions.cookie.secure: true",
            )),
            "none" => {}
            other => errors.push(FieldError::new(
                "sessions.cookie.same_site",
                format!("expected strict, lax or none, got \"{other}\""),
            )),
        }
        if !c.path.starts_with('/') {
            errors.push(FieldError::new(
                "sessions.cookie.path",
                format!("must start with /, got \"{}\"", c.path),
            ));
        }
        for (name, p) in &self.oidc.providers {
            let path = |field: &str| format!("oidc.providers.{name}.{field}");
            if name.is_empty()
                || !name
                    .chars()
                    .all(|ch| ch.is_ascii_alphanumeric() || "-_".contains(ch))
            {
                errors.push(FieldError::new(
                    format!("oidc.providers.{name}"),
                    "a provider name is letters, digits, - and _",
                ));
            }
            if !is_http_url(&p.issuer) {
                errors.push(FieldError::new(
                    path("issuer"),
                    format!("must be an http(s) URL, got \"{}\"", p.issuer),
                ));
            }
            if p.client_id.is_empty() {
                errors.push(FieldError::new(path("client_id"), "must not be empty"));
            }
            if p.client_secret
                .as_ref()
                .is_some_and(|s| s.expose().is_empty())
            {
                errors.push(FieldError::new(
                    path("client_secret"),
                    "must not be empty (leave it out for a public client)",
                ));
            }
            match p.token_auth.as_str() {
                "client_secret_basic" | "client_secret_post" => {}
                "client_secret_jwt" => {
                    if p.client_secret.as_ref().is_none_or(|s| s.expose().len() < 32) {
                        errors.push(FieldError::new(
                            path("client_secret"),
                            "client_secret_jwt needs a client_secret of at least 32 bytes (HS256)",
                        ));
                    }
                }
                "private_key_jwt" => match self.keys.get(&p.client_key) {
                    None => errors.push(FieldError::new(
                        path("client_key"),
                        format!(
                            "private_key_jwt needs the kid of a key in auth.keys, got \"{}\"",
                            p.client_key
                        ),
                    )),
                    Some(key) if key.private_key_file.is_none() => {
                        errors.push(FieldError::new(
                            path("client_key"),
                            format!(
                                "key \"{}\" has no private_key_file (private_key_jwt signs with an asymmetric private key)",
                                p.client_key
                            ),
                        ));
                    }
                    Some(_) => {}
                },
                other => errors.push(FieldError::new(
                    path("token_auth"),
                    format!(
                        "expected client_secret_basic, client_secret_post, client_secret_jwt or private_key_jwt, got \"{other}\""
                    ),
                )),
            }
            if !p.role_map.is_empty() && p.roles_claim.is_empty() {
                errors.push(FieldError::new(
                    path("role_map"),
                    "needs roles_claim (the claim whose values it maps)",
                ));
            }
            if !is_http_url(&p.redirect_url) {
                errors.push(FieldError::new(
                    path("redirect_url"),
                    format!("must be an http(s) URL, got \"{}\"", p.redirect_url),
                ));
            }
        }
        FieldError::collect(errors)
    }
}
