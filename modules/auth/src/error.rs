//! [`AuthError`] and [`TokenError`]: what the module's operations fail with. No variant
//! carries a password, a token or a secret.

use modular_core::kv::KvError;

/// Why a token was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TokenError {
    /// Not a JWT (three base64url parts with a JSON header and payload), or `alg` is not one
    /// this library knows (`none` included).
    #[error("the token is malformed")]
    Malformed,
    /// The header has no `kid`, or names a key not in the ring (or removed from it).
    #[error("the token's key is unknown")]
    UnknownKey,
    /// The key is retired and its overlap has ended.
    #[error("the token's key is retired")]
    RetiredKey,
    /// The header's `alg` is not the one configured for the key (`alg` confusion).
    #[error("the token's algorithm is not the one configured for its key")]
    WrongAlgorithm,
    /// The signature does not verify (a tampered header or payload, a wrong key).
    #[error("the token's signature is invalid")]
    BadSignature,
    /// `exp` (plus the leeway) has passed.
    #[error("the token has expired")]
    Expired,
    /// `nbf` (minus the leeway) is still ahead.
    #[error("the token is not valid yet")]
    NotYetValid,
    /// `aud` names none of the accepted audiences.
    #[error("the token's audience is not accepted")]
    WrongAudience,
    /// `iss` is not the configured issuer.
    #[error("the token's issuer is not accepted")]
    WrongIssuer,
    /// A required claim (`exp`, `iss`, `aud`, `sub`) is missing or has the wrong type.
    #[error("the token lacks a valid `{0}` claim")]
    MissingClaim(String),
    /// An access token where a refresh token is expected, or the reverse.
    #[error("the token is a {found} token, expected {expected}")]
    WrongType {
        /// What it is.
        found: &'static str,
        /// What was expected.
        expected: &'static str,
    },
    /// A refresh token used a second time: its whole family is revoked.
    #[error("the refresh token was already used; its family is revoked")]
    RefreshReused,
    /// A refresh token of a revoked family.
    #[error("the refresh token's family is revoked")]
    RefreshRevoked,
    /// The token could not be signed.
    #[error("signing failed: {0}")]
    Signing(String),
}

impl TokenError {
    /// A short snake_case name, the `outcome` label of the verification metric.
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::Malformed => "malformed",
            Self::UnknownKey => "unknown_key",
            Self::RetiredKey => "retired_key",
            Self::WrongAlgorithm => "wrong_algorithm",
            Self::BadSignature => "bad_signature",
            Self::Expired => "expired",
            Self::NotYetValid => "not_yet_valid",
            Self::WrongAudience => "wrong_audience",
            Self::WrongIssuer => "wrong_issuer",
            Self::MissingClaim(_) => "missing_claim",
            Self::WrongType { .. } => "wrong_type",
            Self::RefreshReused => "refresh_reused",
            Self::RefreshRevoked => "refresh_revoked",
            Self::Signing(_) => "signing_failed",
        }
    }

    pub(crate) fn from_jwt(error: &jsonwebtoken::errors::Error) -> Self {
        use jsonwebtoken::errors::ErrorKind as K;
        match error.kind() {
            K::InvalidSignature => Self::BadSignature,
            K::ExpiredSignature => Self::Expired,
            K::ImmatureSignature => Self::NotYetValid,
            K::InvalidAudience => Self::WrongAudience,
            K::InvalidIssuer => Self::WrongIssuer,
            K::InvalidAlgorithm => Self::WrongAlgorithm,
            K::MissingRequiredClaim(c) | K::InvalidClaimFormat(c) => Self::MissingClaim(c.clone()),
            _ => Self::Malformed,
        }
    }
}

/// What the auth module's operations fail with.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AuthError {
    /// A token was refused.
    #[error(transparent)]
    Token(#[from] TokenError),
    /// Wrong account or password (which of the two is not said).
    #[error("invalid credentials")]
    InvalidCredentials,
    /// Too many failed logins for the account or the client address.
    #[error("too many failed logins for this {scope}; retry later")]
    Throttled {
        /// `account` or `client`.
        scope: &'static str,
    },
    /// A new password fails the policy; each reason names a rule.
    #[error("the password does not meet the policy: {}", .0.join("; "))]
    WeakPassword(Vec<String>),
    /// A stored hash is not an argon2 PHC string.
    #[error("the stored password hash is not a valid argon2 hash")]
    BadHash,
    /// Hashing failed.
    #[error("password hashing failed: {0}")]
    Hashing(String),
    /// The session store failed.
    #[error(transparent)]
    Store(#[from] KvError),
    /// `sessions.store: shared` without a key-value service in the registry.
    #[error(
        "auth.sessions.store is shared but no key-value service (the cache module) is registered"
    )]
    NoSharedStore,
    /// A reload hook was called without its section.
    #[error("reload of `{module}` carried no `auth` section")]
    MissingSection {
        /// The module being reloaded.
        module: String,
    },
}
