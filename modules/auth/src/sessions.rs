//! Server-side sessions in the key-value store: sliding idle expiry, an absolute lifetime,
//! rotation (a new id on login, the old one revoked), revocation, and the cookie.
//!
//! A session is stored under `auth:session:<id>` as JSON; its TTL is re-set on every read to
//! the smaller of `idle_timeout` and what is left of `absolute_lifetime`. Ids are 122 random
//! bits (UUIDv4, from the OS generator), compared by the store's lookup, never by the application.

use serde::{Deserialize, Serialize};

use crate::error::AuthError;
use crate::service::Auth;
use crate::store::now_ms;

/// One session.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Session {
    /// The id (the cookie's value).
    pub id: String,
    /// The account.
    pub subject: String,
    /// Roles granted for the session.
    #[serde(default)]
    pub roles: Vec<String>,
    /// Login time, Unix milliseconds.
    pub created_at_ms: u64,
    /// Last use, Unix milliseconds.
    pub last_seen_ms: u64,
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session")
            .field("id", &"[REDACTED]")
            .field("subject", &self.subject)
            .field("roles", &self.roles)
            .field("created_at_ms", &self.created_at_ms)
            .finish_non_exhaustive()
    }
}

fn key(id: &str) -> String {
    format!("auth:session:{id}")
}

impl Auth {
    /// Creates a session for `subject`. Pass the id of the session the client had before
    /// logging in (`previous`): it is revoked, so a fixated id never becomes authenticated.
    pub async fn create_session(
        &self,
        subject: &str,
        roles: &[String],
        previous: Option<&str>,
    ) -> Result<Session, AuthError> {
        if let Some(previous) = previous {
            self.revoke_session(previous).await?;
        }
        let now = now_ms();
        let session = Session {
            id: crate::tokens::random_id(),
            subject: subject.to_owned(),
            roles: roles.to_vec(),
            created_at_ms: now,
            last_seen_ms: now,
        };
        self.save(&session).await?;
        Ok(session)
    }

    /// The session `id`, with its idle expiry extended; `None` when unknown, revoked, idle
    /// too long or past its absolute lifetime.
    pub async fn session(&self, id: &str) -> Result<Option<Session>, AuthError> {
        let store = self.store();
        let Some(bytes) = store.get(&key(id)).await? else {
            return Ok(None);
        };
        let Ok(mut session) = serde_json::from_slice::<Session>(&bytes) else {
            store.delete(&key(id)).await?;
            return Ok(None);
        };
        let config = self.config();
        let now = now_ms();
        let absolute =
            u64::try_from(config.sessions.absolute_lifetime.as_millis()).unwrap_or(u64::MAX);
        if now.saturating_sub(session.created_at_ms) >= absolute {
            store.delete(&key(id)).await?;
            return Ok(None);
        }
        session.last_seen_ms = now;
        self.save(&session).await?;
        Ok(Some(session))
    }

    /// A new id for the session `id` (same subject and login time); the old id stops working.
    pub async fn rotate_session(&self, id: &str) -> Result<Option<Session>, AuthError> {
        let Some(mut session) = self.session(id).await? else {
            return Ok(None);
        };
        self.revoke_session(id).await?;
        session.id = crate::tokens::random_id();
        self.save(&session).await?;
        Ok(Some(session))
    }

    /// Ends the session `id`; `true` when it existed.
    pub async fn revoke_session(&self, id: &str) -> Result<bool, AuthError> {
        let existed = self.store().delete(&key(id)).await?;
        if existed {
            self.emit("session.revoked", serde_json::json!({}));
        }
        Ok(existed)
    }

    async fn save(&self, session: &Session) -> Result<(), AuthError> {
        let config = self.config();
        let idle = config.sessions.idle_timeout;
        let absolute = config.sessions.absolute_lifetime;
        let age = std::time::Duration::from_millis(
            session.last_seen_ms.saturating_sub(session.created_at_ms),
        );
        let ttl = idle
            .min(absolute.saturating_sub(age))
            .max(std::time::Duration::from_millis(1));
        let bytes = serde_json::to_vec(session).map_err(|e| AuthError::Hashing(e.to_string()))?;
        self.store()
            .set(&key(&session.id), &bytes, Some(ttl))
            .await?;
        Ok(())
    }

    /// The `Set-Cookie` value carrying `session`'s id with the configured attributes.
    pub fn session_cookie(&self, session: &Session) -> String {
        let config = self.config();
        let c = &config.sessions.cookie;
        let mut cookie = format!(
            "{}={}; Path={}; Max-Age={}",
            c.name,
            session.id,
            c.path,
            config.sessions.absolute_lifetime.as_secs()
        );
        if let Some(domain) = &c.domain {
            cookie.push_str(&format!("; Domain={domain}"));
        }
        if c.secure {
            cookie.push_str("; Secure");
        }
        if c.http_only {
            cookie.push_str("; HttpOnly");
        }
        let same_site = match c.same_site.as_str() {
            "strict" => "Strict",
            "none" => "None",
            _ => "Lax",
        };
        cookie.push_str(&format!("; SameSite={same_site}"));
        cookie
    }

    /// The `Set-Cookie` value that removes the session cookie.
    pub fn clear_session_cookie(&self) -> String {
        let config = self.config();
        let c = &config.sessions.cookie;
        format!("{}=; Path={}; Max-Age=0", c.name, c.path)
    }

    /// The session id in a `Cookie` header, when the configured cookie is there.
    pub fn session_id_from_cookies(&self, cookie_header: &str) -> Option<String> {
        let config = self.config();
        let name = &config.sessions.cookie.name;
        cookie_header.split(';').find_map(|pair| {
            let (k, v) = pair.trim().split_once('=')?;
            (k == name).then(|| v.to_owned())
        })
    }
}
