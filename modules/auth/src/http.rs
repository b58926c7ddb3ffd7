//! axum integration: the [`Authenticated`] extractor, the [`Guard`] layer
//! ([`Auth::require_authenticated`], [`Auth::require_role`], [`Auth::require_permission`]),
//! the JWKS route, and the [`AccessPolicy`] that grants `/admin/*` and health details by role.
//!
//! A request authenticates with `Authorization: Bearer <access token>` or, failing that, the
//! session cookie. Refusals: `401` with `WWW-Authenticate: Bearer realm="modular"` (plus
//! `error="invalid_token"` when a token was sent and refused) and a JSON body; `403` with a
//! JSON body naming what was required.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use axum::Json;
use axum::body::Body;
use axum::extract::FromRequestParts;
use axum::http::header::{AUTHORIZATION, COOKIE, WWW_AUTHENTICATE};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, Request, StatusCode};
use axum::response::{IntoResponse, Response};
use modular_core::http::{AccessPolicy, Decision, Right};
use serde_json::json;

use crate::error::TokenError;
use crate::service::Auth;
use crate::tokens::Claims;

/// Who made the request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Principal {
    /// The account.
    pub subject: String,
    /// Roles.
    pub roles: Vec<String>,
    /// Permissions.
    pub permissions: Vec<String>,
    /// How it authenticated.
    pub via: Via,
}

/// How a [`Principal`] authenticated.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Via {
    /// A bearer access token.
    Bearer,
    /// The session cookie.
    Session,
}

impl Principal {
    fn from_claims(claims: Claims) -> Self {
        Self {
            subject: claims.sub,
            roles: claims.roles,
            permissions: claims.permissions,
            via: Via::Bearer,
        }
    }

    /// Whether the principal has `role`.
    pub fn has_role(&self, role: &str) -> bool {
        self.roles.iter().any(|r| r == role)
    }

    /// Whether the principal has `permission`.
    pub fn has_permission(&self, permission: &str) -> bool {
        self.permissions.iter().any(|p| p == permission)
    }
}

/// Why a request was refused.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Rejection {
    /// No credentials (`401`).
    Missing,
    /// A token or session that does not verify (`401`, `error="invalid_token"`).
    Invalid(String),
    /// Authenticated without the required role or permission (`403`).
    Forbidden {
        /// `role` or `permission`.
        kind: &'static str,
        /// Its name.
        required: String,
    },
    /// The auth service is not reachable from the request (no [`Auth::layer`]) or the
    /// session store failed (`500` / `503`).
    Unavailable(String),
}

impl IntoResponse for Rejection {
    fn into_response(self) -> Response {
        let challenge = |error: Option<&str>| {
            let value = match error {
                Some(e) => format!(
                    "Bearer realm=\"modular\", error=\"invalid_token\", error_description=\"{e}\""
                ),
                None => "Bearer realm=\"modular\"".to_owned(),
            };
            HeaderValue::from_str(&value).unwrap_or(HeaderValue::from_static("Bearer"))
        };
        match self {
            Self::Missing => {
                let mut r = (
                    StatusCode::UNAUTHORIZED,
                    Json(json!({ "error": "unauthenticated", "message": "credentials required" })),
                )
                    .into_response();
                r.headers_mut().insert(WWW_AUTHENTICATE, challenge(None));
                r
            }
            Self::Invalid(why) => {
                let mut r = (
                    StatusCode::UNAUTHORIZED,
                    Json(json!({ "error": "invalid_token", "message": why })),
                )
                    .into_response();
                r.headers_mut().insert(WWW_AUTHENTICATE, challenge(Some(&why)));
                r
            }
            Self::Forbidden { kind, required } => (
                StatusCode::FORBIDDEN,
                Json(json!({ "error": "forbidden", "message": format!("requires {kind} {required}"), kind: required })),
            )
                .into_response(),
            Self::Unavailable(why) => (
                StatusCode::SERVICE_UNAVAILABLE,
                Json(json!({ "error": "unavailable", "message": why })),
            )
                .into_response(),
        }
    }
}

