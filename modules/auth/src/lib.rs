//! The **auth** module of modular: JWTs with rotating keys, argon2id passwords with
//! rehash-on-login and throttling, server-side sessions in the key-value store, axum
//! extractors and layers, and the roles that guard `/admin/*` and health details.
//!
//! See `docs/auth.md` for the guide; the sections below are the contract.
//!
//! # Configuration
//!
//! ```yaml
//! auth:
//!   issuer: https://api.example.com
//!   audience: [api]
//!   leeway: 30s
//!   access_ttl: 15m
//!   refresh_ttl: 7d
//!   signing_key: k2
//!   rotation_overlap: 15m
//!   keys:
//!     k1: { algorithm: HS256, secret: "at-least-thirty-two-bytes-of-secret!", retired: true }
//!     k2: { algorithm: ES256, private_key_file: keys/k2.pem }
//!     partner: { algorithm: RS256, public_key_file: keys/partner.pub.pem }
//!   passwords: { memory_kib: 19456, iterations: 2, parallelism: 1, min_length: 12 }
//!   throttle: { max_failures_per_account: 5, max_failures_per_client: 20, window: 15m }
//!   sessions:
//!     store: shared          # the cache module's key-value service; default memory
//!     idle_timeout: 30m
//!     absolute_lifetime: 12h
//!     cookie: { name: sid, secure: true, http_only: true, same_site: lax, path: / }
//!   admin_roles: [ops]
//!   health_details_roles: [sre]
//!   oidc:
//!     providers:
//!       corp:
//!         issuer: https://login.example.com
//!         client_id: modular-app
//!         client_secret: "${CORP_CLIENT_SECRET}"
//!         token_auth: client_secret_basic   # client_secret_post, client_secret_jwt, private_key_jwt
//!         redirect_url: https://app.example.com/auth/oidc/corp/callback
//!         scopes: [email]
//!         jwks_max_age: 5m
//!         discovery_max_age: 24h
//!         roles_claim: groups               # the session's roles (dotted path allowed)
//!         role_map: { corp-admins: [ops] }  # optional: only mapped values grant roles
//!         issue_tokens: false               # true: the callback also answers module tokens
//! ```
//!
//! # Dynamic fields
//!
//! Everything but `sessions.store` is dynamic (see [`AuthConfig`]). A reload builds the whole
//! new state aside (keys parsed from their PEM files, argon2 parameters checked) and swaps it
//! in; a key that does not parse fails the reload and the running keys stay.
//!
//! **Key rotation**: add the new key, point `signing_key` at it and mark the old one
//! `retired: true`. New tokens are signed with the new key at once; tokens signed with the
//! retired key verify until `rotation_overlap` after that reload; a key removed from `keys`
//! stops verifying at once. `key.rotated` is emitted.
//!
//! **Passwords**: a reload of `passwords.*` changes the parameters of new hashes; a login
//! whose stored hash has other parameters answers a `rehash` to store
//! ([`PasswordCheck::rehash`]).
//!
//! # Tokens
//!
//! [`Auth::issue`] gives an access and a refresh token; [`Auth::verify`] checks an access
//! token (key by `kid`, only the key's configured algorithm, signature, `exp`, `nbf`, `iss`,
//! `aud` with the leeway); [`Auth::refresh`] uses a refresh token up (a reused one revokes its
//! family: [`TokenError::RefreshReused`]). `GET /.well-known/jwks.json` publishes the public
//! keys (never HMAC secrets).
//!
//! # HTTP
//!
//! [`Authenticated`] extracts the caller (bearer token or session cookie);
//! [`Auth::require_role`], [`Auth::require_permission`] and [`Auth::require_authenticated`]
//! are layers answering `401` with `WWW-Authenticate` or `403` with JSON. The module registers
//! a [`RolePolicy`] as core's `AccessPolicy`, so a bearer token with a role in `admin_roles`
//! reaches `/admin/*` (and health details), one in `health_details_roles` health details,
//! besides the router's admin token.
//!
//! # OIDC login
//!
//! `GET /auth/oidc/{provider}/login` ([`OIDC_LOGIN_PATH`]) redirects to the provider with
//! `state`, `nonce` and a PKCE S256 challenge and sets a state cookie;
//! `GET /auth/oidc/{provider}/callback` ([`OIDC_CALLBACK_PATH`]) checks the state (single
//! use, bound to the cookie), exchanges the code with the verifier (client authentication
//! `client_secret_basic` by default, `client_secret_post`, a signed client assertion
//! with `client_secret_jwt` or `private_key_jwt`, or none for a public client),
//! verifies the ID token against the provider's JWKS (cached; refreshed once on an unknown
//! `kid`; asymmetric algorithms only; `iss`, `aud` contains `client_id`, `azp` when several
//! audiences or present, `exp`, `nonce`, `at_hash` when present), reads the user info and
//! creates a session for `<provider>:<sub>` with the roles read from `roles_claim` (mapped
//! through `role_map` when set). Discovery is fetched again after `discovery_max_age` and
//! when a JWKS fetch fails (a moved `jwks_uri` is followed). [`Auth::oidc_begin`] and [`Auth::oidc_finish`]
//! are the same flow without HTTP; [`OidcError`] says why a login failed. Providers are
//! dynamic (added, removed, secret rotated; the JWKS cache survives while the issuer
//! stays). Implemented over reqwest (redirects disabled) and jsonwebtoken, not the
//! `openidconnect` crate.
//!
//! # Health
//!
//! Component `keys`: unhealthy when the signing key is past `not_after`; degraded when
//! another key is, or the signing key expires within 7 days. Component `sessions`: a probe
//! write/read/delete in the store within 300 ms, unhealthy otherwise. Component
//! `oidc.<provider>`: the JWKS is refreshed when older than `jwks_max_age`; healthy when the
//! last refresh succeeded, degraded when it failed and cached keys are in use, unhealthy when
//! no key is cached.
//!
//! # Events
//!
//! `com.modular.auth.login.succeeded`, `.login.failed`, `.login.throttled` (account, client,
//! never the password; OIDC logins carry `method: oidc` and the provider), `.key.rotated` (previous_kid, kid), `.refresh.reuse_detected`
//! (subject, family), `.session.revoked`.
//!
//! # Metrics
//!
//! See [`metrics`]: `modular_auth_logins_total{outcome}`,
//! `modular_auth_token_verifications_total{outcome}`, `modular_auth_throttled_total{scope}`.
//!
//! # Features
//!
//! None. JWT crypto is aws-lc-rs (jsonwebtoken's `aws_lc_rs`), the workspace's one provider.
//! OIDC uses the workspace's reqwest (rustls) and sha2 for the PKCE challenge.

mod config;
mod error;
mod health;
mod http;
mod keys;
mod login;
pub mod metrics;
mod module;
mod oidc;
mod openapi;
mod passwords;
mod service;
mod sessions;
mod store;
mod tokens;

pub use config::{
    AuthConfig, CookieConfig, KeyConfig, OidcConfig, OidcProviderConfig, PasswordConfig,
    SessionConfig, StoreKind, ThrottleConfig,
};
pub use error::{AuthError, TokenError};
pub use http::{
    Authenticated, Guard, GuardService, JWKS_PATH, Principal, Rejection, Requirement, RolePolicy,
    Via,
};
pub use keys::{ALGORITHMS, KeyRing};
pub use login::{LoginAttempt, LoginSuccess};
pub use module::AuthModule;
pub use oidc::{OIDC_CALLBACK_PATH, OIDC_LOGIN_PATH, OidcError, OidcLogin, OidcRedirect};
pub use passwords::PasswordCheck;
pub use service::Auth;
pub use sessions::Session;
pub use store::MemoryStore;
pub use tokens::{Claims, TokenPair};
