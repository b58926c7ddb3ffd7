//! Issuing, verifying and refreshing JWTs: [`Claims`], [`TokenPair`], and the token methods
//! of [`Auth`].
//!
//! Verification reads the header's `kid`, looks the key up in the ring (unknown, removed, or
//! retired past its overlap: refused), refuses an `alg` other than the key's own (so neither
//! `none` nor an HS256 token "signed" with an RSA public key passes), then verifies the
//! signature and `exp`, `nbf`, `iss`, `aud` with the configured leeway.
//!
//! Refresh tokens are single use: each carries a `jti` and a family `fam`; using one marks its
//! `jti` used with an atomic increment in the key-value store, so a second use (a stolen copy
//! racing its owner) is detected, revokes the whole family and emits
//! `com.modular.auth.refresh.reuse_detected`.

use jsonwebtoken::{Header, decode, decode_header, encode};
use serde::{Deserialize, Deserializer, Serialize};

use crate::error::TokenError;
use crate::service::Auth;
use crate::store::unix_now;

/// The claims of the tokens the module issues.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    /// The subject (account id).
    pub sub: String,
    /// The issuer.
    pub iss: String,
    /// The audiences.
    #[serde(default, deserialize_with = "one_or_many")]
    pub aud: Vec<String>,
    /// Expiry, Unix seconds.
    pub exp: u64,
    /// Not before, Unix seconds.
    #[serde(default)]
    pub nbf: u64,
    /// Issued at, Unix seconds.
    #[serde(default)]
    pub iat: u64,
    /// Token id.
    #[serde(default)]
    pub jti: String,
    /// Roles.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub roles: Vec<String>,
    /// Permissions.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub permissions: Vec<String>,
    /// `refresh` on refresh tokens; absent on access tokens.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub typ: Option<String>,
    /// The refresh family (refresh tokens only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fam: Option<String>,
}

impl Claims {
    /// Whether the claims carry `role`.
    pub fn has_role(&self, role: &str) -> bool {
        self.roles.iter().any(|r| r == role)
    }

    /// Whether the claims carry `permission`.
    pub fn has_permission(&self, permission: &str) -> bool {
        self.permissions.iter().any(|p| p == permission)
    }

    fn kind(&self) -> &'static str {
        if self.typ.as_deref() == Some(REFRESH) {
            "refresh"
        } else {
            "access"
        }
    }
}

const REFRESH: &str = "refresh";

fn one_or_many<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum OneOrMany {
        One(String),
        Many(Vec<String>),
    }
    Ok(match OneOrMany::deserialize(d)? {
        OneOrMany::One(one) => vec![one],
        OneOrMany::Many(many) => many,
    })
}

/// An access token and the refresh token that renews it.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenPair {
    /// The access token (a JWT).
    pub access_token: String,
    /// The single-use refresh token (a JWT with `typ: refresh`).
    pub refresh_token: String,
    /// Seconds until the access token expires.
    pub expires_in: u64,
}

impl std::fmt::Debug for TokenPair {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenPair")
            .field("access_token", &"[REDACTED]")
            .field("refresh_token", &"[REDACTED]")
            .field("expires_in", &self.expires_in)
            .finish()
    }
}

pub(crate) fn random_id() -> String {
    uuid::Uuid::new_v4().simple().to_string()
}

impl Auth {
    /// Signs `claims` as they are with the signing key (the caller sets every claim; for
    /// tests and tools; [`Auth::issue_access`] fills them).
    pub fn sign(&self, claims: &Claims) -> Result<String, TokenError> {
        let state = self.state();
        let key = state
            .keys
            .signing()
            .ok_or_else(|| TokenError::Signing("no signing key".to_owned()))?;
        let encoding = key
            .encoding
            .as_ref()
            .ok_or_else(|| TokenError::Signing("the signing key has no private half".to_owned()))?;
        let mut header = Header::new(key.algorithm);
        header.kid = Some(key.kid.clone());
        encode(&header, claims, encoding).map_err(|e| TokenError::Signing(e.to_string()))
    }

    fn claims(&self, subject: &str, roles: &[String], permissions: &[String]) -> Claims {
        let config = self.state().config.clone();
        let now = unix_now();
        Claims {
            sub: subject.to_owned(),
            iss: config.issuer.clone(),
            aud: config.audience.iter().take(1).cloned().collect(),
            exp: now + config.access_ttl.as_secs(),
            nbf: now,
            iat: now,
            jti: random_id(),
            roles: roles.to_vec(),
            permissions: permissions.to_vec(),
            typ: None,
            fam: None,
        }
    }