/// The bearer token of `Authorization`, when there is one.
pub(crate) fn bearer(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}

impl Auth {
    /// Authenticates a request's headers: the bearer token, else the session cookie.
    pub async fn authenticate(&self, headers: &HeaderMap) -> Result<Principal, Rejection> {
        if let Some(token) = bearer(headers) {
            return self
                .verify(token)
                .map(Principal::from_claims)
                .map_err(|e: TokenError| Rejection::Invalid(e.to_string()));
        }
        let cookies = headers
            .get_all(COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .collect::<Vec<_>>()
            .join("; ");
        let Some(id) = self.session_id_from_cookies(&cookies) else {
            return Err(Rejection::Missing);
        };
        match self.session(&id).await {
            Ok(Some(session)) => Ok(Principal {
                subject: session.subject,
                roles: session.roles,
                permissions: Vec::new(),
                via: Via::Session,
            }),
            Ok(None) => Err(Rejection::Invalid(
                "the session is unknown or expired".to_owned(),
            )),
            Err(e) => Err(Rejection::Unavailable(e.to_string())),
        }
    }

    /// A layer that puts this service in each request's extensions, for [`Authenticated`].
    pub fn layer(&self) -> axum::Extension<Auth> {
        axum::Extension(self.clone())
    }

    /// A layer refusing unauthenticated requests (`401`).
    pub fn require_authenticated(&self) -> Guard {
        Guard::new(self.clone(), Requirement::Authenticated)
    }

    /// A layer refusing requests without `role` (`401` / `403`).
    pub fn require_role(&self, role: impl Into<String>) -> Guard {
        Guard::new(self.clone(), Requirement::Role(role.into()))
    }

    /// A layer refusing requests without `permission` (`401` / `403`).
    pub fn require_permission(&self, permission: impl Into<String>) -> Guard {
        Guard::new(self.clone(), Requirement::Permission(permission.into()))
    }

    /// The router serving `GET /.well-known/jwks.json` (the public keys; HMAC keys never).
    pub fn jwks_router(&self) -> axum::Router {
        axum::Router::new()
            .route(JWKS_PATH, axum::routing::get(jwks))
            .with_state(self.clone())
    }
}

/// Answers the JWKS, cacheable for a minute.
#[utoipa::path(
    get,
    path = "/.well-known/jwks.json",
    tag = "auth",
    summary = "The public signing keys",
    description = "A JSON Web Key Set (RFC 7517) of the asymmetric signing keys; HMAC keys never \
        appear. `Cache-Control: max-age=60`.",
    responses((status = 200, description = "the key set", body = Object)),
)]
pub(crate) async fn jwks(axum::extract::State(auth): axum::extract::State<Auth>) -> Response {
    let mut r = Json(auth.jwks()).into_response();
    r.headers_mut().insert(
        axum::http::header::CACHE_CONTROL,
        HeaderValue::from_static("max-age=60"),
    );
    r
}

/// Where the JWKS is served.
pub const JWKS_PATH: &str = "/.well-known/jwks.json";

/// The authenticated caller, as an extractor: the [`Principal`] a [`Guard`] already put in the
/// request, else authenticated here through the [`Auth`] in the extensions
/// ([`Auth::layer`]).
#[derive(Clone, Debug)]
pub struct Authenticated(pub Principal);

impl<S: Send + Sync> FromRequestParts<S> for Authenticated {
    type Rejection = Rejection;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        if let Some(principal) = parts.extensions.get::<Principal>() {
            return Ok(Self(principal.clone()));
        }
        let auth =
            parts.extensions.get::<Auth>().cloned().ok_or_else(|| {
                Rejection::Unavailable("the auth layer is not installed".to_owned())
            })?;
        let principal = auth.authenticate(&parts.headers).await?;
        parts.extensions.insert(principal.clone());
        Ok(Self(principal))
    }
}