    /// An access token for `subject` with `roles` and `permissions`, valid `access_ttl`.
    pub fn issue_access(
        &self,
        subject: &str,
        roles: &[String],
        permissions: &[String],
    ) -> Result<String, TokenError> {
        self.sign(&self.claims(subject, roles, permissions))
    }

    /// An access token and a refresh token of a new family.
    pub fn issue(
        &self,
        subject: &str,
        roles: &[String],
        permissions: &[String],
    ) -> Result<TokenPair, TokenError> {
        self.issue_in_family(subject, roles, permissions, random_id())
    }

    fn issue_in_family(
        &self,
        subject: &str,
        roles: &[String],
        permissions: &[String],
        family: String,
    ) -> Result<TokenPair, TokenError> {
        let access = self.claims(subject, roles, permissions);
        let ttl = self.state().config.refresh_ttl.as_secs();
        let mut refresh = self.claims(subject, roles, permissions);
        refresh.exp = refresh.iat + ttl;
        refresh.typ = Some(REFRESH.to_owned());
        refresh.fam = Some(family);
        Ok(TokenPair {
            expires_in: access.exp.saturating_sub(access.iat),
            access_token: self.sign(&access)?,
            refresh_token: self.sign(&refresh)?,
        })
    }

    /// Verifies an access token: key by `kid`, the key's algorithm only, signature, `exp`,
    /// `nbf`, `iss`, `aud` (with the leeway). A refresh token is refused here.
    #[inline]
    pub fn verify(&self, token: &str) -> Result<Claims, TokenError> {
        let outcome = self.verify_any(token).and_then(|claims| {
            if claims.typ.is_some() {
                Err(TokenError::WrongType {
                    found: claims.kind(),
                    expected: "access",
                })
            } else {
                Ok(claims)
            }
        });
        self.inner.metrics.verified(&outcome);
        outcome
    }

    #[inline]
    fn verify_any(&self, token: &str) -> Result<Claims, TokenError> {
        let header = decode_header(token).map_err(|_| TokenError::Malformed)?;
        let kid = header.kid.as_deref().ok_or(TokenError::UnknownKey)?;
        let state = self.inner.state.load();
        let key = state.keys.verifying(kid)?;
        if header.alg != key.algorithm {
            return Err(TokenError::WrongAlgorithm);
        }
        decode::<Claims>(token, &key.decoding, &key.validation)
            .map(|data| data.claims)
            .map_err(|e| TokenError::from_jwt(&e))
    }

    /// Exchanges a refresh token for a new pair in the same family. The token is used up: a
    /// second use is [`TokenError::RefreshReused`] and revokes the family, so the pair issued
    /// on the first use stops refreshing too.
    pub async fn refresh(&self, refresh_token: &str) -> Result<TokenPair, crate::AuthError> {
        let claims = self.verify_any(refresh_token)?;
        if claims.typ.as_deref() != Some(REFRESH) {
            return Err(TokenError::WrongType {
                found: claims.kind(),
                expected: "refresh",
            }
            .into());
        }
        let family = claims.fam.clone().unwrap_or_default();
        let store = self.store();
        let ttl = std::time::Duration::from_secs(claims.exp.saturating_sub(unix_now()).max(1));
        let family_key = format!("auth:refresh:family:{family}");
        if store.get(&family_key).await?.is_some() {
            return Err(TokenError::RefreshRevoked.into());
        }
        let uses = store
            .increment(&format!("auth:refresh:used:{}", claims.jti), 1, Some(ttl))
            .await?;
        if uses > 1 {
            let family_ttl = self.state().config.refresh_ttl;
            store.set(&family_key, b"revoked", Some(family_ttl)).await?;
            tracing::warn!(module = "auth", subject = %claims.sub, "refresh token reuse detected; family revoked");
            self.emit(
                "refresh.reuse_detected",
                serde_json::json!({ "subject": claims.sub, "family": family }),
            );
            return Err(TokenError::RefreshReused.into());
        }
        Ok(self.issue_in_family(&claims.sub, &claims.roles, &claims.permissions, family)?)
    }

    /// Revokes a refresh token's whole family (logout everywhere that family reached).
    pub async fn revoke_refresh(&self, refresh_token: &str) -> Result<(), crate::AuthError> {
        let claims = self.verify_any(refresh_token)?;
        let family = claims.fam.unwrap_or_default();
        let ttl = self.state().config.refresh_ttl;
        self.store()
            .set(
                &format!("auth:refresh:family:{family}"),
                b"revoked",
                Some(ttl),
            )
            .await?;
        Ok(())
    }
}