/// What a [`Guard`] requires.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Requirement {
    /// Any authenticated caller.
    Authenticated,
    /// A role.
    Role(String),
    /// A permission.
    Permission(String),
}

/// A tower layer (and its service) that authenticates each request and checks a
/// [`Requirement`] before the inner service runs; the [`Principal`] is left in the request's
/// extensions for handlers ([`Authenticated`]).
#[derive(Clone, Debug)]
pub struct Guard {
    auth: Auth,
    requirement: Arc<Requirement>,
}

impl Guard {
    fn new(auth: Auth, requirement: Requirement) -> Self {
        Self {
            auth,
            requirement: Arc::new(requirement),
        }
    }

    fn check(&self, principal: &Principal) -> Result<(), Rejection> {
        match &*self.requirement {
            Requirement::Authenticated => Ok(()),
            Requirement::Role(role) if principal.has_role(role) => Ok(()),
            Requirement::Role(role) => Err(Rejection::Forbidden {
                kind: "role",
                required: role.clone(),
            }),
            Requirement::Permission(p) if principal.has_permission(p) => Ok(()),
            Requirement::Permission(p) => Err(Rejection::Forbidden {
                kind: "permission",
                required: p.clone(),
            }),
        }
    }
}

impl<S> tower::Layer<S> for Guard {
    type Service = GuardService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        GuardService {
            guard: self.clone(),
            inner,
        }
    }
}

/// The service of [`Guard`].
#[derive(Clone, Debug)]
pub struct GuardService<S> {
    guard: Guard,
    inner: S,
}

impl<S> tower::Service<Request<Body>> for GuardService<S>
where
    S: tower::Service<Request<Body>, Response = Response, Error = Infallible>
        + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
{
    type Response = Response;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Response, Infallible>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: Request<Body>) -> Self::Future {
        let guard = self.guard.clone();
        // The clone that was polled ready serves this request; the fresh clone waits.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        Box::pin(async move {
            let principal = match guard.auth.authenticate(request.headers()).await {
                Ok(p) => p,
                Err(rejection) => return Ok(rejection.into_response()),
            };
            if let Err(rejection) = guard.check(&principal) {
                return Ok(rejection.into_response());
            }
            request.extensions_mut().insert(principal);
            request.extensions_mut().insert(guard.auth.clone());
            inner.call(request).await
        })
    }
}

/// The access policy the module registers: a bearer access token whose roles meet
/// `admin_roles` (for [`Right::Admin`]) or `health_details_roles` (for
/// [`Right::HealthDetails`], which `admin_roles` grant too). An opaque bearer (the router's admin token, say) or no bearer
/// at all abstains; a JWT that does not verify is `Unauthenticated`; a valid one without the
/// role is `Forbidden`. It decides without I/O: session cookies are not consulted.
#[derive(Debug)]
pub struct RolePolicy {
    auth: Auth,
}

impl RolePolicy {
    /// The policy over `auth`'s configuration.
    pub fn new(auth: Auth) -> Self {
        Self { auth }
    }
}

impl AccessPolicy for RolePolicy {
    fn decide(&self, right: Right, headers: &HeaderMap) -> Decision {
        let Some(token) = bearer(headers) else {
            return Decision::Abstain;
        };
        if token.split('.').count() != 3 {
            return Decision::Abstain;
        }
        let Ok(claims) = self.auth.verify(token) else {
            return Decision::Unauthenticated;
        };
        let config = self.auth.config();
        let granted = match right {
            Right::Admin => config.admin_roles.iter().any(|r| claims.has_role(r)),
            // Whoever may administer may also read health details.
            Right::HealthDetails => config
                .health_details_roles
                .iter()
                .chain(&config.admin_roles)
                .any(|r| claims.has_role(r)),
            _ => return Decision::Abstain,
        };
        if granted {
            Decision::Granted
        } else {
            Decision::Forbidden
        }
    }
}
